"""Lay out real alert files (parquet, Avro) as a Fink datalake partitioned by night.

The night of an alert is the UTC date of ``candidate.jd``. The output tree is
``<prefix>/science/year=YYYY/month=MM/day=DD/part-00000-<source-tag>.parquet``,
written so that Apache Spark 4 reads it (see :func:`spark_schema`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fink_ingest.errors import InputError

log = logging.getLogger(__name__)

JD_UNIX_EPOCH = 2440587.5  # Julian Date of 1970-01-01T00:00:00 UTC, days
PARQUET_SUFFIXES = (".parquet", ".parq")
AVRO_SUFFIXES = (".avro",)
WRITE_OPTIONS = dict(compression="snappy", coerce_timestamps="us", allow_truncated_timestamps=True)
_AVRO_BATCH = 5_000  # Avro records converted to Arrow at once
_PRIMITIVES = {
    "null": pa.null(), "boolean": pa.bool_(), "int": pa.int32(), "long": pa.int64(),
    "float": pa.float32(), "double": pa.float64(), "bytes": pa.binary(), "string": pa.string(),
}
_LOGICAL = {
    "timestamp-millis": pa.timestamp("ms", tz="UTC"), "timestamp-micros": pa.timestamp("us", tz="UTC"),
    "local-timestamp-millis": pa.timestamp("ms"), "local-timestamp-micros": pa.timestamp("us"),
    "date": pa.date32(), "time-millis": pa.time32("ms"), "time-micros": pa.time64("us"), "uuid": pa.string(),
}


# ---------------------------------------------------------------------------- Arrow types
def avro_to_arrow_schema(avro_schema: dict) -> pa.Schema:
    """Derive an Arrow schema from a parsed Avro record schema, keeping every field.

    Parameters
    ----------
    avro_schema : dict
        Avro writer schema of a record (as returned by ``fastavro.reader(...).writer_schema``).

    Returns
    -------
    pyarrow.Schema
        One field per Avro field, in order: records -> structs, arrays -> lists, maps -> maps,
        ``[T, "null"]`` unions -> nullable fields, other types -> non-nullable fields.

    Raises
    ------
    ValueError
        If the schema is not a record or uses a union of several non-null types.
    """
    arrow_type, _ = _avro_type(avro_schema, {}, "")
    if not pa.types.is_struct(arrow_type):
        raise ValueError(f"top-level Avro schema is a {arrow_type}, not a record")
    return pa.schema(list(arrow_type))


def _avro_type(schema, names: dict, where: str) -> tuple[pa.DataType, bool]:
    """Return (Arrow type, nullable) of one Avro schema node; ``names`` holds named types."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _PRIMITIVES[schema], schema == "null"
        if schema in names:
            return names[schema], False
        raise ValueError(f"field {where!r}: unknown Avro type name {schema!r}")
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) > 1:
            raise ValueError(f"field {where!r}: union of several non-null types {schema} is not supported")
        if not branches:
            return pa.null(), True
        return _avro_type(branches[0], names, where)[0], "null" in schema
    kind = schema["type"]
    if schema.get("logicalType") in _LOGICAL:
        return _LOGICAL[schema["logicalType"]], False
    if schema.get("logicalType") == "decimal":
        return pa.decimal128(schema["precision"], schema.get("scale", 0)), False
    if kind == "record":
        fields = []
        for fld in schema["fields"]:
            ftype, nullable = _avro_type(fld["type"], names, f"{where}.{fld['name']}".lstrip("."))
            fields.append(pa.field(fld["name"], ftype, nullable=nullable))
        arrow_type = pa.struct(fields)
    elif kind == "array":
        item, nullable = _avro_type(schema["items"], names, where + "[]")
        arrow_type = pa.list_(pa.field("element", item, nullable=nullable))
    elif kind == "map":
        value, nullable = _avro_type(schema["values"], names, where + "{}")
        arrow_type = pa.map_(pa.string(), pa.field("value", value, nullable=nullable))
    elif kind == "enum":
        arrow_type = pa.string()
    elif kind == "fixed":
        arrow_type = pa.binary(schema["size"])
    else:
        return _avro_type(kind, names, where)
    if "name" in schema:
        full = schema["name"]
        names[full] = arrow_type
        names[full.rsplit(".", 1)[-1]] = arrow_type
        if schema.get("namespace"):
            names[f"{schema['namespace']}.{full}"] = arrow_type
    return arrow_type, False


