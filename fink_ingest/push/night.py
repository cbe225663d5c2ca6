"""One night from the datalake into the store, end to end; rebuilding and upgrading tables.

Steps of ``push_night``:

1. Create or check every table to be written (``write.open_tables``): a table written with
   another key layout stops the push here, before the night is read.
2. List the night's files and check their footers (``datalake.list_night``); a bad file is
   set aside and reported. A file that fails inside Spark is set aside too, and the night is
   pushed again without it (writes are idempotent).
3. Count and validate in one Spark job; rows with a ``reason`` go to ``<run_dir>/rejects/``;
   duplicate alert ids are dropped (the shuffle runs only on nights that have some).
4. Stage the night once (``stage``), then write every table from the same batches
   (``write``); history entries are staged while the driver writes the alert tables.
5. Reconcile counts (``reconcile``): alerts read = main rows written + duplicates + rows
   rejected, and for every table rows expected = rows written + rows not placed, by reason.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pyspark.sql import functions as F

from fink_ingest import datalake, journal, paths, schemarow
from fink_ingest.errors import FinkIngestError, InputError, LayoutError, StoreError
from fink_ingest.push.stage import stage_alerts, stage_history
from fink_ingest.report import FILE_ONLY
from fink_ingest.push.write import LOSSES, open_tables, write_staged
from fink_ingest.tables import BUILDERS

log = logging.getLogger(__name__)


def push_night(spark, config, store, night, tables=None, run_dir=None, rebuilding=False):
    """Push one night into the store.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    config : fink_ingest.config.Config
    store : fink_ingest.store.base.Store
    night : datetime.date
    tables : list of str, optional
        Builder names (keys of ``tables.BUILDERS``); default all.
    run_dir : str or Path, optional
        Where rejects, staging and the summary go; default
        ``<work_dir>/runs/<YYYYMMDD>-<unix time>``.
    rebuilding : bool
        The push is part of a whole-table rebuild or upgrade (tables marked pending are
        written, not refused).

    Returns
    -------
    dict
        The run summary: ``night``, ``files_read``, ``files_rejected`` (list of
        ``{file, reason}``), ``alerts_read``, ``rows_rejected``, ``duplicates``,
        ``distinct_alerts``; per table ``rows_expected``, ``rows_written`` and
        ``rows_skipped`` (rows not placed, by reason; for history tables, stored rows that
        gain nothing are counted as unchanged); ``history`` (entries in the alerts, rejected
        for want of a time, ``staged``: those a history table keeps, repeats included);
        ``seconds`` (total and per table); ``problems`` (what makes the night incomplete,
        each with what to do) and ``ok`` (no problem).

    Raises
    ------
    InputError
        If the night's partition does not exist.
    LayoutError
        If a table was written with another key layout (nothing is read or written).
    """
    t0 = time.time()
    names = list(tables or BUILDERS)
    open_tables(store, [BUILDERS[n] for n in names], config, rebuilding=rebuilding)
    run_dir = Path(run_dir or Path(config.work_dir) / "runs" / f"{paths.night_tag(night)}-{int(t0)}-{os.getpid()}")
    directory = paths.night_dir(config.datalake, night)
    files = datalake.list_night(spark, directory)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = {"night": f"{night:%Y-%m-%d}", "partition": directory, "run_dir": str(run_dir),
               "files_read": len(files.good), "files_rejected": files.rejected, "alerts_read": 0,
               "rows_rejected": 0, "duplicates": 0, "distinct_alerts": 0, "rows_expected": {},
               "rows_written": {}, "rows_skipped": {}, "schema": {}, "seconds": {},
               "main_table": BUILDERS["main"].table_name(config.table_prefix)}
    table_names = [BUILDERS[n].table_name(config.table_prefix) for n in names]
    try:
        with store.writing(table_names, f"bin/fink_push, night {night:%Y-%m-%d}"):
            _check_space(store, config, files, run_dir, night)
            for name in names:
                BUILDERS[name].reset(files.row_groups)
            _read_and_push(spark, config, store, files, names, run_dir, summary, night)
    except BaseException as exc:  # the summary says what happened, whatever happened
        summary["seconds"]["total"] = round(time.time() - t0, 2)
        summary["problems"] = [f"failed: {type(exc).__name__}: {datalake.first_line(exc)}"]
        summary["ok"] = False
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        raise
    finally:
        shutil.rmtree(run_dir / "staging", ignore_errors=True)
    summary["seconds"]["total"] = round(time.time() - t0, 2)
    summary["problems"] = reconcile(summary, files.footer_rows)
    summary["ok"] = not summary["problems"]
    for problem in summary["problems"]:
        log.error("night %s: %s", summary["night"], problem, extra=FILE_ONLY)  # the summary prints them
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _read_and_push(spark, config, store, files, names, run_dir, summary, night):
    """Read the night's good files and push them; a file Spark cannot read is set aside and
    the night pushed again without it (writes are idempotent)."""
    while True:
        alerts = datalake.read_alerts(spark, files)
        if alerts is None:
            return
        hidden = files.hidden_columns(alerts.columns)
        if hidden:
            summary["columns_not_read"] = hidden
        try:
            _push_alerts(config, store, alerts, names, run_dir, summary, night)
            return
        except StoreError as exc:  # the store gave up (retries spent): say which night
            raise StoreError(f"night {night:%Y-%m-%d}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - only a failure naming a night file is handled
            bad = datalake.failed_file(exc, files)
            if bad is None:
                raise
            reason = f"unreadable by Spark: {datalake.first_line(exc)}"
            log.error("%s: %s; set aside, pushing the night again without it", bad, reason)
            files.reject(bad, reason)
            summary["files_read"] = len(files.good)
            summary["files_rejected"] = files.rejected
            for name in names:
                BUILDERS[name].reset(files.row_groups)


# Free space a night needs, per byte of its input columns (compressed, stamps left out, as
# the footers give them): the store grew by 1.15 of them on the real night 2024-01-15 (every
# table) and by 1.46 on a scaled 1M-alert night (alert tables); the staged files, written
# uncompressed and removed after the night, take about 2. Both with a margin.
STORE_BYTES_PER_INPUT_BYTE = 2.0
STAGING_BYTES_PER_INPUT_BYTE = 3.0


def _check_space(store, config, files, run_dir, night):
    """Refuse a night the free disk cannot hold (store and staging), before reading it.

    Raises
    ------
    StoreError
        Naming the night, the directories, the space needed and free, and what to do.
    """
    input_bytes = files.input_bytes(leave_out=set(config.survey.cutout_columns))
    store_dir = store.local_directory()
    if input_bytes is None or store_dir is None:
        return  # a remote store (HBase) or footers pyarrow cannot read: nothing to estimate
    needs = {Path(store_dir): input_bytes * STORE_BYTES_PER_INPUT_BYTE,
             Path(run_dir): input_bytes * STAGING_BYTES_PER_INPUT_BYTE}
    by_device = {}
    for path, need in needs.items():
        device = os.stat(path).st_dev
        by_device.setdefault(device, [path, 0.0])[1] += need
    for path, need in by_device.values():
        free = shutil.disk_usage(path).free
        if free < need:
            raise StoreError(
                f"night {night:%Y-%m-%d}: about {_size(need)} must be free on the disk of {path} (store "
                f"{store_dir}, staging {run_dir}), estimated from {_size(input_bytes)} of input; "
                f"{_size(free)} free: free space, or give --store/--work-dir on another disk")


def _size(n):
    """Bytes as text an operator reads at a glance (``3.4 MB``, ``1.20 GB``)."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _push_alerts(config, store, alerts, names, run_dir, summary, night):
    survey = config.survey
    checked = datalake.with_reason(alerts, survey)
    reason = F.col(datalake.REASON)
    valid_id = F.when(reason.isNull(), datalake.column_of(survey.alert_id))
    valid_oid = F.when(reason.isNull(), datalake.column_of(survey.object_id))
    t_count = time.time()
    aggregates = [F.count(F.lit(1)).alias("read"), F.count(reason).alias("rejected"),
                  F.count(valid_id).alias("valid"), F.countDistinct(valid_id).alias("distinct"),
                  F.countDistinct(valid_oid).alias("objects")]
    history = survey.history_column
    if any(BUILDERS[n].source == "history" for n in names) and history in checked.schema.names:
        # history entries counted here, from the jd leaf alone (nested-column pruning)
        times = F.col(f"`{history}`.jd")
        aggregates += [F.sum(F.when(reason.isNull(), F.coalesce(F.size(times), F.lit(0)))).alias("entries"),
                       F.sum(F.when(reason.isNull(), F.coalesce(
                           F.size(F.filter(times, lambda t: datalake.bad_time(t, survey))), F.lit(0)))).alias("no_time")]
    counts = checked.agg(*aggregates).first().asDict()
    summary["seconds"]["count"] = round(time.time() - t_count, 2)
    log.info("counted %d alerts in %.1f s", counts["read"], time.time() - t_count)
    summary.update(alerts_read=counts["read"], rows_rejected=counts["rejected"],
                   duplicates=counts["valid"] - counts["distinct"], distinct_alerts=counts["distinct"])
    if counts["rejected"]:
        rejects = run_dir / "rejects"
        checked.filter(reason.isNotNull()).write.mode("overwrite").parquet(str(rejects))
        summary["rejects_file"] = str(rejects)
        log.warning("%d rows set aside with a reason in %s", counts["rejected"], rejects)
    valid = checked.filter(reason.isNull()).drop(datalake.REASON)
    if summary["duplicates"]:  # the shuffle of whole rows is paid only by nights that need it
        valid = (valid.withColumn("__alert_id", datalake.column_of(survey.alert_id))
                 .dropDuplicates(["__alert_id"]).drop("__alert_id"))
    builders = [BUILDERS[n] for n in names]
    if "statistics" in names:
        BUILDERS["statistics"].objects = counts["objects"]
    alert_builders = [b for b in builders if b.source == "alerts"]
    history_builders = [b for b in builders if b.source == "history"]
    history_staged = None
    # the driver merges the staged files into one key order, at most MERGE_FILES at a time:
    # staged in at most that many files, every night is written in one order, whatever its size
    from fink_ingest.push import merge

    max_files = None if store.executor_writes else merge.MERGE_FILES
    with ThreadPoolExecutor(max_workers=1) as spark_thread:
        if alert_builders:
            staged_dir, staged_types, sort_by = stage_alerts(config, valid, alert_builders, run_dir, summary,
                                                             max_files)
            if history_builders:  # Spark stages the history while the driver writes the alerts
                history_staged = spark_thread.submit(stage_history, config, valid, run_dir, summary, counts,
                                                     history_builders, max_files)
            _record(summary, write_staged(store, alert_builders, staged_dir, staged_types, config, night,
                                          valid.sparkSession, sort_by))
            shutil.rmtree(staged_dir, ignore_errors=True)
        elif history_builders:
            history_staged = spark_thread.submit(stage_history, config, valid, run_dir, summary, counts,
                                                 history_builders, max_files)
        if history_staged is not None:
            staged = history_staged.result()
            if staged is not None:
                staged_dir, types, sort_by = staged
                _record(summary, write_staged(store, history_builders, staged_dir, types, config, night,
                                              valid.sparkSession, sort_by))
                shutil.rmtree(staged_dir, ignore_errors=True)


