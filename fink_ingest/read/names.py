"""Look-ups by a name alerts carry: tracklets, anomaly scores, and names resolved to objects
(tables ``tracklet``, ``anomaly``, ``resolver``; ``sso`` for Solar System names)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest import rowkeys
from fink_ingest.classification import TRACKLET_PREFIX
from fink_ingest.errors import QueryError
from fink_ingest.read import derived
from fink_ingest.read.base import ReaderBase
from fink_ingest.read.decode import decode_rows
from fink_ingest.read.sso import name_and_number
from fink_ingest.tables import BUILDERS
from fink_ingest.tables.anomaly import SCORE, night_of
from fink_ingest.tables.base import night_jd_range
from fink_ingest.tables.resolver import NAME, RESOLVERS, names_of

TRACKLET_DATE = re.compile(r"[0-9: -]{4,}")      # a date prefix: 2024-01-15, 2024-01-15 11:00:05 00
RESOLVER_NAMES = tuple(RESOLVERS) + ("ssodnet",)
FULLNAME = "d:fullname"                          # Fink's resolver column of the name found
SSO_RESOLVED = ("i:ssnamenr", "i:name", "i:number")   # Fink's columns of the ssodnet resolver


class NameQueries(ReaderBase):
    """``tracklet``, ``anomaly``, ``resolve``."""

    def tracklet(self, tracklet_id=None, date=None, columns=None):
        """Alerts of a tracklet (fast mover), by id or by a date prefix, newest first.

        Parameters
        ----------
        tracklet_id : str, optional
            ``TRCK_YYYYMMDD_hhmmss_NN``: that tracklet.
        date : str, optional
            ``YYYY-MM-DD[ hh[:mm[:ss[ NN]]]]``: every tracklet whose id starts with it, as Fink
            reads ``date`` (``TRCK_`` + the digits, ``_`` for the spaces).
        columns : list of str, optional
            As ``latests``.

        Raises
        ------
        QueryError
            If neither or both are given, or either is malformed.
        """
        if (tracklet_id in (None, "")) == (date in (None, "")):
            raise QueryError("tracklet: give either id (TRCK_YYYYMMDD_hhmmss_NN) or date (YYYY-MM-DD[ hh:mm:ss])")
        if tracklet_id not in (None, ""):
            if not isinstance(tracklet_id, str) or not tracklet_id.startswith(TRACKLET_PREFIX):
                raise QueryError(f"id {tracklet_id!r}: expected a tracklet id TRCK_YYYYMMDD_hhmmss_NN")
            prefix = rowkeys.prefix(tracklet_id)
        else:
            if not isinstance(date, str) or not TRACKLET_DATE.fullmatch(date.strip()):
                raise QueryError(f"date {date!r}: expected YYYY-MM-DD[ hh:mm:ss[ NN]]")
            text = TRACKLET_PREFIX + date.strip().replace("-", "").replace(":", "").replace(" ", "_")
            prefix = rowkeys.escape_text(text).encode()
        index_columns = list(self.types("tracklet"))
        columns = self._check_columns("main", columns, extra=index_columns + list(derived.ALL))
        table = self._table("tracklet")
        rows = self._scan(table, prefix=prefix) if table is not None else []
        frame, keys = self._index_frame("tracklet", rows, cells=self._index_cells("tracklet", columns))
        order = frame.sort_values(self._jd(), ascending=False, kind="stable").index
        frame = frame.loc[order].reset_index(drop=True)
        ids = np.asarray(keys["name"], dtype=object)[order] if len(frame) else np.array([], dtype=object)
        return self._named(frame, columns, index_columns, {"d:tracklet": ids})

    def anomaly(self, n=10, start_date=None, stop_date=None, columns=None):
        """The most anomalous alerts of a window (lowest ``d:anomaly_score`` first).

        Parameters
        ----------
        n : int
            At most this many alerts.
        start_date : optional
            First day (UTC date, JD or MJD), inclusive; default the first night stored.
        stop_date : optional
            Last day, inclusive as in Fink (the window ends one day after it); default none.
        columns : list of str, optional
            As ``latests``; ``d:anomaly_score`` is in every answer.

        Returns
        -------
        pandas.DataFrame
            Sorted by score, then newest first. Reads at most ``n`` rows per night of the
            window (each night's rows are in score order).
        """
        n = self._count("n", n)
        stop = None
        if stop_date not in (None, ""):
            stop = self._window(stop_date)[0]
            stop = None if stop is None else stop + 1.0
        lo, hi = self._window(start_date, stop)
        index_columns = list(self.types("anomaly"))
        columns = self._check_columns("main", columns, extra=index_columns + list(derived.ALL) + [SCORE])
        table = self._table("anomaly")
        rows = []
        if table is not None and (lo is None or hi is None or lo < hi):
            cursor = rowkeys.prefix(night_of([lo])[0].as_py()) if lo is not None else None
            end = rowkeys.prefix(night_of([hi])[0].as_py()) if hi is not None else None
            end = rowkeys.prefix_stop(end) if end is not None else None
            while True:
                first = self._scan(table, start=cursor, stop=end, limit=1, columns=None)
                if not first:
                    break
                night = BUILDERS["anomaly"].parse_key(first[0][0])["night"]
                prefix = rowkeys.prefix(night)
                rows.extend(self._night_top(table, prefix, night, n, lo, hi))
                cursor = rowkeys.prefix_stop(prefix)
        frame, keys = self._index_frame("anomaly", rows, cells=self._index_cells("anomaly", columns))
        frame[SCORE] = keys["score"] if len(frame) else np.array([], dtype=float)
        frame = frame.sort_values([SCORE, self._jd()], ascending=[True, False], kind="stable").head(n)
        frame = frame.reset_index(drop=True)
        return self._named(frame, columns, index_columns + [SCORE], {SCORE: frame[SCORE].to_numpy()})

    def _night_top(self, table, prefix, night, n, lo, hi):
        """The first ``n`` rows of a night's prefix whose time is in ``[lo, hi)``."""
        import datetime as dt

        start, stop = night_jd_range(dt.datetime.strptime(night, "%Y%m%d").date())
        whole = (lo is None or lo <= start) and (hi is None or stop <= hi)
        out = []
        for key, cells in table.scan(prefix=prefix, limit=n if whole else None):
            if rowkeys.is_schema_row(key):
                continue
            if not whole:
                jd = BUILDERS["anomaly"].parse_key(key)["time"]
                if (lo is not None and jd < lo) or (hi is not None and jd >= hi):
                    continue
            out.append((key, cells))
            if len(out) >= n:
                break
        return out

    def _named(self, frame, columns, index_columns, found):
        """Alerts of a look-up with the looked-up values (``found``) as columns."""
        if columns is None:
            out = self._alerts(frame, None, index_columns)
            for name, values in found.items():
                out[name] = values
            return out
        stored = [c for c in columns if c not in found]
        out = self._alerts(frame, stored, index_columns) if stored else pd.DataFrame(index=range(len(frame)))
        for name, values in found.items():
            if name in columns:
                out[name] = values
        return out[[c for c in columns if c in out.columns]]

    def resolve(self, resolver, name, reverse=False, n=10):
        """Names <-> objects from what the alerts carry (no external service).

        Parameters
        ----------
        resolver : {'tns', 'simbad', 'ssodnet'}
            ``tns``: the alerts' TNS value (``d:tns``); ``simbad``: their SIMBAD label
            (``d:cdsxmatch``); ``ssodnet``: Solar System names and numbers (``ssnamenr``).
        name : str
            Forward: a name or the start of one, case-insensitive (``tns``, ``simbad``;
            ``''`` lists every name); ``ssodnet``: a name or number, spaces removed. With
            ``reverse``: an object id.
        reverse : bool
            Object -> its names, from its main-table rows.
        n : int
            At most this many rows (Fink's ``nmax``).

        Returns
        -------
        pandas.DataFrame
            Forward ``tns``/``simbad``: one row per name and object (``d:fullname``,
            ``i:objectId`` and its newest alert carrying the name: ``i:jd``, ``i:candid``,
            ``i:ra``, ``i:dec``); ``ssodnet``: ``i:ssnamenr``, ``i:name``, ``i:number``.
            Reverse: one row per alert carrying a name (``i:objectId``, the name column,
            ``i:ra``, ``i:dec``, ``i:candid``, ``i:jd``), as Fink's reverse look-ups.

        Raises
        ------
        QueryError
            If the resolver is unknown, or the name or object id malformed.
        """
        if resolver not in RESOLVER_NAMES:
            raise QueryError(f"resolver {resolver!r}: expected one of {list(RESOLVER_NAMES)}")
        n = self._count("nmax", n)
        if not isinstance(name, str):
            raise QueryError(f"name {name!r}: expected text")
        if reverse:
            return self._reverse(resolver, name.strip(), n)
        if resolver == "ssodnet":
            return self._sso_names(name, n)
        table = self._table("resolver")
        prefix = rowkeys.prefix(resolver) + rowkeys.escape_text(name.strip().lower()).encode()
        keep = [FULLNAME, self._oid(), self._jd(), self._alert_id(), self._col("ra"), self._col("dec")]
        rows = self._scan(table, prefix=prefix) if table is not None else []
        frame, keys = self._index_frame("resolver", rows)
        if frame.empty:
            return pd.DataFrame(columns=keep)
        frame = frame.rename(columns={NAME: FULLNAME}).assign(_name=keys["name"])
        # one row per name and object: its newest alert carrying the name; names in key order
        frame = frame.sort_values(self._jd(), ascending=False, kind="stable").drop_duplicates(["_name", self._oid()])
        frame = frame.sort_values(["_name", self._jd()], ascending=[True, False], kind="stable").head(n)
        return frame[[c for c in keep if c in frame.columns]].reset_index(drop=True)

    def _reverse(self, resolver, object_id, n):
        self._check_oid(object_id)
        main = self._table("main")
        if resolver == "ssodnet":
            source = f"{self.survey.original_family}:ssnamenr"
        else:
            source = RESOLVERS[resolver]
        wanted = [self._oid(), source, self._col("ra"), self._col("dec"), self._alert_id(), self._jd()]
        wanted = [c for c in wanted if c in self.types("main")]
        if main is None or source not in wanted:
            return pd.DataFrame(columns=wanted)
        rows = self._scan(main, prefix=rowkeys.prefix(object_id), columns=[c.encode() for c in wanted])
        frame = decode_rows(rows, self.types("main"), wanted).reset_index(drop=True)
        if frame.empty:
            return frame
        text = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in frame[source]]
        batch = pa.RecordBatch.from_pydict({source: pa.array(text, pa.string())})
        valid = np.asarray(pc.is_valid(names_of(batch, source)).to_numpy(zero_copy_only=False), dtype=bool)
        if resolver == "ssodnet":
            return self._sso_frame(frame[source][valid].tolist(), n)
        frame = frame[valid].sort_values(self._jd(), ascending=False, kind="stable").head(n)
        return frame.reset_index(drop=True)

    def _sso_names(self, name, n):
        table = self._table("sso")
        normal = rowkeys.normalize_ssnamenr(pa.array([name], pa.string()))[0].as_py()
        if normal is None:
            raise QueryError(f"name {name!r}: not a Solar System object name or number")
        found = []
        if table is not None:
            prefix = rowkeys.escape_text(normal).encode()
            for key, _ in table.scan(prefix=prefix, columns=None):
                if not rowkeys.is_schema_row(key):
                    found.append(BUILDERS["sso"].parse_key(key)["ssnamenr"])
        return self._sso_frame(found, n)

    @staticmethod
    def _sso_frame(values, n):
        values = list(dict.fromkeys(str(v) for v in values if v is not None))[:n]
        names, numbers = name_and_number(values)
        return pd.DataFrame({SSO_RESOLVED[0]: values, SSO_RESOLVED[1]: names, SSO_RESOLVED[2]: numbers})
