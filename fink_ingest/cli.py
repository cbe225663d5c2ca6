"""Command line of ``bin/fink_push``: parse, load the configuration, call the library, report.

Spark is started by the job entry point (``jobs/fink_push.py``), which calls ``main``.
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys

from fink_ingest import paths, report, runs, workdir
from fink_ingest.config import load_config
from fink_ingest.errors import FinkIngestError
from fink_ingest.preflight import preflight
from fink_ingest.report import format_summary
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
    p.add_argument("--verbose", action="store_true",
                   help="progress lines and tracebacks on stderr too (they always go to the run's push.log)")
    return p


def main(spark_factory, argv=None):
    """Run ``fink_push``; returns the exit code: 0 only if everything was ingested, 1 if a
    night is incomplete or a step failed, 2 for bad arguments or configuration.

    Every failure ends with one line on stderr, ``fink_push: error: <what failed, where, the
    fix>``; tracebacks go to the run's push.log (and to stderr with ``--verbose``). Each
    night's summary.json is written whatever happens.

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
        run = runs.claim_run_dir(config.work_dir)
    except FinkIngestError as exc:
        print(f"fink_push: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"fink_push: error: work directory {config.work_dir}: {exc.strerror} ({exc.filename}): give write "
              "access, or choose another --work-dir", file=sys.stderr)
        return 2
    log_file = run.local / "push.log"
    report.configure_logging(log_file, verbose=args.verbose)
    log.info("configuration %s; datalake %s; store %s; work directory %s", config.source, config.datalake,
             config.store, config.work_dir)
    outcome = {"summaries": [], "missing": [], "store": None, "spark": None}
    try:
        _run(args, config, spark_factory, nights, tables, run, outcome)
        error = None
    except KeyboardInterrupt:
        error = "interrupted; run the same command again to complete the nights (nothing is duplicated)"
    except BaseException as exc:  # noqa: BLE001 - every failure ends in one operator line
        log.error("%s", report.operator_error(exc, outcome.get("night", "")), exc_info=True, extra=report.FILE_ONLY)
        error = report.operator_error(exc, outcome.get("night", ""))
    summaries, missing = outcome["summaries"], outcome["missing"]
    if len(nights) > 1:
        ok = sum(s["ok"] for s in summaries)
        ranges = paths.night_ranges([paths.parse_night(n) for n in missing])
        print(f"{len(nights)} nights: {ok} complete, {len(summaries) - ok} incomplete, "
              f"{len(missing)} without a partition{f' ({ranges})' if missing else ''}")
    (run.local / "summary.json").write_text(json.dumps({"nights": summaries, "missing": missing,
                                                        "error": error}, indent=2))
    log_shown = _keep_in_work_dir(outcome["spark"], run)
    if error:
        print(f"fink_push: error: {error} (log: {log_shown})", file=sys.stderr)
        return 1
    store = outcome["store"]
    print(f"store: {config.store} (tables: {', '.join(store.tables())}); log: {log_shown}")
    example = _an_object(store, config)
    if example:
        print(f"look at an object: python3 -m fink_ingest.show --store {shlex.quote(config.store)} {example}")
    return 0 if all(s["ok"] for s in summaries) else 1


def _keep_in_work_dir(spark, run):
    """Copy the run's log and summaries to a work directory on a cluster file system (they
    are written locally as the run goes); returns where the log is to be read."""
    log_file = run.local / "push.log"
    if run.shared_is_local or spark is None:
        return log_file
    try:
        for path in [log_file, *run.local.glob("**/summary.json")]:
            workdir.upload(spark, path, workdir.join(run.shared, str(path.relative_to(run.local))))
        return workdir.join(run.shared, "push.log")
    except Exception as exc:  # noqa: BLE001 - the local copy stays
        log.warning("log and summaries not copied to %s: %s", run.shared, exc)
        return log_file


def _run(args, config, spark_factory, nights, tables, run, outcome):
    """The command itself: preflight, Spark, then the nights (summaries into ``outcome``,
    each printed as its night completes)."""
    from fink_ingest import datalake
    from fink_ingest.errors import InputError
    from fink_ingest.push import push_nights, rebuild, upgrade
    from fink_ingest.store import open_store

    store = outcome["store"] = open_store(config.store)
    rebuilding = args.upgrade or args.all_nights
    preflight(store, config, [args.rebuild] if args.rebuild else tables, rebuilding=rebuilding)
    with report.jvm_output_to(run.local / "push.log", args.verbose):
        spark = outcome["spark"] = spark_factory(config)
    workdir.probe(spark, config.work_dir)
    runs.clean_stale_staging(config.work_dir, spark)
    if args.all_nights:
        nights[:] = datalake.list_nights(spark, config.datalake)
    with report.Progress(len(nights) if not args.upgrade else None, args.verbose) as progress:
        def done(summary):
            outcome["summaries"].append(summary)
            progress.night_done(format_summary(summary))

        if args.upgrade:
            kinds, _ = upgrade(spark, config, store, run, on_night=done)
            nights[:] = [s["night"] for s in outcome["summaries"]]
            progress.write(f"upgrade: {', '.join(kinds) or 'every table is on this layout already; nothing to do'}")
            return
        if args.rebuild:
            rebuild(spark, config, store, args.rebuild, nights, run, args.all_nights, on_night=done)
            return
        _, missing = push_nights(spark, config, store, nights, run, tables, on_night=done, progress=progress.rows)
    outcome["missing"] = [f"{n:%Y-%m-%d}" for n in missing]
    if missing and len(nights) == 1:
        raise InputError(f"night partition {paths.night_dir(config.datalake, missing[0])} does not exist "
                         "or holds no parquet file")
    if missing:
        log.info("%d night(s) without a partition: %s", len(missing), paths.night_ranges(missing))


def _an_object(store, config):
    """An object id of the main table, to show the operator how to look at one (or None)."""
    from fink_ingest import rowkeys

    main = BUILDERS["main"]
    name = main.table_name(config.table_prefix)
    if name not in store.tables():
        return None
    for key, _ in store.table(name).scan(limit=2, columns=[f"{config.survey.original_family}:"
                                                           f"{config.survey.leaf['object_id']}"]):
        if not rowkeys.is_schema_row(key):
            return shlex.quote(main.parse_key(key)["object"])
    return None


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
