"""Run directories: one per process, owned by it, and the staging of killed runs cleaned.

Each ``fink_push`` writes its log, summaries, rejects and staging under
``<work_dir>/runs/<time>-<pid>/``, a directory no other process shares. Its ``.owner`` file
names the host and pid, so a later run on the same host removes the staging data a killed run
left behind (``clean_stale_staging``), keeping its logs and rejects.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)
OWNER = ".owner"   # file of a run directory: "<host> <pid>" of the process that made it


def claim_run_dir(work_dir):
    """Create a run directory of this process, ``<work_dir>/runs/<time>-<pid>[-<n>]``, that no
    other run shares (the pid tells processes apart, ``n`` runs of one process in one second),
    owned through ``.owner`` (host and pid). Returns its Path.

    Raises
    ------
    OSError
        If the work directory cannot be written.
    """
    base = Path(work_dir) / "runs" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        run_dir = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        (run_dir / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}")
        return run_dir
    raise FileExistsError(f"{base}: no free run directory name")


def clean_stale_staging(work_dir):
    """Remove the staging data of runs whose process is gone (killed), on this host.

    Returns
    -------
    list of Path
        Staging directories removed.
    """
    removed = []
    host = socket.gethostname()
    for owner in Path(work_dir).glob(f"runs/*/{OWNER}"):
        try:
            their_host, pid = owner.read_text().split()
            if their_host != host or pid_alive(pid):
                continue
        except (OSError, ValueError):
            continue
        for staging in owner.parent.glob("**/staging"):
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
    if removed:
        log.info("removed the staging of %d run(s) killed earlier", len(removed))
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
