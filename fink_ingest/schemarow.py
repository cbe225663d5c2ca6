"""The schema row of a table: one cell per column holding its type, so readers decode cells,
and the table's row-key layout, so a store written with another layout is recognised.

Key ``schema_<version>`` (the survey file's ``schema_version``); cell ``family:qualifier``
holds the type name (``double``, ``int``, ``string``, ``struct<...>``, ...), as Fink's
schema rows do. One more cell, ``<family>:__rowkey``, holds the description of the key
layout (``rowkeys.describe``), written when the table is opened for a push. The row is
merged, never rewritten: a new column adds a cell, a widened numeric type replaces one (see
``cells.promote``). It is written before the data cells it describes, so a reader never
meets a cell it cannot decode.
"""
from __future__ import annotations

from fink_ingest import cells as cellcodec
from fink_ingest import rowkeys
from fink_ingest.errors import LayoutError

META_PREFIX = "__"            # qualifiers of the schema row that are not columns
LAYOUT = "__rowkey"           # qualifier of the key-layout cell
PENDING = "__pending"         # qualifier of the cell marking a table being rebuilt whole


def read(table, version):
    """Types recorded in a table's schema row: dict of ``family:qualifier`` (str) to type name
    (the layout cell left out), in the order of the names (as HBase returns cells)."""
    row = table.row(rowkeys.schema_row_key(version))
    types = {k.decode(): v.decode() for k, v in row.items()}
    return {k: types[k] for k in sorted(types) if not k.split(":", 1)[-1].startswith(META_PREFIX)}


def reconcile(stored, new_types, present):
    """Types to write a night's cells with, and the schema-row cells that change.

    Parameters
    ----------
    stored : dict of str to str
        Types already in the schema row.
    new_types : dict of str to str
        Types of the night's columns.
    present : set of str
        Columns with at least one non-null value this night (only they produce cells).

    Returns
    -------
    (dict of str to str, dict of str to str)
        Types to encode each present column with (the night's own type for numbers of the
        recorded kind, else the recorded type); schema-row cells to put.

    Raises
    ------
    SchemaError
        If a column's type changed in a way old cells cannot follow.
    """
    write, changed = {}, {}
    for name, new in new_types.items():
        if name not in present:
            continue
        final = cellcodec.promote(name, stored.get(name), new)
        # Numbers of the same kind are written at the night's own width (decoders read the
        # width from the cell), so a night's cells do not depend on which nights came first.
        same_kind = cellcodec.kind(new) == cellcodec.kind(final) in ("integer", "floating")
        write[name] = new if same_kind else final
        if stored.get(name) != final:
            changed[name] = final
    return write, changed


def put(table, version, changed):
    """Merge changed type cells into the schema row."""
    if changed:
        table.put(rowkeys.schema_row_key(version), {k.encode(): v.encode() for k, v in changed.items()})


def recorded_layout(table, version, family):
    """What a table says of its key layout.

    Returns
    -------
    (str or None, str or None)
        ``(layout, found_version)``: the layout cell of ``schema_<version>`` and ``version``;
        or, without such a row, ``(None, other)`` where ``other`` is the version of another
        schema row if the table holds rows (an older layout), else ``(None, None)`` (empty).
    """
    row = table.row(rowkeys.schema_row_key(version))
    if row:
        cell = row.get(f"{family}:{LAYOUT}".encode())
        return (cell.decode() if cell is not None else None), version
    if not any(True for _ in table.scan(limit=1)):
        return None, None
    for other, _ in table.scan(prefix=rowkeys.SCHEMA_ROW_PREFIX.encode(), limit=1):
        return None, other.decode()[len(rowkeys.SCHEMA_ROW_PREFIX):]
    return None, "unknown (no schema row)"


def mark_pending(table, version, family, command):
    """Mark a table as being rebuilt whole by ``command`` (str): until ``clear_pending``,
    ``check_layout`` refuses it, so a rebuild or upgrade cut short is never taken as complete."""
    table.put(rowkeys.schema_row_key(version), {f"{family}:{PENDING}".encode(): command.encode()})


def clear_pending(table, version, family):
    """Remove the mark of ``mark_pending`` (the rebuild is complete)."""
    table.delete(rowkeys.schema_row_key(version), columns=[f"{family}:{PENDING}".encode()])


def check_layout(table, version, family, layout, kind, write=False, pending_ok=False):
    """Refuse a table written with another key layout; record the layout of a new one.

    Parameters
    ----------
    table : fink_ingest.store.base.Table
    version : str
        The survey file's ``schema_version``.
    family : str
        Family of the layout cell (the table's first).
    layout : str
        This version's layout of the table (``TableBuilder.key_layout``).
    kind : str
        Builder name, for the message (``--rebuild KIND``).
    write : bool
        Record the layout if the table has none yet (a push about to write it).
    pending_ok : bool
        Accept a table marked as being rebuilt (``mark_pending``): the rebuild itself.

    Raises
    ------
    LayoutError
        If the table holds rows of another layout or version, or a whole-table rebuild of it
        did not finish; the message names the table and the command to run.
    """
    if not pending_ok:
        mark = table.row(rowkeys.schema_row_key(version), columns=[f"{family}:{PENDING}".encode()])
        if mark:
            command = next(iter(mark.values())).decode()
            raise LayoutError(f"table {table.name}: being rebuilt whole, or its rebuild was cut short; "
                              f"run `{command}` (again) to complete it")
    found, found_version = recorded_layout(table, version, family)
    if found == layout or (found is None and found_version is None) \
            or (found is None and found_version == version):
        if write and found is None:
            table.put(rowkeys.schema_row_key(version), {f"{family}:{LAYOUT}".encode(): layout.encode()})
        return
    what = f"layout {found!r}" if found else f"schema version {found_version!r}"
    raise LayoutError(
        f"table {table.name}: written with row-key {what}; this version writes {version!r}, "
        f"layout {layout!r}. Upgrade the store: bin/fink_push --upgrade (rebuilds every such table "
        f"from the datalake), or bin/fink_push --rebuild {kind} --all-nights for this table alone")
