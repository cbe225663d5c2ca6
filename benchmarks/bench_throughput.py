"""Throughput of the push against Spark's own floor, measured side by side in one run.

    python3 benchmarks/bench_throughput.py --alerts 400000                  # every table
    python3 benchmarks/bench_throughput.py --alerts 400000 --tables main    # the main table alone
    python3 benchmarks/bench_throughput.py --backfill                       # 21 real nights, one job vs one night
    python3 benchmarks/bench_throughput.py --alerts 400000 --tables main,sky --peers PEERS_VENV/bin/python

Night mode (``--alerts N``): datasim scales the real night 2024-01-15 to N alerts, then, in one
Spark session (local[*], started once, its start-up reported apart):

- ``floor``: the least any Spark design can do with the night: read it, leave out what the
  main table leaves out (history, stamps, partition columns), sort it by ``objectId``,
  ``candidate.jd`` and write it to parquet (snappy).
- ``push``: ``push_night`` of the tables asked for into a fresh embedded store.

The two alternate, floor first, ``--rounds`` times each (default 2). ``push/floor`` compares
the fastest of each: both warm (JVM, Spark's generated code). A Spark job runs its plan's
code cold the first time, and in the first round each of them is cold for its own plan
(the floor also pays the JVM's own warm-up): ``first/first`` compares those. Until
2026-12-02 the floor ran before and after one push and the push (cold) was compared with the
faster floor (warm): ``first_push_over_floor`` in the JSON line.
- ``read``: in a subprocess, a plain ``pyarrow.parquet.read_table`` of the same columns,
  median of three.

Printed: seconds, push/floor, push/read, alerts/s per core, bytes per alert of each table,
and the peak resident memory during the push of the driver and of its largest writer process
(``push.parallel``). ``--peers PYTHON``: then, on the same night, ``benchmarks/peers.py``
(hats-import with an objectId index, DuckDB) run by a Python that has them (a venv: ``python3 -m venv V && V/bin/pip install hats-import duckdb
'dask[distributed]>=2025.3,<2025.4'``; hats needs pandas 3, pyspark 4 does not take it).

Backfill mode (``--backfill``): every real night of ``../shared/datasim/ztf`` (21 nights,
1,516 alerts from six Fink layouts) laid out by datasim; ``bin/fink_push --from --to`` over
them, against the same alerts laid out as one night (each night read with its own schema,
the types widened to one schema that holds them all: the files themselves cannot be read
together) pushed in one ``bin/fink_push --night``; both as an operator runs them (a process
each, Spark start-up included), every table; ``--rounds`` times each, alternated, the
fastest of each compared (one run of either moved by 4 s between runs on 2026-12-06: the one
night 14.7-19.1 s).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "jobs"))

NIGHT = "2024-01-15"
BASELINE_READS = 3


def high_water_mb(pid="self"):
    """Peak resident memory (VmHWM) of a process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_high_water(pid="self"):
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def baseline_reads(night_dir, columns, n):
    """Seconds of plain pyarrow reads of the night's columns, in a subprocess."""
    code = ("import json, sys, time; import pyarrow.parquet as pq\n"
            "d, cols, n, k = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])\n"
            "out = []\n"
            "for _ in range(k):\n"
            "    t0 = time.time(); t = pq.read_table(d, columns=cols); out.append(time.time() - t0)\n"
            "    assert t.num_rows == n, t.num_rows\n"
            "print(json.dumps(out))\n")
    done = subprocess.run([sys.executable, "-c", code, str(night_dir), json.dumps(columns), str(n),
                           str(BASELINE_READS)], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def spark_floor(spark, night_dir, leave_out, target):
    """Seconds of Spark reading the night and writing it sorted by objectId, jd to parquet."""
    from pyspark.sql import functions as F

    shutil.rmtree(target, ignore_errors=True)
    t0 = time.time()
    frame = spark.read.parquet(str(night_dir))
    frame = frame.drop(*[c for c in leave_out if c in frame.columns])
    frame.orderBy(F.col("objectId"), F.col("candidate.jd")).write.parquet(str(target))
    seconds = time.time() - t0
    shutil.rmtree(target, ignore_errors=True)
    return seconds


def night_mode(args):
    from fink_ingest import paths
    from fink_ingest.config import load_config
    from fink_ingest.push import push_night
    from fink_ingest.store import open_store
    from fink_push import spark_session

    cores = os.cpu_count()
    work = Path(args.keep or tempfile.mkdtemp(prefix="fink_throughput_"))
    source = Path(args.datasim) / "ztf" / "archive" / "science" / "year=2024" / "month=01" / "day=15"
    config = load_config(None, datalake=str(work / "lake"), store=str(work / "store"), work_dir=str(work / "work"))
    t0 = time.time()
    spark = spark_session(config)
    startup = time.time() - t0
    results = []
    for n in args.alerts:
        lake = work / "lake"
        marker = lake / f".n={n}"
        if not marker.exists():
            shutil.rmtree(lake, ignore_errors=True)
            subprocess.run([sys.executable, str(ROOT / "bin" / "fink_datasim"), "scale", "--source", str(source),
                            "--prefix", str(lake), "--night", NIGHT, "--n", str(n)], check=True,
                           stdout=subprocess.DEVNULL)
            marker.touch()
        night_dir = Path(paths.night_dir(config.datalake, paths.parse_night(NIGHT)))
        import pyarrow.parquet as pq

        schema = pq.read_schema(next(night_dir.glob("*.parquet")))
        s = config.survey
        leave_out = set(s.served_elsewhere) | set(s.partition)
        columns = [c for c in schema.names if c not in leave_out]
        tables = None if args.tables == "all" else args.tables.split(",")
        floors, pushes = [], []  # alternated, floor first: (seconds, summary, peak MB)
        for _ in range(args.rounds):
            floors.append(spark_floor(spark, night_dir, leave_out, work / "floor"))
            shutil.rmtree(work / "store", ignore_errors=True)
            store = open_store(config.store)
            reset_high_water()
            t0 = time.time()
            summary = push_night(spark, config, store, paths.parse_night(NIGHT), tables)
            pushes.append((time.time() - t0, summary, high_water_mb()))
            if not summary["ok"]:
                raise SystemExit(f"push failed: {json.dumps(summary)[:2000]}")
        floor = min(floors)
        push_s, summary, _ = min(pushes, key=lambda p: p[0])
        peak = max(p[2] for p in pushes)
        writer_peak = max((p[1].get("writer_peak_mb") or 0 for p in pushes), default=0) or None
        reads = baseline_reads(night_dir, columns, n)
        read_s = statistics.median(reads)
        sizes = {t: store.size_bytes(t) for t in store.tables()}
        res = {"alerts": n, "tables": args.tables, "cores": cores, "rounds": args.rounds, "push_s": round(push_s, 1),
               "floor_s": round(floor, 1), "pushes_s": [round(p[0], 1) for p in pushes],
               "floors_s": [round(f, 1) for f in floors], "read_s": round(read_s, 2),
               "push_over_floor": round(push_s / floor, 2),
               "first_push_over_first_floor": round(pushes[0][0] / floors[0], 2),
               "first_push_over_floor": round(pushes[0][0] / floor, 2),
               "push_over_read": round(push_s / read_s, 1), "alerts_per_s_per_core": round(n / push_s / cores),
               "bytes_per_alert": {t: round(b / n) for t, b in sizes.items()}, "seconds": summary["seconds"],
               "peak_driver_mb": round(peak), "peak_writer_mb": writer_peak,
               "write_processes": summary.get("write_processes", 1)}
        if args.peers:
            done = subprocess.run([args.peers, str(ROOT / "benchmarks" / "peers.py"), str(night_dir), str(work / "peers")],
                                  capture_output=True, text=True, check=True)
            res["peers"] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
            shutil.rmtree(work / "peers", ignore_errors=True)
        results.append(res)
        print(json.dumps(res), flush=True)
    print(f"\nSpark start-up (once, not in the push): {startup:.1f} s; {cores} cores")
    print(f"{'alerts':>8} {'tables':>10} {'push s':>7} {'floor s':>8} {'push/floor':>10} {'first/first':>11} {'read s':>7} "
          f"{'push/read':>9} {'/s/core':>8} {'B/alert main':>12} {'peak MB':>8} {'writer MB':>9}")
    for r in results:
        print(f"{r['alerts']:>8} {r['tables']:>10} {r['push_s']:>7} {r['floor_s']:>8} {r['push_over_floor']:>10} "
              f"{r['first_push_over_first_floor']:>11} {r['read_s']:>7} {r['push_over_read']:>9} {r['alerts_per_s_per_core']:>8} "
              f"{r['bytes_per_alert'].get(config.table_prefix, 0):>12} {r['peak_driver_mb']:>8} "
              f"{r['peak_writer_mb'] or '-':>9}")
        for peer in r.get("peers", []):
            print(f"{'':>8} {'peer':>10} {peer['seconds']:>7}  {peer['bytes_per_alert']:>6} B/alert  {peer['peer']}")
    spark.stop()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


_RANK = ["tinyint", "smallint", "int", "bigint", "float", "double"]


def _widen(a, b):
    """A Spark type holding values of both types (numbers widened, structs united, else text)."""
    from pyspark.sql import types as T

    if a == b:
        return a
    if isinstance(a, T.StructType) and isinstance(b, T.StructType):
        fields = {f.name: f.dataType for f in a.fields}
        for f in b.fields:
            fields[f.name] = _widen(fields[f.name], f.dataType) if f.name in fields else f.dataType
        return T.StructType([T.StructField(n, t, True) for n, t in fields.items()])
    if isinstance(a, T.ArrayType) and isinstance(b, T.ArrayType):
        return T.ArrayType(_widen(a.elementType, b.elementType), True)
    if isinstance(a, T.MapType) and isinstance(b, T.MapType):
        return T.MapType(_widen(a.keyType, b.keyType), _widen(a.valueType, b.valueType), True)
    if a.simpleString() in _RANK and b.simpleString() in _RANK:
        return max(a, b, key=lambda t: _RANK.index(t.simpleString()))
    if isinstance(a, T.NullType):
        return b
    if isinstance(b, T.NullType):
        return a
    return T.StringType()


def _conform(col, source, target):
    """A column of type ``source`` as ``target`` (structs field by field, arrays element-wise)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if source == target:
        return col
    if isinstance(target, T.StructType) and isinstance(source, T.StructType):
        have = {f.name: f.dataType for f in source.fields}
        return F.when(col.isNull(), F.lit(None)).otherwise(F.struct(*[
            (_conform(col.getField(f.name), have[f.name], f.dataType) if f.name in have
             else F.lit(None).cast(f.dataType)).alias(f.name) for f in target.fields]))
    if isinstance(target, T.ArrayType) and isinstance(source, T.ArrayType):
        return F.transform(col, lambda e: _conform(e, source.elementType, target.elementType))
    return col.cast(target)


def one_night_of(spark, night_dirs, target):
    """Write the alerts of several nights, each read with its own schema, as one night whose
    schema holds them all (types widened): 'the same alerts laid out as a single night'."""
    from functools import reduce

    frames = [spark.read.parquet(str(d)) for d in night_dirs]
    unified = reduce(_widen, [f.schema for f in frames])
    conformed = []
    for f in frames:
        have = {x.name: x.dataType for x in f.schema.fields}
        conformed.append(f.select(*[_conform(f[x.name], have[x.name], x.dataType).alias(x.name)
                                    for x in unified.fields if x.name in have]))
    reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), conformed).write.parquet(str(target))


def backfill_mode(args):
    from datasim.layout import layout_datalake
    from fink_ingest.config import load_config
    from fink_push import spark_session

    work = Path(tempfile.mkdtemp(prefix="fink_backfill_"))
    layout_datalake([Path(args.datasim) / "ztf"], work / "lake")
    nights = sorted(p for p in (work / "lake" / "science").glob("year=*/month=*/day=*"))
    first, last = (f"{d.parts[-3][5:]}-{d.parts[-2][6:]}-{d.parts[-1][4:]}" for d in (nights[0], nights[-1]))
    spark = spark_session(load_config(None, work_dir=str(work / "w0")))
    one_night_of(spark, nights, work / "one" / "science" / "year=2030" / "month=01" / "day=01")
    spark.stop()
    env = {**os.environ, "PYTHON": sys.executable}

    def timed(*extra, lake):
        t0 = time.time()
        done = subprocess.run([str(ROOT / "bin" / "fink_push"), "--datalake", str(lake), "--store",
                               str(work / f"store-{time.time_ns()}"), "--work-dir", str(work / "work"), *extra],
                              capture_output=True, text=True, env=env)
        seconds = time.time() - t0
        if done.returncode:
            print(done.stdout[-1500:], done.stderr[-1500:], file=sys.stderr)
        return seconds, done.returncode

    singles, backfills, codes = [], [], set()
    for _ in range(max(args.rounds, 1)):  # alternated: one operator's run of each a round
        single_s, rc2 = timed("--night", "2030-01-01", lake=work / "one")
        backfill_s, rc1 = timed("--from", first, "--to", last, lake=work / "lake")
        singles.append(round(single_s, 1))
        backfills.append(round(backfill_s, 1))
        codes |= {rc1, rc2}
    res = {"nights": len(nights), "alerts": 1516, "backfill_s": min(backfills), "one_night_s": min(singles),
           "backfill_over_one_night": round(min(backfills) / min(singles), 2),
           "backfills_s": backfills, "one_nights_s": singles,
           "per_round": [round(b / o, 2) for b, o in zip(backfills, singles)], "exit_codes": sorted(codes)}
    print(json.dumps(res))
    shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alerts", type=int, nargs="+", default=[400_000])
    p.add_argument("--tables", default="all", help="comma-separated tables, or all")
    p.add_argument("--backfill", action="store_true", help="the backfill comparison instead")
    p.add_argument("--datasim", default=str(ROOT.parent / "shared" / "datasim"))
    p.add_argument("--keep", help="reuse/keep this directory (the scaled datalake)")
    p.add_argument("--rounds", type=int, default=2,
                   help="floor and push alternated this many times each in the one session (default 2); "
                        "the fastest of each is compared, and the first of each (both cold) too")
    p.add_argument("--peers", metavar="PYTHON",
                   help="also run benchmarks/peers.py (hats-import, DuckDB) with this Python on the same night")
    args = p.parse_args(argv)
    if args.backfill:
        backfill_mode(args)
    else:
        night_mode(args)


if __name__ == "__main__":
    main()
