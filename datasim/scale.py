"""Scale one real night of alerts up to N alerts by cloning, for benchmarks.

Clone ``g`` (0 <= g < N) copies source alert ``g % n_source`` in clone round
``r = g // n_source``. Alerts of the same source object in the same round form one
new object: they share the new ``objectId`` and the same sky/time jitter, so the
scaled night keeps the source's alerts-per-object structure and co-located
detections. Everything is vectorised (``Table.take`` + numpy), and written in
files of ``rows_per_file`` rows, generated in batches (row groups) of at most
``_BATCH_ROWS`` rows and ~``_BATCH_BYTES`` bytes, so memory stays bounded whatever N.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fink_ingest.errors import ConfigError, InputError

from fink_ingest.paths import parse_night

from .layout import (JD_UNIX_EPOCH, WRITE_OPTIONS, candidate_jd, find_alert_files, night_dir,
                     read_parquet)

log = logging.getLogger(__name__)

RA_JITTER_DEG = 3.0    # uniform shift of candidate.ra in [-3, 3) degrees
DEC_JITTER_DEG = 3.0   # uniform shift of candidate.dec in [-3, 3) degrees, clipped to [-90, 90]
JD_JITTER_DAYS = 0.02  # uniform time shift in [-0.02, 0.02) days (about 29 minutes)
JD_DECIMALS = 7        # ZTF writes jd to 1e-7 day (~9 ms): shifted times are rounded to it,
                       # so clones carry times like the survey's, not 17 digits of jitter
_BATCH_ROWS = 10_000   # at most this many rows generated at once (one parquet row group) ...
_BATCH_BYTES = 128 * 2**20  # ... and about this many bytes of Arrow memory (cutouts: ~50 kB/row)
_ID_SPACE = 13 * 26**6  # objectId letters 'n'..'z' then 6 letters: never a real ZTF name
_CANDID_BASE = 4 * 10**18
_MAX_SEED = 10_000
_MAX_ALERTS = 10**10
_MAX_DAY = (2**63 - _CANDID_BASE) // 10**14 - 1  # candid = base + day * 1e14 + seed * 1e10 + clone index
_JD_FIELDS = ("jd", "jdstarthist", "jdendhist")  # candidate fields moved with the alert


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Counter-based hash of uint64 values: deterministic pseudo-random bits per object."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniform(obj: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """Uniform [-1, 1) float64 per object number, one independent stream per ``stream``."""
    key = np.uint64((seed * 0x100000001B3 + stream * 0xC2B2AE3D27D4EB4F) % 2**64)
    bits = _splitmix64(obj.astype(np.uint64) ^ key)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0


def object_ids(obj: np.ndarray, year: int, seed: int) -> pa.Array:
    """ZTF-style object names, one per object number.

    Parameters
    ----------
    obj : numpy.ndarray of int
        Object numbers, shape (n,), each in ``[0, 13 * 26**6)``.
    year : int
        Year of the night; its last two digits follow 'ZTF'.
    seed : int
        Keys the permutation: the same (obj, year, seed) always gives the same name.

    Returns
    -------
    pyarrow.StringArray
        Shape (n,), 'ZTF' + 2 digits + 7 lowercase letters. A seed-keyed affine
        permutation of ``[0, 13 * 26**6)`` gives different numbers different names;
        the first letter is in 'n'..'z', which real ZTF names (issued in order from
        'aaaaaaa', a few million a year) never reach, so clones never clash with them.
    """
    rng = np.random.default_rng(seed)
    a = int(rng.integers(1, 2**29)) * 2 + 1
    a += 2 if a % 13 == 0 else 0  # odd and not a multiple of 13: coprime with 2**6 * 13**7
    b = int(rng.integers(0, _ID_SPACE))
    x = (obj.astype(np.uint64) * np.uint64(a) + np.uint64(b)) % np.uint64(_ID_SPACE)
    chars = np.empty((len(obj), 12), dtype=np.uint8)
    chars[:, :5] = np.frombuffer(f"ZTF{year % 100:02d}".encode(), dtype=np.uint8)
    chars[:, 5] = ord("n") + (x // np.uint64(26**6)).astype(np.uint8)
    x = x % np.uint64(26**6)
    for pos in range(11, 5, -1):
        chars[:, pos] = ord("a") + (x % np.uint64(26)).astype(np.uint8)
        x //= np.uint64(26)
    offsets = np.arange(0, 12 * len(obj) + 1, 12, dtype=np.int32)
    return pa.StringArray.from_buffers(len(obj), pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


def _like(values: np.ndarray, original: pa.Array) -> pa.Array:
    """Numpy values as an Arrow array of ``original``'s type and null mask."""
    mask = original.is_null().to_numpy(zero_copy_only=False) if original.null_count else None
    return pa.array(values, mask=mask).cast(original.type)


