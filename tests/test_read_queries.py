"""The read layer's Fink behaviours on every sample night (sample_store), each checked against
an answer computed independently from the datalake files (pyarrow, astropy)."""
import gzip
import io
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from PIL import Image

from fink_ingest import schemarow
from fink_ingest.errors import QueryError
from fink_ingest.read import Reader, jd_of
from fink_ingest.read import base as read_base

OBJECT = "ZTF25abixhdc"        # 10 alerts with stamps, 2025-09-01 .. 09-04 (slsn sample)
SEVERAL = ["ZTF25abixhdc", "ZTF22aakyeps", "ZTF25abeqaoy"]   # 10, 6 and 3 alerts


@pytest.fixture(scope="module")
def reader(sample_store):
    config, store = sample_store
    return Reader(store, config)


@pytest.fixture(scope="module")
def lake(sample_store):
    """Every alert of the sample datalake as a dict: objectId, candid, jd, ra, dec, magpsf,
    cdsxmatch, mag_rate, ssnamenr, roid, tracklet, anomaly_score, the file and row."""
    config, _ = sample_store
    out = []
    for path in sorted(Path(config.datalake).glob("science/*/*/*/*.parquet")):
        t = pq.read_table(path)
        cand = t["candidate"].combine_chunks()
        extra = {n: t[n].to_pylist() if n in t.column_names else [None] * t.num_rows
                 for n in ("cdsxmatch", "mag_rate", "roid", "tracklet", "anomaly_score", "tns")}
        for i, (oid, candid) in enumerate(zip(t["objectId"].to_pylist(), t["candid"].to_pylist())):
            out.append(dict(objectId=oid, candid=candid, file=path, row=i,
                            **{f: cand.field(f)[i].as_py() for f in ("jd", "ra", "dec", "magpsf", "ssnamenr", "fid")},
                            **{n: v[i] for n, v in extra.items()}))
    return out


# -- objects -------------------------------------------------------------------------------
def test_objects_newest_first_with_every_column_of_the_schema_row(reader, lake):
    frame = reader.objects(OBJECT)
    mine = sorted((a for a in lake if a["objectId"] == OBJECT), key=lambda a: -a["jd"])
    assert list(frame["i:candid"]) == [a["candid"] for a in mine] and len(mine) == 10
    main_types = reader.types("main")
    assert list(frame.columns) == list(main_types) + list(reader_derived())
    assert frame["d:tns"].notna().any() and frame["i:ssnamenr"].notna().all()     # null cells are columns too
    first_alert = frame["i:candid"].iloc[-1]            # Fink's recipe: the first alert is the last row
    assert first_alert == mine[-1]["candid"]


def reader_derived():
    from fink_ingest.read import derived

    return derived.ALL


def test_objects_of_several_ids_and_column_subsets(reader, lake):
    frame = reader.objects(",".join(SEVERAL), columns="i:jd,i:magpsf")
    assert list(frame.columns) == ["i:jd", "i:magpsf"]
    assert len(frame) == sum(a["objectId"] in SEVERAL for a in lake) == 19
    assert list(frame["i:jd"]) == sorted(frame["i:jd"], reverse=True)
    tagged = reader.objects(OBJECT, columns=["i:jd", "d:tag", "v:lastdate"])
    assert list(tagged.columns) == ["i:jd", "d:tag", "v:lastdate"] and set(tagged["d:tag"]) == {"valid"}


def test_fink_client_light_curve_call(reader):
    """fink-client's get_curve_ztf: columns i:jd,i:fid,i:magpsf,i:sigmapsf,d:tag with upper limits."""
    frame = reader.objects(OBJECT, columns="i:jd,i:fid,i:magpsf,i:sigmapsf,d:tag", with_upper_limits=True)
    assert list(frame.columns) == ["i:jd", "i:fid", "i:magpsf", "i:sigmapsf", "d:tag"]
    assert set(frame["d:tag"]) == {"valid", "upperlim", "badquality"}
    valid = frame[frame["d:tag"] == "valid"]
    assert len(valid) == 10 and valid["i:magpsf"].notna().all()
    assert frame[frame["d:tag"] == "upperlim"]["i:magpsf"].isna().all()


