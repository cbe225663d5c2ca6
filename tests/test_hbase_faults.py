"""The HBase path when the Thrift gateway dies in the middle of a push, and comes back."""
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import make_config
from fink_ingest import paths
from fink_ingest.errors import StoreError
from fink_ingest.push import push_night
from fink_ingest.tables.history import UNCHANGED
from fink_ingest.store import open_store
from hbase_double import free_port

DOUBLE = Path(__file__).with_name("hbase_double.py")


def start_double(directory, port):
    proc = subprocess.Popen([sys.executable, str(DOUBLE), str(directory), str(port)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "serving"
    time.sleep(0.2)
    return proc


def rows_in(path):
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM cells").fetchone()[0]
    except sqlite3.Error:
        return 0


def snapshot(store):
    return {name: list(store.table(name).scan()) for name in store.tables()}


def test_gateway_dies_mid_push_then_a_rerun_completes_exactly(spark, datasim, tmp_path):
    directory, port = tmp_path / "hbase", free_port()
    directory.mkdir()
    proc = start_double(directory, port)
    config = make_config(datasim / "ztf" / "archive", f"hbase://127.0.0.1:{port}?retries=2&batch=50", tmp_path / "w")
    store = open_store(config.store)

    def kill_mid_push():  # once the upper-limit table is half written, the gateway dies
        while proc.poll() is None:
            if rows_in(directory / "ztf.upper.sqlite") > 600:
                proc.kill()
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_mid_push, daemon=True)
    killer.start()
    # the history tables are written batch by batch together: either may meet the dead gateway
    with pytest.raises(StoreError, match=r"night 2024-01-15: table 'ztf\.upper(valid)?': put of .* rows from .*hbase://127\.0\.0\.1"):
        push_night(spark, config, store, paths.parse_night("2024-01-15"))
    killer.join(timeout=5)
    assert proc.poll() is not None
    partial = rows_in(directory / "ztf.upper.sqlite")
    assert 600 < partial < 1319

    proc = start_double(directory, port)   # the gateway comes back over the same data
    try:
        summary = push_night(spark, config, store, paths.parse_night("2024-01-15"))
        # rows the dead gateway had stored are merged and found unchanged: only the rest is put
        upper, unchanged = summary["rows_written"]["ztf.upper"], summary["rows_skipped"]["ztf.upper"][UNCHANGED]
        assert summary["ok"] and upper + unchanged >= 1318 and unchanged >= partial - 2
        clean = open_store(str(tmp_path / "clean"))
        push_night(spark, make_config(datasim / "ztf" / "archive", tmp_path / "clean", tmp_path / "w2"),
                   clean, paths.parse_night("2024-01-15"))
        assert snapshot(store) == snapshot(clean)   # nothing lost, nothing duplicated
    finally:
        proc.kill()


def test_executor_merges_see_every_row_of_a_key(spark, datasim, tmp_path, monkeypatch):
    """Staged history files read in many splits (small row groups, small input partitions,
    so an object's entries can start in one split and end in the next) still give exactly
    the history tables of the driver's single writer, row for row."""
    from fink_ingest.push import stage
    from hbase_double import ThriftDouble

    monkeypatch.setattr(stage, "STAGE_ROW_GROUP_BYTES", 16 * 1024)
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(32 * 1024))
    double = ThriftDouble(str(tmp_path / "hbase")).start()
    try:
        night = paths.parse_night("2024-01-15")
        remote_config = make_config(datasim / "ztf" / "archive", f"hbase://127.0.0.1:{double.port}", tmp_path / "w1")
        remote = open_store(remote_config.store)
        assert push_night(spark, remote_config, remote, night, ["upper", "uppervalid"])["ok"]
        local = open_store(str(tmp_path / "local"))
        push_night(spark, make_config(datasim / "ztf" / "archive", tmp_path / "local", tmp_path / "w2"), local,
                   night, ["upper", "uppervalid"])
        for table in ("ztf.upper", "ztf.uppervalid"):
            assert list(remote.table(table).scan()) == list(local.table(table).scan())
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        double.stop()
