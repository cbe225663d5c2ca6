"""Answers as HTTP bodies: tables in json, csv, parquet or votable, as Fink sends them.

- json: a list of records, strict JSON: 64-bit integers exact (``candid``), NaN and
  infinities as null, nested values (structs, maps, arrays of Fink's science modules) as
  JSON text as Fink sends them, stamps (``b:``) as arrays of arrays.
- csv, parquet, votable: nested values as JSON text; VOTable fields carry each column's
  name, with an XML id made of it (``i:ra`` -> ``i_ra``, as astropy would name it), so
  astropy writes no warning per column.
"""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd
from flask import Response

from fink_ingest.errors import QueryError

FORMATS = {"json": "application/json", "csv": "text/csv", "parquet": "application/vnd.apache.parquet",
           "votable": "application/x-votable+xml"}
STAMP_FAMILY = "b:"          # Fink's family of stamps served as 2-D arrays


def plain(value, keep_nested=False):
    """A cell value as strict JSON wants it: numpy scalars unwrapped, NaN and infinities as
    null, nested values as JSON text (or kept, recursively cleaned, with ``keep_nested``)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (dict, list, tuple)):
        cleaned = {k: plain(v, True) for k, v in value.items()} if isinstance(value, dict) \
            else [plain(v, True) for v in value]
        return cleaned if keep_nested else json.dumps(cleaned, allow_nan=False)
    if value is None or (not isinstance(value, (str, bytes, int)) and pd.isna(value) is True):
        return None
    return value


def json_response(payload, status=200):
    """A JSON body (strict: no NaN) from plain Python values."""
    return Response(json.dumps(payload, allow_nan=False), status=status, mimetype=FORMATS["json"])


def _flat(frame):
    """The frame with nested values as JSON text (outside JSON output)."""
    flat = frame.copy()
    for name in flat.columns:
        if flat[name].dtype == object and flat[name].map(lambda v: isinstance(v, (dict, list, tuple, np.ndarray))).any():
            flat[name] = flat[name].map(lambda v: plain(v) if isinstance(v, (dict, list, tuple, np.ndarray)) else v)
    return flat


def xml_id(name, taken):
    """An XML id made of a column name (``i:ra`` -> ``i_ra``), unique among ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", name)
    base = base if re.match(r"[A-Za-z_]", base) else f"_{base}"
    out, i = base, 1
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    taken.add(out)
    return out


def render(frame, output_format):
    """A DataFrame in the requested format (flask Response).

    Raises
    ------
    QueryError
        If the format is unknown.
    """
    if output_format not in FORMATS:
        raise QueryError(f"output-format {output_format!r}: expected one of {sorted(FORMATS)}")
    if output_format == "json":
        stamps = [c for c in frame.columns if str(c).startswith(STAMP_FAMILY)]
        records = [{k: plain(v, keep_nested=k in stamps) for k, v in row.items()}
                   for row in frame.to_dict(orient="records")]
        return json_response(records)
    flat = _flat(frame)
    if output_format == "csv":
        return Response(flat.to_csv(index=False), mimetype=FORMATS["csv"])
    buf = io.BytesIO()
    if output_format == "parquet":
        for name in flat.columns:  # object columns of mixed types (text and numbers) as text
            if flat[name].dtype == object:
                kinds = {type(v) for v in flat[name] if v is not None and not (isinstance(v, float) and np.isnan(v))}
                if len(kinds) > 1:
                    flat[name] = flat[name].map(lambda v: None if v is None else str(v))
        flat.to_parquet(buf, index=False)
    else:
        from astropy.io.votable import from_table
        from astropy.table import Table

        names = [str(c) for c in flat.columns]
        taken = set()
        ids = [xml_id(n, taken) for n in names]
        table = flat.astype({c: str for c in flat.columns if flat[c].dtype == object}).set_axis(ids, axis=1)
        votable = from_table(Table.from_pandas(table))
        for field, name in zip(votable.get_first_table().fields, names):
            field.name = name
        votable.to_xml(buf)
    return Response(buf.getvalue(), mimetype=FORMATS[output_format])
