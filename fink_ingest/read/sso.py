"""Solar System objects by MPC name or number, from the sso index.

Names are resolved within the store's own alerts: ZTF writes a known Solar System object's
MPC number (``8467``) or, while it has none, its designation (``2009VN118``) in
``ssnamenr``, and a request is looked up as written there, spaces removed. Linking a
number to the object's IAU name (``8467`` is ``Benoitcarry``), or to designations it had
before being numbered, takes IMCCE's SsODNet, which Fink calls and this reader does not:
such a link is not made.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from fink_ingest import rowkeys
from fink_ingest.errors import QueryError
from fink_ingest.read import derived
from fink_ingest.read.base import MAX_IDS, ReaderBase, split_list

SSO_NAME, SSO_NUMBER = "sso_name", "sso_number"   # Fink's columns of the resolved name and number


def name_and_number(ssnamenr):
    """Fink's ``sso_name`` and ``sso_number`` of ``ssnamenr`` values, from the value alone:
    a number is the MPC number (name unknown here), anything else the designation or name.

    Returns
    -------
    (numpy.ndarray of object, numpy.ndarray of object)
        Names (str or None) and numbers (int or None), shape (n,).
    """
    names, numbers = [], []
    for value in ssnamenr:
        text = None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
        numbered = bool(text) and text.isdigit()
        names.append(None if not text or numbered else text)
        numbers.append(int(text) if numbered else None)
    return np.array(names, dtype=object), np.array(numbers, dtype=object)


class SsoQueries(ReaderBase):
    """``sso``."""

    def sso(self, names, columns=None):
        """Every alert of Solar System object(s), newest first (as Fink).

        Parameters
        ----------
        names : str, int or list
            MPC numbers or designations, comma-separated: ``"2009 VN118"``, ``"2009VN118"``
            and ``8467`` are found (spaces removed, as in the index); at most ``MAX_IDS``.
        columns : list of str, optional
            None: every main-table column, the ``v:`` columns of a whole alert,
            ``sso_name`` and ``sso_number``; else these columns, plus ``i:ssnamenr`` and
            the two resolution columns (as Fink adds them).

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        QueryError
            If a name is not a name or number, or no alert of it is stored (as Fink answers
            a name its resolver does not know), or a column is unknown.
        """
        items = split_list(names, "n_or_d")
        if not items:
            raise QueryError("n_or_d: required parameter missing")
        if len(items) > MAX_IDS:
            raise QueryError(f"n_or_d: {len(items)} names in one request; at most {MAX_IDS}")
        normal = rowkeys.normalize_ssnamenr(pa.array(items, pa.string())).to_pylist()
        bad = [i for i, x in zip(items, normal) if x is None]
        if bad:
            raise QueryError(f"n_or_d {bad}: not a Solar System object name or number")
        index_columns = list(self.types("sso"))
        ssnamenr = f"{self.survey.original_family}:ssnamenr"
        columns = self._check_columns("main", columns, extra=index_columns + list(derived.ALL) + [SSO_NAME, SSO_NUMBER])
        table = self._table("sso")
        rows, unknown, asked = [], [], {}
        for item, name in zip(items, normal):
            asked.setdefault(name, item)
        for name, item in asked.items():
            found = self._scan(table, prefix=rowkeys.prefix(name)) if table is not None else []
            if not found:
                unknown.append(item)
            rows.extend(found)
        if unknown:
            raise QueryError(f"n_or_d {unknown}: no alert of such a Solar System object is stored (names and numbers "
                             "are matched as ZTF writes them in ssnamenr; no external resolver is called)")
        frame, _ = self._index_frame("sso", rows, cells=self._index_cells("sso", columns))
        frame = frame.sort_values(self._jd(), ascending=False, kind="stable").reset_index(drop=True)
        wanted = None if columns is None else list(dict.fromkeys(
            [c for c in columns if c not in (SSO_NAME, SSO_NUMBER)] + [ssnamenr]))
        out = self._alerts(frame, wanted, index_columns)
        out[SSO_NAME], out[SSO_NUMBER] = name_and_number(out[ssnamenr].tolist()) if ssnamenr in out.columns \
            else (None, None)
        if columns is not None:
            out = out[list(dict.fromkeys(columns + [ssnamenr, SSO_NAME, SSO_NUMBER]))]
        return out if len(out) else pd.DataFrame(columns=out.columns)
