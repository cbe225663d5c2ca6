"""Alerts of a time window, from the salted time index (one range scan per salt bucket)."""
from __future__ import annotations

import pandas as pd

from fink_ingest import rowkeys
from fink_ingest.errors import QueryError
from fink_ingest.read.base import ReaderBase
from fink_ingest.read.decode import jd_of

MAX_WINDOW_MINUTES = 1440     # one day


class WindowQueries(ReaderBase):
    """``date_window``."""

    def date_window(self, start, window_minutes, columns=None, n=None):
        """Alerts whose time falls in ``[start, start + window_minutes)``, sorted by time.

        The time index is salted: one range scan per salt bucket, merged.

        Raises
        ------
        QueryError
            If the window is not in (0, 1440] minutes or the date is bad.
        """
        window = self._number("window", window_minutes)
        if not 0 < window <= MAX_WINDOW_MINUTES:
            raise QueryError(f"window = {window}: expected minutes in (0, {MAX_WINDOW_MINUTES}]")
        if jd_of(start) is None:
            raise QueryError("startdate is required")
        lo, _ = self._window(start)
        hi = min(lo + window / 1440.0, self.survey.time_max)
        n = None if n in (None, "") else self._count("n", n)
        columns = self._check_columns("time", columns)
        table = self._table("time")
        if table is None:
            return pd.DataFrame()
        a, b = self._time_text(lo), self._time_text(hi)
        rows = []
        for bucket in range(self.survey.time_buckets):
            salt = rowkeys.prefix(f"{bucket:02x}")
            rows.extend(self._scan(table, start=salt + a, stop=salt + b))
        frame, _ = self._index_frame("time", rows)
        if columns is not None:
            frame = frame[columns]
        if len(frame):
            frame = frame.sort_values(self._jd(), kind="stable").reset_index(drop=True)
        return frame.head(n) if n else frame
