"""Every row-key encoding, nothing else (the typed components' fixed-width text: ``keyfields``).

A row key is UTF-8 text: components joined with ``_`` as in Fink (``objectId_jd_candid``),
compared as bytes by the store. The rules that make keys unique and prefixes unambiguous:

- **Times** are written fixed-width (``format_time``), so byte order is time order in any
  position of a key, and the text parses back to the same double.
- **Alert ids** (``candid``) end the key of every alert table, zero-padded to a fixed width
  (``format_alert_id``): two alerts of one object in one exposure share ``objectId`` and
  ``jd`` (ZTF emits such pairs, ``candid`` differing by one), so without the alert id one
  would overwrite the other, as keys ``objectId_jd`` did in Fink.
- **Free text** (object ids, classes, Solar System names: anything that may hold ``_``) is
  escaped (``escape``): ``%`` becomes ``%25`` and ``_`` becomes ``%5F``, so an escaped
  component never holds the separator, and the scan prefix ``escape(X) + "_"`` of one value
  is never a prefix of another value's keys (``EB*_`` used to select ``EB*_Candidate`` too).
  ``split`` decodes every component exactly. Identifiers made of letters and digits (every
  ZTF ``objectId``) are unchanged by the escaping.

The layout of each table (which components, in which order) is declared by its builder
(``tables.base.TableBuilder.key``) and described here (``describe``); the description is
recorded in each table's schema row, so a store written with another layout is recognised.
"""
from __future__ import annotations

from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest.errors import SchemaError
from fink_ingest.keyfields import (ALERT_ID_DIGITS, SCORE_DIGITS, format_alert_id, format_score,  # noqa: F401
                                   format_time, format_time_scalar, parse_score)

SEP = "_"
ESCAPE = "%"
# (raw, escaped) in the order ``escape`` applies them: the escape character first.
_ESCAPES = ((ESCAPE, "%25"), (SEP, "%5F"))
SCHEMA_ROW_PREFIX = "schema_"


def escape(values):
    """Escape free-text key components, vectorised (``%`` -> ``%25``, ``_`` -> ``%5F``).

    Parameters
    ----------
    values : pyarrow.Array of string, shape (n,)

    Returns
    -------
    pyarrow.Array of string, shape (n,)
        Without ``_``; nulls stay null. Text of letters and digits is unchanged.
    """
    text = pc.cast(values, pa.string())
    for raw, escaped in _ESCAPES:
        text = pc.replace_substring(text, raw, escaped)
    return text


def escape_text(text):
    """``escape`` of one str."""
    text = str(text)
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return text


def unescape(text):
    """Inverse of ``escape_text`` (str -> str)."""
    return unquote(text) if ESCAPE in text else text


def split(key):
    """Components of a row key, each decoded exactly (list of str).

    Parameters
    ----------
    key : bytes or str
    """
    text = key.decode() if isinstance(key, (bytes, bytearray)) else key
    return [unescape(part) for part in text.split(SEP)]


def prefix(*components):
    """Scan prefix of keys starting with these components (bytes): each escaped and
    followed by the separator, so ``prefix("EB*")`` selects ``EB*`` and never ``EB*_Candidate``."""
    return "".join(escape_text(c) + SEP for c in components).encode()


def join(*fields):
    """Join key components (pyarrow string arrays or str scalars) with ``_``, vectorised.
    Free-text components must be ``escape``-d first.

    Returns
    -------
    pyarrow.Array of string
    """
    return pc.binary_join_element_wise(*fields, SEP)


def schema_row_key(version):
    """Row key of a table's schema row, ``schema_<version>`` (bytes)."""
    return f"{SCHEMA_ROW_PREFIX}{version}".encode()


def is_schema_row(key):
    """True if a key (bytes) is a schema row's, ``schema_...``."""
    return bytes(key).startswith(SCHEMA_ROW_PREFIX.encode())


def prefix_stop(prefix):
    """Smallest key greater than every key starting with ``prefix`` (bytes), or None.

    Used to turn a prefix scan into a [start, stop) range scan.
    """
    prefix = bytearray(prefix)
    while prefix:
        if prefix[-1] < 0xFF:
            prefix[-1] += 1
            return bytes(prefix)
        prefix.pop()
    return None


# Components of the row keys, by role. Builders declare their key as a tuple of roles
# (``tables.base.TableBuilder.key``); ``make`` writes and ``parse`` reads every role.
TEXT_ROLES = ("object", "class", "ssnamenr", "name")   # free text: escaped
TIME_ROLES = ("time", "bucket")                          # fixed-width times (days)
ALERT_ROLE = "alert"                                     # fixed-width alert id
SCORE_ROLE = "score"                                     # any double, order-preserving hex
# given as text already, never holding ``_`` or ``%``: fixed-width digits, hex, survey names,
# resolver names (``tns``, ``simbad``)
VERBATIM_ROLES = ("salt", "pixel", "survey", "night", "resolver")


