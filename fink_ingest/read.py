"""Read layer: the portal's queries -> store scans -> pandas DataFrames with Fink's columns.

Every call works on any store backend (it only uses the store interface), decodes cells
with each table's schema row (values come back as the datalake held them: ``i:jd`` float64,
``i:candid`` int64, nested values parsed from JSON) and takes an optional column subset.
A query splits like LSDB's searches: a coarse step lists the key ranges to scan (HEALPix
pixel ranges covering a cone, salt buckets of a time window), a fine step keeps rows
(exact angular separation, time bounds). Bad arguments raise ``QueryError`` naming the
argument; an object that does not exist gives an empty DataFrame.
"""
from __future__ import annotations

import gzip
import io
import math
import re

import numpy as np
import pandas as pd

from fink_ingest import cells as cellcodec
from fink_ingest import healpix, rowkeys, schemarow
from fink_ingest.errors import QueryError
from fink_ingest.rowkeys import SCHEMA_ROW_PREFIX, SEP
from fink_ingest.tables import BUILDERS
from fink_ingest.tables.base import JD_UNIX_EPOCH

MAX_RADIUS_ARCSEC = 18000.0 * 2      # Fink stops at 18000" (5 degrees); we serve up to 10 degrees
SEPARATION = "v:separation_degree"   # Fink's name of the distance column of a cone search
TAG = "d:tag"                        # Fink's tag of objects(withupperlim=True) rows
CUTOUT_KINDS = ("Science", "Template", "Difference")
PIXEL_DEG_ORDER0 = 58.6              # HEALPix pixel size at order 0, degrees (sqrt(4 pi / 12) rad)


def history_entries(rows, types, oid_column):
    """One row per history entry from packed history rows (``tables.history``).

    Parameters
    ----------
    rows : list of (bytes, dict of bytes to bytes)
        Rows of ``upper`` or ``uppervalid``, keys ``objectId_jd`` (bucket start).
    types : dict of str to str
        The table's schema-row types (``array<...>`` per cell).
    oid_column : str
        Name of the object id column to add (e.g. ``i:objectId``).

    Returns
    -------
    pandas.DataFrame, shape (entries, 1 + cells)
        The object id, then one column per cell with the element type (``float`` cells as
        float32, exactly as the datalake held them), in time order within each object.
    """
    names = list(dict.fromkeys(q.decode() for _, cells in rows for q in cells))
    names = [n for n in types if n in names] + [n for n in names if n not in types]
    data = {oid_column: [], **{n: [] for n in names}}
    for key, cells in rows:
        lists = {n: cellcodec.decode(cells.get(n.encode()), types[n]) for n in names}
        count = max((len(v) for v in lists.values() if v is not None), default=0)
        data[oid_column].extend([key.decode().split(SEP, 1)[0]] * count)
        for n in names:
            data[n].extend(lists[n] if lists[n] is not None else [None] * count)
    frame = pd.DataFrame(data, columns=[oid_column] + names)
    for n in names:
        element = cellcodec.parse_type(types[n])
        element = element[1] if isinstance(element, tuple) and element[0] == "array" else None
        if element in ("float", "double") and frame[n].notna().all():
            frame[n] = frame[n].astype("float32" if element == "float" else "float64")
        elif element in ("int", "bigint", "smallint", "tinyint") and frame[n].notna().all():
            frame[n] = frame[n].astype("int64")
    return frame


def decode_rows(rows, types, columns=None):
    """Decode ``(key, cells)`` rows into a DataFrame.

    Parameters
    ----------
    rows : list of (bytes, dict of bytes to bytes)
    types : dict of str to str
        Schema-row types, ``family:qualifier`` -> type name.
    columns : list of str, optional
        Columns to return, in this order; default every column present.

    Returns
    -------
    pandas.DataFrame, shape (len(rows), n_columns)
        Index: the row keys (str). Absent cells are None/NaN.

    Raises
    ------
    QueryError
        If a requested column is not in the schema row.
    """
    if columns is not None:
        unknown = [c for c in columns if c not in types]
        if unknown:
            raise QueryError(f"columns: {unknown} unknown; known columns: {sorted(types)}")
        names = list(columns)
    else:
        seen = {}
        for _, cells in rows:
            for q in cells:
                seen.setdefault(q.decode(), None)
        names = [n for n in types if n in seen] + [n for n in seen if n not in types]
    data = {}
    for name in names:
        raw = [cells.get(name.encode()) for _, cells in rows]
        type_name = types.get(name)
        if type_name is None:
            raise QueryError(f"column {name!r} has cells but no type in the schema row")
        data[name] = cellcodec.decode_column(raw, type_name)
    return pd.DataFrame(data, index=[k.decode() for k, _ in rows], columns=names)


