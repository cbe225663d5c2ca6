"""The nightly push on the real night 2024-01-15 (849 alerts, 846 objects)."""
import json
import math
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import NIGHT_DIR, make_config
from fink_ingest import cells, paths, rowkeys, schemarow
from fink_ingest.errors import InputError
from fink_ingest.push import push_night
from fink_ingest.store import open_store


def parquet_night():
    return pq.read_table(NIGHT_DIR)


def same(a, b):
    """Equality with NaN == NaN, recursively."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def as_parquet_value(decoded, arrow_type):
    """A decoded cell in the parquet value's Python form (nested values typed by Arrow)."""
    if decoded is None:
        return None
    if pa.types.is_timestamp(arrow_type):
        return pd.Timestamp(decoded).to_pydatetime()
    if pa.types.is_nested(arrow_type):
        if pa.types.is_map(arrow_type):
            decoded = list(decoded.items())
        return pa.array([decoded], type=arrow_type).to_pylist()[0]
    return decoded


def test_every_distinct_alert_is_one_row(real_night_push):
    config, store, summary = real_night_push
    candids = pa.compute.count_distinct(parquet_night()["candid"]).as_py()
    assert summary["ok"] is True
    assert summary["alerts_read"] == 849 == candids
    assert summary["rows_written"]["ztf"] == 849
    assert summary["duplicates"] == 0 and summary["rows_rejected"] == 0
    table = store.table("ztf")
    assert table.count() - 1 == 849  # plus the schema row
    assert table.count(prefix=b"ZTF") == 849


def test_cells_decode_to_the_parquet_values(real_night_push):
    config, store, _ = real_night_push
    table = store.table("ztf")
    types = schemarow.read(table, config.survey.schema_version)
    night = parquet_night()
    fields = {f.name: f for f in night.schema}
    candidate_fields = {f.name: f for f in fields["candidate"].type}
    checked_types = set()
    for row in night.take(list(range(0, 849, 17))).to_pylist():   # 50 sampled alerts
        key = rowkeys.make(("object", "time", "alert"), {"object": pa.array([row["objectId"]]),
                                                         "time": pa.array([row["candidate"]["jd"]]),
                                                         "alert": pa.array([row["candid"]])}, config.survey)[0].as_py()
        stored = table.row(key.encode())
        assert stored, key
        expected = {f"i:{k}": (v, candidate_fields[k].type) for k, v in row["candidate"].items()}
        for name, value in row.items():
            if name in ("candidate", "prv_candidates", "candid"):
                continue
            family = "i" if name in ("objectId", "schemavsn", "publisher") else "d"
            expected[f"{family}:{name}"] = (value, fields[name].type)
        assert set(q.decode() for q in stored) == {n for n, (v, _) in expected.items() if v is not None}
        for name, (value, arrow_type) in expected.items():
            got = as_parquet_value(cells.decode(stored.get(name.encode()), types.get(name, "string")),
                                   arrow_type)
            assert same(got, value), (key, name, got, value)
            checked_types.add(str(arrow_type).split("<")[0])
    assert {"double", "float", "int32", "int64", "string", "bool", "timestamp[ns]",
            "struct", "map"} <= checked_types
    assert types["i:jd"] == "double" and types["d:mangrove"] == "map<string,string>"


def test_keys_of_one_object_sort_in_time_order(real_night_push):
    _, store, _ = real_night_push
    night = parquet_night().to_pandas()
    repeated = night[night.duplicated("objectId", keep=False)]
    assert repeated["objectId"].nunique() == 3
    table = store.table("ztf")
    for oid, group in repeated.groupby("objectId"):
        stored = [float(k.decode().split("_")[1]) for k, _ in table.scan(prefix=f"{oid}_".encode())]
        assert stored == sorted(group["candidate"].map(lambda c: c["jd"]))


def test_second_run_changes_nothing(real_night_push, spark):
    from fink_ingest.tables.history import UNCHANGED

    config, store, first = real_night_push
    before = {name: list(store.table(name).scan()) for name in store.tables()}
    again = push_night(spark, config, store, paths.parse_night("20240115"))
    assert again["ok"]
    history = {"ztf.upper", "ztf.uppervalid"}
    assert {t: n for t, n in again["rows_written"].items() if t not in history} == \
        {t: n for t, n in first["rows_written"].items() if t not in history}
    for t in history:  # packed history rows are merged with the stored ones: nothing to rewrite
        assert again["rows_written"][t] == 0 and again["rows_skipped"][t] == {UNCHANGED: first["rows_written"][t]}
    assert {name: list(store.table(name).scan()) for name in store.tables()} == before


