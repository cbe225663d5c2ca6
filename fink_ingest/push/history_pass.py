"""The history tables' entries read by pyarrow from the datalake, not staged by Spark.

Spark stages each alert's history entries as a nested column, and that cost an all-tables
push a third of its staging: on a 400k-alert night, 8.1-8.3 s of two cores to read and
write the 8.3M kept entries, against 2.8 s (4.5 CPU s) for pyarrow to read the same fields
from the datalake files, keep the same entries, sort them and merge them
(``benchmarks/bench_history_pass.py``). When the driver writes (the embedded store), the
datalake's files are local and the history fields plain values, the staging leaves the
history out and keeps, per alert, its datalake file and row (``__file``, ``__row``): the
writer that holds the history tables then

1. reads which rows of which file were staged (the valid alerts: rows set aside by the
   push's checks are not, copies of an alert are, as with the nested column);
2. reads those rows' history from each file (``survey.history_fields`` of
   ``survey.history_column``), in threads, keeps the entries some history table keeps
   (the builders' own ``keep``) that have a valid time, and writes them in sorted runs
   (``objectId``, ``jd``, the detection id; at most ``RUN_ENTRIES`` entries a run, Arrow
   IPC files compressed with LZ4, in the writer's scratch directory);
3. merges the runs into one order (``merge.merged_batches``, at most ``MERGE_RUNS`` at once,
   longer runs merged first beyond that) and hands
   batches of entries to the history builders (``HistoryTable.rows``), as
   ``history.entries`` gives them from the nested column.

Entries without a valid time are counted and set aside by Spark, as before (``ENTRIES``,
``NO_TIME``). Otherwise (HBase, files not on this machine, a history field of a type this
pass does not convert as Spark does) the history is staged by Spark as before.
"""
from __future__ import annotations

import collections
import dataclasses
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from fink_ingest.errors import SchemaError
from fink_ingest.push.merge import merged_batches, put_batches
from fink_ingest.tables import history as history_tables
from fink_ingest.tables.base import FILE, FILE_ROW, sort_indices

# Entries of one sorted run (~80 B an entry): the runs of a night grow with it. Runs of 1M
# entries took 10.1 + 6.8 s to write and merge on a 2M-alert night (40 runs, 41M entries)
# against 14.0 + 4.8 s for 2M (20 runs), with 200 MB less at the peak (780 MB against 980).
RUN_ENTRIES = 1_000_000
# Runs merged at once: more are first merged in groups of this many into longer runs (one
# more pass over their entries), so that the merge holds at most ``MERGE_RUNS`` record
# batches of ``SPILL_BATCH`` entries whatever the night (64M entries: ~3M ZTF alerts).
MERGE_RUNS = 64
# Runs' buffers topped up in the merge below half a batch (``merge.merged_batches``'s ``top_up``):
# a merge of many runs in rounds of about a batch, not of one buffer.
MERGE_TOP_UP = 0.5
# Entries a history builder is given at a time (~10,000 alerts' worth, as from staged batches).
BATCH_ENTRIES = 200_000
# Runs are Arrow IPC files of record batches of this many entries, LZ4-compressed (on a
# 400k-alert night's 2M-entry run: written in 0.12 s and read in 0.11 s, 33 MB, where
# parquet took 0.47 s and 0.73 s for 26 MB; uncompressed IPC took 144 MB). The merge holds one
# batch of each run: 20,000 entries (~1.5 MB) merged 40 runs of a 2M-alert night in 7.3 s,
# 50,000 in 6.9 s and 10,000 in 7.8 s.
SPILL_BATCH = 20_000
SPILL_CODEC = "lz4"
# Threads reading the datalake files.
THREADS = 2
# History field types the pass reads as Spark stages them (Spark type name -> Arrow type):
# plain values, unchanged by ``tables.base.cell_value``.
ARROW_TYPES = {"double": pa.float64(), "float": pa.float32(), "bigint": pa.int64(), "int": pa.int32(),
               "smallint": pa.int16(), "tinyint": pa.int8(), "boolean": pa.bool_(), "string": pa.string()}


def local_path(uri):
    """Local path of a datalake file URI (``file:`` or a plain path), None for another scheme."""
    parsed = urlparse(str(uri))
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path) if parsed.scheme else str(uri)
    return None


def usable(uris, entry_types):
    """True if the pass can read this history: every file local, every field a plain value.

    Parameters
    ----------
    uris : iterable of str
        The datalake files to be read.
    entry_types : dict of str to str
        ``family:field`` -> Spark type name (``stage.history_types``); empty: no history.
    """
    return bool(entry_types) and all(t in ARROW_TYPES for t in entry_types.values()) and \
        all(local_path(u) is not None for u in uris)


