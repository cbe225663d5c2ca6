"""The driver's write phase alone: staged files of a night into a fresh embedded store.

    python3 benchmarks/bench_write.py --keep DIR                     # main table, 3 rounds
    python3 benchmarks/bench_write.py --keep DIR --tables all --processes 1

The night is the one ``bench_throughput.py --keep DIR`` scaled (``DIR/lake``, 2024-01-15);
Spark stages it once for the tables asked for, as a push does (read, validate, the push's
columns, each file sorted by the key), into ``DIR/staged-<tables>``, kept for the next run.
Then, without Spark, ``write.write_staged`` writes the staged files into a fresh store
``--rounds`` times: the push's write phase without the noise of a Spark job around it (the
first round also reads the staged files from disk; compare the later ones).

Printed per round: wall seconds, CPU seconds of this process (user + system) and of the
writer processes, objects counted, and the bytes per alert of each table. The history is
read from the datalake by ``push.history_pass`` as a push does when it can
(``--nested-history``: staged by Spark as a nested column, as before; staged apart).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "jobs"))

NIGHT = datetime.date(2024, 1, 15)


def stage_once(config, names, staged, history_rows=False):
    """Stage the night for ``names`` as a push does, unless ``staged`` holds it already
    (``history_rows``: the history left to ``push.history_pass``, as a push does when it can)."""
    if (staged / "meta.json").exists():
        return json.loads((staged / "meta.json").read_text())
    from pyspark.sql import functions as F

    from fink_ingest import datalake, paths
    from fink_ingest.push import merge
    from fink_ingest.push import stage as st
    from fink_ingest.push.night import BUILDERS
    from fink_push import spark_session

    spark = spark_session(config)
    night_dir = Path(paths.night_dir(config.datalake, NIGHT))
    files = datalake.NightFiles(good={str(p): None for p in sorted(night_dir.glob("*.parquet"))}, rejected=[],
                                data_bytes={})
    alerts = datalake.read_alerts(spark, files)
    alerts = alerts.withColumn(st.NIGHT, datalake.night_of_file(F.col(datalake.FILE)))
    alerts = datalake.with_reason(alerts, config.survey)
    valid = alerts.filter(F.col(datalake.REASON).isNull()).drop(datalake.REASON)
    builders = [BUILDERS[n] for n in names]
    frame, types, sort_by = st.alert_frame(config, valid, [b for b in builders if b.source == "alerts"],
                                           keep=[st.NIGHT], keyed=True, history_counts=True,
                                           history_builders=[b for b in builders if b.source == "history"],
                                           history_rows=history_rows)
    st.stage(frame, str(staged / "out"), sort_by, merge.MERGE_FILES, partition=st.NIGHT)
    meta = {"types": types, "sort_by": sort_by, "entry_types": st.history_types(valid, config.survey)}
    (staged / "meta.json").write_text(json.dumps(meta))
    spark.stop()
    return meta


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep", required=True, help="bench_throughput.py's --keep directory (its scaled night)")
    p.add_argument("--tables", default="main", help="comma-separated tables, or all (default main)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--processes", type=int, help="writer processes in all (default: the configuration's)")
    p.add_argument("--nested-history", action="store_true",
                   help="history staged by Spark as a nested column (default: read by push.history_pass)")
    args = p.parse_args(argv)

    import pyarrow.parquet as pq

    from fink_ingest.config import load_config
    from fink_ingest.push import checks, history_pass
    from fink_ingest.push.night import BUILDERS
    from fink_ingest.push.write import write_staged
    from fink_ingest.store import open_store

    work = Path(args.keep)
    config = load_config(None, datalake=str(work / "lake"), store=str(work / "store-write"),
                         work_dir=str(work / "work"))
    names = list(BUILDERS) if args.tables == "all" else args.tables.split(",")
    staged = work / f"staged-{'_'.join(names)}{'' if args.nested_history else '-pass'}"
    meta = stage_once(config, names, staged, history_rows=not args.nested_history)
    files = sorted(str(f) for f in (staged / "out").glob("*/*.parquet"))
    alerts = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    for r in range(args.rounds):
        shutil.rmtree(config.store, ignore_errors=True)
        store = open_store(config.store)
        builders = [BUILDERS[n] for n in names]
        for b in builders:
            b.reset({})
        checks.open_tables(store, builders, config)
        counts = {}
        source = None if args.nested_history else history_pass.HistorySource(str(work / "history-spill"),
                                                                             meta["entry_types"])
        t0, cpu0, children0 = time.time(), sum(os.times()[:2]), sum(os.times()[2:4])
        write_staged(store, builders, files, meta["types"], config, NIGHT, meta["sort_by"], None,
                     meta["entry_types"], counts, processes=args.processes, history_source=source)
        wall, cpu, children = time.time() - t0, sum(os.times()[:2]) - cpu0, sum(os.times()[2:4]) - children0
        sizes = {t: round(store.size_bytes(t) / alerts) for t in store.tables()}
        print(json.dumps({"round": r, "alerts": alerts, "write_s": round(wall, 2), "cpu_s": round(cpu, 2),
                          "writer_processes_cpu_s": round(children, 2),
                          "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                          "writer_peak_mb": counts.get("writer_peak_mb"),
                          "objects": counts.get("objects"), "write_processes": counts.get("write_processes", 1),
                          "bytes_per_alert": sizes}), flush=True)
    shutil.rmtree(config.store, ignore_errors=True)


if __name__ == "__main__":
    main()
