import pyarrow as pa
import pytest

from fink_ingest import rowkeys
from fink_ingest.errors import SchemaError


def test_format_time_fixed_width_and_exact():
    jd = [2460113.71125, 2460113.5, 2460113.0, 2458451.6748495, 2460324.7135301]
    text = rowkeys.format_time(pa.array(jd), 7, 10).to_pylist()
    assert text == ["2460113.7112500000", "2460113.5000000000", "2460113.0000000000",
                    "2458451.6748495000", "2460324.7135301000"]
    assert [float(t) for t in text] == jd


def test_format_time_sorts_in_time_order_inside_keys():
    # shortest text would put 2460113.5 after 2460113.51 once followed by "_"
    jd = [2460113.51, 2460113.5, 2460113.0, 2460113.4999999998]
    keys = rowkeys.join(pa.array(["ZTF"] * 4), rowkeys.format_time(pa.array(jd), 7, 10),
                        pa.array(["x"] * 4)).to_pylist()
    assert [float(k.split("_")[1]) for k in sorted(k.encode() and k for k in keys)] == sorted(jd)


def test_format_time_rejects_what_does_not_fit():
    with pytest.raises(SchemaError, match="does not fit"):
        rowkeys.format_time(pa.array([-1.5]), 7, 10)
    with pytest.raises(SchemaError, match="null"):
        rowkeys.format_time(pa.array([None], pa.float64()), 7, 10)


def test_prefix_stop():
    assert rowkeys.prefix_stop(b"ZTF24abc_") == b"ZTF24abc`"
    assert rowkeys.prefix_stop(b"a\xff") == b"b"
    assert rowkeys.prefix_stop(b"\xff\xff") is None
