"""Row keys on real nights: no alert lost to a key collision, no class read as another.

The collision case is what ZTF emits: two detections of one object in one exposure, same
``objectId``, ``jd`` and ``pid``, ``candid`` differing by one, positions a fraction of an
arcsecond apart. It is built from a real alert of ../shared/datasim. The separator case is
the real classes ``EB*`` and ``EB*_Candidate`` (and ``AGN``/``AGN_Candidate``) of the real
night 2024-01-15.
"""
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import NIGHT_DIR, make_config
from fink_ingest import paths
from fink_ingest.push import push_night
from fink_ingest.read import Reader
from fink_ingest.store import open_store

SSO_NIGHT = "2022-08-04"
TWIN_SHIFT_DEG = 0.3 / 3600    # the twin's dec, 0.3 arcsec away


def add_exposure_twin(night_dir, objectid=None):
    """Write, beside a night's files, a copy of one of its real alerts as ZTF would emit a
    second detection in the same exposure: ``candid + 1``, same objectId, jd and pid, dec
    0.3" away. Returns (objectId, candid of the original, candid of the twin)."""
    source = sorted(night_dir.glob("*.parquet"))[0]
    table = pq.read_table(source)
    rows = table.to_pylist()
    row = next(r for r in rows if objectid in (None, r["objectId"]))
    twin = dict(row, candid=row["candid"] + 1,
                candidate=dict(row["candidate"], candid=row["candid"] + 1,
                               dec=row["candidate"]["dec"] + TWIN_SHIFT_DEG))
    assert twin["candidate"]["pid"] == row["candidate"]["pid"] and twin["candidate"]["jd"] == row["candidate"]["jd"]
    pq.write_table(pa.Table.from_pylist([twin], schema=table.schema), night_dir / "part-twin.parquet",
                   coerce_timestamps="us", allow_truncated_timestamps=True)
    return row["objectId"], row["candid"], twin["candid"]


@pytest.fixture(scope="module")
def twins(spark, datasim, tmp_path_factory):
    """The real SSO night (11 alerts with stamps, 5 of known asteroids) plus the twin of an
    asteroid's alert, pushed into every table."""
    from datasim.layout import layout_datalake

    base = tmp_path_factory.mktemp("twins")
    layout_datalake([datasim / "ztf" / "alerts" / "sso_2022-08-04_11alerts.parquet"], base / "lake")
    night_dir = next((base / "lake" / "science").glob("year=*/month=*/day=*"))
    source = pq.read_table(sorted(night_dir.glob("*.parquet"))[0], columns=["objectId", "roid"])
    asteroid = next(o for o, r in zip(source["objectId"].to_pylist(), source["roid"].to_pylist()) if r == 3)
    oid, first, second = add_exposure_twin(night_dir, asteroid)
    config = make_config(base / "lake", base / "store", base / "work")
    store = open_store(config.store)
    summary = push_night(spark, config, store, paths.parse_night(SSO_NIGHT))
    return config, store, summary, (oid, first, second)


def test_two_alerts_in_one_exposure_are_both_in_every_table(twins):
    config, store, summary, (oid, first, second) = twins
    assert summary["ok"] and summary["problems"] == [] and summary["distinct_alerts"] == 12
    for table in ("ztf", "ztf.time", "ztf.sky", "ztf.class", "ztf.cutouts"):
        assert summary["rows_written"][table] == summary["rows_expected"][table] == 12, table
        assert store.table(table).count() == 12 + 1, table          # and a schema row
    assert summary["rows_written"]["ztf.sso"] == 5 + 1               # the twin of an asteroid's alert
    assert summary["rows_expected"]["ztf.sso"] == 12
    reader = Reader(store, config)
    got = reader.objects(oid, columns=["i:candid", "i:jd", "i:dec"])
    assert sorted(got["i:candid"]) == [first, second] and got["i:jd"].nunique() == 1
    cone = reader.conesearch(float(reader.objects(oid)["i:ra"][0]), float(got["i:dec"].min()), 5)
    assert list(cone["i:objectId"]) == [oid] and cone["i:candid"][0] == second   # latest by candid at one jd
    for candid in (first, second):
        assert reader.cutout(oid, candid=candid).shape == (63, 63)
    assert sorted(reader.sso(reader.objects(oid)["i:ssnamenr"][0])["i:candid"]) == [first, second]


