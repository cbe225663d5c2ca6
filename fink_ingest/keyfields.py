"""Fixed-width text of a row key's typed components (``rowkeys`` joins them): times, alert
ids and scores, written so that byte order is numeric order and the text parses back to the
same value."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest.errors import SchemaError

ALERT_ID_DIGITS = 19        # a non-negative int64 has at most 19 decimal digits
SCORE_DIGITS = 16           # hex digits of a 64-bit pattern


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


def format_alert_id(values):
    """Fixed-width text of alert ids (``candid``) for row keys, vectorised.

    Parameters
    ----------
    values : pyarrow.Array of integers, shape (n,)
        Non-negative alert ids (int64), no nulls.

    Returns
    -------
    pyarrow.Array of string, shape (n,)
        Zero-padded to ``ALERT_ID_DIGITS`` (19) decimal digits, e.g. ``2570218142115015056``;
        every non-negative int64 fits, and keys of one object and time sort by alert id.

    Raises
    ------
    SchemaError
        If a value is null or negative.
    """
    values = pc.cast(values, pa.int64())
    if values.null_count:
        raise SchemaError("format_alert_id: null alert id; rows without one must be rejected first")
    if len(values) and pc.min(values).as_py() < 0:
        raise SchemaError(f"format_alert_id: alert id {pc.min(values).as_py()} is negative")
    return pc.utf8_lpad(pc.cast(values, pa.string()), ALERT_ID_DIGITS, "0")


def format_score(values):
    """Fixed-width text of doubles that sorts (as bytes) in numeric order, vectorised.

    The IEEE-754 bit pattern is mapped to an unsigned integer of the same order (negative
    values: every bit flipped; others: the sign bit set), written as 16 lowercase hex digits.
    Exact both ways (``parse_score``); ``-0.0`` sorts just before ``0.0``.

    Parameters
    ----------
    values : pyarrow.Array of float64, shape (n,)
        Finite or infinite values, no nulls, no NaN (e.g. an anomaly score).

    Returns
    -------
    pyarrow.Array of string, shape (n,)

    Raises
    ------
    SchemaError
        If a value is null or NaN.
    """
    import numpy as np

    values = pc.cast(values, pa.float64())
    if values.null_count or (len(values) and pc.any(pc.is_nan(values)).as_py()):
        raise SchemaError("format_score: null or NaN score; rows without one must be left out first")
    bits = values.to_numpy(zero_copy_only=False).astype(np.float64).view(np.uint64)
    sign = np.uint64(1 << 63)
    ordered = np.where(bits & sign, ~bits, bits | sign)
    return pa.array([f"{int(u):0{SCORE_DIGITS}x}" for u in ordered], pa.string())


def parse_score(text):
    """Inverse of ``format_score`` for one key component (str -> float)."""
    import numpy as np

    u = np.uint64(int(text, 16))
    sign = np.uint64(1 << 63)
    bits = u ^ sign if u & sign else ~u
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])
