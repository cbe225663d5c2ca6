"""Fink's classification rule: one Spark column expression (the push's class index) and the
same rule on pandas values (the read layer's ``v:classification``).

Source: the rule of Fink's ZTF class table (see ``../shared/REFERENCE.md``, rules 1-9, and
fink-filters). Start from ``Unknown``; each later rule overrides the earlier ones; the
SIMBAD label (``cdsxmatch``) overrides everything unless it is Unknown, Transient, a
``Fail...`` or a galaxy. Thresholds are named constants beside their source.

Both evaluators follow Spark's null logic: a comparison with a missing value is unknown,
and every flag is true only when all of its conditions are known to hold (``coalesce(...,
False)``); ``classify`` reproduces this with comparisons that are false on missing values
(``_holds``), which composes exactly through ``and``/``or``. The tests check that both give
every real alert the same class.
"""
from __future__ import annotations

from pyspark.sql import functions as F

UNKNOWN = "Unknown"
MICROLENSING = "Microlensing candidate"
SN = "SN candidate"
EARLY_SNIA = "Early SN Ia candidate"
KILONOVA = "Kilonova candidate"
SSO_CANDIDATE = "Solar System candidate"
TRACKLET = "Tracklet"
SSO_MPC = "Solar System MPC"
AMBIGUOUS = "Ambiguous"

SCORE_MIN = 0.5            # snn/rf/mulens/kn classifier scores: "> 0.5" (fink-filters)
DRB_MIN = 0.5              # deep real-bogus score: drb > 0.5
CLASSTAR_MIN = 0.4         # SExtractor star/galaxy score: classtar > 0.4
SN_MAX_AGE_DAYS = 90       # jd - jdstarthist <= 90 for SN candidates
KN_MAX_AGE_DAYS = 5        # jd - jdstarthist < 5 for kilonova candidates
EARLY_MAX_NDETHIST = 20    # ndethist <= 20 for early SN Ia
KN_MAX_NDETHIST = 20       # ndethist < 20 for kilonova candidates
ROID_CANDIDATE = 2         # Fink asteroid flag: 2 = Solar System candidate (not in MPC)
ROID_MPC = 3               # Fink asteroid flag: 3 = matched to a known MPC object
TRACKLET_PREFIX = "TRCK_"  # Fink tracklet identifiers (satellite glints, fast movers)


def _field(columns, name):
    """Column by name if the night has it, else a null literal (old layouts lack Fink values)."""
    return F.col(columns[name]) if name in columns else F.lit(None)


def class_column(columns, hosts):
    """The class of each alert (string column, never null).

    Parameters
    ----------
    columns : dict of str to str
        Rule input -> column path in the night's DataFrame, for the inputs that exist:
        ``mulens``, ``snn_snia_vs_nonia``, ``snn_sn_vs_all``, ``rf_snia_vs_nonia``,
        ``rf_kn_vs_nonkn``, ``cdsxmatch``, ``roid``, ``tracklet``, ``jd``, ``jdstarthist``,
        ``drb``, ``classtar``, ``ndethist``. A missing input makes its rules false.
    hosts : list of str
        Extragalactic-host labels (SIMBAD), from the survey file.

    Returns
    -------
    pyspark.sql.Column
    """
    c = {name: _field(columns, name) for name in (
        "mulens", "snn_snia_vs_nonia", "snn_sn_vs_all", "rf_snia_vs_nonia", "rf_kn_vs_nonkn",
        "cdsxmatch", "roid", "tracklet", "jd", "jdstarthist", "drb", "classtar", "ndethist")}
    host = c["cdsxmatch"].isin(list(hosts))
    snn = (c["snn_snia_vs_nonia"] > SCORE_MIN) | (c["snn_sn_vs_all"] > SCORE_MIN)
    quality = (c["drb"] > DRB_MIN) & (c["classtar"] > CLASSTAR_MIN)
    age = c["jd"] - c["jdstarthist"]
    not_mpc = c["roid"] != ROID_MPC
    microlensing = F.coalesce(c["mulens"] > SCORE_MIN, F.lit(False))
    sn = F.coalesce(snn & host & (age <= SN_MAX_AGE_DAYS) & quality & (c["ndethist"] > 1) & not_mpc,
                    F.lit(False))
    early = F.coalesce(snn & host & quality & (c["ndethist"] <= EARLY_MAX_NDETHIST)
                       & (c["rf_snia_vs_nonia"] > SCORE_MIN), F.lit(False))
    kilonova = F.coalesce((c["rf_kn_vs_nonkn"] > SCORE_MIN) & quality & (age < KN_MAX_AGE_DAYS)
                          & (c["ndethist"] < KN_MAX_NDETHIST) & not_mpc & host, F.lit(False))
    sso_candidate = F.coalesce(c["roid"] == ROID_CANDIDATE, F.lit(False))
    tracklet = F.coalesce(c["tracklet"].cast("string").startswith(TRACKLET_PREFIX), F.lit(False))
    sso_mpc = F.coalesce(c["roid"] == ROID_MPC, F.lit(False))
    n_flags = sum(flag.cast("int") for flag in (microlensing, sn, sso_candidate, sso_mpc))
    simbad = c["cdsxmatch"]
    simbad_wins = F.coalesce(simbad.isNotNull() & ~simbad.isin(UNKNOWN, "Transient")
                             & ~simbad.startswith("Fail") & ~simbad.startswith("Galaxy"), F.lit(False))
    return (F.when(simbad_wins, simbad)
            .when(n_flags > 1, F.lit(AMBIGUOUS))
            .when(sso_mpc, F.lit(SSO_MPC))
            .when(tracklet, F.lit(TRACKLET))
            .when(sso_candidate, F.lit(SSO_CANDIDATE))
            .when(kilonova, F.lit(KILONOVA))
            .when(early, F.lit(EARLY_SNIA))
            .when(sn, F.lit(SN))
            .when(microlensing, F.lit(MICROLENSING))
            .otherwise(F.lit(UNKNOWN)))


