"""Run directories: one per process, owned by it, and the staging of killed runs cleaned.

Each ``fink_push`` keeps its log and summaries in a directory no other process shares,
``<work_dir>/runs/<time>-<pid>[-<n>]`` (for a work directory on a cluster file system, a
local directory of the same name, copied there at the end), and Spark writes the run's
staging and rejects under the same name in the work directory (``workdir.RunDir``). Its
``.owner`` file names the host, the pid and the work-directory location, so a later run on
the same host removes the staging a killed run left behind (``clean_stale_staging``), through
the file system it is on, keeping its logs and rejects.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time

from fink_ingest import workdir

log = logging.getLogger(__name__)
OWNER = ".owner"   # file of a run directory: {"host", "pid", "shared"} of the run that made it


def claim_run_dir(work_dir):
    """Create the run directory of this process under ``work_dir`` (a path or URI).

    Returns
    -------
    fink_ingest.workdir.RunDir
        Its local part created and owned (``.owner``); the pid tells processes apart, a
        suffix ``-n`` runs of one process in one second.

    Raises
    ------
    OSError
        If the local directory cannot be written.
    """
    base = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    for n in range(1, 10_000):
        run = workdir.run_dirs(work_dir, base if n == 1 else f"{base}-{n}")
        run.local.parent.mkdir(parents=True, exist_ok=True)
        try:
            run.local.mkdir()
        except FileExistsError:
            continue
        (run.local / OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                                   "shared": run.shared}))
        return run
    raise FileExistsError(f"{work_dir}: no free run directory name for {base}")


def clean_stale_staging(work_dir, spark=None):
    """Remove the staging of runs whose process is gone (killed), started on this host.

    Parameters
    ----------
    work_dir : str
        The work directory (a path or URI); its runs' local parts are looked at.
    spark : pyspark.sql.SparkSession, optional
        Needed to remove staging on a cluster file system (skipped without it).

    Returns
    -------
    list of str
        Staging locations removed.
    """
    removed = []
    local_runs = workdir.run_dirs(work_dir, "x").local.parent
    for owner in local_runs.glob(f"*/{OWNER}"):
        try:
            facts = json.loads(owner.read_text())
            if facts["host"] != socket.gethostname() or pid_alive(facts["pid"]):
                continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        shared = facts.get("shared", str(owner.parent))
        if workdir.is_local(shared):
            stagings = [str(p) for p in workdir.local_path(shared).glob("*/staging")]
        elif spark is not None:
            stagings = [workdir.join(shared, p.name, "staging") for p in owner.parent.iterdir() if p.is_dir()]
        else:
            continue
        stagings += [str(p) for p in owner.parent.glob("*/staging-copy")]
        for staging in stagings:
            try:
                workdir.delete(spark, staging)
                removed.append(staging)
            except Exception as exc:  # noqa: BLE001 - a cleanup failure is only reported
                log.warning("staging %s of a killed run not removed: %s", staging, exc)
    if removed:
        log.info("removed the staging of run(s) killed earlier: %s", ", ".join(removed))
    return removed


def pid_alive(pid):
    """True if a process of this pid (int or text) runs on this machine."""
    try:
        os.kill(int(pid), 0)
    except ValueError:
        return False
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
