"""Putting staged rows into a store from the driver, and what every writer shares.

The embedded store is written by the driver (``drive``): a thread reads and merges the staged
files (``merge``), worker threads derive each table's rows from a batch and encode, pack and
compress them, and one writer thread writes every table's, in order (the tables are created or
checked before a night is read: ``checks.open_tables``). ``_TableWriter`` reconciles a table's schema row and
counts, per table, the rows it expected, wrote and did not place (by reason), which the push
reconciles (``checks.reconcile``). The executors' writer (HBase) is in ``executors``.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest import cells as cellcodec
from fink_ingest import schemarow
from fink_ingest.errors import SchemaError
from fink_ingest.push import parallel
from fink_ingest.push.merge import (NightCounts, merged_batches, needed_columns, present_columns, put_batches,
                                    read_ahead, staged_file, _Pieces)
from fink_ingest.push.stage import HISTORY
from fink_ingest.tables import history as history_tables
from fink_ingest.tables.base import Rows, alert_key_inputs

log = logging.getLogger(__name__)
# Threads preparing batches for the one writer thread (the store takes one writer).
PREPARE_THREADS = 2
# A progress line in the log every this many rows.
PROGRESS_ROWS = 100_000
# Prepared batches per table the writer thread may have waiting, on average (bounds memory).
WRITES_IN_FLIGHT = 2
# Rows of a table whose keys do not follow the staged order (time, sky, class... indexes)
# gathered before they are written as one sorted run (``Table.write_run``); bounds memory
# (~30 MB a table of ~200-byte rows) while the store's B-tree is visited once per run.
RUN_ROWS = 100_000
# Reasons a row is not placed that mean an alert is missing from a table (a night with any
# of them is incomplete); every other reason is the table's design (no stamps, not an SSO...).
REPEATED_KEY = "key repeated within the night: lost"
NO_CELLS = "row without any cell: not storable"
LOSSES = (REPEATED_KEY, NO_CELLS)


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


def drive(writers, files, config, night, sort_by=None, progress=None, counts=None, columns=None):
    """Write staged rows from this process (the embedded store's writer); with ``sort_by``
    (the staged files' sort columns), in one global order. History tables are written from
    the same batches: each batch's ``HISTORY`` column flattened once (``history.entries``),
    their count added to ``counts["history_entries"]`` (a dict, if given). Sorted by the alert
    key (object id, time, alert id), the night's distinct objects and the copies of an alert,
    written once, are counted as they pass (``merge.NightCounts``): ``counts["objects"]`` and
    ``counts["duplicates"]``, known to the builders' ``finish``.

    A thread reads and merges the staged files; ``PREPARE_THREADS`` derive each table's rows
    from a batch and encode, pack and compress them (Arrow and zstd release the GIL); one
    writer thread writes every table's prepared batches, in order. One, not one per table:
    SQLite gives up the GIL for every row it inserts, and several threads inserting at once
    spent most of their time handing it over (four index tables of a 400k-alert night:
    49 s side by side, 25 s from one thread; four 200k-row inserts in four threads took 13x
    one insert, in four processes 2.5x). Tables whose keys do not follow the staged order
    are written in sorted runs (``_TableWriter.flush``). ``progress(rows)`` is called as
    batches are written. ``columns``: the staged columns to read (all if None).

    Raises
    ------
    Exception
        The first failure of any thread (a store error names its table and batch).
    """
    survey = config.survey

    keys = alert_key_inputs(survey)
    night_counts = NightCounts(keys[0], keys[2]) if sort_by and sort_by[:1] == keys[:1] and keys[2] in sort_by \
        else None

    def batches():
        if sort_by:  # a merge round gives about one file's share: rounds are joined into puts
            merged = merged_batches(files, sort_by, config.stage_rows, columns=columns, lazy=True)
            for batch in put_batches(merged, config.put_rows):
                if night_counts is not None:  # in key order, one batch after the other
                    night_counts.see(batch)
                yield batch
            return
        # one file, one row group at a time: memory bounded by stage_rows
        for path in files:
            for batch in staged_file(path).iter_batches(batch_size=config.stage_rows, columns=columns):
                for start in range(0, batch.num_rows, config.put_rows):
                    yield batch.slice(start, config.put_rows)

    from_history = any(w.builder.source == "history" for w in writers)

    def prepare(batch):
        if isinstance(batch, _Pieces):  # the merged order: rows copied here, off the merge thread
            batch = batch.materialise()
        if isinstance(batch, pa.Table):
            batch = batch.combine_chunks().to_batches()[0]
        entries = history_tables.entries(batch, HISTORY, survey) \
            if from_history and HISTORY in batch.schema.names else None
        out = []
        for w in writers:
            source = entries if w.builder.source == "history" else batch
            rows = w.builder.rows(source, survey) if source is not None else None
            if rows is not None:
                out.append((w, w.prepare(rows)))
        return out, batch.num_rows, entries.num_rows if entries is not None else 0

    seen, next_report, t0 = 0, PROGRESS_ROWS, time.time()
    pending = collections.deque()
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write")  # every table's writes, in order
    in_flight = collections.deque()  # table writes submitted, oldest first

    def hand_over(prepared):
        nonlocal seen, next_report
        results, rows, entries = prepared.result()
        if counts is not None and entries:
            counts["history_entries"] = counts.get("history_entries", 0) + entries
        for w, batch in results:
            in_flight.append(writer.submit(w.write, batch))
        while len(in_flight) > WRITES_IN_FLIGHT * len(writers):
            in_flight.popleft().result()
        seen += rows
        if progress is not None:
            progress(rows)
        if seen >= next_report:
            log.info("%d staged rows written to %d tables (%.0f rows/s)", seen, len(writers),
                     seen / max(time.time() - t0, 1e-9))
            next_report += PROGRESS_ROWS

    try:
        with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as pool:
            for batch in read_ahead(batches(), PREPARE_THREADS):
                pending.append(pool.submit(prepare, batch))
                if len(pending) > PREPARE_THREADS:
                    hand_over(pending.popleft())
            while pending:
                hand_over(pending.popleft())
        while in_flight:
            in_flight.popleft().result()
        if night_counts is not None and counts is not None:
            counts.update(objects=night_counts.objects, duplicates=night_counts.duplicates)
        for w in writers:  # the summary rows and the last runs, from the same thread and connections
            writer.submit(_finish, w, night, survey, counts).result()
    finally:
        writer.shutdown(wait=True, cancel_futures=True)


def _finish(w, night, survey, counts):
    rows = w.builder.finish(night, survey, counts)
    if rows is not None:
        w.write(w.prepare(rows))
    w.flush()


class _TableWriter:
    """One table's part of a push: schema-row types, encoding, counts."""

    def __init__(self, store, builder, config, staged_types, present):
        self.builder = builder
        self.name = builder.table_name(config.table_prefix)
        self.table = store.table(self.name)  # created and checked by ``checks.open_tables``
        self.survey = config.survey
        types = builder.cell_types(staged_types, config.survey)
        derived = set(types) - set(staged_types)
        stored = schemarow.read(self.table, self.survey.schema_version)
        self.types, changed, self.notes = schemarow.reconcile(stored, types, present | derived)
        schemarow.put(self.table, self.survey.schema_version, changed)
        self.expected = 0
        self.written = 0
        self.skipped = collections.Counter()
        self.seconds = 0.0
        self.store_seconds = 0.0  # executor writes: time inside the store's put calls (Thrift)
        self._lock = threading.Lock()
        self.in_runs = not builder.follows_staged_order  # rows written in sorted runs (``flush``)
        self._run, self._run_rows = [], 0

    def prepare(self, rows):
        """Encode a ``Rows`` into what the table writes (runs in a worker thread). Rows of a
        builder that merges with stored rows are encoded here too, and kept: the merge reads
        the store, so it runs in ``write``, one batch after the other, on the rows whose key
        may be stored already (``_merged``)."""
        t0 = time.time()
        rows, types = self._settled(rows)
        prepared = self._pack(rows, types)
        with self._lock:
            self.seconds += time.time() - t0
        return _Unmerged(rows, types, prepared) if self.builder.merges else prepared

    def _settled(self, rows):
        """The rows to encode (``settle``, the schema row reconciled first when the rows bring
        their own types) and their types; the rows expected and left out are counted."""
        types = self.types
        if rows.types:
            stored = schemarow.read(self.table, self.survey.schema_version)
            types, changed, notes = schemarow.reconcile(stored, rows.types, set(rows.types))
            schemarow.put(self.table, self.survey.schema_version, changed)
            with self._lock:
                merge_notes(self.notes, notes)
        rows = settle(rows, types)
        with self._lock:
            self.expected += rows.expected
            self.skipped.update(rows.skipped)
        return rows, types

    def _pack(self, rows, types):
        """``(records, rows)`` the table writes for settled rows (None without rows)."""
        columns, set_aside = encode_cells(rows, types)
        if set_aside:
            with self._lock:
                merge_notes(self.notes, {"set_aside": set_aside})
        return (self.table.prepare_arrow(rows.keys, columns), len(rows.keys)) if len(rows.keys) else None

    def _merged(self, unmerged):
        """The records of merged rows (writer thread): only the rows whose key is at most the
        greatest stored key below the batch's last (``Table.floor_key``) can be stored already,
        and only they are read and merged (``merge_stored``), re-encoded and put in place of
        their first encoding; a row that gains nothing is left out (``skipped``). On a table
        the push fills, that is the object whose rows straddle two batches."""
        rows, prepared = unmerged.rows, unmerged.prepared
        if prepared is None:
            return None
        self.flush()  # the store must hold every earlier row of the push before it is read
        keys = pc.cast(rows.keys, pa.binary())
        last = self.table.floor_key(pc.max(keys).as_py())
        if last is None:
            return prepared
        maybe = pc.less_equal(keys, pa.scalar(last, pa.binary()))
        if not pc.any(maybe).as_py():
            return prepared
        subset = Rows(keys=pc.filter(rows.keys, maybe), cells={n: pc.filter(v, maybe) for n, v in rows.cells.items()},
                      types=rows.types)
        merged = self.builder.merge_stored(self.table, subset, self.survey)
        if merged is subset:  # none of them was stored
            return prepared
        with self._lock:
            self.skipped.update(merged.skipped)
        again = self._pack(merged, unmerged.types)
        replaced = dict(again[0]) if again is not None else {}
        gone = set(subset.keys.cast(pa.binary()).to_pylist()) - set(replaced)
        records = [(k, replaced.get(k, v)) for k, v in prepared[0] if k not in gone]
        return records, len(records)

    def write(self, prepared):
        if isinstance(prepared, _Unmerged):
            t0 = time.time()
            prepared = self._merged(prepared)
            with self._lock:
                self.seconds += time.time() - t0
        if prepared is None:
            return
        if self.in_runs:
            self._run.append(prepared[0])
            self._run_rows += prepared[1]
            if self._run_rows >= RUN_ROWS:
                self.flush()
            return
        t0 = time.time()
        self.written += self.table.write_prepared(prepared[0])
        with self._lock:
            self.seconds += time.time() - t0

    def flush(self):
        """Write the rows gathered for a sorted run (``write``), if any."""
        if not self._run:
            return
        t0 = time.time()
        run, self._run, self._run_rows = self._run, [], 0
        self.written += self.table.write_run(run)
        with self._lock:
            self.seconds += time.time() - t0


def encode_cells(rows, types):
    """Encode the cells of ``Rows`` with the table's types.

    Returns
    -------
    (dict of str to pyarrow.BinaryArray, dict of str to str)
        Encoded columns; columns set aside, with why: values the recorded type cannot hold
        exactly (e.g. fractions in an integer column), never written cast or truncated.
    """
    columns, set_aside = {}, {}
    for name, values in rows.cells.items():
        if name not in types:
            continue
        try:
            columns[name] = cellcodec.encode(values, types[name])
        except SchemaError as exc:
            set_aside[name] = f"stored as {types[name]}, values of this night do not fit it ({exc}); not written"
    return columns, set_aside


def merge_notes(into, notes):
    """Add schema notes (``schemarow.reconcile``'s) into a table's notes, in place."""
    for key, value in notes.items():
        if isinstance(value, list):
            into.setdefault(key, [])
            into[key] += [v for v in value if v not in into[key]]
        else:
            into.setdefault(key, {}).update(value)


class _Unmerged:
    """Rows a writer merges with the stored ones just before writing them, with their types
    and their records as encoded before the merge (``_TableWriter._merged``)."""

    def __init__(self, rows, types, prepared):
        self.rows, self.types, self.prepared = rows, types, prepared


def writers(store, builders, config, staged_types, present):
    """One ``_TableWriter`` per builder: the schema row of each table reconciled with the
    night's types (``present``: columns with a value this night) before any cell is written.

    Raises
    ------
    SchemaError
        If a column's type cannot be reconciled with a table's schema row.
    """
    return [_TableWriter(store, b, config, staged_types, present) for b in builders]


def write_staged(store, builders, files, staged_types, config, night, sort_by=None, progress=None,
                 history_types=None, counts=None, processes=None):
    """Stream staged files into every builder's table: from the driver and, for a large
    night, writer processes each writing its share of the tables (``parallel.write_shared``,
    ``config.write_processes``; ``processes=1``: this process alone). Each process reads only
    the staged columns its tables need (``needed_columns``).

    Parameters
    ----------
    store : fink_ingest.store.base.Store
    builders : list of fink_ingest.tables.base.TableBuilder
        Alert tables, and history tables (written from the staged ``HISTORY`` column).
    files : list of str
        Local staged parquet files (Spark's output, or local copies of it).
    staged_types : dict of str to str
        Type of each staged column.
    config : fink_ingest.config.Config
    night : datetime.date
    sort_by : list of str, optional
        Columns each staged file is sorted by: the driver then writes in one global order
        (``merged_batches``).
    progress : callable, optional
        ``progress(rows)`` as staged rows are written.
    history_types : dict of str to str, optional
        Type of each history entry field (``stage.history_types``), for history builders.
    counts : dict, optional
        Receives ``history_entries``: the entries the history builders were given; with
        ``sort_by``, ``objects`` and ``duplicates`` (``drive``); with writer processes,
        ``write_processes`` and ``writer_peak_mb``.
    processes : int, optional
        1: write every table from this process.

    Returns
    -------
    list of _TableWriter (or parallel.WriterResult)
        With ``expected``, ``written``, ``skipped`` (by reason) and ``seconds`` per table.

    Raises
    ------
    SchemaError
        If a column's type cannot be reconciled with a table's schema row.
    """
    if processes != 1:
        def here(share):
            return write_staged(store, share, files, staged_types, config, night, sort_by, progress, history_types,
                                counts, processes=1)

        return parallel.write_shared(store, builders, files, staged_types, config, night, here, sort_by,
                                     history_types, counts)
    present = present_columns(files)
    from_alerts = [b for b in builders if b.source != "history"]
    from_history = [b for b in builders if b.source == "history"]
    table_writers = writers(store, from_alerts, config, staged_types, present)
    if from_history:
        fields = {p.rsplit(".", 1)[-1] for p in present if p.startswith(f"{HISTORY}.")}
        family = config.survey.original_family
        table_writers += writers(store, from_history, config, history_types or {},
                                 {f"{family}:{f}" for f in fields})
    columns = needed_columns(builders, files, config.survey, sort_by, HISTORY)
    drive(table_writers, files, config, night, sort_by=sort_by, progress=progress, counts=counts, columns=columns)
    return table_writers