def test_objects_with_cutouts_are_the_stamps_of_each_alert(reader, lake):
    frame = reader.objects(OBJECT, columns="i:candid,i:jd", with_cutouts=True, cutout_kind="Science")
    assert list(frame.columns) == ["i:candid", "i:jd", "b:cutoutScience_stampData"]
    by_candid = {a["candid"]: a for a in lake if a["objectId"] == OBJECT}
    for candid, stamp in zip(frame["i:candid"], frame["b:cutoutScience_stampData"]):
        a = by_candid[candid]
        raw = pq.read_table(a["file"], columns=["cutoutScience"])["cutoutScience"][a["row"]].as_py()["stampData"]
        with fits.open(io.BytesIO(gzip.decompress(raw)), ignore_missing_simple=True) as hdul:
            assert np.array_equal(np.array(stamp), hdul[0].data, equal_nan=True)
    every = reader.objects(OBJECT, columns="i:candid", with_cutouts=True)
    assert [c for c in every.columns if c.startswith("b:")] == [f"b:cutout{k}_stampData"
                                                               for k in ("Science", "Template", "Difference")]


# -- conesearch ----------------------------------------------------------------------------
def test_conesearch_takes_sexagesimal_positions(reader):
    decimal = reader.conesearch(320.73548, -10.01323, 5)
    assert list(decimal["i:objectId"]) == [OBJECT]
    for ra, dec in (("320d44m07.723s", "-10d00m47.64s"), ("21h22m56.515s", "-10d00m47.64s"),
                    ("21 22 56.515", "-10 00 47.64"), ("21:22:56.515", "-10:00:47.64")):
        frame = reader.conesearch(ra, dec, 5)
        assert list(frame["i:objectId"]) == [OBJECT] and frame["i:magpsf"].equals(decimal["i:magpsf"]), (ra, dec)
        exact = SkyCoord(ra, dec, unit=("hourangle" if ("h" in ra or ":" in ra or " " in ra) else "deg", "deg"))
        assert frame["v:separation_degree"][0] == pytest.approx(
            exact.separation(SkyCoord(frame["i:ra"][0], frame["i:dec"][0], unit="deg")).deg, abs=1e-9)


def test_conesearch_window_in_days_and_fink_columns(reader):
    assert reader.conesearch(320.7354787, -10.0132347, 5, start_date="2025-08-20 10:00:00", window_days=1).empty
    found = reader.conesearch(320.7354787, -10.0132347, 5, start_date="2025-09-01 00:00:00", window_days=1)
    assert list(found["i:objectId"]) == [OBJECT]
    assert jd_of("2025-09-01") <= found["i:jd"][0] < jd_of("2025-09-02")   # its latest alert in the window
    frame = reader.conesearch(320.7354787, -10.0132347, 5, columns="i:objectId")
    assert list(frame.columns) == ["i:objectId", "i:ra", "i:dec", "v:separation_degree"]
    frame = reader.conesearch(320.7354787, -10.0132347, 5, columns="i:objectId,i:drb,v:classification")
    assert frame["i:drb"][0] == reader.objects(OBJECT, columns="i:drb")["i:drb"][0]   # from the main table
    assert reader.conesearch(0, 0, 1).empty


def test_conesearch_radius_limits(reader):
    assert len(reader.conesearch(320.7354787, -10.0132347, 18000)) >= 1
    with pytest.raises(QueryError, match="cannot be bigger than 18,000 arcseconds"):
        reader.conesearch(320.7, -10.0, 18000.001)
    for tiny in (0.0001, 1e-300, 0):
        with pytest.raises(QueryError, match=r"expected arcseconds in \[0.01, 18000\]"):
            reader.conesearch(320.7, -10.0, tiny)
    assert list(reader.conesearch(320.7354787, -10.0132347, 0.01)["i:objectId"]) == [OBJECT]


