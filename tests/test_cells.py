import math

import pyarrow as pa
import pytest

from fink_ingest import cells
from fink_ingest.errors import SchemaError


@pytest.mark.parametrize("values, arrow_type, type_name, first_cell", [
    ([2460113.71125, None], pa.float64(), "double", bytes.fromhex("4142C4E8DB0A3D71")),
    ([18.25, None], pa.float32(), "float", bytes.fromhex("41920000")),
    ([2570218142115015056, None], pa.int64(), "bigint", (2570218142115015056).to_bytes(8, "big")),
    ([-3, None], pa.int32(), "int", (-3).to_bytes(4, "big", signed=True)),
    ([True, None], pa.bool_(), "boolean", b"\xff"),
    (["ZTF24aaaaaaa", None], pa.string(), "string", b"ZTF24aaaaaaa"),
])
def test_encode_hbase_bytes_and_back(values, arrow_type, type_name, first_cell):
    encoded = cells.encode(pa.array(values, arrow_type), type_name).to_pylist()
    assert encoded == [first_cell, None]          # HBase Bytes.toBytes layout; null = no cell
    assert cells.decode(encoded[0], type_name) == values[0]


def test_widened_types_decode_old_cells_by_length():
    old = cells.encode(pa.array([0.1], pa.float32()), "float").to_pylist()[0]
    assert cells.decode(old, "double") == float(pa.array([0.1], pa.float32())[0].as_py())
    new = cells.encode(pa.array([7], pa.int32()), "bigint").to_pylist()[0]
    assert len(new) == 8 and cells.decode(new, "bigint") == 7


def test_promote():
    assert cells.promote("roid", "int", "bigint") == "bigint"
    assert cells.promote("roid", "bigint", "int") == "bigint"
    assert cells.promote("Plx", "float", "double") == "double"
    assert cells.promote("timestamp", "timestamp", "string") == "string"
    with pytest.raises(SchemaError, match="'x'.*'double'.*'string'"):
        cells.promote("x", "double", "string")
    # integer and float cells of one width look alike: the first kind stays
    assert cells.promote("nbad", "int", "double") == "int"
    assert cells.promote("magpsf", "float", "int") == "float"
    # arrays of numbers (packed history cells) widen the same way, in either order
    assert cells.promote("i:fid", "array<int>", "array<bigint>") == "array<bigint>"
    assert cells.promote("i:fid", "array<bigint>", "array<int>") == "array<bigint>"
    assert cells.promote("i:diffmaglim", "array<double>", "array<float>") == "array<double>"
    assert cells.promote("d:t2", "map<string,float>", "map<string,double>") == "map<string,double>"


def test_float_values_into_an_integer_column_only_when_exact():
    assert cells.encode(pa.array([0.0, 2.0, None]), "int").to_pylist() == [
        b"\x00\x00\x00\x00", b"\x00\x00\x00\x02", None]
    with pytest.raises(SchemaError, match="non-integral"):
        cells.encode(pa.array([0.5]), "int")


def test_decode_column_vectorised_and_nan():
    col = cells.encode(pa.array([1.0, float("nan")]), "double").to_pylist()
    out = cells.decode_column(col, "double")
    assert out[0] == 1.0 and math.isnan(out[1])
    assert cells.decode_column([col[0], None], "double") == [1.0, None]


def test_nested_is_json():
    assert cells.decode(b'{"a": [1, 2]}', "struct<a:array<int>>") == {"a": [1, 2]}
    with pytest.raises(SchemaError, match="3 bytes"):
        cells.decode(b"abc", "double")