def _shift_jd(values: np.ndarray, d_jd) -> np.ndarray:
    """Julian Dates moved by ``d_jd`` days, rounded to the survey's ``JD_DECIMALS``."""
    return np.round(values + d_jd, JD_DECIMALS)


def _num(arr: pa.Array) -> np.ndarray:
    return pc.fill_null(arr.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)


def _replace_fields(struct: pa.StructArray, new: dict) -> pa.StructArray:
    """Rebuild a struct array with some children replaced; field order, types and nulls kept."""
    children = [new.get(f.name, struct.field(i)) for i, f in enumerate(struct.type)]
    mask = struct.is_null() if struct.null_count else None
    return pa.StructArray.from_arrays(children, fields=list(struct.type), mask=mask)


def _shift_history(prv: pa.ListArray, d_jd, d_ra, d_dec) -> pa.ListArray:
    """Shift jd/ra/dec of every element of a list<struct> column by its row's amounts."""
    offsets = prv.offsets.to_numpy()
    values = prv.values.slice(offsets[0], offsets[-1] - offsets[0])
    rows = np.repeat(np.arange(len(prv)), np.diff(offsets))
    names = {f.name for f in values.type}
    new = {}
    if "jd" in names:
        new["jd"] = _like(_shift_jd(_num(values.field("jd")), d_jd[rows]), values.field("jd"))
    if "ra" in names:
        new["ra"] = _like(np.mod(_num(values.field("ra")) + d_ra[rows], 360.0) % 360.0, values.field("ra"))
    if "dec" in names:
        new["dec"] = _like(np.clip(_num(values.field("dec")) + d_dec[rows], -90, 90), values.field("dec"))
    values = _replace_fields(values, new)
    mask = prv.is_null() if prv.null_count else None
    return pa.ListArray.from_arrays(pa.array(offsets - offsets[0], pa.int32()), values,
                                    type=prv.type, mask=mask)


def load_source(source, drop_columns=()) -> pa.Table:
    """Read the real alerts to clone as one Spark-readable table.

    Parameters
    ----------
    source : str, path or sequence of them
        Parquet files or directories (searched recursively). The first file (in
        sorted order) fixes the schema; later files are cast to it.
    drop_columns : sequence of str
        Columns to leave out; names not in the source are ignored with a warning.

    Returns
    -------
    pyarrow.Table
        n_source rows (alerts with a null ``candidate.jd`` left out), one chunk.

    Raises
    ------
    InputError
        No parquet file found, a file unreadable or not castable to the first schema,
        or no ``candidate.jd`` / ``candid`` / ``objectId`` column.
    """
    rejected: list = []
    files = [p for p, kind in find_alert_files(source, rejected) if kind == "parquet"]
    if rejected or not files:
        why = "; ".join(f"{p}: {r}" for p, r in rejected) or "no parquet file found"
        raise InputError(f"scale source {source}: {why}")
    tables = [read_parquet(files[0])]
    for path in files[1:]:
        table = read_parquet(path)
        try:
            tables.append(table.select(tables[0].column_names).cast(tables[0].schema))
        except (KeyError, ValueError, pa.ArrowInvalid, NotImplementedError) as exc:
            raise InputError(f"{path}: columns differ from {files[0]} and cannot be cast: {exc}") from exc
    table = pa.concat_tables(tables).combine_chunks()
    missing = [c for c in drop_columns if c not in table.column_names]
    if missing:
        log.warning("drop_columns %s not in the source, ignored", missing)
    table = table.drop_columns([c for c in drop_columns if c in table.column_names])
    for col in ("candid", "objectId"):
        if col not in table.column_names:
            raise InputError(f"{files[0]}: no {col} column, not a ZTF alert file")
    jd = candidate_jd(table, str(files[0]))
    if np.isnan(jd).any():
        log.warning("%d source alerts with null candidate.jd not cloned", int(np.isnan(jd).sum()))
        table = table.filter(pa.array(~np.isnan(jd)))
    if table.num_rows == 0:
        raise InputError(f"scale source {source}: no alert with a candidate.jd")
    return table


