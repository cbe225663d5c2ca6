"""The HTTP API on a store filled from the real night: every route, bad parameters, exact ids."""
import io
import json

import pandas as pd
import pytest

from fink_ingest.api import create_app
from fink_ingest.read import Reader


@pytest.fixture(scope="module")
def client(real_night_push):
    config, store, _ = real_night_push
    return create_app(Reader(store, config)).test_client()


def test_objects_json_keeps_64_bit_ids_exact(client):
    r = client.get("/api/v1/objects?objectId=ZTF17aaaaitn&columns=i:candid,i:jd")
    assert r.status_code == 200
    rows = json.loads(r.data)
    assert rows == [{"i:candid": 2570218142115015056, "i:jd": rows[0]["i:jd"]}]
    assert b"2570218142115015056" in r.data   # not 2570218142115015000 from a float


def test_every_route_answers_on_a_real_object(client):
    checks = {
        "/api/v1/objects?objectId=ZTF17aaaaitn&withupperlim=true": lambda d: {x["d:tag"] for x in d} >= {"valid", "upperlim"},
        "/api/v1/conesearch?ra=97.2307&dec=3.9413&radius=5": lambda d: d[0]["i:objectId"] == "ZTF17aaaaitn",
        "/api/v1/latests?class=QSO&n=3": lambda d: len(d) == 3,
        "/api/v1/sso?n_or_d=2009%20VN118": lambda d: d[0]["i:objectId"] == "ZTF24aacgilq",
        "/api/v1/statistics?date=2024": lambda d: d[0]["basic:sci"] == 849 and d[0]["key:key"] == "ztf_20240115",
        "/api/v1/schema?table=sky": lambda d: d["ztf.sky (i:)"]["ra"]["type"] == "double",
        "/api/v1/schema": lambda d: d["ZTF original fields (i:)"]["candid"]["type"] == "bigint",
        "/api/v1/classes": lambda d: "SN candidate" in d["Fink classifiers"],
        "/api/v1/tracklet?date=2024-01-15": lambda d: {x["d:tracklet"] for x in d} == {
            "TRCK_20240115_110005_00", "TRCK_20240115_030815_00"},
        "/api/v1/anomaly?n=3&columns=d:anomaly_score": lambda d: len(d) == 3 and d[0]["d:anomaly_score"] < 0,
        "/api/v1/resolver?resolver=simbad&name=qso&nmax=2": lambda d: [x["d:fullname"] for x in d] == ["QSO"] * 2,
    }
    for url, ok in checks.items():
        r = client.get(url)
        assert r.status_code == 200, (url, r.data[:300])
        assert ok(json.loads(r.data)), url


def test_a_night_without_stamps_has_no_cutout(client):
    r = client.get("/api/v1/cutouts?objectId=ZTF17aaaaitn&output-format=array")   # this night's files have none
    assert r.status_code == 404 and json.loads(r.data)["error"] == "no stamp stored for ZTF17aaaaitn"


def test_post_json_and_other_formats(client):
    r = client.post("/api/v1/objects", json={"objectId": "ZTF17aaaaitn", "columns": "i:jd,i:magpsf",
                                              "output-format": "csv"})
    assert r.status_code == 200 and pd.read_csv(io.BytesIO(r.data)).shape == (1, 2)
    r = client.get("/api/v1/conesearch?ra=97.2307&dec=3.9413&radius=600&output-format=parquet")
    assert r.status_code == 200 and "v:separation_degree" in pd.read_parquet(io.BytesIO(r.data)).columns
    r = client.get("/api/v1/latests?class=QSO&n=2&output-format=votable")
    assert r.status_code == 200 and b"VOTABLE" in r.data


