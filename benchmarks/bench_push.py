"""Benchmark of the nightly push against a plain pyarrow read of the same input, same run.

    python benchmarks/bench_push.py --alerts 100000 400000

For each size: datasim scales the real night 2024-01-15 up to N alerts (fresh objectId and
candid, jittered positions and times, every column kept), then:

- ``push``: ``push_night`` of the main table into a fresh embedded store (Spark local[*]
  already started; its start-up is reported apart);
- ``read``: then, in a subprocess, ``pyarrow.parquet.read_table`` of the columns the main
  table takes (the baseline a user would get by reading the datalake directly), three
  times: the median.

Scaling and the baseline reads run in subprocesses, so the peak memory printed is the
push's own (the high-water mark is reset before each push; the resident memory at that
moment is printed too, as ``*_mb_at_start``).

Printed: alerts/s, alerts/s per core, push/read ratio, bytes stored per alert, and the peak
resident memory (high-water mark) of the driver and of the Spark JVM.
"""
from __future__ import annotations

import argparse
import gc
import logging
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

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from fink_ingest import paths  # noqa: E402
from fink_ingest.config import load_config  # noqa: E402
from fink_ingest.push import push_night  # noqa: E402
from fink_ingest.store import open_store  # noqa: E402
from fink_push import spark_session  # noqa: E402

NIGHT = "2024-01-15"
# The baseline read is repeated and its median kept: one read of the same files took
# 0.45-0.97 s from one run to the next on the development machine.
BASELINE_READS = 3


