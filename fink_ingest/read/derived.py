"""The ``v:`` columns Fink adds to alerts when it serves them, computed from stored columns.

Names and meanings follow Fink's object API (``apps/utils/decoding.py`` of fink-object-api):

- ``v:classification``: the class of Fink's rule (``classification.classify``, the rule of
  the class index);
- ``v:lastdate``, ``v:firstdate``: ISO UTC dates (millisecond text) of ``i:jd`` and of
  ``i:jdstarthist`` (first detection of the object); ``v:lapse``: their difference, days;
- ``v:constellation``: the constellation of the position (astropy's ``get_constellation``, run
  by ``constellation`` without its per-call overhead);
- ``v:rate``, ``v:sigma(rate)``: magnitude change per day since the previous alert of the
  object in the same band, and its error from ``sigmapsf``;
- ``v:g-r``, ``v:sigma(g-r)``: colour from a g and an r alert of the object less than
  ``COLOUR_TOLERANCE_DAYS`` apart (given to both), ``v:rate(g-r)`` and its error: its change
  per day between successive colours.

Each is computed on the alerts being returned (as Fink does); a value that cannot be
computed is null. ``inputs`` names the stored columns each needs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from fink_ingest.classification import RULE_INPUTS, classify
from fink_ingest.read.constellation import constellation_names
from fink_ingest.tables.base import JD_UNIX_EPOCH

FAMILY = "v"                      # Fink's family of values added when serving alerts
CLASSIFICATION = "v:classification"
LASTDATE, FIRSTDATE, LAPSE = "v:lastdate", "v:firstdate", "v:lapse"
CONSTELLATION = "v:constellation"
RATE, SIGMA_RATE = "v:rate", "v:sigma(rate)"
COLOUR, SIGMA_COLOUR = "v:g-r", "v:sigma(g-r)"
COLOUR_RATE, SIGMA_COLOUR_RATE = "v:rate(g-r)", "v:sigma(rate(g-r))"
PER_ALERT = (CLASSIFICATION, LASTDATE, FIRSTDATE, LAPSE, CONSTELLATION)
PER_OBJECT = (RATE, SIGMA_RATE, COLOUR, SIGMA_COLOUR, COLOUR_RATE, SIGMA_COLOUR_RATE)
ALL = PER_ALERT + PER_OBJECT
COLOUR_TOLERANCE_DAYS = 0.3       # Fink: g and r alerts at most 0.3 day apart make a colour
BANDS = {"g": 1, "r": 2}          # ZTF filter ids (fid): 1 = g, 2 = r
# Rule input -> alert field; candidate fields are in the original family, Fink's values in
# the added one (the same mapping as the push's CLASS_INPUTS, checked by the tests).
_ORIGINAL_INPUTS = ("jd", "jdstarthist", "drb", "classtar", "ndethist")
DOCS = {
    CLASSIFICATION: ("string", "Class of Fink's rule (see /api/v1/classes)"),
    LASTDATE: ("string", "UTC date of the alert (from i:jd)"),
    FIRSTDATE: ("string", "UTC date of the object's first detection (from i:jdstarthist)"),
    LAPSE: ("double", "Days between the first detection and this alert"),
    CONSTELLATION: ("string", "Constellation of the alert's position"),
    RATE: ("double", "Magnitude change per day since the previous alert in this band"),
    SIGMA_RATE: ("double", "Error of v:rate, mag/day"),
    COLOUR: ("double", "g-r colour from g and r alerts less than 0.3 day apart"),
    SIGMA_COLOUR: ("double", "Error of v:g-r"),
    COLOUR_RATE: ("double", "Change of g-r per day since the previous colour"),
    SIGMA_COLOUR_RATE: ("double", "Error of v:rate(g-r), mag/day"),
}


def rule_columns(survey):
    """Stored column of each input of Fink's rule: dict of rule input to ``family:qualifier``."""
    return {name: f"{survey.original_family if name in _ORIGINAL_INPUTS else survey.added_family}:{name}"
            for name in RULE_INPUTS}


def _col(survey, leaf):
    return f"{survey.original_family}:{leaf}"


