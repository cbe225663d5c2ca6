"""The ``v:`` columns Fink adds to alerts when it serves them, computed from stored columns.

Names and meanings follow Fink's object API (``apps/utils/decoding.py`` of fink-object-api):

- ``v:classification``: the class of Fink's rule (``classification.classify``, the rule of
  the class index);
- ``v:lastdate``, ``v:firstdate``: ISO UTC dates (millisecond text) of ``i:jd`` and of
  ``i:jdstarthist`` (first detection of the object); ``v:lapse``: their difference, days;
- ``v:constellation``: the constellation of the position (``astropy.coordinates.get_constellation``);
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


def iso_dates(jd):
    """ISO UTC text of Julian Dates, to the millisecond (``YYYY-MM-DD hh:mm:ss.sss``, as
    astropy's ``Time(jd, format='jd').iso``); None where jd is missing. Array of object."""
    jd = pd.to_numeric(pd.Series(jd), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(jd)
    out = np.full(len(jd), None, dtype=object)
    if ok.any():
        stamps = pd.to_datetime((jd[ok] - JD_UNIX_EPOCH) * 86400.0, unit="s").round("ms")
        out[ok] = stamps.strftime("%Y-%m-%d %H:%M:%S.%f").str[:-3].to_numpy(dtype=object)
    return out


def constellations(ra, dec):
    """Constellation names of positions (ICRS degrees): array of object, None where unknown."""
    from astropy.coordinates import SkyCoord, get_constellation

    ra = pd.to_numeric(pd.Series(ra), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    dec = pd.to_numeric(pd.Series(dec), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(ra) & np.isfinite(dec)
    out = np.full(len(ra), None, dtype=object)
    if ok.any():
        # one look-up per distinct position (an object's alerts repeat the same few)
        pairs, back = np.unique(np.round(np.stack([ra[ok], dec[ok]], axis=1), 6), axis=0, return_inverse=True)
        names = np.atleast_1d(get_constellation(SkyCoord(pairs[:, 0], pairs[:, 1], unit="deg")))
        out[ok] = names[np.asarray(back).ravel()]
    return out


def _rates(frame, oid, jd, fid, mag, err):
    """v:rate and v:sigma(rate) of every alert (numpy arrays), per object and band."""
    rate = np.full(len(frame), np.nan)
    sigma = np.full(len(frame), np.nan)
    order = frame.sort_values([oid, fid, jd], kind="stable")
    same = (order[oid].to_numpy() == np.roll(order[oid].to_numpy(), 1)) & \
        (order[fid].to_numpy() == np.roll(order[fid].to_numpy(), 1))
    if len(order):
        same[0] = False
    same &= np.isin(pd.to_numeric(order[fid], errors="coerce").to_numpy(), list(BANDS.values()))  # g and r, as Fink
    t, m, e = (pd.to_numeric(order[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan) for c in (jd, mag, err))
    dt = t - np.roll(t, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(same, (m - np.roll(m, 1)) / dt, np.nan)
        s = np.where(same, np.hypot(e, np.roll(e, 1)) / dt, np.nan)
    position = frame.index.get_indexer(order.index)
    rate[position], sigma[position] = r, s
    return rate, sigma


def _colours(frame, oid, jd, fid, mag, err):
    """g-r colour columns of every alert (dict of name to numpy array), per object."""
    out = {n: np.full(len(frame), np.nan) for n in (COLOUR, SIGMA_COLOUR, COLOUR_RATE, SIGMA_COLOUR_RATE)}
    numeric = pd.DataFrame({"o": frame[oid].to_numpy(), "pos": np.arange(len(frame)),
                            **{k: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                               for k, c in (("t", jd), ("f", fid), ("m", mag), ("e", err))}})
    numeric = numeric[np.isfinite(numeric["t"])]
    for _, sub in numeric.groupby("o", sort=False):
        g = sub[sub["f"] == BANDS["g"]].sort_values("t")
        r = sub[sub["f"] == BANDS["r"]].sort_values("t")
        if g.empty or r.empty:
            continue
        pairs = pd.merge_asof(g, r[["t", "m", "e"]], on="t", suffixes=("_g", "_r"), direction="nearest",
                              tolerance=COLOUR_TOLERANCE_DAYS).dropna(subset=["m_r"])
        if pairs.empty:
            continue
        colour = (pairs["m_g"] - pairs["m_r"]).to_numpy()
        sigma = np.hypot(pairs["e_g"], pairs["e_r"]).to_numpy()
        dt = np.diff(pairs["t"].to_numpy(), prepend=np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            crate = np.diff(colour, prepend=np.nan) / dt
            csigma = np.hypot(sigma, np.roll(sigma, 1)) / dt
        table = pd.DataFrame({"t": pairs["t"].to_numpy(), COLOUR: colour, SIGMA_COLOUR: sigma,
                              COLOUR_RATE: crate, SIGMA_COLOUR_RATE: csigma})
        # every alert of the object takes the colour of the nearest g point within the tolerance
        nearest = pd.merge_asof(sub.sort_values("t")[["t", "pos"]], table, on="t", direction="nearest",
                                tolerance=COLOUR_TOLERANCE_DAYS)
        for name in out:
            out[name][nearest["pos"].to_numpy()] = nearest[name].to_numpy()
    return out


def add(frame, names, survey, hosts):
    """Add ``v:`` columns to a frame of alerts (in place; returns the frame).

    Parameters
    ----------
    frame : pandas.DataFrame
        Alerts with the columns ``inputs(names, survey)`` lists (missing ones count as null).
    names : list of str
        ``v:`` columns to add, among ``ALL``.
    survey : fink_ingest.config.Survey
    hosts : list of str
        Extragalactic-host labels of Fink's rule.

    Returns
    -------
    pandas.DataFrame
    """
    f = survey.original_family
    n = len(frame)

    def values(column):
        return frame[column].to_numpy() if column in frame.columns else np.full(n, None, dtype=object)

    names = list(names)
    if CLASSIFICATION in names:
        frame[CLASSIFICATION] = classify({rule: values(c) for rule, c in rule_columns(survey).items()}, hosts)
    jd = f"{f}:{survey.leaf['time']}"
    if LASTDATE in names:
        frame[LASTDATE] = iso_dates(values(jd))
    if FIRSTDATE in names:
        frame[FIRSTDATE] = iso_dates(values(_col(survey, "jdstarthist")))
    if LAPSE in names:
        frame[LAPSE] = pd.to_numeric(pd.Series(values(jd)), errors="coerce").to_numpy(dtype=float, na_value=np.nan) \
            - pd.to_numeric(pd.Series(values(_col(survey, "jdstarthist"))), errors="coerce").to_numpy(
                dtype=float, na_value=np.nan)
    if CONSTELLATION in names:
        frame[CONSTELLATION] = constellations(values(f"{f}:{survey.leaf['ra']}"), values(f"{f}:{survey.leaf['dec']}"))
    wanted = [x for x in PER_OBJECT if x in names]
    if wanted:
        cols = (f"{f}:{survey.leaf['object_id']}", jd, _col(survey, "fid"), _col(survey, "magpsf"),
                _col(survey, "sigmapsf"))
        work = pd.DataFrame({c: values(c) for c in cols}).reset_index(drop=True)
        computed = {}
        if RATE in wanted or SIGMA_RATE in wanted:
            computed[RATE], computed[SIGMA_RATE] = _rates(work, *cols)
        if set(wanted) & {COLOUR, SIGMA_COLOUR, COLOUR_RATE, SIGMA_COLOUR_RATE}:
            computed.update(_colours(work, *cols))
        for name in wanted:
            frame[name] = computed[name]
    return frame
