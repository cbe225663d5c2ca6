"""Hostile input: every bad value is a bad row set aside with its reason, the rest of the night
and of the backfill goes on; schema drift is said, never silent.

Built from the real night 2024-01-15: a file of real alerts whose values are broken the ways
a broken upstream breaks them (jd = 1e12, inf, -1, NaN; object ids empty, with '_', with a
space, a schema-row lookalike, 5,000 characters; a negative candid; a history entry at
jd = inf), beside the night's real files.
"""
import json
import math
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import NIGHT_DIR, make_config
from fink_ingest import paths
from fink_ingest.push import push_night
from fink_ingest.read import Reader
from fink_ingest.store import open_store

BAD = [  # (field, value, the reason's words)
    ("jd", 1e12, "out of the survey's time range"),
    ("jd", math.inf, "out of the survey's time range"),
    ("jd", -1.0, "out of the survey's time range"),
    ("jd", math.nan, "null candidate.jd"),
    ("objectId", "", "does not match"),
    ("objectId", "ZTF_x_1", "does not match"),
    ("objectId", "schema_fink_ingest_v2", "does not match"),
    ("objectId", "ZTF18 a", "does not match"),
    ("objectId", "ZTF" + "a" * 4997, "does not match"),
    ("candid", -5, "not a non-negative integer"),
]


def write_bad_file(night_dir, source):
    """A file of len(BAD) real alerts of ``source``, each broken one way; one more real alert
    whose history holds an entry at jd = inf. Returns (rows written, the good row's candid)."""
    table = pq.read_table(source)
    rows = table.to_pylist()[: len(BAD) + 1]
    for row, (field, value, _) in zip(rows, BAD):
        row["candid"] += 10**15          # new alerts, not duplicates of the night's
        row["candidate"] = dict(row["candidate"], candid=row["candid"])
        if field == "jd":
            row["candidate"]["jd"] = value
        elif field == "candid":
            row["candid"] = row["candidate"]["candid"] = value
        else:
            row[field] = value
    good = rows[len(BAD)]
    good["candid"] += 10**15
    good["candidate"] = dict(good["candidate"], candid=good["candid"])
    entries = good["prv_candidates"]
    entries[0] = dict(entries[0], jd=math.inf)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), night_dir / "part-bad.parquet",
                   coerce_timestamps="us", allow_truncated_timestamps=True)
    return len(rows), good["candid"]


@pytest.fixture(scope="module")
def bad_lake(datasim, tmp_path_factory):
    """Two nights: 2024-01-15 with the bad file, 2024-01-16 a copy of the real night (shifted
    by one day, as a second night of a backfill)."""
    base = tmp_path_factory.mktemp("bad")
    night = base / "lake" / "science" / "year=2024" / "month=01" / "day=15"
    shutil.copytree(NIGHT_DIR, night)
    n, good_candid = write_bad_file(night, sorted(night.glob("*.parquet"))[0])
    second = base / "lake" / "science" / "year=2024" / "month=01" / "day=16"
    second.mkdir(parents=True)
    t = pq.read_table(NIGHT_DIR)
    cand = t["candidate"].combine_chunks()
    shifted = [pa.compute.add(cand.field(f.name), 1.0) if f.name == "jd" else cand.field(f.name) for f in cand.type]
    t = t.set_column(t.schema.get_field_index("candidate"), "candidate",
                     pa.StructArray.from_arrays(shifted, fields=list(cand.type)))
    t = t.set_column(t.schema.get_field_index("candid"), "candid", pa.compute.add(t["candid"], 1))
    pq.write_table(t, second / "part-0.parquet", coerce_timestamps="us", allow_truncated_timestamps=True)
    return base, n, good_candid


def test_bad_values_are_rejected_rows_and_the_backfill_goes_on(bad_lake, spark, capsys):
    from fink_ingest.cli import main

    base, n, good_candid = bad_lake
    code = main(lambda c: spark, ["--from", "2024-01-15", "--to", "2024-01-16", "--datalake", str(base / "lake"),
                                  "--store", str(base / "store"), "--work-dir", str(base / "work")])
    out = capsys.readouterr().out
    assert code == 1                                        # the first night is incomplete, and says why
    assert "night 2024-01-15: INCOMPLETE" in out and "INCOMPLETE: 10 row(s) rejected" in out
    assert "night 2024-01-16: OK" in out and "2 nights: 1 complete, 1 incomplete" in out
    summary = json.loads(next((base / "work").glob("runs/*/20240115/summary.json")).read_text())
    assert summary["alerts_read"] == 849 + n and summary["rows_rejected"] == len(BAD)
    assert summary["rows_written"]["ztf"] == 849 + 1        # every good row, the bad file's good one too
    rejects = pq.read_table(summary["rejects_file"]).to_pylist()
    assert len(rejects) == len(BAD)
    for (field, value, words) in BAD:
        match = [r for r in rejects if words in r["reason"]]
        assert match, (field, value)
    long_reason = next(r["reason"] for r in rejects if len(r["objectId"] or "") == 5000)
    assert len(long_reason) < 200                           # the value is quoted, cut
    assert summary["history"]["rejected"] == 1
    history_rejects = pq.read_table(summary["history"]["rejects_file"]).to_pylist()
    assert "out of the survey's time range" in history_rejects[0]["reason"]
    store = open_store(str(base / "store"))
    assert store.table("ztf").count() == 849 + 1 + 849 + 1  # both nights, and a schema row


