import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_escape_round_trips_and_keeps_plain_ids():
    values = ["ZTF24aaaaaaa", "EB*_Candidate", "50%_off", "%5F", "a_b_c", "", "Seyfert_1"]
    escaped = rowkeys.escape(pa.array(values)).to_pylist()
    assert escaped[0] == "ZTF24aaaaaaa" and escaped[1] == "EB*%5FCandidate"
    assert all("_" not in e for e in escaped)
    assert [rowkeys.unescape(e) for e in escaped] == values
    assert [rowkeys.escape_text(v) for v in values] == escaped


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=12), st.text(min_size=1, max_size=12))
def test_no_prefix_of_one_value_selects_another(a, b):
    """The scan prefix of a value is a prefix of a key only if the key's component is that
    value: a class, a name or an object id can never read another one's rows."""
    key_b = rowkeys.join(rowkeys.escape(pa.array([b])), pa.array(["2460324.7135301000"]),
                         pa.array(["0000000000000000001"]))[0].as_py().encode()
    assert key_b.startswith(rowkeys.prefix(a)) == (a == b)
    assert rowkeys.split(key_b)[0] == b


def test_keys_make_and_parse_by_role():
    from fink_ingest.config import load_config

    survey = load_config().survey
    roles = ("class", "time", "object", "alert")
    keys = rowkeys.make(roles, {"class": pa.array(["EB*_Candidate", "QSO"]),
                                "time": pa.array([2460324.7135301, 2460324.5]),
                                "object": pa.array(["ZTF24aaaaaaa", "ZTF17aaaaitn"]),
                                "alert": pa.array([2570218142115015056, 7])}, survey).to_pylist()
    assert keys == ["EB*%5FCandidate_2460324.7135301000_ZTF24aaaaaaa_2570218142115015056",
                    "QSO_2460324.5000000000_ZTF17aaaaitn_0000000000000000007"]
    assert rowkeys.parse(roles, keys[0]) == {"class": "EB*_Candidate", "time": 2460324.7135301,
                                             "object": "ZTF24aaaaaaa", "alert": 2570218142115015056}
    with pytest.raises(SchemaError, match="negative"):
        rowkeys.format_alert_id(pa.array([-1]))
    with pytest.raises(SchemaError, match="4 components"):
        rowkeys.parse(("object", "time"), keys[1])


def test_parse_many_equals_parse_of_each_key():
    keys = [b"EB*%5FCandidate_2460324.7135301000_ZTF24aaaaaaa_2570218142115015056",
            b"QSO_2460324.5000000000_ZTF17aaaaitn_0000000000000000007"]
    roles = ("class", "time", "object", "alert")
    many = rowkeys.parse_many(roles, keys)
    assert [{r: many[r][i] for r in roles} for i in range(2)] == [rowkeys.parse(roles, k) for k in keys]
    assert many["alert"].dtype == "int64" and many["time"].dtype == "float64"
    assert {r: len(v) for r, v in rowkeys.parse_many(roles, []).items()} == dict.fromkeys(roles, 0)
    with pytest.raises(SchemaError, match="4 components"):
        rowkeys.parse_many(roles, [b"QSO_2460324.5000000000_ZTF17aaaaitn"])
