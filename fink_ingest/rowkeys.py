"""Every row-key encoding, nothing else.

Row keys are UTF-8 text, fields joined with ``_`` as in Fink (``objectId_jd``), and compared
as bytes by the store. Times are written fixed-width so that byte order is time order in
any position of a key, and the text parses back to the same double.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest.errors import SchemaError

SEP = "_"
SCHEMA_ROW_PREFIX = "schema_"


def format_time(values, int_digits, frac_digits):
    """Fixed-width text of times for row keys, vectorised.

    The shortest decimal text that round-trips the double (Arrow's cast, as Python's
    ``repr``) is padded: the integer part with leading zeros to ``int_digits``, the
    fraction with trailing zeros to ``frac_digits``. Padding zeros change neither the
    value nor the order, so keys sort in time order and ``float(text) == value``.

    Parameters
    ----------
    values : pyarrow.Array of float64, shape (n,)
        Times (e.g. ``jd``, days); no nulls, all >= 0.
    int_digits, frac_digits : int
        Widths of the integer part and of the fraction.

    Returns
    -------
    pyarrow.Array of string, shape (n,)
        Each of length ``int_digits + 1 + frac_digits``, e.g. ``2460113.7112500000``.

    Raises
    ------
    SchemaError
        If a value is null, negative, or needs more digits than configured.
    """
    values = pa.array(values, type=pa.float64()) if not isinstance(values, (pa.Array, pa.ChunkedArray)) else values
    if values.null_count:
        raise SchemaError("format_time: null time value; rows without a time must be rejected first")
    text = pc.cast(values, pa.string())
    has_dot = pc.match_substring(text, ".")
    text = pc.if_else(has_dot, text, pc.binary_join_element_wise(text, ".0", ""))
    parts = pc.split_pattern(text, ".", max_splits=1)
    int_part = pc.list_element(parts, 0)
    frac_part = pc.list_element(parts, 1)
    too_long = pc.or_(pc.greater(pc.utf8_length(int_part), int_digits),
                      pc.greater(pc.utf8_length(frac_part), frac_digits))
    bad = pc.or_(too_long, pc.match_substring_regex(text, "[-eE]"))
    if pc.any(bad).as_py():
        first = pc.filter(values, bad)[0].as_py()
        raise SchemaError(f"format_time: time {first!r} does not fit {int_digits}.{frac_digits} "
                          "fixed-width digits (negative, exponent or too many digits)")
    return pc.binary_join_element_wise(
        pc.utf8_lpad(int_part, int_digits, "0"), pc.utf8_rpad(frac_part, frac_digits, "0"), ".")


def format_time_scalar(value, int_digits, frac_digits):
    """``format_time`` for one float; returns str."""
    return format_time(pa.array([float(value)]), int_digits, frac_digits)[0].as_py()


def join(*fields):
    """Join key fields (pyarrow string arrays or str scalars) with ``_``, vectorised.

    Returns
    -------
    pyarrow.Array of string
    """
    return pc.binary_join_element_wise(*fields, SEP)


def schema_row_key(version):
    """Row key of a table's schema row, ``schema_<version>`` (bytes)."""
    return f"{SCHEMA_ROW_PREFIX}{version}".encode()


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