def jd_of(date):
    """Julian Date of a date: a float (already a JD), ``YYYY-MM-DD[ HH:MM:SS]`` text or a
    datetime, taken as UTC.

    Raises
    ------
    QueryError
        If the text is not a date.
    """
    if date is None:
        return None
    if isinstance(date, (int, float)) and not isinstance(date, bool):
        return float(date)
    try:
        stamp = pd.Timestamp(date)
    except (ValueError, TypeError):
        raise QueryError(f"date {date!r}: expected YYYY-MM-DD[ HH:MM:SS] or a Julian Date") from None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return JD_UNIX_EPOCH + (stamp - pd.Timestamp("1970-01-01")).total_seconds() / 86400.0


def separation_deg(ra1, dec1, ra2, dec2):
    """Angular separation (degrees) on the sphere, Vincenty's formula (stable at 0 and 180).

    Parameters
    ----------
    ra1, dec1 : float
        Degrees.
    ra2, dec2 : numpy.ndarray, shape (n,)
        Degrees.

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
    l1, b1, l2, b2 = map(np.radians, (ra1, dec1, np.asarray(ra2, float), np.asarray(dec2, float)))
    dl = l2 - l1
    num = np.hypot(np.cos(b2) * np.sin(dl), np.cos(b1) * np.sin(b2) - np.sin(b1) * np.cos(b2) * np.cos(dl))
    den = np.sin(b1) * np.sin(b2) + np.cos(b1) * np.cos(b2) * np.cos(dl)
    return np.degrees(np.arctan2(num, den))


def cone_ranges(ra, dec, radius_arcsec, fine_order):
    """NESTED pixel ranges at ``fine_order`` covering a cone (the coarse step of a cone search).

    The disc is covered at an order whose pixels are about a quarter of the radius
    (``healpy.query_disc``, inclusive), each pixel is turned into its contiguous range of
    fine pixels, and touching ranges are merged.

    Parameters
    ----------
    ra, dec : float
        Cone centre, ICRS, degrees.
    radius_arcsec : float
        Radius in arcseconds.
    fine_order : int
        Order of the sky index keys.

    Returns
    -------
    list of (int, int)
        Sorted, disjoint half-open ranges ``[start, stop)``.
    """
    import healpy as hp

    radius_deg = radius_arcsec / 3600.0
    order = int(np.clip(math.floor(math.log2(PIXEL_DEG_ORDER0 / radius_deg)) + 2, 0, fine_order))
    pixels = hp.query_disc(healpix.nside(order), hp.ang2vec(ra, dec, lonlat=True),
                           math.radians(radius_deg), inclusive=True, nest=True)
    ranges = []
    for p in sorted(int(x) for x in pixels):
        start, stop = healpix.fine_range(p, order, fine_order)
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], stop)
        else:
            ranges.append((start, stop))
    return ranges


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

    # -- helpers -----------------------------------------------------------------------
    def table_name(self, kind):
        """Store table name of a builder kind (``main`` -> ``ztf``, ``sky`` -> ``ztf.sky``)."""
        return BUILDERS[kind].table_name(self.config.table_prefix)

    def _table(self, kind):
        name = self.table_name(kind)
        return self.store.table(name) if name in self.store.tables() else None

    def types(self, kind):
        """Schema-row types of a table (dict), with the key-derived columns of index rows."""
        if kind not in self._types:
            table = self._table(kind)
            types = schemarow.read(table, self.survey.schema_version) if table else {}
            f, leaf = self.survey.original_family, self.survey.leaf
            types.setdefault(f"{f}:{leaf['object_id']}", "string")
            types.setdefault(f"{f}:{leaf['time']}", "double")
            self._types[kind] = types
        return self._types[kind]

    def _oid(self):
        return f"{self.survey.original_family}:{self.survey.leaf['object_id']}"

    def _jd(self):
        return f"{self.survey.original_family}:{self.survey.leaf['time']}"

    def _check_oid(self, oid):
        if not isinstance(oid, str) or not oid or SEP in oid or oid.startswith(SCHEMA_ROW_PREFIX) \
                or not re.fullmatch(r"[A-Za-z0-9]+", oid):
            raise QueryError(f"objectId {oid!r} is not a valid object id")

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
        """Decode index rows, adding objectId and jd from their keys (``first_jd_objectId``)."""
        frame = decode_rows(rows, self.types(kind))
        keys = [k.decode().rsplit(SEP, 2) for k, _ in rows]
        frame.insert(0, self._oid(), [k[2] for k in keys])
        frame.insert(1, self._jd(), np.array([float(k[1]) for k in keys]))
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
            rows.extend(main.scan(prefix=f"{oid}{SEP}".encode(), columns=want))
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
                hist.extend(table.scan(prefix=f"{oid}{SEP}".encode()))
            part = history_entries(hist, self.types(kind), self._oid())
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
            rows.extend(table.scan(start=f"{start:0{healpix.PIXEL_DIGITS}d}".encode(),
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
        frame = frame[keep].sort_values(self._jd()).groupby(self._oid(), sort=False).tail(1)
        frame = frame.sort_values([SEPARATION, self._oid()]).head(n).reset_index(drop=True)
        if columns is not None:
            frame = frame[list(dict.fromkeys([self._oid(), self._jd()] + columns + [SEPARATION]))]
        return frame

    def latests(self, class_name, n=10, start_date=None, stop_date=None, columns=None):
        """The newest alerts of a class (Fink's rule), newest first.

        Parameters
        ----------
        class_name : str
            A class of the class index, e.g. ``"SN candidate"`` or a SIMBAD label.
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
        prefix = f"{class_name}{SEP}".encode()
        if not any(True for _ in table.scan(prefix=prefix, limit=1)):
            raise QueryError(f"class {class_name!r} is unknown: no alert of this class is stored")
        lo, hi = jd_of(start_date), jd_of(stop_date)
        digits = (self.survey.time_int_digits, self.survey.time_frac_digits)
        start = prefix + (rowkeys.format_time_scalar(lo, *digits).encode() if lo is not None else b"")
        stop = (prefix + rowkeys.format_time_scalar(hi, *digits).encode()) if hi is not None \
            else rowkeys.prefix_stop(prefix)
        rows = list(table.scan(start=start, stop=stop, reverse=True, limit=n))
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
        import pyarrow as pa

        if isinstance(names, (str, int)):
            names = [names] if not isinstance(names, str) else [x for x in names.split(",") if x.strip()]
        normal = rowkeys.normalize_ssnamenr(pa.array([str(x) for x in names])).to_pylist()
        if any(x is None for x in normal):
            raise QueryError(f"n_or_d {names!r}: not a Solar System object name or number")
        table, main = self._table("sso"), self._table("main")
        if table is None or main is None:
            return pd.DataFrame()
        keys = []
        for name in normal:
            for key, _ in table.scan(prefix=f"{name}{SEP}".encode(), columns=["d:roid"]):
                _, jd, oid = key.decode().rsplit(SEP, 2)
                keys.append(f"{oid}{SEP}{jd}".encode())
        columns = self._check_columns("main", columns)
        want = None if columns is None else [c.encode() for c in columns]
        frame = decode_rows(main.rows(keys, columns=want), self.types("main"), columns)
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
        a, b = (rowkeys.format_time_scalar(x, *digits) for x in (lo, hi))
        rows = []
        for bucket in range(self.survey.time_buckets):
            salt = f"{bucket:02x}{SEP}"
            rows.extend(table.scan(start=f"{salt}{a}".encode(), stop=f"{salt}{b}".encode()))
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
        pointers = list(table.scan(prefix=f"{object_id}{SEP}".encode()))
        if candid is not None:
            pointers = [p for p in pointers if cellcodec.decode(p[1].get(b"d:candid"), "bigint") == int(candid)]
        if not pointers:
            return None
        _, cells = pointers[-1]  # keys sort in time order: the last is the latest
        kinds = CUTOUT_KINDS if kind == "All" else (kind,)
        stamps = self._read_stamps(cells, [f"cutout{k}" for k in kinds])
        out = {}
        for k in kinds:
            fits_bytes = stamps[f"cutout{k}"]
            out[k] = fits_bytes if output == "FITS" else _fits_array(fits_bytes)
        return out if kind == "All" else out[kind]

    @staticmethod
    def _read_stamps(cells, stamp_columns):
        """Stamp FITS bytes (gunzipped) from one row of one row group of the pointed file."""
        import pyarrow.parquet as pq

        from fink_ingest.datalake import open_uri

        uri = cells[b"d:uri"].decode()
        handle = open_uri(uri)
        if handle is None:
            raise QueryError(f"cutout file {uri} is not reachable from this process")
        group = cellcodec.decode(cells.get(b"d:row_group"), "int")
        row = cellcodec.decode(cells.get(b"d:row"), "int")
        with handle as fh:
            pf = pq.ParquetFile(fh)
            if group is None:  # the footer was not readable at push time: locate by file row
                file_row = cellcodec.decode(cells[b"d:file_row"], "bigint")
                starts = np.cumsum([0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
                group = int(np.searchsorted(starts, file_row, side="right") - 1)
                row = int(file_row - starts[group])
            table = pf.read_row_group(group, columns=stamp_columns)
        out = {}
        for name in stamp_columns:
            stamp = table.column(name)[row].as_py()
            data = stamp["stampData"] if stamp else None
            out[name] = gzip.decompress(data) if data and data[:2] == b"\x1f\x8b" else data
        return out

    def statistics(self, date="", columns=None):
        """Per-night statistics rows whose night starts with ``date`` (``YYYY``, ``YYYYMM``,
        ``YYYYMMDD``; empty: every night)."""
        if not re.fullmatch(r"\d{0,8}", str(date)):
            raise QueryError(f"date {date!r}: expected a prefix of YYYYMMDD")
        table = self._table("statistics")
        if table is None:
            return pd.DataFrame()
        rows = list(table.scan(prefix=f"{self.survey.name}{SEP}{date}".encode()))
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


def _fits_array(fits_bytes):
    """2-D image of a FITS file's primary HDU (numpy array), or None."""
    if fits_bytes is None:
        return None
    from astropy.io import fits

    with fits.open(io.BytesIO(fits_bytes)) as hdul:
        return np.array(hdul[0].data)
