"""Putting staged rows into a store: the driver's writer, and the executors' writer.

The embedded store takes one writer, the driver (``drive``): a thread reads and merges the
staged files (``merge``), worker threads derive each table's rows from a batch, encode, pack
and compress them, and the calling thread writes them in order. With an HBase store the
Spark executors write instead (``write_from_executors``), each partition through its own
connection. Either way each table counts the rows it expected, wrote and did not place (by
reason), and the push reconciles them (``night.reconcile``).
"""
from __future__ import annotations

import collections
import functools
import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import functions as F

from fink_ingest import cells as cellcodec
from fink_ingest import schemarow
from fink_ingest.errors import StoreError
from fink_ingest.push.merge import (merged_batches, present_columns, put_batches, read_ahead,
                                    staged_file, _Pieces)
from fink_ingest.tables.base import DERIVED_CLASS, Rows

log = logging.getLogger(__name__)
# Threads preparing batches for the one writer thread (the store takes one writer).
PREPARE_THREADS = 2
# A progress line in the log every this many rows.
PROGRESS_ROWS = 100_000
# Reasons a row is not placed that mean an alert is missing from a table (a night with any
# of them is incomplete); every other reason is the table's design (no stamps, not an SSO...).
REPEATED_KEY = "key repeated within the night: lost"
NO_CELLS = "row without any cell: not storable"
LOSSES = (REPEATED_KEY, NO_CELLS)


def open_tables(store, builders, config, pending_ok=False):
    """Create or check every table a push will write, before the night is read.

    Each table is created if missing, with the codec the store chooses for it
    (``store.check_codecs``: on HBase the configured codecs, each tried first on a scratch
    table), and its key layout checked and recorded in its schema row
    (``schemarow.check_layout``): a codec the store refuses or a table written with another
    layout stops the push here, in seconds, naming the setting or the upgrade command.

    ``pending_ok`` accepts tables marked as being rebuilt whole (the rebuild's own pushes).

    Returns
    -------
    dict of str to fink_ingest.store.base.Table
        Builder kind -> table.

    Raises
    ------
    LayoutError
        If a table holds rows of another key layout.
    StoreError
        If the store cannot use a table's codec (nothing is created).
    """
    survey = config.survey
    names = {b.table_name(config.table_prefix): b for b in builders}
    # every codec tried first (HBase: on a scratch table), before any table is created
    codecs = store.check_codecs(names, config)
    out = {}
    for name, b in names.items():
        families = b.families_for(survey)
        table = store.ensure_table(name, families, codecs[name])
        schemarow.check_layout(table, survey.schema_version, families[0], b.key_layout(survey), b.kind,
                               write=True, pending_ok=pending_ok)
        out[b.kind] = table
    return out


def settle(rows, types):
    """Rows ready to encode, with every row left out counted as lost in ``skipped``.

    Keys are unique within a push (one row per alert id in the alert tables, one packed row
    per object and bucket in the history tables), so neither case should occur; should one,
    the run is reported incomplete with the reason, instead of a put silently replacing
    another row (``REPEATED_KEY``: a key equal to the one before it) or a store silently
    ignoring a row (``NO_CELLS``: no cell of a type the table writes).

    Parameters
    ----------
    rows : fink_ingest.tables.base.Rows
    types : dict of str to str
        The cells the table writes.

    Returns
    -------
    fink_ingest.tables.base.Rows
    """
    keys, n = rows.keys, len(rows.keys)
    if n == 0:
        return rows
    keep = pa.concat_arrays([pa.array([True]), pc.invert(pc.equal(keys.slice(1), keys.slice(0, n - 1)))]) \
        if n > 1 else pa.array([True])
    has_cell = None
    for name, values in rows.cells.items():
        if name in types:
            valid = pc.is_valid(values)
            has_cell = valid if has_cell is None else pc.or_(has_cell, valid)
    has_cell = pa.array([False] * n) if has_cell is None else has_cell
    skipped = dict(rows.skipped)
    repeats = n - int(pc.sum(pc.cast(keep, pa.int64())).as_py())
    empty = int(pc.sum(pc.cast(pc.and_(keep, pc.invert(has_cell)), pa.int64())).as_py() or 0)
    if not repeats and not empty:
        return rows
    for reason, count in ((REPEATED_KEY, repeats), (NO_CELLS, empty)):
        if count:
            skipped[reason] = skipped.get(reason, 0) + count
    keep = pc.and_(keep, has_cell)
    return Rows(keys=pc.filter(keys, keep), cells={c: pc.filter(a, keep) for c, a in rows.cells.items()},
                skipped=skipped, types=rows.types, expected=rows.expected)