@dataclasses.dataclass(frozen=True)
class HistorySource:
    """Where a night's history is read from and spilled to (pickled to writer processes).

    spill : str
        A local directory for the sorted runs (created, then removed, by ``entry_batches``).
    entry_types : dict of str to str
        ``family:field`` -> Spark type name of each history field (``stage.history_types``).
    """

    spill: str
    entry_types: dict


def staged_rows(staged_files):
    """Datalake rows staged, per file: dict of local path to sorted, unique int64 rows."""
    rows = {}
    for path in staged_files:  # one staged file at a time, its file names as a dictionary
        table = pq.read_table(path, columns=[FILE, FILE_ROW], read_dictionary=[FILE])
        for uri, chunk in _by_file(table):
            rows.setdefault(uri, []).append(chunk)
    out = {}
    for uri, chunks in rows.items():
        local = local_path(uri)
        if local is None:
            raise SchemaError(f"history: staged file {uri!r} is not a local file")
        out[local] = np.unique(np.concatenate(chunks))
    return out


def _by_file(table):
    """(uri, int64 rows) of each datalake file named in a staged table (``FILE`` read as a
    dictionary or as strings)."""
    files = table.column(FILE)
    if not pa.types.is_dictionary(files.type):
        files = files.dictionary_encode()
    encoded = files.unify_dictionaries().combine_chunks() if files.num_chunks > 1 else files.chunk(0)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    rows = table.column(FILE_ROW).combine_chunks().to_numpy(zero_copy_only=False).astype(np.int64)
    for code, uri in enumerate(encoded.dictionary.to_pylist()):
        picked = rows[codes == code]
        if len(picked):
            yield uri, picked


def _entries_of(path, rows, survey, builders, fields):
    """Kept entries of the given rows of one datalake file (unsorted pyarrow.Table:
    ``objectId`` and one ``family:field`` column per field, typed as staged)."""
    reader = pq.ParquetFile(path)
    schema = reader.schema_arrow
    if schema.get_field_index(survey.history_column) < 0:  # a layout without history: no entries
        return None
    element = schema.field(survey.history_column).type.value_type
    present = [f for f in fields if element.get_field_index(f) >= 0]
    columns = [survey.object_id] + [f"{survey.history_column}.list.element.{f}" for f in present]
    parts, start = [], 0
    for group in range(reader.metadata.num_row_groups):
        n = reader.metadata.row_group(group).num_rows
        lo, hi = np.searchsorted(rows, [start, start + n])
        if hi > lo:
            table = reader.read_row_group(group, columns=columns, use_threads=False)
            wanted = rows[lo:hi] - start
            if len(wanted) < n:
                table = table.take(pa.array(wanted))
            parts.append(_kept(table, survey, builders, fields, present))
        start += n
    if not parts:
        return None
    return pa.concat_tables(parts)


def _kept(table, survey, builders, fields, present):
    fam = survey.original_family
    lists = table.column(survey.history_column).combine_chunks()
    flat, parent = pc.list_flatten(lists), pc.list_parent_indices(lists)
    cells = {}
    for f in fields:
        kind = ARROW_TYPES[fields[f]]
        cells[f"{fam}:{f}"] = pc.cast(pc.struct_field(flat, f), kind) if f in present else pa.nulls(len(flat), kind)
    entries = pa.table({history_tables.OBJECT: pc.take(table.column(survey.object_id), parent), **cells})
    jd = pc.cast(entries.column(f"{fam}:jd"), pa.float64())
    timed = pc.and_(pc.is_finite(jd), pc.and_(pc.greater_equal(jd, survey.time_min), pc.less(jd, survey.time_max)))
    kept = pc.fill_null(timed, False)
    wanted = None
    for b in builders:
        k = pc.fill_null(b.keep(entries, survey), False)
        wanted = k if wanted is None else pc.or_(wanted, k)
    return entries.filter(pc.and_(kept, wanted))


def _order(survey, names):
    fam = survey.original_family
    return [history_tables.OBJECT, f"{fam}:jd"] + [n for n in (f"{fam}:{survey.history_detection_id}",) if n in names]


