"""Index tables on the real night, checked against values computed independently."""
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
        pixel, jd, oid = key.split("_")
        got[f"{oid}_{float(jd)!r}"] = int(pixel)
        assert len(pixel) == 19
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
        assert {f"{k.split('_')[2]}_{float(k.split('_')[1])!r}" for k in keys} == inside
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


def test_upper_limits_are_stored_once(real_night_push):
    _, store, summary = real_night_push
    flat = pc.list_flatten(night()["prv"].combine_chunks())
    owners = pc.list_parent_indices(night()["prv"].combine_chunks())
    oid = pc.take(pa.array(night()["oid"]), owners)
    upper = pc.is_null(flat.field("magpsf"))
    entries = {(o, jd) for o, jd, u in zip(oid.to_pylist(), flat.field("jd").to_pylist(), upper.to_pylist()) if u}
    keys = data_keys(store.table("ztf.upper"))
    assert len(keys) == len(entries) == summary["rows_written"]["ztf.upper"]
    assert {(k.split("_")[0], float(k.split("_")[1])) for k in keys} == entries
    assert pc.sum(upper.cast("int64")).as_py() > len(entries)  # the same entry came in several alerts
    key, row = next(store.table("ztf.upper").scan(prefix=b"ZTF"))
    assert set(row) == {b"i:fid", b"i:diffmaglim"}


def test_bad_quality_detections(real_night_push):
    _, store, _ = real_night_push
    prv = night()["prv"].combine_chunks()
    flat = pc.list_flatten(prv)
    oid = pc.take(pa.array(night()["oid"]), pc.list_parent_indices(prv))
    expected = set()
    fields = ("jd", "candid", "magpsf", "rb", "nbad")
    for o, jd, candid, mag, rb, nbad in zip(oid.to_pylist(), *(flat.field(f).to_pylist() for f in fields)):
        if mag is not None and not (rb is not None and rb >= 0.55 and nbad == 0):
            expected.add((o, jd, candid))
    keys = data_keys(store.table("ztf.uppervalid"))
    assert {(k.split("_")[0], float(k.split("_")[1]), int(k.split("_")[2])) for k in keys} == expected
    # several detections of one object in one exposure: all kept (keyed objectId_jd they collide)
    assert len({(o, jd) for o, jd, _ in expected}) < len(expected)


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
