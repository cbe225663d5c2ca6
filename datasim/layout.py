"""Lay out real alert files (parquet, Avro) as a Fink datalake partitioned by night.

The night of an alert is the UTC date of ``candidate.jd``. The output tree is
``<prefix>/science/year=YYYY/month=MM/day=DD/part-00000-<source-tag>.parquet``,
written so that Apache Spark 4 reads it (see :func:`datasim.arrow_types.spark_schema`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fink_ingest.errors import InputError

from .arrow_types import avro_to_arrow_schema, spark_schema, to_spark, written_by_spark  # noqa: F401

log = logging.getLogger(__name__)

JD_UNIX_EPOCH = 2440587.5  # Julian Date of 1970-01-01T00:00:00 UTC, days
PARQUET_SUFFIXES = (".parquet", ".parq")
AVRO_SUFFIXES = (".avro",)
WRITE_OPTIONS = dict(compression="snappy", coerce_timestamps="us", allow_truncated_timestamps=True)
_AVRO_BATCH = 5_000  # Avro records converted to Arrow at once
# ---------------------------------------------------------------------------- nights
def _night_days(jd: np.ndarray) -> np.ndarray:
    """Night (UTC date) of Julian Dates (days, no NaN) as int64 days since 1970-01-01, same shape."""
    return np.floor(np.asarray(jd, dtype=np.float64) - JD_UNIX_EPOCH).astype(np.int64)


def night_dir(prefix: str | os.PathLike, day: np.datetime64 | str) -> Path:
    """``<prefix>/science/year=YYYY/month=MM/day=DD``: the directory of night ``day``.

    ``day`` is a ``numpy.datetime64``, ``datetime.date`` or ISO string (UTC date).
    """
    y, m, d = str(np.datetime64(day, "D")).split("-")
    return Path(prefix) / "science" / f"year={y}" / f"month={m}" / f"day={d}"


def candidate_jd(table: pa.Table, name: str) -> np.ndarray:
    """Julian Date ``candidate.jd`` (days, float64, shape (n,), NaN where null) of n alerts.

    Raises InputError, naming the file ``name``, if ``table`` has no ``candidate.jd``.
    """
    if "candidate" not in table.column_names or not pa.types.is_struct(table.schema.field("candidate").type) \
            or table.schema.field("candidate").type.get_field_index("jd") < 0:
        raise InputError(f"{name}: no candidate.jd column, not a ZTF alert file")
    jd = pc.struct_field(table["candidate"], "jd")
    return jd.to_numpy().astype(np.float64) if jd.null_count == 0 else \
        pc.fill_null(jd.cast(pa.float64()), np.nan).to_numpy()


# ---------------------------------------------------------------------------- discovery
@dataclass
class _Source:
    tag: str
    kind: str  # "parquet" or "avro"
    paths: list[Path] = field(default_factory=list)


def _kind(path: Path, sniff: bool = False) -> str | None:
    """"parquet", "avro" or None, from the file name suffix, else (``sniff``) from the magic bytes."""
    name = path.name.lower()
    kind = "parquet" if name.endswith(PARQUET_SUFFIXES) else "avro" if name.endswith(AVRO_SUFFIXES) else None
    if kind is None and sniff:
        with open(path, "rb") as fh:
            kind = {b"PAR1": "parquet", b"Obj\x01": "avro"}.get(fh.read(4))
    return kind


def find_alert_files(inputs, rejected: list) -> list[tuple[Path, str]]:
    """Expand files and directories to the alert files they hold.

    Parameters
    ----------
    inputs : str, path or sequence of them
        Files, or directories searched recursively; hidden and ``_``-prefixed entries
        (Spark's ``_SUCCESS``, ``_temporary``, ``.crc``) and other suffixes are skipped.
    rejected : list
        Receives ``(path, reason)`` for a missing path, an empty directory, or a file
        given by name that is neither parquet nor Avro (by suffix, then magic bytes).

    Returns
    -------
    list of (pathlib.Path, str)
        Resolved paths with their kind ``"parquet"`` or ``"avro"``, sorted, no duplicates.
    """
    found: dict[Path, str] = {}
    for item in [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs:
        path = Path(item)
        if not path.exists():
            rejected.append((str(path), "does not exist"))
        elif path.is_dir():
            hits = [(p, _kind(p)) for p in sorted(path.rglob("*")) if p.is_file()
                    and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)]
            hits = [(p, k) for p, k in hits if k]
            if not hits:
                rejected.append((str(path), "no parquet or Avro file found in this directory"))
            found.update((p.resolve(), k) for p, k in hits)
        else:
            try:
                kind = _kind(path, sniff=True)
            except OSError as exc:
                rejected.append((str(path), f"cannot be opened: {exc.strerror or exc}"))
                continue
            if kind is None:
                rejected.append((str(path), "not a parquet or Avro file (unknown suffix and magic bytes)"))
            else:
                found[path.resolve()] = kind
    return sorted(found.items())


def _tag(text: str) -> str:
    for suffix in (".parquet", ".parq", ".avro", ".snappy"):
        text = text[: -len(suffix)] if text.lower().endswith(suffix) else text
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:80] or "source"


def _group_sources(files: list[tuple[Path, str]], rejected: list) -> list[_Source]:
    """One source per parquet file; Avro files grouped per (directory, writer schema)."""
    sources = [_Source(_tag(p.name), "parquet", [p]) for p, k in files if k == "parquet"]
    groups: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for path, kind in files:
        if kind != "avro":
            continue
        try:
            with open(path, "rb") as fh:
                schema = fastavro.reader(fh).writer_schema
        except Exception as exc:  # noqa: BLE001 - any decoding failure rejects the file
            rejected.append((str(path), f"unreadable Avro file: {exc}"))
            continue
        digest = hashlib.sha1(json.dumps(schema, sort_keys=True).encode()).hexdigest()[:8]
        groups[(path.parent, digest)].append(path)
    per_dir = Counter(directory for directory, _ in groups)
    for (directory, digest), paths in groups.items():
        tag = _tag(paths[0].name) if len(paths) == 1 else \
            _tag(directory.name) + (f"-{digest}" if per_dir[directory] > 1 else "")
        sources.append(_Source(tag, "avro", paths))
    counts = Counter(src.tag for src in sources)
    for src in sources:  # same file name in two directories: tell them apart by path
        if counts[src.tag] > 1:
            src.tag += "-" + hashlib.sha1(str(src.paths[0]).encode()).hexdigest()[:8]
    return sorted(sources, key=lambda s: s.tag)


# ---------------------------------------------------------------------------- reading
def read_parquet(path: Path) -> pa.Table:
    """Read one parquet file of alerts (all rows and columns), made Spark-readable by :func:`to_spark`.

    Partition directories above the file are not turned into columns; naive
    timestamps are tagged UTC if Spark wrote the file. Raises InputError naming
    the file if it cannot be read (truncated, not parquet).
    """
    try:
        table = pq.ParquetFile(path).read()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
        raise InputError(f"{path}: unreadable parquet file: {exc}") from exc
    return to_spark(table, utc_timestamps=written_by_spark(table.schema))


def _read_avro_group(paths: list[Path], rejected: list) -> pa.Table | None:
    """Read Avro files sharing one writer schema into one Spark-readable table."""
    schema, batches, records = None, [], []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                reader = fastavro.reader(fh)
                if schema is None:
                    schema = avro_to_arrow_schema(reader.writer_schema)
                recs = list(reader)
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt Avro data
            rejected.append((str(path), f"unreadable Avro file: {exc}"))
            continue
        records.extend(recs)
        if len(records) >= _AVRO_BATCH:
            batches.append(pa.Table.from_pylist(records, schema=schema))
            records = []
    if records:
        batches.append(pa.Table.from_pylist(records, schema=schema))
    return to_spark(pa.concat_tables(batches)) if batches else None


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` atomically (hidden temporary file, then rename), snappy, us timestamps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, **WRITE_OPTIONS)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- layout
def layout_datalake(inputs, prefix, *, overwrite: bool = False) -> dict:
    """Write alert files as a datalake partitioned by night under ``<prefix>/science``.

    Parameters
    ----------
    inputs : str, path or sequence of them
        Parquet files, directories (searched recursively, e.g. a datalake tree) and
        Avro files (single raw ZTF alerts or containers).
    prefix : str or path
        Datalake root; files go to ``science/year=YYYY/month=MM/day=DD/``.
    overwrite : bool
        If True, parquet files already under ``<prefix>/science`` that this run did
        not write are deleted afterwards. Files of the same sources are always replaced.

    Returns
    -------
    dict
        ``nights``: {'YYYY-MM-DD': number of alerts}; ``alerts``: total alerts written;
        ``files``: list of the parquet paths written (str); ``rejected``: list of
        ``(path, reason)`` for input files (or alerts) skipped.

    Raises
    ------
    InputError
        If nothing could be laid out (every input missing, unreadable or not alerts).
    """
    rejected: list[tuple[str, str]] = []
    sources = _group_sources(find_alert_files(inputs, rejected), rejected)
    nights: dict[str, int] = defaultdict(int)
    written: list[str] = []
    for src in sources:
        name = str(src.paths[0]) if len(src.paths) == 1 else f"{src.paths[0].parent}/*.avro"
        try:
            table = read_parquet(src.paths[0]) if src.kind == "parquet" else _read_avro_group(src.paths, rejected)
            if table is None:
                continue
            jd = candidate_jd(table, name)
        except InputError as exc:
            rejected.append((name, str(exc).removeprefix(f"{name}: ")))
            continue
        bad = np.isnan(jd)
        if bad.any():
            rejected.append((name, f"{int(bad.sum())} alerts with null candidate.jd skipped"))
        days = _night_days(np.where(bad, JD_UNIX_EPOCH, jd))
        for day in np.unique(days[~bad]):
            part = table.filter(pa.array((days == day) & ~bad))
            out = night_dir(prefix, np.datetime64(int(day), "D")) / f"part-00000-{src.tag}.parquet"
            _write_parquet(part, out)
            nights[str(np.datetime64(int(day), "D"))] += part.num_rows
            written.append(str(out))
            log.info("%s: %d alerts -> %s", name, part.num_rows, out)
    for path, reason in rejected:
        log.info("rejected %s: %s", path, reason)
    if not written:
        reasons = "; ".join(f"{p}: {r}" for p, r in rejected) or "no input given"
        raise InputError(f"nothing laid out into {prefix}: {reasons}")
    if overwrite:
        keep = {Path(p).resolve() for p in written}
        for old in (Path(prefix) / "science").glob("year=*/month=*/day=*/*.parquet"):
            if old.resolve() not in keep:
                log.info("overwrite: removing %s", old)
                old.unlink()
    return {"nights": dict(sorted(nights.items())), "alerts": sum(nights.values()),
            "files": written, "rejected": rejected}
