"""Peers ingesting the same night, for ``bench_throughput.py --peers``: run with a Python that
has them (hats-import needs pandas 3, which pyspark 4 does not take: a venv of its own).

    /path/to/peers-venv/bin/python benchmarks/peers.py NIGHT_DIR WORK_DIR

Each peer gets what our main and sky tables give, from the same night: every alert's
``candidate`` fields flattened beside the root columns (history and stamps left out), found
by object and by position:

- ``hats``: hats-import (Dask, 2 workers) writes a HATS catalog partitioned by HEALPix, then
  an ``objectId`` index catalog;
- ``duckdb``: ``CREATE TABLE ... AS SELECT ... ORDER BY objectId`` into a DuckDB file.

Prints one JSON line per peer: seconds, bytes on disk, bytes per alert.
"""
import json
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

LEAVE_OUT = {"prv_candidates", "cutoutScience", "cutoutTemplate", "cutoutDifference", "year", "month", "day"}


def flatten(table):
    """The night's columns as the main table has them: candidate.* flattened, the rest kept."""
    columns, names = [], []
    for name in table.column_names:
        if name in LEAVE_OUT:
            continue
        if name == "candidate":
            cand = table.column(name).combine_chunks()
            for i, field in enumerate(cand.type):
                if field.name not in ("candid", "objectId"):
                    columns.append(cand.field(i))
                    names.append(field.name)
        else:
            columns.append(table.column(name))
            names.append(name)
    return pa.table(columns, names=names)


def disk_bytes(path):
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def hats(night_dir, work, n):
    from dask.distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.catalog.file_readers import InputReader
    from hats_import.index.arguments import IndexArguments
    from hats_import.pipeline import pipeline_with_client

    class FlatReader(InputReader):
        """Each datalake file, flattened (hats-import reads top-level columns)."""

        def read(self, input_file, read_columns=None):
            for batch in pq.ParquetFile(str(input_file)).iter_batches(batch_size=100_000):
                yield flatten(pa.Table.from_batches([batch]))

    out = work / "hats"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    with Client(n_workers=2, threads_per_worker=1, memory_limit="6GB", dashboard_address=None) as client:
        pipeline_with_client(ImportArguments(
            output_artifact_name="night", input_file_list=sorted(str(p) for p in Path(night_dir).glob("*.parquet")),
            file_reader=FlatReader(), ra_column="ra", dec_column="dec", sort_columns="objectId",
            output_path=str(out), resume=False, progress_bar=False), client)
        pipeline_with_client(IndexArguments(
            input_catalog_path=str(out / "night"), indexing_column="objectId", output_artifact_name="night_oid",
            output_path=str(out), resume=False, progress_bar=False), client)
    seconds = time.time() - t0
    size = disk_bytes(out)
    return {"peer": "hats-import (Dask, 2 workers: catalog + objectId index)", "seconds": round(seconds, 1),
            "bytes": size, "bytes_per_alert": round(size / n)}


def duck(night_dir, work, n):
    import duckdb

    path = work / "night.duckdb"
    path.unlink(missing_ok=True)
    t0 = time.time()
    con = duckdb.connect(str(path))
    con.execute("SET threads = 2")
    schema = pq.read_schema(next(Path(night_dir).glob("*.parquet")))
    roots = [f'"{c}"' for c in schema.names if c not in LEAVE_OUT | {"candidate"}]
    fields = [f'candidate."{f.name}" AS "{f.name}"' for f in schema.field("candidate").type
              if f.name not in ("candid", "objectId")]
    con.execute(f"CREATE TABLE night AS SELECT {', '.join(roots + fields)} "
                f"FROM read_parquet('{night_dir}/*.parquet', union_by_name = true) ORDER BY objectId")
    con.close()
    seconds = time.time() - t0
    size = disk_bytes(path)
    return {"peer": "DuckDB (CREATE TABLE ... ORDER BY objectId, 2 threads)", "seconds": round(seconds, 1),
            "bytes": size, "bytes_per_alert": round(size / n)}


def main():
    night_dir, work = Path(sys.argv[1]), Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    n = sum(pq.ParquetFile(p).metadata.num_rows for p in night_dir.glob("*.parquet"))
    for peer in (hats, duck):
        print(json.dumps({"alerts": n, **peer(night_dir, work, n)}), flush=True)


if __name__ == "__main__":
    main()
