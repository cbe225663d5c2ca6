"""Client side of the executors' HBase writes: the main table, per core, apart from the server.

    python benchmarks/bench_hbase_client.py --alerts 100000 [--hbase hbase://127.0.0.1:9090]

datasim scales the real night 2024-01-15 to N alerts; Spark stages it for the main table
once (as a push does), and is stopped. Then, in this process, on one thread, the staged
batches go through ``push.executors.write_batches`` (what each executor task runs: derive the
rows, encode the cells, put them) into:

- ``sink``: a Thrift server (another process) that reads each ``mutateRows`` call, skips
  its arguments without building them (thriftpy2's C ``skip``) and answers: the client's
  own cost, with a server that costs next to nothing;
- ``double``: ``tests/hbase_double.py`` in another process (Python over SQLite);
- ``live``: the HBase Thrift gateway of ``--hbase``, if given.

Each target is written through this version's puts (``wire``: Arrow to Thrift bytes) and
through the previous ones (``happybase``: one ``Mutation`` object per cell, a call every
``batch`` *cells*), the baseline, in the same run, each run into a fresh table. Printed per
run: wall seconds, client CPU seconds (``time.process_time``), alerts/s, alerts/s per client
core (alerts / client CPU seconds) and the server's CPU seconds (its processes: the sink,
the double, or ``--server-pids`` for the live server); then a profile of one run into the
sink (where the client's CPU goes), the cost of a task's connection, and a sweep of the
bytes per Thrift call. Runs are repeated (``--repeat``) and medians printed: the machine's
cores are shared.

    python benchmarks/bench_hbase_client.py --alerts 30000 --no-double --sweep live \
        --hbase 'hbase://127.0.0.1:9090' --server-pids $(cat $HB/logs/master.pid $HB/logs/thrift.pid)
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "jobs"))
sys.path.insert(0, str(ROOT / "tests"))

NIGHT = "2024-01-15"
# Rows per Arrow batch an executor task receives (Spark's arrow.maxRecordsPerBatch default).
ARROW_BATCH_ROWS = 10_000


def serve_sink(port):
    """A Thrift server that accepts and drops ``mutateRows`` calls (run in its own process)."""
    import happybase
    import thriftpy2
    from thriftpy2.protocol import TBinaryProtocolFactory
    from thriftpy2.thrift import TMessageType, TType
    from thriftpy2.transport import TBufferedTransportFactory, TServerSocket

    hb = thriftpy2.load(os.path.join(os.path.dirname(happybase.__file__), "Hbase.thrift"), module_name="sink_thrift")
    server = TServerSocket(host="127.0.0.1", port=port, client_timeout=None)
    server.listen()
    print("serving", flush=True)

    def handle(client):
        trans = TBufferedTransportFactory().get_transport(client)
        prot = TBinaryProtocolFactory(decode_response=False).get_protocol(trans)
        try:
            while True:
                name, _, seqid = prot.read_message_begin()
                prot.skip(TType.STRUCT)
                prot.read_message_end()
                prot.write_message_begin(name, TMessageType.REPLY, seqid)
                getattr(hb.Hbase, f"{name}_result")().write(prot)
                prot.write_message_end()
                trans.flush()
        except Exception:  # noqa: BLE001 - the client went away
            client.close()

    while True:
        threading.Thread(target=handle, args=(server.accept(),), daemon=True).start()


def start_server(args):
    """Start a server subprocess that prints 'serving'; returns (process, port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, *[str(a) for a in args], str(port)], stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "serving":
        raise SystemExit(f"server {args} did not start")
    return proc, port


def stage(spark, config, work):
    """Stage the night for the main table as a push does; returns (files, staged types)."""
    from fink_ingest import datalake, paths
    from fink_ingest.push.stage import alert_frame, stage as stage_frame
    from fink_ingest.tables import BUILDERS

    night = paths.parse_night(NIGHT)
    files = datalake.list_night(spark, paths.night_dir(config.datalake, night))
    alerts = datalake.read_alerts(spark, files)
    checked = datalake.with_reason(alerts, config.survey)
    valid = checked.filter(checked[datalake.REASON].isNull()).drop(datalake.REASON)
    frame, types, sort_by = alert_frame(config, valid, [BUILDERS["main"]])
    staged_dir = work / "run" / "staging" / "alerts"
    stage_frame(frame, str(staged_dir), sort_by)
    return sorted(str(p) for p in Path(staged_dir).glob("*.parquet")), types


def main_plan(files, staged_types, config):
    """The executor plan of the main table, with the types a push would write."""
    from fink_ingest import schemarow
    from fink_ingest.push.merge import present_columns
    from fink_ingest.tables import BUILDERS

    builder = BUILDERS["main"]
    types = builder.cell_types(staged_types, config.survey)
    write_types, _, _ = schemarow.reconcile({}, types, present_columns(files) | (set(types) - set(staged_types)))
    return [(builder, builder.table_name(config.table_prefix), write_types)]


