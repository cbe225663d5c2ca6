"""Nights and datalake paths: the one place that builds them."""
from __future__ import annotations

import datetime as dt
import re

from fink_ingest.errors import ConfigError

_NIGHT = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")


def parse_night(text):
    """Night from ``YYYY-MM-DD`` or ``YYYYMMDD``.

    Returns
    -------
    datetime.date

    Raises
    ------
    ConfigError
        If the text is not such a date; the message quotes it.
    """
    match = _NIGHT.match(str(text).strip())
    if not match:
        raise ConfigError(f"night {text!r}: expected YYYY-MM-DD or YYYYMMDD")
    try:
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError as exc:
        raise ConfigError(f"night {text!r}: {exc}") from None


def night_dir(datalake, night):
    """Partition of one night: ``<datalake>/science/year=YYYY/month=MM/day=DD`` (str)."""
    return f"{str(datalake).rstrip('/')}/science/year={night:%Y}/month={night:%m}/day={night:%d}"


def night_tag(night):
    """``YYYYMMDD`` text of a night (used in run directories and statistics keys)."""
    return f"{night:%Y%m%d}"


def night_ranges(nights):
    """Consecutive nights as ranges, for an operator to read (str): ``2019-01-01..2019-09-02,
    2019-09-04`` (a night alone is written alone)."""
    import datetime as dt

    out, start, last = [], None, None
    for night in sorted(nights):
        if last is not None and night == last + dt.timedelta(days=1):
            last = night
            continue
        if start is not None:
            out.append(f"{start:%Y-%m-%d}" if start == last else f"{start:%Y-%m-%d}..{last:%Y-%m-%d}")
        start = last = night
    if start is not None:
        out.append(f"{start:%Y-%m-%d}" if start == last else f"{start:%Y-%m-%d}..{last:%Y-%m-%d}")
    return ", ".join(out)
