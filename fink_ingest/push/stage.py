"""The Spark side of a push: what to stage, and staging the night's alerts and history.

The night is staged once (``stage_alerts``): Spark writes the union of the columns every
table needs (named ``family:qualifier`` for cells, ``__name`` for helper columns: the class
of Fink's rule, the time-index salt, each alert's datalake file and row), each file sorted
by the row key's first columns. History entries (``prv_candidates``) are exploded, checked
and staged apart (``stage_history``), sorted by object and time.
"""
from __future__ import annotations

import logging
import time

import pyarrow.parquet as pq
from pyspark.sql import functions as F

from fink_ingest import datalake
from fink_ingest.classification import class_column
from fink_ingest.tables import history as history_tables
from fink_ingest.tables.base import (DERIVED_CLASS, FILE, FILE_ROW, HAS_STAMP, SALT, alert_cells,
                                     alert_key_inputs, cell_value, type_name)

log = logging.getLogger(__name__)
# Row groups of staged files (Spark's parquet.block.size; the writer streams them through
# ``merge.staged_file``). Staged files are written once and read once on this machine:
# uncompressed (compression costs CPU only).
STAGE_ROW_GROUP_BYTES = 32 * 1024 * 1024
# Inputs of the classification rule: rule name -> main-table cell (family:qualifier).
CLASS_INPUTS = {"mulens": "d:mulens", "snn_snia_vs_nonia": "d:snn_snia_vs_nonia",
                "snn_sn_vs_all": "d:snn_sn_vs_all", "rf_snia_vs_nonia": "d:rf_snia_vs_nonia",
                "rf_kn_vs_nonkn": "d:rf_kn_vs_nonkn", "cdsxmatch": "d:cdsxmatch", "roid": "d:roid",
                "tracklet": "d:tracklet", "jd": "i:jd", "jdstarthist": "i:jdstarthist", "drb": "i:drb",
                "classtar": "i:classtar", "ndethist": "i:ndethist"}


def available_columns(valid, survey):
    """Every column the night can stage: main-table cells and the push's derived columns."""
    available = alert_cells(valid.schema, survey)
    have = set(available)
    rule_inputs = {rule: cell for rule, cell in CLASS_INPUTS.items() if cell in have}
    staged_expr = {rule: available[cell][0] for rule, cell in rule_inputs.items()}
    oid = available[f"{survey.original_family}:{survey.leaf['object_id']}"][0]
    available[SALT] = (F.lower(F.lpad(F.hex(F.pmod(F.xxhash64(oid), F.lit(survey.time_buckets))), 2, "0")),
                       "string")
    available[FILE] = (F.col(FILE), "string")
    available[FILE_ROW] = (F.col(FILE_ROW), "bigint")
    stamps = [c for c in survey.cutout_columns if c in valid.schema.names]
    has_stamp = F.col(f"`{stamps[0]}`.stampData").isNotNull() if stamps else F.lit(False)
    available[HAS_STAMP] = (has_stamp, "boolean")
    return available, staged_expr


def at_most(frame, max_files):
    """The frame in at most ``max_files`` partitions (merged without a shuffle; None: as it is)."""
    if max_files and frame.rdd.getNumPartitions() > max_files:
        return frame.coalesce(max_files)
    return frame


