"""The schema row of a table: one cell per column holding its type, so readers decode cells.

Key ``schema_<version>`` (the survey file's ``schema_version``); cell ``family:qualifier``
holds the type name (``double``, ``int``, ``string``, ``struct<...>``, ...), as Fink's
schema rows do. The row is merged, never rewritten: a new column adds a cell, a widened
numeric type replaces one (see ``cells.promote``). It is written before the data cells it
describes, so a reader never meets a cell it cannot decode.
"""
from __future__ import annotations

from fink_ingest import cells as cellcodec
from fink_ingest.rowkeys import schema_row_key


def read(table, version):
    """Types recorded in a table's schema row: dict of ``family:qualifier`` (str) to type name."""
    row = table.row(schema_row_key(version))
    return {k.decode(): v.decode() for k, v in row.items()}


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
        table.put(schema_row_key(version), {k.encode(): v.encode() for k, v in changed.items()})