def test_counts_reconcile_for_every_table(twins):
    """rows expected = rows written + rows not placed, by reason, for every table."""
    _, _, summary, _ = twins
    assert set(summary["rows_expected"]) == set(summary["rows_written"]) == set(summary["rows_skipped"])
    for table, expected in summary["rows_expected"].items():
        skipped = summary["rows_skipped"][table]
        assert expected == summary["rows_written"][table] + sum(skipped.values()), table
    assert summary["rows_skipped"]["ztf.sso"] == {"roid != 3: not a known Solar System object": 6}


def test_cli_pushes_the_twins_and_exits_0(twins, spark, tmp_path, capsys):
    from fink_ingest.cli import main

    config, _, _, _ = twins
    code = main(lambda c: spark, ["--night", SSO_NIGHT, "--datalake", config.datalake,
                                  "--store", str(tmp_path / "s"), "--work-dir", str(tmp_path / "w")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "night 2022-08-04: OK" in out and "  ztf: 12 rows written of 12 expected" in out


@pytest.fixture(scope="module")
def night_classes():
    """Alerts of the real night 2024-01-15 by SIMBAD label (cdsxmatch): label -> set of candids."""
    t = pq.read_table(NIGHT_DIR, columns=["candid", "cdsxmatch"])
    out = {}
    for candid, label in zip(t["candid"].to_pylist(), t["cdsxmatch"].to_pylist()):
        out.setdefault(label, set()).add(candid)
    return out


@pytest.mark.parametrize("label, other", [("EB*", "EB*_Candidate"), ("AGN", "AGN_Candidate"),
                                          ("LP*_Candidate", None)])
def test_latests_returns_exactly_the_class_asked(real_night_push, night_classes, label, other):
    """A SIMBAD label is its own class (Fink's rule 9): ``latests`` of ``EB*`` gives the 38
    alerts labelled ``EB*`` and none of the 63 ``EB*_Candidate``."""
    config, store, _ = real_night_push
    frame = Reader(store, config).latests(label, n=10000)
    assert set(frame["i:candid"]) == night_classes[label]
    assert set(frame["d:class"]) == {label}
    if other:
        assert night_classes[other] and not set(frame["i:candid"]) & night_classes[other]


def test_every_class_of_the_night_reads_back_alone(real_night_push):
    """For every class of the class index, ``latests`` returns exactly the rows of that class
    (counted from every key of the table, decoded independently of the read layer)."""
    config, store, _ = real_night_push
    counts = {}
    for key, _ in store.table("ztf.class").scan(columns=["d:class"]):
        if not key.startswith(b"schema_"):
            cls = unquote(key.decode().split("_")[0])
            counts[cls] = counts.get(cls, 0) + 1
    assert {"EB*", "EB*_Candidate", "AGN", "AGN_Candidate", "Seyfert_1"} <= set(counts)
    reader = Reader(store, config)
    for cls, count in counts.items():
        frame = reader.latests(cls, n=10000)
        assert len(frame) == count and set(frame["d:class"]) == {cls}, cls


def test_candid_is_read_from_the_keys_of_index_rows(real_night_push):
    """Index rows no longer repeat candid as a cell: it comes from the key, exact."""
    config, store, _ = real_night_push
    t = pq.read_table(NIGHT_DIR, columns=["candid", "candidate"])
    jd = pc.struct_field(t["candidate"], "jd").to_pylist()
    by_time = dict(zip(t["candid"].to_pylist(), jd))
    frame = Reader(store, config).date_window("2024-01-15 00:00:00", 1440)
    assert len(frame) == 849 and dict(zip(frame["i:candid"], frame["i:jd"])) == by_time
    assert frame["i:candid"].dtype == "int64"
    assert all(b"i:candid" not in cells for _, cells in store.table("ztf.time").scan(limit=20))
