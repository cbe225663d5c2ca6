"""Tracklet index: alerts of fast movers (satellite glints, streaks) by Fink's tracklet id.

Fink's science modules give each alert of a tracklet (a chain of detections of one fast
moving object in one exposure) the id ``TRCK_YYYYMMDD_hhmmss_NN`` in ``d:tracklet``; other
alerts hold ``''``, ``'null'`` or nothing. Key ``<tracklet>_<jd>_<objectId>_<candid>``
(tracklet escaped as free text: ``TRCK%5F20240115%5F110005%5F00``), summary cells as the
other index tables. One tracklet is the prefix ``<tracklet>_``; a date ``2024-01-15 11`` is
the text prefix ``TRCK%5F20240115%5F11`` (escaping maps each character alone, so the
escaped form of a prefix is a prefix of the escaped id), as Fink's ``/api/v1/tracklet``
takes an id or a date.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest.classification import TRACKLET_PREFIX
from fink_ingest.tables.base import Rows, column
from fink_ingest.tables.index import IndexTable

TRACKLET = "d:tracklet"     # Fink's tracklet id column (fink-science, fast-moving objects)
NO_TRACKLET = "no tracklet id (d:tracklet does not start with TRCK_)"


def tracklet_ids(batch):
    """Tracklet id of each alert of a staged batch, null where the alert has none (pyarrow
    string array): ids start with ``TRCK_``."""
    names = pc.cast(column(batch, TRACKLET), pa.string())
    real = pc.fill_null(pc.starts_with(names, TRACKLET_PREFIX), False)
    return pc.if_else(real, names, pa.scalar(None, pa.string()))


class TrackletTable(IndexTable):
    """Alerts with a tracklet id, by id then time (see the module docstring)."""

    kind = "tracklet"
    first = "name"

    def key_inputs(self, survey):
        return super().key_inputs(survey) + [TRACKLET]

    def first_field(self, batch, survey):
        return tracklet_ids(batch)

    def rows(self, batch, survey):
        ids = tracklet_ids(batch)
        keep = pc.is_valid(ids)
        kept = batch.filter(keep)
        missing = batch.num_rows - kept.num_rows
        return Rows(keys=self.keys(pc.filter(ids, keep), kept, survey), cells=self.summary(kept, survey),
                    skipped={NO_TRACKLET: missing} if missing else {}, expected=batch.num_rows)
