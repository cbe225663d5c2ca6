"""What every query of the read layer shares: tables and their schema rows, column requests,
index rows turned into alerts, argument checks.

Row keys are built and read through ``rowkeys`` and each table's declared layout (its
builder's ``key``), never by splitting text here.
"""
from __future__ import annotations

import math
import re
import threading
import time

import numpy as np
import pandas as pd
import pyarrow as pa

from fink_ingest import journal, rowkeys, schemarow
from fink_ingest.errors import QueryError
from fink_ingest.read import derived
from fink_ingest.read.decode import decode_columns, jd_of
from fink_ingest.tables import BUILDERS

# A running reader re-reads a table's schema row at most this often (a push may add columns
# while it serves), and at once when a request names a column it does not know yet.
SCHEMA_TTL_SECONDS = 10.0
MAX_N = 100_000           # largest ``n`` of any query (rows returned)
MAX_IDS = 1_000           # object ids or names in one request


def split_list(value, name):
    """A comma-separated text or a list as a list of stripped, non-empty str.

    Raises
    ------
    QueryError
        If an element is not text or a number, naming the argument.
    """
    if isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        items = str(value).split(",")
    else:
        raise QueryError(f"{name} = {value!r}: expected text (comma-separated) or a list")
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise QueryError(f"{name}: element {item!r} is not text")
        if str(item).strip():
            out.append(str(item).strip())
    return out


