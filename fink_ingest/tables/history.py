"""Tables from the alerts' history (``prv_candidates``): upper limits and bad-quality detections.

The push explodes the history of the night's alerts into one staged row per entry
(objectId plus the survey file's ``[history] fields``), drops entries without a time
(set aside with a reason, never guessed) and keeps one row per entry: the same entry appears
in every later alert of the object but is stored once.

- upper (``<prefix>.upper``), key ``objectId_jd`` (the entry's own jd), as Fink's: entries
  with ``magpsf`` null (a non-detection, ``diffmaglim`` set). Upper limits never share a jd
  within an object.
- bad quality (``<prefix>.uppervalid``), key ``objectId_jd_candid``: detections failing Fink's
  quality cut ``rb >= 0.55 and nbad == 0``. One exposure can give several detections of an
  object (551 such pairs on the real night 2024-01-15); keyed ``objectId_jd`` alone, as in
  Fink, all but one would be lost. A prefix scan ``objectId_`` still returns them in time
  order.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import functions as F

from fink_ingest import rowkeys
from fink_ingest.tables.base import Rows, TableBuilder, column, select, time_text

RB_MIN = 0.55      # ZTF real-bogus cut of Fink's science stream: rb >= 0.55
NBAD_MAX = 0       # and nbad == 0 (bad pixels within 5x5 of the candidate)
OBJECT = "objectId"


class HistoryTable(TableBuilder):
    """Rows keyed ``objectId_jd`` from staged history entries."""

    source = "history"
    cells_key = ""

    def families_for(self, survey):
        return [survey.original_family]

    def cell_names(self, survey):
        """Cells of this table (list of ``family:qualifier``), from the survey file."""
        return [f"{survey.original_family}:{f}" for f in getattr(survey, self.cells_key)]

    def cell_types(self, staged_types, survey):
        wanted = self.cell_names(survey)
        return {n: t for n, t in staged_types.items() if n in wanted}

    def keep(self, batch, survey):
        """Rows of a staged batch this table keeps (pyarrow boolean array)."""
        raise NotImplementedError

    def spark_filter(self, survey):
        """The same rule as ``keep`` as a Spark column over staged history columns, so that
        entries no history table keeps are dropped before the deduplication."""
        raise NotImplementedError

    def night_keys(self, table, night, survey):
        """None: a history row has no night of its own to replace. Its key time is the
        entry's, and later nights' alerts carry it too, so deleting by time would lose rows
        other nights put. Rebuilding a history table for some nights re-puts their entries
        (idempotent); after a layout change, rebuild it over all nights (``--all-nights``),
        which starts from an empty table."""
        return []

    def key_fields(self, batch, survey):
        """Key fields of each row: objectId and the entry's fixed-width time (pyarrow arrays)."""
        return [column(batch, OBJECT), time_text(column(batch, f"{survey.original_family}:jd"), survey)]

    def rows(self, batch, survey):
        keys = rowkeys.join(*self.key_fields(batch, survey))
        rows = Rows(keys=keys, cells={n: column(batch, n) for n in self.cell_names(survey)
                                      if n in batch.schema.names})
        return select(rows, self.keep(batch, survey))


class UpperTable(HistoryTable):
    """Upper limits: history entries with ``magpsf`` null."""

    kind = "upper"
    cells_key = "upper_cells"

    def keep(self, batch, survey):
        return pc.is_null(column(batch, f"{survey.original_family}:magpsf"))

    def spark_filter(self, survey):
        return F.col(f"`{survey.original_family}:magpsf`").isNull()


class BadQualityTable(HistoryTable):
    """Detections of the history that fail ``rb >= 0.55 and nbad == 0``."""

    kind = "uppervalid"
    cells_key = "badquality_cells"
    jd_field = -2

    def key_fields(self, batch, survey):
        detection = column(batch, f"{survey.original_family}:{survey.history_detection_id}")
        return super().key_fields(batch, survey) + [pc.cast(detection, pa.string())]

    def keep(self, batch, survey):
        f = survey.original_family
        detected = pc.is_valid(column(batch, f"{f}:magpsf"))
        good = pc.and_kleene(pc.greater_equal(pc.cast(column(batch, f"{f}:rb"), pa.float64()), RB_MIN),
                             pc.equal(pc.cast(column(batch, f"{f}:nbad"), pa.int64()), NBAD_MAX))
        return pc.and_(detected, pc.invert(pc.fill_null(good, False)))

    def spark_filter(self, survey):
        f = survey.original_family
        good = (F.col(f"`{f}:rb`") >= RB_MIN) & (F.col(f"`{f}:nbad`") == NBAD_MAX)
        return F.col(f"`{f}:magpsf`").isNotNull() & ~F.coalesce(good, F.lit(False))
