"""Tables from the alerts' history (``prv_candidates``): upper limits and bad-quality detections.

Every alert carries its object's recent history (ZTF: 30 days, ~19 upper limits and a
bad-quality detection or two per alert on the real night 2024-01-15), so the same entry
arrives in many alerts; it is stored once.

Layout: one row per object and time bucket (``[history] bucket_days`` of the survey file,
30 days for ZTF), key ``objectId_jd`` with ``jd`` the bucket's start (a UTC midnight,
fixed-width like every key time). The row's cells are arrays over the bucket's entries,
sorted by time, one per field (``i:jd``, ``i:fid``, ``i:diffmaglim``, ...; JSON text, the
schema row giving ``array<type>``). A prefix scan ``objectId_`` returns an object's whole
history in time order; the read layer turns it back into one row per entry, as Fink's
``withupperlim`` does.

Why not one row per entry, keyed by the entry's jd as in Fink: an entry is ~13 bytes of
information (time, band, limit), a row keyed ``objectId_jd`` costs ~70 bytes on disk, and
with ~19 entries per alert the two history tables alone outgrew half the main table.
Packed by 30 days, they take about a third of what they did (see ``benchmarks/README.md``).

- upper (``<prefix>.upper``): entries with ``magpsf`` null (non-detections, ``diffmaglim``
  set), identified by ``jd``.
- bad quality (``<prefix>.uppervalid``): detections failing Fink's quality cut
  ``rb >= 0.55 and nbad == 0``, identified by ``jd`` and ``candid``: one exposure can give
  several detections of an object (551 such pairs on the real night); keyed ``objectId_jd``
  alone, as in Fink, all but one were lost.

Writing: Spark stages each alert's kept entries with the alert, as one nested column
(``push.stage.HISTORY``), in the alerts' key order; the driver flattens each staged batch
into one entry per row sorted by objectId and time (``entries``: the alerts of an object are
adjacent in that order), packs them with Arrow compute (``rows``), and unites each packed row
with the row already stored under its key (``merge_stored``: a later night's alerts carry
entries of earlier buckets again, cut at their 30-day window; an object's alerts can also
straddle two staged batches). A row that gains nothing is not rewritten. Pushing nights in
any order, again, or rebuilding, stores each entry once and never drops one. The merge reads
the store, so rows of one key are written one after the other: the driver merges in its
single writer thread; with executor writes, the history is exploded one entry per row in
Spark and the write job repartitions the entries by objectId and sorts each task's share, so
one task writes all of an object's rows in order.
"""
from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import functions as F

from fink_ingest import rowkeys
from fink_ingest.tables.base import Rows, TableBuilder, column, sort_indices

RB_MIN = 0.55      # ZTF real-bogus cut of Fink's science stream: rb >= 0.55
NBAD_MAX = 0       # and nbad == 0 (bad pixels within 5x5 of the candidate)
OBJECT = "objectId"
UNCHANGED = "unchanged: already stored"  # skipped reason of a packed row that gains nothing


def bucket_start(jd, days):
    """Start of the history bucket holding each ``jd`` (pyarrow float64 array): the Julian
    Date of the UTC midnight ``days * floor((jd - 0.5) / days)`` days after JD 0.5."""
    return pc.add(pc.multiply(pc.floor(pc.divide(pc.subtract(jd, 0.5), float(days))), float(days)), 0.5)