def inputs(names, survey):
    """Stored columns needed to compute the given ``v:`` columns (list of str, no repeats)."""
    f = survey.original_family
    oid, jd = f"{f}:{survey.leaf['object_id']}", f"{f}:{survey.leaf['time']}"
    need = []
    for name in names:
        if name == CLASSIFICATION:
            need += list(rule_columns(survey).values())
        elif name in (LASTDATE, LAPSE):
            need += [jd] + ([_col(survey, "jdstarthist")] if name == LAPSE else [])
        elif name == FIRSTDATE:
            need.append(_col(survey, "jdstarthist"))
        elif name == CONSTELLATION:
            need += [f"{f}:{survey.leaf['ra']}", f"{f}:{survey.leaf['dec']}"]
        elif name in PER_OBJECT:
            need += [oid, jd, _col(survey, "fid"), _col(survey, "magpsf"), _col(survey, "sigmapsf")]
    return list(dict.fromkeys(need))


def _numbers(values):
    """A column as float64 (None and non-numbers as NaN)."""
    values = np.asarray(values)
    if values.dtype.kind in "fiub":
        return values.astype(float)
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def iso_dates(jd):
    """ISO UTC text of Julian Dates, to the millisecond (``YYYY-MM-DD hh:mm:ss.sss``, as
    astropy's ``Time(jd, format='jd').iso``); None where jd is missing. Array of object."""
    jd = _numbers(jd)
    ok = np.isfinite(jd)
    out = np.full(len(jd), None, dtype=object)
    if ok.any():
        ms = np.round((jd[ok] - JD_UNIX_EPOCH) * 86400000.0).astype("int64").astype("datetime64[ms]")
        out[ok] = np.char.replace(np.datetime_as_string(ms, unit="ms"), "T", " ").astype(object)
    return out


def constellations(ra, dec):
    """Constellation names of positions (ICRS degrees): array of object, None where unknown."""
    ra, dec = _numbers(ra), _numbers(dec)
    ok = np.isfinite(ra) & np.isfinite(dec)
    out = np.full(len(ra), None, dtype=object)
    if ok.any():
        out[ok] = constellation_names(ra[ok], dec[ok])
    return out


def _rates(oid, t, f, m, e):
    """v:rate and v:sigma(rate) of every alert: change since the previous alert of the object
    in the same band (g or r), per day."""
    n = len(t)
    rate, sigma = np.full(n, np.nan), np.full(n, np.nan)
    if n < 2:
        return rate, sigma
    order = np.lexsort((t, f, oid))
    o, ff, tt, mm, ee = oid[order], f[order], t[order], m[order], e[order]
    same = np.r_[False, (o[1:] == o[:-1]) & (ff[1:] == ff[:-1])] & np.isin(ff, list(BANDS.values()))
    dt = np.r_[np.nan, np.diff(tt)]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate[order] = np.where(same, np.r_[np.nan, np.diff(mm)] / dt, np.nan)
        sigma[order] = np.where(same, np.hypot(ee, np.r_[np.nan, ee[:-1]]) / dt, np.nan)
    return rate, sigma


def _nearest(times, targets, tolerance):
    """Index into sorted ``times`` of the nearest to each target, -1 beyond the tolerance
    (ties: the earlier, as pandas' merge_asof)."""
    right = np.clip(np.searchsorted(times, targets), 0, len(times) - 1)
    left = np.clip(right - 1, 0, len(times) - 1)
    best = np.where(np.abs(times[left] - targets) <= np.abs(times[right] - targets), left, right)
    return np.where(np.abs(times[best] - targets) <= tolerance, best, -1)


