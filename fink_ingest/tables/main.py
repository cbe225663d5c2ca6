"""The main table: every alert of the night, one row per alert, key ``objectId_jd_candid``.

Family ``i`` holds the fields of the flattened alert struct (``candidate.*``) and the root
fields that come from the survey; family ``d`` holds every other root column (values added
by Fink). Columns the survey file lists under ``served_elsewhere`` (history, cutouts) and
``partition`` are left out, by name; any other column, including one never seen before, is
written with its type. The alert id ends the key: two detections of one object in one
exposure share ``objectId`` and ``jd`` (see ``rowkeys``).
"""
from __future__ import annotations

from fink_ingest import rowkeys
from fink_ingest.errors import SchemaError
from fink_ingest.tables.base import (DERIVED_CLASS, HELPER_PREFIX, Rows, TableBuilder, alert_key_inputs,
                                     alert_key_parts, column)


class MainTable(TableBuilder):
    """Builder of the main table (see the module docstring)."""

    kind = "main"
    key = ("object", "time", "alert")
    # the embedded store compresses main rows with a zstd dictionary trained on the table's
    # first batch: 0.81 KB a row on the real night against 2.12 KB with LZ4 (store/rows.py)
    compression = "dict"

    def table_name(self, table_prefix):
        return table_prefix

    def families_for(self, survey):
        return [survey.original_family, survey.added_family]

    @staticmethod
    def _is_cell(name):
        return not name.startswith(HELPER_PREFIX) and name != DERIVED_CLASS

    def stage(self, available, survey):
        names = [n for n in available if self._is_cell(n)]
        missing = [n for n in alert_key_inputs(survey) if n not in names]
        if missing:
            raise SchemaError(f"main table: no {missing} in the alerts; check schemas/{survey.name}.toml")
        return names

    def cell_types(self, staged_types, survey):
        return {n: t for n, t in staged_types.items() if self._is_cell(n)}

    def rows(self, batch, survey):
        keys = rowkeys.make(self.key, alert_key_parts(batch, survey), survey)
        return Rows(keys=keys, cells={n: column(batch, n) for n in batch.schema.names if self._is_cell(n)},
                    expected=batch.num_rows)
