"""Putting staged rows into a store from the driver, and what every writer shares.

The embedded store is written by the driver (``drive``): a thread reads and merges the staged
files (``merge``), worker threads derive each table's rows from a batch and encode, pack and
compress them, and one writer thread writes every table's, in order (the tables are created or
checked before a night is read: ``checks.open_tables``). Each table's part (schema row,
encoding, counts) is a ``table_writer.TableWriter``. The executors' writer (HBase) is in
``executors``.
"""
from __future__ import annotations

import collections
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from fink_ingest.push import history_pass, parallel
from fink_ingest.push.merge import (NightCounts, merged_batches, needed_columns, present_columns, put_batches,
                                    read_ahead, staged_file, _Pieces)
from fink_ingest.push.stage import HISTORY
from fink_ingest.tables import history as history_tables
from fink_ingest.push.table_writer import writers
from fink_ingest.tables.base import alert_key_inputs

log = logging.getLogger(__name__)
# Threads preparing batches for the one writer thread (the store takes one writer).
PREPARE_THREADS = 2
# A progress line in the log every this many rows.
PROGRESS_ROWS = 100_000
# Prepared batches per table the writer thread may have waiting, on average (bounds memory).
WRITES_IN_FLIGHT = 2
def drive(writers, files, config, night, sort_by=None, progress=None, counts=None, columns=None, entries=None):
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
    are written in sorted runs (``TableWriter.flush``). ``progress(rows)`` is called as
    batches are written. ``columns``: the staged columns to read (all if None). ``entries``:
    instead of staged files, batches of history entries in order (``history_pass``), for
    history writers only.

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
        if entries is not None:
            yield from entries
            return
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
        if entries is not None:  # already entries, one per row, in order
            flat = batch
        else:
            flat = history_tables.entries(batch, HISTORY, survey) \
                if from_history and HISTORY in batch.schema.names else None
        out = []
        for w in writers:
            source = flat if w.builder.source == "history" else batch
            rows = w.builder.rows(source, survey) if source is not None else None
            if rows is not None:
                out.append((w, w.prepare(rows)))
        return out, (0 if entries is not None else batch.num_rows), flat.num_rows if flat is not None else 0

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


def write_staged(store, builders, files, staged_types, config, night, sort_by=None, progress=None,
                 history_types=None, counts=None, processes=None, history_source=None):
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
    history_source : history_pass.HistorySource, optional
        The history tables' entries read from the datalake files the staged ``FILE`` and
        ``FILE_ROW`` name (``history_pass``), not from a staged ``HISTORY`` column.

    Returns
    -------
    list of table_writer.TableWriter (or parallel.WriterResult)
        With ``expected``, ``written``, ``skipped`` (by reason) and ``seconds`` per table.

    Raises
    ------
    SchemaError
        If a column's type cannot be reconciled with a table's schema row.
    """
    if processes != 1:
        def here(share):
                return write_staged(store, share, files, staged_types, config, night, sort_by, progress, history_types,
                                counts, processes=1, history_source=history_source)

        return parallel.write_shared(store, builders, files, staged_types, config, night, here, sort_by,
                                     history_types, counts, history_source)
    present = present_columns(files)
    from_alerts = [b for b in builders if b.source != "history"]
    from_history = [b for b in builders if b.source == "history"]
    table_writers = writers(store, from_alerts, config, staged_types, present)
    history_writers = []
    if from_history and history_source is not None:  # read from the datalake (``history_pass``)
        survey = config.survey
        runs, _, present_fields = history_pass.sorted_runs(history_source, files, survey, from_history)
        try:
            fields = present_fields - {history_tables.OBJECT}
            history_writers = writers(store, from_history, config, history_types or {}, fields)
            drive(history_writers, None, config, night, counts=counts,
                  entries=history_pass.entry_batches(runs, survey))
        finally:
            shutil.rmtree(history_source.spill, ignore_errors=True)
    elif from_history:
        fields = {p.rsplit(".", 1)[-1] for p in present if p.startswith(f"{HISTORY}.")}
        family = config.survey.original_family
        table_writers += writers(store, from_history, config, history_types or {},
                                 {f"{family}:{f}" for f in fields})
    # the staged alerts (the key order counts the night's objects and copies even without
    # an alert table)
    columns = needed_columns([w.builder for w in table_writers], files, config.survey, sort_by, HISTORY)
    drive(table_writers, files, config, night, sort_by=sort_by, progress=progress, counts=counts, columns=columns)
    return table_writers + history_writers