def _check(n_alerts, seed, rows_per_file, workers):
    for name, value, low, high in (("n_alerts", n_alerts, 1, _MAX_ALERTS), ("seed", seed, 0, _MAX_SEED - 1),
                                   ("rows_per_file", rows_per_file, 1, None), ("workers", workers, 1, None)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
                or (high is not None and value > high):
            raise ConfigError(f"{name}={value!r}: expected an integer in [{low}, {high or 'inf'}]")


def scale_night(source, prefix, night, n_alerts, *, seed=0, rows_per_file=50_000, drop_columns=(),
                workers=2) -> dict:
    """Write a night of exactly ``n_alerts`` alerts cloned from real source alerts.

    Parameters
    ----------
    source : str, path or sequence of them
        Parquet files or directories of real alerts (e.g. one datalake night).
    prefix : str or path
        Datalake root; output is ``<prefix>/science/year=/month=/day=/part-XXXXX-scaled.parquet``.
        Scaled files already in that night directory are replaced.
    night : str or datetime.date
        Target night (UTC date), 'YYYY-MM-DD' or 'YYYYMMDD'.
    n_alerts : int
        Number of alerts to write, 1 <= n_alerts <= 1e10.
    seed : int
        0 <= seed < 10000; fixes objectIds, candids and jitters (same seed -> same output).
    rows_per_file : int
        Rows per parquet file; the last file holds the remainder.
    drop_columns : sequence of str
        Columns not to write (e.g. cutouts for a lighter benchmark).
    workers : int
        Files written in parallel threads; peak memory is a few times ``workers * _BATCH_BYTES``.

    Returns
    -------
    dict
        ``night`` ('YYYY-MM-DD'), ``alerts`` (int), ``objects`` (distinct new objectIds),
        ``source_alerts`` (int), ``files`` (list of str, one per ``rows_per_file`` rows).

    Raises
    ------
    ConfigError
        Bad ``night`` (or one past 2112), ``n_alerts``, ``seed``, ``rows_per_file`` or ``workers``.
    InputError
        Source missing, unreadable or not alerts (see :func:`load_source`).
    """
    _check(n_alerts, seed, rows_per_file, workers)
    date = night if isinstance(night, dt.date) else parse_night(night)
    src = load_source(source, drop_columns)
    n_src = src.num_rows
    _, obj_code = np.unique(src["objectId"].to_numpy(zero_copy_only=False).astype(str), return_inverse=True)
    n_obj = int(obj_code.max()) + 1
    if -(-n_alerts // n_src) * n_obj > _ID_SPACE:
        raise ConfigError(f"n_alerts={n_alerts}: more objects than the objectId space allows")
    day = (date - dt.date(1970, 1, 1)).days
    if not 0 <= day < _MAX_DAY:
        raise ConfigError(f"night {date}: candids are only defined for nights from 1970 to 2112")
    jd_src = candidate_jd(src, "source")
    tod = jd_src - JD_UNIX_EPOCH - np.floor(jd_src - JD_UNIX_EPOCH)  # time of day, days
    ts_us = _timestamp_us(src)
    out_dir = night_dir(prefix, np.datetime64(date, "D"))
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = dict(src=src, n_src=n_src, obj_code=obj_code, n_obj=n_obj, seed=seed, day=day, tod=tod,
               jd_src=jd_src, ts_us=ts_us, date=date,
               batch_rows=int(np.clip(_BATCH_BYTES * n_src // max(src.nbytes, 1), 100, _BATCH_ROWS)))
    starts = list(range(0, n_alerts, rows_per_file))
    jobs = [(out_dir / f"part-{i:05d}-scaled.parquet", lo, min(lo + rows_per_file, n_alerts))
            for i, lo in enumerate(starts)]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:  # writers release the GIL
        files = list(pool.map(lambda job: _write_file(ctx, *job), jobs))
    for old in out_dir.glob("part-*-scaled.parquet"):
        if str(old) not in files:
            old.unlink()
    rounds = -(-n_alerts // n_src)
    objects = (rounds - 1) * n_obj + len(np.unique(obj_code[: n_alerts - (rounds - 1) * n_src]))
    return {"night": date.isoformat(), "alerts": n_alerts, "objects": int(objects),
            "source_alerts": n_src, "files": files}


def _write_file(ctx: dict, path: Path, start: int, stop: int) -> str:
    """Write alerts ``start..stop-1`` to ``path`` atomically, one row group per generated batch."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with pq.ParquetWriter(tmp, ctx["src"].schema, **WRITE_OPTIONS) as writer:
            for lo in range(start, stop, ctx["batch_rows"]):
                writer.write_table(_clone_batch(ctx, lo, min(lo + ctx["batch_rows"], stop)))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    log.info("%s: alerts %d..%d", path, start, stop - 1)
    return str(path)


def _timestamp_us(src: pa.Table):
    """Source ``timestamp`` as int64 microseconds (None if absent or unparseable)."""
    if "timestamp" not in src.column_names:
        return None
    col = src["timestamp"]
    try:
        ts = col.cast(pa.timestamp("us", tz=getattr(col.type, "tz", None)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        log.warning("timestamp column of type %s not parseable: cloned unchanged", col.type)
        return None
    return pc.fill_null(ts.cast(pa.int64()), 0).to_numpy()


def _clone_batch(ctx: dict, start: int, stop: int) -> pa.Table:
    """Alerts ``start..stop-1`` of the scaled night as a table of the source schema."""
    g = np.arange(start, stop, dtype=np.int64)
    idx = g % ctx["n_src"]
    obj = (g // ctx["n_src"]) * ctx["n_obj"] + ctx["obj_code"][idx]
    seed = ctx["seed"]
    table = ctx["src"].take(pa.array(idx))
    d_ra = _uniform(obj, seed, 1) * RA_JITTER_DEG
    d_dec = _uniform(obj, seed, 2) * DEC_JITTER_DEG
    jitter = _uniform(obj, seed, 3) * JD_JITTER_DAYS
    frac = ctx["tod"][idx] + jitter
    frac = np.where((frac < 0) | (frac >= 1), ctx["tod"][idx] - jitter, frac)  # reflect into the day
    jd_new = JD_UNIX_EPOCH + ctx["day"] + np.clip(frac, 1e-6, 1 - 1e-6)
    d_jd = jd_new - ctx["jd_src"][idx]
    candid = _CANDID_BASE + ctx["day"] * 10**14 + seed * _MAX_ALERTS + g

    cand = table["candidate"].combine_chunks()
    names = {f.name for f in cand.type}
    new = {"candid": pa.array(candid).cast(cand.type.field("candid").type)} if "candid" in names else {}
    for name in _JD_FIELDS:
        if name in names:
            new[name] = _like(_shift_jd(_num(cand.field(name)), d_jd), cand.field(name))
    if "ra" in names:
        ra = np.mod(_num(cand.field("ra")) + d_ra, 360.0)
        new["ra"] = _like(np.where(ra >= 360.0, 0.0, ra), cand.field("ra"))
    if "dec" in names:
        new["dec"] = _like(np.clip(_num(cand.field("dec")) + d_dec, -90.0, 90.0), cand.field("dec"))
    cols = {"candidate": _replace_fields(cand, new),
            "candid": pa.array(candid).cast(table.schema.field("candid").type),
            "objectId": object_ids(obj, ctx["date"].year, seed).cast(table.schema.field("objectId").type)}
    if "prv_candidates" in table.column_names:
        prv = table["prv_candidates"].combine_chunks()
        if pa.types.is_list(prv.type) and pa.types.is_struct(prv.type.value_type):
            cols["prv_candidates"] = _shift_history(prv, d_jd, d_ra, d_dec)
    if "jd_first_real_det" in table.column_names:
        col = table["jd_first_real_det"].combine_chunks()
        cols["jd_first_real_det"] = _like(_shift_jd(_num(col), d_jd), col)
    if ctx["ts_us"] is not None:
        col = table["timestamp"].combine_chunks()
        us = ctx["ts_us"][idx] + np.round(d_jd * 86_400e6).astype(np.int64)
        mask = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
        ts = pa.array(us, pa.int64(), mask=mask).cast(pa.timestamp("us", tz=getattr(col.type, "tz", None)))
        cols["timestamp"] = pc.strftime(ts, format="%Y-%m-%d %H:%M:%S") if pa.types.is_string(col.type) \
            else ts.cast(col.type)
    for name, value in (("year", ctx["date"].year), ("month", ctx["date"].month), ("day", ctx["date"].day)):
        if name in table.column_names:
            cols[name] = pa.array(np.full(len(g), value)).cast(table.schema.field(name).type)
    for name, arr in cols.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), arr)
    return table
