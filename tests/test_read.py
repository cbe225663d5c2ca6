"""The read layer on stores filled from real alerts, against answers computed independently."""
import gzip
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

from conftest import NIGHT_DIR, make_config
from fink_ingest import paths
from fink_ingest.errors import QueryError
from fink_ingest.push import push_night
from fink_ingest.read import Reader, jd_of
from fink_ingest.store import open_store
from test_push import as_parquet_value, same


@pytest.fixture(scope="module")
def reader(real_night_push):
    config, store, _ = real_night_push
    return Reader(store, config)


@pytest.fixture(scope="module")
def night():
    t = pq.read_table(NIGHT_DIR)
    c = t["candidate"].combine_chunks()
    return dict(table=t, oid=np.array(t["objectId"].to_pylist()), ra=c.field("ra").to_numpy(),
                dec=c.field("dec").to_numpy(), jd=c.field("jd").to_numpy(),
                cdsxmatch=np.array(t["cdsxmatch"].to_pylist(), dtype=object))


def brute_cone(oid, ra, dec, jd, ra0, dec0, radius_arcsec):
    """objectId -> separation (deg) of its latest alert inside the cone, with astropy."""
    sep = SkyCoord(ra0 * u.deg, dec0 * u.deg).separation(SkyCoord(ra * u.deg, dec * u.deg)).deg
    inside = sep <= radius_arcsec / 3600.0
    best = {}
    for o, s, t in zip(oid[inside], sep[inside], jd[inside]):
        if o not in best or t > best[o][1]:
            best[o] = (s, t)
    return {o: s for o, (s, _) in best.items()}


def test_objects_returns_exactly_the_parquet_rows(reader, night):
    t = night["table"]
    fields = {f.name: f for f in t.schema}
    cand_fields = {f.name: f.type for f in fields["candidate"].type}
    for oid in ("ZTF17aaaaitn", *sorted({o for o in night["oid"] if (night["oid"] == o).sum() == 2})):
        frame = reader.objects(oid)
        expected = [r for r in t.filter(pc.equal(t["objectId"], oid)).to_pylist()]
        expected.sort(key=lambda r: -r["candidate"]["jd"])   # newest first, as Fink
        assert len(frame) == len(expected) >= 1
        for (_, got), exp in zip(frame.iterrows(), expected):
            for name, value in exp["candidate"].items():
                g = got[f"i:{name}"]
                g = None if g is None or (isinstance(g, float) and np.isnan(g) and value is None) else g
                assert same(as_parquet_value(g.item() if hasattr(g, "item") else g, cand_fields[name]), value), (oid, name)
            assert got["d:cdsxmatch"] == exp["cdsxmatch"] and got["i:candid"] == exp["candid"]


def test_objects_with_upper_limits_are_tagged(reader):
    frame = reader.objects("ZTF17aaaaitn", with_upper_limits=True)
    assert set(frame["d:tag"]) <= {"valid", "upperlim", "badquality"} and (frame["d:tag"] == "valid").sum() == 1
    assert list(frame["i:jd"]) == sorted(frame["i:jd"], reverse=True)           # newest first, as Fink
    packed = list(reader.store.table("ztf.upper").scan(prefix=b"ZTF17aaaaitn_"))
    entries = [jd for _, row in packed for jd in json.loads(row[b"i:jd"])]
    upper = frame[frame["d:tag"] == "upperlim"]
    assert list(upper["i:jd"]) == entries[::-1] and len(entries) >= 2  # one row per entry
    assert (upper["i:candid"] == -1).all()                             # Fink's candid of an upper limit
    assert upper["i:diffmaglim"].dtype == np.float32 and upper["i:diffmaglim"].notna().all()


@pytest.mark.parametrize("radius", [1, 5, 60, 600, 3600, 18000])
def test_conesearch_equals_brute_force_at_real_positions(reader, night, radius):
    for i in (0, 400, 800):
        ra0, dec0 = float(night["ra"][i]), float(night["dec"][i])
        expected = brute_cone(night["oid"], night["ra"], night["dec"], night["jd"], ra0, dec0, radius)
        frame = reader.conesearch(ra0, dec0, radius)
        assert dict(zip(frame["i:objectId"], frame["v:separation_degree"])).keys() == expected.keys()
        assert np.allclose([expected[o] for o in frame["i:objectId"]], frame["v:separation_degree"], atol=1e-9)
        assert list(frame["v:separation_degree"]) == sorted(frame["v:separation_degree"])


