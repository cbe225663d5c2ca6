"""The Spark side of a push: what to stage, and staging the night's alerts and history.

The night is projected once (``alert_frame``): the union of the columns every table needs
(named ``family:qualifier`` for cells, ``__name`` for helper columns: the class of Fink's
rule, the time-index salt, each alert's datalake file and row) and, for the history tables,
each alert's history entries (``prv_candidates``) as one nested column (``HISTORY``): the
entries some history table keeps, with a valid time, their fields converted as cells are.
When the driver writes (the embedded store), the frame is staged (``stage``): parquet files
in the work directory, each sorted by the row key's first columns, which the driver merges
into one key order and from which it derives every table, the history ones included. When
the executors write (HBase), nothing is staged: they write from the frame's own partitions,
the history exploded one entry per row (``history_frame``). When the driver writes from
local datalake files (``push.history_pass.usable``), ``HISTORY`` is left out
(``history_rows``): the writer reads the entries from the files itself, by the staged
``FILE``/``FILE_ROW`` of each alert, and Spark only counts them (``ENTRIES``, ``NO_TIME``).
"""
from __future__ import annotations

import logging

from pyspark.sql import Observation
from pyspark.sql import functions as F

from fink_ingest import datalake
from fink_ingest.classification import class_column
from fink_ingest.tables import history as history_tables
from fink_ingest.tables.base import (DERIVED_CLASS, FILE, FILE_ROW, HAS_STAMP, SALT, alert_cells,
                                     alert_key_inputs, cell_value, type_name)

log = logging.getLogger(__name__)
# Helper column of a group of nights pushed together: the night (YYYYMMDD) of an alert's file.
NIGHT = "__night"
# Staged column of each alert's kept history entries: list<struct<field...>> (``alert_frame``).
HISTORY = "__history"
# Per alert, its history entries and those without a valid time (``alert_frame`` with
# ``history_counts``): staged beside the alert, summed per night by the driver (``staged_totals``).
ENTRIES, NO_TIME = "__entries", "__no_time"
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


def alert_frame(config, valid, builders, keep=(), history_builders=(), keyed=False, history_counts=False,
                history_rows=False):
    """The night's alerts as the alert-source builders need them (not written), plus the
    columns of ``valid`` named in ``keep`` (e.g. ``NIGHT``) and, given history builders and a
    night with a history column, each alert's kept history entries (``HISTORY``, see
    ``history_entries``) with the key columns they are sorted by (``keyed``: those columns
    whatever the builders, for a writer that counts objects and copies in key order).
    ``history_counts``: with ``HISTORY``, each alert's entries and those without a valid time
    (``ENTRIES``, ``NO_TIME``: two integers an alert, which no table writes).
    ``history_rows``: instead of ``HISTORY``, each alert's datalake file and row (``FILE``,
    ``FILE_ROW``), from which ``push.history_pass`` reads the history (the counts as above).

    Returns
    -------
    (pyspark.sql.DataFrame, dict of str to str, list of str)
        One column per name the builders ask for (``family:qualifier`` cells, ``__name``
        helpers), their types (``HISTORY`` left out: see ``history_types``), and the key
        columns the rows sort by (objectId, jd, candid).
    """
    survey = config.survey
    available, rule_exprs = available_columns(valid, survey)
    available[DERIVED_CLASS] = (class_column({r: f"__in_{r}" for r in rule_exprs}, survey.hosts), "string")
    wanted = list(dict.fromkeys(n for b in builders for n in b.stage(available, survey)))
    history = history_entries(config, valid, history_builders) if history_builders else None
    if history is not None and history_rows:  # read from the datalake by the writer instead
        wanted = list(dict.fromkeys(wanted + [FILE, FILE_ROW]))
    if history is not None or keyed:  # the history tables' rows follow the alerts' key order
        wanted = list(dict.fromkeys(wanted + [c for c in alert_key_inputs(survey) if c in available]))
    frame = valid
    if DERIVED_CLASS in wanted:  # rule inputs as plain columns, so the rule reads flattened names
        frame = frame.select("*", *[expr.alias(f"__in_{r}") for r, expr in rule_exprs.items()])
    counts = []
    if history is not None and history_counts:  # the history's leaf ``jd`` alone is read for them
        times = F.col(f"`{survey.history_column}`.jd")
        counts = [F.coalesce(F.size(times), F.lit(0)).alias(ENTRIES),
                  F.coalesce(F.size(F.filter(times, lambda t: datalake.bad_time(t, survey))), F.lit(0)).alias(NO_TIME)]
    staged = frame.select(*[available[n][0].alias(n) for n in wanted],
                          *([history.alias(HISTORY)] if history is not None and not history_rows else []),
                          *[F.col(f"`{k}`") for k in keep], *counts)
    sort_by = [c for c in alert_key_inputs(survey) if c in wanted]  # the main table's key order
    return staged, {n: available[n][1] for n in wanted}, sort_by


def _history_fields(valid, survey):
    """The history's entry type and the survey's history fields it has (None: no history)."""
    if survey.history_column not in valid.schema.names:
        return None, []
    element = valid.schema[survey.history_column].dataType.elementType
    return element, [f for f in survey.history_fields if f in element.names]


def history_types(valid, survey):
    """Types of the history fields as staged (dict ``family:field`` -> type name; empty
    without a history column)."""
    element, fields = _history_fields(valid, survey)
    return {f"{survey.original_family}:{f}": type_name(element[f].dataType) for f in fields}


def _kept_entry(entry, builders, survey):
    """Spark condition on one history entry (a struct column): some history table keeps it."""
    kept = F.lit(False)
    for table in builders:
        kept = kept | table.spark_filter(survey, entry.getField)
    return kept