def _record(summary, writers):
    for w in writers:
        summary["rows_expected"][w.name] = w.expected
        summary["rows_written"][w.name] = w.written
        summary["rows_skipped"][w.name] = dict(w.skipped)
        summary["seconds"][w.name] = round(w.seconds, 2)
        notes = {k: v for k, v in w.notes.items() if v}
        if notes:
            summary["schema"][w.name] = notes
        if w.store_seconds:
            summary.setdefault("store_seconds", {})[w.name] = round(w.store_seconds, 2)
        log.info("%s: %d of %d rows written (%.1f s encode + write)", w.name, w.written, w.expected, w.seconds)


def reconcile(summary, footer_rows=None):
    """What makes a night incomplete, each with what to do (list of str; empty: complete).

    Checks: no file or row set aside; rows read = rows in the file footers; main rows
    written = distinct alerts; for every table, rows expected = rows written + rows not
    placed (any reason), and no row lost (``write.LOSSES``); every history entry has a time.

    Parameters
    ----------
    summary : dict
        A night's summary (``push_night``).
    footer_rows : int, optional
        Rows the good files' footers hold, if known.
    """
    problems = []
    if summary["files_rejected"]:
        problems.append(f"{len(summary['files_rejected'])} file(s) set aside "
                        f"({', '.join(f['file'].rsplit('/', 1)[-1] for f in summary['files_rejected'])}): "
                        "repair or replace them in the datalake, then push the night again")
    if summary["rows_rejected"]:
        problems.append(f"{summary['rows_rejected']} row(s) rejected, each with its reason in "
                        f"{summary.get('rejects_file')}: correct them upstream and push the night again")
    if footer_rows is not None and summary["alerts_read"] != footer_rows:
        problems.append(f"read {summary['alerts_read']} rows but the file footers hold {footer_rows}: "
                        "rows were lost while reading; push the night again")
    main = summary["main_table"]
    if main in summary["rows_written"] and summary["rows_written"][main] != summary["distinct_alerts"]:
        problems.append(f"{main}: {summary['rows_written'][main]} rows written for "
                        f"{summary['distinct_alerts']} distinct alerts")
    for table, expected in summary["rows_expected"].items():
        written = summary["rows_written"].get(table, 0)
        skipped = summary["rows_skipped"].get(table, {})
        unaccounted = expected - written - sum(skipped.values())
        if unaccounted:
            problems.append(f"{table}: {expected} rows expected, {written} written and "
                            f"{sum(skipped.values())} not placed: {unaccounted} unaccounted for (a defect: "
                            "report it with the run's push.log)")
        for reason in LOSSES:
            if skipped.get(reason):
                problems.append(f"{table}: {skipped[reason]} row(s) {reason} (a defect: report it with the "
                                "run's push.log)")
    for uri, columns in summary.get("columns_not_read", {}).items():
        problems.append(f"{uri.rsplit('/', 1)[-1]}: columns {columns} are in the file but Spark did not read them "
                        "(its Spark schema metadata, org.apache.spark.sql.parquet.row.metadata, omits them): "
                        "rewrite the file without that metadata, then push the night again")
    for table, notes in summary.get("schema", {}).items():
        for column, why in notes.get("set_aside", {}).items():
            problems.append(f"{table}: column {column} set aside: {why}")
    history = summary.get("history", {})
    if history.get("rejected"):
        problems.append(f"{history['rejected']} history entries without a valid time set aside in "
                        f"{history.get('rejects_file')}: correct them upstream and push the night again")
    return problems