@pytest.fixture(scope="module")
def damaged_night(spark, tmp_path_factory):
    """The real night plus a truncated file and a file of bad and duplicate rows."""
    base = tmp_path_factory.mktemp("damaged")
    night = base / "lake" / "science" / "year=2024" / "month=01" / "day=15"
    shutil.copytree(NIGHT_DIR, night)
    first = sorted(night.glob("*.parquet"))[0]
    data = first.read_bytes()
    (night / "part-truncated.parquet").write_bytes(data[: len(data) // 2])
    rows = pq.read_table(first).slice(0, 3).to_pylist()
    rows[0]["objectId"] = None                      # no object id
    rows[1]["candidate"]["dec"] = 95.0              # dec out of range
    rows[1]["candid"] = rows[1]["candidate"]["candid"] = 1
    # rows[2] is a duplicate of an alert already in the night
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(first)), night / "part-bad.parquet",
                   coerce_timestamps="us", allow_truncated_timestamps=True)
    # a file with a sound footer whose data Spark cannot read (nanosecond timestamps)
    pq.write_table(pa.Table.from_pylist(rows[2:], schema=pq.read_schema(first)),
                   night / "part-nanos.parquet")
    config = make_config(base / "lake", base / "store", base / "work")
    store = open_store(config.store)
    return config, store, push_night(spark, config, store, paths.parse_night("2024-01-15"))


def test_damaged_night_sets_aside_and_counts(damaged_night):
    config, store, summary = damaged_night
    assert summary["ok"] is False
    reasons = {f["file"].rsplit("/", 1)[1]: f["reason"] for f in summary["files_rejected"]}
    assert sorted(reasons) == ["part-nanos.parquet", "part-truncated.parquet"]
    assert reasons["part-truncated.parquet"].startswith("unreadable parquet: ArrowInvalid")
    assert "[timestamp]" in reasons["part-nanos.parquet"]
    assert summary["alerts_read"] == 852
    assert summary["rows_rejected"] == 2 and summary["duplicates"] == 1
    assert summary["rows_written"]["ztf"] == 849
    assert summary["alerts_read"] == 849 + summary["duplicates"] + summary["rows_rejected"]
    rejects = pq.read_table(summary["rejects_file"]).to_pylist()
    assert sorted(r["reason"] for r in rejects) == ["candidate.dec out of [-90, 90]: 95.0", "null objectId"]


def test_history_tables_of_a_night_without_history_still_count_it(spark, tmp_path):
    """Only history tables, on a night whose files have no prv_candidates: nothing to write,
    and the night is still read once and counted (849 alerts, none lost, none rejected)."""
    night = tmp_path / "lake" / "science" / "year=2024" / "month=01" / "day=15"
    night.mkdir(parents=True)
    for path in sorted(NIGHT_DIR.glob("*.parquet")):
        pq.write_table(pq.read_table(path).drop_columns(["prv_candidates"]), night / path.name)
    config = make_config(tmp_path / "lake", tmp_path / "store", tmp_path / "work")
    summary = push_night(spark, config, open_store(config.store), paths.parse_night("2024-01-15"), ["upper"])
    assert summary["ok"], summary["problems"]
    assert summary["alerts_read"] == summary["distinct_alerts"] == 849
    assert summary["rows_rejected"] == summary["duplicates"] == 0
    assert summary["history"] == {"entries": 0, "rejected": 0, "staged": 0}
    assert not any(summary["rows_written"].values())


def test_missing_night_names_the_path(spark, tmp_path, datasim):
    config = make_config(datasim / "ztf" / "archive", tmp_path / "s", tmp_path / "w")
    with pytest.raises(InputError, match="year=2024/month=01/day=16 does not exist"):
        push_night(spark, config, open_store(config.store), paths.parse_night("2024-01-16"))


