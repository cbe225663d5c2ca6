"""Read one night of the datalake with Spark, setting aside what cannot be read.

Files are listed through Hadoop's FileSystem API (so ``file://``, ``hdfs://`` and ``s3a://``
work alike) and each parquet footer is checked before Spark reads the night: a truncated or
unreadable file is listed with its reason and left out, the rest of the night goes through.
Rows are then validated: a row without object id, alert id or time, or with a position
outside ICRS ranges, gets a ``reason`` and is set aside.
"""
from __future__ import annotations

import dataclasses
import logging
import re

from pyspark.sql import functions as F

from fink_ingest.errors import InputError

log = logging.getLogger(__name__)
REASON = "reason"
FILE = "__file"       # URI of the file an alert was read from
FILE_ROW = "__row"     # the alert's row index in that file


@dataclasses.dataclass
class NightFiles:
    """Parquet files of a night: readable ones with their row counts, and rejected ones.

    Attributes
    ----------
    good : dict of str to int or None
        URI -> rows in the footer (None where the footer could not be read from Python).
    rejected : list of dict
        ``{"file": uri, "reason": text}``.
    row_groups : dict of str to numpy.ndarray
        URI -> first row of each row group (read with the footer; for cutout pointers).
    """

    good: dict
    rejected: list
    row_groups: dict = dataclasses.field(default_factory=dict)  # URI -> first row of each row group
    data_bytes: dict = dataclasses.field(default_factory=dict)  # URI -> {root column: compressed bytes}
    schemas: dict = dataclasses.field(default_factory=dict)     # URI -> the file's Arrow schema (text)

    def schema_key(self):
        """What tells nights that can be read together (one Spark schema, each night's own
        types): the distinct schemas of the good files; unique if a footer was unreadable."""
        if any(uri not in self.schemas for uri in self.good):
            return ("unknown", id(self))
        return tuple(sorted({self.schemas[uri] for uri in self.good}))

    def reject(self, uri, reason):
        """Move a file from ``good`` to ``rejected``."""
        self.good.pop(uri, None)
        self.rejected.append({"file": uri, "reason": reason})

    def input_bytes(self, leave_out=()):
        """Compressed bytes of the good files' columns, but those named in ``leave_out``
        (e.g. the stamps, which the store does not copy); None if a footer was unreadable."""
        if any(uri not in self.data_bytes for uri in self.good):
            return None
        return sum(n for uri in self.good for c, n in self.data_bytes[uri].items() if c not in leave_out)

    def hidden_columns(self, read_columns):
        """Root columns a good file's footer has that Spark did not read (dict of URI to
        sorted list): a file whose Spark schema metadata
        (``org.apache.spark.sql.parquet.row.metadata``) omits columns added later, e.g. by
        rewriting it with another tool, hides them from Spark."""
        read = set(read_columns)
        out = {}
        for uri in self.good:
            missing = sorted(set(self.data_bytes.get(uri, {})) - read)
            if missing:
                out[uri] = missing
        return out

    @property
    def footer_rows(self):
        """Sum of footer row counts of the good files, or None if any is unknown."""
        counts = list(self.good.values())
        return None if any(c is None for c in counts) else sum(counts)


def open_uri(uri):
    """Open a datalake file (``file:``, ``hdfs://``, ...) for reading with pyarrow.

    Returns
    -------
    pyarrow.NativeFile or None
        None if pyarrow cannot reach that scheme here (e.g. ``s3a://``, Hadoop's name).
    """
    from pyarrow import fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(uri if "://" in uri else uri.replace("file:", "file://", 1))
    except Exception:  # noqa: BLE001 - an unsupported scheme: the caller falls back
        return None
    return filesystem.open_input_file(path)


