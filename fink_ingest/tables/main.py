"""The main table: every alert of the night, one row per alert id, key ``objectId_jd``.

Family ``i`` holds the fields of the flattened alert struct (``candidate.*``) and the root
fields that come from the survey; family ``d`` holds every other root column (values added
by Fink). Columns the survey file lists under ``served_elsewhere`` (history, cutouts) and
``partition`` are left out, by name; any other column, including one never seen before, is
written with its type.
"""
from __future__ import annotations

from pyspark.sql import functions as F

from fink_ingest import rowkeys
from fink_ingest.errors import SchemaError
from fink_ingest.tables.base import Staged, TableBuilder, cells_of


class MainTable(TableBuilder):
    """Builder of the main table (see the module docstring)."""

    kind = "main"

    def table_name(self, table_prefix):
        return table_prefix

    def families_for(self, survey):
        return [survey.original_family, survey.added_family]

    def build(self, alerts, survey):
        schema = alerts.schema
        original, added, seen = [], [], set()
        for struct in survey.flatten:
            if struct not in schema.names:
                raise SchemaError(f"alerts have no {struct!r} column to flatten; columns: {schema.names}")
            for field in schema[struct].dataType.fields:
                original.append((F.col(f"{struct}.`{field.name}`"), field))
                seen.add(field.name)
        skip = set(survey.flatten) | set(survey.served_elsewhere) | set(survey.partition)
        for field in schema.fields:
            if field.name in skip:
                continue
            if field.name in survey.original_root:
                if field.name in seen:  # e.g. root candid == candidate.candid: one cell
                    continue
                original.append((F.col(f"`{field.name}`"), field))
            else:
                added.append((F.col(f"`{field.name}`"), field))
        cols_i, types_i = cells_of(original, survey.original_family)
        cols_d, types_d = cells_of(added, survey.added_family)
        leaf = survey.leaf
        key_columns = (f"{survey.original_family}:{leaf['object_id']}",
                       f"{survey.original_family}:{leaf['time']}")
        for name in key_columns:
            if name not in types_i:
                raise SchemaError(f"main table: key column {name!r} is not among the flattened "
                                  "original fields; check schemas/<survey>.toml")
        frame = alerts.select(*cols_i, *cols_d)
        return Staged(frame=frame, types={**types_i, **types_d}, key_columns=key_columns)

    def keys(self, batch, survey):
        object_id = batch.column(batch.schema.get_field_index(
            f"{survey.original_family}:{survey.leaf['object_id']}"))
        time = batch.column(batch.schema.get_field_index(
            f"{survey.original_family}:{survey.leaf['time']}"))
        return rowkeys.join(object_id, rowkeys.format_time(
            time, survey.time_int_digits, survey.time_frac_digits))