def high_water_mb(pid="self"):
    """Peak resident memory (VmHWM) of a process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def baseline_reads(night_dir, columns, n):
    """Seconds of ``BASELINE_READS`` plain pyarrow reads of the night's columns, timed in a
    subprocess: the memory the reads take stays out of this process's later peaks."""
    code = ("import json, sys, time; import pyarrow.parquet as pq\n"
            "d, cols, n, k = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])\n"
            "out = []\n"
            "for _ in range(k):\n"
            "    t0 = time.time(); t = pq.read_table(d, columns=cols); out.append(time.time() - t0)\n"
            "    assert t.num_rows == n, t.num_rows\n"
            "    del t\n"
            "print(json.dumps(out))\n")
    done = subprocess.run([sys.executable, "-c", code, str(night_dir), json.dumps(columns), str(n),
                           str(BASELINE_READS)], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def push_hbase(spark, config, work, n, cores, url=None):
    """Push the same night into HBase over Thrift: the test double in its own process, or
    the external Thrift gateway ``url``, under the URL's ``table_prefix`` (default
    ``fink_bench_<n>``), which must hold no table; the tables are dropped after."""
    import dataclasses

    sys.path.insert(0, str(ROOT / "tests"))
    from hbase_double import free_port

    proc = None
    if url is None:
        port, directory = free_port(), work / "hbase"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "hbase_double.py"), str(directory), str(port)],
                                stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()
        url, label = f"hbase://127.0.0.1:{port}", "hbase (Thrift double, executor writes)"
    else:
        if "table_prefix=" not in url:
            url = f"{url}{'&' if '?' in url else '?'}table_prefix=fink_bench_{n}"
        label = f"hbase ({url}, executor writes)"
    hconfig = dataclasses.replace(config, store=url)
    store = open_store(hconfig.store)
    if store.tables():   # a fresh push, as into the fresh embedded store; nobody's tables dropped
        raise SystemExit(f"{url}: tables {store.tables()} exist under this table_prefix; give another one")
    try:
        t0 = time.time()
        summary = push_night(spark, hconfig, store, paths.parse_night(NIGHT))
        push_s = time.time() - t0
        if not summary["ok"]:
            raise SystemExit(f"HBase push failed: {json.dumps(summary)[:2000]}")
        write_s = sum(v for k, v in summary["seconds"].items() if k.startswith(config.table_prefix))
        thrift_s = sum(summary.get("store_seconds", {}).values())
        return {"store": label, "alerts": n, "push_s": round(push_s, 2),
                "alerts_per_s": round(n / push_s), "alerts_per_s_per_core": round(n / push_s / cores),
                "executor_write_s": round(write_s, 2), "thrift_put_s": round(thrift_s, 2),
                "thrift_share_of_writes": round(thrift_s / write_s, 2) if write_s else None,
                "seconds": summary["seconds"]}
    finally:
        if proc is not None:
            proc.kill()
        else:
            for name in store.tables():
                store.drop_table(name)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alerts", type=int, nargs="+", default=[100_000])
    p.add_argument("--datasim", default=str(ROOT.parent / "shared" / "datasim"))
    p.add_argument("--tables", default="all", help="comma-separated tables, or all")
    p.add_argument("--keep", action="store_true", help="keep the scaled datalake and store")
    p.add_argument("--hbase", nargs="?", const="double", metavar="URL",
                   help="also push into HBase over Thrift, written from the Spark executors, after the "
                        "embedded store: alone, into tests/hbase_double.py in a subprocess; with an "
                        "hbase://host:port?... URL, into that Thrift gateway (under table_prefix, default "
                        "fink_bench_<alerts>, which must hold no table; its tables are dropped after)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    source = Path(args.datasim) / "ztf" / "archive" / "science" / "year=2024" / "month=01" / "day=15"
    cores = os.cpu_count()
    work = Path(tempfile.mkdtemp(prefix="fink_bench_"))
    config = load_config(None, datalake=str(work / "lake"), store=str(work / "store"),
                         work_dir=str(work / "work"))
    t0 = time.time()
    spark = spark_session(config)
    startup = time.time() - t0
    jvm_pid = spark._jvm.ProcessHandle.current().pid()
    results = []
    for n in args.alerts:
        shutil.rmtree(work / "lake", ignore_errors=True)
        shutil.rmtree(work / "store", ignore_errors=True)
        t0 = time.time()  # in a subprocess, so its memory is not counted as the push's
        subprocess.run([sys.executable, str(ROOT / "bin" / "fink_datasim"), "scale", "--source",
                        str(source), "--prefix", str(work / "lake"), "--night", NIGHT, "--n", str(n)],
                       check=True, stdout=subprocess.DEVNULL)
        scale_s = time.time() - t0
        night_dir = paths.night_dir(config.datalake, paths.parse_night(NIGHT))
        schema = pq.read_schema(next(Path(night_dir).glob("*.parquet")))
        s = config.survey
        columns = [c for c in schema.names if c not in set(s.served_elsewhere) | set(s.partition)]
        store = open_store(config.store)
        gc.collect()  # peak memory of the push alone, from what the previous size left
        pa.default_memory_pool().release_unused()
        for pid in ("self", jvm_pid):
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        start_driver, start_jvm = high_water_mb(), high_water_mb(jvm_pid)
        t0 = time.time()
        tables = None if args.tables == "all" else args.tables.split(",")
        summary = push_night(spark, config, store, paths.parse_night(NIGHT), tables)
        push_s = time.time() - t0
        peak_driver, peak_jvm = high_water_mb(), high_water_mb(jvm_pid)
        reads = baseline_reads(night_dir, columns, n)
        read_s = statistics.median(reads)
        if not summary["ok"]:
            raise SystemExit(f"push failed: {json.dumps(summary)[:2000]}")
        sizes = {t: store.size_bytes(t) for t in store.tables()}
        main_name = config.table_prefix
        history = {t for t in sizes if t.endswith((".upper", ".uppervalid"))}
        search = {t for t in sizes if t != main_name and t not in history}
        res = {
            "alerts": n, "cores": cores, "scale_s": round(scale_s, 1), "read_s": round(read_s, 2),
            "reads_s": [round(r, 2) for r in reads],
            "push_s": round(push_s, 2), "push_over_read": round(push_s / read_s, 1),
            "alerts_per_s": round(n / push_s), "alerts_per_s_per_core": round(n / push_s / cores),
            "seconds": summary["seconds"], "rows": summary["rows_written"],
            "per_table_alerts_per_s_per_core": {t: round(n / s / cores) for t, s in summary["seconds"].items()
                                                if t in sizes and s > 0},
            "bytes_per_alert": {t: round(b / n) for t, b in sizes.items()},
            # the figure: every table but main (search indexes, history, pointers, statistics)
            "index_over_main": round(sum(sizes[t] for t in search | history) / sizes[main_name], 3)
            if main_name in sizes and len(sizes) > 1 else None,
            "of_which_search_over_main": round(sum(sizes[t] for t in search) / sizes[main_name], 3)
            if main_name in sizes else None,
            "of_which_history_over_main": round(sum(sizes[t] for t in history) / sizes[main_name], 3)
            if main_name in sizes else None,
            "peak_driver_mb": round(peak_driver), "peak_jvm_mb": round(peak_jvm),
            "driver_mb_at_start": round(start_driver), "jvm_mb_at_start": round(start_jvm),
        }
        results.append(res)
        print(json.dumps(res), flush=True)
        if args.hbase:
            res_h = push_hbase(spark, config, work, n, cores, None if args.hbase == "double" else args.hbase)
            results.append(res_h)
            print(json.dumps(res_h), flush=True)
    print(f"\nSpark start-up (once per run, not in push_s): {startup:.1f} s; machine: {cores} cores")
    print(f"{'alerts':>8} {'read s':>7} {'push s':>7} {'push/read':>9} {'alerts/s':>9} {'per core':>9} "
          f"{'B/alert main':>12} {'peak drv MB':>11} {'peak JVM MB':>11}")
    for r in results:
        if "read_s" not in r:  # the HBase run: printed as JSON above
            print(f"{r['alerts']:>8} {'-':>7} {r['push_s']:>7} {'-':>9} {r['alerts_per_s']:>9} "
                  f"{r['alerts_per_s_per_core']:>9}  {r['store']} "
                  f"(Thrift puts: {r['thrift_share_of_writes']:.0%} of write time)")
            continue
        print(f"{r['alerts']:>8} {r['read_s']:>7} {r['push_s']:>7} {r['push_over_read']:>9} "
              f"{r['alerts_per_s']:>9} {r['alerts_per_s_per_core']:>9} "
              f"{r['bytes_per_alert'].get(config.table_prefix, 0):>12} {r['peak_driver_mb']:>11} "
              f"{r['peak_jvm_mb']:>11}")
    print("(peak memory: resident high-water mark during the push, reset before each size)")
    spark.stop()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
