"""Fink's class rule (REFERENCE.md rules 1-9), case by case, then on the real night."""
from urllib.parse import unquote

import pytest
from pyspark.sql import types as T

from fink_ingest.classification import class_column
from fink_ingest.config import load_config

HOSTS = load_config().survey.hosts
SCHEMA = T.StructType([T.StructField(n, t) for n, t in [
    ("mulens", T.DoubleType()), ("snn_snia_vs_nonia", T.DoubleType()), ("snn_sn_vs_all", T.DoubleType()),
    ("rf_snia_vs_nonia", T.DoubleType()), ("rf_kn_vs_nonkn", T.DoubleType()), ("cdsxmatch", T.StringType()),
    ("roid", T.IntegerType()), ("tracklet", T.StringType()), ("jd", T.DoubleType()),
    ("jdstarthist", T.DoubleType()), ("drb", T.FloatType()), ("classtar", T.FloatType()),
    ("ndethist", T.IntegerType())]])
BASE = dict(mulens=0.0, snn_snia_vs_nonia=0.0, snn_sn_vs_all=0.0, rf_snia_vs_nonia=0.0, rf_kn_vs_nonkn=0.0,
            cdsxmatch="Unknown", roid=0, tracklet="", jd=2460000.5, jdstarthist=2460000.0, drb=0.9,
            classtar=0.9, ndethist=30)
SN = dict(snn_snia_vs_nonia=0.9, ndethist=30)

CASES = [
    ("nothing", {}, "Unknown"),
    ("1 microlensing", dict(mulens=0.8), "Microlensing candidate"),
    ("2 SN", SN, "SN candidate"),
    ("2 SN needs a host", dict(SN, cdsxmatch="RRLyr"), "RRLyr"),
    ("2 SN not on first detection", dict(SN, ndethist=1), "Unknown"),
    ("2 SN not older than 90 days", dict(SN, jdstarthist=2459900.0), "Unknown"),
    ("2 SN host galaxy keeps SN", dict(SN, cdsxmatch="Galaxy"), "SN candidate"),
    ("3 early SN Ia", dict(SN, ndethist=10, rf_snia_vs_nonia=0.8), "Early SN Ia candidate"),
    ("4 kilonova", dict(rf_kn_vs_nonkn=0.8, ndethist=3), "Kilonova candidate"),
    ("4 kilonova too old", dict(rf_kn_vs_nonkn=0.8, ndethist=3, jdstarthist=2459990.0), "Unknown"),
    ("5 SSO candidate", dict(roid=2), "Solar System candidate"),
    ("6 tracklet", dict(tracklet="TRCK_20240115_110005_00"), "Tracklet"),
    ("7 SSO MPC", dict(roid=3), "Solar System MPC"),
    ("7 MPC overrides tracklet", dict(roid=3, tracklet="TRCK_1"), "Solar System MPC"),
    ("8 ambiguous microlensing + MPC", dict(mulens=0.8, roid=3), "Ambiguous"),
    ("8 ambiguous SN + SSO candidate", dict(SN, roid=2), "Ambiguous"),
    ("9 SIMBAD label wins", dict(mulens=0.8, roid=3, cdsxmatch="EB*"), "EB*"),
    ("9 Fail is not a label", dict(roid=3, cdsxmatch="Fail 504"), "Solar System MPC"),
    ("9 Galaxy* is not a label", dict(roid=2, cdsxmatch="GalaxyCluster"), "Solar System candidate"),
    ("9 Transient is not a label", dict(cdsxmatch="Transient"), "Unknown"),
    ("missing Fink values", dict(mulens=None, roid=None, cdsxmatch=None, tracklet=None), "Unknown"),
]


@pytest.fixture(scope="module")
def classified(spark):
    rows = [dict(BASE, **changes) for _, changes, _ in CASES]
    frame = spark.createDataFrame([tuple(r[f.name] for f in SCHEMA) for r in rows], SCHEMA)
    expr = class_column({name: name for name in SCHEMA.names}, HOSTS)
    return [r[0] for r in frame.select(expr).collect()]


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_rule(classified, i):
    assert classified[i] == CASES[i][2]


def test_every_real_alert_has_exactly_one_class_row(real_night_push):
    config, store, summary = real_night_push
    table = store.table("ztf.class")
    keys = [k.decode() for k, _ in table.scan() if not k.startswith(b"schema_")]
    assert len(keys) == 849
    as_main_keys = [f"{oid}_{jd}_{candid}" for _, jd, oid, candid in (k.split("_") for k in keys)]
    main = {k.decode() for k, _ in store.table("ztf").scan(prefix=b"ZTF")}
    assert len(set(as_main_keys)) == 849 and set(as_main_keys) == main
    counts = {}
    for k in keys:
        cls = unquote(k.split("_")[0])
        counts[cls] = counts.get(cls, 0) + 1
    assert counts["Solar System MPC"] == 186 and counts["Unknown"] == 320