@pytest.fixture(scope="module")
def edge_sky(spark, tmp_path_factory):
    """The real night's alerts moved around RA = 0 and both poles (synthetic positions)."""
    rng = np.random.default_rng(7)
    t = pq.read_table(NIGHT_DIR)
    n = t.num_rows
    centres = [(0.0, 10.0), (0.0, 89.9), (180.0, -89.9)]
    which = rng.integers(0, 3, n)
    ra = np.array([centres[w][0] for w in which]) + rng.uniform(-4, 4, n)
    dec = np.clip(np.array([centres[w][1] for w in which]) + rng.uniform(-4, 4, n), -90, 90)
    ra = np.mod(ra, 360.0)
    cand = t["candidate"].combine_chunks()
    arrays = [pa.array(ra) if f.name == "ra" else pa.array(dec) if f.name == "dec" else cand.field(f.name)
              for f in cand.type]
    t = t.set_column(t.schema.get_field_index("candidate"), "candidate",
                     pa.StructArray.from_arrays(arrays, fields=list(cand.type)))
    base = tmp_path_factory.mktemp("edge")
    night_dir = base / "lake" / "science" / "year=2024" / "month=01" / "day=15"
    night_dir.mkdir(parents=True)
    pq.write_table(t, night_dir / "part-0.parquet", coerce_timestamps="us", allow_truncated_timestamps=True)
    config = make_config(base / "lake", base / "store", base / "work")
    store = open_store(config.store)
    assert push_night(spark, config, store, paths.parse_night("2024-01-15"), ["main", "sky"])["ok"]
    c = t["candidate"].combine_chunks()
    return Reader(store, config), dict(oid=np.array(t["objectId"].to_pylist()), ra=ra, dec=dec,
                                       jd=c.field("jd").to_numpy())


@pytest.mark.parametrize("ra0, dec0", [(0.0, 10.0), (359.5, 11.0), (0.5, 9.0), (45.0, 90.0), (0.0, 88.0),
                                       (300.0, -90.0), (180.0, -87.5)])
@pytest.mark.parametrize("radius", [60, 3600, 18000])
def test_conesearch_across_ra_zero_and_the_poles(edge_sky, ra0, dec0, radius):
    reader, sky = edge_sky
    expected = brute_cone(sky["oid"], sky["ra"], sky["dec"], sky["jd"], ra0, dec0, radius)
    frame = reader.conesearch(ra0, dec0, radius, n=10000)
    assert set(frame["i:objectId"]) == set(expected)
    if radius == 18000:
        assert len(expected) > 50


def test_conesearch_time_window_and_n(reader, night):
    ra0, dec0 = float(night["ra"][0]), float(night["dec"][0])
    full = reader.conesearch(ra0, dec0, 18000)
    assert len(reader.conesearch(ra0, dec0, 18000, n=3)) == 3 == min(3, len(full))
    lo = jd_of("2024-01-15 06:00:00")
    windowed = reader.conesearch(ra0, dec0, 18000, start_date="2024-01-15 06:00:00")
    assert (windowed["i:jd"] >= lo).all()
    inside = brute_cone(night["oid"][night["jd"] >= lo], night["ra"][night["jd"] >= lo],
                        night["dec"][night["jd"] >= lo], night["jd"][night["jd"] >= lo], ra0, dec0, 18000)
    assert set(windowed["i:objectId"]) == set(inside)


def test_latests_by_class(reader, night):
    qso = np.argsort(-night["jd"][night["cdsxmatch"] == "QSO"])
    expected = list(night["oid"][night["cdsxmatch"] == "QSO"][qso][:5])
    frame = reader.latests("QSO", n=5)
    assert list(frame["i:objectId"]) == expected
    assert list(frame["i:jd"]) == sorted(frame["i:jd"], reverse=True)
    assert len(reader.latests("Solar System MPC", n=1000)) == 186


def test_sso_by_name_or_number(reader, night):
    t = night["table"]
    names = t["candidate"].combine_chunks().field("ssnamenr").to_pylist()
    roid = t["roid"].to_pylist()
    name = next(n for n, r in zip(names, roid) if r == 3 and n and n != "null")
    expected = sorted(o for o, n, r in zip(night["oid"], names, roid) if n == name and r == 3)
    frame = reader.sso(int(name) if name.isdigit() else name)
    assert sorted(frame["i:objectId"]) == expected and frame["i:ssnamenr"].iloc[0] == name
    # a provisional designation, written with or without its space
    for spelling in ("2009 VN118", "2009VN118"):
        assert list(reader.sso(spelling)["i:objectId"]) == ["ZTF24aacgilq"]
    with pytest.raises(QueryError, match=r"n_or_d \['1999 XX999'\]: no alert of such a Solar System object"):
        reader.sso("1999 XX999")                                 # as Fink answers a name it cannot resolve


