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

import pyarrow.parquet as pq
from pyspark.sql import functions as F

from fink_ingest import datalake, paths, workdir
from fink_ingest.errors import InputError, StoreError
from fink_ingest.push import merge
from fink_ingest.push.checks import check_space, reconcile
from fink_ingest.push.stage import alert_frame, history_frame, profile, stage
from fink_ingest.push.write import drive, open_tables, write_from_executors, write_staged, writers
from fink_ingest.report import FILE_ONLY
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
    run = workdir.RunDir.of(run_dir) if run_dir is not None else workdir.run_dirs(
        config.work_dir, f"{paths.night_tag(night)}-{int(t0)}-{os.getpid()}")
    directory = paths.night_dir(config.datalake, night)
    files = datalake.list_night(spark, directory)
    run.local.mkdir(parents=True, exist_ok=True)
    summary = {"night": f"{night:%Y-%m-%d}", "partition": directory, "run_dir": str(run.local),
               "files_read": len(files.good), "files_rejected": files.rejected, "alerts_read": 0,
               "rows_rejected": 0, "duplicates": 0, "distinct_alerts": 0, "rows_expected": {},
               "rows_written": {}, "rows_skipped": {}, "schema": {}, "seconds": {},
               "main_table": BUILDERS["main"].table_name(config.table_prefix)}
    table_names = [BUILDERS[n].table_name(config.table_prefix) for n in names]
    try:
        with store.writing(table_names, f"bin/fink_push, night {night:%Y-%m-%d}"):
            check_space(store, config, files, run, night)
            for name in names:
                BUILDERS[name].reset(files.row_groups)
            _read_and_push(spark, config, store, files, names, run, summary, night)
    except BaseException as exc:  # the summary says what happened, whatever happened
        summary["seconds"]["total"] = round(time.time() - t0, 2)
        summary["problems"] = [f"failed: {type(exc).__name__}: {datalake.first_line(exc)}"]
        summary["ok"] = False
        (run.local / "summary.json").write_text(json.dumps(summary, indent=2))
        raise
    finally:  # staging goes whatever the outcome, through the file system it is on
        _remove_staging(spark, run)
    summary["seconds"]["total"] = round(time.time() - t0, 2)
    summary["problems"] = reconcile(summary, files.footer_rows)
    summary["ok"] = not summary["problems"]
    for problem in summary["problems"]:
        log.error("night %s: %s", summary["night"], problem, extra=FILE_ONLY)  # the summary prints them
    (run.local / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _remove_staging(spark, run):
    shutil.rmtree(run.local / "staging-copy", ignore_errors=True)
    try:
        workdir.delete(spark, run.spark("staging"))
    except Exception as exc:  # noqa: BLE001 - a cleanup failure must not hide the night's outcome
        log.warning("staging %s not removed: %s", run.spark("staging"), datalake.first_line(exc))


def _read_and_push(spark, config, store, files, names, run, summary, night):
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
            _push_alerts(config, store, alerts, names, run, summary, night)
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


def _push_alerts(config, store, alerts, names, run, summary, night):
    survey = config.survey
    spark = alerts.sparkSession
    checked = datalake.with_reason(alerts, survey)
    reason = F.col(datalake.REASON)
    valid_id = F.when(reason.isNull(), datalake.column_of(survey.alert_id))
    valid_oid = F.when(reason.isNull(), datalake.column_of(survey.object_id))
    builders = [BUILDERS[n] for n in names]
    alert_builders = [b for b in builders if b.source == "alerts"]
    history_builders = [b for b in builders if b.source == "history"]
    t_count = time.time()
    aggregates = [F.count(F.lit(1)).alias("read"), F.count(reason).alias("rejected"),
                  F.count(valid_id).alias("valid"), F.countDistinct(valid_id).alias("distinct"),
                  F.countDistinct(valid_oid).alias("objects")]
    history = survey.history_column
    if history_builders and history in checked.schema.names:
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
        summary["rejects_file"] = _set_aside(spark, checked.filter(reason.isNotNull()), run.spark("rejects"),
                                             counts["rejected"], "rows", run)
    valid = checked.filter(reason.isNull()).drop(datalake.REASON)
    if summary["duplicates"]:  # the shuffle of whole rows is paid only by nights that need it
        valid = (valid.withColumn("__alert_id", datalake.column_of(survey.alert_id))
                 .dropDuplicates(["__alert_id"]).drop("__alert_id"))
    if "statistics" in names:
        BUILDERS["statistics"].objects = counts["objects"]
    if history_builders:
        summary["history"] = {"entries": counts.get("entries") or 0, "rejected": counts.get("no_time") or 0}
    if store.executor_writes:
        _from_executors(config, store, valid, alert_builders, history_builders, run, summary, night)
    else:
        _from_driver(config, store, valid, alert_builders, history_builders, run, summary, night, counts)


def _set_aside(spark, rows, location, expected, what, run):
    """Write rows set aside (with their reason) where the run keeps them, and check the driver
    sees them all there (on a cluster, a work directory the nodes do not share would scatter
    them over the executors' disks). Returns the location."""
    rows.write.mode("overwrite").parquet(location)
    seen = spark.read.parquet(location).count()
    if seen != expected:
        raise InputError(_not_shared(run, f"{expected} rejected {what}", seen))
    log.warning("%d %s set aside with a reason in %s", expected, what, location)
    return location


def _not_shared(run, what, seen):
    return (f"the executors wrote {what} under the work directory ({run.shared}) but the driver sees {seen}: "
            "on a cluster the work directory must be one every node shares (hdfs://..., s3a://..., or a mount "
            "common to all nodes): give --work-dir such a URI; nothing was written for this night")


def _staged_files(spark, run, name, expected):
    """Local files of what Spark staged as ``name`` (copied from the work directory's file
    system when it is not local), checked to hold the ``expected`` rows before anything is
    written: a silent empty night is impossible.

    Raises
    ------
    InputError
        If the driver sees other than ``expected`` rows; nothing is written for the night.
    """
    location = run.spark("staging", name)
    if run.shared_is_local:
        files = sorted(str(p) for p in workdir.local_path(location).glob("*.parquet"))
    else:
        files = workdir.copy_to_local(spark, location, run.local / "staging-copy" / name)
    seen = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    if seen != expected:
        raise InputError(_not_shared(run, f"{expected} staged rows ({name})", seen))
    return files


def _from_driver(config, store, valid, alert_builders, history_builders, run, summary, night, counts):
    """The embedded store: Spark stages the night in the work directory (at most MERGE_FILES
    files, each sorted), the driver merges them into one key order and writes every table;
    the history is staged while the driver writes the alert tables."""
    spark = valid.sparkSession
    # staged in at most MERGE_FILES files, every night is written in one order, whatever its size
    max_files = merge.MERGE_FILES

    def stage_history():
        t1 = time.time()
        frames = history_frame(config, valid, history_builders)
        if frames is None:
            summary["history"] = {"entries": 0, "rejected": 0, "staged": 0}
            return None
        entries, rejected, types, sort_by = frames
        if summary["history"]["rejected"]:
            summary["history"]["rejects_file"] = _set_aside(spark, rejected, run.spark("rejects_history"),
                                                            summary["history"]["rejected"], "history entries", run)
        summary["history"]["staged"] = stage(entries, run.spark("staging", "history"), sort_by, max_files)
        files = _staged_files(spark, run, "history", summary["history"]["staged"])
        summary["seconds"]["history_staging"] = round(time.time() - t1, 2)
        log.info("history staged (%d entries) in %.1f s", summary["history"]["staged"], time.time() - t1)
        return files, types, sort_by

    with ThreadPoolExecutor(max_workers=1) as spark_thread:
        history_staged = spark_thread.submit(stage_history) if history_builders else None
        if alert_builders:
            t1 = time.time()
            frame, types, sort_by = alert_frame(config, valid, alert_builders)
            files = _staged_files(spark, run, "alerts", stage(frame, run.spark("staging", "alerts"), sort_by, max_files))
            summary["seconds"]["staging"] = round(time.time() - t1, 2)
            log.info("night staged (%d columns) in %.1f s", len(types), time.time() - t1)
            _record(summary, write_staged(store, alert_builders, files, types, config, night, sort_by))
        if history_staged is not None:
            staged = history_staged.result()
            if staged is not None:
                files, types, sort_by = staged
                _record(summary, write_staged(store, history_builders, files, types, config, night, sort_by))


def _from_executors(config, store, valid, alert_builders, history_builders, run, summary, night):
    """HBase: the executors write every table straight from the night's partitions; nothing
    is staged and the driver reads no row (it gathers counts, and writes the statistics)."""
    t1 = time.time()
    if alert_builders:
        frame, types, _ = alert_frame(config, valid, alert_builders)
        stats = [b for b in alert_builders if b.kind == "statistics"]
        rows, present, by_value = profile(frame, stats[0].counted(config.survey) if stats else ())
        remote = writers(store, [b for b in alert_builders if b.kind != "statistics"], config, types, present)
        write_from_executors(store, remote, frame, config)
        _record(summary, remote)
        if stats:
            stats[0].add(rows, by_value, config.survey)
            here = writers(store, stats, config, types, present)
            drive(here, [], config, night)
            _record(summary, here)
    if history_builders:
        frames = history_frame(config, valid, history_builders)
        if frames is None:
            summary["history"] = {"entries": 0, "rejected": 0, "staged": 0}
            return
        entries, rejected, types, sort_by = frames
        if summary["history"]["rejected"]:
            summary["history"]["rejects_file"] = _set_aside(valid.sparkSession, rejected, run.spark("rejects_history"),
                                                            summary["history"]["rejected"], "history entries", run)
        summary["history"]["staged"], present, _ = profile(entries)
        remote = writers(store, history_builders, config, types, present)
        write_from_executors(store, remote, entries, config, sort_by)
        _record(summary, remote)
    summary["seconds"]["executor_writes"] = round(time.time() - t1, 2)


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
