"""The portal's queries over the tables of one store (``Reader``).

Every call works on any store backend (it only uses the store interface), decodes cells
with each table's schema row (values come back as the datalake held them: ``i:jd`` float64,
``i:candid`` int64, nested values parsed from JSON) and takes an optional column subset.
Row keys are built and read through ``rowkeys`` and each table's declared layout, never by
splitting text here. A query splits like LSDB's searches: a coarse step lists the key
ranges to scan (HEALPix pixel ranges covering a cone, salt buckets of a time window), a
fine step keeps rows (exact angular separation, time bounds). Bad arguments raise
``QueryError`` naming the argument; an object that does not exist gives an empty DataFrame;
a table written with another key layout raises ``LayoutError`` naming the upgrade.
"""
from __future__ import annotations

import math
import re

import pandas as pd
import pyarrow as pa

from fink_ingest import healpix, journal, rowkeys, schemarow
from fink_ingest.errors import QueryError
from fink_ingest.read.decode import decode_rows, history_entries, jd_of
from fink_ingest.read.sky import cone_ranges, separation_deg
from fink_ingest.read.stamps import fits_array, read_stamps
from fink_ingest.tables import BUILDERS

MAX_RADIUS_ARCSEC = 18000.0 * 2      # Fink stops at 18000" (5 degrees); we serve up to 10 degrees
SEPARATION = "v:separation_degree"   # Fink's name of the distance column of a cone search
TAG = "d:tag"                        # Fink's tag of objects(withupperlim=True) rows
CUTOUT_KINDS = ("Science", "Template", "Difference")