def test_date_window_equals_the_alerts_in_it(reader, night):
    lo = jd_of("2024-01-15 05:00:00")
    frame = reader.date_window("2024-01-15 05:00:00", 60)
    expected = (night["jd"] >= lo) & (night["jd"] < lo + 1 / 24)
    assert len(frame) == expected.sum() == 144
    assert sorted(frame["i:objectId"]) == sorted(night["oid"][expected])


def test_statistics_and_schema(reader, night):
    stats = reader.statistics("2024")
    assert list(stats["key:key"]) == ["ztf_20240115"] and stats["basic:sci"][0] == 849
    fid = night["table"]["candidate"].combine_chunks().field("fid").to_numpy()
    assert (stats["basic:n_g"][0], stats["basic:n_r"][0]) == ((fid == 1).sum(), (fid == 2).sum())
    schema = reader.schema("main")
    assert schema["ZTF original fields (i:)"]["candid"]["type"] == "bigint"
    assert schema["ZTF original fields (i:)"]["jd"]["doc"].startswith("Observation Julian date")


@pytest.mark.parametrize("call, message", [
    (lambda r: r.conesearch(10, 95, 5), "dec = 95"),
    (lambda r: r.conesearch(10, 5, -1), "radius = -1"),
    (lambda r: r.conesearch(10, 5, 18000.5), "cannot be bigger than 18,000 arcseconds"),
    (lambda r: r.conesearch(10, 5, 1e-300), r"radius = 1e-300: expected arcseconds in \[0.01, 18000\]"),
    (lambda r: r.conesearch("ten", 5, 1), "ra, dec = 'ten', 5: not a position"),
    (lambda r: r.latests("QSO", stop_date="nan"), "date 'nan': expected a finite JD or MJD"),
    (lambda r: r.sso("1e300"), r"n_or_d \['1e300'\]: no alert"),
    (lambda r: r.objects([f"ZTF17aaaa{a}{b}{c}" for a in "abcdefghijk" for b in "abcdefghij" for c in "abcdefghij"][:1001]),
     "1001 ids in one request; at most 1000"),
    (lambda r: r.conesearch(400, 5, 1), "ra = 400"),
    (lambda r: r.conesearch(10, 5, 1, n=0), "n = 0"),
    (lambda r: r.latests("Not a class"), "class 'Not a class' is unknown"),
    (lambda r: r.cutout("ZTF17_bad"), "objectId 'ZTF17_bad'"),
    (lambda r: r.objects("ZTF17aaaaitn", columns=["i:nope"]), r"columns: \['i:nope'\] unknown"),
    (lambda r: r.date_window("2024-01-15", 0), "window = 0"),
    (lambda r: r.conesearch(10, 5, 5, window_days=1), "window: needs startdate"),
    (lambda r: r.date_window("yesterday-ish", 10), "date 'yesterday-ish'"),
    (lambda r: r.cutout("ZTF17aaaaitn", kind="Scienze"), "kind 'Scienze'"),
])
def test_bad_arguments_are_refused_by_name(reader, call, message):
    with pytest.raises(QueryError, match=message):
        call(reader)


def test_unknown_object_is_empty(reader):
    assert reader.objects("ZTF99zzzzzzz").empty
    assert reader.objects("ZTF17_bad").empty          # no alert can have this id: nothing found, as in Fink
    assert reader.cutout("ZTF99zzzzzzz") is None


@pytest.fixture(scope="module")
def stamps_store(spark, datasim, tmp_path_factory):
    """The real SSO alerts (with stamps) laid out by datasim and pushed."""
    from datasim.layout import layout_datalake

    base = tmp_path_factory.mktemp("stamps")
    layout_datalake([datasim / "ztf" / "alerts" / "sso_2022-08-04_11alerts.parquet"], base / "lake")
    config = make_config(base / "lake", base / "store", base / "work")
    store = open_store(config.store)
    assert push_night(spark, config, store, paths.parse_night("2022-08-04"))["ok"]
    return Reader(store, config)


def test_cutouts_equal_the_fits_in_the_datalake(stamps_store, datasim):
    source = pq.read_table(datasim / "ztf" / "alerts" / "sso_2022-08-04_11alerts.parquet").to_pylist()
    for alert in source:
        got = stamps_store.cutout(alert["objectId"], kind="All")
        for kind in ("Science", "Template", "Difference"):
            raw = gzip.decompress(alert[f"cutout{kind}"]["stampData"])
            with fits.open(io.BytesIO(raw), ignore_missing_simple=True) as hdul:
                expected = hdul[0].data
            assert got[kind].shape == (63, 63) and np.array_equal(got[kind], expected, equal_nan=True)
        fits_bytes = stamps_store.cutout(alert["objectId"], candid=alert["candid"], kind="Difference", output="FITS")
        assert fits_bytes == gzip.decompress(alert["cutoutDifference"]["stampData"])
