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
from fink_ingest.errors import LayoutError, SchemaError

META_PREFIX = "__"            # qualifiers of the schema row that are not columns
LAYOUT = "__rowkey"           # qualifier of the key-layout cell


def read(table, version):
    """Types recorded in a table's schema row: dict of ``family:qualifier`` (str) to type name
    (the layout cell left out), in the order of the names (as HBase returns cells)."""
    row = table.row(rowkeys.schema_row_key(version))
    types = {k.decode(): v.decode() for k, v in row.items()}
    return {k: types[k] for k in sorted(types) if not k.split(":", 1)[-1].startswith(META_PREFIX)}


def reconcile(stored, new_types, present):
    """Types to write a night's cells with, the schema-row cells that change, and what
    changed, said plainly (schema drift is never silent).

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
    (dict of str to str, dict of str to str, dict)
        Types to encode each column with (the night's own type for numbers of the recorded
        kind, else the recorded type); schema-row cells to put; notes: ``new`` (list of new
        columns, typed in the schema row), ``widened`` (column -> "old -> new": numbers to a
        wider number, lossless), ``as_text`` (column -> what: a text column given numbers or
        other values, written as their text, lossless), ``set_aside`` (column -> why: a type
        the stored cells cannot follow; the night's values of it are not written).
    """
    write, changed = {}, {}
    notes = {"new": [], "widened": {}, "as_text": {}, "set_aside": {}}
    for name, new in new_types.items():
        if name not in present:
            continue
        old = stored.get(name)
        try:
            final = cellcodec.promote(name, old, new)
        except SchemaError:
            notes["set_aside"][name] = (
                f"stored as {old}, this night has {new}: the stored cells could not be read under one type, so "
                f"this night's values are not written; correct the type upstream, or rebuild the table with "
                f"--rebuild TABLE --all-nights to store the column under the new type")
            continue
        # Numbers of the same kind are written at the night's own width (decoders read the
        # width from the cell), so a night's cells do not depend on which nights came first.
        same_kind = cellcodec.kind(new) == cellcodec.kind(final) in ("integer", "floating")
        write[name] = new if same_kind else final
        if old is None:
            if stored:  # a column new to a table that has a schema (the first push is not drift)
                notes["new"].append(name)
        elif final != old:
            notes["widened"][name] = f"{old} -> {final}"
        elif final != new and cellcodec.kind(final) == "text" and cellcodec.kind(new) != "text":
            notes["as_text"][name] = f"stored as {old}, this night's {new} values written as text"
        if old != final:
            changed[name] = final
    return write, changed, {k: v for k, v in notes.items() if v}


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


def check_layout(table, version, family, layout, kind, write=False):
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

    Raises
    ------
    LayoutError
        If the table holds rows of another layout or version; the message names the table
        and the command to run.
    """
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