def stage_alerts(config, valid, builders, run_dir, summary, max_files=None):
    """Stage the night's alerts for the alert-source builders, in at most ``max_files``
    files if given; returns (directory, types, sort columns of each staged file)."""
    survey = config.survey
    t1 = time.time()
    available, rule_exprs = available_columns(valid, survey)
    available[DERIVED_CLASS] = (class_column({r: f"__in_{r}" for r in rule_exprs}, survey.hosts), "string")
    wanted = list(dict.fromkeys(n for b in builders for n in b.stage(available, survey)))
    needs_class = DERIVED_CLASS in wanted
    frame = valid
    if needs_class:  # rule inputs as plain columns, so the rule reads flattened names
        frame = frame.select("*", *[expr.alias(f"__in_{r}") for r, expr in rule_exprs.items()])
    key_cols = alert_key_inputs(survey)  # objectId, jd, candid: the main table's key order
    staged = frame.select(*[available[n][0].alias(n) for n in wanted])
    staged_dir = run_dir / "staging" / "alerts"
    sort_by = [c for c in key_cols if c in wanted]
    if sort_by:  # key order within each file; the driver merges the files into one order
        staged = at_most(staged, max_files).sortWithinPartitions(*[F.col(f"`{c}`") for c in sort_by])
    (staged.write.mode("overwrite").option("parquet.block.size", STAGE_ROW_GROUP_BYTES).option("compression", "none").parquet(str(staged_dir)))
    summary["seconds"]["staging"] = round(time.time() - t1, 2)
    log.info("night staged (%d columns) in %.1f s", len(wanted), time.time() - t1)
    return staged_dir, {n: available[n][1] for n in wanted}, sort_by


def stage_history(config, valid, run_dir, summary, counts, builders, max_files=None):
    """Stage the history entries of the night's alerts (explode, set aside entries without a
    valid time, keep those a history table keeps, sort by objectId and time); returns
    (directory, types, sort columns), or None if the night has no history. The tables pack
    them into rows (``tables.history``)."""
    survey = config.survey
    t1 = time.time()
    history = {"entries": counts.get("entries") or 0, "rejected": counts.get("no_time") or 0}
    if survey.history_column not in valid.schema.names:
        summary["history"] = {"entries": 0, "rejected": 0, "staged": 0}
        return None
    element = valid.schema[survey.history_column].dataType.elementType
    fields = [f for f in survey.history_fields if f in element.names]
    fam = survey.original_family
    oid = datalake.column_of(survey.object_id)
    exploded = valid.select(oid.alias(history_tables.OBJECT), F.explode(F.col(f"`{survey.history_column}`")).alias("__h"))
    cols, types = [F.col(history_tables.OBJECT)], {history_tables.OBJECT: "string"}
    for f in fields:
        dt = element[f].dataType
        cols.append(cell_value(F.col("__h").getField(f), dt).alias(f"{fam}:{f}"))
        types[f"{fam}:{f}"] = type_name(dt)
    entries = exploded.select(*cols)
    jd = F.col(f"`{fam}:jd`")
    bad = datalake.bad_time(jd, survey)
    if history["rejected"]:
        target = run_dir / "rejects_history"
        why = (F.when(jd.isNull() | F.isnan(jd), F.lit(f"history entry without {fam}:jd"))
               .otherwise(F.concat(F.lit(f"history entry {fam}:jd out of the survey's time range "
                                         f"[{survey.time_min}, {survey.time_max}): "), jd.cast("string"))))
        entries.filter(bad).withColumn(datalake.REASON, why).write.mode("overwrite").parquet(str(target))
        history["rejects_file"] = str(target)
        log.warning("%d history entries without a valid time set aside in %s", history["rejected"], target)
    staged_dir = run_dir / "staging" / "history"
    # only entries some history table keeps are staged (the tables' rules, in Spark)
    kept = F.lit(False)
    for table in builders:
        kept = kept | table.spark_filter(survey)
    unique = [history_tables.OBJECT, f"{fam}:jd"] + ([f"{fam}:{survey.history_detection_id}"]
                                                     if survey.history_detection_id in fields else [])
    staged = entries.filter(~bad & kept)
    # sorted by objectId and time, so that each batch packs into rows (and repeats are adjacent)
    (at_most(staged, max_files).sortWithinPartitions(*[F.col(f"`{u}`") for u in unique])
     .write.mode("overwrite").option("parquet.block.size", STAGE_ROW_GROUP_BYTES).option("compression", "none").parquet(str(staged_dir)))
    history["staged"] = sum(pq.ParquetFile(p).metadata.num_rows for p in staged_dir.glob("*.parquet"))
    summary["history"] = history
    summary["seconds"]["history_staging"] = round(time.time() - t1, 2)
    log.info("history staged (%d entries) in %.1f s", history["staged"], time.time() - t1)
    return staged_dir, types, unique
