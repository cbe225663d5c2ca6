"""Tests of datasim (layout and scale) on the real ZTF alerts of ``shared/datasim``.

The data directory is ``$FINK_DATASIM`` or ``<repo>/../shared/datasim``. No Spark needed.
"""
import datetime as dt
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasim.cli import main  # noqa: E402
from datasim.layout import layout_datalake  # noqa: E402
from datasim.scale import scale_night  # noqa: E402
from fink_ingest.errors import ConfigError, InputError  # noqa: E402

DATA = Path(os.environ.get("FINK_DATASIM", REPO.parent / "shared" / "datasim"))
ZTF = DATA / "ztf"
NIGHT_2024 = ZTF / "archive" / "science" / "year=2024" / "month=01" / "day=15"
SSO = ZTF / "alerts" / "sso_2022-08-04_11alerts.parquet"
RAW = ZTF / "raw_avro_2018-11-29"

if not ZTF.is_dir():  # real data is required: a missing copy is a failure, not a skip
    raise RuntimeError(f"real ZTF data not found at {ZTF} (set FINK_DATASIM)")


def _night(jd: float) -> str:
    """UTC date of a Julian Date, computed independently of datasim."""
    return (dt.datetime(1970, 1, 1) + dt.timedelta(days=jd - 2440587.5)).date().isoformat()


def _input_candids() -> dict:
    """{night: set of candids} of every input alert, read straight from the shared files."""
    nights = defaultdict(set)
    for path in sorted(ZTF.rglob("*.parquet")):
        table = pq.read_table(path, columns=["candid", "candidate"])
        for candid, cand in zip(table["candid"].to_pylist(), table["candidate"].to_pylist()):
            nights[_night(cand["jd"])].add(candid)
    for path in sorted(ZTF.rglob("*.avro")):
        with open(path, "rb") as fh:
            for rec in fastavro.reader(fh):
                nights[_night(rec["candidate"]["jd"])].add(rec["candid"])
    return nights


def _night_of_path(path: Path) -> str:
    y, m, d = re.search(r"year=(\d{4})/month=(\d\d)/day=(\d\d)", path.as_posix()).groups()
    return f"{y}-{m}-{d}"


def _lake_files(prefix: Path) -> list:
    return sorted((prefix / "science").glob("year=*/month=*/day=*/*.parquet"))


def _types(t: pa.DataType):
    """Every type nested in ``t``."""
    yield t
    if pa.types.is_struct(t):
        for f in t:
            yield from _types(f.type)
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        yield from _types(t.value_type if not pa.types.is_map(t) else t.item_type)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("lake")
    return prefix, layout_datalake([ZTF], prefix)


# ---------------------------------------------------------------------------- layout
def test_layout_nights_and_counts(lake):
    _, summary = lake
    nights = summary["nights"]
    assert summary["rejected"] == []
    assert summary["alerts"] == sum(nights.values()) == 849 + 72 + 55 + 11 + 31 + 498 == 1516
    assert nights["2018-11-29"] == 498
    assert nights["2024-01-15"] == 849
    assert nights["2022-08-04"] == 11
    assert nights["2026-03-22"] == 31
    hostless = {n: c for n, c in nights.items() if "2024-04-10" <= n <= "2024-04-28"}
    slsn = {n: c for n, c in nights.items() if n.startswith("2025-09")}
    assert len(hostless) == 12 and sum(hostless.values()) == 72
    assert sorted(slsn) == [f"2025-09-0{d}" for d in range(1, 6)] and sum(slsn.values()) == 55
    assert len(nights) == 4 + 12 + 5


def test_every_alert_in_its_own_night_with_the_input_candids(lake):
    prefix, summary = lake
    candids, counts = defaultdict(set), defaultdict(int)
    for path in _lake_files(prefix):
        table = pq.read_table(path, columns=["candid", "candidate"])
        night = _night_of_path(path)
        jds = pc.struct_field(table["candidate"], "jd").to_pylist()
        assert {_night(jd) for jd in jds} == {night}, path
        candids[night].update(table["candid"].to_pylist())
        counts[night] += table.num_rows
    assert dict(counts) == summary["nights"]
    assert dict(candids) == dict(_input_candids())
    assert sorted(map(str, _lake_files(prefix))) == sorted(summary["files"])


