"""The journal of whole-table rebuilds: which tables are being rebuilt, by which command.

``--upgrade`` and ``--rebuild TABLE --all-nights`` drop tables and fill them again from every
night of the datalake. Before dropping anything they write one row per table into the journal
table ``<prefix>.journal`` (key: the builder name; cell ``d:command``), and delete it once the
table is whole again; the journal table goes when empty. A rebuild cut short (a kill, a
failure) leaves its rows: pushes and readers refuse those tables, naming the command, and the
same command, run again, drops and rebuilds them. The journal is a table so that it lives
wherever the store does (a directory or HBase).
"""
from __future__ import annotations

import datetime as dt

from fink_ingest.errors import LayoutError

FAMILY = "d"


def table_name(config):
    """Name of the journal table, ``<prefix>.journal`` (str)."""
    return f"{config.table_prefix}.journal"


def pending(store, config):
    """Tables whose whole rebuild has not finished: dict of builder name to command (str)."""
    name = table_name(config)
    if name not in store.tables():
        return {}
    return {key.decode(): cells.get(f"{FAMILY}:command".encode(), b"").decode()
            for key, cells in store.table(name).scan()}


def begin(store, config, kinds, command):
    """Record that ``kinds`` (builder names) are about to be rebuilt whole by ``command``."""
    table = store.ensure_table(table_name(config), [FAMILY])
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    table.put_batch([(kind.encode(), {f"{FAMILY}:command".encode(): command.encode(),
                                      f"{FAMILY}:started".encode(): started.encode()}) for kind in kinds])


def end(store, config, kinds):
    """Record that ``kinds`` are whole again; drop the journal once empty."""
    name = table_name(config)
    if name not in store.tables():
        return
    table = store.table(name)
    for kind in kinds:
        table.delete(kind.encode())
    if not any(True for _ in table.scan(limit=1)):
        store.drop_table(name)


def check(store, config, kind, table_name_):
    """Refuse a table whose whole rebuild has not finished.

    Raises
    ------
    LayoutError
        Naming the table and the command that completes the rebuild.
    """
    command = pending(store, config).get(kind)
    if command is not None:
        raise LayoutError(f"table {table_name_}: being rebuilt whole, or its rebuild was cut short; "
                          f"run `{command}` (again) to complete it")
