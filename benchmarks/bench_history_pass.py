"""What the history tables' entries cost Spark to stage, against a pass of pyarrow alone.

    python3 benchmarks/bench_history_pass.py --keep DIR            # DIR of bench_throughput.py --keep

Not the push: a measurement for a design not built yet (``benchmarks/README.md``, session of
2026-12-02, fourth). On the night ``bench_throughput.py --keep DIR`` scaled (``DIR/lake``,
2024-01-15), ``--rounds`` times each, alternated:

- ``spark``: the history as the push stages it today (``stage.alert_frame`` with the history
  builders and no alert builder: the key columns, each alert's kept entries, their counts),
  written by ``stage.stage`` into a scratch directory; wall seconds (Spark's CPU is the
  JVM's, both cores busy).
- ``pyarrow``: every datalake file read by pyarrow (the object id and the survey's history
  fields), the entries flattened, those some history table keeps (the builders' own
  ``keep``) with a valid time selected, sorted by object id, time and detection id per file
  and spilled (Arrow IPC), then the spilled runs merged into one order. Wall and CPU seconds
  of this process.

Printed: one JSON line per round and method, the entries each found.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "jobs"))

NIGHT = datetime.date(2024, 1, 15)
MERGE_ROWS = 5000  # rows read from each spilled run per merge round


def spark_history(spark, config, files, target):
    """Seconds of Spark staging the night's history as the push does, and the entries staged."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from fink_ingest import datalake
    from fink_ingest.push import merge
    from fink_ingest.push import stage as st
    from fink_ingest.push.night import BUILDERS

    shutil.rmtree(target, ignore_errors=True)
    t0 = time.time()
    alerts = datalake.read_alerts(spark, datalake.NightFiles(good={f: None for f in files}, rejected=[], data_bytes={}))
    alerts = alerts.withColumn(st.NIGHT, datalake.night_of_file(F.col(datalake.FILE)))
    alerts = datalake.with_reason(alerts, config.survey)
    valid = alerts.filter(F.col(datalake.REASON).isNull()).drop(datalake.REASON)
    history = [b for b in BUILDERS.values() if b.source == "history"]
    frame, _, sort_by = st.alert_frame(config, valid, [], keep=[st.NIGHT], history_builders=history, keyed=True,
                                       history_counts=True)
    st.stage(frame, str(target), sort_by, merge.MERGE_FILES, partition=st.NIGHT)
    seconds = time.time() - t0
    entries = sum(int(pc.sum(pc.list_value_length(pq.read_table(p, columns=[st.HISTORY]).column(0))).as_py() or 0)
                  for p in Path(target).glob("*/*.parquet"))
    shutil.rmtree(target, ignore_errors=True)
    return seconds, entries


def _kept_entries(path, survey, builders, columns, fields):
    """One datalake file's kept entries, sorted (pyarrow.Table: ``objectId`` and ``family:field``)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from fink_ingest.tables import history as history_tables

    fam = survey.original_family
    reader = pq.ParquetFile(path)
    parts = []
    for group in range(reader.metadata.num_row_groups):
        table = reader.read_row_group(group, columns=columns, use_threads=False)
        lists = table.column(survey.history_column).combine_chunks()
        flat, parent = pc.list_flatten(lists), pc.list_parent_indices(lists)
        batch = pa.table({history_tables.OBJECT: pc.take(table.column(survey.object_id), parent),
                          **{f"{fam}:{f}": pc.struct_field(flat, f) for f in fields}})
        jd = pc.cast(batch.column(f"{fam}:jd"), pa.float64())
        valid = pc.and_(pc.is_finite(jd), pc.and_(pc.greater_equal(jd, survey.time_min), pc.less(jd, survey.time_max)))
        kept = None
        for b in builders:
            k = pc.fill_null(b.keep(batch, survey), False)
            kept = k if kept is None else pc.or_(kept, k)
        parts.append(batch.filter(pc.and_(pc.fill_null(valid, False), kept)))
    table = pa.concat_tables(parts)
    order = [history_tables.OBJECT, f"{fam}:jd", f"{fam}:{survey.history_detection_id}"]
    return table.take(pc.sort_indices(table, sort_keys=[(c, "ascending") for c in order]))


def pyarrow_history(config, files, spill):
    """Seconds (wall, CPU of this process) of the pyarrow pass, and the entries it kept."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    from fink_ingest.push.night import BUILDERS
    from fink_ingest.tables import history as history_tables

    survey = config.survey
    builders = [b for b in BUILDERS.values() if b.source == "history"]
    element = pq.ParquetFile(files[0]).schema_arrow.field(survey.history_column).type.value_type
    fields = [f for f in survey.history_fields if element.get_field_index(f) >= 0]
    columns = [survey.object_id] + [f"{survey.history_column}.list.element.{f}" for f in fields]
    shutil.rmtree(spill, ignore_errors=True)
    spill.mkdir(parents=True)
    t0, cpu0 = time.time(), sum(os.times()[:2])

    def one(item):
        i, path = item
        table = _kept_entries(path, survey, builders, columns, fields)
        with ipc.new_file(str(spill / f"{i}.arrow"), table.schema) as out:
            out.write_table(table, max_chunksize=20000)
        return table.num_rows

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        kept = sum(pool.map(one, enumerate(files)))
    runs = [ipc.open_file(pa.memory_map(str(p))).read_all() for p in sorted(spill.glob("*.arrow"))]
    order = [history_tables.OBJECT, f"{survey.original_family}:jd",
             f"{survey.original_family}:{survey.history_detection_id}"]
    at, merged = [0] * len(runs), 0
    while True:  # k-way merge by rounds: every row up to the smallest of the runs' next-slice ends
        live = [i for i, r in enumerate(runs) if at[i] < r.num_rows]
        if not live:
            break
        heads = {i: runs[i].slice(at[i], MERGE_ROWS) for i in live}
        bound = min(h.column(history_tables.OBJECT)[-1].as_py() for h in heads.values())
        pieces = []
        for i, head in heads.items():
            n = int(pc.sum(pc.less_equal(head.column(history_tables.OBJECT), bound)).as_py() or 0)
            pieces.append(head.slice(0, n))
            at[i] += n
        round_ = pa.concat_tables(pieces)
        merged += round_.take(pc.sort_indices(round_, sort_keys=[(c, "ascending") for c in order])).num_rows
    wall, cpu = time.time() - t0, sum(os.times()[:2]) - cpu0
    shutil.rmtree(spill, ignore_errors=True)
    assert merged == kept, (merged, kept)
    return wall, cpu, kept


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep", required=True, help="bench_throughput.py's --keep directory (its scaled night)")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)

    from fink_ingest import paths
    from fink_ingest.config import load_config
    from fink_push import spark_session

    work = Path(args.keep)
    config = load_config(None, datalake=str(work / "lake"), store=str(work / "store-history"),
                         work_dir=str(work / "work"))
    files = sorted(str(f) for f in Path(paths.night_dir(config.datalake, NIGHT)).glob("*.parquet"))
    spark = spark_session(config)
    for r in range(args.rounds):
        seconds, entries = spark_history(spark, config, files, work / "history-spark")
        print(json.dumps({"round": r, "method": "spark", "wall_s": round(seconds, 2), "entries": entries}), flush=True)
        wall, cpu, kept = pyarrow_history(config, files, work / "history-spill")
        print(json.dumps({"round": r, "method": "pyarrow", "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                          "entries": kept}), flush=True)


if __name__ == "__main__":
    main()