def entries(batch, column_name, survey):
    """The history entries of a staged batch of alerts, one per row.

    Parameters
    ----------
    batch : pyarrow.RecordBatch or pyarrow.Table
        Staged alerts, with the object id cell (``family:objectId``) and ``column_name``,
        each alert's kept entries (``list<struct<field...>>``, ``push.stage.alert_frame``).
    column_name : str
    survey : fink_ingest.config.Survey

    Returns
    -------
    pyarrow.RecordBatch
        ``objectId`` and one ``family:field`` column per entry field, sorted by objectId,
        ``jd`` and the detection id (nulls first): what ``HistoryTable.rows`` packs. Repeats
        of an entry (from several alerts of one object) are adjacent.
    """
    fam = survey.original_family
    lists = batch.column(column_name)
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    flat = pc.list_flatten(lists)
    objects = pc.take(batch.column(f"{fam}:{survey.leaf['object_id']}"), pc.list_parent_indices(lists))
    table = pa.table({OBJECT: objects, **{f"{fam}:{f.name}": pc.struct_field(flat, f.name) for f in flat.type}})
    order = [OBJECT, f"{fam}:jd"] + [n for n in (f"{fam}:{survey.history_detection_id}",) if n in table.column_names]
    table = table.take(sort_indices(table, order)).combine_chunks()
    batches = table.to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


def _json_tokens(values):
    """JSON text of each value of a pyarrow array (``null`` for nulls; non-finite floats as
    the strings Spark's ``to_json`` writes, ``"NaN"``, ``"Infinity"``, ``"-Infinity"``)."""
    t = values.type
    if pa.types.is_floating(t):
        text = pc.cast(values, pa.string())  # shortest text that reads back the same value
        if pc.all(pc.fill_null(pc.is_finite(values), True)).as_py():
            return pc.fill_null(text, "null")  # the usual case: one pass, not three
        for bad, token in ((pc.is_nan(values), '"NaN"'), (pc.equal(values, math.inf), '"Infinity"'),
                           (pc.equal(values, -math.inf), '"-Infinity"')):
            text = pc.if_else(pc.fill_null(bad, False), token, text)
    elif pa.types.is_integer(t):
        text = pc.cast(values, pa.string())
    elif pa.types.is_boolean(t):
        text = pc.if_else(values, "true", "false")
    elif pa.types.is_null(t):
        text = pa.nulls(len(values), pa.string())
    else:
        text = pc.cast(values, pa.string())
        for char, escaped in (("\\", "\\\\"), ('"', '\\"')):
            text = pc.replace_substring(text, char, escaped)
        text = pc.binary_join_element_wise('"', text, '"', "")
    return pc.fill_null(text, "null")


def json_array(values, offsets):
    """JSON arrays over runs of a pyarrow array.

    Parameters
    ----------
    values : pyarrow.Array, shape (n,)
    offsets : pyarrow.Array of int32, shape (m + 1,)
        Run boundaries: run ``i`` is ``values[offsets[i]:offsets[i + 1]]``.

    Returns
    -------
    pyarrow.Array of string, shape (m,)
        ``[v0,v1,...]`` per run, each value as ``_json_tokens`` writes it.
    """
    lists = pa.ListArray.from_arrays(offsets, _json_tokens(values))
    return pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", "")


class _Token(str):
    """A JSON number or constant kept as it was written (merges never re-format values)."""


