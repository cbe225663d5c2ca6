"""Fink's API contract, route by route: each behaviour Fink's own tests check
(fink-object-api apps/routes/v1/ztf/<route>/test.py), on the sample nights, through HTTP.

Answers are checked against values read from the datalake files, never against the code
under test run twice. Objects used: ZTF25abixhdc (10 alerts with stamps, 2025-09-01..04),
ZTF22aakyeps (6), ZTF25abeqaoy (3).
"""
import io
import json

import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits, votable
from astropy.time import Time
from PIL import Image

from fink_ingest.api import create_app
from fink_ingest.read import Reader

OID, CANDID_OLDEST = "ZTF25abixhdc", "3165254522815015001"
RA, DEC = 320.7354787, -10.0132347


@pytest.fixture(scope="module")
def client(sample_store):
    config, store = sample_store
    return create_app(Reader(store, config)).test_client()


def post(client, route, expect=200, **payload):
    r = client.post(f"/api/v1/{route}", json=payload)
    assert r.status_code == expect, r.data[:300]
    return r


def table(client, route, **payload):
    r = post(client, route, **payload)
    fmt = payload.get("output-format", "json")
    if fmt == "json":
        return pd.read_json(io.BytesIO(r.data))
    if fmt == "csv":
        return pd.read_csv(io.BytesIO(r.data))
    if fmt == "parquet":
        return pd.read_parquet(io.BytesIO(r.data))
    return votable.parse(io.BytesIO(r.data)).get_first_table().to_table().to_pandas()


# -- every route -----------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["objects", "conesearch", "latests", "sso", "cutouts", "statistics",
                                   "tracklet", "anomaly", "resolver"])
def test_no_parameter_answers_the_description(client, route):
    r = client.get(f"/api/v1/{route}")
    assert r.status_code == 200 and r.data.decode().startswith(f"/api/v1/{route}: ")


# -- objects -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "csv", "parquet", "votable"])
def test_objects_in_every_format(client, fmt):
    frame = table(client, "objects", objectId=OID, **{"output-format": fmt})
    assert len(frame) == 10
    column = "i:candid" if fmt != "votable" else "i_candid"
    assert frame[column].iloc[-1] == int(CANDID_OLDEST)          # newest first: the first alert last


def test_objects_columns(client, sample_store):
    assert list(table(client, "objects", objectId=OID, columns="i:jd,i:magpsf").columns) == ["i:jd", "i:magpsf"]
    every = table(client, "objects", objectId=OID, columns="*")
    config, store = sample_store
    assert len(every.columns) == len(Reader(store, config).types("main")) + 11     # schema row + v: columns
    formatted = table(client, "objects", objectId=OID)
    assert isinstance(formatted["i:fid"].to_numpy()[0], np.int64)
    assert isinstance(formatted["i:magpsf"].to_numpy()[0], np.double)
    assert (formatted["i:fid"] > 0).all() and (formatted["i:magpsf"] > 6).all()


def test_objects_upper_limits_and_cutouts(client):
    tagged = table(client, "objects", objectId=OID, withupperlim=True)
    assert set(tagged["d:tag"]) == {"valid", "upperlim", "badquality"}
    assert (tagged.loc[tagged["d:tag"] == "upperlim", "i:candid"] == -1).all()
    rows = json.loads(post(client, "objects", objectId=OID, withcutouts=True, columns="i:candid").data)
    for kind in ("Science", "Template", "Difference"):
        stamp = rows[0][f"b:cutout{kind}_stampData"]
        assert isinstance(stamp, list) and np.shape(stamp) == (63, 63)
    rows = json.loads(post(client, "objects", objectId=OID, withcutouts="True", **{"cutout-kind": "Science"}).data)
    assert "b:cutoutScience_stampData" in rows[0] and "b:cutoutTemplate_stampData" not in rows[0]


def test_objects_several_and_unknown(client):
    several = table(client, "objects", objectId="ZTF25abixhdc,ZTF22aakyeps,ZTF25abeqaoy")
    assert several.groupby("i:objectId").size().to_dict() == {"ZTF22aakyeps": 6, "ZTF25abeqaoy": 3, "ZTF25abixhdc": 10}
    assert json.loads(post(client, "objects", objectId="ZTF99zzzzzzz").data) == []      # well formed, not stored
    # not an object id: nothing found, as Fink answers (no alert with such an id is ever stored)
    assert json.loads(post(client, "objects", objectId="ldfksjflkdsjf").data) == []
    mixed = table(client, "objects", objectId=f"ldfksjflkdsjf,{'x' * 5000},ZTF22aakyeps")
    assert set(mixed["i:objectId"]) == {"ZTF22aakyeps"}