def make(roles, parts, survey):
    """Row keys from their components, vectorised.

    Parameters
    ----------
    roles : tuple of str
        Component roles in key order (see ``describe``).
    parts : dict of str to pyarrow.Array, each of shape (n,)
        Values per role: float64 times for ``time``/``bucket``, integers for ``alert``,
        strings otherwise (``salt``, ``pixel``, ``night`` already formatted).
    survey : fink_ingest.config.Survey
        Gives the time widths.

    Returns
    -------
    pyarrow.Array of string, shape (n,)

    Raises
    ------
    SchemaError
        If a time or alert id cannot be written (see ``format_time``, ``format_alert_id``).
    """
    fields = []
    for role in roles:
        value = parts[role]
        if role in TIME_ROLES:
            value = format_time(pc.cast(value, pa.float64()), survey.time_int_digits, survey.time_frac_digits)
        elif role == ALERT_ROLE:
            value = format_alert_id(value)
        elif role == SCORE_ROLE:
            value = format_score(value)
        elif role in TEXT_ROLES:
            value = escape(value)
        elif role not in VERBATIM_ROLES:
            raise SchemaError(f"key role {role!r} unknown")
        fields.append(value)
    return join(*fields) if len(fields) > 1 else pc.cast(fields[0], pa.string())


def parse(roles, key):
    """Components of one row key by role: times as float, alert ids as int, text decoded.

    Parameters
    ----------
    roles : tuple of str
    key : bytes or str

    Returns
    -------
    dict of str to (str, float or int)

    Raises
    ------
    SchemaError
        If the key does not have one component per role.
    """
    parts = split(key)
    if len(parts) != len(roles):
        raise SchemaError(f"row key {key!r} has {len(parts)} components; layout {SEP.join(roles)} has {len(roles)}")
    out = {}
    for role, text in zip(roles, parts):
        out[role] = float(text) if role in TIME_ROLES else int(text) if role == ALERT_ROLE \
            else parse_score(text) if role == SCORE_ROLE else text
    return out


def parse_many(roles, keys):
    """``parse`` of many keys at once, vectorised (the read layer's index scans).

    Parameters
    ----------
    roles : tuple of str
    keys : list of bytes

    Returns
    -------
    dict of str to numpy.ndarray, each of shape (len(keys),)
        float64 times, int64 alert ids, object arrays of str for text components.

    Raises
    ------
    SchemaError
        If a key does not have one component per role.
    """
    import numpy as np

    parts = pc.split_pattern(pc.cast(pa.array(keys, pa.binary()), pa.string()), SEP)
    if len(keys) and pc.any(pc.not_equal(pc.list_value_length(parts), len(roles))).as_py():
        bad = next(k for k in keys if len(split(k)) != len(roles))
        raise SchemaError(f"row key {bad!r} does not have {len(roles)} components ({SEP.join(roles)})")
    out = {}
    for i, role in enumerate(roles):
        text = pc.list_element(parts, i) if len(keys) else pa.array([], pa.string())
        if role in TIME_ROLES:
            out[role] = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        elif role == ALERT_ROLE:
            out[role] = pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False)
        elif role == SCORE_ROLE:
            out[role] = np.array([parse_score(t) for t in text.to_pylist()], dtype=np.float64)
        else:
            values = np.array(text.to_pylist(), dtype=object)
            if len(keys) and pc.any(pc.match_substring(text, ESCAPE)).as_py():
                values = np.array([unescape(v) for v in values], dtype=object)
            out[role] = values
    return out


def describe(roles, survey):
    """Readable description of a key layout, recorded in the schema row (str).

    Parameters
    ----------
    roles : tuple of str
        Component roles in key order: ``object``, ``time``, ``alert``, ``bucket``,
        ``salt``, ``pixel``, ``class``, ``ssnamenr``, ``name``, ``survey``, ``night``,
        ``score``, ``resolver``.
    survey : fink_ingest.config.Survey

    Returns
    -------
    str
        e.g. ``objectId(escaped)_jd(7.10)_candid(19d)``; it changes whenever a setting
        that shapes the keys changes (time widths, sky order, salt buckets, history buckets).
    """
    leaf = survey.leaf
    widths = f"{survey.time_int_digits}.{survey.time_frac_digits}"
    text = {
        "object": f"{leaf['object_id']}(escaped)",
        "time": f"{leaf['time']}({widths})",
        "bucket": f"{leaf['time']}(start of a {survey.history_bucket_days}-day bucket, {widths})",
        "alert": f"{leaf['alert_id']}({ALERT_ID_DIGITS}d)",
        "salt": f"salt(xxhash64 mod {survey.time_buckets}, 2x)",
        "pixel": f"pixel(NESTED order {survey.sky_order}, 19d)",
        "class": "class(escaped)",
        "ssnamenr": "ssnamenr(normalised, escaped)",
        "name": "name(escaped)",
        "survey": survey.name,
        "night": "YYYYMMDD",
        "score": f"score(order-preserving IEEE-754, {SCORE_DIGITS}x)",
        "resolver": "resolver(tns|simbad)",
    }
    unknown = [r for r in roles if r not in text]
    if unknown:
        raise SchemaError(f"key roles {unknown} unknown; expected among {sorted(text)}")
    return SEP.join(text[r] for r in roles)


NOT_A_NAME = ("", "null", "none", "nan")


def normalize_ssnamenr(values):
    """Normalised Solar System object names for keys, vectorised.

    MPC designations and numbers as ZTF gives them in ``ssnamenr``: whitespace and ``_`` are
    removed (``2009 VN118`` -> ``2009VN118``); numbered objects stay as their number. Null,
    ``''``, ``'null'`` and similar are not names and give null.

    Parameters
    ----------
    values : pyarrow.Array of string, shape (n,)

    Returns
    -------
    pyarrow.Array of string, shape (n,)
    """
    text = pc.replace_substring_regex(pc.cast(values, pa.string()), r"[\s_]+", "")
    bad = pc.is_in(pc.utf8_lower(text), value_set=pa.array(NOT_A_NAME))
    return pc.if_else(pc.fill_null(bad, True), pa.scalar(None, pa.string()), text)
