"""Command line of ``bin/fink_push``: parse, load the configuration, call the library, report.

Spark is started by the job entry point (``jobs/fink_push.py``), which calls ``main``.
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

from fink_ingest import paths
from fink_ingest.config import load_config
from fink_ingest.errors import FinkIngestError, LayoutError
from fink_ingest.tables import BUILDERS

log = logging.getLogger("fink_push")


def parser():
    """The ``fink_push`` argument parser."""
    p = argparse.ArgumentParser(
        prog="fink_push",
        description="Push nights of the processed-alert datalake into the store's tables.")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--night", help="night to push, YYYY-MM-DD or YYYYMMDD")
    when.add_argument("--from", dest="start", help="first night of a backfill (with --to)")
    when.add_argument("--all-nights", action="store_true",
                      help="every night present in the datalake (with --rebuild)")
    p.add_argument("--to", dest="stop", help="last night of a backfill, included")
    p.add_argument("--rebuild", metavar="TABLE",
                   help="rebuild one table for the nights given, touching no other table")
    when.add_argument("--upgrade", action="store_true",
                      help="rebuild, from every night of the datalake, each table written with an older "
                           "row-key layout (the store refuses pushes and reads until then)")
    p.add_argument("--tables", help=f"comma-separated tables to push (default all: {','.join(BUILDERS)})")
    p.add_argument("--conf", help="configuration file (default conf/fink_ingest.toml)")
    p.add_argument("--datalake", help="datalake root (overrides the configuration)")
    p.add_argument("--store", help="store URL or directory (overrides the configuration)")
    p.add_argument("--work-dir", help="directory for run logs, rejects and staging")
    p.add_argument("--spark-master", help="Spark master (ignored under spark-submit)")
    p.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Spark option, repeatable (e.g. spark.driver.memory=4g)")
    p.add_argument("--survey", help="survey description schemas/<survey>.toml (default ztf)")
    p.add_argument("--table-prefix", help="prefix of every table name (default ztf)")
    p.add_argument("--put-rows", type=int, help="rows per store write")
    p.add_argument("--stage-rows", type=int, help="rows per staged batch read back by the writer")
    return p


def configure_logging(log_file):
    """Log to stderr and to ``log_file``."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for old in [h for h in root.handlers if getattr(h, "fink_push", False)]:  # a second run in-process
        root.removeHandler(old)
        old.close()
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(log_file)):
        handler.setFormatter(fmt)
        handler.fink_push = True
        root.addHandler(handler)
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def format_summary(summary):
    """Human-readable end-of-run summary (str)."""
    lines = [f"night {summary['night']}: {'OK' if summary['ok'] else 'INCOMPLETE'} "
             f"in {summary['seconds']['total']} s",
             f"  files read {summary['files_read']}, files rejected {len(summary['files_rejected'])}",
             f"  alerts read {summary['alerts_read']}, duplicates dropped {summary['duplicates']}, "
             f"rows rejected {summary['rows_rejected']}"]
    for bad in summary["files_rejected"]:
        lines.append(f"  rejected file {bad['file']}: {bad['reason']}")
    if summary.get("rejects_file"):
        lines.append(f"  rejected rows (with a reason column): {summary['rejects_file']}")
    for table, n in summary["rows_written"].items():
        skipped = summary.get("rows_skipped", {}).get(table) or {}
        extra = "".join(f", {count} {'left as they were' if why.startswith('unchanged') else 'not placed'} ({why})"
                        for why, count in skipped.items())
        deleted = summary.get("rows_deleted", {}).get(table)
        extra += f", {deleted} old rows deleted first" if deleted is not None else ""
        expected = summary.get("rows_expected", {}).get(table)
        lines.append(f"  {table}: {n} rows written of {expected} expected in {summary['seconds'].get(table)} s{extra}")
    history = summary.get("history")
    if history:
        lines.append(f"  history entries {history['entries']} in the alerts, {history.get('staged', 0)} for a "
                     f"history table (repeats included), rejected (no time) {history['rejected']}")
    for problem in summary.get("problems", []):
        lines.append(f"  INCOMPLETE: {problem}")
    lines.append(f"  summary: {summary['run_dir']}/summary.json")
    return "\n".join(lines)