def test_fink_client_calls(client):
    """fink-client's botlib: get_curve_ztf's objects call and get_cutout's API call, unchanged."""
    r = client.post("/api/v1/objects", json={"objectId": OID, "columns": "i:jd,i:fid,i:magpsf,i:sigmapsf,d:tag",
                                              "withupperlim": "True"})
    pdf = pd.read_json(io.BytesIO(r.data))
    assert r.status_code == 200 and set(pdf.columns) == {"i:jd", "i:fid", "i:magpsf", "i:sigmapsf", "d:tag"}
    assert (pdf["d:tag"] == "valid").sum() == 10
    r = client.post("/api/v1/cutouts", json={"objectId": OID, "kind": "Difference", "output-format": "array"})
    img = np.array(json.loads(r.data)["b:cutoutDifference_stampData"], dtype=float)
    assert r.status_code == 200 and img.shape == (63, 63)


# -- conesearch --------------------------------------------------------------------------------
def test_conesearch_one_object_within_the_radius(client):
    frame = table(client, "conesearch", ra=round(RA, 4), dec=round(DEC, 3), radius=5.0)
    assert list(frame["i:objectId"]) == [OID]
    sep = SkyCoord(round(RA, 4), round(DEC, 3), unit="deg").separation(
        SkyCoord(frame["i:ra"][0], frame["i:dec"][0], unit="deg")).arcsec
    assert sep <= 5
    assert table(client, "conesearch", ra=0, dec=0, radius=1).empty


def test_conesearch_dates_columns_formats_and_errors(client):
    assert table(client, "conesearch", ra=RA, dec=DEC, radius=5, startdate="2025-08-20 10:00:00", window=1).empty
    assert len(table(client, "conesearch", ra=RA, dec=DEC, radius=5, startdate="2025-09-01 00:00:00", window=1)) == 1
    assert len(table(client, "conesearch", ra=RA, dec=DEC, radius=5, columns="i:objectId").columns) == 4
    reference = table(client, "conesearch", ra=RA, dec=DEC, radius=5)
    for fmt, cols in (("csv", ["i:ra", "i:dec"]), ("parquet", ["i:ra", "i:dec"]), ("votable", ["i_ra", "i_dec"])):
        other = table(client, "conesearch", ra=RA, dec=DEC, radius=5, **{"output-format": fmt})
        assert np.allclose(reference[["i:ra", "i:dec"]], other[cols]), fmt
    r = post(client, "conesearch", expect=400, ra=RA, dec=DEC, radius=36000)
    assert "`radius` cannot be bigger than 18,000 arcseconds (5 degrees)." in json.loads(r.data)["error"]
    r = post(client, "conesearch", expect=400, ra="kfdlkj", dec="lkfdjf", radius=5)
    assert "kfdlkj" in json.loads(r.data)["error"]


def test_conesearch_coordinates_in_every_notation(client):
    magpsf = table(client, "conesearch", ra=320.73548, dec=-10.01323, radius=5)["i:magpsf"]
    for ra, dec in (("320d44m07.723s", "-10d00m47.64s"), ("21h22m56.515s", "-10d00m47.64s"),
                    ("21 22 56.515", "-10 00 47.64"), ("21:22:56.515", "-10:00:47.64")):
        assert table(client, "conesearch", ra=ra, dec=dec, radius=5)["i:magpsf"].equals(magpsf), ra


# -- latests -----------------------------------------------------------------------------------
def test_latests_classes(client):
    frame = table(client, "latests", **{"class": "Solar System MPC", "n": 10})
    assert len(frame) == 10 and set(frame["v:classification"]) == {"Solar System MPC"}
    simbad = table(client, "latests", **{"class": "(SIMBAD) RRLyr", "n": 10})
    assert len(simbad) == 10 and set(simbad["v:classification"]) == {"RRLyr"}
    assert simbad.equals(table(client, "latests", **{"class": "RRLyr", "n": 10}))
    assert not table(client, "latests", **{"class": "(TNS) SN Icn"}).empty
    dated = table(client, "latests", **{"class": "Solar System MPC", "n": 10, "startdate": "2024-01-01",
                                        "stopdate": "2024-02-01"})
    assert len(dated) == 10 and ((dated["v:lastdate"] >= "2024-01-01") & (dated["v:lastdate"] < "2024-02-01")).all()
    assert list(table(client, "latests", **{"class": "Solar System MPC", "columns": "i:jd,i:objectId"}).columns) == \
        ["i:jd", "i:objectId"]
    assert list(table(client, "latests", **{"class": "Solar System MPC", "columns": "i:objectId"}).columns) == \
        ["i:objectId"]
    assert json.loads(post(client, "latests", **{"class": "Microlensing candidate"}).data) == []


