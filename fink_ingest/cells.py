"""Cell encoding: typed values <-> HBase ``Bytes`` cells, vectorised with numpy/pyarrow.

Encoding by type name (Spark's ``simpleString``), as HBase's ``Bytes.toBytes`` does and as
Fink's tables hold them (see ``../shared/REFERENCE.md``):

=====================  ==========================================================
type                   cell bytes
=====================  ==========================================================
double / float         big-endian IEEE 754, 8 / 4 bytes
bigint/int/smallint/   big-endian two's complement, 8 / 4 / 2 / 1 bytes
tinyint
boolean                1 byte, ``0xff`` true, ``0x00`` false (``Bytes.toBytes(boolean)``)
string                 UTF-8
binary                 the bytes themselves
timestamp, date        ISO-8601 text in UTC (Spark's cast to string)
struct/array/map       JSON text (Spark's ``to_json``); the type's DDL is in the schema row
=====================  ==========================================================

A null is an absent cell. Numeric types widen across nights (``int`` -> ``bigint``,
``float`` -> ``double``) without rewriting old cells: decoders read the width from the
cell length, so every value decodes exactly as the datalake held it.
"""
from __future__ import annotations

import functools
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest.errors import SchemaError

INTEGER_TYPES = {"tinyint": ">i1", "smallint": ">i2", "int": ">i4", "bigint": ">i8"}
FLOAT_TYPES = {"float": ">f4", "double": ">f8"}
TEXT_TYPES = {"string", "timestamp", "timestamp_ntz", "date"}
NESTED_PREFIXES = ("struct<", "array<", "map<")
_WIDTH_INT = {1: ">i1", 2: ">i2", 4: ">i4", 8: ">i8"}
_WIDTH_FLOAT = {4: ">f4", 8: ">f8"}
_RANK = {"tinyint": 0, "smallint": 1, "int": 2, "bigint": 3, "float": 0, "double": 1}


def is_nested(type_name):
    """True if the type is stored as JSON text (struct, array or map)."""
    return type_name.startswith(NESTED_PREFIXES)


def kind(type_name):
    """Storage kind of a type: 'integer', 'floating', 'boolean', 'binary', 'text' or 'json'.

    Raises
    ------
    SchemaError
        If the type has no cell encoding.
    """
    if type_name in INTEGER_TYPES:
        return "integer"
    if type_name in FLOAT_TYPES:
        return "floating"
    if type_name in ("boolean", "binary"):
        return type_name
    if type_name in TEXT_TYPES or type_name.startswith("decimal"):
        return "text"
    if is_nested(type_name):
        return "json"
    raise SchemaError(f"type {type_name!r} has no cell encoding")


def promote(column, stored, new):
    """Type a column's cells are described by once a night of type ``new`` is added.

    Parameters
    ----------
    column : str
        Column name, for the error message.
    stored : str or None
        Type in the table's schema row, or None for a new column.
    new : str
        Type of the column in the night being written.

    Returns
    -------
    str
        The type to record (and to write the new cells as).

    Raises
    ------
    SchemaError
        If old cells could not be decoded under the new type (e.g. a number column that
        turns into text); the message names the column and both types.
    """
    if stored is None or stored == new:
        return new
    ks, kn = kind(stored), kind(new)
    if ks == kn and ks in ("integer", "floating"):
        return stored if _RANK[stored] >= _RANK[new] else new
    if {ks, kn} == {"integer", "floating"}:
        # Same-width integer and float cells cannot be told apart, so the column keeps its
        # first kind and new values are cast into it; ``encode`` refuses a lossy cast.
        return stored
    if ks == kn == "json":
        old_tree, new_tree = parse_type(stored), parse_type(new)
        if isinstance(old_tree, tuple) and isinstance(new_tree, tuple) and old_tree[0] == new_tree[0] == "array" \
                and isinstance(old_tree[1], str) and isinstance(new_tree[1], str) \
                and {kind(old_tree[1]), kind(new_tree[1])} <= {"integer", "floating"}:
            # arrays of numbers (packed history cells) widen like numbers, whatever the order
            return f"array<{promote(column, old_tree[1], new_tree[1])}>"
        return new
    if ks == "text" and kn in ("text", "integer", "floating", "boolean", "json"):
        return "string"
    raise SchemaError(f"column {column!r}: stored as {stored!r}, this night has {new!r}; "
                      "old cells could not be decoded under one type")


def _fixed(values, width, dtype, fill=0):
    """Big-endian fixed-width cells of a numeric Arrow array, nulls kept as nulls."""
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    data = np.asarray(arr.fill_null(fill).to_numpy(zero_copy_only=False)).astype(dtype)
    buf = pa.py_buffer(np.ascontiguousarray(data).tobytes())
    validity = arr.buffers()[0] if arr.null_count else None
    if validity is not None and arr.offset:
        validity = pc.is_valid(arr).buffers()[1]
    fsb = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(arr), [validity, buf],
                                               null_count=arr.null_count)
    return fsb.cast(pa.binary())