def test_cli_exit_codes(spark, damaged_night, datasim, tmp_path, capsys):
    from fink_push import main as job_main  # noqa: F401  (the entry point imports cleanly)
    from fink_ingest.cli import main

    config, _, _ = damaged_night
    bad = main(lambda c: spark, ["--night", "2024-01-15", "--datalake", config.datalake,
                                 "--store", str(tmp_path / "s1"), "--work-dir", str(tmp_path / "w")])
    assert bad == 1
    out = capsys.readouterr().out
    assert "INCOMPLETE" in out and "part-truncated.parquet" in out and "rows rejected 2" in out
    good = main(lambda c: spark, ["--night", "20240115", "--datalake", str(datasim / "ztf" / "archive"),
                                  "--store", str(tmp_path / "s2"), "--work-dir", str(tmp_path / "w")])
    assert good == 0 and "  ztf: 849 rows written" in capsys.readouterr().out
    assert main(lambda c: spark, ["--night", "2024-13-45"]) == 2


def test_staged_files_merge_into_one_key_order(tmp_path):
    """The driver writes the staged files (each sorted, as Spark leaves them) in one global
    key order: every row once, in the order of the whole night sorted."""
    from fink_ingest.push.merge import merged_batches, put_batches as _put_batches

    files = []
    for i, path in enumerate(sorted(NIGHT_DIR.glob("*.parquet"))):
        t = pq.read_table(path, columns=["objectId", "candidate"])
        t = pa.table({"objectId": t["objectId"], "jd": pc.struct_field(t["candidate"], "jd"),
                      "candid": pc.struct_field(t["candidate"], "candid")})
        t = t.take(pc.sort_indices(t, sort_keys=[("objectId", "ascending"), ("jd", "ascending")]))
        files.append(str(tmp_path / f"{i}.parquet"))
        pq.write_table(t, files[-1], row_group_size=37)   # many small row groups
    merged = pa.concat_tables(merged_batches(files, ["objectId", "jd"], batch_rows=200))
    assert merged.num_rows == 849 and len(files) == 8
    assert sorted(merged["candid"].to_pylist()) == sorted(pq.read_table(NIGHT_DIR, columns=["candid"])["candid"].to_pylist())
    keys = list(zip(merged["objectId"].to_pylist(), merged["jd"].to_pylist()))
    assert keys == sorted(keys)
    # merge rounds of a few rows each are joined into put batches of exactly put_rows
    puts = list(_put_batches(merged_batches(files, ["objectId", "jd"], batch_rows=200, lazy=True), 64))
    assert [p.num_rows for p in puts] == [64] * (849 // 64) + [849 % 64]
    assert pa.concat_tables(p.materialise() for p in puts).equals(merged)


def test_the_writer_leaves_out_copies_of_an_alert_and_counts_objects(tmp_path):
    """Copies of real alerts (a datalake file written twice) reach the driver's merge in
    different staged files; in the key order each copy follows its alert, across put
    batches too, and is left out once; objects are the night's distinct objectIds."""
    from fink_ingest.push.merge import NightCounts, merged_batches, put_batches as _put_batches

    night = pq.read_table(NIGHT_DIR, columns=["objectId", "candid", "candidate"])
    t = pa.table({"objectId": night["objectId"], "jd": pc.struct_field(night["candidate"], "jd"),
                  "candid": night["candid"]})
    key = [("objectId", "ascending"), ("jd", "ascending"), ("candid", "ascending")]
    copies = t.slice(100, 300)                       # 300 alerts written twice
    files = []
    for i, part in enumerate((t.slice(0, 500), t.slice(500), copies)):
        files.append(str(tmp_path / f"{i}.parquet"))
        pq.write_table(part.take(pc.sort_indices(part, sort_keys=key)), files[-1], row_group_size=41)
    for put_rows in (7, 64, 5000):                   # copies straddle batch edges at 7 and 64 rows
        counts = NightCounts("objectId", "candid")
        kept = []
        for batch in _put_batches(merged_batches(files, ["objectId", "jd", "candid"], batch_rows=90, lazy=True),
                                  put_rows):
            counts.see(batch)
            table = batch.materialise()
            assert table.num_rows == batch.num_rows
            kept.append(table)
        kept = pa.concat_tables(kept)
        assert counts.duplicates == 300 and kept.num_rows == 849
        assert sorted(kept["candid"].to_pylist()) == sorted(t["candid"].to_pylist())
        assert counts.objects == len(set(t["objectId"].to_pylist())) == 846


def test_a_staged_file_that_fails_while_merging_fails_the_write(tmp_path):
    """The staged files are read and merged in a thread of their own: rows come out in the
    merged order, and a file that breaks half-way raises in the writer, never ends the night
    early as if it were complete."""
    from fink_ingest.push.merge import merged_batches, read_ahead as _read_ahead

    files = []
    for i, path in enumerate(sorted(NIGHT_DIR.glob("*.parquet"))[:3]):
        t = pq.read_table(path, columns=["objectId", "candid"])
        files.append(str(tmp_path / f"{i}.parquet"))
        pq.write_table(t.sort_by("objectId"), files[-1], row_group_size=20)
    rows = [b.num_rows for b in _read_ahead(merged_batches(files, ["objectId"], batch_rows=50), 2)]
    assert sum(rows) == sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    with open(files[1], "r+b") as f:  # the second file's last row groups are overwritten
        f.seek(pq.ParquetFile(files[1]).metadata.row_group(2).column(0).file_offset)
        f.write(b"\xff" * 2000)
    seen = []
    with pytest.raises((pa.ArrowException, OSError)):
        for batch in _read_ahead(merged_batches(files, ["objectId"], batch_rows=50), 2):
            seen.append(batch.num_rows)
    assert sum(seen) < sum(rows)


def test_night_read_in_many_partitions_is_staged_in_at_most_merge_files(spark, datasim, tmp_path, monkeypatch):
    """However many partitions Spark reads a night in, the driver's single writer gets at most
    MERGE_FILES staged files, so the night is written in one key order; the tables are the
    same as without the cap."""
    from fink_ingest.push import group_write, merge

    staged = []
    write_staged = group_write.write_staged

    def counting(store, builders, files, *args, **kwargs):
        staged.append((builders[0].kind, len(files)))
        return write_staged(store, builders, files, *args, **kwargs)

    monkeypatch.setattr(group_write, "write_staged", counting)
    tables = {}
    spark.conf.set("spark.sql.files.maxPartitionBytes", "200k")
    try:
        for cap in (2, 1000):
            monkeypatch.setattr(merge, "MERGE_FILES", cap)
            config = make_config(datasim / "ztf" / "archive", tmp_path / f"store{cap}", tmp_path / "work")
            store = open_store(config.store)
            summary = push_night(spark, config, store, paths.parse_night("2024-01-15"), ["main", "upper"])
            assert summary["ok"] and summary["rows_written"]["ztf"] == 849
            tables[cap] = {name: list(store.table(name).scan()) for name in ("ztf", "ztf.upper")}
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    capped, uncapped = staged[:1], staged[1:]  # one write of the main and history tables a push
    assert [kind for kind, _ in capped] == ["main"] and len(uncapped) == 1
    assert capped[0][1] <= 2 and uncapped[0][1] > 2
    assert tables[2] == tables[1000]
    assert len(tables[2]["ztf"]) == 850 and len(tables[2]["ztf.upper"]) > 849


def test_history_entry_without_time_is_set_aside(spark, tmp_path):
    """An upper limit whose jd is missing is rejected with a reason, never placed by guess;
    the other entries of the night are stored and the run says it is incomplete."""
    night = tmp_path / "lake" / "science" / "year=2024" / "month=01" / "day=15"
    shutil.copytree(NIGHT_DIR, night)
    first = sorted(night.glob("*.parquet"))[0]
    table = pq.read_table(first)
    rows = table.to_pylist()
    upper = next(i for i, e in enumerate(rows[0]["prv_candidates"]) if e["magpsf"] is None)
    lost = rows[0]["prv_candidates"][upper]
    rows[0]["prv_candidates"][upper] = dict(lost, jd=None)
    schema = pa.schema([f.with_nullable(True) if f.name == "prv_candidates" else f for f in table.schema])
    element = schema.field("prv_candidates").type.value_type
    nullable = pa.list_(pa.struct([f.with_nullable(True) for f in element]))
    schema = schema.set(schema.get_field_index("prv_candidates"), pa.field("prv_candidates", nullable))
    schema = schema.with_metadata(table.schema.metadata)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), first, coerce_timestamps="us",
                   allow_truncated_timestamps=True)
    config = make_config(tmp_path / "lake", tmp_path / "store", tmp_path / "work")
    store = open_store(config.store)
    summary = push_night(spark, config, store, paths.parse_night("2024-01-15"), ["upper"])
    assert summary["ok"] is False and summary["history"]["rejected"] == 1
    rejected = pq.read_table(summary["history"]["rejects_file"]).to_pylist()
    assert len(rejected) == 1 and rejected[0]["objectId"] == rows[0]["objectId"]
    assert rejected[0]["reason"] == "history entry without i:jd"
    assert rejected[0]["i:diffmaglim"] == pytest.approx(lost["diffmaglim"])
    stored = [jd for _, r in store.table("ztf.upper").scan(prefix=f"{rows[0]['objectId']}_".encode())
              for jd in json.loads(r[b"i:jd"])]
    others = {e["jd"] for e in rows[0]["prv_candidates"] if e["magpsf"] is None and e["jd"] is not None}
    assert others <= set(stored) and len(stored) == len(set(stored))
    assert summary["rows_written"]["ztf.upper"] > 1000            # the rest of the night went through


