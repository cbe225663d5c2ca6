"""Benchmark of the read layer and the HTTP API against DuckDB on the parquet datalake.

    python benchmarks/bench_read.py --alerts 1000000

Builds (in a temporary directory) a night of N alerts scaled by datasim from the real night
2024-01-15 and pushes its alert tables (main, time, sky, class, sso, cutouts, statistics)
into the embedded store; lays the real SSO alerts (with stamps) out as a second night for
cutouts (arrays and PNG pictures).
Then, in one run, times each query K times (random real targets) in-process
(``read.Reader``), over HTTP (waitress on 127.0.0.1, keep-alive), and with DuckDB reading the
parquet datalake directly (what a user would do instead), and prints p50 and p99 in ms.
"""
from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "jobs"))

import numpy as np  # noqa: E402

from fink_ingest import paths  # noqa: E402
from fink_ingest.api import create_app  # noqa: E402
from fink_ingest.config import load_config  # noqa: E402
from fink_ingest.push import push_night  # noqa: E402
from fink_ingest.read import Reader  # noqa: E402
from fink_ingest.store import open_store  # noqa: E402
from fink_push import spark_session  # noqa: E402

NIGHT = "2024-01-15"
ALERT_TABLES = ["main", "time", "sky", "class", "sso", "cutouts", "statistics"]