def main(spark_factory, argv=None):
    """Run ``fink_push``; returns the exit code (0 only if everything was ingested).

    Parameters
    ----------
    spark_factory : callable
        ``spark_factory(config) -> SparkSession`` (provided by the job entry point).
    argv : list of str, optional
    """
    args = parser().parse_args(argv)
    try:
        config = load_config(args.conf, datalake=args.datalake, store=args.store,
                             work_dir=args.work_dir, spark_master=args.spark_master,
                             survey=args.survey, table_prefix=args.table_prefix,
                             put_rows=args.put_rows, stage_rows=args.stage_rows,
                             spark_options=args.spark_conf)
        nights = _nights(args)
        tables = args.tables.split(",") if args.tables else list(BUILDERS)
        unknown = [t for t in tables + ([args.rebuild] if args.rebuild else []) if t not in BUILDERS]
        if unknown:
            raise FinkIngestError(f"--tables/--rebuild: {unknown} unknown; expected among {list(BUILDERS)}")
        if args.all_nights and not args.rebuild:
            raise FinkIngestError("--all-nights goes with --rebuild TABLE")
        if args.upgrade and (args.rebuild or args.tables):
            raise FinkIngestError("--upgrade goes alone: it rebuilds every table on an older layout")
    except FinkIngestError as exc:
        print(f"fink_push: error: {exc}", file=sys.stderr)
        return 2
    run_dir = Path(config.work_dir) / "runs" / time.strftime("%Y%m%dT%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(run_dir / "push.log")
    log.info("configuration %s; datalake %s; store %s", config.source, config.datalake, config.store)

    from fink_ingest import datalake
    from fink_ingest.errors import InputError
    from fink_ingest.push import push_night, rebuild, stale_tables, upgrade
    from fink_ingest.store import open_store

    summaries, missing = [], []
    try:
        store = open_store(config.store)
        # before Spark starts: a table of another key layout refuses the push, in seconds
        writing = [] if args.upgrade or args.all_nights else [args.rebuild] if args.rebuild else tables
        stale = stale_tables(store, config, writing)
        if len(stale) == 1:
            raise LayoutError(next(iter(stale.values())))
        if stale:
            raise LayoutError(f"{len(stale)} tables written with an older row-key layout or not fully rebuilt "
                              f"({', '.join(BUILDERS[k].table_name(config.table_prefix) for k in stale)}): "
                              "upgrade the store with bin/fink_push --upgrade (rebuilds them from the datalake)")
        spark = spark_factory(config)
        if args.all_nights:
            nights = datalake.list_nights(spark, config.datalake)
        if args.upgrade:
            kinds, summaries = upgrade(spark, config, store, run_dir)
            print(f"upgrade: {', '.join(kinds) or 'every table is on this layout already; nothing to do'}")
            nights = [s["night"] for s in summaries]
        elif args.rebuild:
            summaries = rebuild(spark, config, store, args.rebuild, nights, run_dir, args.all_nights)
        else:
            for night in nights:
                try:
                    summaries.append(push_night(spark, config, store, night, tables,
                                                run_dir / paths.night_tag(night)))
                except InputError as exc:
                    if len(nights) == 1:
                        raise
                    log.warning("%s: skipped (%s)", night, exc)
                    missing.append(f"{night:%Y-%m-%d}")
    except FinkIngestError as exc:
        log.error("%s", exc)
        print(f"fink_push: error: {exc}", file=sys.stderr)
        return 1
    for summary in summaries:
        print(format_summary(summary))
    if len(nights) > 1:
        ok = sum(s["ok"] for s in summaries)
        print(f"{len(nights)} nights: {ok} complete, {len(summaries) - ok} incomplete, "
              f"{len(missing)} without a partition (skipped: {', '.join(missing) or 'none'})")
    print(f"store: {config.store} (tables: {', '.join(store.tables())}); log: {run_dir / 'push.log'}")
    print(f"look at an object: python -m fink_ingest.show --store {shlex.quote(config.store)} <objectId>")
    (run_dir / "summary.json").write_text(json.dumps({"nights": summaries, "missing": missing}, indent=2))
    return 0 if all(s["ok"] for s in summaries) else 1


def _nights(args):
    """Nights the arguments name (list of datetime.date); [] for --all-nights (listed later)."""
    import datetime as dt

    if args.all_nights or args.upgrade:
        return []
    if args.night:
        return [paths.parse_night(args.night)]
    if args.start and args.stop:
        first, last = paths.parse_night(args.start), paths.parse_night(args.stop)
        if last < first:
            raise FinkIngestError(f"--from {args.start} is after --to {args.stop}")
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    raise FinkIngestError("give --night D, or --from D1 --to D2, or --all-nights with --rebuild, or --upgrade")
