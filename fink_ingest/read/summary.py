"""Summaries: per-night statistics and the columns served, with Fink's names and shapes."""
from __future__ import annotations

import re

import pandas as pd

from fink_ingest import rowkeys
from fink_ingest.config import load_field_docs
from fink_ingest.errors import QueryError
from fink_ingest.read import derived, vocabulary
from fink_ingest.read.base import ReaderBase, parse_columns
from fink_ingest.read.decode import decode_rows
from fink_ingest.read.objects import TAG, stamp_column
from fink_ingest.read.cutouts import CUTOUT_KINDS
from fink_ingest.tables import BUILDERS
from fink_ingest.tables.statistics import CLASS_FAMILY

KEY = "key:key"                   # Fink's column of the row key
BASIC, CLASS = "basic", "class"   # Fink's families of the statistics table
# Our statistics cells (added family) -> Fink's names; the ZTF band ids are fid 1, 2, 3 = g, r, i.
STAT_NAMES = {"alerts": "sci", "objects": "objects", "exposures": "exposures", "fields": "fields",
              "fid_1": "n_g", "fid_2": "n_r", "fid_3": "n_i"}


class SummaryQueries(ReaderBase):
    """``statistics``, ``schema``, ``classes``."""

    def statistics(self, date="", columns=None, schema=False):
        """Per-night statistics whose night starts with ``date``, with Fink's column names.

        Columns: ``key:key`` (``ztf_YYYYMMDD``), ``basic:sci`` (alerts ingested: the science
        stream), ``basic:n_g``, ``basic:n_r`` (``basic:n_i``: alerts per band),
        ``basic:objects`` (distinct objects, not in Fink) and ``class:<class>`` (alerts per
        class of Fink's rule). Fink's ``basic:raw`` (alerts received before its quality cut)
        is not in the datalake; ``basic:exposures`` and ``basic:fields`` are not counted by
        the statistics table (yet): neither is here. ``STAT_NAMES`` maps the cells the
        table holds to Fink's names.

        Parameters
        ----------
        date : str
            ``YYYY``, ``YYYYMM``, ``YYYYMMDD`` or empty (every night).
        columns : list of str, optional
            Fink names; ``key:key`` is always returned.
        schema : bool
            Return the column names only (``schema`` column), as Fink's ``schema=True``.

        Raises
        ------
        QueryError
            If ``date`` is not a prefix of ``YYYYMMDD`` or a column is unknown.
        """
        if not isinstance(date, (str, int)) or isinstance(date, bool) or not re.fullmatch(r"\d{0,8}", str(date)):
            raise QueryError(f"date {date!r}: expected a prefix of YYYYMMDD (YYYY, YYYYMM, YYYYMMDD or empty)")
        names = self._statistics_names()
        if schema:
            return pd.DataFrame({"schema": [KEY] + sorted(names)})
        columns = parse_columns(columns)
        if columns is not None:
            unknown = [c for c in columns if c != KEY and c not in names]
            if unknown:
                raise QueryError(f"columns: {unknown} unknown; known columns: {[KEY] + sorted(names)}")
        table = self._table("statistics")
        rows = self._scan(table, prefix=rowkeys.prefix(self.survey.name) + str(date).encode()) if table else []
        frame = decode_rows(rows, self.types("statistics"))
        frame = frame.rename(columns=self._rename())
        frame.insert(0, KEY, list(frame.index))
        frame = frame.reset_index(drop=True)
        if columns is not None:
            frame = frame.reindex(columns=[KEY] + [c for c in columns if c != KEY])
        return frame

    def _rename(self):
        """Our statistics columns -> Fink's names (dict)."""
        out = {}
        for name in self.types("statistics"):
            family, _, qualifier = name.partition(":")
            if family == CLASS_FAMILY:
                out[name] = f"{CLASS}:{qualifier}"
            elif family == self.survey.added_family:
                out[name] = f"{BASIC}:{STAT_NAMES.get(qualifier, qualifier)}"
        return out

    def _statistics_names(self):
        """Fink's names of the statistics columns the store holds: dict of name to ours."""
        return {fink: ours for ours, fink in self._rename().items()}

    def schema(self, kind="main"):
        """The columns served, grouped as Fink's ``/api/v1/schema``: group -> field -> type and doc.

        For the main table (Fink's alerts): ``<SURVEY> original fields (i:)``,
        ``<SURVEY> original cutouts (b:)``, ``Fink science module outputs (d:)`` (with
        ``tag``), ``Fink added values (v:)``; fields named without their family, as Fink.
        Another table gives one group per family of its schema row.

        Raises
        ------
        QueryError
            If the table is unknown.
        """
        if kind not in BUILDERS:
            raise QueryError(f"table {kind!r} unknown; expected one of {list(BUILDERS)}")
        docs = load_field_docs(self.survey.name)
        types = self.types(kind, refresh=True)
        original, added = self.survey.original_family, self.survey.added_family
        if kind != "main":
            groups = {}
            for name, type_name in types.items():
                family, _, field = name.partition(":")
                section = docs.get("original" if family == original else "added", {})
                groups.setdefault(f"{self.table_name(kind)} ({family}:)", {})[field] = \
                    {"type": type_name, "doc": section.get(field, "")}
            return groups
        upper = self.survey.name.upper()

        def group(family, section):
            return {name.partition(":")[2]: {"type": t, "doc": docs.get(section, {}).get(name.partition(":")[2], "")}
                    for name, t in types.items() if name.partition(":")[0] == family}

        science = group(added, "added")
        science[TAG.partition(":")[2]] = {"type": "string", "doc": docs.get("added", {}).get("tag", "")}
        cutouts = {stamp_column(k).partition(":")[2]: {"type": "array", "doc": docs.get("cutouts", {}).get(
            stamp_column(k).partition(":")[2], "")} for k in CUTOUT_KINDS}
        return {f"{upper} original fields ({original}:)": group(original, "original"),
                f"{upper} original cutouts (b:)": cutouts,
                f"Fink science module outputs ({added}:)": dict(sorted(science.items())),
                f"Fink added values ({derived.FAMILY}:)": {n.partition(":")[2]: {"type": t, "doc": d}
                                                           for n, (t, d) in sorted(derived.DOCS.items())}}

    @staticmethod
    def classes():
        """The class names Fink knows, by group (``vocabulary.classes``)."""
        return vocabulary.classes()
