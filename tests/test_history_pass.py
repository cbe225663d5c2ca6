"""The history tables written from a pyarrow pass over the datalake (``push.history_pass``)
hold what they hold when Spark stages the history as a nested column, cell for cell.

Real data: the night 2024-01-15 with a file of broken alerts beside it (rows set aside by the
push's checks, an entry at jd = inf: ``test_bad_input.write_bad_file``), and real nights of
four Fink layouts (2018, 2022, 2025, 2026) pushed as one backfill.
"""
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import NIGHT_DIR, make_config
from fink_ingest import paths
from fink_ingest.push import history_pass, push_night
from fink_ingest.push.night import push_nights
from fink_ingest.store import open_store
from test_bad_input import write_bad_file

HISTORY_TABLES = ("ztf.upper", "ztf.uppervalid")


def _history(store):
    return {t: sorted((k, tuple(sorted(c.items()))) for k, c in store.table(t).scan()) for t in HISTORY_TABLES}


def _push(spark, lake, base, nights, monkeypatch, by_pass):
    """Push ``nights`` into a fresh store, the history read by the pass or staged by Spark;
    returns (history rows per table, summaries, runs of the pass)."""
    runs = []
    real = history_pass.sorted_runs

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        runs.append(out)
        return out

    with monkeypatch.context() as m:
        m.setattr(history_pass, "sorted_runs", spy)
        if not by_pass:
            m.setattr(history_pass, "usable", lambda *args: False)
        config = make_config(lake, base / "store", base / "work")
        store = open_store(config.store)
        dates = [paths.parse_night(n) for n in nights]
        if len(dates) == 1:
            summaries = [push_night(spark, config, store, dates[0])]
        else:
            summaries = push_nights(spark, config, store, dates, base / "run")[0]
        return _history(store), summaries, runs


@pytest.fixture(scope="module")
def bad_night(datasim, tmp_path_factory):
    lake = tmp_path_factory.mktemp("history_pass") / "lake"
    night = lake / "science" / "year=2024" / "month=01" / "day=15"
    shutil.copytree(NIGHT_DIR, night)
    write_bad_file(night, sorted(night.glob("*.parquet"))[0])
    return lake


def test_pass_stores_what_the_nested_column_stores(bad_night, spark, tmp_path, monkeypatch):
    by_pass, summaries, runs = _push(spark, bad_night, tmp_path / "pass", ["2024-01-15"], monkeypatch, True)
    nested, nested_summaries, nested_runs = _push(spark, bad_night, tmp_path / "nested", ["2024-01-15"], monkeypatch,
                                                  False)
    assert runs and not nested_runs  # each path taken where it was meant to be
    summary = summaries[0]
    assert summary["rows_rejected"] >= 10 and summary["history"]["rejected"] >= 1  # the broken rows, the jd = inf entry
    def counts(history):  # the rejects file lies in each push's own run directory
        return {k: v for k, v in history.items() if k != "rejects_file"}

    assert counts(summary["history"]) == counts(nested_summaries[0]["history"])
    assert summary["history"]["staged"] == runs[0][1] > 0
    for table in HISTORY_TABLES:
        assert len(by_pass[table]) > 100
        assert by_pass[table] == nested[table], table
    # rows set aside for their object id give no entry (the pass reads only the staged rows)
    objects = {k.split(b"_")[0] for table in HISTORY_TABLES for k, _ in by_pass[table]}
    assert all(o.startswith(b"ZTF") and len(o) == 12 for o in objects if not o.startswith(b"schema"))


def test_pass_across_layouts_as_one_backfill(datasim, spark, tmp_path, monkeypatch):
    from datasim.layout import layout_datalake

    layout_datalake([datasim / "ztf"], tmp_path / "lake")
    nights = ["2018-11-29", "2022-08-04", "2025-09-01", "2026-03-22"]
    for night in nights:  # the four layouts are there
        assert Path(paths.night_dir(tmp_path / "lake", paths.parse_night(night))).exists()
    by_pass, summaries, runs = _push(spark, tmp_path / "lake", tmp_path / "pass", nights, monkeypatch, True)
    nested, nested_summaries, _ = _push(spark, tmp_path / "lake", tmp_path / "nested", nights, monkeypatch, False)
    assert len(runs) == len(nights)
    assert [s["history"] for s in summaries] == [s["history"] for s in nested_summaries]  # no rejects here
    assert all(s["ok"] for s in summaries)
    for table in HISTORY_TABLES:
        assert by_pass[table] == nested[table], table
    assert by_pass["ztf.upper"]


@pytest.fixture(scope="module")
def many_files_night(datasim, tmp_path_factory):
    """The real night 2024-01-15 split into 12 files (a datalake night of many files)."""
    lake = tmp_path_factory.mktemp("history_pass_files") / "lake"
    night = lake / "science" / "year=2024" / "month=01" / "day=15"
    night.mkdir(parents=True)
    table = pq.read_table(NIGHT_DIR)
    step = -(-table.num_rows // 12)
    for i in range(12):
        pq.write_table(table.slice(i * step, step), night / f"part-{i:02d}.parquet", coerce_timestamps="us",
                       allow_truncated_timestamps=True)
    return lake


def test_spill_runs_bounded_and_merged_in_one_order(many_files_night, spark, tmp_path, monkeypatch):
    # runs of 1,000 entries or more (a file at a time), more than the staged files' merge takes at a
    # time (8), merged all at once into the order one run gives
    monkeypatch.setattr(history_pass, "RUN_ENTRIES", 1_000)
    small, _, runs = _push(spark, many_files_night, tmp_path / "small", ["2024-01-15"], monkeypatch, True)
    assert len(runs[0][0]) > 8
    monkeypatch.setattr(history_pass, "RUN_ENTRIES", 10_000_000)
    whole, _, runs = _push(spark, many_files_night, tmp_path / "whole", ["2024-01-15"], monkeypatch, True)
    assert len(runs[0][0]) == 1
    assert small == whole and small["ztf.upper"]


def test_runs_beyond_merge_runs_merged_in_levels(many_files_night, spark, tmp_path, monkeypatch):
    """More runs than ``MERGE_RUNS``: merged in groups first (here 9 or more runs, 2 at a time,
    so over three levels), the tables the same as from one run, the merged runs' files gone."""
    merged = []
    real = history_pass._fewer_runs

    def spy(runs, order, batch_rows):
        out = real(runs, order, batch_rows)
        merged.append((list(runs), out, [Path(r).exists() for r in out],
                       [Path(r).exists() for r in runs if r not in out]))
        return out

    monkeypatch.setattr(history_pass, "RUN_ENTRIES", 1_000)
    monkeypatch.setattr(history_pass, "MERGE_RUNS", 2)
    monkeypatch.setattr(history_pass, "_fewer_runs", spy)
    levels, _, runs = _push(spark, many_files_night, tmp_path / "levels", ["2024-01-15"], monkeypatch, True)
    before, after, exist, left = merged[0]
    assert before == runs[0][0] and len(before) > 2 ** 3
    assert len(after) <= 2 and all(exist) and any(Path(r).name.startswith("merged-3-") for r in after)
    assert left and not any(left)  # the runs merged into longer ones, removed as they were merged
    monkeypatch.setattr(history_pass, "RUN_ENTRIES", 10_000_000)
    whole, _, _ = _push(spark, many_files_night, tmp_path / "whole", ["2024-01-15"], monkeypatch, True)
    assert levels == whole and levels["ztf.upper"]
