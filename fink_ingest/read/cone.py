"""Cone search: objects with an alert within a cone, from the sky index.

The coarse step lists the NESTED pixel ranges covering the cone (``sky.cone_ranges``, one
key range each in the order-29 sky index); the fine step keeps rows by exact angular
separation and the time window, then one row per object (its latest alert), nearest first.
"""
from __future__ import annotations

import pandas as pd

from fink_ingest import healpix
from fink_ingest.errors import QueryError
from fink_ingest.read.base import ReaderBase
from fink_ingest.read.sky import cone_ranges, separation_deg

MAX_RADIUS_ARCSEC = 18000.0          # Fink: at most 18,000 arcseconds (5 degrees)
MIN_RADIUS_ARCSEC = 0.01             # 10 mas, far below ZTF's astrometric precision (~0.1")
SEPARATION = "v:separation_degree"   # Fink's name of the distance column of a cone search
RADIUS_MESSAGE = "`radius` cannot be bigger than 18,000 arcseconds (5 degrees)."   # Fink's words


def parse_position(ra, dec):
    """Cone centre in degrees from decimal degrees or sexagesimal text, as Fink reads it:
    ``ra`` with an ``h`` (``12h55m17.218s``) is read with its units, with ``:`` or spaces
    (``12:55:17.218``, ``12 55 17.218``) as hours, else as degrees (``193d49m18.267s``);
    ``dec`` in degrees. Parsed by astropy.

    Returns
    -------
    (float, float)
        ``ra`` in [0, 360], ``dec`` in [-90, 90], degrees.

    Raises
    ------
    QueryError
        If either is not an angle or is out of range, naming it.
    """
    values = []
    for name, value in (("ra", ra), ("dec", dec)):
        if isinstance(value, bool) or value is None:
            raise QueryError(f"{name} = {value!r}: expected degrees or sexagesimal text")
        try:
            values.append(float(value))
        except (TypeError, ValueError, OverflowError):
            values.append(None)
    if None in values:
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        text = str(ra).strip()
        try:
            if "h" in text:
                coord = SkyCoord(str(ra), str(dec), frame="icrs")
            elif ":" in text or " " in text:
                coord = SkyCoord(str(ra), str(dec), frame="icrs", unit=(u.hourangle, u.deg))
            else:
                coord = SkyCoord(str(ra), str(dec), frame="icrs", unit="deg")
        except (ValueError, TypeError, u.UnitsError) as exc:
            raise QueryError(f"ra, dec = {ra!r}, {dec!r}: not a position ({exc})") from None
        values = [float(coord.ra.deg), float(coord.dec.deg)]
    ra, dec = values
    if not 0 <= ra <= 360:
        raise QueryError(f"ra = {ra}: expected degrees in [0, 360]")
    if not -90 <= dec <= 90:
        raise QueryError(f"dec = {dec}: expected degrees in [-90, 90]")
    return ra, dec


class ConeQueries(ReaderBase):
    """``conesearch``."""

    def conesearch(self, ra, dec, radius_arcsec, start_date=None, stop_date=None, n=1000, columns=None,
                   window_days=None):
        """Objects with an alert within a cone, one row per object (its latest alert in the
        time window), nearest first, with ``v:separation_degree``.

        Parameters
        ----------
        ra, dec : float or str
            Cone centre, ICRS: degrees, or sexagesimal text (``parse_position``).
        radius_arcsec : float
            Radius, arcseconds, in [0.01, 18000] (Fink's limit).
        start_date, stop_date : str, datetime or float, optional
            Window on the alert time (UTC dates, JD or MJD), start inclusive, stop exclusive.
        n : int
            At most this many objects (the nearest).
        columns : list of str, optional
            Columns to return: any of the sky index (every one by default), of the main
            table, or ``v:`` columns; ``i:ra``, ``i:dec`` and ``v:separation_degree`` are
            always added (as Fink does).
        window_days : float, optional
            Days after ``start_date``, instead of ``stop_date`` (Fink's ``window``).

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        QueryError
            If a position, the radius, ``n``, a date or a column is bad, naming it.
        """
        from fink_ingest.read import derived

        ra, dec = parse_position(ra, dec)
        radius_arcsec = self._number("radius", radius_arcsec)
        if radius_arcsec > MAX_RADIUS_ARCSEC:
            raise QueryError(f"radius = {radius_arcsec:g}: {RADIUS_MESSAGE}")
        if radius_arcsec < MIN_RADIUS_ARCSEC:
            raise QueryError(f"radius = {radius_arcsec:g}: expected arcseconds in [{MIN_RADIUS_ARCSEC:g}, "
                             f"{MAX_RADIUS_ARCSEC:g}]")
        n = self._count("n", n)
        lo, hi = self._window(start_date, stop_date, window_days)
        index_columns = list(self.types("sky"))
        columns = self._check_columns("main", columns, extra=index_columns + list(derived.ALL) + [SEPARATION])
        table = self._table("sky")
        if table is None:
            return pd.DataFrame()
        rows = []
        for start, stop in cone_ranges(ra, dec, radius_arcsec, self.survey.sky_order):
            rows.extend(self._scan(table, start=f"{start:0{healpix.PIXEL_DIGITS}d}".encode(),
                                   stop=f"{stop:0{healpix.PIXEL_DIGITS}d}".encode()))
        frame, _ = self._index_frame("sky", rows)
        ra_col, dec_col = self._col("ra"), self._col("dec")
        if frame.empty:
            return pd.DataFrame(columns=(columns or index_columns) + [SEPARATION])
        separation = separation_deg(ra, dec, frame[ra_col].to_numpy(float), frame[dec_col].to_numpy(float))
        keep = separation <= radius_arcsec / 3600.0
        if lo is not None:
            keep &= frame[self._jd()].to_numpy() >= lo
        if hi is not None:
            keep &= frame[self._jd()].to_numpy() < hi
        frame = frame.assign(**{SEPARATION: separation})[keep]
        frame = frame.sort_values([self._jd(), self._alert_id()]).groupby(self._oid(), sort=False).tail(1)
        frame = frame.sort_values([SEPARATION, self._oid()]).head(n).reset_index(drop=True)
        if columns is None:
            return frame
        wanted = list(dict.fromkeys([c for c in columns if c != SEPARATION] + [ra_col, dec_col]))
        return self._alerts(frame, wanted, index_columns, extra={SEPARATION: frame[SEPARATION].to_numpy()})