def test_latests_trends_urls_and_formats(client):
    window = {"class": "QSO", "startdate": "2024-01-01 12:30:00", "stopdate": "2024-02-01 12:30:00"}
    every = table(client, "latests", **window)
    rising = table(client, "latests", trend="rising", **window)
    fading = table(client, "latests", trend="fading", **window)
    assert len(every) == len(rising) + len(fading) == 10
    assert (rising["d:mag_rate"] < 0).all() and (fading["d:mag_rate"] > 0).all()
    by_get = pd.read_json(io.BytesIO(client.get("/api/v1/latests?class=Solar System MPC&n=10").data))
    by_post = table(client, "latests", **{"class": "Solar System MPC", "n": 10})
    assert np.allclose(by_get[["i:ra", "i:dec"]], by_post[["i:ra", "i:dec"]])
    for fmt, cols in (("csv", ["i:ra", "i:dec"]), ("parquet", ["i:ra", "i:dec"]), ("votable", ["i_ra", "i_dec"])):
        other = table(client, "latests", **{"class": "Solar System MPC", "n": 10, "output-format": fmt})
        assert np.allclose(by_post[["i:ra", "i:dec"]], other[cols]), fmt


# -- sso ---------------------------------------------------------------------------------------
def test_sso(client):
    frame = table(client, "sso", n_or_d="78358", withEphem=False, withcutouts=False, withResiduals=False,
                  columns="*")
    assert (frame["d:roid"] == 3).all() and list(frame["i:ssnamenr"].astype(str)) == ["78358"]
    assert list(frame["sso_number"]) == [78358]
    assert len(table(client, "sso", n_or_d="78358,2009 VN118")) == 2
    r = post(client, "sso", expect=400, n_or_d="kdflsjffld")
    assert "kdflsjffld" in json.loads(r.data)["error"]
    r = post(client, "sso", expect=400, n_or_d="78358", withEphem=True)
    assert "Miriade" in json.loads(r.data)["error"]


# -- cutouts -----------------------------------------------------------------------------------
def cutout(client, **payload):
    defaults = {"objectId": OID, "kind": "Science", "stretch": "sigmoid", "colormap": "viridis", "pmin": 0.5,
                "pmax": 99.5, "output-format": "PNG"}
    r = post(client, "cutouts", **{**defaults, **payload})
    fmt = payload.get("output-format", "PNG")
    if fmt == "PNG":
        return Image.open(io.BytesIO(r.data))
    if fmt == "FITS":
        return fits.open(io.BytesIO(r.data), ignore_missing_simple=True)
    return json.loads(r.data)


def test_cutouts_in_every_format(client):
    png = cutout(client)
    assert png.format == "PNG" and png.size == (63, 63)
    hdul = cutout(client, **{"output-format": "FITS"})
    assert len(hdul) == 1 and np.shape(hdul[0].data) == (63, 63)
    arrays = [cutout(client, kind=k, **{"output-format": "array"})[f"b:cutout{k}_stampData"]
              for k in ("Science", "Template", "Difference")]
    assert all(np.shape(a) == (63, 63) for a in arrays) and arrays[0] != arrays[1] != arrays[2]
    every = cutout(client, kind="All", **{"output-format": "array"})
    assert [every[f"b:cutout{k}_stampData"] for k in ("Science", "Template", "Difference")] == arrays
    assert np.array_equal(np.array(arrays[0], dtype=float), hdul[0].data, equal_nan=True)
    r = post(client, "cutouts", expect=400, objectId=OID, kind="All", **{"output-format": "PNG"})
    assert "kind 'All'" in json.loads(r.data)["error"]


def test_cutout_pictures_follow_the_display_options(client):
    base = cutout(client)
    assert cutout(client, pmin=0.1, pmax=0.5).getextrema() == base.getextrema()
    assert cutout(client, pmin=0.1, pmax=0.5, stretch="linear").getextrema() != base.getextrema()
    for stretch in ("linear", "sqrt", "power", "log"):
        assert cutout(client, stretch=stretch).getextrema() != base.getextrema(), stretch
    assert cutout(client, colormap="Greys").getextrema() != base.getextrema()
    grey = post(client, "cutouts", objectId=OID)                       # every option at its default
    assert Image.open(io.BytesIO(grey.data)).mode == "L"
    assert cutout(client, convolution_kernel="gauss").getextrema() != base.getextrema()
    assert cutout(client, candid=CANDID_OLDEST).getextrema() != base.getextrema()