def drive(writers, files, config, night, columns=None, sort_by=None):
    """Write staged rows from this process (the embedded store's single writer); with
    ``sort_by`` (the staged files' sort columns), in one global order."""
    survey = config.survey

    def batches():
        if sort_by:  # a merge round gives about one file's share: rounds are joined into puts
            yield from put_batches(merged_batches(files, sort_by, config.stage_rows, columns, lazy=True),
                                    config.put_rows)
            return
        # one file, one row group at a time: memory bounded by stage_rows
        for path in files:
            for batch in staged_file(path).iter_batches(batch_size=config.stage_rows, columns=columns):
                for start in range(0, batch.num_rows, config.put_rows):
                    yield batch.slice(start, config.put_rows)

    def prepare(batch):
        if isinstance(batch, _Pieces):  # the merged order: rows copied here, off the merge thread
            batch = batch.materialise()
        if isinstance(batch, pa.Table):
            batch = batch.combine_chunks().to_batches()[0]
        out = []
        for w in writers:
            rows = w.builder.rows(batch, survey)
            if rows is not None:
                out.append((w, w.prepare(rows)))
        return out

    seen, next_report, t0 = 0, PROGRESS_ROWS, time.time()
    pending = collections.deque()
    # A thread reads and merges the staged files; PREPARE_THREADS encode, pack and compress
    # the next batches (zstd and Arrow release the GIL); this thread writes the oldest
    # prepared batch, in order (SQLite releases the GIL while it writes).
    with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as pool:
        for batch in read_ahead(batches(), PREPARE_THREADS):
            pending.append(pool.submit(prepare, batch))
            if len(pending) > PREPARE_THREADS:
                for w, prepared in pending.popleft().result():
                    w.write(prepared)
            seen += batch.num_rows
            if seen >= next_report:
                log.info("%d staged rows written to %d tables (%.0f rows/s)", seen, len(writers),
                         seen / max(time.time() - t0, 1e-9))
                next_report += PROGRESS_ROWS
        while pending:
            for w, prepared in pending.popleft().result():
                w.write(prepared)
    for w in writers:
        rows = w.builder.finish(night, survey)
        if rows is not None:
            w.write(w.prepare(rows))


class _TableWriter:
    """One table's part of a push: schema-row types, encoding, counts."""

    def __init__(self, store, builder, config, staged_types, present):
        self.builder = builder
        self.name = builder.table_name(config.table_prefix)
        self.table = store.table(self.name)  # created and checked by ``open_tables``
        self.survey = config.survey
        types = builder.cell_types(staged_types, config.survey)
        derived = set(types) - set(staged_types)
        stored = schemarow.read(self.table, self.survey.schema_version)
        self.types, changed = schemarow.reconcile(stored, types, present | derived)
        schemarow.put(self.table, self.survey.schema_version, changed)
        self.expected = 0
        self.written = 0
        self.skipped = collections.Counter()
        self.seconds = 0.0
        self.store_seconds = 0.0  # executor writes: time inside the store's put calls (Thrift)
        self._lock = threading.Lock()

    def prepare(self, rows):
        """Encode a ``Rows`` into what the table writes (runs in a worker thread). Rows of a
        builder that merges with stored rows are only passed on: the merge reads the store,
        so it runs in ``write``, one batch after the other."""
        if self.builder.merges:
            return _Unmerged(rows)
        return self._encode(rows)

    def _encode(self, rows):
        t0 = time.time()
        types = self.types
        if rows.types:
            stored = schemarow.read(self.table, self.survey.schema_version)
            types, changed = schemarow.reconcile(stored, rows.types, set(rows.types))
            schemarow.put(self.table, self.survey.schema_version, changed)
        rows = settle(rows, types)
        with self._lock:
            self.expected += rows.expected
            self.skipped.update(rows.skipped)
        columns = {n: cellcodec.encode(a, types[n]) for n, a in rows.cells.items() if n in types}
        prepared = self.table.prepare_arrow(rows.keys, columns) if len(rows.keys) else None
        with self._lock:
            self.seconds += time.time() - t0
        return prepared

    def write(self, prepared):
        if isinstance(prepared, _Unmerged):
            t0 = time.time()
            rows = self.builder.merge_stored(self.table, prepared.rows, self.survey)
            with self._lock:
                self.seconds += time.time() - t0
            prepared = self._encode(rows)
        t0 = time.time()
        if prepared is not None:
            self.written += self.table.write_prepared(prepared)
        with self._lock:
            self.seconds += time.time() - t0


class _Unmerged:
    """Rows a writer merges with the stored ones just before writing them."""

    def __init__(self, rows):
        self.rows = rows


