"""Objects by id: every alert of an object from the main table, newest first, with its
upper limits and bad-quality detections from the history tables, and its stamps."""
from __future__ import annotations

import numpy as np
import pandas as pd

from fink_ingest import rowkeys
from fink_ingest.errors import QueryError
from fink_ingest.read import derived
from fink_ingest.read.base import ReaderBase
from fink_ingest.read.cutouts import CUTOUT_KINDS, stamp_arrays
from fink_ingest.read.decode import decode_columns, history_entries
from fink_ingest.tables import BUILDERS

TAG = "d:tag"                        # Fink's tag of objects(withupperlim=True) rows
VALID, UPPER, BAD = "valid", "upperlim", "badquality"
NO_CANDID = -1                       # Fink's i:candid of an upper limit (it has no alert id)


def stamp_column(kind):
    """Fink's column of a stamp as a 2-D array: ``b:cutout<Kind>_stampData``."""
    return f"b:cutout{kind}_stampData"


class ObjectQueries(ReaderBase):
    """``objects``: alerts of object(s) by id."""

    def objects(self, object_ids, columns=None, with_upper_limits=False, with_cutouts=False, cutout_kind="All"):
        """Every alert of the object(s), newest first (``i:jd`` descending, as Fink).

        Parameters
        ----------
        object_ids : str or list of str
            Object ids, e.g. ``"ZTF24aaaaaaa"`` (a comma-separated string is split); at most
            ``MAX_IDS``.
        columns : list of str, str or None
            ``family:qualifier`` names (main-table columns, ``v:`` columns, ``d:tag``); None
            or ``"*"``: every main-table column (null where an alert has no cell) and every
            ``v:`` column (``derived.ALL``).
        with_upper_limits : bool
            Also return the upper limits and bad-quality detections of the history tables,
            each row tagged in ``d:tag`` (``valid``, ``badquality``, ``upperlim``); upper
            limits have ``i:candid = -1``, as in Fink.
        with_cutouts : bool
            Add each alert's stamps as 2-D arrays (lists of lists; ``[]`` for a row without
            a stamp), in ``b:cutout<Kind>_stampData``.
        cutout_kind : {'All', 'Science', 'Template', 'Difference'}
            Stamps to add with ``with_cutouts``.

        Returns
        -------
        pandas.DataFrame
            One row per alert (and history entry); empty if no such object is stored.

        Raises
        ------
        QueryError
            If there are too many object ids, or a column or kind is unknown (an id that is no
            object id of the survey finds nothing, as in Fink).
        """
        ids = self._object_ids(object_ids)
        kinds = self._stamp_kinds(cutout_kind) if with_cutouts else ()
        extra = list(derived.ALL) + [TAG] + [stamp_column(k) for k in kinds]
        columns = self._check_columns("main", columns, extra=extra)
        main = self._table("main")
        if main is None:
            return pd.DataFrame()
        types = self.types("main")
        if columns is None:
            stored, names = list(types), list(derived.ALL)
        else:
            names = [c for c in columns if c in derived.ALL]
            stored = list(dict.fromkeys([c for c in columns if c in types] + derived.inputs(names, self.survey)))
        # newest first needs the time; stamps are found by object and alert id
        stored = list(dict.fromkeys(stored + [self._jd()] + ([self._oid(), self._alert_id()] if kinds else [])))
        want = [c.encode() for c in stored]
        rows = []
        for oid in ids:
            rows.extend(self._scan(main, prefix=rowkeys.prefix(oid), columns=want))
        data = decode_columns(rows, types, [c for c in stored if c in types], values_only=self.survey.values_only)
        data.update(derived.compute(data, names, self.survey, self.survey.hosts))
        frame = pd.DataFrame(data, columns=list(data))
        if kinds:
            self._add_stamps(frame, kinds)
        if with_upper_limits or (columns is not None and TAG in columns):
            frame[TAG] = VALID
        if with_upper_limits:
            frame = self._with_history(frame, ids)
        if len(frame) and self._jd() in frame.columns:
            frame = frame.sort_values(self._jd(), ascending=False, kind="stable")
        if columns is not None:   # what was asked, then what the options add (as Fink)
            added = ([TAG] if with_upper_limits else []) + [stamp_column(k) for k in kinds]
            frame = frame[list(dict.fromkeys([c for c in columns if c in frame.columns] + added))]
        return frame.reset_index(drop=True)

    @staticmethod
    def _stamp_kinds(kind):
        if kind in (None, "", "All"):
            return CUTOUT_KINDS
        if kind not in CUTOUT_KINDS:
            raise QueryError(f"cutout-kind {kind!r}: expected one of {list(CUTOUT_KINDS) + ['All']}")
        return (kind,)

    def _with_history(self, frame, ids):
        """The alerts with the objects' history entries appended, each tagged in ``d:tag``."""
        parts = [frame]
        for kind, tag in (("upper", UPPER), ("uppervalid", BAD)):
            table = self._table(kind)
            if table is None:
                continue
            hist = []
            for oid in ids:
                hist.extend(self._scan(table, prefix=rowkeys.prefix(oid)))
            part = history_entries(hist, self.types(kind), self._oid(),
                                   lambda key, b=BUILDERS[kind]: b.parse_key(key)["object"])
            if part.empty:
                continue
            part[TAG] = tag
            if tag == UPPER:
                part[self._alert_id()] = NO_CANDID
            parts.append(part)
        parts = [p for p in parts if len(p)]
        if len(parts) <= 1:
            return frame
        merged = pd.concat(parts, ignore_index=True)
        if self._alert_id() in merged.columns and merged[self._alert_id()].notna().all():
            merged[self._alert_id()] = merged[self._alert_id()].astype(np.int64)
        return merged

    def _add_stamps(self, frame, kinds):
        """Add the stamps of each alert of a frame (2-D lists; ``[]`` where there is none)."""
        table = self._table("cutouts")
        values = {k: [[] for _ in range(len(frame))] for k in kinds}
        if table is not None and len(frame):
            pointers = {}
            for oid in frame[self._oid()].unique():
                for key, cells in self._scan(table, prefix=rowkeys.prefix(oid)):
                    pointers[BUILDERS["cutouts"].parse_key(key)["alert"]] = cells
            for i, candid in enumerate(frame[self._alert_id()].to_numpy()):
                cells = pointers.get(int(candid))
                if cells is None:
                    continue
                arrays = stamp_arrays(cells, kinds)
                for k in kinds:
                    if arrays[k] is not None:
                        values[k][i] = np.where(np.isfinite(arrays[k]), arrays[k], np.nan).tolist()
        for k in kinds:
            frame[stamp_column(k)] = values[k]
