"""What an operator sees when a push cannot succeed: one line saying what failed, where, and
the fix; no traceback without --verbose; the night's summary written anyway; preflight
failures in seconds, before Spark; runs that never share a directory or leave staging."""
import json
import os
import time

import pytest

from fink_ingest import runs
from fink_ingest.cli import main


def no_spark(config):
    raise AssertionError("Spark must not start: the preflight should have stopped the push")


def error_lines(err):
    return [line for line in err.splitlines() if line.startswith("fink_push: error:")]


def test_missing_java_stops_before_spark(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    t0 = time.monotonic()
    code = main(no_spark, ["--night", "2024-01-15", "--store", str(tmp_path / "s"), "--work-dir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 1 and time.monotonic() - t0 < 5
    assert error_lines(err) == [line for line in err.splitlines() if line.strip()]   # nothing but the one line
    assert "has no bin/java: Spark needs Java 17" in err and "Traceback" not in err


def test_unwritable_store_stops_before_spark(tmp_path, capsys):
    code = main(no_spark, ["--night", "2024-01-15", "--store", "/proc/fink-store", "--work-dir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 1 and len(error_lines(err)) == 1
    assert "store /proc/fink-store: cannot create the directory" in err and "choose another --store" in err


def test_a_disk_full_mid_night_is_one_line_and_a_summary(spark, datasim, tmp_path, capsys, monkeypatch):
    """The store's disk fills while the main table is written: one line naming the night, the
    table and the fix; the night's summary.json says it failed; the staging is gone."""
    from fink_ingest.store.sqlite import SQLiteStore

    connect = SQLiteStore.connect

    def small_disk(path):
        conn = connect(path)
        if str(path).endswith("/ztf.sqlite"):
            conn.execute("PRAGMA max_page_count=40")  # SQLite then fails as on a full disk
        return conn

    monkeypatch.setattr(SQLiteStore, "connect", staticmethod(small_disk))
    code = main(lambda c: spark, ["--night", "2024-01-15", "--datalake", str(datasim / "ztf" / "archive"),
                                  "--store", str(tmp_path / "s"), "--work-dir", str(tmp_path / "w"), "--tables", "main"])
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert code == 1 and len(lines) == 1 and "Traceback" not in err
    assert "night 2024-01-15: table ztf: put of" in lines[0] and "is full: free space, or move the store" in lines[0]
    (summary_path,) = (tmp_path / "w").glob("runs/*/20240115/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["ok"] is False and "is full" in summary["problems"][0]
    assert not list((tmp_path / "w").glob("runs/*/*/staging"))


def test_one_writer_per_table_through_the_command(spark, datasim, tmp_path, capsys):
    from fink_ingest.store import open_store

    store = open_store(str(tmp_path / "s"))
    store.create_table("ztf", ["i", "d"])
    with store.writing(["ztf"], "bin/fink_push, night 2024-01-14"):
        code = main(lambda c: spark, ["--night", "2024-01-15", "--datalake", str(datasim / "ztf" / "archive"),
                                      "--store", str(tmp_path / "s"), "--work-dir", str(tmp_path / "w"),
                                      "--tables", "main"])
    lines = error_lines(capsys.readouterr().err)
    assert code == 1 and len(lines) == 1
    assert f"table ztf is being written by pid {os.getpid()}" in lines[0] and "night 2024-01-14" in lines[0]


def test_runs_never_share_a_directory_and_killed_runs_leave_no_staging(tmp_path):
    first, second = runs.claim_run_dir(tmp_path), runs.claim_run_dir(tmp_path)
    assert first.local != second.local and first.local.name.split("-")[1] == str(os.getpid())
    dead = tmp_path / "runs" / "20240101T000000-999999"     # a run killed earlier (no such process)
    (dead / "20240101" / "staging" / "alerts").mkdir(parents=True)
    (dead / "20240101" / "rejects").mkdir()
    (dead / runs.OWNER).write_text(json.dumps({"host": os.uname().nodename, "pid": 999999, "shared": str(dead)}))
    (first.local / "20240101" / "staging").mkdir(parents=True)    # a live run's (this process)
    removed = runs.clean_stale_staging(tmp_path)
    assert removed == [str(dead / "20240101" / "staging")]
    assert (dead / "20240101" / "rejects").exists() and (first.local / "20240101" / "staging").exists()


def test_verbose_shows_the_traceback(tmp_path, capsys, monkeypatch):
    def broken(config):
        raise RuntimeError("something nobody foresaw")

    code = main(broken, ["--night", "2024-01-15", "--store", str(tmp_path / "s"), "--work-dir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "unexpected RuntimeError: something nobody foresaw (a defect" in error_lines(err)[0]
    log = next((tmp_path / "w").glob("runs/*/push.log")).read_text()
    assert "Traceback" in log
    code = main(broken, ["--night", "2024-01-15", "--store", str(tmp_path / "s"), "--work-dir", str(tmp_path / "w"),
                         "--verbose"])
    assert code == 1 and "Traceback" in capsys.readouterr().err



def test_a_night_the_disk_cannot_hold_is_refused_before_it_is_read(spark, datasim, tmp_path, monkeypatch):
    import shutil

    from fink_ingest import paths
    from fink_ingest.errors import StoreError
    from fink_ingest.push import push_night
    from fink_ingest.store import open_store
    from conftest import make_config

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=2_000_000))
    config = make_config(datasim / "ztf" / "archive", tmp_path / "s", tmp_path / "w")
    t0 = time.monotonic()
    with pytest.raises(StoreError, match=r"night 2024-01-15: about 1\d\.\d MB must be free on the disk of .*"
                                         r"estimated from 3\.\d MB of input; 2\.0 MB free: free space"):
        push_night(spark, config, open_store(config.store), paths.parse_night("2024-01-15"))
    assert time.monotonic() - t0 < 10
    assert open_store(config.store).table("ztf").count() == 1   # nothing but the schema row