def write_staged(store, builders, staged_dir, staged_types, config, night, spark=None, sort_by=None):
    """Stream staged batches into every builder's table.

    Parameters
    ----------
    store : fink_ingest.store.base.Store
    builders : list of fink_ingest.tables.base.TableBuilder
    staged_dir : Path
        Parquet files written by Spark.
    staged_types : dict of str to str
        Type of each staged column.
    config : fink_ingest.config.Config
    night : datetime.date
    spark : pyspark.sql.SparkSession, optional
        Given, and the store writes from the executors (``store.executor_writes``): the
        rows are written by a Spark job, one connection per partition.
    sort_by : list of str, optional
        Columns each staged file is sorted by: the driver then writes in one global order
        (``merged_batches``).

    Returns
    -------
    list of _TableWriter
        With ``expected``, ``written``, ``skipped`` (by reason) and ``seconds`` per table.

    Raises
    ------
    SchemaError
        If a column's type cannot be reconciled with a table's schema row.
    """
    files = sorted(str(p) for p in Path(staged_dir).glob("*.parquet"))
    present = present_columns(files)
    writers = [_TableWriter(store, b, config, staged_types, present) for b in builders]
    if spark is not None and store.executor_writes:
        remote = [w for w in writers if w.builder.kind != "statistics"]
        write_from_executors(spark, store, remote, staged_dir, config, sort_by)
        writers_here = [w for w in writers if w.builder.kind == "statistics"]
        if not writers_here:
            return writers
        drive(writers_here, files, config, night, columns=_stat_columns(staged_types))
        return writers
    drive(writers, files, config, night, sort_by=sort_by)
    return writers


def _stat_columns(staged_types):
    return [n for n in ("i:fid", DERIVED_CLASS) if n in staged_types]


def write_batches(url, plan, survey, put_rows, batches):
    """One executor task's writes (``write_from_executors``): rows of each table derived from
    staged batches, encoded and put through a connection of its own.

    Parameters
    ----------
    url : str
        The store's URL (``open_store``).
    plan : list of (TableBuilder, str, dict)
        Builder, table name and cell types of each table.
    survey : fink_ingest.config.Survey
    put_rows : int
        Rows per put (the store cuts them into calls of its own batch size).
    batches : iterable of pyarrow.RecordBatch
        Staged rows.

    Yields
    ------
    pyarrow.RecordBatch
        One row per table: ``table``, ``expected``, ``written``, ``seconds`` (deriving,
        encoding and putting), ``store_seconds`` (in the store's put), ``skipped`` (JSON).
    """
    from fink_ingest.store import open_store

    remote = open_store(url)
    tables = {name: remote.bare_table(name) for _, name, _ in plan}
    written, skipped, seconds = collections.Counter(), collections.Counter(), collections.Counter()
    expected = collections.Counter()
    for batch in batches:
        for start in range(0, batch.num_rows, put_rows):
            part = batch.slice(start, put_rows)
            for builder, name, types in plan:
                t0 = time.time()
                rows = builder.rows(part, survey)
                if rows is None:
                    continue
                rows = settle(builder.merge_stored(tables[name], rows, survey), types)
                expected[name] += rows.expected
                skipped.update({f"{name}\t{k}": v for k, v in rows.skipped.items()})
                if len(rows.keys):
                    columns = {n: cellcodec.encode(a, types[n]) for n, a in rows.cells.items() if n in types}
                    t1 = time.time()
                    written[name] += tables[name].put_arrow(rows.keys, columns)
                    seconds[f"{name}\tstore"] += time.time() - t1
                seconds[name] += time.time() - t0
    names = [name for _, name, _ in plan]
    yield pa.RecordBatch.from_pydict({  # floats even where nothing was timed (an int 0)
        "table": names, "expected": [expected[n] for n in names], "written": [written[n] for n in names],
        "seconds": [float(seconds[n]) for n in names],
        "store_seconds": [float(seconds[f"{n}\tstore"]) for n in names],
        "skipped": [json.dumps({k.split("\t", 1)[1]: v for k, v in skipped.items() if k.startswith(n + "\t")})
                    for n in names]})


def write_from_executors(spark, store, writers, staged_dir, config, sort_by=None):
    """Write staged rows from the Spark executors: each partition opens its own connection
    (``open_store(url)``) and puts its rows in batches; the driver sums the counts."""
    plan = [(w.builder, w.name, dict(w.types)) for w in writers]
    write_partition = functools.partial(write_batches, store.url, plan, config.survey, config.put_rows)
    frame = spark.read.parquet(str(staged_dir))
    if sort_by and any(w.builder.merges for w in writers):
        # a merge reads the row it replaces: every row of an object in one task, in key
        # order (a staged file read in several splits would put one key in two tasks)
        frame = (frame.repartition(F.col(f"`{sort_by[0]}`"))
                 .sortWithinPartitions(*[F.col(f"`{c}`") for c in sort_by]))
    try:
        result = frame.mapInArrow(write_partition, "table string, expected long, written long, seconds double, "
                                                    "store_seconds double, skipped string").collect()
    except Exception as exc:  # noqa: BLE001 - a task's StoreError arrives wrapped by Spark
        found = re.search(r"StoreError: (.+)", str(exc))
        if found is None:
            raise
        raise StoreError(f"{found.group(1).strip()} (written from a Spark executor)") from None
    by_name = {w.name: w for w in writers}
    for row in result:
        w = by_name[row["table"]]
        w.expected += row["expected"]
        w.written += row["written"]
        w.seconds += row["seconds"]
        w.store_seconds += row["store_seconds"]
        w.skipped.update(json.loads(row["skipped"]))
