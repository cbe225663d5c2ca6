"""The v: columns (read.derived) on every alert of the sample nights, against the class index
the push wrote with Spark, astropy, and brute-force loops."""
import math

import numpy as np
import pytest
from astropy.coordinates import SkyCoord, get_constellation
from astropy.time import Time

from fink_ingest import rowkeys
from fink_ingest.push.stage import CLASS_INPUTS
from fink_ingest.read import Reader, derived
from fink_ingest.read.decode import decode_rows
from fink_ingest.tables import BUILDERS


@pytest.fixture(scope="module")
def alerts(sample_store):
    """Every main-table row of the sample store, all columns, with the class the push indexed."""
    config, store = sample_store
    reader = Reader(store, config)
    rows = [(k, c) for k, c in store.table("ztf").scan() if not rowkeys.is_schema_row(k)]
    frame = decode_rows(rows, reader.types("main")).reset_index(drop=True)
    indexed = {BUILDERS["class"].parse_key(k)["alert"]: BUILDERS["class"].parse_key(k)["class"]
               for k, _ in store.table("ztf.class").scan() if not rowkeys.is_schema_row(k)}
    frame["__indexed"] = [indexed.get(int(c)) for c in frame["i:candid"]]
    return reader, frame


def test_rule_inputs_are_the_columns_the_push_classifies_with(sample_store):
    config, _ = sample_store
    assert derived.rule_columns(config.survey) == CLASS_INPUTS


def test_classification_equals_the_class_index_for_every_alert(alerts):
    reader, frame = alerts
    out = derived.add(frame.copy(), [derived.CLASSIFICATION], reader.survey, reader.survey.hosts)
    assert len(out) == 1516 and out["__indexed"].notna().all()
    assert (out[derived.CLASSIFICATION] == out["__indexed"]).all(), \
        out.loc[out[derived.CLASSIFICATION] != out["__indexed"], ["i:objectId", derived.CLASSIFICATION, "__indexed"]]
    assert {"Solar System MPC", "SN candidate", "Ambiguous", "Tracklet", "RRLyr", "Unknown"} <= \
        set(out[derived.CLASSIFICATION])


def test_dates_lapse_and_constellation_as_astropy_gives_them(alerts):
    reader, frame = alerts
    sample = frame.iloc[::7].reset_index(drop=True)
    out = derived.add(sample.copy(), list(derived.PER_ALERT), reader.survey, reader.survey.hosts)
    assert list(out[derived.LASTDATE]) == list(Time(sample["i:jd"].to_numpy(), format="jd").iso)
    first = Time(sample["i:jdstarthist"].to_numpy(float), format="jd").iso
    assert list(out[derived.FIRSTDATE]) == list(first)
    assert np.array_equal(out[derived.LAPSE], sample["i:jd"] - sample["i:jdstarthist"])
    assert list(out[derived.CONSTELLATION]) == [get_constellation(SkyCoord(ra, dec, unit="deg"))
                                                for ra, dec in zip(sample["i:ra"], sample["i:dec"])]


def brute_rates(frame):
    """v:rate per alert: previous alert of the object in the same band (g or r)."""
    out = {}
    for (oid, fid), sub in frame.groupby(["i:objectId", "i:fid"]):
        sub = sub.sort_values("i:jd", kind="stable")
        prev = None
        for i, row in sub.iterrows():
            if prev is not None and fid in (1, 2):
                out[i] = (row["i:magpsf"] - prev["i:magpsf"]) / (row["i:jd"] - prev["i:jd"])
            prev = row
    return out


def brute_colours(frame, tolerance=0.3):
    """v:g-r per alert: the colour of the g alert nearest in time (within the tolerance), a
    colour being a g alert minus its nearest r alert within the tolerance."""
    out = {}
    for _, sub in frame.groupby("i:objectId"):
        g, r = sub[sub["i:fid"] == 1], sub[sub["i:fid"] == 2]
        colours = []
        for _, gi in g.iterrows():
            if len(r):
                j = (r["i:jd"] - gi["i:jd"]).abs().idxmin()
                if abs(r.loc[j, "i:jd"] - gi["i:jd"]) <= tolerance:
                    colours.append((gi["i:jd"], gi["i:magpsf"] - r.loc[j, "i:magpsf"]))
        for i, row in sub.iterrows():
            if colours:
                t, c = min(colours, key=lambda tc: abs(tc[0] - row["i:jd"]))
                if abs(t - row["i:jd"]) <= tolerance:
                    out[i] = c
    return out


def test_rates_and_colours_equal_brute_force(alerts):
    reader, frame = alerts
    several = frame.groupby("i:objectId")["i:jd"].transform("size") > 1
    sub = frame[several].reset_index(drop=True)
    out = derived.add(sub.copy(), list(derived.PER_OBJECT), reader.survey, reader.survey.hosts)
    rates, colours = brute_rates(sub), brute_colours(sub)
    assert len(rates) > 20 and len(colours) > 5
    for i in range(len(sub)):
        got = out.loc[i, derived.RATE]
        assert (math.isnan(got) and i not in rates) or got == pytest.approx(rates[i], rel=1e-12), i
        got = out.loc[i, derived.COLOUR]
        assert (math.isnan(got) and i not in colours) or got == pytest.approx(colours[i], rel=1e-12), i


def test_missing_inputs_give_nulls_not_errors(alerts):
    reader, frame = alerts
    empty = frame.iloc[:0][["i:objectId"]].copy()
    out = derived.add(empty, list(derived.ALL), reader.survey, reader.survey.hosts)
    assert list(out.columns) == ["i:objectId"] + list(derived.ALL) and out.empty
    bare = frame[["i:objectId"]].iloc[:3].copy()
    out = derived.add(bare, list(derived.ALL), reader.survey, reader.survey.hosts)
    assert list(out[derived.CLASSIFICATION]) == ["Unknown"] * 3 and out[derived.LASTDATE].isna().all()


def test_constellations_equal_astropy_everywhere():
    from fink_ingest.read.constellation import constellation_names

    rng = np.random.default_rng(14)
    ra = np.r_[rng.uniform(0, 360, 20000), np.repeat(np.linspace(0, 360, 181), 91)]
    dec = np.r_[np.degrees(np.arcsin(rng.uniform(-1, 1, 20000))), np.tile(np.linspace(-89.9, 89.9, 91), 181)]
    assert list(constellation_names(ra, dec)) == list(get_constellation(SkyCoord(ra, dec, unit="deg")))
