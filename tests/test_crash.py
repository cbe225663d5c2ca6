"""Kill -9 at any moment: the same command, run again, brings the store to exactly the clean
result, and nothing is left wedged (no half-made table, no staging left behind).

``bin/fink_push`` runs the real night 2024-01-15 (every table) in a subprocess of its own
process group; the group (the Python driver and Spark's JVM) is killed with SIGKILL at
moments spread over the push: during start-up and table creation, the Spark count and
staging, each table's writes, the history, the statistics, the summary. Runs are chained
(each one starts from what the killed one before it left); after every few kills the command
runs to its end and every table must equal a clean push's, cell for cell. Whole-table
rebuilds are killed too. About 4 minutes.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from fink_ingest.store import open_store

NIGHT = "2024-01-15"
KILLS_PER_CHECK = 8   # killed runs between two complete runs (each compared with the clean push)


def command(store, work, *extra):
    return [str(ROOT / "bin" / "fink_push"), "--night", NIGHT, "--store", str(store), "--work-dir", str(work),
            *extra]


def run(cmd, kill_after=None):
    """Run a command in its own process group; with ``kill_after`` (s), SIGKILL the whole group
    then. Returns (exit code or None if killed, seconds it ran)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            cwd=ROOT, env={**os.environ, "PYTHON": sys.executable})
    try:
        proc.wait(timeout=kill_after if kill_after is not None else 600)
        return proc.returncode, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None, time.monotonic() - t0


def snapshot(path):
    store = open_store(str(path))
    return {name: list(store.table(name).scan()) for name in store.tables()}


def leftovers(store, work):
    """What a killed run must not leave once the command completed: half-made table files,
    a rebuild journal, staging data."""
    return (sorted(p.name for p in store.glob(".*.tmp-*")) + sorted(p.name for p in store.glob("*.journal.sqlite"))
            + sorted(str(p) for p in work.glob("runs/*/*/staging")))


@pytest.fixture(scope="module")
def clean(tmp_path_factory, datasim):
    """A clean push of the night, and how long the command took."""
    base = tmp_path_factory.mktemp("crash_clean")
    code, seconds = run(command(base / "store", base / "work"))
    assert code == 0
    return snapshot(base / "store"), seconds


def test_kill_at_any_moment_of_a_push_then_the_same_command_completes_it(clean, tmp_path):
    expected, seconds = clean
    store, work = tmp_path / "store", tmp_path / "work"
    # start-up and table creation (the first second), then spread over the whole push
    moments = [0.4, 0.7, 1.0, 1.4] + [seconds * (0.08 + 0.82 * i / 19) for i in range(20)]
    killed = 0
    for i, moment in enumerate(moments, 1):
        code, _ = run(command(store, work), kill_after=moment)
        killed += code is None
        assert code in (None, 0), f"a run after a kill failed (exit {code}) at {moment:.1f} s"
        if i % KILLS_PER_CHECK == 0 or i == len(moments):
            code, _ = run(command(store, work))
            assert code == 0, f"the command run again after the kill at {moment:.1f} s failed"
            assert snapshot(store) == expected, f"tables differ from a clean push after the kill at {moment:.1f} s"
            assert leftovers(store, work) == []
    assert killed >= 20


def test_kill_during_whole_table_rebuilds_then_the_same_command_completes_it(clean, tmp_path):
    """``--rebuild TABLE --all-nights`` and ``--upgrade`` drop tables and fill them again: killed
    half-way, the tables are refused (journal) until the same command completes them."""
    from fink_ingest.config import load_config
    from fink_ingest.read import Reader
    from fink_ingest.errors import LayoutError

    expected, seconds = clean
    store, work = tmp_path / "store", tmp_path / "work"
    assert run(command(store, work))[0] == 0
    rebuild = [str(ROOT / "bin" / "fink_push"), "--rebuild", "sky", "--all-nights",
               "--store", str(store), "--work-dir", str(work)]
    for moment in (seconds * 0.3, seconds * 0.6):
        code, ran = run(rebuild, kill_after=moment)
        if code is None:
            config = load_config(None, store=str(store))
            if "ztf.journal" in open_store(str(store)).tables():
                with pytest.raises(LayoutError, match=r"ztf.sky: being rebuilt whole.*--rebuild sky --all-nights"):
                    Reader(open_store(str(store)), config).conesearch(97.2307, 3.9413, 5)
                assert run(command(store, work))[0] == 1       # a push waits for the rebuild to complete
    assert run(rebuild)[0] == 0
    assert snapshot(store) == expected and leftovers(store, work) == []
