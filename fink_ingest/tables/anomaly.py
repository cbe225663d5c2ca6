"""Anomaly index: each night's alerts in order of Fink's anomaly score, most anomalous first.

Fink's anomaly module scores alerts in ``d:anomaly_score`` (lower is more anomalous; null
when the light curve is too short). Key ``<night>_<score>_<jd>_<objectId>_<candid>``: the
night (``YYYYMMDD``, UTC date of the alert time), then the score written so that byte order
is numeric order (``rowkeys.format_score``), so the first ``n`` rows of a night's prefix are
its ``n`` most anomalous alerts. The top ``n`` of a window of nights reads at most ``n``
rows per night (``read.names``), whatever the night's size. Summary cells as the other
index tables. Fink's own anomaly table keeps the top 10 of each night keyed by time; this
one keeps every scored alert, so any ``n`` can be asked for.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest import rowkeys
from fink_ingest.tables.base import JD_UNIX_EPOCH, Rows, alert_key_parts, column
from fink_ingest.tables.index import IndexTable

SCORE = "d:anomaly_score"   # Fink's anomaly score (fink-science anomaly_detection); lower = more anomalous
NO_SCORE = "no anomaly score (d:anomaly_score null or NaN)"


def night_of(jd):
    """UTC date of Julian Dates as ``YYYYMMDD`` text (pyarrow string array)."""
    days = np.floor(np.asarray(jd, dtype=np.float64) - JD_UNIX_EPOCH).astype("int64").astype("datetime64[D]")
    text = np.datetime_as_string(days, unit="D").astype(object)
    return pa.array([t.replace("-", "") for t in text], pa.string())


class AnomalyTable(IndexTable):
    """Scored alerts by night and score (see the module docstring)."""

    kind = "anomaly"
    key = ("night", "score", "time", "object", "alert")

    def key_inputs(self, survey):
        return super().key_inputs(survey) + [SCORE]

    def rows(self, batch, survey):
        score = pc.cast(column(batch, SCORE), pa.float64())
        keep = pc.and_(pc.is_valid(score), pc.invert(pc.fill_null(pc.is_nan(score), True)))
        kept = batch.filter(keep)
        parts = alert_key_parts(kept, survey)
        parts["score"] = pc.filter(score, keep)
        parts["night"] = night_of(parts["time"].to_numpy(zero_copy_only=False))
        missing = batch.num_rows - kept.num_rows
        return Rows(keys=rowkeys.make(self.key, parts, survey), cells=self.summary(kept, survey),
                    skipped={NO_SCORE: missing} if missing else {}, expected=batch.num_rows)

    def night_keys(self, table, night, survey):
        """Keys of a night's rows: one prefix scan (the night leads the key)."""
        return [k for k, _ in table.scan(prefix=rowkeys.prefix(f"{night:%Y%m%d}"), columns=None)]
