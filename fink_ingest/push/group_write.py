"""A group's write phase, night by night: the driver's (the embedded store: from the staged
files, ``write.write_staged``) or the executors' (HBase: ``executors.write_from_executors``,
nothing staged); then each night is reconciled and its summary written as it completes."""
from __future__ import annotations

import json
import logging
import time

from pyspark.sql import functions as F

from fink_ingest.push import history_pass, merge
from fink_ingest.push.checks import reconcile
from fink_ingest.push.executors import write_from_executors
from fink_ingest.push.stage import (ENTRIES, HISTORY, NIGHT, NO_TIME, alert_frame, history_frame, history_types,
                                    profile_by, stage)
from fink_ingest.push.staging import set_aside, staged_files, staged_totals
from fink_ingest.push.table_writer import writers
from fink_ingest.push.write import drive, write_staged
from fink_ingest.report import FILE_ONLY
from fink_ingest.tables import BUILDERS
from fink_ingest.tables.base import FILE_ROW

log = logging.getLogger(__name__)


def complete(m, t0, on_night):
    """Reconcile a night's counts and write its summary (it is complete)."""
    m.summary["seconds"]["total"] = round(time.time() - t0, 2)
    m.summary["problems"] = reconcile(m.summary, m.files.footer_rows)
    m.summary["ok"] = not m.summary["problems"]
    for problem in m.summary["problems"]:
        log.error("night %s: %s", m.summary["night"], problem, extra=FILE_ONLY)  # the summary prints them
    (m.run.local / "summary.json").write_text(json.dumps(m.summary, indent=2))
    m.done = True
    if on_night is not None:
        on_night(m.summary)


def _prepare(m, names):
    """Builders' per-night state: the night's row groups (cutout pointers), its objects."""
    for name in names:
        BUILDERS[name].reset(m.files.row_groups)
    BUILDERS["statistics"].objects = m.counts["objects"]


def from_driver(config, store, valid, alert_builders, history_builders, members, run, t0, on_night, progress,
                counted=None):
    """The embedded store: Spark stages the group in the work directory (``run``, the group's
    ``_Staging``; per night, at most MERGE_FILES files, each sorted), each alert with its kept
    history entries; the driver merges each night's files into one key order and writes every
    table from them, history tables included, night by night, leaving out the copies of an
    alert it meets (``merge.NightCounts``). A generator: it pauses once the group is staged
    (the Spark phase that matters to the next group is done).

    ``counted(rows, totals)``: called once the group is staged, when the nights' counts come
    with the staging: per night tag, the rows staged (its valid alerts) and ``totals``, its
    history entries (``ENTRIES``) and those without a valid time (``NO_TIME``), staged with
    each alert; else each night's ``counts`` are known before.
    """
    spark = valid.sparkSession
    names = [b.kind for b in alert_builders + history_builders]
    t1 = time.time()
    entry_types = history_types(valid, config.survey)
    # the history read from the datalake by the writer when it can (``history_pass``)
    by_pass = bool(history_builders) and history_pass.usable([u for m in members for u in m.files.good], entry_types)
    frame, types, sort_by = alert_frame(config, valid, alert_builders, keep=[NIGHT], history_builders=history_builders,
                                        keyed=True, history_counts=counted is not None, history_rows=by_pass)
    with_history = HISTORY in frame.columns or (by_pass and FILE_ROW in frame.columns)
    builders = alert_builders + (history_builders if with_history else [])
    if not builders:  # only history tables, of nights without a history column: nothing to write
        if counted is not None:  # the counts still come from one pass
            found = frame.groupBy(NIGHT).agg(F.count(F.lit(1)).alias("rows")).collect()
            counted({r[NIGHT]: r["rows"] for r in found}, {})
        yield
        for m in members:
            complete(m, t0, on_night)
        return
    total = stage(frame, run.spark("alerts"), sort_by, merge.MERGE_FILES, partition=NIGHT)
    files = staged_files(spark, run, "alerts", members, total,
                         None if counted is not None else {m.tag: m.counts["distinct"] for m in members})
    if counted is not None:
        counted({tag: merge.staged_rows(paths) for tag, paths in files.items()},
                {tag: staged_totals(paths, [c for c in (ENTRIES, NO_TIME) if c in frame.columns])
                 for tag, paths in files.items()})
    staging_s = round(time.time() - t1, 2)
    log.info("%d alerts staged (%d columns%s) in %.1f s", total, len(types), ", with their history" if with_history
             else "", staging_s)
    if with_history:  # entries without a valid time, set aside with their reason (rare: a Spark job then)
        rejected = history_frame(config, valid, history_builders, keep=[NIGHT])[1]
        for m in members:
            if m.summary["history"]["rejected"]:
                m.summary["history"]["rejects_file"] = set_aside(
                    spark, rejected.filter(F.col(NIGHT) == m.tag).drop(NIGHT), m.run.spark("rejects_history"),
                    m.summary["history"]["rejected"], "history entries", run)
    yield  # the Spark phase is done: the next group's may start
    for m in members:
        m.summary["seconds"]["staging"] = staging_s
        _prepare(m, names)
        counts = {}
        source = history_pass.HistorySource(str(run.local(f"history-{m.tag}")), entry_types) \
            if by_pass and with_history else None
        record(m.summary, write_staged(store, builders, files[m.tag], types, config, m.night, sort_by, progress,
                                        entry_types, counts, history_source=source))
        if with_history:
            m.summary["history"]["staged"] = counts.get("history_entries", 0)
        if counts.get("write_processes"):  # tables written by several processes (``parallel``)
            m.summary["write_processes"] = counts["write_processes"]
            m.summary["writer_peak_mb"] = round(counts.get("writer_peak_mb") or 0)
            m.summary["seconds"]["write"] = counts["write_seconds"]["all"]
            m.summary["seconds"]["write_driver_share"] = counts["write_seconds"]["driver"]
        if counts.get("duplicates"):  # copies left out by the writer (``merge.NightCounts``)
            m.summary["duplicates"] += counts["duplicates"]
            m.summary["distinct_alerts"] -= counts["duplicates"]
            log.warning("night %s: %d copies of an alert left out (one row per alert id)", m.summary["night"],
                        counts["duplicates"])
        complete(m, t0, on_night)


