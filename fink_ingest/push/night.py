"""Nights from the datalake into the store, end to end, each accounted for on its own.

``push_nights`` pushes a range of nights (a backfill) in as few Spark jobs as it can: the
nights whose files share one schema are read, validated, counted and staged together, in one
job (Spark reads their partitions only), then written night by night; a schema change starts
another group, so that a night's cells never depend on which nights came with it (the types
of a group are each of its nights' own), and so do ``GROUP_BYTES`` of input. ``push_night``
is one night. For each group:

1. Create or check every table to be written (``checks.open_tables``): a table written with
   another key layout stops the push here, before anything is read.
2. List each night's files and check their footers (``datalake.list_night``); a bad file is
   set aside and reported. A file that fails inside Spark is set aside too, and the group is
   pushed again without it (writes are idempotent).
3. Count and validate, per night; rows with a ``reason`` go to the night's ``rejects/``;
   duplicate alert ids are dropped within a night. Nights written by the driver are counted as
   they are staged (their footers, the staged rows: no job of their own) and their copies of
   an alert are left out by the driver as it writes (``merge.NightCounts``); HBase nights are
   counted in a Spark job first, and Spark drops the copies.
4. Stage the group once (``stage``, partitioned by night; each alert with its kept history
   entries), then write every table night by night from the same batches (``write``). With
   HBase the executors write instead, from the group's own partitions.
5. Reconcile each night's counts (``checks.reconcile``) and write its summary as it completes.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import functions as F

from fink_ingest import datalake, paths, workdir
from fink_ingest.errors import InputError, StoreError
from fink_ingest.push.checks import check_space, open_tables
from fink_ingest.push.group_write import complete, from_driver, from_executors
from fink_ingest.push.stage import ENTRIES, NIGHT, NO_TIME
from fink_ingest.push.staging import Staging, set_aside
from fink_ingest.report import FILE_ONLY
from fink_ingest.tables import BUILDERS

log = logging.getLogger(__name__)
# A group of nights pushed in one Spark job holds at most this many bytes of input columns
# (its staging takes about three times as much, in the work directory).
GROUP_BYTES = 20 * 10**9


@dataclasses.dataclass
class _Night:
    """One night of a group: its files, its run directory, its summary as it fills."""

    night: dt.date
    files: datalake.NightFiles
    run: workdir.RunDir
    summary: dict
    counts: dict = None
    done: bool = False

    @property
    def tag(self):
        return paths.night_tag(self.night)


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
    run_dir : str, Path or fink_ingest.workdir.RunDir, optional
        The night's directory (summary, rejects, staging); default
        ``<work_dir>/runs/<YYYYMMDD>-<unix time>-<pid>``.
    rebuilding : bool
        The push is part of a whole-table rebuild or upgrade (tables in the rebuild journal
        are written, not refused).

    Returns
    -------
    dict
        The night's summary: ``night``, ``files_read``, ``files_rejected`` (list of
        ``{file, reason}``), ``alerts_read``, ``rows_rejected``, ``duplicates``,
        ``distinct_alerts``; per table ``rows_expected``, ``rows_written`` and
        ``rows_skipped`` (rows not placed, by reason; for history tables, stored rows that
        gain nothing are counted as unchanged); ``history`` (entries in the alerts, rejected
        for want of a valid time, ``staged``: those a history table keeps, repeats included);
        ``schema`` (drift, per table); ``seconds``; ``problems`` (what makes the night
        incomplete, each with what to do) and ``ok`` (no problem).

    Raises
    ------
    InputError
        If the night's partition does not exist.
    LayoutError
        If a table was written with another key layout (nothing is read or written).
    """
    names = list(tables or BUILDERS)
    open_tables(store, [BUILDERS[n] for n in names], config, rebuilding=rebuilding)
    run = workdir.RunDir.of(run_dir) if run_dir is not None else workdir.run_dirs(
        config.work_dir, f"{paths.night_tag(night)}-{int(time.time())}-{os.getpid()}")
    files = datalake.list_night(spark, paths.night_dir(config.datalake, night))
    run.local.mkdir(parents=True, exist_ok=True)
    return _push_group(spark, config, store, [_night(config, night, files, run)], names, run)[0]


