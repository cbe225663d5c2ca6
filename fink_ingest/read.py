"""Read layer: queries -> store scans -> pandas DataFrames with Fink's column names.

Cells are decoded with the table's schema row (``schemarow``), so every value comes back
as the datalake held it: ``i:jd`` a float64, ``i:candid`` an int64, nested values parsed
from JSON.
"""
from __future__ import annotations

import re

import pandas as pd

from fink_ingest import cells as cellcodec
from fink_ingest import schemarow
from fink_ingest.errors import QueryError
from fink_ingest.rowkeys import SCHEMA_ROW_PREFIX, SEP

# ZTF object ids: "ZTF" + 2-digit year + 7 lowercase letters (ZTF alert documentation).
ZTF_OBJECT_ID = re.compile(r"^ZTF\d{2}[a-z]{7}$")


def decode_rows(rows, types, columns=None):
    """Decode ``(key, cells)`` rows into a DataFrame.

    Parameters
    ----------
    rows : list of (bytes, dict of bytes to bytes)
    types : dict of str to str
        Schema-row types, ``family:qualifier`` -> type name.
    columns : list of str, optional
        Columns to return, in this order; default every column present.

    Returns
    -------
    pandas.DataFrame, shape (len(rows), n_columns)
        Index: the row keys (str). Absent cells are None/NaN.

    Raises
    ------
    QueryError
        If a requested column is not in the schema row.
    """
    if columns is not None:
        unknown = [c for c in columns if c not in types]
        if unknown:
            raise QueryError(f"columns: {unknown} unknown; known columns: {sorted(types)}")
        names = list(columns)
    else:
        seen = {}
        for _, cells in rows:
            for q in cells:
                seen.setdefault(q.decode(), None)
        names = [n for n in types if n in seen] + [n for n in seen if n not in types]
    data = {}
    for name in names:
        raw = [cells.get(name.encode()) for _, cells in rows]
        type_name = types.get(name)
        if type_name is None:
            raise QueryError(f"column {name!r} has cells but no type in the schema row")
        data[name] = cellcodec.decode_column(raw, type_name)
    return pd.DataFrame(data, index=[k.decode() for k, _ in rows], columns=names)


class Reader:
    """Queries over the tables of one store.

    Parameters
    ----------
    store : fink_ingest.store.base.Store
    config : fink_ingest.config.Config
        Gives the table prefix and the survey (column roles, schema version).
    """

    def __init__(self, store, config):
        self.store = store
        self.config = config
        self.survey = config.survey

    def types(self, table_name):
        """Schema-row types of a table (dict)."""
        return schemarow.read(self.store.table(table_name), self.survey.schema_version)

    def objects(self, object_ids, columns=None):
        """Every alert of the object(s), sorted by time.

        Parameters
        ----------
        object_ids : str or list of str
            Object ids (``objectId``), e.g. ``"ZTF24aaaaaaa"``.
        columns : list of str, optional
            ``family:qualifier`` names, e.g. ``["i:jd", "i:magpsf"]``.

        Returns
        -------
        pandas.DataFrame
            One row per alert; empty if the object does not exist.

        Raises
        ------
        QueryError
            If an object id is malformed or a column unknown.
        """
        if isinstance(object_ids, str):
            object_ids = [object_ids]
        for oid in object_ids:
            if not oid or SEP in oid or oid.startswith(SCHEMA_ROW_PREFIX):
                raise QueryError(f"objectId {oid!r} is not a valid object id")
        table_name = self.config.table_prefix
        if table_name not in self.store.tables():
            return pd.DataFrame()
        table = self.store.table(table_name)
        want = None if columns is None else [c.encode() for c in columns]
        rows = []
        for oid in object_ids:
            rows.extend(table.scan(prefix=f"{oid}{SEP}".encode(), columns=want))
        return decode_rows(rows, self.types(table_name), columns)