def test_history_entries_of_staged_alerts_are_one_per_row_in_key_order():
    """Each staged alert carries its kept history (a nested column); the driver flattens a
    batch of alerts, in any order, into one entry per row sorted by objectId, jd and candid
    (nulls first: upper limits have none), every entry of every alert kept, repeats adjacent."""
    from fink_ingest.config import load_config
    from fink_ingest.tables.history import entries

    survey = load_config(None, datalake="x", store="x", work_dir="x").survey
    night = parquet_night()
    fields = ["jd", "candid", "fid", "magpsf", "diffmaglim"]
    prv = night["prv_candidates"].combine_chunks()
    kept = pa.ListArray.from_arrays(prv.offsets, pa.StructArray.from_arrays(
        [pc.struct_field(prv.values, f) for f in fields], names=fields))
    alerts = pa.table({"i:objectId": night["objectId"], "__history": kept})
    alerts = alerts.take(pa.array(list(range(alerts.num_rows))[::-1]))  # not in key order
    got = entries(alerts.to_batches()[0] if alerts.num_rows else alerts, "__history", survey)
    flat = pc.list_flatten(prv)
    assert got.num_rows == len(flat) == 24812
    rows = list(zip(*(got.column(n).to_pylist() for n in ["objectId", "i:jd", "i:candid", "i:fid"])))
    assert rows == sorted(rows, key=lambda r: (r[0], r[1], (r[2] is not None, r[2] or 0)))
    oid = pc.take(night["objectId"].combine_chunks(), pc.list_parent_indices(prv)).to_pylist()
    expected = list(zip(oid, *(pc.struct_field(flat, f).to_pylist() for f in ("jd", "candid", "fid"))))
    assert sorted(rows, key=repr) == sorted(expected, key=repr)
    assert len(set(rows)) < len(rows)  # the same entry came in several alerts of an object
    empty = entries(alerts.slice(0, 0), "__history", survey)
    assert empty.num_rows == 0 and empty.schema.names[0] == "objectId"


