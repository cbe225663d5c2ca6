"""The index tables of names: tracklet, anomaly, resolver, on every real sample night, against
answers read from the datalake with pyarrow."""
import collections
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_config
from fink_ingest import paths, rowkeys
from fink_ingest.errors import SchemaError
from fink_ingest.push import push_night
from fink_ingest.push import rebuild
from fink_ingest.store import open_store
from fink_ingest.tables import BUILDERS

JD_UNIX_EPOCH = 2440587.5


@pytest.fixture(scope="module")
def lake(sample_store):
    """Every alert of the sample datalake: list of dicts (objectId, candid, jd, field, and the
    Fink values the tables use, None where a night's layout lacks them)."""
    config, _ = sample_store
    out = []
    for path in sorted(Path(config.datalake).glob("science/*/*/*/*.parquet")):
        t = pq.read_table(path)
        cand = t["candidate"].combine_chunks()
        cols = {n: t[n].to_pylist() if n in t.column_names else [None] * t.num_rows
                for n in ("tracklet", "anomaly_score", "tns", "cdsxmatch")}
        for i, (oid, candid) in enumerate(zip(t["objectId"].to_pylist(), t["candid"].to_pylist())):
            out.append(dict(objectId=oid, candid=candid, jd=cand.field("jd")[i].as_py(),
                            **{n: v[i] for n, v in cols.items()}))
    return out


def stored(store, kind):
    """(parsed key, cells) of every data row of a table."""
    table = store.table(BUILDERS[kind].table_name("ztf"))
    return [(BUILDERS[kind].parse_key(k), c) for k, c in table.scan() if not rowkeys.is_schema_row(k)]


def test_score_keys_sort_in_numeric_order_and_read_back_exactly():
    values = [-math.inf, -1e300, -0.0385, -0.0108, -0.0, 0.0, 5e-324, 0.5, 1e300, math.inf]
    text = rowkeys.format_score(pa.array(values)).to_pylist()
    assert {len(t) for t in text} == {16}   # fixed width, hex
    # IEEE-754: -2.5 is 0xc004000000000000 (every bit flipped), 1.0 is 0x3ff0000000000000 (sign bit set)
    assert rowkeys.format_score(pa.array([-2.5, 1.0])).to_pylist() == ["3ffbffffffffffff", "bff0000000000000"]
    assert sorted(text) == text and [rowkeys.parse_score(t) for t in text] == values
    with pytest.raises(SchemaError, match="NaN"):
        rowkeys.format_score(pa.array([0.1, math.nan]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False), min_size=2, max_size=20))
def test_score_order_is_numeric_order(values):
    text = rowkeys.format_score(pa.array(values, pa.float64())).to_pylist()
    by_text = [values[i] for i in sorted(range(len(values)), key=lambda i: (text[i], i))]
    assert by_text == sorted(values, key=lambda v: (v, math.copysign(1, v)))
    assert [rowkeys.parse_score(t) for t in text] == values


def test_tracklet_table_holds_exactly_the_alerts_with_a_tracklet_id(sample_store, lake):
    _, store = sample_store
    expected = {(a["tracklet"], a["objectId"], a["candid"]) for a in lake
                if isinstance(a["tracklet"], str) and a["tracklet"].startswith("TRCK_")}
    got = {(k["name"], k["object"], k["alert"]) for k, _ in stored(store, "tracklet")}
    assert got == expected and len(expected) == 2          # two tracklets on 2024-01-15
    assert {t for t, _, _ in got} == {"TRCK_20240115_110005_00", "TRCK_20240115_030815_00"}


def test_anomaly_table_orders_each_night_by_score(sample_store, lake):
    _, store = sample_store
    scored = [a for a in lake if a["anomaly_score"] is not None and not math.isnan(a["anomaly_score"])]
    rows = stored(store, "anomaly")
    assert sorted((k["object"], k["alert"], k["score"]) for k, _ in rows) == \
        sorted((a["objectId"], a["candid"], a["anomaly_score"]) for a in scored)
    by_night = collections.defaultdict(list)
    for k, _ in rows:   # scan order
        by_night[k["night"]].append(k["score"])
    for night, scores in by_night.items():
        assert scores == sorted(scores), night
    for a in scored[:50]:
        night = np.datetime_as_string(np.datetime64(int(math.floor(a["jd"] - JD_UNIX_EPOCH)), "D")).replace("-", "")
        assert any(k["night"] == night and k["alert"] == a["candid"] for k, _ in rows)


def test_resolver_table_holds_every_tns_value_and_simbad_label(sample_store, lake):
    _, store = sample_store
    rows = stored(store, "resolver")

    def named(value):
        return isinstance(value, str) and value.strip() and value.strip().lower() not in \
            ("null", "none", "nan", "unknown") and not value.strip().lower().startswith("fail")

    for resolver, column in (("tns", "tns"), ("simbad", "cdsxmatch")):
        expected = sorted((a[column].strip().lower(), a["objectId"], a["candid"]) for a in lake if named(a[column]))
        got = sorted((k["name"], k["object"], k["alert"]) for k, _ in rows if k["resolver"] == resolver)
        assert got == expected
    assert any(k["resolver"] == "tns" and c[b"d:name"] == b"SLSN-I" for k, c in rows)   # as written, in a cell


def test_rebuilding_a_name_table_for_a_night_gives_the_same_rows(spark, datasim, tmp_path):
    config = make_config(datasim / "ztf" / "archive", tmp_path / "store", tmp_path / "work")
    store = open_store(config.store)
    night = paths.parse_night("2024-01-15")
    assert push_night(spark, config, store, night, ["main", "tracklet", "anomaly", "resolver"])["ok"]
    before = {k: list(store.table(f"ztf.{k}").scan()) for k in ("tracklet", "anomaly", "resolver")}
    assert len(before["anomaly"]) > 600     # 849 alerts, most of them scored
    for kind in before:
        rebuild(spark, config, store, kind, [night], tmp_path / "runs")
        assert list(store.table(f"ztf.{kind}").scan()) == before[kind], kind


def test_a_night_without_fink_values_places_no_name_row(sample_store):
    _, store = sample_store
    start, stop = 2458451.5, 2458452.5   # 2018-11-29: raw ZTF alerts, no Fink value at all
    assert not any(k["night"] == "20181129" for k, _ in stored(store, "anomaly"))
    for kind in ("tracklet", "resolver"):
        assert not any(start <= k["time"] < stop for k, _ in stored(store, kind)), kind
    assert store.table("ztf").count(prefix=b"ZTF18") > 0
