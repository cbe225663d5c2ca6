"""The push on a real Spark cluster whose worker has a disk of its own, as on any
multi-machine cluster, and work directories on other file systems.

A Spark standalone master and worker run on this machine; the worker runs in a mount
namespace of its own (``unshare -m``) where the work directory is another, empty directory
(a bind mount), so what its executors write there, the driver never sees. The push is
submitted as the README's cluster recipe says (``spark-submit --py-files fink_ingest.zip
jobs/fink_push.py ...``):

- into HBase (the Thrift double), the executors write every table straight from their
  partitions: the tables equal a local push's, table for table;
- into the embedded store, the driver must read what the executors staged: it sees nothing,
  and stops the night with a message naming the work directory and the fix, writing nothing.

Skipped, with the reason, where mount namespaces are not permitted. About 2 minutes.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, make_config
from fink_ingest import paths
from fink_ingest.push import push_night
from fink_ingest.store import open_store

SPARK_BIN = Path(__import__("pyspark").__file__).parent / "bin"


def unshare_prefix():
    """The command prefix giving a process a mount namespace of its own, or None."""
    for prefix in (["unshare", "-m", "--propagation", "private"], ["unshare", "-r", "-m", "--propagation", "private"]):
        try:
            if subprocess.run(prefix + ["true"], capture_output=True, timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            pass
    return None


def snapshot(store):
    return {name: list(store.table(name).scan()) for name in store.tables()}


def wait_for(path, text, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not in {path} after {seconds} s:\n{path.read_text(errors='replace')[-2000:]}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(master URL, work directory): a standalone master, and a worker whose view of the
    work directory is a private directory of its own."""
    prefix = unshare_prefix()
    if prefix is None:
        pytest.skip("mount namespaces (unshare -m) are not permitted here: the own-disk worker cannot be made")
    from hbase_double import free_port

    base = tmp_path_factory.mktemp("cluster")
    work, private = base / "work", base / "worker_disk"
    work.mkdir()
    private.mkdir()
    port = free_port()
    master_log, worker_log = base / "master.log", base / "worker.log"
    procs = [subprocess.Popen([str(SPARK_BIN / "spark-class"), "org.apache.spark.deploy.master.Master", "--host",
                               "127.0.0.1", "--port", str(port), "--webui-port", str(free_port())],
                              stdout=open(master_log, "w"), stderr=subprocess.STDOUT, start_new_session=True)]
    try:
        wait_for(master_log, "I have been elected leader")
        worker = (f"mount --bind {private} {work} && exec {SPARK_BIN / 'spark-class'} "
                  f"org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --webui-port {free_port()} --cores 2 "
                  f"--memory 2g --work-dir {base / 'worker_apps'} spark://127.0.0.1:{port}")
        procs.append(subprocess.Popen(prefix + ["bash", "-c", worker], stdout=open(worker_log, "w"),
                                      stderr=subprocess.STDOUT, start_new_session=True))
        wait_for(worker_log, "Successfully registered with master")
        yield f"spark://127.0.0.1:{port}", work, private
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def submit(master, store, work, night="2024-01-15"):
    """The README's cluster recipe: the package zipped, then spark-submit of the push job."""
    zipped = Path(work).parent / "fink_ingest.zip"
    if not zipped.exists():
        shutil.make_archive(str(zipped.with_suffix("")), "zip", ROOT, "fink_ingest")
    return subprocess.run([str(SPARK_BIN / "spark-submit"), "--master", master, "--py-files", str(zipped),
                           str(ROOT / "jobs" / "fink_push.py"), "--night", night, "--store", store,
                           "--work-dir", str(work)], capture_output=True, text=True, timeout=600)


def test_executors_with_their_own_disk_write_hbase_tables_equal_to_a_local_push(cluster, real_night_push, tmp_path):
    from hbase_double import free_port

    config, local, _ = real_night_push
    if local.executor_writes:
        pytest.skip("compared with the embedded store's push")
    master, work, private = cluster
    port = free_port()
    double = subprocess.Popen([sys.executable, str(ROOT / "tests" / "hbase_double.py"), str(tmp_path), str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert double.stdout.readline().strip() == "serving"
        done = submit(master, f"hbase://127.0.0.1:{port}", work)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "night 2024-01-15: OK" in done.stdout
        assert snapshot(open_store(f"hbase://127.0.0.1:{port}")) == snapshot(local)
        assert not list(private.glob("runs/*/*/staging*"))   # nothing was staged on the worker's disk
    finally:
        double.kill()


def test_a_work_directory_the_nodes_do_not_share_stops_the_night_and_writes_nothing(cluster, tmp_path):
    master, work, private = cluster
    done = submit(master, str(tmp_path / "store"), work)
    assert done.returncode == 1
    # spark-submit's Python runner merges the driver's stderr into its stdout
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("fink_push: error:")]
    assert len(errors) == 1
    assert (f"the executors wrote 849 staged rows (alerts) under the work directory ({work}/runs/" in errors[0]
            and "but the driver sees 0" in errors[0] and "give --work-dir such a URI" in errors[0]
            and "nothing was written for this night" in errors[0])
    store = open_store(str(tmp_path / "store"))
    assert {name: store.table(name).count() for name in store.tables()} == dict.fromkeys(store.tables(), 1)  # schema rows
    assert list(private.glob("runs/*/*/staging"))            # the executors did stage, on their own disk


def test_a_file_uri_work_directory(spark, datasim, real_night_push, tmp_path):
    config, local, _ = real_night_push
    if local.executor_writes:
        pytest.skip("compared with the embedded store's push")
    uri = f"file://{tmp_path / 'work'}"
    conf = make_config(datasim / "ztf" / "archive", tmp_path / "store", uri)
    assert conf.work_dir == uri
    summary = push_night(spark, conf, open_store(conf.store), paths.parse_night("2024-01-15"))
    assert summary["ok"] and snapshot(open_store(conf.store)) == snapshot(local)
    assert not (tmp_path / "file:").exists() and not list((tmp_path / "work").glob("runs/*/staging"))


def test_an_unreachable_hdfs_work_directory_stops_in_seconds(spark, datasim, tmp_path, capsys):
    from fink_ingest.cli import main
    from hbase_double import free_port

    t0 = time.monotonic()
    code = main(lambda c: spark, ["--night", "2024-01-15", "--datalake", str(datasim / "ztf" / "archive"),
                                  "--store", str(tmp_path / "s"),
                                  "--work-dir", f"hdfs://127.0.0.1:{free_port()}/fink/work"])
    err = capsys.readouterr().err
    assert code == 1 and time.monotonic() - t0 < 30
    assert "fink_push: error: work directory hdfs://127.0.0.1:" in err and "give another --work-dir" in err
    assert not Path("hdfs:").exists() and not (ROOT / "hdfs:").exists()