def rebuild(spark, config, store, table_kind, nights, run_dir, all_nights=False):
    """Rebuild one table for some nights, touching no other table.

    For each night, the table's rows of that night (``TableBuilder.night_keys``) are
    deleted, then the night is pushed for this table only. With ``all_nights`` the table is
    dropped and recreated first (what an operator does after changing its layout).

    Parameters
    ----------
    spark, config, store
        As ``push_night``.
    table_kind : str
        A key of ``BUILDERS``.
    nights : list of datetime.date
    run_dir : Path
    all_nights : bool

    Returns
    -------
    list of dict
        One summary per night, each with ``rows_deleted``.

    Raises
    ------
    LayoutError
        Without ``all_nights``, if the table was written with another key layout.
    """
    builder = BUILDERS[table_kind]
    name = builder.table_name(config.table_prefix)
    if all_nights:
        tables = _recreate(store, config, [table_kind], f"bin/fink_push --rebuild {table_kind} --all-nights")
        table = tables[table_kind]
    else:
        table = open_tables(store, [builder], config)[table_kind]
    summaries = []
    for night in nights:
        keys = builder.night_keys(table, night, config.survey)
        for key in keys:
            table.delete(key)
        summary = push_night(spark, config, store, night, [table_kind], Path(run_dir) / paths.night_tag(night),
                             rebuilding=all_nights)
        summary["rows_deleted"] = {name: len(keys)}
        summaries.append(summary)
    if all_nights:
        _complete(tables, config, store)
    return summaries