def parse_columns(value):
    """A column request: None for every column (None, ``""`` or ``"*"``), else a list of
    ``family:qualifier`` names (comma-separated text or a list).

    Raises
    ------
    QueryError
        If the request is neither text nor a list of text.
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", "*")):
        return None
    columns = split_list(value, "columns")
    return None if columns == ["*"] else list(dict.fromkeys(columns))


class ReaderBase:
    """Tables, schema rows and helpers of the ``Reader`` (see ``read.reader``).

    Parameters
    ----------
    store : fink_ingest.store.base.Store
    config : fink_ingest.config.Config
        Gives the table prefix and the survey (column roles, schema version, class rule).
    """

    def __init__(self, store, config):
        self.store = store
        self.config = config
        self.survey = config.survey
        self._types = {}          # kind -> (time read, types)
        self._checked = {}
        self._lock = threading.Lock()

    # -- tables ------------------------------------------------------------------------
    def table_name(self, kind):
        """Store table name of a builder kind (``main`` -> ``ztf``, ``sky`` -> ``ztf.sky``)."""
        return BUILDERS[kind].table_name(self.config.table_prefix)

    def _table(self, kind):
        """The table of a kind, or None if the store has none; its key layout is checked once.

        Raises
        ------
        LayoutError
            If the table was written with another key layout (or is being rebuilt whole).
        """
        name = self.table_name(kind)
        tables = self.store.tables()
        if journal.table_name(self.config) in tables:
            journal.check(self.store, self.config, kind, name)
            self._checked.pop(kind, None)  # a table rebuilt whole is checked again once done
        if name not in tables:
            return None
        table = self.store.table(name)
        if not self._checked.get(kind):
            b, s = BUILDERS[kind], self.survey
            schemarow.check_layout(table, s.schema_version, b.families_for(s)[0], b.key_layout(s), kind)
            self._checked[kind] = True
        return table

    def check_layouts(self):
        """Check every table of the store once (``LayoutError`` on the first stale one)."""
        for kind in BUILDERS:
            self._table(kind)

    def types(self, kind, refresh=False):
        """Schema-row types of a table (dict, ordered by name), with the columns index rows
        take from their keys (object id, time, alert id). Re-read every
        ``SCHEMA_TTL_SECONDS``, or now with ``refresh``: a push adding columns is seen
        without a restart."""
        cached = self._types.get(kind)
        if cached is not None and not refresh and time.monotonic() - cached[0] < SCHEMA_TTL_SECONDS:
            return cached[1]
        table = self._table(kind)
        types = schemarow.read(table, self.survey.schema_version) if table else {}
        for role, type_name in (("object_id", "string"), ("time", "double"), ("alert_id", "bigint")):
            types.setdefault(self._col(role), type_name)
        with self._lock:
            self._types[kind] = (time.monotonic(), types)
        return types

    # -- names -------------------------------------------------------------------------
    def _col(self, role):
        """Column name of a survey role (``object_id`` -> ``i:objectId``)."""
        return f"{self.survey.original_family}:{self.survey.leaf[role]}"

    def _oid(self):
        return self._col("object_id")

    def _jd(self):
        return self._col("time")

    def _alert_id(self):
        return self._col("alert_id")

    @staticmethod
    def _scan(table, **kwargs):
        """Data rows of a scan (schema rows left out)."""
        return [(k, c) for k, c in table.scan(**kwargs) if not rowkeys.is_schema_row(k)]

    # -- checks ------------------------------------------------------------------------
    def _check_oid(self, oid):
        if not isinstance(oid, str) or not re.search(self.survey.object_id_pattern, oid):
            shown = oid if not isinstance(oid, str) or len(oid) <= 40 else oid[:40] + "..."
            raise QueryError(f"objectId {shown!r} is not a valid object id "
                             f"(expected {self.survey.object_id_pattern})")

    def _object_ids(self, object_ids):
        ids = list(dict.fromkeys(split_list(object_ids, "objectId")))
        if len(ids) > MAX_IDS:
            raise QueryError(f"objectId: {len(ids)} ids in one request; at most {MAX_IDS}")
        # as Fink: an id no alert can have (the push rejects it) finds nothing, it is no error
        return [oid for oid in ids if re.search(self.survey.object_id_pattern, oid)]

    def _check_columns(self, kind, columns, extra=()):
        """The requested columns (None: every column), each known to the table's schema row
        (re-read once before refusing a name) or among ``extra``.

        Raises
        ------
        QueryError
            Naming the unknown columns and listing the known ones.
        """
        columns = parse_columns(columns)
        if columns is None:
            return None
        unknown = [c for c in columns if c not in self.types(kind) and c not in extra]
        if unknown:
            unknown = [c for c in columns if c not in self.types(kind, refresh=True) and c not in extra]
        if unknown:
            known = sorted(set(self.types(kind)) | set(extra))
            raise QueryError(f"columns: {unknown} unknown; known columns: {known}")
        return columns

    @staticmethod
    def _number(name, value):
        if isinstance(value, bool):
            raise QueryError(f"{name} = {value!r}: expected a number")
        try:
            out = float(value)
        except (TypeError, ValueError, OverflowError):
            raise QueryError(f"{name} = {value!r}: expected a number") from None
        if not math.isfinite(out):
            raise QueryError(f"{name} = {value!r}: expected a finite number")
        return out

    @staticmethod
    def _count(name, value, maximum=MAX_N):
        if isinstance(value, bool):
            raise QueryError(f"{name} = {value!r}: expected a positive integer")
        try:
            out = int(value) if not isinstance(value, float) or value.is_integer() else None
        except (TypeError, ValueError, OverflowError):
            out = None
        if out is None:
            try:
                number = float(value)
                out = int(number) if math.isfinite(number) and number.is_integer() else None
            except (TypeError, ValueError, OverflowError):
                out = None
        if out is None or out <= 0:
            raise QueryError(f"{name} = {value!r}: expected a positive integer")
        if out > maximum:
            raise QueryError(f"{name} = {value!r}: at most {maximum}")
        return out

    def _window(self, start_date=None, stop_date=None, window_days=None):
        """``[lo, hi)`` Julian Dates of a time window, within the survey's life.

        ``window_days`` (days after ``start_date``) replaces ``stop_date``. Either bound may be
        None (open); a bound outside the survey's ``[time_min, time_max)`` is moved to it.

        Raises
        ------
        QueryError
            If a date is bad, or the window is given without a start or is not positive.
        """
        lo, hi = jd_of(start_date), jd_of(stop_date)
        if window_days not in (None, ""):
            window = self._number("window", window_days)
            if lo is None:
                raise QueryError("window: needs startdate (the window is in days after it)")
            if not 0 < window <= self.survey.time_max - self.survey.time_min:
                raise QueryError(f"window = {window_days!r}: expected days in (0, "
                                 f"{self.survey.time_max - self.survey.time_min:g}]")
            hi = lo + window
        clip = (lambda x: None if x is None else min(max(x, self.survey.time_min), self.survey.time_max))
        return clip(lo), clip(hi)

    def _time_text(self, jd):
        """Fixed-width key text of a Julian Date (bytes), as index keys write it."""
        return rowkeys.format_time_scalar(jd, self.survey.time_int_digits, self.survey.time_frac_digits).encode()

    # -- frames ------------------------------------------------------------------------
    def _index_frame(self, kind, rows, cells=True):
        """Index rows as a frame: objectId, jd and candid from their keys, then their cells
        (decoded with the table's schema row; ``cells`` may name the ones to decode, when the
        main table gives the rest). Returns ``(frame, parsed key components by role)``."""
        keys = rowkeys.parse_many(BUILDERS[kind].key, [k for k, _ in rows])
        data = {self._oid(): keys["object"], self._jd(): keys["time"], self._alert_id(): keys["alert"]}
        if cells is True:
            data.update(decode_columns(rows, self.types(kind), values_only=self.survey.values_only))
        elif cells:
            data.update(decode_columns(rows, self.types(kind), cells, values_only=self.survey.values_only))
        return pd.DataFrame(data, index=range(len(rows)), columns=list(data)), keys

    def _index_cells(self, kind, columns):
        """Cells to decode from an index's rows: all of them for a column request, else only
        those the main table does not hold (``d:class``), added to whole alerts."""
        if columns is not None:
            return True
        main = self.types("main")
        return [c for c in self.types(kind) if c not in main]

    def _main_columns(self, frame, columns=None):
        """Main-table columns of the alerts of a frame, one value per row, in its order
        (None where the main table has no such row): dict of name to array or list;
        ``columns`` None gives every column of the schema row."""
        main = self._table("main")
        types = self.types("main")
        names = list(types) if columns is None else [c for c in columns if c in types]
        if main is None or frame.empty:
            return {n: [None] * len(frame) for n in names}
        keys = rowkeys.make(BUILDERS["main"].key, {
            "object": pa.array(frame[self._oid()].tolist(), pa.string()),
            "time": pa.array(frame[self._jd()].to_numpy(dtype=float)),
            "alert": pa.array(frame[self._alert_id()].to_numpy(dtype=np.int64))}, self.survey).to_pylist()
        want = None if columns is None else [c.encode() for c in names]
        rows = main.rows([k.encode() for k in keys], columns=want)
        if len(rows) != len(keys):   # an index row without its main row: keep the frame's order
            found = dict(rows)
            rows = [(k.encode(), found.get(k.encode(), {})) for k in keys]
        return decode_columns(rows, types, names, values_only=self.survey.values_only)

    def _main_rows(self, frame, columns=None):
        """``_main_columns`` as a DataFrame (index 0..n-1)."""
        return pd.DataFrame(self._main_columns(frame, columns), index=range(len(frame)))

    def _alerts(self, frame, columns, index_columns, defaults=derived.PER_ALERT, extra=None):
        """Alerts found through an index, as asked: ``columns`` None gives every main-table
        column and the ``defaults`` ``v:`` columns (as Fink serves whole alerts), else
        exactly the columns named, taken from the index rows when they hold them, else from
        the main table, ``v:`` columns computed.

        Parameters
        ----------
        frame : pandas.DataFrame
            Index rows (``_index_frame``), in the order to return.
        columns : list of str or None
            Checked column request.
        index_columns : list of str
            Columns the index rows hold.
        defaults : tuple of str
            ``v:`` columns of a whole-alert answer.
        extra : dict of str to array_like, optional
            Columns the query computed (e.g. ``v:separation_degree``), always kept.
        """
        extra = extra or {}
        if columns is None:   # the main table's columns and those only the index holds, by name
            data = self._main_columns(frame)
            data.update({c: frame[c].to_numpy() for c in frame.columns if c not in data})
            data = dict(sorted(data.items()))   # the schema row's order (HBase's cell order)
            names = list(defaults)
        else:
            names = [c for c in columns if c in derived.ALL]
            stored = [c for c in columns if c not in derived.ALL and c not in extra]
            need = list(dict.fromkeys(stored + derived.inputs(names, self.survey)))
            from_index = [c for c in need if c in index_columns and c in frame.columns]
            data = {c: frame[c].to_numpy() for c in from_index}
            from_main = [c for c in need if c not in from_index]
            if from_main:
                main = self._main_columns(frame, from_main)
                data.update({c: main.get(c, [None] * len(frame)) for c in from_main})
        data.update(derived.compute(data, names, self.survey, self.survey.hosts))
        data.update({name: np.asarray(values) for name, values in extra.items()})
        order = list(data) if columns is None else \
            [c for c in columns if c in data] + [c for c in extra if c not in columns]
        return pd.DataFrame({c: data[c] for c in order}, index=range(len(frame)), columns=order)