# -- statistics, schema, classes ----------------------------------------------------------------
def test_statistics(client):
    year = table(client, "statistics", date="2025", columns="*")
    assert list(year["key:key"]) == [f"ztf_202509{d:02d}" for d in range(1, 6)]
    day = table(client, "statistics", date="20240115")
    assert len(day) == 1 and day["basic:sci"][0] == 849 and "basic:n_g" in day.columns
    cols = table(client, "statistics", date="2024", columns="basic:n_r,class:Solar System MPC")
    assert list(cols.columns) == ["key:key", "basic:n_r", "class:Solar System MPC"]
    assert "basic:sci" in table(client, "statistics", schema=True)["schema"].tolist()


@pytest.mark.parametrize("payload", [{"class": "SN candidate", "n": 1, "columns": "i:objectId"},
                                     {"class": "Solar System MPC", "n": 1, "columns": "i:objectId"}])
def test_schema_describes_what_objects_serve(client, payload):
    schema = json.loads(client.get("/api/v1/schema").data)
    oid = json.loads(post(client, "latests", **payload).data)[0]["i:objectId"]
    rows = json.loads(post(client, "objects", objectId=oid, columns="*", withupperlim=True, withcutouts=True).data)
    columns = set().union(*(r.keys() for r in rows))
    for family in ("i:", "d:", "b:", "v:"):
        group = next(g for g in schema if f"({family})" in g)
        assert set(schema[group]) == {c[2:] for c in columns if c.startswith(family)}, family


def test_classes(client):
    classes = json.loads(client.get("/api/v1/classes").data)
    assert set(classes["Fink classifiers"]) >= {"Early SN Ia candidate", "SN candidate", "Solar System MPC"}
    assert "(TNS) SN Ia" in classes["Cross-match with TNS"]
    simbad = [g for g in classes if g.startswith("Cross-match with SIMBAD")][0]
    assert len(classes[simbad]) == 315 and {"(SIMBAD) QSO", "(SIMBAD) RRLyrae", "(SIMBAD) RRLyr"} <= set(classes[simbad])


# -- tracklet, anomaly, resolver ------------------------------------------------------------------
def test_tracklet(client):
    day = table(client, "tracklet", date="2024-01-15")
    assert not day.empty and all(t.startswith("TRCK") for t in day["d:tracklet"])
    full = table(client, "tracklet", date="2024-01-15 11:00:05")
    jd0 = Time("2024-01-15 11:00:05").jd
    assert len(full) and all(round(jd, 3) == round(jd0, 3) for jd in full["i:jd"])
    one = table(client, "tracklet", date="2024-01-15 11:00:05 00")
    assert set(one["d:tracklet"]) == {"TRCK_20240115_110005_00"}


def test_anomaly(client):
    top = table(client, "anomaly", n=10)
    assert len(top) == 10 and (top["d:anomaly_score"] < 0).all()
    day = table(client, "anomaly", n=10, start_date="2024-01-15", stop_date="2024-01-15")
    assert len(day) == 10 and "ZTF18adpxlqg" in day["i:objectId"].to_numpy()
    assert list(table(client, "anomaly", columns="i:jd,i:objectId").columns) == ["i:jd", "i:objectId"]
    by_get = pd.read_json(io.BytesIO(client.get("/api/v1/anomaly?n=10&output-format=json").data))
    assert np.allclose(top["d:anomaly_score"], by_get["d:anomaly_score"])
    for fmt, col in (("csv", "d:anomaly_score"), ("parquet", "d:anomaly_score"), ("votable", "d_anomaly_score")):
        assert np.allclose(top["d:anomaly_score"], table(client, "anomaly", **{"output-format": fmt})[col]), fmt
    features = top["d:lc_features_g"].dropna()
    # JSON text of the list of the struct's values, as Fink sends them (its test_feature_array)
    lists = [json.loads(x) for x in features]
    assert len(lists) and all(isinstance(v, list) for v in lists)
    assert all(len(v) > 10 for v in lists)       # every feature of the alert's struct (layouts differ)
    assert all(v is None or isinstance(v, (int, float)) for x in lists for v in x)


def test_resolver(client):
    names = table(client, "resolver", resolver="tns", name="slsn", nmax=100)
    assert set(names["d:fullname"]) == {"SLSN-I", "SLSN-II"} and len(names) > 2
    assert len(table(client, "resolver", resolver="tns", name="slsn", nmax=2)) == 2
    back = table(client, "resolver", resolver="simbad", name="ZTF18adkvbzf", reverse=True)
    assert len(back) == 5 and set(back["d:cdsxmatch"]) == {"Supernova"}
    sso = json.loads(post(client, "resolver", resolver="ssodnet", name="78358").data)
    assert sso == [{"i:ssnamenr": "78358", "i:name": None, "i:number": 78358}]
