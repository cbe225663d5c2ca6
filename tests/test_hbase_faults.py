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