def test_layout_types_are_spark_safe_and_avro_types_derived(lake):
    prefix, _ = lake
    for path in _lake_files(prefix):
        meta = pq.ParquetFile(path).metadata
        assert meta.row_group(0).column(0).compression == "SNAPPY"
        for field in meta.schema.to_arrow_schema():
            for t in _types(field.type):
                assert not pa.types.is_dictionary(t) and not pa.types.is_null(t), (path, field)
                assert not (pa.types.is_timestamp(t) and t.unit == "ns"), (path, field)
    raw = pq.read_schema(prefix / "science/year=2018/month=11/day=29/part-00000-raw_avro_2018-11-29.parquet")
    cand = raw.field("candidate").type
    assert cand.field("jd").type == pa.float64() and cand.field("fid").type == pa.int32()
    assert cand.field("magpsf").type == pa.float32() and cand.field("pid").type == pa.int64()
    assert cand.field("diffmaglim").nullable and not cand.field("jd").nullable
    assert raw.field("cutoutScience").type.field("stampData").type == pa.binary()
    assert pa.types.is_struct(raw.field("prv_candidates").type.value_type)
    sso = pq.read_schema(prefix / "science/year=2022/month=08/day=04/part-00000-sso_2022-08-04_11alerts.parquet")
    assert sso.field("tracklet").type == pa.string()  # null-typed in the source
    assert sso.field("timestamp").type == pa.timestamp("us")
    slsn = pq.read_table(next((prefix / "science/year=2025/month=09").rglob("*.parquet")))
    assert slsn.schema.field("finkclass").type == pa.string()  # dictionary in the source


def test_layout_keeps_values_including_cutouts(lake):
    prefix, _ = lake
    src = pq.read_table(SSO)
    out = pq.read_table(prefix / "science/year=2022/month=08/day=04/part-00000-sso_2022-08-04_11alerts.parquet")
    key = lambda t: dict(zip(t["candid"].to_pylist(), t["cutoutScience"].to_pylist()))  # noqa: E731
    assert key(out) == key(src)
    assert out["candidate"].to_pylist() == src["candidate"].to_pylist()


def test_relayout_replaces_files_without_duplicates(lake):
    prefix, first = lake
    before = {p: pq.ParquetFile(p).metadata.num_rows for p in _lake_files(prefix)}
    again = layout_datalake([ZTF], prefix)
    after = {p: pq.ParquetFile(p).metadata.num_rows for p in _lake_files(prefix)}
    assert again["nights"] == first["nights"] and sorted(again["files"]) == sorted(first["files"])
    assert after == before and sum(after.values()) == 1516


