"""Packing a batch's cells into stored rows (``store.packing``) against the row-by-row layout."""
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import NIGHT_DIR
from fink_ingest import cells
from fink_ingest.store.packing import pack_columns
from fink_ingest.store.rows import LONG, pack_cells, unpack_cells


def _type_name(arrow_type):
    names = {pa.float64(): "double", pa.float32(): "float", pa.int64(): "bigint", pa.int32(): "int",
             pa.int16(): "smallint", pa.int8(): "tinyint", pa.bool_(): "boolean"}
    return names.get(arrow_type, "string")


def _night_cells():
    """The real night's fields as cells: the ``candidate`` fields, the top-level scalars (Fink's
    added values, some null: ``Plx``, ``mag_rate``, ``tracklet``) and the ``lc_features_g``
    fields (nullable numbers), in schema order."""
    table = pq.read_table(NIGHT_DIR)
    fields = []
    for name in table.schema.names:
        values = table[name].combine_chunks()
        if name in ("candidate", "lc_features_g"):
            fields += [(f"{name}.{values.type.field(i).name}", values.field(i)) for i in range(values.type.num_fields)]
        elif not pa.types.is_nested(values.type) and not pa.types.is_binary(values.type):
            fields.append((name, values))
    columns = {}
    for name, values in fields:
        kind = _type_name(values.type)
        columns[name] = cells.encode(values if kind != "string" else pc.cast(values, pa.string()), kind)
    return columns


def _by_row(ids, columns, n):
    return [pack_cells({q: c[i].as_py() for q, c in zip(ids, columns) if c[i].is_valid}) for i in range(n)]


def test_packed_rows_of_the_real_night_equal_the_row_layout():
    """The real night's fields (runs of one-width numbers, nullable numbers and strings
    between them) pack to the same bytes as ``pack_cells`` row by row."""
    columns = _night_cells()
    values = list(columns.values())
    n = len(values[0])
    assert any(c.null_count for c in values) and any(c.null_count == 0 for c in values)
    ids = list(range(1, len(values) + 1))
    packed = pack_columns(ids, values, n).to_pylist()
    assert packed == _by_row(ids, values, n)
    assert unpack_cells(packed[0]) == {q: c[0].as_py() for q, c in zip(ids, values) if c[0].is_valid}


@pytest.mark.parametrize("extra", [
    [b"a" * (LONG + 5), b"", None],        # a cell longer than the u16 length field, an empty one, none
    [b"", b"", b""],                       # one width: zero bytes
    [None, None, None],                    # no cell in any row
])
def test_cells_of_any_length_and_rows_without_cells(extra):
    """Long cells, empty cells and columns without cells between runs of one-width numbers,
    and rows left without any cell (an empty packed row, which the store does not write)."""
    numbers = cells.encode(pa.array([1.5, 2.5, 3.5]), "double")
    ints = cells.encode(pa.array([1, 2, 3], pa.int32()), "int")
    values = [numbers, pa.array(extra, pa.binary()), ints, numbers]
    ids = [7, 8, 9, 300]
    assert pack_columns(ids, values, 3).to_pylist() == _by_row(ids, values, 3)
    empty = [pa.array([None, None, None], pa.binary())]
    assert pack_columns([1], empty, 3).to_pylist() == [b"", b"", b""]
    assert pack_columns([], [], 2).to_pylist() == [b"", b""]