def encode(values, type_name):
    """Encode an Arrow array into cells.

    Parameters
    ----------
    values : pyarrow.Array or ChunkedArray, shape (n,)
        Values of one column; nested types must already be JSON text, timestamps and
        dates text (the table builders do this in Spark).
    type_name : str
        The type recorded in the schema row (possibly wider than the values' own type).

    Returns
    -------
    pyarrow.BinaryArray, shape (n,)
        One cell per value, null where the value is null (no cell).

    Raises
    ------
    SchemaError
        If the type has no encoding.
    """
    k = kind(type_name)
    if k == "integer" or k == "floating":
        dtype = INTEGER_TYPES.get(type_name) or FLOAT_TYPES[type_name]
        if k == "integer" and pa.types.is_floating(values.type):
            try:  # e.g. nbad written as double by some Fink versions: exact integers only
                values = pc.cast(values, pa.int64(), safe=True)
            except pa.ArrowInvalid as exc:
                raise SchemaError(f"{type_name} column given non-integral values: {exc}") from None
        return _fixed(values, int(dtype[-1]), dtype)
    if k == "boolean":
        ints = pc.if_else(values, pa.scalar(-1, pa.int8()), pa.scalar(0, pa.int8()))
        return _fixed(ints, 1, ">i1")
    if k == "binary":
        return pc.cast(values, pa.binary())
    return pc.cast(pc.cast(values, pa.string()), pa.binary())


def decode(cell, type_name):
    """Decode one cell.

    Parameters
    ----------
    cell : bytes or None
        The cell's bytes; None (absent cell) decodes to None.
    type_name : str
        Type from the schema row.

    Returns
    -------
    int, float, bool, str, bytes, dict or list
        Floats of a ``float`` cell are returned as the Python float of the float32 value
        (exact); nested values as parsed JSON.

    Raises
    ------
    SchemaError
        If the cell length does not fit the type.
    """
    if cell is None:
        return None
    k = kind(type_name)
    if k in ("integer", "floating"):
        dtype = (_WIDTH_INT if k == "integer" else _WIDTH_FLOAT).get(len(cell))
        if dtype is None:
            raise SchemaError(f"cell of {len(cell)} bytes cannot be a {type_name}")
        return np.frombuffer(cell, dtype=dtype)[0].item()
    if k == "boolean":
        return cell != b"\x00"
    if k == "binary":
        return bytes(cell)
    text = cell.decode("utf-8")
    if k == "json":
        return conform(json.loads(text), parse_type(type_name))
    return text


_NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


@functools.lru_cache(maxsize=4096)
def parse_type(type_name):
    """Parse a Spark ``simpleString`` type into a tree (cached: a reader decodes the same few
    nested types for every row; the tree is shared, never modify it).

    Returns
    -------
    str or tuple
        A leaf type name, ``("struct", [(name, tree), ...])``, ``("array", tree)`` or
        ``("map", key_tree, value_tree)``.
    """
    tree, rest = _parse(type_name.replace(" ", ""), 0)
    return tree


def _parse(text, i):
    for head in ("struct<", "array<", "map<"):
        if text.startswith(head, i):
            i += len(head)
            if head == "array<":
                elem, i = _parse(text, i)
                return ("array", elem), i + 1
            if head == "map<":
                key, i = _parse(text, i)
                value, i = _parse(text, i + 1)
                return ("map", key, value), i + 1
            fields = []
            while text[i] != ">":
                colon = text.index(":", i)
                name = text[i:colon]
                sub, i = _parse(text, colon + 1)
                fields.append((name.strip("`"), sub))
                if text[i] == ",":
                    i += 1
            return ("struct", fields), i + 1
    j = i
    depth = 0
    while j < len(text) and (depth or text[j] not in ",>"):
        depth += text[j] == "("
        depth -= text[j] == ")"
        j += 1
    return text[i:j], j


def conform(value, tree):
    """Give parsed JSON the types of the tree: non-finite floats that Spark's ``to_json``
    writes as the strings ``"NaN"``/``"Infinity"`` become floats again, float fields floats."""
    if value is None:
        return None
    if isinstance(tree, str):
        if tree in FLOAT_TYPES:
            return _NON_FINITE[value] if isinstance(value, str) else float(value)
        return value
    if tree[0] == "struct":
        types = dict(tree[1])
        return {k: conform(v, types.get(k, "string")) for k, v in value.items()}
    if tree[0] == "array":
        return [conform(v, tree[1]) for v in value]
    return {k: conform(v, tree[2]) for k, v in value.items()}


def decode_column(cells, type_name):
    """Decode a list of cells of one column into a numpy array or list (vectorised for numbers).

    Parameters
    ----------
    cells : list of (bytes or None), length n
    type_name : str

    Returns
    -------
    numpy.ndarray or list, length n
        Numeric columns as float64/int64/float32/... arrays when no cell is absent and
        all cells share a width; otherwise a list of decoded values (None for absent).
    """
    k = kind(type_name)
    if k in ("integer", "floating") and cells and all(c is not None for c in cells):
        widths = {len(c) for c in cells}
        if len(widths) == 1:
            width = widths.pop()
            dtype = (_WIDTH_INT if k == "integer" else _WIDTH_FLOAT).get(width)
            if dtype:
                return np.frombuffer(b"".join(cells), dtype=dtype).astype(dtype[1:])
    return [decode(c, type_name) for c in cells]