def push_nights(spark, config, store, nights, run_dir, tables=None, rebuilding=False, on_night=None, progress=None):
    """Push a range of nights, in one Spark job per group of nights sharing a schema.

    Parameters
    ----------
    spark, config, store, tables, rebuilding
        As ``push_night``.
    nights : list of datetime.date
    run_dir : str, Path or fink_ingest.workdir.RunDir
        The run's directory; each night's is ``<run_dir>/<YYYYMMDD>``, made only for nights
        whose partition exists.
    on_night : callable, optional
        ``on_night(summary)`` as each night completes.
    progress : callable, optional
        ``progress(rows)`` as staged rows are written (the embedded store's driver).

    Returns
    -------
    (list of dict, list of datetime.date)
        The summaries of the nights pushed (in night order), and the nights without a
        partition. A failure of one group's Spark job leaves its nights failed (summaries
        saying so) and the other groups are pushed.

    Raises
    ------
    StoreError
        If the store fails (every night would fail alike: the push stops).
    """
    names = list(tables or BUILDERS)
    open_tables(store, [BUILDERS[n] for n in names], config, rebuilding=rebuilding)
    run = workdir.RunDir.of(run_dir)
    present = set(datalake.list_nights(spark, config.datalake)) if len(nights) > 1 else set(nights)
    listed, missing = [], [n for n in nights if n not in present]  # one listing of the datalake, not one a night
    for night in (n for n in nights if n in present):
        try:
            listed.append((night, datalake.list_night(spark, paths.night_dir(config.datalake, night))))
        except InputError:
            missing.append(night)
    missing.sort()
    groups = [[_night(config, night, files, run.child(paths.night_tag(night))) for night, files in group]
              for group in _groups(listed, config)]
    summaries = []

    def start(index):
        """A group's Spark phase (read, count, stage); returns its steps, paused before the writes."""
        steps = _group_steps(spark, config, store, groups[index], names, run, f"g{index}", on_night, progress)
        try:
            next(steps)
        except StopIteration:
            return None
        return steps

    # the next group's Spark phase runs while the driver writes the current group's tables
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="next-group") as ahead:
        started = ahead.submit(start, 0) if groups else None
        for index, members in enumerate(groups):
            try:
                steps = started.result()
                started = ahead.submit(start, index + 1) if index + 1 < len(groups) else None
                for _ in steps or ():
                    pass
                summaries += [m.summary for m in members]
            except StoreError:
                raise
            except Exception as exc:  # noqa: BLE001 - a group's failure is its nights', said in their summaries
                if len(listed) == 1:
                    raise  # one night: its failure is the command's
                log.error("nights %s: %s", ", ".join(f"{m.night:%Y-%m-%d}" for m in members),
                          datalake.first_line(exc), exc_info=True, extra=FILE_ONLY)
                summaries += [m.summary for m in members]
                for m in members:
                    if on_night is not None and not m.done:
                        on_night(m.summary)
                if started is None and index + 1 < len(groups):
                    started = ahead.submit(start, index + 1)
    return sorted(summaries, key=lambda s: s["night"]), missing


def _night(config, night, files, run):
    summary = {"night": f"{night:%Y-%m-%d}", "partition": paths.night_dir(config.datalake, night),
               "run_dir": str(run.local), "files_read": len(files.good), "files_rejected": files.rejected,
               "alerts_read": 0, "rows_rejected": 0, "duplicates": 0, "distinct_alerts": 0, "rows_expected": {},
               "rows_written": {}, "rows_skipped": {}, "schema": {}, "seconds": {},
               "main_table": BUILDERS["main"].table_name(config.table_prefix)}
    return _Night(night, files, run, summary)


def _groups(listed, config):
    """Nights to push together: same schema (the footers' columns and types), in night
    order of their first night, at most ``GROUP_BYTES`` of input each."""
    groups = {}
    for night, files in listed:
        key = files.schema_key()
        groups.setdefault(key, []).append((night, files))
    out = []
    for members in sorted(groups.values(), key=lambda g: g[0][0]):
        current, size = [], 0
        for night, files in members:
            bytes_in = files.input_bytes(set(config.survey.cutout_columns)) or 0
            if current and size + bytes_in > GROUP_BYTES:
                out.append(current)
                current, size = [], 0
            current.append((night, files))
            size += bytes_in
        out.append(current)
    return sorted(out, key=lambda g: g[0][0])