def happybase_put_arrow(self, keys, columns):
    """The previous puts (the baseline): rows of Python dicts, sent by happybase's ``Batch``,
    which builds a ``Mutation`` per cell and sends a call every ``batch`` cells."""
    from fink_ingest.store.base import as_bytes

    names = [as_bytes(c) for c in columns]
    lists = [col.to_pylist() for col in columns.values()]
    rows = [(as_bytes(key), {n: lst[i] for n, lst in zip(names, lists) if lst[i] is not None})
            for i, key in enumerate(keys.to_pylist())]

    def send(table):
        with table.batch(batch_size=self.store.batch_size) as batch:
            for key, cells in rows:
                batch.put(key, cells)
        return len(rows)

    return self._call(f"put of {len(rows)} rows", send)


def run(url, plan, config, batches, path):
    """``write_batches`` of every batch into ``url``; returns a dict of figures."""
    from fink_ingest.push.executors import write_batches
    from fink_ingest.store.hbase import HBaseTable

    original = HBaseTable.put_arrow
    if path == "happybase":
        HBaseTable.put_arrow = happybase_put_arrow
    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        out = next(write_batches(url, plan, config.survey, config.put_rows, None, iter(batches))).to_pylist()[0]
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        HBaseTable.put_arrow = original
    n = sum(b.num_rows for b in batches)
    if out["written"] != n:
        raise SystemExit(f"{path} into {url}: {out['written']} rows written of {n}")
    return {"wall_s": wall, "cpu_s": cpu, "alerts_per_s": n / wall, "alerts_per_s_per_core": n / cpu,
            "in_put_s": out["store_seconds"]}


def profile(url, plan, config, batches):
    """Where the client's CPU time goes: cumulative CPU seconds of the steps of
    ``write_batches`` (cProfile timed by ``time.process_time``: waiting for the server is not
    counted), and the total."""
    from fink_ingest.push.executors import write_batches

    prof = cProfile.Profile(time.process_time)
    prof.enable()
    next(write_batches(url, plan, config.survey, config.put_rows, None, iter(batches)))
    prof.disable()
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values())   # every function's own time

    def cumulative(file_part, name):
        return sum(v[3] for (f, _, fn), v in stats.items() if file_part in f and fn == name)

    steps = {
        "derive rows (MainTable.rows: keys, cell columns)": cumulative("tables/main.py", "rows"),
        "settle (repeated keys, rows without cells)": cumulative("push/write.py", "settle"),
        "Arrow to cells (cells.encode)": cumulative("fink_ingest/cells.py", "encode"),
        "cells to Thrift bytes (wire.encode_arrow)": cumulative("hbase/wire.py", "encode_arrow"),
        "call framing (wire.call_bytes: one join)": cumulative("hbase/wire.py", "call_bytes"),
        "socket send (sendall)": cumulative("", "<method 'sendall' of '_socket.socket' objects>"),
        "read the reply (TClient._recv)": cumulative("thriftpy2", "_recv"),
        "connection pool (happybase pool.connection)": cumulative("happybase/pool.py", "connection"),
    }
    return total, steps