def _recreate(store, config, kinds, command):
    """Drop and recreate tables for a whole rebuild, recorded in the journal until
    ``_complete`` (a rebuild cut short leaves them refused, naming ``command``, never
    half-filled and taken as whole). Returns kind -> table."""
    journal.begin(store, config, kinds, command)
    for kind in kinds:
        name = BUILDERS[kind].table_name(config.table_prefix)
        if name in store.tables():
            store.drop_table(name)
            log.info("%s dropped, to be rebuilt from every night (%s)", name, command)
    return open_tables(store, [BUILDERS[k] for k in kinds], config, rebuilding=True)


def _complete(tables, config, store):
    """Remove the journal rows of ``_recreate``: the tables are whole again."""
    journal.end(store, config, list(tables))


def stale_tables(store, config, kinds=None):
    """Tables of the store written with another key layout than this version's (among
    ``kinds``, builder names; default every table).

    Returns
    -------
    dict of str to str
        Builder kind -> the ``LayoutError`` message naming the table and the upgrade.
    """
    survey, present = config.survey, set(store.tables())
    pending = journal.pending(store, config)
    out = {}
    for kind in BUILDERS if kinds is None else kinds:
        b = BUILDERS[kind]
        name = b.table_name(config.table_prefix)
        if kind in pending:
            out[kind] = (f"table {name}: being rebuilt whole, or its rebuild was cut short; run "
                         f"`{pending[kind]}` (again) to complete it")
            continue
        if name not in present:
            continue
        try:
            schemarow.check_layout(store.table(name), survey.schema_version, b.families_for(survey)[0],
                                   b.key_layout(survey), kind)
        except LayoutError as exc:
            out[kind] = str(exc)
    return out


