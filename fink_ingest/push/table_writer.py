"""One table's part of a push written by the driver: its rows settled, encoded, packed and
put, its schema row reconciled, and what it expected, wrote and did not place counted
(``TableWriter``), which the push reconciles (``checks.reconcile``); the cell encoding and
the losses every writer shares (the executors' writer too, ``executors``).
"""
from __future__ import annotations

import collections
import threading
import time

import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest import cells as cellcodec
from fink_ingest import schemarow
from fink_ingest.errors import SchemaError
from fink_ingest.tables.base import Rows

# Rows of a table whose keys do not follow the staged order (time, sky, class... indexes)
# gathered before they are written as one sorted run (``Table.write_run``); bounds memory
# (~30 MB a table of ~200-byte rows) while the store's B-tree is visited once per run.
RUN_ROWS = 100_000
# Reasons a row is not placed that mean an alert is missing from a table (a night with any
# of them is incomplete); every other reason is the table's design (no stamps, not an SSO...).
REPEATED_KEY = "key repeated within the night: lost"
NO_CELLS = "row without any cell: not storable"
LOSSES = (REPEATED_KEY, NO_CELLS)


def settle(rows, types):
    """Rows ready to encode, with every row left out counted as lost in ``skipped``.

    Keys are unique within a push (one row per alert id in the alert tables, one packed row
    per object and bucket in the history tables), so neither case should occur; should one,
    the run is reported incomplete with the reason, instead of a put silently replacing
    another row (``REPEATED_KEY``: a key equal to the one before it) or a store silently
    ignoring a row (``NO_CELLS``: no cell of a type the table writes).

    Parameters
    ----------
    rows : fink_ingest.tables.base.Rows
    types : dict of str to str
        The cells the table writes.

    Returns
    -------
    fink_ingest.tables.base.Rows
    """
    keys, n = rows.keys, len(rows.keys)
    if n == 0:
        return rows
    keep = pa.concat_arrays([pa.array([True]), pc.invert(pc.equal(keys.slice(1), keys.slice(0, n - 1)))]) \
        if n > 1 else pa.array([True])
    has_cell = None
    for name, values in rows.cells.items():
        if name in types:
            valid = pc.is_valid(values)
            has_cell = valid if has_cell is None else pc.or_(has_cell, valid)
    has_cell = pa.array([False] * n) if has_cell is None else has_cell
    skipped = dict(rows.skipped)
    repeats = n - int(pc.sum(pc.cast(keep, pa.int64())).as_py())
    empty = int(pc.sum(pc.cast(pc.and_(keep, pc.invert(has_cell)), pa.int64())).as_py() or 0)
    if not repeats and not empty:
        return rows
    for reason, count in ((REPEATED_KEY, repeats), (NO_CELLS, empty)):
        if count:
            skipped[reason] = skipped.get(reason, 0) + count
    keep = pc.and_(keep, has_cell)
    return Rows(keys=pc.filter(keys, keep), cells={c: pc.filter(a, keep) for c, a in rows.cells.items()},
                skipped=skipped, types=rows.types, expected=rows.expected)


