"""One night from the datalake into the store: read once, validate, build each table, write.

Steps (``push_night``):

1. List the night's files and check their footers (``datalake.list_night``); a bad file is
   set aside and reported.
2. Read with Spark, tag invalid rows with a ``reason`` (``datalake.with_reason``); write them
   to ``<run_dir>/rejects/`` as parquet; drop duplicate alert ids.
3. For each table builder: build the table's columns in Spark, stage them as parquet under
   ``<run_dir>/staging/<table>/``, reconcile types with the table's schema row, then stream
   the staged batches through the cell encoder into the store (bounded memory).
4. Reconcile counts: alerts read = rows written + duplicates + rows rejected.

Re-running a night writes the same keys with the same cells: nothing is duplicated.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import functions as F

from fink_ingest import cells as cellcodec
from fink_ingest import datalake, paths, schemarow
from fink_ingest.tables import BUILDERS

log = logging.getLogger(__name__)
# Row groups of staged files: the writer holds one in memory at a time.
STAGE_ROW_GROUP_BYTES = 32 * 1024 * 1024
# A progress line in the log every this many rows written.
PROGRESS_ROWS = 100_000


def _present_columns(files):
    """Columns of staged parquet files with at least one non-null value (from footers)."""
    present, unknown = set(), set()
    for path in files:
        meta = pq.ParquetFile(path).metadata
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for c in range(group.num_columns):
                col = group.column(c)
                name = col.path_in_schema
                stats = col.statistics
                if stats is None or not stats.has_null_count:
                    unknown.add(name)
                elif stats.null_count < group.num_rows:
                    present.add(name)
    return present | unknown


def write_staged(table, builder, staged_dir, staged, survey, put_rows, stage_rows):
    """Stream a staged table into the store.

    Parameters
    ----------
    table : fink_ingest.store.base.Table
    builder : fink_ingest.tables.base.TableBuilder
    staged_dir : str
        Directory of parquet files written by Spark.
    staged : fink_ingest.tables.base.Staged
        The builder's output (column types and key columns).
    survey : fink_ingest.config.Survey
    put_rows, stage_rows : int
        Rows per store write; rows per batch read back.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    SchemaError
        If a column's type cannot be reconciled with the table's schema row.
    """
    files = sorted(str(p) for p in Path(staged_dir).glob("*.parquet"))
    if not files:
        return 0
    present = _present_columns(files)
    write_types, changed = schemarow.reconcile(schemarow.read(table, survey.schema_version),
                                               staged.types, present)
    schemarow.put(table, survey.schema_version, changed)
    names = list(write_types)
    wanted = sorted(set(names) | set(staged.key_columns))

    def chunks():
        for path in files:  # one file, one row group at a time: memory bounded by stage_rows
            for batch in pq.ParquetFile(path).iter_batches(batch_size=stage_rows, columns=wanted):
                for start in range(0, batch.num_rows, put_rows):
                    yield batch.slice(start, put_rows)

    def prepare(part):
        keys = builder.keys(part, survey)
        columns = {n: cellcodec.encode(part.column(part.schema.get_field_index(n)), write_types[n])
                   for n in names}
        return table.prepare_arrow(keys, columns)

    written = 0
    # Two stages overlap: a worker thread encodes, packs and compresses the next chunk while
    # this thread writes the current one (both release the GIL in their C parts).
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        t0, next_report = time.time(), PROGRESS_ROWS
        for part in chunks():
            future = pool.submit(prepare, part)
            if pending is not None:
                written += table.write_prepared(pending.result())
            pending = future
            if written >= next_report:
                log.info("%s: %d rows written (%.0f rows/s)", table.name, written,
                         written / max(time.time() - t0, 1e-9))
                next_report += PROGRESS_ROWS
        if pending is not None:
            written += table.write_prepared(pending.result())
    return written


def push_night(spark, config, store, night, tables=None, run_dir=None):
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

    Returns
    -------
    dict
        The run summary: ``night``, ``files_read``, ``files_rejected`` (list of
        ``{file, reason}``), ``alerts_read``, ``rows_rejected``, ``duplicates``,
        ``rows_written`` (per table name), ``seconds`` (total and per table), ``ok``.

    Raises
    ------
    InputError
        If the night's partition does not exist.
    """
    t0 = time.time()
    survey = config.survey
    names = list(tables or BUILDERS)
    run_dir = Path(run_dir or Path(config.work_dir) / "runs" / f"{paths.night_tag(night)}-{int(t0)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    directory = paths.night_dir(config.datalake, night)
    files = datalake.list_night(spark, directory)
    summary = {"night": f"{night:%Y-%m-%d}", "partition": directory, "run_dir": str(run_dir),
               "files_read": len(files.good), "files_rejected": files.rejected, "alerts_read": 0,
               "rows_rejected": 0, "duplicates": 0, "rows_written": {}, "seconds": {}}
    while True:
        alerts = datalake.read_alerts(spark, files)
        if alerts is None:
            break
        try:
            _push_alerts(spark, config, store, alerts, files, names, run_dir, summary)
            break
        except Exception as exc:  # noqa: BLE001 - only a failure naming a night file is handled
            bad = datalake.failed_file(exc, files)
            if bad is None:
                raise
            reason = f"unreadable by Spark: {datalake.first_line(exc)}"
            log.error("%s: %s; set aside, pushing the night again without it", bad, reason)
            files.reject(bad, reason)
            summary["files_read"] = len(files.good)
            summary["files_rejected"] = files.rejected
    summary["seconds"]["total"] = round(time.time() - t0, 2)
    summary["ok"] = _reconciles(summary, files)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _push_alerts(spark, config, store, alerts, files, names, run_dir, summary):
    survey = config.survey
    summary["main_table"] = BUILDERS["main"].table_name(config.table_prefix)
    checked = datalake.with_reason(alerts, survey)
    reason = F.col(datalake.REASON)
    valid_id = F.when(reason.isNull(), datalake._column(survey.alert_id))
    t_count = time.time()
    counts = checked.agg(F.count(F.lit(1)).alias("read"),
                         F.count(reason).alias("rejected"),
                         F.count(valid_id).alias("valid"),
                         F.countDistinct(valid_id).alias("distinct")).first()
    log.info("counted %d alerts in %.1f s", counts["read"], time.time() - t_count)
    summary["alerts_read"] = counts["read"]
    summary["rows_rejected"] = counts["rejected"]
    summary["duplicates"] = counts["valid"] - counts["distinct"]
    summary["distinct_alerts"] = counts["distinct"]
    if counts["rejected"]:
        rejects = run_dir / "rejects"
        checked.filter(reason.isNotNull()).write.mode("overwrite").parquet(str(rejects))
        summary["rejects_file"] = str(rejects)
        log.warning("%d rows set aside with a reason in %s", counts["rejected"], rejects)
    valid = checked.filter(reason.isNull()).drop(datalake.REASON)
    if summary["duplicates"]:  # the shuffle of whole rows is paid only by nights that need it
        valid = (valid.withColumn("__alert_id", datalake._column(survey.alert_id))
                 .dropDuplicates(["__alert_id"]).drop("__alert_id"))
    for name in names:
        t1 = time.time()
        builder = BUILDERS[name]
        table_name = builder.table_name(config.table_prefix)
        staged = builder.build(valid, survey)
        staged_dir = run_dir / "staging" / name
        (staged.frame.sortWithinPartitions(*staged.key_columns).write.mode("overwrite")
         .option("parquet.block.size", STAGE_ROW_GROUP_BYTES).parquet(str(staged_dir)))
        log.info("%s: staged in %.1f s", table_name, time.time() - t1)
        table = store.ensure_table(table_name, builder.families_for(survey))
        n = write_staged(table, builder, staged_dir, staged, survey,
                         config.put_rows, config.stage_rows)
        shutil.rmtree(staged_dir, ignore_errors=True)
        summary["rows_written"][table_name] = n
        summary["seconds"][table_name] = round(time.time() - t1, 2)
        log.info("%s: %d rows written in %.1f s", table_name, n, time.time() - t1)


def _reconciles(summary, files):
    """True if nothing was lost or set aside: every file and row read, the main table complete."""
    ok = not summary["files_rejected"] and summary["rows_rejected"] == 0
    expected = files.footer_rows
    if expected is not None and summary["alerts_read"] != expected:
        log.error("read %d rows but the file footers hold %d: rows were lost while reading",
                  summary["alerts_read"], expected)
        ok = False
    main = summary.get("main_table")
    if main in summary["rows_written"] and summary["rows_written"][main] != summary["distinct_alerts"]:
        log.error("%s: wrote %d rows for %d distinct alerts", main,
                  summary["rows_written"][main], summary["distinct_alerts"])
        ok = False
    return ok
