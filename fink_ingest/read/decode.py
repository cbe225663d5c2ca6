"""Decoding store rows into DataFrames, and dates into Julian Dates."""
from __future__ import annotations

import json

import pandas as pd

from fink_ingest import cells as cellcodec
from fink_ingest.errors import QueryError
from fink_ingest.tables.base import JD_UNIX_EPOCH


def history_entries(rows, types, oid_column, object_of):
    """One row per history entry from packed history rows (``tables.history``).

    Parameters
    ----------
    rows : list of (bytes, dict of bytes to bytes)
        Rows of ``upper`` or ``uppervalid`` (one per object and time bucket).
    types : dict of str to str
        The table's schema-row types (``array<...>`` per cell).
    oid_column : str
        Name of the object id column to add (e.g. ``i:objectId``).
    object_of : callable
        Object id (str) of a row key (bytes).

    Returns
    -------
    pandas.DataFrame, shape (entries, 1 + cells)
        The object id, then one column per cell with the element type (``float`` cells as
        float32, exactly as the datalake held them), in time order within each object.
    """
    names = list(dict.fromkeys(q.decode() for _, cells in rows for q in cells))
    names = [n for n in types if n in names] + [n for n in names if n not in types]
    data = {oid_column: [], **{n: [] for n in names}}
    for key, cells in rows:
        lists = {n: cellcodec.decode(cells.get(n.encode()), types[n]) for n in names}
        count = max((len(v) for v in lists.values() if v is not None), default=0)
        data[oid_column].extend([object_of(key)] * count)
        for n in names:
            data[n].extend(lists[n] if lists[n] is not None else [None] * count)
    frame = pd.DataFrame(data, columns=[oid_column] + names)
    for n in names:
        element = cellcodec.parse_type(types[n])
        element = element[1] if isinstance(element, tuple) and element[0] == "array" else None
        if element in ("float", "double") and frame[n].notna().all():
            frame[n] = frame[n].astype("float32" if element == "float" else "float64")
        elif element in ("int", "bigint", "smallint", "tinyint") and frame[n].notna().all():
            frame[n] = frame[n].astype("int64")
    return frame


def decode_columns(rows, types, columns=None, values_only=()):
    """Decode ``(key, cells)`` rows column by column.

    Parameters
    ----------
    rows : list of (bytes, dict of bytes to bytes)
    types : dict of str to str
        Schema-row types, ``family:qualifier`` -> type name.
    columns : list of str, optional
        Columns to return, in this order; default every column present.
    values_only : collection of str
        Struct columns given as the list of their values, in field order, as Fink's API gives
        them (``Survey.values_only``; JSON text over HTTP), instead of a dict.

    Returns
    -------
    dict of str to numpy.ndarray or list, each of length len(rows)
        Absent cells are None (or NaN in float columns).

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
        if name in values_only:
            data[name] = [_values_of(v) for v in data[name]]
    return data


def _values_of(value):
    """A struct (dict, or the JSON text of an object) -> the list of its values in field order
    (JSON text if given text); other values as they are."""
    if isinstance(value, dict):
        return list(value.values())
    if not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return json.dumps(list(parsed.values())) if isinstance(parsed, dict) else value


def decode_rows(rows, types, columns=None):
    """Decode ``(key, cells)`` rows into a DataFrame (see ``decode_columns``).

    Returns
    -------
    pandas.DataFrame, shape (len(rows), n_columns)
        Index: the row keys (str). Absent cells are None/NaN.
    """
    data = decode_columns(rows, types, columns)
    return pd.DataFrame(data, index=[k.decode() for k, _ in rows], columns=list(data))


MJD_OFFSET = 2400000.5        # JD of MJD 0
JD_MIN_AS_JD = 2400000.0      # a bare number at least this large is a JD, else an MJD (as Fink reads dates)


def jd_of(date):
    """Julian Date of a date, taken as UTC, as Fink's API reads dates: a number (or its text)
    is a JD if at least 2,400,000, else an MJD; other text is an ISO date
    (``YYYY-MM-DD[ hh:mm:ss]``, parsed by pandas); a datetime is converted. None or empty
    text gives None.

    Returns
    -------
    float or None

    Raises
    ------
    QueryError
        If the value is not a date, or not finite (``nan``, ``inf``).
    """
    import math

    if date is None or (isinstance(date, str) and not date.strip()):
        return None
    if isinstance(date, bool):
        raise QueryError(f"date {date!r}: expected YYYY-MM-DD[ hh:mm:ss], a JD or an MJD")
    try:
        value = float(date.strip() if isinstance(date, str) else date)
    except (TypeError, ValueError):
        value = None
    if value is None:
        try:
            stamp = pd.Timestamp(date)
        except (ValueError, TypeError, OverflowError):
            raise QueryError(f"date {date!r}: expected YYYY-MM-DD[ hh:mm:ss], a JD or an MJD") from None
        if pd.isna(stamp):
            raise QueryError(f"date {date!r}: expected YYYY-MM-DD[ hh:mm:ss], a JD or an MJD")
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return JD_UNIX_EPOCH + (stamp - pd.Timestamp("1970-01-01")).total_seconds() / 86400.0
    if not math.isfinite(value):
        raise QueryError(f"date {date!r}: expected a finite JD or MJD")
    return value if value >= JD_MIN_AS_JD else value + MJD_OFFSET
