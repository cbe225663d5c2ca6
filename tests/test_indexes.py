"""Index tables on the real night, checked against values computed independently."""
import json

import healpy as hp
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from conftest import NIGHT_DIR
from fink_ingest import healpix, rowkeys

NIGHT = None


def night():
    global NIGHT
    if NIGHT is None:
        t = pq.read_table(NIGHT_DIR, columns=["objectId", "candidate", "roid", "prv_candidates"])
        c = t["candidate"].combine_chunks()
        NIGHT = dict(oid=t["objectId"].to_pylist(), ra=c.field("ra").to_numpy(), dec=c.field("dec").to_numpy(),
                     jd=c.field("jd").to_pylist(), ssnamenr=c.field("ssnamenr").to_pylist(),
                     roid=t["roid"].to_pylist(), prv=t["prv_candidates"])
    return NIGHT


def data_keys(table, prefix=None, start=None, stop=None):
    return [k.decode() for k, _ in table.scan(prefix=prefix, start=start, stop=stop)
            if not k.startswith(b"schema_")]


def test_sky_pixel_is_healpy_nested_order_29(real_night_push):
    _, store, _ = real_night_push
    n = night()
    expected = {f"{o}_{jd!r}": int(p) for o, jd, p in zip(
        n["oid"], n["jd"], hp.ang2pix(2**29, n["ra"], n["dec"], nest=True, lonlat=True))}
    got = {}
    for key in data_keys(store.table("ztf.sky")):
        pixel, jd, oid, candid = key.split("_")
        got[f"{oid}_{float(jd)!r}"] = int(pixel)
        assert len(pixel) == 19 and len(candid) == 19
    assert got == expected
    first = next(iter(data_keys(store.table("ztf.sky"))))
    assert first[0] == "0"  # zero-padded, so byte order is pixel order


def test_coarse_pixel_key_range_holds_exactly_its_alerts(real_night_push):
    _, store, _ = real_night_push
    n = night()
    for order in (2, 5, 8):
        coarse = hp.ang2pix(2**order, n["ra"], n["dec"], nest=True, lonlat=True)
        busiest = np.bincount(coarse).argmax()
        start, stop = healpix.fine_range(busiest, order)
        keys = data_keys(store.table("ztf.sky"), start=f"{start:019d}", stop=f"{stop:019d}")
        inside = {f"{o}_{jd!r}" for o, jd, p in zip(n["oid"], n["jd"], coarse) if p == busiest}
        assert {f"{k.split('_')[2]}_{float(k.split('_')[1])!r}" for k in keys} == inside and len(keys) == len(inside)
        assert len(inside) > 1


def test_sso_holds_exactly_the_mpc_alerts_with_a_real_name(real_night_push):
    _, store, _ = real_night_push
    n = night()
    expected = {f"{name}_{o}" for o, name, roid in zip(n["oid"], n["ssnamenr"], n["roid"])
                if roid == 3 and name not in (None, "", "null")}
    assert len(expected) == 186
    keys = data_keys(store.table("ztf.sso"))
    assert {f"{k.split('_')[0]}_{k.split('_')[2]}" for k in keys} == expected
    some = next(iter(expected)).split("_")[0]
    assert len(data_keys(store.table("ztf.sso"), prefix=f"{some}_".encode())) >= 1


def test_time_index_salts_and_orders(real_night_push):
    config, store, _ = real_night_push
    keys = data_keys(store.table("ztf.time"))
    assert len(keys) == 849
    salts = {k.split("_")[0] for k in keys}
    assert salts <= {f"{i:02x}" for i in range(config.survey.time_buckets)} and len(salts) == 16
    for salt in salts:
        jds = [float(k.split("_")[1]) for k in keys if k.startswith(salt + "_")]
        assert jds == sorted(jds)


def stored_entries(table, fields):
    """Entries of a packed history table: list of (objectId, bucket start, *fields), the
    fields' JSON values as stored."""
    out = []
    for key, row in table.scan(prefix=b"ZTF"):
        oid, start = key.decode().split("_")
        lists = {f: json.loads(row[f"i:{f}".encode()]) for f in fields}
        assert all(len(v) == len(lists["jd"]) for v in lists.values())
        assert lists["jd"] == sorted(lists["jd"])                 # time order within a row
        out.extend((oid, float(start), *vals) for vals in zip(*(lists[f] for f in fields)))
    return out


def history_of_night():
    prv = night()["prv"].combine_chunks()
    flat = pc.list_flatten(prv)
    oid = pc.take(pa.array(night()["oid"]), pc.list_parent_indices(prv)).to_pylist()
    return oid, flat


