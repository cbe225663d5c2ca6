"""Cutout pointers: where each alert's stamps live in the datalake, not the stamps.

Key ``objectId_jd_candid`` (as the main table's); cells: ``d:uri`` (the datalake file as Spark read it:
``file:``, ``hdfs://``, ``s3a://``), ``d:file_row`` (row of the alert in the file),
``d:row_group`` and ``d:row`` (row group, and row within it). The read layer fetches one
stamp by reading one column of one row group (``pyarrow.parquet.ParquetFile.read_row_group``)
and taking one row, instead of filtering a whole file. Alerts without stamps (datalake
files written without cutout columns) get no pointer; they are counted as not placed.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest import datalake, rowkeys
from fink_ingest.tables.base import (FILE, FILE_ROW, HAS_STAMP, Rows, TableBuilder, alert_key_inputs,
                                     alert_key_parts, column, select)

NO_STAMPS = "no stamps in the datalake file"


class CutoutTable(TableBuilder):
    """Builder of the cutout-pointer table (see the module docstring)."""

    kind = "cutouts"

    def __init__(self):
        self._groups = {}

    def reset(self, row_groups=None):
        """Start a night, knowing the row-group starts the footer check read (URI -> array)."""
        self._groups = dict(row_groups or {})

    def stage(self, available, survey):
        return [n for n in alert_key_inputs(survey) + [FILE, FILE_ROW, HAS_STAMP] if n in available]

    def cell_types(self, staged_types, survey):
        return {"d:uri": "string", "d:file_row": "bigint", "d:row_group": "int", "d:row": "int"}

    def _row_groups(self, uri):
        """Start row of each row group of a datalake file (cached), or None if unreachable."""
        if uri not in self._groups:
            self._groups[uri] = datalake.row_group_starts(uri)
        return self._groups[uri]

    def rows(self, batch, survey):
        keys = rowkeys.make(self.key, alert_key_parts(batch, survey), survey)
        uris = column(batch, FILE)
        file_rows = column(batch, FILE_ROW).to_numpy(zero_copy_only=False).astype(np.int64)
        group = np.full(len(file_rows), -1, dtype=np.int64)
        within = np.full(len(file_rows), -1, dtype=np.int64)
        for uri in pc.unique(uris).to_pylist():
            starts = self._row_groups(uri)
            if starts is None:
                continue
            mask = np.asarray(pc.equal(uris, uri).to_numpy(zero_copy_only=False), dtype=bool)
            g = np.searchsorted(starts, file_rows[mask], side="right") - 1
            group[mask] = g
            within[mask] = file_rows[mask] - starts[g]
        known = group >= 0
        rows = Rows(keys=keys, expected=batch.num_rows, cells={
            "d:uri": uris,
            "d:file_row": pa.array(file_rows),
            "d:row_group": pa.array(np.where(known, group, 0).astype(np.int32), mask=~known),
            "d:row": pa.array(np.where(known, within, 0).astype(np.int32), mask=~known),
        })
        has = pc.fill_null(column(batch, HAS_STAMP), False)
        missing = int(len(has) - pc.sum(pc.cast(has, pa.int64())).as_py())
        rows.skipped = {NO_STAMPS: missing} if missing else {}
        return select(rows, has)