# -- latests -------------------------------------------------------------------------------
def test_latests_both_spellings_of_a_simbad_label(reader, lake):
    bare = reader.latests("QSO", n=100, columns="i:candid,d:cdsxmatch")
    prefixed = reader.latests("(SIMBAD) QSO", n=100, columns="i:candid,d:cdsxmatch")
    assert bare.equals(prefixed)
    expected = sorted((a for a in lake if a["cdsxmatch"] in ("QSO", "(SIMBAD) QSO")),
                      key=lambda a: (a["jd"], a["objectId"], a["candid"]), reverse=True)   # newest first
    assert list(bare["i:candid"]) == [a["candid"] for a in expected][:100]
    assert set(bare["d:cdsxmatch"]) == {"QSO", "(SIMBAD) QSO"}


def test_latests_whole_alerts_and_an_empty_window(reader):
    frame = reader.latests("Solar System MPC", n=10)
    assert len(frame) == 10 and set(frame["v:classification"]) == {"Solar System MPC"}
    assert (frame["v:lastdate"] < "2024-01-16").all() and "i:drb" in frame.columns and "d:roid" in frame.columns
    empty = reader.latests("Microlensing candidate", n=10, columns="i:candid")   # known class, never stored
    assert empty.empty and list(empty.columns) == ["i:candid"]
    empty = reader.latests("QSO", start_date="2010-01-01", stop_date="2010-02-01", columns="i:candid")
    assert empty.empty and list(empty.columns) == ["i:candid"]
    with pytest.raises(QueryError, match="class 'Kilonova candidat' is unknown"):
        reader.latests("Kilonova candidat")


def test_latests_trend_and_color(reader, lake):
    window = dict(start_date="2024-01-01", stop_date="2024-02-01")
    all_ = reader.latests("QSO", n=20, columns="i:candid,d:mag_rate", **window)
    rising = reader.latests("QSO", n=20, trend="rising", columns="i:candid,d:mag_rate", **window)
    fading = reader.latests("QSO", n=20, trend="fading", columns="i:candid,d:mag_rate", **window)
    rate = {a["candid"]: a["mag_rate"] for a in lake}
    assert set(rising["i:candid"]) == {c for c in all_["i:candid"] if rate[c] < 0}
    assert set(fading["i:candid"]) == {c for c in all_["i:candid"] if rate[c] > 0}
    assert len(rising) and len(fading)
    coloured = reader.latests("QSO", n=3, color=True, columns="i:candid")
    assert {"v:rate", "v:g-r", "v:sigma(rate(g-r))"} <= set(coloured.columns)
    with pytest.raises(QueryError, match="trend 'low_state' is Fink's CTA blazar filter"):
        reader.latests("QSO", trend="low_state")


# -- sso -----------------------------------------------------------------------------------
def test_sso_names_numbers_and_columns(reader, lake):
    frame = reader.sso("78358", columns="i:magpsf")
    assert list(frame.columns) == ["i:magpsf", "i:ssnamenr", "sso_name", "sso_number"]
    assert list(frame["sso_number"]) == [78358] and frame["sso_name"].isna().all()
    both = reader.sso("2009 VN118, 78358")
    assert sorted(both["i:ssnamenr"]) == ["2009VN118", "78358"]
    assert list(both["v:classification"]) == ["Solar System MPC"] * 2
    assert both.set_index("i:ssnamenr").loc["2009VN118", "sso_name"] == "2009VN118"
    assert list(both["i:jd"]) == sorted(both["i:jd"], reverse=True)
    with pytest.raises(QueryError, match=r"n_or_d \['kdflsjffld'\]: no alert"):
        reader.sso("kdflsjffld")


