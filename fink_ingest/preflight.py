"""Checks made before Spark starts, so that a push that cannot succeed stops in seconds.

``preflight`` checks that Java is there (Spark needs it), that the store is reachable and
writable, and creates or checks every table the command writes (key layout, unfinished
rebuilds). The free space a night needs is checked per night, from its footers, before the
night is read (``push.night``).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from fink_ingest.errors import FinkIngestError, LayoutError



def check_java():
    """Raise if no Java runtime can start Spark (skipped under spark-submit, which started it).

    Raises
    ------
    FinkIngestError
        Naming what to install or set.
    """
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        return
    home = os.environ.get("JAVA_HOME")
    if home and not (Path(home) / "bin" / "java").exists():
        raise FinkIngestError(f"JAVA_HOME={home} has no bin/java: Spark needs Java 17; set JAVA_HOME to a Java 17 "
                              "installation, or unset it to use the java on PATH")
    if not home and shutil.which("java") is None:
        raise FinkIngestError("Java not found: Spark needs Java 17 (e.g. apt-get install openjdk-17-jre-headless, "
                              "or set JAVA_HOME)")


def preflight(store, config, kinds, rebuilding=False):
    """Everything a push needs that can be checked before Spark starts.

    Parameters
    ----------
    store : fink_ingest.store.base.Store
    config : fink_ingest.config.Config
    kinds : list of str
        Tables the command writes (builder names); they are created or checked.
    rebuilding : bool
        The command rebuilds tables whole (``--upgrade``, ``--all-nights``): their layout
        and journal state are its business.

    Raises
    ------
    FinkIngestError
        Java missing, or the store unreachable or read-only (``StoreError``), or a table of
        another key layout or half rebuilt (``LayoutError``).
    """
    from fink_ingest.push import stale_tables
    from fink_ingest.push.checks import open_tables
    from fink_ingest.tables import BUILDERS

    check_java()
    store.check_writable()
    if rebuilding:
        return
    stale = stale_tables(store, config, kinds)
    if len(stale) == 1:
        raise LayoutError(next(iter(stale.values())))
    if stale:
        raise LayoutError(f"{len(stale)} tables written with an older row-key layout or not fully rebuilt "
                          f"({', '.join(BUILDERS[k].table_name(config.table_prefix) for k in stale)}): "
                          "upgrade the store with bin/fink_push --upgrade (rebuilds them from the datalake)")
    open_tables(store, [BUILDERS[k] for k in kinds], config)