def _push_group(spark, config, store, members, names, run, on_night=None, progress=None):
    """Push nights that share a schema in one Spark job; returns their summaries."""
    for _ in _group_steps(spark, config, store, members, names, run, "g0", on_night, progress):
        pass
    return [m.summary for m in members]


def _group_steps(spark, config, store, members, names, run, group_id, on_night=None, progress=None):
    """The push of a group, as steps: it pauses (yields) once its Spark phase is done and
    before the driver writes its tables, so that ``push_nights`` can start the next group's
    Spark phase meanwhile. Staging under ``<run>/staging/<group_id>``."""
    t0 = time.time()
    label = f"night {members[0].night:%Y-%m-%d}" if len(members) == 1 else \
        f"nights {members[0].night:%Y-%m-%d}..{members[-1].night:%Y-%m-%d}"
    table_names = [BUILDERS[n].table_name(config.table_prefix) for n in names]
    staging = Staging(run, group_id)
    try:
        with store.writing(table_names, f"bin/fink_push, {label}"):
            for m in members:
                check_space(store, config, m.files, m.run, m.night)
            yield from _read_and_push(spark, config, store, members, names, staging, on_night, progress)
    except BaseException as exc:  # every night not done says what happened, whatever happened
        for m in members:
            if not m.done:
                m.summary["seconds"]["total"] = round(time.time() - t0, 2)
                m.summary["problems"] = [f"failed: {type(exc).__name__}: {datalake.first_line(exc)}"]
                m.summary["ok"] = False
                (m.run.local / "summary.json").write_text(json.dumps(m.summary, indent=2))
        raise
    finally:  # staging goes whatever the outcome, through the file system it is on
        staging.remove(spark)