# -- tracklet, anomaly, resolver ------------------------------------------------------------
def test_tracklet_by_id_and_by_date_prefix(reader, lake):
    tracklets = {a["candid"]: a["tracklet"] for a in lake if (a["tracklet"] or "").startswith("TRCK_")}
    day = reader.tracklet(date="2024-01-15")
    assert dict(zip(day["i:candid"], day["d:tracklet"])) == tracklets
    one = reader.tracklet(date="2024-01-15 11:00:05 00", columns="i:jd,d:tracklet")
    assert list(one.columns) == ["i:jd", "d:tracklet"] and set(one["d:tracklet"]) == {"TRCK_20240115_110005_00"}
    assert one["i:jd"][0] == pytest.approx(jd_of("2024-01-15 11:00:05"), abs=1e-3)
    assert reader.tracklet("TRCK_20240115_030815_00")["d:tracklet"].tolist() == ["TRCK_20240115_030815_00"]
    assert reader.tracklet(date="2021-08-10").empty
    for bad in (dict(), dict(tracklet_id="TRCK_1", date="2024"), dict(date="yesterday")):
        with pytest.raises(QueryError, match="tracklet|date"):
            reader.tracklet(**bad)


def test_anomaly_is_the_lowest_scores_of_the_window(reader, lake):
    scored = [a for a in lake if a["anomaly_score"] is not None and not math.isnan(a["anomaly_score"])]
    top = reader.anomaly(n=10, columns="i:candid,d:anomaly_score")
    expected = sorted(scored, key=lambda a: (a["anomaly_score"], -a["jd"]))[:10]
    assert list(top["d:anomaly_score"]) == [a["anomaly_score"] for a in expected]
    day = reader.anomaly(n=7, start_date="2024-01-15", stop_date="2024-01-15", columns="i:candid,d:anomaly_score")
    lo = jd_of("2024-01-15")
    inside = sorted((a for a in scored if lo <= a["jd"] < lo + 1), key=lambda a: (a["anomaly_score"], -a["jd"]))
    assert list(day["i:candid"]) == [a["candid"] for a in inside[:7]]
    part = reader.anomaly(n=5, start_date="2024-01-15 06:00:00", stop_date="2024-01-15")
    assert (part["i:jd"] >= jd_of("2024-01-15 06:00:00")).all() and len(part) == 5
    assert "v:classification" in part.columns and "d:anomaly_score" in part.columns


def test_resolver_forward_and_reverse(reader, lake):
    def pairs(prefix):
        return {(a["tns"], a["objectId"]) for a in lake if (a["tns"] or "").lower().startswith(prefix)}

    slsn = reader.resolve("tns", "SLSN", n=100)
    assert set(zip(slsn["d:fullname"], slsn["i:objectId"])) == pairs("slsn") and len(slsn) == len(pairs("slsn"))
    assert {"SLSN-I", "SLSN-II"} == set(slsn["d:fullname"])
    newest = {a["objectId"]: a["candid"] for a in sorted(lake, key=lambda a: a["jd"]) if a["tns"] == "SLSN-I"}
    first = slsn[slsn["d:fullname"] == "SLSN-I"]
    assert dict(zip(first["i:objectId"], first["i:candid"])) == newest          # the newest alert with the name
    lower = reader.resolve("tns", "slsn-i", n=100)                                # case-insensitive prefix
    assert set(zip(lower["d:fullname"], lower["i:objectId"])) == pairs("slsn-i")
    assert len(reader.resolve("tns", "SLSN", n=2)) == 2
    assert len(reader.resolve("simbad", "RRLyr", n=3)) == 3
    back = reader.resolve("simbad", "ZTF18adkvbzf", reverse=True)
    assert list(back.columns) == ["i:objectId", "d:cdsxmatch", "i:ra", "i:dec", "i:candid", "i:jd"]
    assert set(back["d:cdsxmatch"]) == {"Supernova"} and len(back) == 5
    assert reader.resolve("ssodnet", "2009 VN118").to_dict("records") == \
        [{"i:ssnamenr": "2009VN118", "i:name": "2009VN118", "i:number": None}]
    with pytest.raises(QueryError, match="resolver 'sesame'"):
        reader.resolve("sesame", "M31")


