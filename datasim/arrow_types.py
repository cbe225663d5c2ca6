"""Arrow types of real alert files made readable by Apache Spark 4: Avro schemas to Arrow
(``avro_to_arrow_schema``), and the types Spark cannot read replaced (``spark_schema``,
``to_spark``); ``layout`` writes every night file through them."""
from __future__ import annotations

import pyarrow as pa

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


def written_by_spark(schema: pa.Schema) -> bool:
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