def from_executors(config, store, valid, alert_builders, history_builders, members, t0, on_night):
    """HBase: the executors write every table straight from the group's partitions (counted
    per night); nothing is staged and the driver reads no row (it gathers counts, and writes
    each night's statistics row)."""
    names = [b.kind for b in alert_builders + history_builders]
    t1 = time.time()
    if alert_builders:
        frame, types, _ = alert_frame(config, valid, alert_builders, keep=[NIGHT])
        stats = [b for b in alert_builders if b.kind == "statistics"]
        profiles = profile_by(frame, NIGHT, stats[0].counted(config.survey) if stats else ())
        remote = [b for b in alert_builders if b.kind != "statistics"]
        by_night = {m.tag: writers(store, remote, config, types, profiles.get(m.tag, (0, set(), {}))[1])
                    for m in members}
        write_from_executors(store, by_night, frame, config, night_column=NIGHT)
        for m in members:
            record(m.summary, by_night[m.tag])
            if stats:
                rows, present, by_value = profiles.get(m.tag, (0, set(), {}))
                _prepare(m, names)
                stats[0].add(rows, by_value, config.survey)
                here = writers(store, stats, config, types, present)
                drive(here, [], config, m.night)
                record(m.summary, here)
    if history_builders:
        frames = history_frame(config, valid, history_builders, keep=[NIGHT])
        if frames is not None:
            entries, rejected, types, sort_by = frames
            for m in members:
                if m.summary["history"]["rejected"]:
                    m.summary["history"]["rejects_file"] = set_aside(
                        valid.sparkSession, rejected.filter(F.col(NIGHT) == m.tag).drop(NIGHT),
                        m.run.spark("rejects_history"), m.summary["history"]["rejected"], "history entries", m.run)
            profiles = profile_by(entries, NIGHT)
            by_night = {}
            for m in members:
                m.summary["history"]["staged"], present, _ = profiles.get(m.tag, (0, set(), {}))
                by_night[m.tag] = writers(store, history_builders, config, types, present)
            write_from_executors(store, by_night, entries, config, sort_by, night_column=NIGHT)
            for m in members:
                record(m.summary, by_night[m.tag])
    for m in members:
        m.summary["seconds"]["executor_writes"] = round(time.time() - t1, 2)
        complete(m, t0, on_night)


def record(summary, table_writers):
    for w in table_writers:
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
