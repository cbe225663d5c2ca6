"""The only reader of ``conf/`` and ``schemas/``: configuration as frozen dataclasses.

Configuration is loaded once, at the edge (the CLI or a job entry point), and passed down
as values. Files are TOML (read with the standard library's ``tomllib``).
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from fink_ingest.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONF = PROJECT_ROOT / "conf" / "fink_ingest.toml"
SCHEMAS_DIR = PROJECT_ROOT / "schemas"


@dataclasses.dataclass(frozen=True)
class Survey:
    """Which alert columns play which role, read from ``schemas/<name>.toml``.

    Attributes
    ----------
    name : str
        Survey name, e.g. ``"ztf"``.
    object_id, alert_id, time, ra, dec : str
        Column paths (``struct.field`` for nested ones) of the object id, the alert id
        (unique per alert), the alert time (days), and the position (ICRS, degrees).
    time_int_digits, time_frac_digits : int
        Widths of the time text in row keys (see ``rowkeys.format_time``).
    object_id_pattern : str
        Regular expression every object id matches (Python/Java syntax, anchored).
    time_min, time_max : float
        Alert times of the survey's life, [time_min, time_max), days.
    original_family, added_family : str
        Column families of original survey fields and of broker-added values.
    flatten : tuple of str
        Struct columns whose fields are flattened into the original family.
    original_root : tuple of str
        Root columns that are original survey fields.
    served_elsewhere, partition : tuple of str
        Root columns deliberately left out of the main table, with the reason in the file.
    schema_version : str
        Suffix of the schema row key, ``schema_<schema_version>``.
    index_summary : tuple of str
        Summary cells (``family:qualifier``) of the time, sky, class and sso index rows.
    time_buckets : int
        Salt buckets of the time index, 1..256.
    sky_order : int
        HEALPix order (NESTED) of the sky index.
    history_column : str
        The alert column listing earlier detections and upper limits.
    history_fields, upper_cells, badquality_cells : tuple of str
        History fields kept; cells of the upper-limit and bad-quality tables.
    history_detection_id : str
        History field that tells apart detections sharing a time.
    history_bucket_days : int
        Days of history packed in one row of a history table (rows start at a UTC midnight).
    cutout_columns : tuple of str
        Stamp columns of the alerts.
    hosts : tuple of str
        Extragalactic-host labels of the classification rule.
    values_only : tuple of str
        Struct columns the read layer gives as a JSON list of their values, as Fink's API does
        (``[columns] values_only``); stored with their field names.
    """

    name: str
    object_id: str
    alert_id: str
    time: str
    ra: str
    dec: str
    time_int_digits: int
    time_frac_digits: int
    object_id_pattern: str
    time_min: float
    time_max: float
    original_family: str
    added_family: str
    flatten: tuple
    original_root: tuple
    served_elsewhere: tuple
    partition: tuple
    schema_version: str
    index_summary: tuple
    time_buckets: int
    sky_order: int
    history_column: str
    history_fields: tuple
    upper_cells: tuple
    badquality_cells: tuple
    history_detection_id: str
    history_bucket_days: int
    cutout_columns: tuple
    hosts: tuple
    values_only: tuple = ()

    @property
    def leaf(self):
        """dict: role -> last path component (the column name once flattened)."""
        return {role: getattr(self, role).split(".")[-1]
                for role in ("object_id", "alert_id", "time", "ra", "dec")}


@dataclasses.dataclass(frozen=True)
class Config:
    """Run configuration, from ``conf/fink_ingest.toml`` plus command-line overrides.

    Attributes
    ----------
    datalake : str
        Datalake root (path or ``file://``/``hdfs://``/``s3a://`` URI).
    survey : Survey
        Survey description.
    table_prefix : str
        Prefix of every table name.
    store : str
        Store URL: a directory or ``sqlite:///path`` for the embedded store.
    work_dir : str
        Directory for run logs, rejects and staging data.
    spark_master : str
        Spark master URL.
    spark_options : dict of str to str
        Spark settings of the configuration file (``[spark.options]``).
    spark_overrides : dict of str to str
        Spark settings given on the command line (``--spark-conf KEY=VALUE``): they win over
        spark-submit's, which win over the file's (``fink_ingest.spark.session``).
    put_rows, stage_rows : int
        Rows per store write and per staging batch.
    write_processes : int
        Processes writing the embedded store's tables of a large night at once, the driver
        included (``push.parallel``); 1: the driver alone.
    hbase_compression : dict of str to str
        HBase codec of the tables the push creates, by table kind (keys of
        ``tables.BUILDERS``) and ``"default"`` for the kinds not named (``[hbase.compression]``;
        the store URL can replace them, see ``store.hbase.codecs``). Upper-case names of HBase's
        ``Compression.Algorithm`` (``HBASE_CODECS``). The embedded store ignores it.
    source : str
        The configuration file this was read from.
    """

    datalake: str
    survey: Survey
    table_prefix: str
    store: str
    work_dir: str
    spark_master: str
    spark_options: dict
    spark_overrides: dict
    put_rows: int
    stage_rows: int
    source: str
    write_processes: int = 2
    hbase_compression: dict = dataclasses.field(default_factory=lambda: {"default": HBASE_DEFAULT_CODEC})


# HBase's codec names (org.apache.hadoop.hbase.io.compress.Compression.Algorithm): NONE, GZ,
# LZO, SNAPPY, LZ4 in 1.x; BZIP2 and ZSTD from 2.0. Which ones a server can use depends on its
# native libraries: the push tries them first (``store.hbase.codecs``).
HBASE_CODECS = ("NONE", "GZ", "LZO", "SNAPPY", "LZ4", "BZIP2", "ZSTD")
# Works on every HBase without native libraries (GZ falls back to Java's zlib), and compresses.
HBASE_DEFAULT_CODEC = "GZ"

_TOP_KEYS = {"datalake", "survey", "table_prefix", "store", "work_dir", "spark", "batch", "hbase"}
_HBASE_KEYS = {"compression"}
_SPARK_KEYS = {"master", "options"}
_BATCH_KEYS = {"put_rows", "stage_rows", "write_processes"}
_OVERRIDABLE = {"datalake", "survey", "table_prefix", "store", "work_dir", "spark_master",
                "put_rows", "stage_rows", "spark_options"}


def _check_keys(path, where, found, allowed):
    unknown = set(found) - allowed
    if unknown:
        raise ConfigError(f"{path}: {where}{sorted(unknown)} unknown; expected keys among {sorted(allowed)}")


def _hbase_compression(path, raw):
    """``[hbase.compression]``: kind (or ``default``) -> upper-case HBase codec name."""
    hbase = raw.get("hbase", {})
    _check_keys(path, "hbase.", hbase, _HBASE_KEYS)
    given = hbase.get("compression", {})
    if not isinstance(given, dict):
        raise ConfigError(f"{path}: hbase.compression = {given!r}; expected a table of kind = \"CODEC\"")
    out = {"default": HBASE_DEFAULT_CODEC}
    for kind, codec in given.items():
        if not isinstance(codec, str) or codec.upper() not in HBASE_CODECS:
            raise ConfigError(f"{path}: hbase.compression.{kind} = {codec!r}; expected one of {list(HBASE_CODECS)}")
        out[kind] = codec.upper()
    named = set(out) - {"default"}
    if named:
        from fink_ingest.tables import BUILDERS  # only when tables are named (it imports pyspark)

        _check_keys(path, "hbase.compression.", named, set(BUILDERS))
    return out


def _resolve(base, value):
    """Resolve a relative local path against ``base``; URIs are left as they are."""
    if "://" in value:
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _read_toml(path):
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_survey(name, schemas_dir=SCHEMAS_DIR):
    """Read ``schemas/<name>.toml``.

    Raises
    ------
    ConfigError
        If the file is missing or a key is missing or unknown.
    """
    path = Path(schemas_dir) / f"{name}.toml"
    if not path.exists():
        known = sorted(p.stem for p in Path(schemas_dir).glob("*.toml"))
        raise ConfigError(f"survey {name!r}: no {path}; known surveys: {known}")
    raw = _read_toml(path)
    try:
        s, fam, col = raw["survey"], raw["families"], raw["columns"]
        survey = Survey(
            name=s["name"], object_id=s["object_id"], alert_id=s["alert_id"], time=s["time"],
            ra=s["ra"], dec=s["dec"], time_int_digits=int(s["time_int_digits"]),
            time_frac_digits=int(s["time_frac_digits"]),
            object_id_pattern=s["object_id_pattern"], time_min=float(s["time_min"]),
            time_max=float(s["time_max"]),
            original_family=fam["original"], added_family=fam["added"],
            flatten=tuple(col["flatten"]), original_root=tuple(col["original_root"]),
            served_elsewhere=tuple(col["served_elsewhere"]), partition=tuple(col["partition"]),
            schema_version=raw["tables"]["schema_version"],
            index_summary=tuple(raw["index"]["summary"]),
            time_buckets=int(raw["index"]["time_buckets"]),
            sky_order=int(raw["index"]["sky_order"]),
            history_column=raw["history"]["column"],
            history_fields=tuple(raw["history"]["fields"]),
            upper_cells=tuple(raw["history"]["upper_cells"]),
            badquality_cells=tuple(raw["history"]["badquality_cells"]),
            history_detection_id=raw["history"]["detection_id"],
            history_bucket_days=int(raw["history"]["bucket_days"]),
            cutout_columns=tuple(raw["cutouts"]["columns"]),
            hosts=tuple(raw["classification"]["extragalactic_hosts"]),
            values_only=tuple(col.get("values_only", ())),
        )
        if not 1 <= survey.time_buckets <= 256:
            raise ConfigError(f"{path}: index.time_buckets = {survey.time_buckets}; expected 1..256")
        try:
            re.compile(survey.object_id_pattern)
        except re.error as exc:
            raise ConfigError(f"{path}: survey.object_id_pattern = {survey.object_id_pattern!r}: {exc}") from None
        if not survey.time_min < survey.time_max < 10 ** survey.time_int_digits:
            raise ConfigError(f"{path}: survey.time_min/time_max = {survey.time_min}/{survey.time_max}: expected "
                              f"time_min < time_max < 10**time_int_digits")
        if survey.history_bucket_days < 1:
            raise ConfigError(f"{path}: history.bucket_days = {survey.history_bucket_days}; expected >= 1")
        return survey
    except KeyError as exc:
        raise ConfigError(f"{path}: missing key {exc.args[0]!r}") from None


def load_config(path=None, **overrides):
    """Load the configuration file and apply command-line overrides.

    Parameters
    ----------
    path : str or Path, optional
        TOML file; default ``conf/fink_ingest.toml`` of this project.
    **overrides
        Values that replace the file's (``None`` means "not given"): ``datalake``,
        ``survey``, ``table_prefix``, ``store``, ``work_dir``, ``spark_master``,
        ``put_rows``, ``stage_rows``, ``spark_options`` (list of ``KEY=VALUE``: Spark settings
        that win over the file's and spark-submit's). Relative paths given here are relative
        to the current directory.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        If the file is missing, not TOML, or has an unknown or ill-typed key.
    """
    path = Path(path or DEFAULT_CONF).resolve()
    raw = _read_toml(path)
    _check_keys(path, "", raw, _TOP_KEYS)
    spark = raw.get("spark", {})
    batch = raw.get("batch", {})
    _check_keys(path, "spark.", spark, _SPARK_KEYS)
    _check_keys(path, "batch.", batch, _BATCH_KEYS)
    bad = set(overrides) - _OVERRIDABLE
    if bad:
        raise ConfigError(f"override(s) {sorted(bad)} unknown; expected among {sorted(_OVERRIDABLE)}")
    base = path.parent
    options = {str(k): str(v) for k, v in spark.get("options", {}).items()}
    given = {}
    for item in overrides.pop("spark_options", None) or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key:
            raise ConfigError(f"Spark option {item!r}: expected KEY=VALUE")
        given[key.strip()] = value.strip()
    values = {
        "datalake": _resolve(base, raw.get("datalake", "datalake")),
        "survey": raw.get("survey", "ztf"),
        "table_prefix": raw.get("table_prefix", "ztf"),
        "store": _resolve(base, raw.get("store", "store")),
        "work_dir": _resolve(base, raw.get("work_dir", "work")),
        "spark_master": spark.get("master", "local[*]"),
        "put_rows": batch.get("put_rows", 5000),
        "stage_rows": batch.get("stage_rows", 20000),
        "write_processes": batch.get("write_processes", 2),
    }
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("datalake", "store", "work_dir"):
            value = _resolve(Path.cwd(), str(value))
        values[key] = value
    for key in ("put_rows", "stage_rows", "write_processes"):
        if not isinstance(values[key], int) or values[key] <= 0:
            raise ConfigError(f"{path}: batch.{key} = {values[key]!r}; expected a positive integer")
    return Config(survey=load_survey(values.pop("survey")), spark_options=options, spark_overrides=given,
                  source=str(path), hbase_compression=_hbase_compression(path, raw), **values)


def load_field_docs(name, schemas_dir=SCHEMAS_DIR):
    """One-line descriptions of the columns a survey's alerts hold, from
    ``schemas/<name>_fields.toml`` (served by ``/api/v1/schema``).

    Returns
    -------
    dict of str to dict of str to str
        Section (``original``, ``added``, ``cutouts``) -> field name -> description; empty
        if the survey has no such file.

    Raises
    ------
    ConfigError
        If the file is not TOML, or a section is not a table of text.
    """
    path = Path(schemas_dir) / f"{name}_fields.toml"
    if not path.exists():
        return {}
    raw = _read_toml(path)
    for section, fields in raw.items():
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise ConfigError(f"{path}: [{section}] must map field names to one-line descriptions (text)")
    return raw