def _footer(uri):
    """Facts of a parquet file from its footer (pyarrow): rows, row-group starts, compressed
    bytes per root column, and the Arrow schema as text; Nones if pyarrow cannot reach the
    URI (Spark checks such files)."""
    import numpy as np
    import pyarrow.parquet as pq

    handle = open_uri(uri)
    if handle is None:
        return None, None, None, None
    with handle as fh:
        meta = pq.ParquetFile(fh).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    columns = {}
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        for c in range(group.num_columns):
            chunk = group.column(c)
            root = chunk.path_in_schema.split(".", 1)[0]
            columns[root] = columns.get(root, 0) + chunk.total_compressed_size
    schema = meta.schema.to_arrow_schema()
    for name in schema.names:  # columns of no row group (empty file)
        columns.setdefault(name, 0)
    return (meta.num_rows, np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64), columns,
            schema.remove_metadata().to_string(show_field_metadata=False))


def row_group_starts(uri):
    """First row of each row group of a parquet file, from its footer.

    Returns
    -------
    numpy.ndarray of int64, shape (n_row_groups,), or None if pyarrow cannot reach the URI
    """
    return _footer(uri)[1]


def list_nights(spark, datalake_root):
    """Nights present in a datalake (``science/year=*/month=*/day=*`` directories).

    Returns
    -------
    list of datetime.date, sorted
    """
    import datetime as dt

    jvm = spark._jvm
    pattern = jvm.org.apache.hadoop.fs.Path(f"{str(datalake_root).rstrip('/')}/science/year=*/month=*/day=*")
    fs = pattern.getFileSystem(spark._jsc.hadoopConfiguration())
    nights = []
    for status in fs.globStatus(pattern) or []:
        parts = status.getPath().toString().rstrip("/").split("/")[-3:]
        try:
            y, m, d = (int(p.split("=", 1)[1]) for p in parts)
            nights.append(dt.date(y, m, d))
        except (ValueError, IndexError):
            log.warning("%s is not a night partition; ignored", status.getPath().toString())
    return sorted(set(nights))


def list_night(spark, directory):
    """List and check the parquet files of a night.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    directory : str
        The night's partition (path or URI).

    Returns
    -------
    NightFiles

    Raises
    ------
    InputError
        If the directory does not exist or holds no parquet file.
    """
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(directory)
    fs = hpath.getFileSystem(spark._jsc.hadoopConfiguration())
    if not fs.exists(hpath):
        raise InputError(f"night partition {directory} does not exist")
    good, rejected, groups, data, schemas = {}, [], {}, {}, {}
    for status in sorted(fs.listStatus(hpath), key=lambda s: s.getPath().toString()):
        name = status.getPath().getName()
        uri = status.getPath().toString()
        if status.isDirectory() or name.startswith(("_", ".")) or not name.endswith(".parquet"):
            continue
        try:
            good[uri], starts, columns, schema = _footer(uri)
            if starts is not None:
                groups[uri], data[uri], schemas[uri] = starts, columns, schema
        except Exception as exc:  # noqa: BLE001 - any failure to read a footer sets the file aside
            reason = f"unreadable parquet: {type(exc).__name__}: {exc}"
            log.error("%s: %s; set aside", uri, reason)
            rejected.append({"file": uri, "reason": reason})
    if not good and not rejected:
        raise InputError(f"night partition {directory} holds no parquet file")
    return NightFiles(good=good, rejected=rejected, row_groups=groups, data_bytes=data, schemas=schemas)


def read_alerts(spark, files):
    """Read the good files of a night into one DataFrame (schemas merged by name).

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    files : NightFiles

    Returns
    -------
    pyspark.sql.DataFrame or None
        None if no file is readable.
    """
    if not files.good:
        return None
    frame = spark.read.option("mergeSchema", "true").parquet(*files.good)
    # where each alert comes from: cutout pointers, and the rejects file's provenance
    return frame.select("*", F.col("_metadata.file_path").alias(FILE),
                        F.col("_metadata.row_index").alias(FILE_ROW))


def night_of_file(path):
    """Spark column: the night (``YYYYMMDD``) of the partition a file is in, from its path
    (``.../year=YYYY/month=MM/day=DD/file.parquet``, as ``paths.night_dir`` lays nights out)."""
    part = lambda name, width: F.lpad(F.regexp_extract(path, rf"/{name}=(\d{{1,{width}}})/", 1), width, "0")  # noqa: E731
    return F.concat(part("year", 4), part("month", 2), part("day", 2))