RULE_INPUTS = ("mulens", "snn_snia_vs_nonia", "snn_sn_vs_all", "rf_snia_vs_nonia", "rf_kn_vs_nonkn",
               "cdsxmatch", "roid", "tracklet", "jd", "jdstarthist", "drb", "classtar", "ndethist")
_TEXT_INPUTS = ("cdsxmatch", "tracklet")


def _holds(values, op, threshold):
    """``values <op> threshold`` where known: False on a missing value (numpy bool array)."""
    import numpy as np

    known = ~np.isnan(values)
    with np.errstate(invalid="ignore"):
        return known & op(values, threshold)


def _texts(raw, n):
    """Text inputs as an object array, None where missing or not text."""
    import numpy as np

    values = np.full(n, None, dtype=object) if raw is None else np.asarray(raw, dtype=object)
    return np.array([v if isinstance(v, str) else None for v in values], dtype=object)


def _floats(raw, n):
    """Numeric inputs as float64, NaN where missing."""
    import numpy as np
    import pandas as pd

    if raw is None:
        return np.full(n, np.nan)
    values = np.asarray(raw)
    if values.dtype.kind in "fiub":
        return values.astype(float)
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def classify(values, hosts):
    """The class of each alert from pandas or numpy values (numpy array of str, never null).

    Parameters
    ----------
    values : dict of str to array_like, each of shape (n,)
        Rule inputs by name (``RULE_INPUTS``); a missing input makes its rules false, as in
        ``class_column``. Numbers may hold None/NaN; text may hold None.
    hosts : list of str
        Extragalactic-host labels (SIMBAD), from the survey file.

    Returns
    -------
    numpy.ndarray of object (str), shape (n,)
    """
    import operator as op

    import numpy as np

    n = len(next(iter(values.values()))) if values else 0
    num = {name: _floats(values.get(name), n) for name in RULE_INPUTS if name not in _TEXT_INPUTS}
    simbad, tracklet_ids = _texts(values.get("cdsxmatch"), n), _texts(values.get("tracklet"), n)
    host_set = set(hosts)
    host = np.array([v in host_set for v in simbad], dtype=bool)
    snn = _holds(num["snn_snia_vs_nonia"], op.gt, SCORE_MIN) | _holds(num["snn_sn_vs_all"], op.gt, SCORE_MIN)
    quality = _holds(num["drb"], op.gt, DRB_MIN) & _holds(num["classtar"], op.gt, CLASSTAR_MIN)
    age = num["jd"] - num["jdstarthist"]
    not_mpc = _holds(num["roid"], op.ne, ROID_MPC)
    microlensing = _holds(num["mulens"], op.gt, SCORE_MIN)
    sn = snn & host & _holds(age, op.le, SN_MAX_AGE_DAYS) & quality & _holds(num["ndethist"], op.gt, 1) & not_mpc
    early = snn & host & quality & _holds(num["ndethist"], op.le, EARLY_MAX_NDETHIST) \
        & _holds(num["rf_snia_vs_nonia"], op.gt, SCORE_MIN)
    kilonova = _holds(num["rf_kn_vs_nonkn"], op.gt, SCORE_MIN) & quality & _holds(age, op.lt, KN_MAX_AGE_DAYS) \
        & _holds(num["ndethist"], op.lt, KN_MAX_NDETHIST) & not_mpc & host
    sso_candidate = _holds(num["roid"], op.eq, ROID_CANDIDATE)
    tracklet = np.array([t is not None and t.startswith(TRACKLET_PREFIX) for t in tracklet_ids], dtype=bool)
    sso_mpc = _holds(num["roid"], op.eq, ROID_MPC)
    n_flags = microlensing.astype(int) + sn + sso_candidate + sso_mpc
    simbad_wins = np.array([v is not None and v not in (UNKNOWN, "Transient") and not v.startswith("Fail")
                            and not v.startswith("Galaxy") for v in simbad], dtype=bool)
    choices = [(simbad_wins, simbad), (n_flags > 1, AMBIGUOUS), (sso_mpc, SSO_MPC), (tracklet, TRACKLET),
               (sso_candidate, SSO_CANDIDATE), (kilonova, KILONOVA), (early, EARLY_SNIA), (sn, SN),
               (microlensing, MICROLENSING)]
    out = np.full(n, UNKNOWN, dtype=object)
    for mask, value in reversed(choices):  # the first rule that holds wins: apply it last
        out = np.where(mask, value, out)
    return out


# Every label the rule itself produces (SIMBAD labels aside), as Fink's /api/v1/classes lists them.
RULE_LABELS = (EARLY_SNIA, KILONOVA, SN, MICROLENSING, TRACKLET, SSO_MPC, SSO_CANDIDATE, AMBIGUOUS, UNKNOWN)
