"""bin/fink_api as operators run it, over the sample store: the terminal (one access line per
request, no library warnings, no web debugger), the hostile requests of issue 11, and a
property-based run of every route of /api/v1/openapi.json (hypothesis) that fails on any 500
or dropped connection."""
import http.client
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fink_ingest.api import openapi

ROOT = Path(__file__).resolve().parent.parent
OID = "ZTF25abixhdc"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """bin/fink_api in a subprocess; its terminal output collected in a file."""

    def __init__(self, store, tmp_path, *options):
        self.port = free_port()
        self.log = tmp_path / f"fink_api_{self.port}.log"
        self.out = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bin" / "fink_api"), "--store", str(store),
                                      "--port", str(self.port), "--threads", "4", *options],
                                     stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while "Serving on" not in self.terminal():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"fink_api did not start: {self.terminal()}")
            time.sleep(0.2)

    def terminal(self):
        return self.log.read_text()

    def request(self, method, path, body=None, headers=None):
        """(status, body bytes); a dropped connection raises."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            try:
                conn.request(method, path, body=body, headers=headers or {})
            except (BrokenPipeError, ConnectionResetError):
                pass   # the server answered (413) and closed before the whole body was sent: read its answer
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def post(self, route, payload):
        return self.request("POST", f"/api/v1/{route}", json.dumps(payload).encode(),
                            {"Content-Type": "application/json"})

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.out.close()


@pytest.fixture(scope="module")
def server(sample_store, tmp_path_factory):
    config, _ = sample_store
    s = Server(config.store, tmp_path_factory.mktemp("api_server"))
    yield s
    s.stop()


def test_every_option_has_help_text():
    out = subprocess.run([sys.executable, str(ROOT / "bin" / "fink_api"), "--help"], capture_output=True, text=True,
                         check=True).stdout
    options = re.findall(r"^  (--[a-z-]+)(?: [A-Z_]+)?\s*(.*)$", out, flags=re.M)
    assert {o for o, _ in options} == {"--conf", "--store", "--host", "--port", "--threads",
                                       "--max-body-bytes", "--debug"}
    lines = out.splitlines()
    for option, text in options:
        i = next(j for j, line in enumerate(lines) if line.startswith(f"  {option}"))
        assert text.strip() or lines[i + 1].startswith(" " * 10), option   # help on the line or the next


def test_one_access_line_per_request_and_no_library_warnings(server):
    before = server.terminal().count("\n")
    calls = [("GET", f"/api/v1/objects?objectId={OID}&output-format=votable"),       # ~180 columns in a VOTable
             ("GET", f"/api/v1/cutouts?objectId={OID}&output-format=FITS"),
             ("GET", f"/api/v1/cutouts?objectId={OID}&kind=All&output-format=array"),
             ("GET", f"/api/v1/cutouts?objectId={OID}"),
             ("GET", "/api/v1/conesearch?ra=320.7354787&dec=-10.0132347&radius=5&output-format=votable"),
             ("GET", "/api/v1/latests?class=QSO&n=5&output-format=csv"),
             ("GET", f"/api/v1/objects?objectId={OID}&columns=i:nope"), ("GET", "/api/v1/nowhere")]
    statuses = [server.request(m, p)[0] for m, p in calls]
    assert statuses == [200, 200, 200, 200, 200, 200, 400, 404]
    time.sleep(0.5)
    new = server.terminal().splitlines()[before:]
    assert len(new) == len(calls), new
    for (method, path), status, line in zip(calls, statuses, new):
        assert re.fullmatch(rf"\S+ \S+ {method} {re.escape(path.split('?')[0])} {status} \d+\.\d ms", line), line
    assert not re.search(r"Warning|W03|W\d\d:|Traceback", server.terminal())


def test_debug_never_serves_a_web_debugger(sample_store, tmp_path):
    config, _ = sample_store
    s = Server(config.store, tmp_path, "--debug")
    try:
        status, body = s.request("GET", "/api/v1/objects?objectId=ZTF17aaaaitn&columns=i:nope")
        assert status == 400 and json.loads(body)["status"] == "error"
        status, body = s.request("GET", "/console")
        assert status == 404 and b"Werkzeug" not in body and b"debugger" not in body.lower()
        assert "Debugger" not in s.terminal() and "Serving on" in s.terminal()      # waitress, not app.run
    finally:
        s.stop()


@pytest.mark.parametrize("method, path, payload, expect, word", [
    ("GET", "/api/v1/conesearch?ra=10&dec=5&radius=0.0001", None, 400, "radius"),
    ("GET", "/api/v1/conesearch?ra=10&dec=5&radius=1e-300", None, 400, "radius"),
    ("GET", "/api/v1/sso?n_or_d=1e300", None, 400, "n_or_d"),
    ("GET", "/api/v1/latests?class=QSO&stopdate=nan", None, 400, "date"),
    ("POST", "/api/v1/sso", {"n_or_d": "78358", "columns": "i:magpsf"}, 200, "i:magpsf"),
    ("POST", "/api/v1/latests", {"class": "QSO", "columns": "i:candid", "startdate": "2010-01-01",
                                 "stopdate": "2010-01-02"}, 200, "[]"),
    ("POST", "/api/v1/objects", "[" * 100_000, 400, "nested"),
    ("POST", "/api/v1/objects", "x" * (10 << 20), 413, "Too Large"),
    ("POST", "/api/v1/objects", {"objectId": [f"ZTF17aaa{i:04d}" for i in range(1001)]}, 400, "objectId"),
], ids=["radius 0.0001", "radius 1e-300", "sso 1e300", "stopdate nan", "sso without i:jd",
        "empty window, one column", "100k nested [", "10 MB body", "1001 ids"])
def test_issue_11_requests_answer_cleanly(server, method, path, payload, expect, word):
    body = None if payload is None else (payload if isinstance(payload, str) else json.dumps(payload)).encode()
    t0 = time.time()
    status, data = server.request(method, path, body, {"Content-Type": "application/json"} if body else None)
    assert status == expect and word in data.decode(errors="replace"), data[:300]
    assert time.time() - t0 < 10
    assert server.proc.poll() is None


def test_ids_over_the_cap_are_refused_not_worked_through(server):
    ids = ",".join(f"ZTF17{chr(97 + i // 676)}{chr(97 + i // 26 % 26)}{chr(97 + i % 26)}aaaa" for i in range(1001))
    t0 = time.time()
    status, data = server.post("objects", {"objectId": ids})
    assert status == 400 and "1001 ids in one request; at most 1000" in data.decode()
    assert time.time() - t0 < 2


# -- property-based: every route of the OpenAPI description ------------------------------------
REAL = ["ZTF25abixhdc", "ZTF17aaaaitn", "ZTF99zzzzzzz", "", "*", "i:jd,i:magpsf", "v:classification,d:tag",
        "i:candid", "2024-01-15", "2025-09-01 00:00:00", "nan", "inf", "9999-12-31", "0000-01-01", "2460324.5",
        "60000", "TRCK_20240115", "TRCK_20240115_110005_00", "QSO", "(SIMBAD) QSO", "(TNS) SN Ia", "Solar System MPC",
        "Unknown", "78358", "2009 VN118", "1e300", "-1e300", "320.7354787", "-10.0132347", "21h22m56.515s",
        "-10:00:47.64", "12 55 17.2", "sigmoid", "viridis", "gauss", "All", "Science", "FITS", "PNG", "array",
        "json", "csv", "votable", "parquet", "3165254522815015001", "-1", "0", "18000", "tns", "simbad", "ssodnet",
        "slsn", "a" * 3000, "é%_\u2603", "%5F", "_", "null", "None", "true", "false"]


def values(schema):
    """Hypothesis values for a parameter of an OpenAPI type: well-formed, real and hostile."""
    kinds = {"string": st.text(max_size=40), "number": st.floats(allow_nan=True, allow_infinity=True),
             "integer": st.integers(min_value=-(2 ** 70), max_value=2 ** 70), "boolean": st.booleans()}
    out = kinds[schema["type"]] | st.sampled_from(REAL) | st.none() \
        | st.lists(st.sampled_from(REAL[:6]), max_size=3) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    if "enum" in schema:
        out = st.sampled_from(schema["enum"]) | out
    return out


SPEC = openapi()["paths"]
REQUESTS = st.one_of(*[
    st.tuples(st.just(path), st.sampled_from(["GET", "POST"]),
              st.fixed_dictionaries({}, optional={p["name"]: values(p["schema"]) for p in op["get"]["parameters"]}))
    for path, op in SPEC.items()])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(request=REQUESTS)
def test_no_route_answers_500_or_drops_the_connection(server, request):
    path, method, params = request
    if method == "GET":
        query = urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items() if v is not None})
        status, body = server.request("GET", f"{path}?{query}" if query else path)
    else:
        body = json.dumps(params).encode()
        status, body = server.request("POST", path, body, {"Content-Type": "application/json"})
    assert status in (200, 400, 404, 413), (path, method, params, status, body[:300])
    assert server.proc.poll() is None, "the server died"


def test_the_terminal_holds_only_access_lines_after_all_that(server):
    """Run after the property-based test: every line is an access line; no defect, traceback or
    library warning was printed while serving hundreds of hostile requests."""
    lines = server.terminal().splitlines()
    assert len(lines) > 400
    other = [line for line in lines if not re.fullmatch(r"\S+ \S+ (GET|POST) /\S* \d{3} \d+\.\d ms", line)]
    assert all("Serving on" in line or line.startswith("fink_api: store") for line in other), other[:5]