def _read_and_push(spark, config, store, members, names, staging, on_night, progress):
    """Read the group's good files and push them; a file Spark cannot read is set aside and
    the group pushed again without it (writes are idempotent)."""
    owner = {uri: m for m in members for uri in m.files.good}
    while True:
        good = {uri: rows for m in members for uri, rows in m.files.good.items()}
        if not good:
            yield
            for m in members:
                complete(m, time.time(), on_night)
            return
        combined = datalake.NightFiles(good=good, rejected=[], data_bytes={u: d for m in members
                                                                           for u, d in m.files.data_bytes.items()})
        alerts = datalake.read_alerts(spark, combined)
        for uri, columns in combined.hidden_columns(alerts.columns).items():
            owner[uri].summary.setdefault("columns_not_read", {})[uri] = columns
        alerts = alerts.withColumn(NIGHT, datalake.night_of_file(F.col(datalake.FILE)))
        try:
            yield from _push_alerts(config, store, alerts, names, members, staging, on_night, progress)
            return
        except StoreError as exc:  # the store gave up (retries spent): say which nights
            where = ", ".join(f"{m.night:%Y-%m-%d}" for m in members if not m.done)
            raise StoreError(f"night {where}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - only a failure naming a night file is handled
            bad = datalake.failed_file(exc, combined)
            if bad is None:
                raise
            reason = f"unreadable by Spark: {datalake.first_line(exc)}"
            log.error("%s: %s; set aside, pushing the night again without it", bad, reason)
            m = owner[bad]
            m.files.reject(bad, reason)
            m.summary["files_read"] = len(m.files.good)
            m.summary["files_rejected"] = m.files.rejected


def _push_alerts(config, store, alerts, names, members, staging, on_night, progress):
    survey = config.survey
    spark = alerts.sparkSession
    t0 = time.time()
    checked = datalake.with_reason(alerts, survey)
    reason = F.col(datalake.REASON)
    valid_id = F.when(reason.isNull(), datalake.column_of(survey.alert_id))
    valid_oid = F.when(reason.isNull(), datalake.column_of(survey.object_id))
    builders = [BUILDERS[n] for n in names]
    alert_builders = [b for b in builders if b.source == "alerts"]
    history_builders = [b for b in builders if b.source == "history"]
    aggregates = [F.count(F.lit(1)).alias("read"), F.count(reason).alias("rejected"), F.count(valid_id).alias("valid")]
    distinct = [F.countDistinct(valid_id).alias("distinct"), F.countDistinct(valid_oid).alias("objects")]
    history = survey.history_column
    if history_builders and history in checked.schema.names:
        # history entries counted here, from the jd leaf alone (nested-column pruning)
        times = F.col(f"`{history}`.jd")
        aggregates += [F.sum(F.when(reason.isNull(), F.coalesce(F.size(times), F.lit(0)))).alias("entries"),
                       F.sum(F.when(reason.isNull(), F.coalesce(
                           F.size(F.filter(times, lambda t: datalake.bad_time(t, survey))), F.lit(0)))).alias("no_time")]
    zero = {"read": 0, "rejected": 0, "valid": 0, "distinct": 0, "objects": 0, "entries": 0, "no_time": 0}
    if not store.executor_writes and all(None not in m.files.good.values() for m in members):
        # Nights written by the driver: counted as Spark stages them, not in a job of their own:
        # rows read from the files' footers, valid ones as staged per night, history entries
        # staged with each alert (an ``Observation`` over every column read cost ~7 s of a
        # 400k-alert staging); objects and copies of an alert are counted by the writer in each
        # night's key order (``merge.NightCounts``), which leaves the copies out.
        def counted(staged, totals):
            for m in members:
                read, rows, t = sum(m.files.good.values()), staged.get(m.tag, 0), totals.get(m.tag, {})
                c = {**zero, "read": read, "rejected": read - rows, "valid": rows, "distinct": rows,
                     "entries": t.get(ENTRIES, 0), "no_time": t.get(NO_TIME, 0)}
                _account(spark, m, c, checked, staging, history_builders)

        yield from from_driver(config, store, checked.filter(reason.isNull()).drop(datalake.REASON), alert_builders,
                               history_builders, members, staging, t0, on_night, progress, counted=counted)
        return
    counted = {r[NIGHT]: r.asDict() for r in checked.groupBy(NIGHT).agg(*aggregates, *distinct).collect()}
    log.info("counted %d alerts of %d night(s) in %.1f s", sum(c["read"] for c in counted.values()), len(members),
             time.time() - t0)
    for m in members:
        _account(spark, m, {**zero, **{k: v or 0 for k, v in counted.get(m.tag, {}).items()}}, checked, staging,
                 history_builders, t0)
    valid = checked.filter(reason.isNull()).drop(datalake.REASON)
    if any(m.summary["duplicates"] for m in members):  # a shuffle paid only by nights that need it
        valid = (valid.withColumn("__alert_id", datalake.column_of(survey.alert_id))
                 .dropDuplicates([NIGHT, "__alert_id"]).drop("__alert_id"))
    if store.executor_writes:
        from_executors(config, store, valid, alert_builders, history_builders, members, t0, on_night)
        yield
    else:
        yield from from_driver(config, store, valid, alert_builders, history_builders, members, staging, t0,
                                on_night, progress)


def _account(spark, m, c, checked, staging, history_builders, t0=None):
    """A night's counts (``c``: read, rejected, valid, distinct, objects, entries, no_time)
    into its summary (``seconds.count`` since ``t0``, when counted in a job of their own); its
    rejected rows set aside with their reason (a Spark job, if any)."""
    m.counts = c
    if t0 is not None:
        m.summary["seconds"]["count"] = round(time.time() - t0, 2)
    m.summary.update(alerts_read=c["read"], rows_rejected=c["rejected"], duplicates=c["valid"] - c["distinct"],
                     distinct_alerts=c["distinct"])
    if c["rejected"]:
        reason = F.col(datalake.REASON)
        m.summary["rejects_file"] = set_aside(spark, checked.filter(reason.isNotNull() & (F.col(NIGHT) == m.tag))
                                               .drop(NIGHT), m.run.spark("rejects"), c["rejected"], "rows", staging)
    if history_builders:
        m.summary["history"] = {"entries": c["entries"], "rejected": c["no_time"], "staged": 0}