class Reader:
    """The portal's queries over the tables of one store.

    Parameters
    ----------
    store : fink_ingest.store.base.Store
    config : fink_ingest.config.Config
        Gives the table prefix and the survey (column roles, schema version).
    """

    def __init__(self, store, config):
        self.store = store
        self.config = config
        self.survey = config.survey
        self._types = {}
        self._checked = {}

    # -- helpers -----------------------------------------------------------------------
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

    def types(self, kind):
        """Schema-row types of a table (dict, ordered by name), with the columns index rows
        take from their keys (object id, time, alert id)."""
        if kind not in self._types:
            table = self._table(kind)
            types = schemarow.read(table, self.survey.schema_version) if table else {}
            f, leaf = self.survey.original_family, self.survey.leaf
            types.setdefault(f"{f}:{leaf['object_id']}", "string")
            types.setdefault(f"{f}:{leaf['time']}", "double")
            types.setdefault(f"{f}:{leaf['alert_id']}", "bigint")
            self._types[kind] = types
        return self._types[kind]

    def _oid(self):
        return f"{self.survey.original_family}:{self.survey.leaf['object_id']}"

    def _jd(self):
        return f"{self.survey.original_family}:{self.survey.leaf['time']}"

    def _alert_id(self):
        return f"{self.survey.original_family}:{self.survey.leaf['alert_id']}"

    @staticmethod
    def _scan(table, **kwargs):
        """Data rows of a scan (schema rows left out)."""
        return [(k, c) for k, c in table.scan(**kwargs) if not rowkeys.is_schema_row(k)]

    def _check_oid(self, oid):
        if not isinstance(oid, str) or not re.search(self.survey.object_id_pattern, oid):
            shown = oid if not isinstance(oid, str) or len(oid) <= 40 else oid[:40] + "..."
            raise QueryError(f"objectId {shown!r} is not a valid object id "
                             f"(expected {self.survey.object_id_pattern})")

    def _check_columns(self, kind, columns):
        if columns is None:
            return None
        if isinstance(columns, str):
            columns = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in columns if c not in self.types(kind)]
        if unknown:
            raise QueryError(f"columns: {unknown} unknown; known columns: {sorted(self.types(kind))}")
        return list(columns)

    def _index_frame(self, kind, rows, columns=None):
        """Decode index rows, adding objectId, jd and candid from their keys."""
        frame = decode_rows(rows, self.types(kind))
        keys = rowkeys.parse_many(BUILDERS[kind].key, [k for k, _ in rows])
        frame.insert(0, self._oid(), keys["object"])
        frame.insert(1, self._jd(), keys["time"])
        frame.insert(2, self._alert_id(), keys["alert"])
        if columns is not None:
            frame = frame[[c for c in columns]]
        return frame.reset_index(drop=True)

    # -- queries -----------------------------------------------------------------------
    def objects(self, object_ids, columns=None, with_upper_limits=False):
        """Every alert of the object(s), sorted by time.

        Parameters
        ----------
        object_ids : str or list of str
            Object ids, e.g. ``"ZTF24aaaaaaa"`` (a comma-separated string is split).
        columns : list of str, optional
            ``family:qualifier`` names, e.g. ``["i:jd", "i:magpsf"]``.
        with_upper_limits : bool
            Also return the upper limits and bad-quality detections of the history tables,
            each row tagged in ``d:tag`` (``valid``, ``badquality``, ``upperlim``).

        Returns
        -------
        pandas.DataFrame
            One row per alert (and history entry); empty if the object does not exist.

        Raises
        ------
        QueryError
            If an object id is malformed or a column unknown.
        """
        if isinstance(object_ids, str):
            object_ids = [o.strip() for o in object_ids.split(",") if o.strip()]
        for oid in object_ids:
            self._check_oid(oid)
        main = self._table("main")
        if main is None:
            return pd.DataFrame()
        columns = self._check_columns("main", columns)
        want = None if columns is None else [c.encode() for c in columns]
        rows = []
        for oid in object_ids:
            rows.extend(self._scan(main, prefix=rowkeys.prefix(oid), columns=want))
        frame = decode_rows(rows, self.types("main"), columns).reset_index(drop=True)
        if not with_upper_limits:
            return frame
        frame[TAG] = "valid"
        parts = [frame]
        for kind, tag in (("upper", "upperlim"), ("uppervalid", "badquality")):
            table = self._table(kind)
            if table is None:
                continue
            hist = []
            for oid in object_ids:
                hist.extend(self._scan(table, prefix=rowkeys.prefix(oid)))
            part = history_entries(hist, self.types(kind), self._oid(),
                                   lambda key, b=BUILDERS[kind]: b.parse_key(key)["object"])
            part[TAG] = tag
            parts.append(part)
        merged = pd.concat([p for p in parts if len(p)] or [frame], ignore_index=True)
        if columns is not None:
            merged = merged[[c for c in dict.fromkeys(columns + [self._jd(), TAG]) if c in merged]]
        return merged.sort_values(self._jd(), kind="stable").reset_index(drop=True)

    def conesearch(self, ra, dec, radius_arcsec, start_date=None, stop_date=None, n=1000, columns=None):
        """Objects with an alert within a cone, one row per object (its latest alert in the
        time window), sorted by angular distance, with ``v:separation_degree``.

        Parameters
        ----------
        ra, dec : float
            Cone centre, ICRS, degrees; ``ra`` in [0, 360], ``dec`` in [-90, 90].
        radius_arcsec : float
            Radius, arcseconds, in (0, 36000].
        start_date, stop_date : str, datetime or float, optional
            Window on the alert time (UTC dates or Julian Dates), start inclusive, stop exclusive.
        n : int
            At most this many objects (the nearest).
        columns : list of str, optional
            Summary columns to return (``objectId``, ``jd`` and the distance always are).

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        QueryError
            If ``ra``, ``dec``, ``radius_arcsec``, ``n`` or a date is out of range.
        """
        ra, dec, radius_arcsec = self._number("ra", ra), self._number("dec", dec), self._number("radius", radius_arcsec)
        if not 0 <= ra <= 360:
            raise QueryError(f"ra = {ra}: expected degrees in [0, 360]")
        if not -90 <= dec <= 90:
            raise QueryError(f"dec = {dec}: expected degrees in [-90, 90]")
        if not 0 < radius_arcsec <= MAX_RADIUS_ARCSEC:
            raise QueryError(f"radius = {radius_arcsec}: expected arcseconds in (0, {MAX_RADIUS_ARCSEC:g}]")
        n = self._count("n", n)
        lo, hi = jd_of(start_date), jd_of(stop_date)
        columns = self._check_columns("sky", columns)
        table = self._table("sky")
        if table is None:
            return pd.DataFrame()
        rows = []
        for start, stop in cone_ranges(ra, dec, radius_arcsec, self.survey.sky_order):
            rows.extend(self._scan(table, start=f"{start:0{healpix.PIXEL_DIGITS}d}".encode(),
                                   stop=f"{stop:0{healpix.PIXEL_DIGITS}d}".encode()))
        frame = self._index_frame("sky", rows)
        if frame.empty:
            return frame
        f, leaf = self.survey.original_family, self.survey.leaf
        frame[SEPARATION] = separation_deg(ra, dec, frame[f"{f}:{leaf['ra']}"].to_numpy(float),
                                           frame[f"{f}:{leaf['dec']}"].to_numpy(float))
        keep = frame[SEPARATION] <= radius_arcsec / 3600.0
        if lo is not None:
            keep &= frame[self._jd()] >= lo
        if hi is not None:
            keep &= frame[self._jd()] < hi
        frame = frame[keep].sort_values([self._jd(), self._alert_id()]).groupby(self._oid(), sort=False).tail(1)
        frame = frame.sort_values([SEPARATION, self._oid()]).head(n).reset_index(drop=True)
        if columns is not None:
            frame = frame[list(dict.fromkeys([self._oid(), self._jd()] + columns + [SEPARATION]))]
        return frame

    def latests(self, class_name, n=10, start_date=None, stop_date=None, columns=None):
        """The newest alerts of a class (Fink's rule), newest first.

        Parameters
        ----------
        class_name : str
            A class of the class index, e.g. ``"SN candidate"`` or a SIMBAD label; exactly
            this class (``EB*`` never returns ``EB*_Candidate``).
        n : int
            At most this many alerts.
        start_date, stop_date : optional
            Window on the alert time, start inclusive, stop exclusive.
        columns : list of str, optional

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        QueryError
            If the class never occurs in the index, or ``n`` or a date is bad.
        """
        n = self._count("n", n)
        table = self._table("class")
        if not isinstance(class_name, str) or not class_name or table is None:
            raise QueryError(f"class {class_name!r} is unknown")
        prefix = rowkeys.prefix(class_name)
        if not self._scan(table, prefix=prefix, limit=1):
            raise QueryError(f"class {class_name!r} is unknown: no alert of this class is stored")
        lo, hi = jd_of(start_date), jd_of(stop_date)
        digits = (self.survey.time_int_digits, self.survey.time_frac_digits)
        start = prefix + (rowkeys.format_time_scalar(lo, *digits).encode() if lo is not None else b"")
        stop = (prefix + rowkeys.format_time_scalar(hi, *digits).encode()) if hi is not None \
            else rowkeys.prefix_stop(prefix)
        rows = self._scan(table, start=start, stop=stop, reverse=True, limit=n)
        columns = self._check_columns("class", columns)
        return self._index_frame("class", rows, columns)

    def sso(self, names, columns=None):
        """Every alert of Solar System object(s), by MPC name or number, sorted by time.

        Parameters
        ----------
        names : str, int or list
            ``"2009 VN118"``, ``"2009VN118"`` and ``8467`` are all found (names normalised as
            in the index).
        columns : list of str, optional
            Main-table columns.

        Returns
        -------
        pandas.DataFrame
            Full main-table rows of the alerts.
        """
        if isinstance(names, (str, int)):
            names = [names] if not isinstance(names, str) else [x for x in names.split(",") if x.strip()]
        normal = rowkeys.normalize_ssnamenr(pa.array([str(x) for x in names])).to_pylist()
        if any(x is None for x in normal):
            raise QueryError(f"n_or_d {names!r}: not a Solar System object name or number")
        table, main = self._table("sso"), self._table("main")
        if table is None or main is None:
            return pd.DataFrame()
        found = []
        for name in normal:
            found.extend(BUILDERS["sso"].parse_key(k) for k, _ in self._scan(table, prefix=rowkeys.prefix(name),
                                                                               columns=["d:roid"]))
        keys = rowkeys.make(BUILDERS["main"].key, {r: pa.array([k[r] for k in found]) for r in ("object", "time", "alert")},
                            self.survey) if found else pa.array([], pa.string())
        columns = self._check_columns("main", columns)
        want = None if columns is None else [c.encode() for c in columns]
        frame = decode_rows(main.rows([k.encode() for k in keys.to_pylist()], columns=want), self.types("main"), columns)
        return frame.sort_values(self._jd()).reset_index(drop=True) if len(frame) else frame

    def date_window(self, start, window_minutes, columns=None, n=None):
        """Alerts whose time falls in ``[start, start + window_minutes)``, sorted by time.

        The time index is salted: one range scan per salt bucket, merged.

        Raises
        ------
        QueryError
            If the window is not in (0, 1440] minutes or the date is bad.
        """
        window = self._number("window", window_minutes)
        if not 0 < window <= 1440:
            raise QueryError(f"window = {window}: expected minutes in (0, 1440]")
        lo = jd_of(start)
        if lo is None:
            raise QueryError("startdate is required")
        hi = lo + window / 1440.0
        table = self._table("time")
        if table is None:
            return pd.DataFrame()
        digits = (self.survey.time_int_digits, self.survey.time_frac_digits)
        a, b = (rowkeys.format_time_scalar(x, *digits).encode() for x in (lo, hi))
        rows = []
        for bucket in range(self.survey.time_buckets):
            salt = rowkeys.prefix(f"{bucket:02x}")
            rows.extend(self._scan(table, start=salt + a, stop=salt + b))
        columns = self._check_columns("time", columns)
        frame = self._index_frame("time", rows, columns)
        if len(frame):
            frame = frame.sort_values(self._jd(), kind="stable").reset_index(drop=True)
        return frame.head(n) if n else frame

    def cutout(self, object_id, candid=None, kind="Science", output="array"):
        """A stamp of an alert, fetched through the cutout-pointer table.

        Parameters
        ----------
        object_id : str
        candid : int, optional
            The alert; default the object's latest alert that has stamps.
        kind : {'Science', 'Template', 'Difference', 'All'}
        output : {'array', 'FITS'}

        Returns
        -------
        numpy.ndarray of shape (63, 63) for ZTF, or bytes (FITS); for ``kind='All'`` a dict
        of the three; None if the object or alert has no stamp.

        Raises
        ------
        QueryError
            If ``kind`` or ``output`` is not one of the allowed values.
        """
        self._check_oid(object_id)
        if kind not in CUTOUT_KINDS + ("All",):
            raise QueryError(f"kind {kind!r}: expected one of {list(CUTOUT_KINDS) + ['All']}")
        if output not in ("array", "FITS"):
            raise QueryError(f"output-format {output!r}: expected 'array' or 'FITS'")
        table = self._table("cutouts")
        if table is None:
            return None
        pointers = self._scan(table, prefix=rowkeys.prefix(object_id))
        if candid is not None:
            pointers = [p for p in pointers if BUILDERS["cutouts"].parse_key(p[0])["alert"] == int(candid)]
        if not pointers:
            return None
        _, cells = pointers[-1]  # keys sort in time order: the last is the latest
        kinds = CUTOUT_KINDS if kind == "All" else (kind,)
        stamps = read_stamps(cells, [f"cutout{k}" for k in kinds])
        out = {}
        for k in kinds:
            fits_bytes = stamps[f"cutout{k}"]
            out[k] = fits_bytes if output == "FITS" else fits_array(fits_bytes)
        return out if kind == "All" else out[kind]

    def statistics(self, date="", columns=None):
        """Per-night statistics rows whose night starts with ``date`` (``YYYY``, ``YYYYMM``,
        ``YYYYMMDD``; empty: every night)."""
        if not re.fullmatch(r"\d{0,8}", str(date)):
            raise QueryError(f"date {date!r}: expected a prefix of YYYYMMDD")
        table = self._table("statistics")
        if table is None:
            return pd.DataFrame()
        rows = self._scan(table, prefix=rowkeys.prefix(self.survey.name) + str(date).encode())
        frame = decode_rows(rows, self.types("statistics"), self._check_columns("statistics", columns))
        frame.insert(0, "key:key", list(frame.index))
        return frame.reset_index(drop=True)

    def schema(self, kind="main"):
        """Columns of a table and their types: DataFrame with ``name`` and ``type``.

        Raises
        ------
        QueryError
            If the table is unknown.
        """
        if kind not in BUILDERS:
            raise QueryError(f"table {kind!r} unknown; expected one of {list(BUILDERS)}")
        types = self.types(kind)
        return pd.DataFrame({"name": list(types), "type": list(types.values())})

    # -- argument checks -----------------------------------------------------------------
    @staticmethod
    def _number(name, value):
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise QueryError(f"{name} = {value!r}: expected a number") from None
        if not math.isfinite(out):
            raise QueryError(f"{name} = {value!r}: expected a finite number")
        return out

    @staticmethod
    def _count(name, value):
        try:
            out = int(value)
        except (TypeError, ValueError):
            raise QueryError(f"{name} = {value!r}: expected a positive integer") from None
        if out <= 0:
            raise QueryError(f"{name} = {value!r}: expected a positive integer")
        return out
