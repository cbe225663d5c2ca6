"""Command line of ``bin/fink_push``: parse, load the configuration, call the library, report.

Spark is started by the job entry point (``jobs/fink_push.py``), which calls ``main``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from fink_ingest import paths
from fink_ingest.config import load_config
from fink_ingest.errors import FinkIngestError
from fink_ingest.tables import BUILDERS

log = logging.getLogger("fink_push")


def parser():
    """The ``fink_push`` argument parser."""
    p = argparse.ArgumentParser(
        prog="fink_push",
        description="Push nights of the processed-alert datalake into the store's tables.")
    p.add_argument("--night", help="night to push, YYYY-MM-DD or YYYYMMDD")
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
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(log_file)):
        handler.setFormatter(fmt)
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
        lines.append(f"  {table}: {n} rows written in {summary['seconds'].get(table)} s")
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
        if not args.night:
            raise FinkIngestError("give --night YYYY-MM-DD")
        night = paths.parse_night(args.night)
        tables = args.tables.split(",") if args.tables else list(BUILDERS)
        unknown = [t for t in tables if t not in BUILDERS]
        if unknown:
            raise FinkIngestError(f"--tables: {unknown} unknown; expected among {list(BUILDERS)}")
    except FinkIngestError as exc:
        print(f"fink_push: error: {exc}", file=sys.stderr)
        return 2
    run_dir = Path(config.work_dir) / "runs" / time.strftime("%Y%m%dT%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(run_dir / "push.log")
    log.info("configuration %s; datalake %s; store %s", config.source, config.datalake, config.store)

    from fink_ingest.push import push_night
    from fink_ingest.store import open_store

    try:
        store = open_store(config.store)
        spark = spark_factory(config)
        summary = push_night(spark, config, store, night, tables, run_dir / paths.night_tag(night))
    except FinkIngestError as exc:
        log.error("%s", exc)
        print(f"fink_push: error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    print(f"store: {config.store} (tables: {', '.join(store.tables())}); log: {run_dir / 'push.log'}")
    print(f"look at an object: python -m fink_ingest.show --store {config.store} <objectId>")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1