def column_of(survey_path):
    """Spark column of a survey path (``candidate.jd`` -> the ``jd`` field of ``candidate``)."""
    head, *rest = survey_path.split(".")
    col = F.col(f"`{head}`")
    for part in rest:
        col = col.getField(part)
    return col


def with_reason(alerts, survey):
    """Add the ``reason`` column: null for a valid row, else why the row is set aside.

    Rules, from the survey file (``schemas/<survey>.toml``): the object id is present and
    matches ``object_id_pattern``; the alert id is present and not negative (it ends every
    row key, zero-padded); the time is a finite number in ``[time_min, time_max)`` (the
    survey's life); ``ra`` in [0, 360] and ``dec`` in [-90, 90] degrees (ICRS ranges; null
    positions are invalid too). A reason quotes the bad value (ids cut at 60 characters).

    Parameters
    ----------
    alerts : pyspark.sql.DataFrame
    survey : fink_ingest.config.Survey

    Returns
    -------
    pyspark.sql.DataFrame
        ``alerts`` plus a string column ``reason``.
    """
    oid, aid, time = column_of(survey.object_id), column_of(survey.alert_id), column_of(survey.time)
    ra, dec = column_of(survey.ra), column_of(survey.dec)

    def quoted(col):
        text = col.cast("string")
        return F.concat(F.lit("'"), F.substring(text, 1, 60), F.when(F.length(text) > 60, F.lit("...'"))
                        .otherwise(F.lit("'")))

    reason = (
        F.when(oid.isNull(), F.lit(f"null {survey.object_id}"))
        .when(~oid.cast("string").rlike(survey.object_id_pattern),
              F.concat(F.lit(f"{survey.object_id} "), quoted(oid),
                       F.lit(f" does not match {survey.object_id_pattern}")))
        .when(aid.isNull(), F.lit(f"null {survey.alert_id}"))
        .when(aid.cast("long").isNull() | (aid.cast("long") < 0),
              F.concat(F.lit(f"{survey.alert_id} not a non-negative integer: "), quoted(aid)))
        .when(time.isNull() | F.isnan(time), F.lit(f"null {survey.time}"))
        .when((time < survey.time_min) | (time >= survey.time_max),
              F.concat(F.lit(f"{survey.time} out of the survey's time range [{survey.time_min}, "
                             f"{survey.time_max}): "), time.cast("string")))
        .when(ra.isNull() | F.isnan(ra) | (ra < 0) | (ra > 360),
              F.concat(F.lit(f"{survey.ra} out of [0, 360]: "), ra.cast("string")))
        .when(dec.isNull() | F.isnan(dec) | (dec < -90) | (dec > 90),
              F.concat(F.lit(f"{survey.dec} out of [-90, 90]: "), dec.cast("string")))
    )
    return alerts.withColumn(REASON, reason)


def bad_time(time, survey):
    """Spark condition: a time (days) that is null, NaN, infinite or outside the survey's
    ``[time_min, time_max)`` (history entries are checked with it too)."""
    return time.isNull() | F.isnan(time) | (time < survey.time_min) | (time >= survey.time_max)


_FAILED_FILE = re.compile(r"reading file (\S+?)\.? ")


def first_line(exc):
    """The informative line of an exception's message: the one naming the failed file if any,
    else the first (Spark errors carry a Java stack below)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    named = [line for line in lines if _FAILED_FILE.search(line + " ")]
    return (named or lines)[0][:500]


def failed_file(exc, files):
    """The night file a Spark failure names, if it is one of ``files.good``; else None.

    Spark reports ``FAILED_READ_FILE ... Encountered error while reading file <uri>``.
    """
    for match in _FAILED_FILE.finditer(str(exc)):
        named = match.group(1)
        for uri in files.good:
            if named == uri or named.replace("file:///", "file:/") == uri or named.endswith(uri.split(":", 1)[-1]):
                return uri
    return None