@pytest.mark.parametrize("url, word", [
    ("/api/v1/conesearch?ra=10&dec=95&radius=5", "dec"),
    ("/api/v1/conesearch?ra=10&dec=5&radius=-3", "radius"),
    ("/api/v1/conesearch?ra=ten&dec=5&radius=3", "ra"),
    ("/api/v1/conesearch?dec=5&radius=3", "ra"),
    ("/api/v1/cutouts?objectId=ZTF_1", "objectId"),
    ("/api/v1/objects?objectId=ZTF17aaaaitn&columns=i:nope", "columns"),
    ("/api/v1/objects?objectId=ZTF17aaaaitn&output-format=xls", "output-format"),
    ("/api/v1/latests?class=Nope", "class"),
    ("/api/v1/latests?class=QSO&n=-1", "n"),
    ("/api/v1/sso?n_or_d=null", "n_or_d"),
    ("/api/v1/cutouts?objectId=ZTF17aaaaitn&kind=Other", "kind"),
    ("/api/v1/statistics?date=2024-01", "date"),
    ("/api/v1/schema?table=nope", "table"),
    ("/api/v1/conesearch?ra=10&dec=5&radius=0.0001", "radius"),
    ("/api/v1/conesearch?ra=10&dec=5&radius=1e-300", "radius"),
    ("/api/v1/conesearch?ra=10&dec=5&radius=18001", "18,000 arcseconds"),
    ("/api/v1/conesearch?ra=10&dec=5&radius=5&startdate=2024-01-01&window=-1", "window"),
    ("/api/v1/conesearch?ra=10&dec=5&radius=5&output_format=csv", "output_format"),
    ("/api/v1/sso?n_or_d=1e300", "n_or_d"),
    ("/api/v1/latests?class=QSO&stopdate=nan", "date"),
    ("/api/v1/latests?class=QSO&n=1e300", "n"),
    ("/api/v1/objects?objectId=ZTF17aaaaitn&withupperlim=maybe", "withupperlim"),
    ("/api/v1/cutouts?objectId=ZTF17aaaaitn&stretch=cubic", "stretch"),
    ("/api/v1/resolver?resolver=sesame&name=M31", "resolver"),
    ("/api/v1/tracklet?date=tomorrow", "date"),
])
def test_bad_parameters_get_400_naming_them(client, url, word):
    r = client.get(url)
    assert r.status_code == 400
    assert word in json.loads(r.data)["error"]


def test_openapi_is_served(client):
    spec = json.loads(client.get("/api/v1/openapi.json").data)
    assert set(spec["paths"]) == {f"/api/v1/{r}" for r in ("objects", "conesearch", "latests", "sso", "cutouts",
                                                           "statistics", "schema", "classes", "tracklet",
                                                           "anomaly", "resolver")}


def test_no_parameter_gives_the_route_description(client):
    r = client.get("/api/v1/conesearch")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    assert "radius (number, required): arcseconds, 0.01 to 18000" in r.data.decode()


def test_hostile_bodies_get_clean_errors(real_night_push):
    config, store, _ = real_night_push
    client = create_app(Reader(store, config), max_body_bytes=200_000).test_client()
    r = client.post("/api/v1/objects", data="[" * 100_000, content_type="application/json")
    assert r.status_code == 400 and "too deeply nested" in json.loads(r.data)["error"]
    r = client.post("/api/v1/objects", data="x" * 300_000, content_type="application/json")
    assert r.status_code == 413 and json.loads(r.data)["status"] == "error"
    r = client.post("/api/v1/objects", json=["ZTF17aaaaitn"])
    assert r.status_code == 400 and "expected a JSON object" in json.loads(r.data)["error"]
    r = client.post("/api/v1/latests", json={"class": "QSO", "columns": "i:candid", "startdate": "2010-01-01",
                                             "stopdate": "2010-02-01"})
    assert r.status_code == 200 and json.loads(r.data) == []
    r = client.post("/api/v1/sso", json={"n_or_d": "2009 VN118", "columns": "i:magpsf"})
    assert r.status_code == 200 and set(json.loads(r.data)[0]) == {"i:magpsf", "i:ssnamenr", "sso_name", "sso_number"}
    r = client.delete("/api/v1/objects")
    assert r.status_code == 405 and json.loads(r.data)["status"] == "error"