def test_reads_answer_after_a_bad_night(bad_lake, spark):
    """Nothing bad reached the tables: every route answers at the bad rows' positions."""
    from fink_ingest.api import create_app

    base, _, _ = bad_lake
    config = make_config(base / "lake", base / "store", base / "work")
    client = create_app(Reader(open_store(config.store), config)).test_client()
    rows = pq.read_table(base / "lake" / "science" / "year=2024" / "month=01" / "day=15" / "part-bad.parquet")
    for cand in rows["candidate"].to_pylist():
        r = client.get(f"/api/v1/conesearch?ra={cand['ra']}&dec={cand['dec']}&radius=5")
        assert r.status_code == 200
    assert client.get("/api/v1/latests?class=Unknown&n=1000").status_code == 200
    r = client.get("/api/v1/objects?objectId=ZTF_x_1")   # never stored: nothing found, as in Fink
    assert r.status_code == 200 and json.loads(r.data) == []


def test_columns_a_file_hides_from_spark_are_named(spark, tmp_path):
    """A file rewritten by another tool keeps the Spark schema metadata of the original, which
    hides a column added since: the night is incomplete, naming the file and the column."""
    night = tmp_path / "lake" / "science" / "year=2024" / "month=01" / "day=15"
    shutil.copytree(NIGHT_DIR, night)
    first = sorted(night.glob("*.parquet"))[0]
    table = pq.read_table(first)                     # keeps org.apache.spark.sql.parquet.row.metadata
    table = table.append_column("zzz_extra", pa.array([f"x{i}" for i in range(table.num_rows)]))
    pq.write_table(table, first, coerce_timestamps="us", allow_truncated_timestamps=True)
    config = make_config(tmp_path / "lake", tmp_path / "store", tmp_path / "work")
    summary = push_night(spark, config, open_store(config.store), paths.parse_night("2024-01-15"), ["main"])
    assert summary["ok"] is False and summary["rows_written"]["ztf"] == 849
    assert summary["columns_not_read"] == {f"file:{first}": ["zzz_extra"]}
    assert any(first.name in p and "zzz_extra" in p and "metadata" in p for p in summary["problems"])


def test_schema_drift_is_said(spark, tmp_path):
    """New columns of a later night are written and listed; a number given to a text column is
    written as text and said; a type the stored cells cannot follow is set aside and makes the
    night incomplete, naming the column."""
    from fink_ingest import schemarow

    lake = tmp_path / "lake" / "science" / "year=2024" / "month=01"
    shutil.copytree(NIGHT_DIR, lake / "day=15")
    second = pq.read_table(NIGHT_DIR)
    second = second.set_column(second.schema.get_field_index("candid"), "candid", pa.compute.add(second["candid"], 1))
    second = second.append_column("zzz_extra", pa.array([1.5] * second.num_rows))
    second = second.set_column(second.schema.get_field_index("roid"), "roid",
                               pa.array([f"r{v}" for v in second["roid"].to_pylist()]))   # int -> text
    cand = second["candidate"].combine_chunks()
    shifted = [pa.compute.add(cand.field(f.name), 1.0) if f.name == "jd" else cand.field(f.name) for f in cand.type]
    second = second.set_column(second.schema.get_field_index("candidate"), "candidate",
                               pa.StructArray.from_arrays(shifted, fields=list(cand.type)))
    (lake / "day=16").mkdir()
    pq.write_table(second.replace_schema_metadata(None), lake / "day=16" / "part-0.parquet",
                   coerce_timestamps="us", allow_truncated_timestamps=True)
    config = make_config(tmp_path / "lake", tmp_path / "store", tmp_path / "work")
    store = open_store(config.store)
    assert push_night(spark, config, store, paths.parse_night("2024-01-15"), ["main"])["ok"]
    main = store.table("ztf")
    schemarow.put(main, config.survey.schema_version, {"i:candid": "string"})   # as an old store might say
    summary = push_night(spark, config, store, paths.parse_night("2024-01-16"), ["main"])
    notes = summary["schema"]["ztf"]
    assert notes["new"] == ["d:zzz_extra"]
    assert notes["as_text"] == {"i:candid": "stored as string, this night's bigint values written as text"}
    assert set(notes["set_aside"]) == {"d:roid"} and "stored as int" in notes["set_aside"]["d:roid"]
    assert summary["ok"] is False and any("column d:roid set aside" in p for p in summary["problems"])
    assert summary["rows_written"]["ztf"] == 849
    types = schemarow.read(main, config.survey.schema_version)
    assert types["d:zzz_extra"] == "double" and types["d:roid"] == "int"