def sorted_runs(source, staged_files, survey, builders):
    """Write the night's kept entries into sorted runs under ``source.spill``.

    Returns
    -------
    (list of str, int, set of str)
        The runs (Arrow IPC files, LZ4, each sorted by objectId, jd and the detection id,
        nulls first), the entries they hold, and the columns holding a value.
    """
    fam = survey.original_family
    fields = {n.split(":", 1)[1]: t for n, t in source.entry_types.items() if n.startswith(f"{fam}:")}
    spill = Path(source.spill)
    shutil.rmtree(spill, ignore_errors=True)
    spill.mkdir(parents=True)
    files = sorted(staged_rows(staged_files).items())
    runs, total, present = [], 0, set()

    def spill_run(parts):
        table = pa.concat_tables(parts)
        table = table.take(sort_indices(table.select(_order(survey, table.column_names)).combine_chunks(),
                                        _order(survey, table.column_names)))
        path = spill / f"run-{len(runs):05d}.arrow"
        runs.append(str(path))  # names taken in this (one) thread, in order
        with ipc.new_file(str(path), table.schema, options=ipc.IpcWriteOptions(compression=SPILL_CODEC)) as out:
            out.write_table(table, max_chunksize=SPILL_BATCH)
        present.update(n for n in table.column_names if table.column(n).null_count < table.num_rows)
        return table.num_rows

    def add(part):
        nonlocal buffered, size, total
        if part is not None and part.num_rows:
            buffered.append(part)
            size += part.num_rows
        if size >= RUN_ENTRIES:
            total += spill_run(buffered)
            buffered, size = [], 0

    buffered, size = [], 0
    with ThreadPoolExecutor(max_workers=THREADS) as pool:  # files read THREADS at a time, in order
        pending = collections.deque()
        for path, rows in files:
            pending.append(pool.submit(_entries_of, path, rows, survey, builders, fields))
            if len(pending) > THREADS:
                add(pending.popleft().result())
        while pending:
            add(pending.popleft().result())
    if buffered:
        total += spill_run(buffered)
    return runs, total, present


class _Run:
    """A spilled run, read a slice at a time as ``merge.merged_batches`` reads staged files
    (``iter_batches`` of ``pyarrow.parquet.ParquetFile``): one record batch (``SPILL_BATCH``
    entries) read and decompressed at a time. Read from the file, not memory-mapped: a mapped
    run's pages count in the process's resident memory once read (a 2M-alert night's 20 runs
    raised the writer's peak by 110 MB, none with plain reads, in the same time)."""

    def __init__(self, path):
        self.path = path

    def iter_batches(self, batch_size, columns=None):
        with pa.OSFile(self.path) as source:
            reader = ipc.open_file(source)
            for i in range(reader.num_record_batches):
                batch = reader.get_batch(i)
                if columns is not None:
                    batch = batch.select(columns)
                for start in range(0, batch.num_rows, batch_size):
                    yield batch.slice(start, batch_size)


def _fewer_runs(runs, order, batch_rows):
    """At most ``MERGE_RUNS`` runs: groups of ``MERGE_RUNS`` runs merged into one run each (in
    the runs' directory, the merged runs removed), level after level."""
    level = 0
    while len(runs) > MERGE_RUNS:
        level += 1
        longer = []
        for g in range(0, len(runs), MERGE_RUNS):
            group = runs[g:g + MERGE_RUNS]
            if len(group) == 1:
                longer.extend(group)
                continue
            path = Path(group[0]).parent / f"merged-{level}-{g // MERGE_RUNS:05d}.arrow"
            with pa.OSFile(group[0]) as source:
                schema = ipc.open_file(source).schema
            with ipc.new_file(str(path), schema, options=ipc.IpcWriteOptions(compression=SPILL_CODEC)) as out:
                for table in merged_batches(group, order, batch_rows, merge_files=len(group), open_file=_Run,
                                            top_up=MERGE_TOP_UP):
                    out.write_table(table.cast(schema), max_chunksize=SPILL_BATCH)
            for run in group:
                Path(run).unlink()
            longer.append(str(path))
        runs = longer
    return runs


def entry_batches(runs, survey, batch_rows=BATCH_ENTRIES):
    """Batches of entries from the sorted runs in one order (``_Pieces``, as ``drive``
    takes them): at most ``MERGE_RUNS`` runs merged at once (``_fewer_runs`` first)."""
    if not runs:
        return
    with pa.OSFile(runs[0]) as source:
        order = _order(survey, ipc.open_file(source).schema.names)
    runs = _fewer_runs(list(runs), order, batch_rows)
    yield from put_batches(merged_batches(runs, order, batch_rows, lazy=True, merge_files=len(runs),
                                          open_file=_Run, top_up=MERGE_TOP_UP), batch_rows)