def _spark_type(arrow_type: pa.DataType, utc_timestamps: bool = False) -> pa.DataType:
    """Spark-readable version of ``arrow_type``, recursively (see :func:`spark_schema`)."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        return _spark_type(t.value_type, utc_timestamps)
    if pa.types.is_null(t):
        return pa.string()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz=t.tz if t.tz or not utc_timestamps else "UTC")
    if pa.types.is_struct(t):
        return pa.struct([_spark_field(f, utc_timestamps) for f in t])
    if pa.types.is_map(t):
        return pa.map_(_spark_field(t.key_field, utc_timestamps), _spark_field(t.item_field, utc_timestamps))
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
        make = pa.large_list if pa.types.is_large_list(t) else pa.list_
        return make(_spark_field(t.value_field, utc_timestamps))
    return t


def _spark_field(f: pa.Field, utc_timestamps: bool) -> pa.Field:
    return f.with_type(_spark_type(f.type, utc_timestamps))


def spark_schema(schema: pa.Schema, utc_timestamps: bool = False) -> pa.Schema:
    """Return ``schema`` with every type, at any nesting depth, made readable by Spark 4.

    Parameters
    ----------
    schema : pyarrow.Schema
        Schema of alerts as read from parquet or derived from Avro.
    utc_timestamps : bool
        Tag naive timestamps as UTC. True for files Spark wrote: their INT96
        timestamps were Spark ``TimestampType`` instants, and a naive parquet
        timestamp would come back in Spark as ``TIMESTAMP_NTZ``.

    Returns
    -------
    pyarrow.Schema
        Same field names, order and nullability; dictionaries decoded to their value
        type, ``null`` -> ``string`` (Spark has no void column in parquet), timestamps
        in microseconds. Spark's footer keys (``org.apache.spark.*``) and the ``pandas``
        key are dropped: they describe the source columns and would go stale.
    """
    meta = {k: v for k, v in (schema.metadata or {}).items()
            if not (k.startswith(b"org.apache.spark.") or k == b"pandas")}
    return pa.schema([_spark_field(f, utc_timestamps) for f in schema], metadata=meta or None)


def _written_by_spark(schema: pa.Schema) -> bool:
    """True when a parquet footer says Spark wrote the file (its timestamps are UTC instants)."""
    return b"org.apache.spark.version" in (schema.metadata or {})


def to_spark(table: pa.Table, utc_timestamps: bool = False) -> pa.Table:
    """Cast ``table`` (n rows) to the :func:`spark_schema` of its schema; returns the same n rows.

    Values are kept, except that nanoseconds are truncated to microseconds.
    ``utc_timestamps`` is as for :func:`spark_schema`.
    """
    target = spark_schema(table.schema, utc_timestamps)
    if target.equals(table.schema, check_metadata=True):
        return table
    return table.replace_schema_metadata(None).cast(target.remove_metadata(), safe=False) \
        .replace_schema_metadata(target.metadata)


# ---------------------------------------------------------------------------- nights
def _night_days(jd: np.ndarray) -> np.ndarray:
    """Night (UTC date) of Julian Dates (days, no NaN) as int64 days since 1970-01-01, same shape."""
    return np.floor(np.asarray(jd, dtype=np.float64) - JD_UNIX_EPOCH).astype(np.int64)


def night_dir(prefix: str | os.PathLike, day: np.datetime64 | str) -> Path:
    """``<prefix>/science/year=YYYY/month=MM/day=DD``: the directory of night ``day``.

    ``day`` is a ``numpy.datetime64``, ``datetime.date`` or ISO string (UTC date).
    """
    y, m, d = str(np.datetime64(day, "D")).split("-")
    return Path(prefix) / "science" / f"year={y}" / f"month={m}" / f"day={d}"


def candidate_jd(table: pa.Table, name: str) -> np.ndarray:
    """Julian Date ``candidate.jd`` (days, float64, shape (n,), NaN where null) of n alerts.

    Raises InputError, naming the file ``name``, if ``table`` has no ``candidate.jd``.
    """
    if "candidate" not in table.column_names or not pa.types.is_struct(table.schema.field("candidate").type) \
            or table.schema.field("candidate").type.get_field_index("jd") < 0:
        raise InputError(f"{name}: no candidate.jd column, not a ZTF alert file")
    jd = pc.struct_field(table["candidate"], "jd")
    return jd.to_numpy().astype(np.float64) if jd.null_count == 0 else \
        pc.fill_null(jd.cast(pa.float64()), np.nan).to_numpy()


# ---------------------------------------------------------------------------- discovery
@dataclass
class _Source:
    tag: str
    kind: str  # "parquet" or "avro"
    paths: list[Path] = field(default_factory=list)


def _kind(path: Path, sniff: bool = False) -> str | None:
    """"parquet", "avro" or None, from the file name suffix, else (``sniff``) from the magic bytes."""
    name = path.name.lower()
    kind = "parquet" if name.endswith(PARQUET_SUFFIXES) else "avro" if name.endswith(AVRO_SUFFIXES) else None
    if kind is None and sniff:
        with open(path, "rb") as fh:
            kind = {b"PAR1": "parquet", b"Obj\x01": "avro"}.get(fh.read(4))
    return kind


def find_alert_files(inputs, rejected: list) -> list[tuple[Path, str]]:
    """Expand files and directories to the alert files they hold.

    Parameters
    ----------
    inputs : str, path or sequence of them
        Files, or directories searched recursively; hidden and ``_``-prefixed entries
        (Spark's ``_SUCCESS``, ``_temporary``, ``.crc``) and other suffixes are skipped.
    rejected : list
        Receives ``(path, reason)`` for a missing path, an empty directory, or a file
        given by name that is neither parquet nor Avro (by suffix, then magic bytes).

    Returns
    -------
    list of (pathlib.Path, str)
        Resolved paths with their kind ``"parquet"`` or ``"avro"``, sorted, no duplicates.
    """
    found: dict[Path, str] = {}
    for item in [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs:
        path = Path(item)
        if not path.exists():
            rejected.append((str(path), "does not exist"))
        elif path.is_dir():
            hits = [(p, _kind(p)) for p in sorted(path.rglob("*")) if p.is_file()
                    and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)]
            hits = [(p, k) for p, k in hits if k]
            if not hits:
                rejected.append((str(path), "no parquet or Avro file found in this directory"))
            found.update((p.resolve(), k) for p, k in hits)
        else:
            try:
                kind = _kind(path, sniff=True)
            except OSError as exc:
                rejected.append((str(path), f"cannot be opened: {exc.strerror or exc}"))
                continue
            if kind is None:
                rejected.append((str(path), "not a parquet or Avro file (unknown suffix and magic bytes)"))
            else:
                found[path.resolve()] = kind
    return sorted(found.items())


def _tag(text: str) -> str:
    for suffix in (".parquet", ".parq", ".avro", ".snappy"):
        text = text[: -len(suffix)] if text.lower().endswith(suffix) else text
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:80] or "source"


def _group_sources(files: list[tuple[Path, str]], rejected: list) -> list[_Source]:
    """One source per parquet file; Avro files grouped per (directory, writer schema)."""
    sources = [_Source(_tag(p.name), "parquet", [p]) for p, k in files if k == "parquet"]
    groups: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for path, kind in files:
        if kind != "avro":
            continue
        try:
            with open(path, "rb") as fh:
                schema = fastavro.reader(fh).writer_schema
        except Exception as exc:  # noqa: BLE001 - any decoding failure rejects the file
            rejected.append((str(path), f"unreadable Avro file: {exc}"))
            continue
        digest = hashlib.sha1(json.dumps(schema, sort_keys=True).encode()).hexdigest()[:8]
        groups[(path.parent, digest)].append(path)
    per_dir = Counter(directory for directory, _ in groups)
    for (directory, digest), paths in groups.items():
        tag = _tag(paths[0].name) if len(paths) == 1 else \
            _tag(directory.name) + (f"-{digest}" if per_dir[directory] > 1 else "")
        sources.append(_Source(tag, "avro", paths))
    counts = Counter(src.tag for src in sources)
    for src in sources:  # same file name in two directories: tell them apart by path
        if counts[src.tag] > 1:
            src.tag += "-" + hashlib.sha1(str(src.paths[0]).encode()).hexdigest()[:8]
    return sorted(sources, key=lambda s: s.tag)


# ---------------------------------------------------------------------------- reading
def read_parquet(path: Path) -> pa.Table:
    """Read one parquet file of alerts (all rows and columns), made Spark-readable by :func:`to_spark`.

    Partition directories above the file are not turned into columns; naive
    timestamps are tagged UTC if Spark wrote the file. Raises InputError naming
    the file if it cannot be read (truncated, not parquet).
    """
    try:
        table = pq.ParquetFile(path).read()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
        raise InputError(f"{path}: unreadable parquet file: {exc}") from exc
    return to_spark(table, utc_timestamps=_written_by_spark(table.schema))


def _read_avro_group(paths: list[Path], rejected: list) -> pa.Table | None:
    """Read Avro files sharing one writer schema into one Spark-readable table."""
    schema, batches, records = None, [], []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                reader = fastavro.reader(fh)
                if schema is None:
                    schema = avro_to_arrow_schema(reader.writer_schema)
                recs = list(reader)
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt Avro data
            rejected.append((str(path), f"unreadable Avro file: {exc}"))
            continue
        records.extend(recs)
        if len(records) >= _AVRO_BATCH:
            batches.append(pa.Table.from_pylist(records, schema=schema))
            records = []
    if records:
        batches.append(pa.Table.from_pylist(records, schema=schema))
    return to_spark(pa.concat_tables(batches)) if batches else None


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` atomically (hidden temporary file, then rename), snappy, us timestamps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, **WRITE_OPTIONS)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- layout
def layout_datalake(inputs, prefix, *, overwrite: bool = False) -> dict:
    """Write alert files as a datalake partitioned by night under ``<prefix>/science``.

    Parameters
    ----------
    inputs : str, path or sequence of them
        Parquet files, directories (searched recursively, e.g. a datalake tree) and
        Avro files (single raw ZTF alerts or containers).
    prefix : str or path
        Datalake root; files go to ``science/year=YYYY/month=MM/day=DD/``.
    overwrite : bool
        If True, parquet files already under ``<prefix>/science`` that this run did
        not write are deleted afterwards. Files of the same sources are always replaced.

    Returns
    -------
    dict
        ``nights``: {'YYYY-MM-DD': number of alerts}; ``alerts``: total alerts written;
        ``files``: list of the parquet paths written (str); ``rejected``: list of
        ``(path, reason)`` for input files (or alerts) skipped.

    Raises
    ------
    InputError
        If nothing could be laid out (every input missing, unreadable or not alerts).
    """
    rejected: list[tuple[str, str]] = []
    sources = _group_sources(find_alert_files(inputs, rejected), rejected)
    nights: dict[str, int] = defaultdict(int)
    written: list[str] = []
    for src in sources:
        name = str(src.paths[0]) if len(src.paths) == 1 else f"{src.paths[0].parent}/*.avro"
        try:
            table = read_parquet(src.paths[0]) if src.kind == "parquet" else _read_avro_group(src.paths, rejected)
            if table is None:
                continue
            jd = candidate_jd(table, name)
        except InputError as exc:
            rejected.append((name, str(exc).removeprefix(f"{name}: ")))
            continue
        bad = np.isnan(jd)
        if bad.any():
            rejected.append((name, f"{int(bad.sum())} alerts with null candidate.jd skipped"))
        days = _night_days(np.where(bad, JD_UNIX_EPOCH, jd))
        for day in np.unique(days[~bad]):
            part = table.filter(pa.array((days == day) & ~bad))
            out = night_dir(prefix, np.datetime64(int(day), "D")) / f"part-00000-{src.tag}.parquet"
            _write_parquet(part, out)
            nights[str(np.datetime64(int(day), "D"))] += part.num_rows
            written.append(str(out))
            log.info("%s: %d alerts -> %s", name, part.num_rows, out)
    for path, reason in rejected:
        log.info("rejected %s: %s", path, reason)
    if not written:
        reasons = "; ".join(f"{p}: {r}" for p, r in rejected) or "no input given"
        raise InputError(f"nothing laid out into {prefix}: {reasons}")
    if overwrite:
        keep = {Path(p).resolve() for p in written}
        for old in (Path(prefix) / "science").glob("year=*/month=*/day=*/*.parquet"):
            if old.resolve() not in keep:
                log.info("overwrite: removing %s", old)
                old.unlink()
    return {"nights": dict(sorted(nights.items())), "alerts": sum(nights.values()),
            "files": written, "rejected": rejected}