def _parse(text):
    """A JSON array (text or bytes) as a list; numbers stay ``_Token`` text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text, parse_float=_Token, parse_int=_Token, parse_constant=_Token)


def _dump(values):
    return "[" + ",".join("null" if v is None else v if isinstance(v, _Token) else json.dumps(v)
                          for v in values) + "]"


def _number(token):
    """A JSON number token (``_Token``) as int when integral text, else float."""
    text = str(token)
    return int(text) if text.lstrip("-").isdigit() else float(text)


def merge_entries(stored, new, identity):
    """Union of a stored packed row and a new one.

    Parameters
    ----------
    stored, new : dict of str to (str or bytes or None)
        ``family:qualifier`` -> JSON array text (one element per entry; an absent column
        counts as nulls).
    identity : list of str
        Columns identifying an entry (the time first); a new entry replaces a stored one
        with the same identity (a put's last-write-wins).

    Returns
    -------
    dict of str to str, or None
        The merged row (entries sorted by identity, values written as they came), or None if
        it equals the stored row (nothing to write).
    """
    names = list(dict.fromkeys(list(stored) + list(new)))

    def entries(row):
        lists = {n: _parse(row[n]) for n in names if row.get(n) is not None}
        count = len(lists[identity[0]])
        return [tuple(lists[n][i] if n in lists else None for n in names) for i in range(count)]

    at = [names.index(n) for n in identity]
    old = entries(stored)
    merged = {tuple(e[i] for i in at): e for e in old}
    before = dict(merged)
    for e in entries(new):
        merged[tuple(e[i] for i in at)] = e
    if merged == before:
        return None

    def order(ident):  # nulls first, as Spark sorts; 64-bit ids compared as ints, exactly
        return tuple((v is not None, _number(v) if v is not None else 0) for v in ident)

    rows = [merged[k] for k in sorted(merged, key=order)]
    return {n: _dump([e[j] for e in rows]) for j, n in enumerate(names)}


class HistoryTable(TableBuilder):
    """Packed rows keyed ``objectId_jd`` (bucket start) from the staged history."""

    source = "history"
    key = ("object", "bucket")
    cells_key = ""
    merges = True
    # cold: read by object lookups with upper limits only; zstd stores a packed row in ~2/3
    # of LZ4's bytes, at ~10 us a row (1.8 history rows per alert)
    compression = "zstd"

    def families_for(self, survey):
        return [survey.original_family]

    def identity(self, survey):
        """Fields identifying one entry of this table (list of str, time first)."""
        return ["jd"]

    def cell_names(self, survey):
        """Cells of this table (list of ``family:qualifier``): the identity, then the
        survey file's cells for it."""
        fields = dict.fromkeys(self.identity(survey) + list(getattr(survey, self.cells_key)))
        return [f"{survey.original_family}:{f}" for f in fields]

    def cell_types(self, staged_types, survey):
        """Schema-row types: an array of each staged entry field's type."""
        wanted = self.cell_names(survey)
        return {n: f"array<{t}>" for n, t in staged_types.items() if n in wanted}

    def spark_filter(self, survey, field):
        """``keep`` as a Spark condition on one history entry, so that entries no history
        table keeps are not staged.

        Parameters
        ----------
        survey : fink_ingest.config.Survey
        field : callable
            ``field(name)`` -> the Spark column of the entry's field ``name`` (raw value).
        """
        raise NotImplementedError

    def night_keys(self, table, night, survey):
        """None: a packed row holds entries of many nights, and later nights' alerts carry
        them too. Rebuilding a history table for some nights re-puts their entries (a merge:
        nothing doubles, nothing is dropped); after a layout change, rebuild it over all
        nights (``--all-nights``), which starts from an empty table."""
        return []

    def keep(self, batch, survey):
        """Entries of a staged batch this table keeps (pyarrow boolean array)."""
        raise NotImplementedError

    def rows(self, batch, survey):
        """Pack a staged batch (entries sorted by objectId and time) into one row per object
        and bucket: ``Rows`` with unique keys and JSON array cells (``json_array``); repeats
        of an entry (same identity, adjacent once sorted) are kept once."""
        fam = survey.original_family
        batch = batch.filter(pc.fill_null(self.keep(batch, survey), False))
        ident = [column(batch, OBJECT)] + [column(batch, f"{fam}:{f}") for f in self.identity(survey)]
        n = batch.num_rows
        if n > 1:
            same = None
            for col in ident:
                eq = pc.fill_null(pc.equal(col.slice(1), col.slice(0, n - 1)), False)
                same = eq if same is None else pc.and_(same, eq)
            if pc.any(same).as_py():
                batch = batch.filter(pa.concat_arrays([pa.array([True]), pc.invert(same)]))
                n = batch.num_rows
        bucket = bucket_start(pc.cast(column(batch, f"{fam}:jd"), pa.float64()), survey.history_bucket_days)
        obj = column(batch, OBJECT)
        if n > 1:  # a packed row starts where the object or the bucket changes (keys made for those only)
            change = pc.or_(pc.not_equal(obj.slice(1), obj.slice(0, n - 1)),
                            pc.not_equal(bucket.slice(1), bucket.slice(0, n - 1)))
            starts = pc.indices_nonzero(pa.concat_arrays([pa.array([True]), pc.fill_null(change, True)]))
        else:
            starts = pa.array(range(n), pa.uint64())
        keys = rowkeys.make(self.key, {"object": pc.take(obj, starts), "bucket": pc.take(bucket, starts)}, survey)
        offsets = pa.concat_arrays([pc.cast(starts, pa.int32()), pa.array([n], pa.int32())])
        cells = {name: json_array(column(batch, name), offsets)
                 for name in self.cell_names(survey) if name in batch.schema.names}
        return Rows(keys=keys, cells=cells, expected=len(starts))

    def merge_stored(self, table, rows, survey):
        """Unite ``rows`` with the rows ``table`` already holds under the same keys.

        Parameters
        ----------
        table : fink_ingest.store.base.Table
        rows : Rows
            Packed rows of this night (JSON text cells); each key at most once.
        survey : fink_ingest.config.Survey

        Returns
        -------
        Rows
            Rows to write: new keys as given, stored keys merged (``merge_entries``), stored
            keys that gain nothing left out (counted in ``skipped`` as ``unchanged``).
        """
        keys = rows.keys.to_pylist()
        if not keys:
            return rows
        names = list(rows.cells)
        stored = dict(table.rows([k.encode() for k in keys], columns=[n.encode() for n in names]))
        if not stored:
            return rows
        lists = {n: rows.cells[n].to_pylist() for n in names}
        identity = [f"{survey.original_family}:{f}" for f in self.identity(survey)]
        keep = [True] * len(keys)
        for i, key in enumerate(keys):
            old = stored.get(key.encode())
            if not old:
                continue
            merged = merge_entries({n.decode(): v for n, v in old.items()},
                                   {n: lists[n][i] for n in names}, identity)
            if merged is None:
                keep[i] = False
                continue
            for n in names:
                lists[n][i] = merged.get(n)
        skipped = dict(rows.skipped)
        if not all(keep):
            skipped[UNCHANGED] = skipped.get(UNCHANGED, 0) + keep.count(False)
        mask = pa.array(keep)
        return Rows(keys=pc.filter(rows.keys, mask),
                    cells={n: pc.filter(pa.array(lists[n], pa.string()), mask) for n in names},
                    skipped=skipped, types=rows.types, expected=rows.expected)


class UpperTable(HistoryTable):
    """Upper limits: history entries with ``magpsf`` null."""

    kind = "upper"
    cells_key = "upper_cells"

    def keep(self, batch, survey):
        return pc.is_null(column(batch, f"{survey.original_family}:magpsf"))

    def spark_filter(self, survey, field):
        return field("magpsf").isNull()


class BadQualityTable(HistoryTable):
    """Detections of the history that fail ``rb >= 0.55 and nbad == 0``."""

    kind = "uppervalid"
    cells_key = "badquality_cells"
    compression = "dict"  # 128 B a packed row on the real night against zstd's 233 B

    def identity(self, survey):
        return ["jd", survey.history_detection_id]

    def keep(self, batch, survey):
        f = survey.original_family
        detected = pc.is_valid(column(batch, f"{f}:magpsf"))
        good = pc.and_kleene(pc.greater_equal(pc.cast(column(batch, f"{f}:rb"), pa.float64()), RB_MIN),
                             pc.equal(pc.cast(column(batch, f"{f}:nbad"), pa.int64()), NBAD_MAX))
        return pc.and_(detected, pc.invert(pc.fill_null(good, False)))

    def spark_filter(self, survey, field):
        f = field
        good = (f("rb") >= RB_MIN) & (f("nbad") == NBAD_MAX)
        return f("magpsf").isNotNull() & ~F.coalesce(good, F.lit(False))