def test_bad_files_are_reported_and_the_rest_laid_out(tmp_path):
    broken = tmp_path / "in" / "broken.parquet"
    broken.parent.mkdir()
    broken.write_bytes(SSO.read_bytes()[: SSO.stat().st_size // 2])
    raw = sorted(RAW.glob("*.avro"))[0]
    cut = tmp_path / "in" / "cut.avro"
    cut.write_bytes(raw.read_bytes()[:3000])
    summary = layout_datalake([broken, tmp_path / "missing.parquet", SSO, tmp_path / "in"], tmp_path / "lake")
    rejected = dict(summary["rejected"])
    assert set(rejected) == {str(broken.resolve()), str(cut.resolve()), str(tmp_path / "missing.parquet")}
    assert "parquet" in rejected[str(broken.resolve())] and "Avro" in rejected[str(cut.resolve())]
    assert summary["nights"] == {"2022-08-04": 11}
    with pytest.raises(InputError, match="broken.parquet"):
        layout_datalake([broken], tmp_path / "lake2")


def test_overwrite_removes_files_of_other_sources(tmp_path):
    stale = tmp_path / "science/year=2022/month=08/day=04/part-00000-old.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"stale")
    layout_datalake([SSO], tmp_path)
    assert stale.exists()
    summary = layout_datalake([SSO], tmp_path, overwrite=True)
    assert not stale.exists() and [Path(p) for p in summary["files"]] == _lake_files(tmp_path)


# ---------------------------------------------------------------------------- scale
@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("scaled")
    summary = scale_night(NIGHT_2024, prefix, "2024-01-15", 5_000, seed=3, rows_per_file=2_000)
    files = [Path(f) for f in summary["files"]]
    return summary, files, pa.concat_tables(pq.read_table(f) for f in files)


def test_scaled_night_has_exact_count_unique_ids_and_same_schema(scaled):
    summary, files, table = scaled
    assert table.num_rows == summary["alerts"] == 5_000 and len(files) == 3
    assert [f.name for f in files] == [f"part-0000{i}-scaled.parquet" for i in range(3)]
    assert all(f.parent.as_posix().endswith("science/year=2024/month=01/day=15") for f in files)
    candid = table["candid"].to_numpy()
    assert len(np.unique(candid)) == 5_000
    assert np.array_equal(pc.struct_field(table["candidate"], "candid").to_numpy(), candid)
    source = pq.read_schema(sorted(NIGHT_2024.glob("*.parquet"))[0])
    out = pq.read_schema(files[0])
    assert out.names == source.names
    assert out.field("candidate").type.names == source.field("candidate").type.names
    for field in source:  # same types; only the INT96 timestamp becomes microseconds, UTC
        expected = pa.timestamp("us", tz="UTC") if field.name == "timestamp" else field.type
        assert out.field(field.name).type == expected, field.name


def test_scaled_positions_times_and_objects(scaled):
    summary, _, table = scaled
    cand = table["candidate"].combine_chunks()
    jd = cand.field("jd").to_numpy()
    assert {_night(x) for x in (jd.min(), jd.max())} == {"2024-01-15"}
    ra, dec = cand.field("ra").to_numpy(), cand.field("dec").to_numpy()
    assert ra.min() >= 0 and ra.max() < 360 and dec.min() >= -90 and dec.max() <= 90
    src = pa.concat_tables(pq.read_table(f) for f in sorted(NIGHT_2024.glob("*.parquet")))
    scand = src["candidate"].combine_chunks()
    idx = np.arange(5_000) % src.num_rows
    src_hist = scand.field("jdstarthist").to_numpy() - scand.field("jd").to_numpy()
    hist = (cand.field("jdstarthist").to_numpy() - jd) - src_hist[idx]
    assert np.abs(hist).max() < 1e-6  # jdstarthist moved with jd

    def lag(history, alert_jd):  # jd of every earlier detection minus its alert's jd, days
        rows = pc.list_parent_indices(history).to_numpy()
        return pc.struct_field(pc.list_flatten(history), "jd").to_numpy() - alert_jd[rows]

    src_prv = src["prv_candidates"].combine_chunks().take(idx)
    prv_lag = lag(table["prv_candidates"].combine_chunks(), jd)
    assert len(prv_lag) > 5_000 and np.abs(prv_lag - lag(src_prv, scand.field("jd").to_numpy()[idx])).max() < 1e-6
    prv_jd = pc.struct_field(pc.list_flatten(table["prv_candidates"].combine_chunks()), "jd").to_numpy()
    for times in (jd, prv_jd):  # times keep ZTF's resolution (7 decimals), as the source's do
        assert np.array_equal(np.round(times, 7), times)
    d_ra = (ra - scand.field("ra").to_numpy()[idx] + 180) % 360 - 180
    assert 0.5 < np.abs(d_ra).max() <= 3.0
    oid = table["objectId"].to_pylist()
    assert all(re.fullmatch(r"ZTF24[n-z][a-z]{6}", o) for o in oid)
    first_round = oid[: src.num_rows]
    assert len(set(first_round)) == len(set(src["objectId"].to_pylist())) == 846
    assert len(set(oid)) == summary["objects"]


def test_scale_is_deterministic_and_moves_to_another_night(tmp_path):
    a = scale_night(NIGHT_2024, tmp_path / "a", "20240301", 300, seed=1, drop_columns=["prv_candidates", "nope"])
    b = scale_night(NIGHT_2024, tmp_path / "b", "2024-03-01", 300, seed=1)
    c = scale_night(NIGHT_2024, tmp_path / "c", "2024-03-01", 300, seed=2)
    ta, tb, tc = (pq.read_table(s["files"][0]) for s in (a, b, c))
    assert "prv_candidates" not in ta.column_names and "prv_candidates" in tb.column_names
    assert ta["objectId"].equals(tb["objectId"]) and ta["candid"].equals(tb["candid"])
    assert not set(ta["objectId"].to_pylist()) & set(tc["objectId"].to_pylist())
    assert not set(ta["candid"].to_pylist()) & set(tc["candid"].to_pylist())
    jd = pc.struct_field(tb["candidate"], "jd").to_numpy()
    assert {_night(x) for x in jd} == {"2024-03-01"}
    ts = tb["timestamp"].to_pylist()
    assert {t.date().isoformat() for t in ts} <= {"2024-03-01", "2024-02-29"}  # source timestamps lag jd by 1 h


def test_scale_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="night"):
        scale_night(NIGHT_2024, tmp_path, "15/01/2024", 10)
    with pytest.raises(ConfigError, match="n_alerts"):
        scale_night(NIGHT_2024, tmp_path, "2024-01-15", 0)
    with pytest.raises(InputError, match="does not exist"):
        scale_night(tmp_path / "nowhere", tmp_path, "2024-01-15", 10)


# ---------------------------------------------------------------------------- command line
def test_cli_exit_codes(tmp_path, capsys):
    assert main(["layout", "--prefix", str(tmp_path / "l1"), str(SSO)]) == 0
    assert "2022-08-04" in capsys.readouterr().out
    assert main(["layout", "--prefix", str(tmp_path / "l2"), str(SSO), str(tmp_path / "missing.avro")]) == 1
    assert "missing.avro" in capsys.readouterr().out
    assert main(["scale", "--source", str(SSO), "--prefix", str(tmp_path / "s"), "--night", "2024-01-15",
                 "--n", "50", "--drop-columns", "cutoutScience,cutoutTemplate"]) == 0
    out = pq.read_table(next((tmp_path / "s").rglob("*.parquet")))
    assert out.num_rows == 50 and "cutoutScience" not in out.column_names
    assert main(["scale", "--source", str(SSO), "--prefix", str(tmp_path), "--night", "bad", "--n", "5"]) == 2
    assert main(["scale", "--prefix", str(tmp_path)]) == 2
    assert main([]) == 2


def test_bin_launcher_runs():
    proc = subprocess.run([sys.executable, str(REPO / "bin" / "fink_datasim"), "--help"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": ""}, cwd="/", timeout=60)
    assert proc.returncode == 0 and "layout" in proc.stdout and "scale" in proc.stdout
