"""Arrow's allocator setting (``fink_ingest/__init__.py``): set before pyarrow loads, the
operator's own value kept."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = ("import os, sys; import fink_ingest; "
         "print(os.environ.get('MIMALLOC_PURGE_DELAY'), 'pyarrow' in sys.modules)")


def _probe(**env):
    base = {k: v for k, v in os.environ.items() if k != "MIMALLOC_PURGE_DELAY"}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                          env={**base, "PYTHONPATH": str(ROOT), **env})
    return done.stdout.split()


def test_package_keeps_freed_pages_and_sets_it_before_pyarrow_loads():
    # mimalloc reads its options when pyarrow is first imported: importing the package must
    # set the option without importing pyarrow, or the setting comes too late to count
    assert _probe() == ["-1", "False"]


def test_operator_setting_wins():
    assert _probe(MIMALLOC_PURGE_DELAY="10") == ["10", "False"]