def _colours(oid, t, f, m, e):
    """g-r colour columns of every alert (dict of name to array), per object: each g alert
    with an r alert within the tolerance gives a colour; every alert takes the colour of the
    nearest such g alert within the tolerance."""
    n = len(t)
    out = {k: np.full(n, np.nan) for k in (COLOUR, SIGMA_COLOUR, COLOUR_RATE, SIGMA_COLOUR_RATE)}
    for obj in np.unique(oid[(f == BANDS["g"]) & np.isfinite(t)]):
        rows = np.flatnonzero((oid == obj) & np.isfinite(t))
        g = rows[f[rows] == BANDS["g"]]
        r = rows[f[rows] == BANDS["r"]]
        if not len(r):
            continue
        g, r = g[np.argsort(t[g], kind="stable")], r[np.argsort(t[r], kind="stable")]
        match = _nearest(t[r], t[g], COLOUR_TOLERANCE_DAYS)
        g, match = g[match >= 0], r[match[match >= 0]]
        if not len(g):
            continue
        colour, sigma = m[g] - m[match], np.hypot(e[g], e[match])
        dt = np.r_[np.nan, np.diff(t[g])]
        with np.errstate(divide="ignore", invalid="ignore"):
            values = {COLOUR: colour, SIGMA_COLOUR: sigma, COLOUR_RATE: np.r_[np.nan, np.diff(colour)] / dt,
                      SIGMA_COLOUR_RATE: np.hypot(sigma, np.r_[np.nan, sigma[:-1]]) / dt}
        nearest = _nearest(t[g], t[rows], COLOUR_TOLERANCE_DAYS)
        for name, column in values.items():
            out[name][rows] = np.where(nearest >= 0, column[np.maximum(nearest, 0)], np.nan)
    return out


def compute(frame, names, survey, hosts):
    """The given ``v:`` columns of a frame of alerts.

    Parameters
    ----------
    frame : pandas.DataFrame or dict of str to array_like
        Alerts: columns by name, with those ``inputs(names, survey)`` lists (missing ones
        count as null).
    names : list of str
        ``v:`` columns, among ``ALL``.
    survey : fink_ingest.config.Survey
    hosts : list of str
        Extragalactic-host labels of Fink's rule.

    Returns
    -------
    dict of str to numpy.ndarray, each of shape (len(frame),)
    """
    f = survey.original_family
    n = len(frame) if isinstance(frame, pd.DataFrame) else len(next(iter(frame.values()), []))

    def values(column):
        if column not in frame:
            return np.full(n, None, dtype=object)
        value = frame[column]
        if isinstance(value, list):   # a decoded column with absent cells: one object per row
            out = np.empty(len(value), dtype=object)
            for i, x in enumerate(value):
                out[i] = x
            return out
        return np.asarray(value)

    out = {}
    jd = f"{f}:{survey.leaf['time']}"
    if CLASSIFICATION in names:
        out[CLASSIFICATION] = classify({rule: values(c) for rule, c in rule_columns(survey).items()}, hosts)
    if LASTDATE in names:
        out[LASTDATE] = iso_dates(values(jd))
    if FIRSTDATE in names:
        out[FIRSTDATE] = iso_dates(values(_col(survey, "jdstarthist")))
    if LAPSE in names:
        out[LAPSE] = _numbers(values(jd)) - _numbers(values(_col(survey, "jdstarthist")))
    if CONSTELLATION in names:
        out[CONSTELLATION] = constellations(values(f"{f}:{survey.leaf['ra']}"), values(f"{f}:{survey.leaf['dec']}"))
    wanted = [x for x in PER_OBJECT if x in names]
    if wanted:
        oid = np.asarray(values(f"{f}:{survey.leaf['object_id']}"), dtype=object).astype(str)
        t, fid, mag, err = (_numbers(values(c)) for c in (jd, _col(survey, "fid"), _col(survey, "magpsf"),
                                                          _col(survey, "sigmapsf")))
        computed = {}
        if RATE in wanted or SIGMA_RATE in wanted:
            computed[RATE], computed[SIGMA_RATE] = _rates(oid, t, fid, mag, err)
        if set(wanted) - {RATE, SIGMA_RATE}:
            computed.update(_colours(oid, t, fid, mag, err))
        out.update({name: computed[name] for name in wanted})
    return {name: out[name] for name in ALL if name in out}


def add(frame, names, survey, hosts):
    """The frame with the given ``v:`` columns added (a new DataFrame, same index); see
    ``compute``."""
    columns = compute(frame, list(names), survey, hosts)
    if not columns:
        return frame
    kept = frame.drop(columns=[c for c in columns if c in frame.columns])
    return pd.concat([kept, pd.DataFrame(columns, index=frame.index)], axis=1)