def history_entries(config, valid, builders):
    """Each alert's history entries that some history builder keeps and that have a valid
    time, as a Spark column ``list<struct<field...>>`` (the survey's history fields, values
    converted as cells are); None if the night has no history column. Entries without a
    valid time are counted by the push and set aside by ``history_frame``."""
    survey = config.survey
    element, fields = _history_fields(valid, survey)
    if element is None:
        return None

    def entry(h):
        return F.struct(*[cell_value(h.getField(f), element[f].dataType).alias(f) for f in fields])

    def kept(h):
        return ~datalake.bad_time(h.getField("jd"), survey) & _kept_entry(h, builders, survey)

    return F.transform(F.filter(F.col(f"`{survey.history_column}`"), kept), entry)


def history_frame(config, valid, builders, keep=()):
    """The night's history entries the history builders keep, with a valid time (not written),
    with the columns of ``valid`` named in ``keep``.

    Returns
    -------
    (pyspark.sql.DataFrame, pyspark.sql.DataFrame, dict of str to str, list of str) or None
        The kept entries (``objectId`` and one ``family:field`` column per history field),
        the entries set aside for want of a valid time (with a ``reason``), the types, and
        the sort columns (objectId, jd, candid); None if the night has no history column.
    """
    survey = config.survey
    element, fields = _history_fields(valid, survey)
    if element is None:
        return None
    fam = survey.original_family
    oid = datalake.column_of(survey.object_id)
    exploded = valid.select(oid.alias(history_tables.OBJECT), *[F.col(f"`{k}`") for k in keep],
                            F.explode(F.col(f"`{survey.history_column}`")).alias("__h"))
    cols, types = [F.col(history_tables.OBJECT), *[F.col(f"`{k}`") for k in keep]], {history_tables.OBJECT: "string"}
    for f in fields:
        dt = element[f].dataType
        cols.append(cell_value(F.col("__h").getField(f), dt).alias(f"{fam}:{f}"))
        types[f"{fam}:{f}"] = type_name(dt)
    entries = exploded.select(*cols, F.col("__h"))
    jd = F.col(f"`{fam}:jd`")
    bad = datalake.bad_time(jd, survey)
    why = (F.when(jd.isNull() | F.isnan(jd), F.lit(f"history entry without {fam}:jd"))
           .otherwise(F.concat(F.lit(f"history entry {fam}:jd out of the survey's time range "
                                     f"[{survey.time_min}, {survey.time_max}): "), jd.cast("string"))))
    kept = _kept_entry(F.col("__h"), builders, survey)  # only entries some history table keeps
    sort_by = [history_tables.OBJECT, f"{fam}:jd"] + ([f"{fam}:{survey.history_detection_id}"]
                                                      if survey.history_detection_id in fields else [])
    return (entries.filter(~bad & kept).drop("__h"), entries.filter(bad).drop("__h").withColumn(datalake.REASON, why),
            types, sort_by)


def stage(frame, location, sort_by, max_files=None, partition=None):
    """Write a frame as staged parquet files at ``location`` (a path or URI), each sorted by
    ``sort_by``, in at most ``max_files`` files (no shuffle) per value of ``partition`` (a
    column: the files of each value under ``<location>/<partition>=<value>``), uncompressed.

    Returns
    -------
    int
        Rows the executors wrote, counted as they wrote them (Spark's ``Observation``): what
        the driver must then find there.
    """
    order = ([partition] if partition else []) + list(sort_by or [])
    if order:  # key order within each file; the driver merges the files into one order
        frame = at_most(frame, max_files).sortWithinPartitions(*[F.col(f"`{c}`") for c in order])
    written = Observation("staged")
    writer = (frame.observe(written, F.count(F.lit(1)).alias("rows")).write.mode("overwrite")
              .option("parquet.block.size", STAGE_ROW_GROUP_BYTES).option("compression", "none"))
    (writer.partitionBy(partition) if partition else writer).parquet(location)
    return written.get["rows"]


def profile_by(frame, per, group_by=()):
    """``profile`` of each value of the column ``per`` (e.g. each night), in one Spark job:
    dict of value to (rows, present columns, counts by value)."""
    rows = _profile_rows(frame, [per] + [k for k in group_by if k != per])
    out = {}
    for value in {r[per] for r in rows}:
        out[value] = _summarise(frame.columns, [r for r in rows if r[per] == value], [k for k in group_by if k in frame.columns])
    return out


def _profile_rows(frame, keys):
    names = frame.columns
    keys = [k for k in keys if k in names]
    return frame.groupBy(*[F.col(f"`{k}`") for k in keys]).agg(
        F.count(F.lit(1)).alias("__rows"), *[F.count(F.col(f"`{n}`")).alias(f"__c{i}") for i, n in enumerate(names)]
    ).collect()


def _summarise(names, rows, keys):
    present = {n for i, n in enumerate(names) if sum(r[f"__c{i}"] for r in rows)}
    counts = {k: {} for k in keys}
    for r in rows:
        for k in keys:
            counts[k][r[k]] = counts[k].get(r[k], 0) + r["__rows"]
    return sum(r["__rows"] for r in rows), present, counts


def profile(frame, group_by=()):
    """What the executors' writes need to know of a frame before writing it, in one Spark job
    (they read no staged file whose footers would tell): which columns hold a value, and how
    many rows hold each value of a few columns (the statistics table's band and class).

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
    group_by : list of str
        Columns to count rows by value (those absent from the frame are left out).

    Returns
    -------
    (int, set of str, dict of str to dict)
        Rows; columns with at least one non-null value; column -> {value: rows}.
    """
    keys = [k for k in group_by if k in frame.columns]
    return _summarise(frame.columns, _profile_rows(frame, keys), keys)
