"""Latest alerts of a class, from the class index (reversed range scans, newest first)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from fink_ingest import rowkeys
from fink_ingest.errors import QueryError
from fink_ingest.read import derived, vocabulary
from fink_ingest.read.base import ReaderBase
from fink_ingest.tables import BUILDERS

MAG_RATE = "d:mag_rate"     # Fink's magnitude rate (mag/day); its sign gives latests' trend
TRENDS = {"rising": -1, "fading": 1}          # Fink: rising = mag_rate < 0, fading = mag_rate > 0
BLAZAR_TRENDS = ("low_state", "new_low_state")  # Fink's trends of (CTA) Blazar low state


class ClassQueries(ReaderBase):
    """``latests``."""

    def latests(self, class_name, n=10, start_date=None, stop_date=None, columns=None, trend=None, color=False):
        """The newest alerts of a class (Fink's rule), newest first.

        Parameters
        ----------
        class_name : str
            A class of Fink's rule (``"SN candidate"``), a SIMBAD label (``"QSO"`` or
            ``"(SIMBAD) QSO"``: both find the alerts stored under either spelling) or
            ``"(TNS) <type>"``; exactly this class (``EB*`` never returns ``EB*_Candidate``).
        n : int
            At most this many alerts (the newest in the window).
        start_date, stop_date : optional
            Window on the alert time (UTC dates, JD or MJD), start inclusive, stop exclusive.
        columns : list of str, optional
            None: every main-table column and ``v:classification``, ``v:lastdate``,
            ``v:firstdate``, ``v:lapse``, ``v:constellation``; else exactly these (class
            index, main-table or ``v:`` columns).
        trend : {'rising', 'fading'}, optional
            Keep the alerts whose ``d:mag_rate`` is negative (rising) or positive (fading),
            among the ``n`` newest, as Fink does.
        color : bool
            Add ``v:rate``, ``v:g-r`` and their errors, computed on the alerts returned.

        Returns
        -------
        pandas.DataFrame
            Empty (with the columns asked for) if the class has no alert in the window.

        Raises
        ------
        QueryError
            If the class is neither one Fink knows nor stored, or an argument is bad.
        """
        n = self._count("n", n)
        if not isinstance(class_name, str) or not class_name.strip():
            raise QueryError(f"class {class_name!r} is unknown; see /api/v1/classes")
        if trend not in (None, "") and trend not in TRENDS:
            if trend in BLAZAR_TRENDS:
                raise QueryError(f"trend {trend!r} is Fink's CTA blazar filter, which this store does not hold; "
                                 f"expected one of {list(TRENDS)}")
            raise QueryError(f"trend {trend!r}: expected one of {list(TRENDS)}")
        lo, hi = self._window(start_date, stop_date)
        index_columns = list(self.types("class"))
        columns = self._check_columns("main", columns, extra=index_columns + list(derived.ALL))
        table = self._table("class")
        names = vocabulary.index_names(class_name)
        stored = table is not None and any(self._scan(table, prefix=rowkeys.prefix(x), limit=1) for x in names)
        if not stored and not vocabulary.is_known(class_name):
            raise QueryError(f"class {class_name!r} is unknown: neither a class Fink knows (see /api/v1/classes) "
                             "nor one stored")
        rows = []
        if stored and (lo is None or hi is None or lo < hi):
            for name in names:   # newest first; one time: the later key first, as a reversed scan gives
                prefix = rowkeys.prefix(name)
                start = prefix + (self._time_text(lo) if lo is not None else b"")
                stop = prefix + self._time_text(hi) if hi is not None else rowkeys.prefix_stop(prefix)
                rows.extend(self._scan(table, start=start, stop=stop, reverse=True, limit=n))
            if len(names) > 1:
                parts = rowkeys.parse_many(BUILDERS["class"].key, [k for k, _ in rows])
                order = sorted(range(len(rows)), key=lambda i: (parts["time"][i], parts["object"][i],
                                                                 parts["alert"][i]), reverse=True)
                rows = [rows[i] for i in order]
            rows = rows[:n]
        frame, _ = self._index_frame("class", rows, cells=self._index_cells("class", columns))
        defaults = derived.PER_ALERT + (derived.PER_OBJECT if color else ())
        if columns is not None and color:
            columns = columns + [c for c in derived.PER_OBJECT if c not in columns]
        if trend not in (None, "") and len(frame):
            rate = self._main_rows(frame, [MAG_RATE])
            values = pd.to_numeric(rate[MAG_RATE], errors="coerce").to_numpy(dtype=float, na_value=np.nan) \
                if MAG_RATE in rate.columns else np.full(len(frame), np.nan)
            frame = frame[np.sign(values) == TRENDS[trend]].reset_index(drop=True)
        if frame.empty:
            return pd.DataFrame(columns=columns if columns is not None else list(self.types("main")) + list(defaults))
        return self._alerts(frame, columns, index_columns, defaults=defaults)