class TableWriter:
    """One table's part of a push: schema-row types, encoding, counts."""

    def __init__(self, store, builder, config, staged_types, present):
        self.builder = builder
        self.name = builder.table_name(config.table_prefix)
        self.table = store.table(self.name)  # created and checked by ``checks.open_tables``
        self.survey = config.survey
        types = builder.cell_types(staged_types, config.survey)
        derived = set(types) - set(staged_types)
        stored = schemarow.read(self.table, self.survey.schema_version)
        self.types, changed, self.notes = schemarow.reconcile(stored, types, present | derived)
        schemarow.put(self.table, self.survey.schema_version, changed)
        self.expected = 0
        self.written = 0
        self.skipped = collections.Counter()
        self.seconds = 0.0
        self.store_seconds = 0.0  # executor writes: time inside the store's put calls (Thrift)
        self._lock = threading.Lock()
        self.in_runs = not builder.follows_staged_order  # rows written in sorted runs (``flush``)
        self._run, self._run_rows = [], 0

    def prepare(self, rows):
        """Encode a ``Rows`` into what the table writes (runs in a worker thread). Rows of a
        builder that merges with stored rows are encoded here too, and kept: the merge reads
        the store, so it runs in ``write``, one batch after the other, on the rows whose key
        may be stored already (``_merged``)."""
        t0 = time.time()
        rows, types = self._settled(rows)
        prepared = self._pack(rows, types)
        with self._lock:
            self.seconds += time.time() - t0
        return _Unmerged(rows, types, prepared) if self.builder.merges else prepared

    def _settled(self, rows):
        """The rows to encode (``settle``, the schema row reconciled first when the rows bring
        their own types) and their types; the rows expected and left out are counted."""
        types = self.types
        if rows.types:
            stored = schemarow.read(self.table, self.survey.schema_version)
            types, changed, notes = schemarow.reconcile(stored, rows.types, set(rows.types))
            schemarow.put(self.table, self.survey.schema_version, changed)
            with self._lock:
                merge_notes(self.notes, notes)
        rows = settle(rows, types)
        with self._lock:
            self.expected += rows.expected
            self.skipped.update(rows.skipped)
        return rows, types

    def _pack(self, rows, types):
        """``(records, rows)`` the table writes for settled rows (None without rows)."""
        columns, set_aside = encode_cells(rows, types)
        if set_aside:
            with self._lock:
                merge_notes(self.notes, {"set_aside": set_aside})
        return (self.table.prepare_arrow(rows.keys, columns), len(rows.keys)) if len(rows.keys) else None

    def _merged(self, unmerged):
        """The records of merged rows (writer thread): only the rows whose key is at most the
        greatest stored key below the batch's last (``Table.floor_key``) can be stored already,
        and only they are read and merged (``merge_stored``), re-encoded and put in place of
        their first encoding; a row that gains nothing is left out (``skipped``). On a table
        the push fills, that is the object whose rows straddle two batches."""
        rows, prepared = unmerged.rows, unmerged.prepared
        if prepared is None:
            return None
        self.flush()  # the store must hold every earlier row of the push before it is read
        keys = pc.cast(rows.keys, pa.binary())
        last = self.table.floor_key(pc.max(keys).as_py())
        if last is None:
            return prepared
        maybe = pc.less_equal(keys, pa.scalar(last, pa.binary()))
        if not pc.any(maybe).as_py():
            return prepared
        subset = Rows(keys=pc.filter(rows.keys, maybe), cells={n: pc.filter(v, maybe) for n, v in rows.cells.items()},
                      types=rows.types)
        merged = self.builder.merge_stored(self.table, subset, self.survey)
        if merged is subset:  # none of them was stored
            return prepared
        with self._lock:
            self.skipped.update(merged.skipped)
        again = self._pack(merged, unmerged.types)
        replaced = dict(again[0]) if again is not None else {}
        gone = set(subset.keys.cast(pa.binary()).to_pylist()) - set(replaced)
        records = [(k, replaced.get(k, v)) for k, v in prepared[0] if k not in gone]
        return records, len(records)

    def write(self, prepared):
        if isinstance(prepared, _Unmerged):
            t0 = time.time()
            prepared = self._merged(prepared)
            with self._lock:
                self.seconds += time.time() - t0
        if prepared is None:
            return
        if self.in_runs:
            self._run.append(prepared[0])
            self._run_rows += prepared[1]
            if self._run_rows >= RUN_ROWS:
                self.flush()
            return
        t0 = time.time()
        self.written += self.table.write_prepared(prepared[0])
        with self._lock:
            self.seconds += time.time() - t0

    def flush(self):
        """Write the rows gathered for a sorted run (``write``), if any."""
        if not self._run:
            return
        t0 = time.time()
        run, self._run, self._run_rows = self._run, [], 0
        self.written += self.table.write_run(run)
        with self._lock:
            self.seconds += time.time() - t0


def encode_cells(rows, types):
    """Encode the cells of ``Rows`` with the table's types.

    Returns
    -------
    (dict of str to pyarrow.BinaryArray, dict of str to str)
        Encoded columns; columns set aside, with why: values the recorded type cannot hold
        exactly (e.g. fractions in an integer column), never written cast or truncated.
    """
    columns, set_aside = {}, {}
    for name, values in rows.cells.items():
        if name not in types:
            continue
        try:
            columns[name] = cellcodec.encode(values, types[name])
        except SchemaError as exc:
            set_aside[name] = f"stored as {types[name]}, values of this night do not fit it ({exc}); not written"
    return columns, set_aside


def merge_notes(into, notes):
    """Add schema notes (``schemarow.reconcile``'s) into a table's notes, in place."""
    for key, value in notes.items():
        if isinstance(value, list):
            into.setdefault(key, [])
            into[key] += [v for v in value if v not in into[key]]
        else:
            into.setdefault(key, {}).update(value)


class _Unmerged:
    """Rows a writer merges with the stored ones just before writing them, with their types
    and their records as encoded before the merge (``TableWriter._merged``)."""

    def __init__(self, rows, types, prepared):
        self.rows, self.types, self.prepared = rows, types, prepared


def writers(store, builders, config, staged_types, present):
    """One ``TableWriter`` per builder: the schema row of each table reconciled with the
    night's types (``present``: columns with a value this night) before any cell is written.

    Raises
    ------
    SchemaError
        If a column's type cannot be reconciled with a table's schema row.
    """
    return [TableWriter(store, b, config, staged_types, present) for b in builders]