def test_upper_limits_are_stored_once(real_night_push):
    config, store, summary = real_night_push
    oid, flat = history_of_night()
    upper = pc.is_null(flat.field("magpsf")).to_pylist()
    expected = {(o, jd): (fid, lim) for o, jd, fid, lim, u in zip(
        oid, flat.field("jd").to_pylist(), flat.field("fid").to_pylist(),
        flat.field("diffmaglim").to_pylist(), upper) if u}
    assert sum(upper) > len(expected)  # the same entry came in several alerts
    days = config.survey.history_bucket_days
    stored = stored_entries(store.table("ztf.upper"), ["jd", "fid", "diffmaglim"])
    assert len(stored) == len(expected) == 16461                   # each entry once
    got = {}
    for o, start, jd, fid, lim in stored:
        assert start <= jd < start + days and (start - 0.5) % days == 0   # its bucket, from a UTC midnight
        got[(o, jd)] = (fid, float(np.float32(lim)))                      # diffmaglim is a float
    assert got == {k: (fid, float(np.float32(lim))) for k, (fid, lim) in expected.items()}
    rows = data_keys(store.table("ztf.upper"))
    assert len(rows) < len(expected) / 10                                   # packed
    # puts: a bucket that straddles two staged batches is put, then merged and put again
    assert len(rows) <= summary["rows_written"]["ztf.upper"] <= len(rows) * 1.01
    key, row = next(store.table("ztf.upper").scan(prefix=b"ZTF"))
    assert set(row) == {b"i:jd", b"i:fid", b"i:diffmaglim"}


def test_bad_quality_detections(real_night_push):
    _, store, _ = real_night_push
    oid, flat = history_of_night()
    expected = set()
    fields = ("jd", "candid", "magpsf", "rb", "nbad")
    for o, jd, candid, mag, rb, nbad in zip(oid, *(flat.field(f).to_pylist() for f in fields)):
        if mag is not None and not (rb is not None and rb >= 0.55 and nbad == 0):
            expected.add((o, jd, candid))
    stored = stored_entries(store.table("ztf.uppervalid"), ["jd", "candid", "rb", "nbad"])
    assert len(stored) == len(expected)
    assert {(o, jd, candid) for o, _, jd, candid, _, _ in stored} == expected
    assert all(not (rb >= 0.55 and nbad == 0) for *_, rb, nbad in stored)
    # several detections of one object in one exposure: all kept (keyed objectId_jd they collide)
    assert len({(o, jd) for o, jd, _ in expected}) < len(expected)


def test_history_rows_merge_in_any_order(real_night_push):
    """A later alert carries a bucket's entries again, or only part of them (its 30-day
    window cuts the bucket): merging keeps every entry once, whatever the order."""
    from fink_ingest.tables.history import merge_entries

    _, store, _ = real_night_push
    key, row = max(store.table("ztf.upper").scan(prefix=b"ZTF"), key=lambda kr: len(kr[1][b"i:jd"]))
    whole = {n.decode(): v.decode() for n, v in row.items()}
    lists = {n: json.loads(v) for n, v in whole.items()}
    n = len(lists["i:jd"])
    assert n >= 6

    def part(indices):
        return {c: json.dumps([lists[c][i] for i in indices]) for c in lists}

    early, late = part(range(0, 2 * n // 3)), part(range(n // 3, n))    # overlapping windows
    assert merge_entries(early, late, ["i:jd"]) == merge_entries(late, early, ["i:jd"])
    merged = {c: json.loads(v) for c, v in merge_entries(early, late, ["i:jd"]).items()}
    assert merged == lists
    assert merge_entries(whole, late, ["i:jd"]) is None                   # nothing new: no write
    assert merge_entries(whole, whole, ["i:jd"]) is None


def test_statistics_row(real_night_push):
    _, store, _ = real_night_push
    row = store.table("ztf.statistics").row(b"ztf_20240115")
    counts = {k.decode(): int.from_bytes(v, "big") for k, v in row.items()}
    assert counts["d:alerts"] == 849 and counts["d:objects"] == 846
    assert counts["d:fid_1"] + counts["d:fid_2"] + counts.get("d:fid_3", 0) == 849
    assert sum(v for k, v in counts.items() if k.startswith("c:")) == 849


def test_normalize_ssnamenr():
    names = pa.array(["2009 VN118", "2009VN118", "78358", "null", "", None, " 2010_XZ74 "])
    assert rowkeys.normalize_ssnamenr(names).to_pylist() == [
        "2009VN118", "2009VN118", "78358", None, None, None, "2010XZ74"]


def test_bad_quality_rows_merge_by_jd_and_candid(real_night_push):
    """Detections sharing one exposure (same jd) are told apart by candid, 64-bit ids
    compared exactly: merging halves of a real row gives it back, in either order."""
    from fink_ingest.tables.history import merge_entries

    _, store, _ = real_night_push
    for key, row in store.table("ztf.uppervalid").scan(prefix=b"ZTF"):
        lists = {n.decode(): json.loads(v) for n, v in row.items()}
        if len(set(lists["i:jd"])) < len(lists["i:jd"]):
            break
    else:
        raise AssertionError("no bad-quality row with two detections at one jd")
    n = len(lists["i:jd"])

    def part(indices):
        return {c: json.dumps([lists[c][i] for i in indices]) for c in lists}

    odd, even = part(range(1, n, 2)), part(range(0, n, 2))
    for a, b in ((odd, even), (even, odd)):
        merged = merge_entries(a, b, ["i:jd", "i:candid"])
        assert {c: json.loads(v) for c, v in merged.items()} == lists
