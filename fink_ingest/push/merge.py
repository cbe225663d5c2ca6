"""Reading the staged files back: one global key order, in batches of bounded size.

Spark writes each staged file sorted by the row key's first columns; the driver's writer
merges them (``merged_batches``, a k-way merge) so that every table is written in one key
order (the embedded store's B-tree then only appends), joins merge rounds into put batches
of a fixed size (``put_batches``), and reads ahead in a thread of its own (``read_ahead``).
"""
from __future__ import annotations

import queue
import threading

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fink_ingest.tables.base import alert_key_inputs, sort_indices

# Read buffer of each column of a staged file being read (``staged_file``).
STAGE_READ_BUFFER = 64 * 1024
# Staged files merged into one key order at a time (``merged_batches``).
# The staging writes at most this many files when the driver writes (``stage.at_most``), so that
# a night of any size is merged in one pass: on 1M and 2M-alert nights 8 files staged and
# wrote faster than 16 (a merge round gives about one file's share of rows) in less memory.
MERGE_FILES = 8


def present_columns(files):
    """Columns of staged parquet files with at least one non-null value (from footers; a
    nested leaf by its path, e.g. ``__history.list.element.jd``)."""
    present = set()
    for path in files:
        meta = pq.ParquetFile(path).metadata
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for c in range(group.num_columns):
                col = group.column(c)
                stats = col.statistics
                # values of the column chunk, not rows: a nested leaf holds several a row
                if stats is None or not stats.has_null_count or stats.null_count < col.num_values:
                    present.add(col.path_in_schema)
    return present


def staged_rows(files):
    """Rows of staged parquet files, from their footers (int)."""
    return sum(pq.ParquetFile(path).metadata.num_rows for path in files)


def staged_file(path):
    """A staged file opened for streaming: column chunks read through a small buffer, not
    whole (pyarrow pre-buffers whole row groups by default: with ``MERGE_FILES`` files merged
    at once, that took memory growing with the rows per staged file, hence with the night)."""
    return pq.ParquetFile(path, pre_buffer=False, buffer_size=STAGE_READ_BUFFER)