def upgrade(spark, config, store, run_dir, nights=None):
    """Bring every table written with another key layout to this version's, from the datalake.

    The stale tables are dropped, then every night of the datalake is pushed for them (one
    pass per night for all of them); tables already on this layout are not touched. Before
    anything is dropped, the nights the store has statistics for must all be in the
    datalake: an upgrade never drops alerts it cannot write again.

    Parameters
    ----------
    spark, config, store
        As ``push_night``.
    run_dir : Path
    nights : list of datetime.date, optional
        Nights to push; default every night present in the datalake.

    Returns
    -------
    (list of str, list of dict)
        Kinds of the tables upgraded, and one summary per night.

    Raises
    ------
    FinkIngestError
        If the store holds nights whose partitions are missing from the datalake; the
        message names them (nothing is dropped).
    """
    stale = stale_tables(store, config)
    if not stale:
        return [], []
    if nights is None:
        nights = datalake.list_nights(spark, config.datalake)
    stats = BUILDERS["statistics"]
    stats_name = stats.table_name(config.table_prefix)
    known = stats.nights(store.table(stats_name)) if stats_name in store.tables() else []
    missing = sorted(set(known) - set(nights))
    if missing:
        listed = ", ".join(f"{n:%Y-%m-%d}" for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise FinkIngestError(
            f"upgrade refused: the store holds {len(missing)} night(s) missing from the datalake "
            f"{config.datalake} ({listed}); an upgrade rebuilds tables from the datalake and would lose them. "
            "Restore those partitions, or rebuild table by table with --rebuild TABLE --all-nights")
    kinds = [k for k in BUILDERS if k in stale]
    tables = _recreate(store, config, kinds, "bin/fink_push --upgrade")
    summaries = []
    for night in nights:
        try:
            summaries.append(push_night(spark, config, store, night, kinds, Path(run_dir) / paths.night_tag(night),
                                        rebuilding=True))
        except InputError as exc:  # a partition without a readable file: nothing of it was stored
            log.warning("%s: skipped (%s)", night, exc)
    _complete(tables, config, store)
    return kinds, summaries
