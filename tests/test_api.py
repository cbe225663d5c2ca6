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
        "/api/v1/statistics?date=2024": lambda d: d[0]["d:alerts"] == 849,
        "/api/v1/schema?table=sky": lambda d: {"name": "i:ra", "type": "double"} in d,
        "/api/v1/cutouts?objectId=ZTF17aaaaitn": lambda d: d == [],   # this night's files have no stamps
    }
    for url, ok in checks.items():
        r = client.get(url)
        assert r.status_code == 200, (url, r.data[:300])
        assert ok(json.loads(r.data)), url


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
    ("/api/v1/objects?objectId=ZTF_1", "objectId"),
    ("/api/v1/objects?objectId=ZTF17aaaaitn&columns=i:nope", "columns"),
    ("/api/v1/objects?objectId=ZTF17aaaaitn&output-format=xls", "output-format"),
    ("/api/v1/latests?class=Nope", "class"),
    ("/api/v1/latests?class=QSO&n=-1", "n"),
    ("/api/v1/sso?n_or_d=null", "n_or_d"),
    ("/api/v1/cutouts?objectId=ZTF17aaaaitn&kind=Other", "kind"),
    ("/api/v1/statistics?date=2024-01", "date"),
    ("/api/v1/schema?table=nope", "table"),
])
def test_bad_parameters_get_400_naming_them(client, url, word):
    r = client.get(url)
    assert r.status_code == 400
    assert word in json.loads(r.data)["error"]


def test_openapi_is_served(client):
    spec = json.loads(client.get("/api/v1/openapi.json").data)
    assert {"/api/v1/objects", "/api/v1/conesearch", "/api/v1/cutouts"} <= set(spec["paths"])
