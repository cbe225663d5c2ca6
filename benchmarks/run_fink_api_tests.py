"""Run Fink's own API tests against bin/fink_api over the sample nights, re-aimed at objects
the sample store holds: only target constants change (ids, positions, dates, classes, a name
prefix), never an assertion. Nothing of Fink's is copied here: the tests are read from a
clone of astrolabsoftware/fink-object-api, patched in memory, written to --work and run.

    bin/fink_datasim layout --prefix /tmp/lake ../shared/datasim/ztf
    bin/fink_push --from 2018-11-29 --to 2026-03-22 --datalake /tmp/lake --store /tmp/store
    bin/fink_api --store /tmp/store --port 24014 &
    git clone https://github.com/astrolabsoftware/fink-object-api /tmp/fink-object-api
    python3 benchmarks/run_fink_api_tests.py --fink /tmp/fink-object-api http://127.0.0.1:24014

Needs requests, pandas, astropy and pillow (what Fink's tests import).
"""
import argparse
import importlib.util
import sys
import time
import traceback
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("url", help="base URL of the API, e.g. http://127.0.0.1:24014")
parser.add_argument("routes", nargs="*", help="routes to run (default all ten)")
parser.add_argument("--fink", required=True, help="clone of astrolabsoftware/fink-object-api")
parser.add_argument("--work", default="/tmp/fink_api_tests", help="where the re-aimed tests are written")
ARGS = parser.parse_args()
SRC = Path(ARGS.fink) / "apps" / "routes" / "v1" / "ztf"
URL = ARGS.url
WORK = Path(ARGS.work)
WORK.mkdir(parents=True, exist_ok=True)
REAIM = {
    "objects": [('OID = "ZTF21abfmbix"', 'OID = "ZTF25abixhdc"'),
                ('oid="ZTF21abfmbix"', 'oid="ZTF25abixhdc"'),
                ('OIDS_ = ["ZTF21abfmbix", "ZTF21aaxtctv", "ZTF21abfaohe"]',
                 'OIDS_ = ["ZTF25abixhdc", "ZTF22aakyeps", "ZTF25abeqaoy"]')],
    "conesearch": [('ra="193.8217409"', 'ra="320.7354787"'), ('dec="2.8973184"', 'dec="-10.0132347"'),
                   ("ra0 = 193.8217", "ra0 = 320.7355"), ("dec0 = 2.897", "dec0 = -10.013"),
                   ('ra="175.3242473"', 'ra="320.7354787"'), ('dec="36.5429392"', 'dec="-10.0132347"'),
                   ('startdate="2021-11-03 10:00:00"', 'startdate="2025-08-20 10:00:00"'),
                   ('startdate="2021-11-05 10:00:00"', 'startdate="2025-09-01 00:00:00"'),
                   ("ra=193.822, dec=2.89732", "ra=320.73548, dec=-10.01323"),
                   ('ra="193d49m18.267s", dec="2d53m50.35s"', 'ra="320d44m07.723s", dec="-10d00m47.64s"'),
                   ('ra="12h55m17.218s", dec="+02d53m50.35s"', 'ra="21h22m56.515s", dec="-10d00m47.64s"'),
                   ('ra="12 55 17.218", dec="+02 53 50.35"', 'ra="21 22 56.515", dec="-10 00 47.64"'),
                   ('ra="12:55:17.218", dec="02:53:50.35"', 'ra="21:22:56.515", dec="-10:00:47.64"')],
    "latests": [('myclass="Early SN Ia candidate",\n    n=10', 'myclass="Solar System MPC",\n    n=10'),
                ('== "Early SN Ia candidate")', '== "Solar System MPC")'),
                ('myclass="(SIMBAD) QSO"', 'myclass="(SIMBAD) RRLyr"'), ('== "QSO")', '== "RRLyr")'),
                ('myclass="QSO"', 'myclass="RRLyr"'), ('myclass="(TNS) SN Ia"', 'myclass="(TNS) SN Icn"'),
                ('startdate="2021-11-01", stopdate="2021-12-01"', 'startdate="2024-01-01", stopdate="2024-02-01"'),
                ('< "2021-12-01")', '< "2024-02-01")'), ('>= "2021-11-01")', '>= "2024-01-01")'),
                ('start = "2024-11-03 12:30:00"', 'start = "2024-01-01 12:30:00"'),
                ('stop = "2024-12-03 12:30:00"', 'stop = "2024-02-01 12:30:00"'),
                ('myclass="Early SN Ia candidate",\n        startdate', 'myclass="QSO",\n        startdate'),
                ('myclass="Early SN Ia candidate",\n        trend="rising"', 'myclass="QSO",\n        trend="rising"'),
                ('myclass="Early SN Ia candidate",\n        trend="fading"', 'myclass="QSO",\n        trend="fading"'),
                ("class=Early SN Ia candidate&n=10", "class=Solar System MPC&n=10")],
    "sso": [('n_or_d="8467"', 'n_or_d="78358"')],
    "cutouts": [('objectId="ZTF21aaxtctv"', 'objectId="ZTF25abixhdc"'),
                ('candid="1622215345315015012"', 'candid="3165254522815015001"')],
    "statistics": [('date="2021"', 'date="2024"'), ('date="20211103"', 'date="20240115"')],
    "schema": [('objectId = "ZTF21abfmbix"', 'objectId = "ZTF25abixhdc"')],
    "tracklet": [('date="2021-08-10"', 'date="2024-01-15"'),
                 ('date="2021-10-22 09:19:49")', 'date="2024-01-15 11:00:05")'),
                 ('Time("2021-10-22 09:19:49")', 'Time("2024-01-15 11:00:05")'),
                 ('date="2021-10-22 09:19:49 00"', 'date="2024-01-15 11:00:05 00"'),
                 ('"TRCK_20211022_091949_00"', '"TRCK_20240115_110005_00"')],
    "anomaly": [('start_date="2023-01-25", stop_date="2023-01-25"', 'start_date="2024-01-15", stop_date="2024-01-15"'),
                ('"ZTF23aaaatwl"', '"ZTF18adpxlqg"')],
    "resolver": [('name="SN 2023")', 'name="SLSN")'), ('name="sn 2023")', 'name="slsn")'),
                 ('name="SN 2023", nmax=20', 'name="SLSN", nmax=20')],
}
SEVEN = ["objects", "conesearch", "latests", "sso", "cutouts", "statistics", "schema"]
routes = ARGS.routes or SEVEN + ["tracklet", "anomaly", "resolver"]
total = {}
for route in routes:
    text = (SRC / route / "test.py").read_text()
    for old, new in REAIM[route]:
        if old not in text:
            raise SystemExit(f"{route}: re-aim target not found: {old!r}")
        text = text.replace(old, new)
    path = WORK / f"{route}_test.py"
    path.write_text(text)
    sys.argv = ["test.py", URL]
    spec = importlib.util.spec_from_file_location(f"fink_{route}_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = [n for n in dir(mod) if n.startswith("test_") and callable(getattr(mod, n))]
    names.sort(key=lambda n: getattr(mod, n).__code__.co_firstlineno)
    passed = 0
    for name in names:
        t0 = time.time()
        try:
            getattr(mod, name)()
            passed += 1
            print(f"PASS {route}.{name} ({time.time() - t0:.2f} s)")
        except Exception as exc:  # noqa: BLE001
            msg = "".join(traceback.format_exception_only(type(exc), exc)).strip().replace("\n", " ")
            print(f"FAIL {route}.{name}: {msg[:400]}")
    total[route] = (passed, len(names))
    print(f"== {route}: {passed}/{len(names)}")
seven = [total[r] for r in SEVEN if r in total]
print("TOTAL", total, "seven routes:", sum(p for p, _ in seven), "/", sum(n for _, n in seven))