def merged_batches(files, sort_by, batch_rows, columns=None, lazy=False, merge_files=MERGE_FILES,
                   open_file=None, top_up=0.0):
    """Rows of staged files, each sorted by ``sort_by``, in one global order (a k-way merge).

    Written in one key order, the store's B-tree appends instead of revisiting pages: on a
    400k-alert night the main table wrote in 7.8 s instead of 13.3 s, 12% smaller (eight
    sorted runs interleaved before). Files are merged ``MERGE_FILES`` at a time, each read
    in batches of ``batch_rows // MERGE_FILES`` rows, so memory does not grow with the night.

    Parameters
    ----------
    files : list of str
        Parquet files, each sorted by ``sort_by`` (ascending, nulls first as Spark sorts).
    sort_by : list of str
        Column names (the first ones of the row key).
    batch_rows : int
        Rows held per merge group, about.
    columns : list of str, optional
    lazy : bool
        Yield ``_Ordered`` (rows and their order, ``materialise()`` gives the table) so that
        a consumer copies the rows in its own threads.
    merge_files : int
        Files merged at a time (one order only if the files are at most this many).
    open_file : callable, optional
        ``open_file(path)`` -> an object with ``iter_batches(batch_size, columns)``
        (default ``staged_file``: parquet).
    top_up : float
        A file's buffer is read into again while it holds fewer than this share of its batch
        of rows (0: once empty). A round ends at the smallest of the buffers' last keys: with
        buffers read into once empty, a round gives about one buffer's rows, so a merge of k
        files takes k times the rounds of one (40 spilled runs of a 2M-alert night's history:
        8,281 rounds, 37 s; topped up at half a batch, 9.8 s). Topped up, rounds are larger
        and more rows are held: for the 8 staged files of a 400k-alert night, the driver's
        peak rose by 270 MB (1,460 to 1,735 MB) for the same write time, hence 0 there.

    Yields
    ------
    pyarrow.Table (or _Ordered)
        Consecutive slices of the merged order.
    """
    for g in range(0, len(files), merge_files):
        group = files[g:g + merge_files]
        per_file = max(1_000, batch_rows // len(group))
        low = max(1, int(per_file * top_up))
        readers = [(open_file or staged_file)(p).iter_batches(batch_size=per_file, columns=columns) for p in group]
        buffers = [None] * len(group)
        ended = [False] * len(group)

        def refill(i):
            while not ended[i] and (buffers[i] is None or buffers[i].num_rows < low):
                batch = next(readers[i], None)
                if batch is None:
                    ended[i] = True
                elif batch.num_rows:
                    more = pa.Table.from_batches([batch])
                    buffers[i] = more if buffers[i] is None else pa.concat_tables([buffers[i], more])
            if buffers[i] is not None and buffers[i].num_rows == 0:
                buffers[i] = None

        for i in range(len(group)):
            refill(i)
        while any(b is not None for b in buffers):
            live = [i for i, b in enumerate(buffers) if b is not None]
            if len(live) == 1:  # the last run: as it is
                yield buffers[live[0]]
                buffers[live[0]] = None
                refill(live[0])
                continue
            # every row up to the smallest of the buffers' last keys can go now
            lasts = [tuple(buffers[i].column(c)[-1].as_py() for c in sort_by) for i in live]
            first = min(range(len(live)), key=lambda j: _sort_key(lasts[j]))
            bound = lasts[first]
            pieces = []
            for j, i in enumerate(live):  # the buffer that sets the bound goes whole (progress)
                n = buffers[i].num_rows if j == first else _rows_up_to(buffers[i], sort_by, bound)
                if n:
                    pieces.append(buffers[i].slice(0, n))
                    buffers[i] = buffers[i].slice(n)
                    refill(i)
            if len(pieces) == 1:  # one file's sorted rows (files of disjoint key ranges): as they are
                yield pieces[0]
                continue
            merged = pa.concat_tables(pieces, promote_options="permissive")
            ordered = _Ordered(merged, sort_indices(merged.select(sort_by), sort_by))
            yield ordered if lazy else ordered.materialise()


class _Ordered:
    """Rows of a table in a given order, materialised slice by slice (``take`` copies every
    column: the push does it in its preparing threads, not while merging)."""

    def __init__(self, table, order):
        self.table, self.order = table, order
        self.num_rows = len(order)

    def slice(self, start, length):
        return _Ordered(self.table, self.order.slice(start, length))

    def materialise(self):
        return self.table.take(self.order)


class _Pieces:
    """Consecutive slices (``_Ordered``, or tables already in order) making one put batch,
    materialised as one table (its rows kept by ``keep``, a boolean array, if set)."""

    def __init__(self, parts):
        self.parts = parts
        self.num_rows = sum(p.num_rows for p in parts)
        self.keep = None

    def column(self, name):
        """One column of the batch, in order (pyarrow.Array), without materialising the rest."""
        chunks = [p.table.column(name).take(p.order) if isinstance(p, _Ordered) else p.column(name)
                  for p in self.parts]
        return pa.chunked_array([c for chunked in chunks for c in chunked.chunks]).combine_chunks()

    def materialise(self):
        tables = [p.materialise() if isinstance(p, _Ordered) else p for p in self.parts]
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
        return table if self.keep is None else table.filter(self.keep)


class NightCounts:
    """What a night's merged key order tells as it passes, batch after batch (``see``):
    distinct objects, and copies of an alert, dropped.

    The key order (object id, time, alert id) puts the copies of an alert (a file written
    twice into the datalake, an alert processed again) next to each other: a row whose alert
    id is the one of the row before it is a copy, left out of every table and counted in
    ``duplicates`` (Fink keeps one row per alert: ``candid`` is unique). Two rows of one alert
    id with different object ids or times are not copies and are both kept.
    """

    def __init__(self, object_column, alert_column):
        self.object_column, self.alert_column = object_column, alert_column
        self.objects = 0
        self.duplicates = 0
        self._last = None  # (object id, alert id) of the last row seen

    def see(self, pieces):
        """Count a ``_Pieces`` (the next put batch in key order) and set its ``keep`` mask if
        it holds copies."""
        n = pieces.num_rows
        if not n:
            return
        oid, aid = pieces.column(self.object_column), pieces.column(self.alert_column)
        before_oid, before_aid = self._last or (None, None)  # none before the first batch: a null
        new_object = _differs(pa.concat_arrays([pa.array([before_oid], oid.type), oid]))
        copy = _same(pa.concat_arrays([pa.array([before_aid], aid.type), aid]))
        self._last = (oid[n - 1].as_py(), aid[n - 1].as_py())
        self.objects += int(pc.sum(new_object).as_py() or 0)
        copies = int(pc.sum(copy).as_py() or 0)
        if copies:
            self.duplicates += copies
            pieces.keep = pc.invert(copy)
            pieces.num_rows = n - copies


def _differs(values):
    """Per row after the first: its value differs from the row before (nulls differ)."""
    return pc.fill_null(pc.not_equal(values.slice(1), values.slice(0, len(values) - 1)), True)


def _same(values):
    """Per row after the first: its value is the row before's (nulls never are)."""
    return pc.fill_null(pc.equal(values.slice(1), values.slice(0, len(values) - 1)), False)


def put_batches(ordered, put_rows):
    """``_Pieces`` of exactly ``put_rows`` rows (the last one shorter) from ``_Ordered``
    merge rounds of any size, in order: each put batch costs a transaction and a pass of
    every column, whatever its size, and a round of a many-file merge is a few thousand rows."""
    parts, count = [], 0
    for part in ordered:
        start = 0
        while start < part.num_rows:
            n = min(put_rows - count, part.num_rows - start)
            parts.append(part.slice(start, n))
            count += n
            start += n
            if count == put_rows:
                yield _Pieces(parts)
                parts, count = [], 0
    if parts:
        yield _Pieces(parts)


def _sort_key(values):
    return tuple((v is not None, v) for v in values)


def _rows_up_to(table, sort_by, bound):
    """Rows at the head of a sorted table whose sort columns are <= ``bound`` (a tuple): a
    binary search (a dozen rows read, where masks over the whole buffer took a fifth of a
    history write: 19 entries an alert are merged)."""
    columns = [table.column(c) for c in sort_by]
    target = _sort_key(bound)
    lo, hi = 0, table.num_rows
    while lo < hi:
        mid = (lo + hi) // 2
        if _sort_key(tuple(c[mid].as_py() for c in columns)) <= target:
            lo = mid + 1
        else:
            hi = mid
    return lo


def read_ahead(items, depth):
    """The items of an iterator, produced by a thread of their own at most ``depth`` ahead of
    the consumer; an exception raised while producing them is raised here."""
    slots = queue.Queue(maxsize=max(1, depth))
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put((item, None))
            slots.put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            slots.put((done, exc))

    thread = threading.Thread(target=produce, name="staged-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get(timeout=0.1)
            except queue.Empty:
                pass


def needed_columns(builders, files, survey, sort_by, history_column):
    """Staged columns the builders read (each one's ``stage``, the alert key's, the sort
    columns, ``history_column`` for history builders), in the staged files' order; None
    (every column) if there is no file."""
    if not files:
        return None
    names = list(dict.fromkeys(n for path in files for n in pq.ParquetFile(path).schema_arrow.names))
    available = dict.fromkeys(names)
    wanted = {n for b in builders if b.source != "history" for n in b.stage(available, survey)}
    wanted |= set(alert_key_inputs(survey)) | set(sort_by or ())
    if any(b.source == "history" for b in builders):
        wanted.add(history_column)
    return [n for n in names if n in wanted]