def test_present_columns_sees_nested_leaves_with_more_nulls_than_rows(tmp_path):
    """A history field null in most entries but set in one (upper limits have no candid) is
    present, though its nulls outnumber the staged rows."""
    from fink_ingest.push.merge import present_columns

    entry = pa.struct([("jd", pa.float64()), ("candid", pa.int64())])
    lists = pa.array([[{"jd": 1.0, "candid": None}] * 5 + [{"jd": 2.0, "candid": 7}]], pa.list_(entry))
    pq.write_table(pa.table({"__history": lists, "absent": pa.nulls(1, pa.int64())}), tmp_path / "a.parquet")
    present = present_columns([str(tmp_path / "a.parquet")])
    assert {p.rsplit(".", 1)[-1] for p in present} == {"jd", "candid"}


def test_a_night_whose_footers_python_cannot_read_is_counted_by_spark(spark, datasim, tmp_path, monkeypatch):
    """Rows read come from the files' footers; where Python cannot read them (a URI pyarrow
    does not reach), the night is counted in a Spark job instead, with the same counts."""
    from fink_ingest import datalake

    monkeypatch.setattr(datalake, "_footer", lambda uri: (None, None, None, None))
    config = make_config(datasim / "ztf" / "archive", tmp_path / "store", tmp_path / "work")
    summary = push_night(spark, config, open_store(config.store), paths.parse_night("2024-01-15"))
    assert summary["ok"] is True and "count" in summary["seconds"]  # the count job ran
    assert summary["alerts_read"] == summary["distinct_alerts"] == summary["rows_written"]["ztf"] == 849
    assert summary["history"]["staged"] > 0 and summary["history"]["rejected"] == 0