# -- cutouts -------------------------------------------------------------------------------
def test_png_cutouts_follow_fink_display_options(reader):
    def picture(**options):
        return Image.open(io.BytesIO(reader.cutout(OBJECT, output="PNG", **options)))

    grey = picture()
    assert grey.format == "PNG" and grey.size == (63, 63) and grey.mode == "L"
    assert picture(pmin=0.1, pmax=0.5).getextrema() == grey.getextrema()          # no effect on sigmoid
    assert np.array(picture(stretch="linear")).tolist() != \
        np.array(picture(stretch="linear", pmin=40, pmax=60)).tolist()            # cut levels matter otherwise
    for stretch in ("linear", "sqrt", "power", "log", "asinh"):
        assert np.array(picture(stretch=stretch)).tolist() != np.array(grey).tolist(), stretch
    assert picture(colormap="viridis").mode == "RGBA"
    assert np.array(picture(kernel="gauss")).tolist() != np.array(grey).tolist()
    older = picture(candid="3165254522815015001")
    assert np.array(older).tolist() != np.array(grey).tolist()
    for bad, word in ((dict(stretch="cubic"), "stretch"), (dict(colormap="nope"), "colormap"),
                      (dict(pmin=60, pmax=50), "pmin"), (dict(kernel="disc"), "convolution_kernel"),
                      (dict(candid="12.5"), "candid")):
        with pytest.raises(QueryError, match=word):
            reader.cutout(OBJECT, output="PNG", **bad)


# -- statistics, schema, schema reload ------------------------------------------------------
def test_statistics_with_fink_names(reader, lake):
    stats = reader.statistics("2025", columns="basic:n_g,class:SN candidate")
    assert list(stats.columns) == ["key:key", "basic:n_g", "class:SN candidate"]
    assert list(stats["key:key"]) == [f"ztf_202509{d:02d}" for d in range(1, 6)]
    in_2025 = [a for a in lake if "2025-09-01" <= str(Time(a["jd"], format="jd").iso) < "2025-09-06"]
    assert stats["basic:n_g"].sum() == sum(a["fid"] == 1 for a in in_2025)
    names = reader.statistics(schema=True)["schema"].tolist()
    assert {"key:key", "basic:sci", "basic:n_g", "basic:n_r", "basic:objects", "class:Solar System MPC"} <= set(names)
    whole = reader.statistics("")
    assert whole["basic:sci"].sum() == len(lake) == 1516
    with pytest.raises(QueryError, match="basic:raw"):
        reader.statistics("2024", columns="basic:raw")


def test_schema_lists_exactly_the_columns_objects_serve(reader):
    schema = reader.schema()
    frame = reader.objects(OBJECT, with_upper_limits=True, with_cutouts=True)
    for family, group in (("i:", "ZTF original fields (i:)"), ("d:", "Fink science module outputs (d:)"),
                          ("b:", "ZTF original cutouts (b:)"), ("v:", "Fink added values (v:)")):
        served = {c[2:] for c in frame.columns if c.startswith(family)}
        assert set(schema[group]) == served, family
        assert all(set(f) == {"type", "doc"} for f in schema[group].values())
    assert schema["Fink science module outputs (d:)"]["tag"]["doc"].startswith("With withupperlim")
    assert list(reader.schema("sky")) == ["ztf.sky (d:)", "ztf.sky (i:)"]


def test_a_running_reader_sees_columns_a_later_push_adds(sample_store, monkeypatch):
    config, store = sample_store
    reader = Reader(store, config)
    assert "d:zzz_added" not in reader.types("main")
    table = store.table("ztf")
    schemarow.put(table, config.survey.schema_version, {"d:zzz_added": "double"})   # what a push writes first
    try:
        assert "d:zzz_added" in reader.objects(OBJECT, columns="i:jd,d:zzz_added").columns   # an unknown name re-reads
        monkeypatch.setattr(read_base, "SCHEMA_TTL_SECONDS", 0.0)
        assert "d:zzz_added" in reader.objects(OBJECT).columns                            # and so does time
    finally:
        table.delete(b"schema_" + config.survey.schema_version.encode(), columns=[b"d:zzz_added"])