def server_cpu(pids):
    """CPU seconds (user + system) used so far by processes (0.0 without any)."""
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def median_of(results):
    keys = results[0].keys()
    return {k: round(statistics.median(r[k] for r in results), 2) for k in keys}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alerts", type=int, default=100_000, help="alerts of the scaled night (default 100000)")
    p.add_argument("--datasim", default=str(ROOT.parent / "shared" / "datasim"))
    p.add_argument("--hbase", help="also write into this live HBase (hbase://host:port?...); a table "
                                   "<table_prefix>_ztf is created there (prefix fink_bench unless given) and dropped")
    p.add_argument("--repeat", type=int, default=3, help="runs per target and path (medians printed)")
    p.add_argument("--call-kib", type=int, nargs="+", default=[64, 256, 1024, 8192],
                   help="sizes of a Thrift call to sweep, KiB (wire.MAX_CALL_BYTES, 256 by default; the "
                        "store's batch of 1000 rows also caps a call)")
    p.add_argument("--sweep", nargs="*", default=["sink"], choices=["sink", "double", "live"],
                   help="targets of the rows-per-call sweep (default: the sink)")
    p.add_argument("--no-double", action="store_true", help="skip the test double")
    p.add_argument("--server-pids", type=int, nargs="*", default=[],
                   help="processes of the live server on this machine (e.g. HBase's JVMs), whose CPU seconds "
                        "are reported beside the client's")
    p.add_argument("--serve-sink", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_sink:
        return serve_sink(args.serve_sink)

    import pyarrow.parquet as pq

    from fink_ingest.config import load_config
    from fink_ingest.store import open_store
    from fink_ingest.store.hbase import wire
    from fink_push import spark_session

    work = Path(tempfile.mkdtemp(prefix="fink_bench_client_"))
    procs, live_store = [], None
    try:
        source = Path(args.datasim) / "ztf" / "archive" / "science" / "year=2024" / "month=01" / "day=15"
        subprocess.run([sys.executable, str(ROOT / "bin" / "fink_datasim"), "scale", "--source", str(source),
                        "--prefix", str(work / "lake"), "--night", NIGHT, "--n", str(args.alerts)],
                       check=True, stdout=subprocess.DEVNULL)
        config = load_config(None, datalake=str(work / "lake"), store=str(work / "store"), work_dir=str(work / "w"))
        spark = spark_session(config)
        files, staged_types = stage(spark, config, work)
        spark.stop()
        plan = main_plan(files, staged_types, config)
        batches = [b for f in files for b in pq.ParquetFile(f).iter_batches(batch_size=ARROW_BATCH_ROWS)]
        n = sum(b.num_rows for b in batches)
        print(f"{n} alerts staged for the main table, {len(plan[0][2])} cell columns, "
              f"{len(batches)} Arrow batches", flush=True)

        sink, sink_port = start_server([__file__, "--serve-sink"])
        procs.append(sink)
        targets = {"sink": f"hbase://127.0.0.1:{sink_port}"}
        pids = {"sink": [sink.pid], "live": args.server_pids}
        if not args.no_double:
            (work / "double").mkdir()
            double, double_port = start_server([ROOT / "tests" / "hbase_double.py", work / "double"])
            procs.append(double)
            targets["double"] = f"hbase://127.0.0.1:{double_port}"
            pids["double"] = [double.pid]
        if args.hbase:
            url = args.hbase if "table_prefix=" in args.hbase else \
                f"{args.hbase}{'&' if '?' in args.hbase else '?'}table_prefix=fink_bench"
            targets["live"] = url
            live_store = open_store(url)
        def measured(name, url, path):
            """One run into a fresh table, with the server's CPU seconds."""
            url = fresh(name, url)
            before = server_cpu(pids[name])
            out = run(url, plan, config, batches, path)
            return {**out, "server_cpu_s": server_cpu(pids[name]) - before}

        def fresh(name, url):
            """The main table, created anew as a push creates it (each run writes into an
            empty table: rewriting the same keys would leave a server more to compact)."""
            if name != "sink":
                store = open_store(url)
                store.drop_table(plan[0][1])
                codecs = store.check_codecs({plan[0][1]: plan[0][0]}, config)
                store.create_table(plan[0][1], plan[0][0].families_for(config.survey), codecs[plan[0][1]])
            return url

        results = []
        for name, url in targets.items():
            for path in ("wire", "happybase"):
                runs = [measured(name, url, path) for _ in range(args.repeat)]
                res = {"target": name, "path": path, "batch": 1000, **median_of(runs)}
                results.append(res)
                print(json.dumps(res), flush=True)
        ratio = {r["target"]: r for r in results if r["path"] == "wire"}
        base = {r["target"]: r for r in results if r["path"] == "happybase"}

        print(f"\n{'target':<7} {'path':<10} {'wall s':>7} {'client CPU s':>12} {'alerts/s':>9} "
              f"{'alerts/s per client core':>24} {'in puts s':>9} {'server CPU s':>12}")
        for r in results:
            print(f"{r['target']:<7} {r['path']:<10} {r['wall_s']:>7} {r['cpu_s']:>12} {r['alerts_per_s']:>9.0f} "
                  f"{r['alerts_per_s_per_core']:>24.0f} {r['in_put_s']:>9} {r['server_cpu_s']:>12}")
        for t in ratio:
            print(f"{t}: wire / happybase, alerts/s per core x{ratio[t]['alerts_per_s_per_core'] / base[t]['alerts_per_s_per_core']:.1f}"
                  f", wall x{base[t]['wall_s'] / ratio[t]['wall_s']:.1f}")

        total, steps = profile(targets["sink"], plan, config, batches)
        print(f"\nprofile of one run into the sink (cProfile, {total:.2f} s of client CPU, cumulative):")
        for step, seconds in steps.items():
            print(f"  {step:<52} {seconds:6.2f} s  {seconds / total:5.0%}")

        opens = []
        for _ in range(20):   # what each executor task pays before its first put
            t0 = time.perf_counter()
            task_store = open_store(targets["sink"])
            task_store.bare_table(plan[0][1]).put_batch([(b"k", {b"d:x": b"1"})])
            opens.append(time.perf_counter() - t0)
            task_store.close()
        print(f"\na task's connection (open_store, pool, TCP connect, one one-row put) into the sink: "
              f"median {statistics.median(opens) * 1000:.1f} ms over 20")

        print("\nbytes per Thrift call (wire), medians:")
        default_bytes = wire.MAX_CALL_BYTES
        for name in [t for t in args.sweep if t in targets]:
            for kib in args.call_kib:
                wire.MAX_CALL_BYTES = kib << 10
                m = median_of([measured(name, targets[name], "wire") for _ in range(args.repeat)])
                print(f"  {name:<6} calls <= {kib:>5} KiB: wall {m['wall_s']:>6} s, client CPU {m['cpu_s']:>5} s, "
                      f"{m['alerts_per_s']:>6.0f} alerts/s, {m['alerts_per_s_per_core']:>6.0f} per client core, "
                      f"server CPU {m['server_cpu_s']} s", flush=True)
        wire.MAX_CALL_BYTES = default_bytes
    finally:
        if live_store is not None:
            live_store.drop_table(plan[0][1])
        for proc in procs:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
