"""A night's tables written by several processes at once (``push.parallel``), on the real
night 2024-01-15 (849 alerts): the same cells as one process, failures told by table."""
import dataclasses
import os
import signal

import pyarrow.parquet as pq
import pytest

from conftest import NIGHT_DIR, make_config
from fink_ingest import paths, schemarow
from fink_ingest.errors import StoreError
from fink_ingest.push import merge, parallel, push_night
from fink_ingest.store import open_store
from fink_ingest.tables import BUILDERS


def pushed(spark, tmp_path, processes, monkeypatch, prepare=None):
    """The real night pushed (every table) with ``processes`` writing processes, the size
    threshold lifted so that 849 alerts are split: (store, summary)."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ROWS", 0)
    config = dataclasses.replace(make_config(NIGHT_DIR.parents[3], tmp_path / "store", tmp_path / "work"),
                                 write_processes=processes)
    store = open_store(config.store)
    if prepare is not None:
        prepare(config, store)
    return store, push_night(spark, config, store, paths.parse_night("2024-01-15"))


def test_the_tables_split_between_processes_hold_the_cells_one_process_writes(spark, datasim, tmp_path,
                                                                              monkeypatch):
    one, first = pushed(spark, tmp_path / "one", 1, monkeypatch)
    two, second = pushed(spark, tmp_path / "two", 2, monkeypatch)
    assert first["ok"] and second["ok"]
    assert second["write_processes"] == 2 and "write_processes" not in first
    assert second["rows_written"] == first["rows_written"] and second["rows_written"]["ztf"] == 849
    assert list(second["rows_written"]) == list(first["rows_written"])  # the summary's order of tables
    assert second["rows_expected"] == first["rows_expected"]
    assert second["history"]["staged"] == first["history"]["staged"] > 0
    assert second["distinct_alerts"] == first["distinct_alerts"] == 849
    assert sorted(one.tables()) == sorted(two.tables())
    for name in one.tables():
        assert list(two.table(name).scan()) == list(one.table(name).scan()), name


def test_a_writer_process_tells_its_tables_schema_notes(spark, datasim, tmp_path, monkeypatch):
    """An index table written by a writer process whose schema row says int for a column of
    doubles: the column is set aside there, and the night reports it as one process would."""
    shares = parallel.split([BUILDERS[k] for k in BUILDERS], 2)
    kind = next(b.kind for b in shares[1] if b.kind in ("time", "sky", "class"))
    name = f"ztf.{kind}"

    def old_schema(config, store):
        from fink_ingest.push.checks import open_tables

        open_tables(store, [BUILDERS[kind]], config)
        schemarow.put(store.table(name), config.survey.schema_version, {"i:magpsf": "int"})

    store, summary = pushed(spark, tmp_path, 2, monkeypatch, old_schema)
    assert summary["write_processes"] == 2
    assert "stored as int" in summary["schema"][name]["set_aside"]["i:magpsf"]
    assert summary["ok"] is False and any("i:magpsf" in p for p in summary["problems"])
    assert summary["rows_written"][name] == 849


def test_the_split_keeps_stateful_tables_in_the_driver_and_balances_the_rest():
    builders = [BUILDERS[k] for k in BUILDERS]
    driver, other = parallel.split(builders, 2)
    assert {b.kind for b in driver} >= {"cutouts", "statistics"}
    assert {b.kind for b in driver} | {b.kind for b in other} == set(BUILDERS)
    assert not {b.kind for b in driver} & {b.kind for b in other}
    cost = [sum(parallel.WRITE_COST.get(b.kind, 1) for b in s) for s in (driver, other)]
    assert abs(cost[0] - cost[1]) <= max(parallel.WRITE_COST.values())
    assert {"main", "upper"} - {b.kind for b in driver} and {"main", "upper"} - {b.kind for b in other}
    for share in parallel.split(builders, 3):  # the history is read and flattened by one process
        kinds = {b.kind for b in share}
        assert not kinds & {"upper", "uppervalid"} or kinds >= {"upper", "uppervalid"}
    assert parallel.split([BUILDERS["main"]], 4) == [[BUILDERS["main"]]]  # no process for nothing
    assert parallel.split([BUILDERS["main"], BUILDERS["upper"]], 2) == [[BUILDERS["main"]], [BUILDERS["upper"]]]
    assert parallel.split([BUILDERS["statistics"]], 2) == [[BUILDERS["statistics"]]]


def test_the_split_weighs_the_history_more_when_its_process_reads_the_datalake():
    """With the history read by ``history_pass`` (the costliest share of the write phase), the
    history tables go to one process and the main table to the other, the index tables
    spread so that neither share exceeds the other by more than one index table."""
    builders = [BUILDERS[k] for k in BUILDERS]
    shares = parallel.split(builders, 2, history_pass=True)
    kinds = [{b.kind for b in s} for s in shares]
    assert any({"upper", "uppervalid"} <= k and "main" not in k for k in kinds)
    assert any("main" in k and not k & {"upper", "uppervalid"} for k in kinds)

    def cost(share):
        return sum(parallel.WRITE_COST.get(b.kind, 1) for b in share) + \
            (parallel.HISTORY_PASS_COST if any(b.source == "history" for b in share) else 0)
    assert abs(cost(shares[0]) - cost(shares[1])) <= 1
    two = [BUILDERS["main"], BUILDERS["upper"]]
    assert parallel.split(two, 2) == [[BUILDERS["main"]], [BUILDERS["upper"]]]
    assert parallel.split(two, 2, history_pass=True) == [[BUILDERS["upper"]], [BUILDERS["main"]]]


def test_a_writer_process_that_fails_or_dies_fails_the_write(tmp_path):
    config = make_config(tmp_path / "lake", tmp_path / "store", tmp_path / "work")
    files = [str(p) for p in sorted(NIGHT_DIR.glob("*.parquet"))]
    store_url = str(tmp_path / "store")
    # tables never created: the writer process raises, the driver raises the same error
    share = parallel.Share(store_url, [BUILDERS["sky"]], files, {}, config, paths.parse_night("2024-01-15"),
                           ["objectId"], None)
    with pytest.raises(StoreError, match="no table 'ztf.sky'"):
        share.result()
    # killed before it reports: a StoreError names its tables and what to do
    share = parallel.Share(store_url, [BUILDERS["sky"], BUILDERS["time"]], files, {}, config,
                           paths.parse_night("2024-01-15"), ["objectId"], None)
    os.kill(share._process.pid, signal.SIGKILL)
    with pytest.raises(StoreError, match=r"writer process of ztf\.sky, ztf\.time ended \(exit code -9\).*again"):
        share.result()
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == merge.staged_rows(files) == 849


def test_a_writer_process_ends_with_its_driver():
    """A driver killed outright (SIGKILL) takes its writer processes with it (what
    ``writer_main`` sets up first): no writer is left writing tables that the next push
    will write."""
    import subprocess
    import sys
    import time

    writer = ("import sys, time; from fink_ingest.push.parallel import _end_with; "
              "_end_with(int(sys.argv[1])); print('ready', flush=True); time.sleep(120)")
    driver = subprocess.Popen([sys.executable, "-c", (
        "import os, subprocess, sys, time\n"
        f"w = subprocess.Popen([sys.executable, '-c', {writer!r}, str(os.getpid())], stdout=subprocess.PIPE, text=True)\n"
        "assert w.stdout.readline().strip() == 'ready'\n"
        "print(w.pid, flush=True)\n"
        "time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    pid = int(driver.stdout.readline())
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    for _ in range(100):
        try:
            with open(f"/proc/{pid}/stat") as stat:  # a zombie not yet reaped has ended too
                if stat.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the writer process outlived its driver")