def percentiles(fn, args_list):
    times = []
    for args in args_list:
        t0 = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t0) * 1000)
    return round(float(np.percentile(times, 50)), 2), round(float(np.percentile(times, 99)), 2)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alerts", type=int, default=1_000_000)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--datasim", default=str(ROOT.parent / "shared" / "datasim"))
    p.add_argument("--keep", help="reuse/keep this directory (store and datalake)")
    args = p.parse_args(argv)
    import duckdb

    work = Path(args.keep or tempfile.mkdtemp(prefix="fink_read_"))
    source = Path(args.datasim) / "ztf" / "archive" / "science" / "year=2024" / "month=01" / "day=15"
    config = load_config(None, datalake=str(work / "lake"), store=str(work / "store"), work_dir=str(work / "work"))
    store_ready = (work / "store" / "ztf.sky.sqlite").exists()
    if not store_ready:
        subprocess.run([sys.executable, str(ROOT / "bin" / "fink_datasim"), "scale", "--source", str(source),
                        "--prefix", str(work / "lake"), "--night", NIGHT, "--n", str(args.alerts)],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, str(ROOT / "bin" / "fink_datasim"), "layout", "--prefix", str(work / "lake"),
                        str(Path(args.datasim) / "ztf" / "alerts" / "sso_2022-08-04_11alerts.parquet")],
                       check=True, stdout=subprocess.DEVNULL)
        spark = spark_session(config)
        store = open_store(config.store)
        t0 = time.time()
        for night in (NIGHT, "2022-08-04"):
            s = push_night(spark, config, store, paths.parse_night(night), ALERT_TABLES)
            print(f"pushed {night}: {s['rows_written']} in {s['seconds']['total']} s", flush=True)
        print(f"store built in {time.time() - t0:.0f} s", flush=True)
        spark.stop()
    store = open_store(config.store)
    reader = Reader(store, config)
    n_main = store.table("ztf").count(prefix=b"ZTF")
    lake = f"{work / 'lake'}/science/year=2024/month=01/day=15/*.parquet"
    stamps = f"{work / 'lake'}/science/year=2022/month=08/day=04/*.parquet"

    con = duckdb.connect()
    sample = con.execute(f"SELECT objectId, candidate.ra, candidate.dec FROM read_parquet('{lake}') "
                         f"USING SAMPLE {args.queries} ROWS").fetchall()
    oids = [(r[0],) for r in sample]
    cones5 = [(r[1], r[2], 5.0) for r in sample]
    cones1d = [(r[1], r[2], 3600.0) for r in sample[: max(10, args.queries // 5)]]
    sso_oids = [(o,) for (o,) in con.execute(f"SELECT objectId FROM read_parquet('{stamps}')").fetchall()]
    cut = [sso_oids[i % len(sso_oids)] for i in range(args.queries)]
    classes = [("QSO",)] * args.queries

    # HTTP server in this process (waitress, 4 threads), keep-alive client
    from waitress.server import create_server

    server = create_server(create_app(reader), host="127.0.0.1", port=0, threads=4)
    port = server.effective_port
    threading.Thread(target=server.run, daemon=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", port)

    def http_get(path, **params):
        conn.request("GET", f"/api/v1/{path}?{urlencode(params)}")
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"{path} {params}: {r.status} {body[:200]}")
        return body

    def duck_cone(ra, dec, radius_arcsec):
        return con.execute(
            f"SELECT objectId, max(candidate.jd) FROM read_parquet('{lake}') WHERE "
            "degrees(acos(least(1, sin(radians(candidate.dec))*sin(radians(?)) + cos(radians(candidate.dec))"
            "*cos(radians(?))*cos(radians(candidate.ra - ?))))) <= ? GROUP BY objectId",
            [dec, dec, ra, radius_arcsec / 3600]).fetchall()

    queries = {
        "object lookup (all columns)": (
            lambda o: reader.objects(o), lambda o: http_get("objects", objectId=o),
            lambda o: con.execute(f"SELECT * EXCLUDE (prv_candidates) FROM read_parquet('{lake}') "
                                  "WHERE objectId = ? ORDER BY candidate.jd", [o]).fetchall(), oids),
        "cone 5 arcsec": (
            lambda ra, dec, r: reader.conesearch(ra, dec, r),
            lambda ra, dec, r: http_get("conesearch", ra=ra, dec=dec, radius=r), duck_cone, cones5),
        "cone 1 degree": (
            lambda ra, dec, r: reader.conesearch(ra, dec, r),
            lambda ra, dec, r: http_get("conesearch", ra=ra, dec=dec, radius=r), duck_cone, cones1d),
        "latest 10 of a class": (
            lambda c: reader.latests(c, n=10), lambda c: http_get("latests", **{"class": c, "n": 10}),
            lambda c: con.execute(f"SELECT * EXCLUDE (prv_candidates) FROM read_parquet('{lake}') "
                                  "WHERE cdsxmatch = ? ORDER BY candidate.jd DESC LIMIT 10", [c]).fetchall(), classes),
        "one cutout (Science, array)": (
            lambda o: reader.cutout(o), lambda o: http_get("cutouts", objectId=o, kind="Science", **{"output-format": "array"}),
            lambda o: con.execute(f"SELECT cutoutScience FROM read_parquet('{stamps}') WHERE objectId = ? "
                                  "ORDER BY candidate.jd DESC LIMIT 1", [o]).fetchall(), cut),
        "one cutout (Science, PNG)": (   # DuckDB column: the stamp bytes only (no picture drawn)
            lambda o: reader.cutout(o, output="PNG"), lambda o: http_get("cutouts", objectId=o, kind="Science"),
            lambda o: con.execute(f"SELECT cutoutScience FROM read_parquet('{stamps}') WHERE objectId = ? "
                                  "ORDER BY candidate.jd DESC LIMIT 1", [o]).fetchall(), cut),
        "one cutout (PNG, viridis, gauss)": (
            lambda o: reader.cutout(o, output="PNG", colormap="viridis", kernel="gauss"),
            lambda o: http_get("cutouts", objectId=o, kind="Science", colormap="viridis", convolution_kernel="gauss"),
            lambda o: con.execute(f"SELECT cutoutScience FROM read_parquet('{stamps}') WHERE objectId = ? "
                                  "ORDER BY candidate.jd DESC LIMIT 1", [o]).fetchall(), cut),
    }
    results = {"alerts_in_store": n_main}
    print(f"\nstore: {n_main} alerts; {args.queries} queries each (cone 1 degree: {len(cones1d)})")
    print(f"{'query':<30} {'in-process p50/p99 ms':>22} {'HTTP p50/p99 ms':>18} {'DuckDB p50/p99 ms':>20}")
    for name, (inproc, http_fn, duck, targets) in queries.items():
        inproc(*targets[0]), http_fn(*targets[0]), duck(*targets[0])  # warm up
        a, b, c = percentiles(inproc, targets), percentiles(http_fn, targets), percentiles(duck, targets[:20])
        results[name] = {"in_process": a, "http": b, "duckdb": c}
        print(f"{name:<30} {a[0]:>10} / {a[1]:<10} {b[0]:>7} / {b[1]:<9} {c[0]:>8} / {c[1]:<9}", flush=True)
    print(json.dumps(results))
    server.close()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
