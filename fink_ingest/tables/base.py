"""What every table builder shares.

The push stages a night once: Spark writes the union of the columns every builder asks for
(``TableBuilder.stage``), named ``family:qualifier`` for cells and ``__name`` for helper
columns; values are converted to what ``cells.encode`` takes (nested values to JSON text,
timestamps to text). Then, on the driver, each builder turns every staged batch into row
keys and cells (``TableBuilder.rows``). History tables do the same from the staged history
entries (``source = "history"``).
"""
from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fink_ingest import datalake, rowkeys

HELPER_PREFIX = "__"
DERIVED_CLASS = "d:class"   # the class of Fink's rule, computed by the push (classification.py)
SALT = "__salt"             # time-index bucket of the alert
FILE = datalake.FILE       # URI of the datalake file the alert was read from
FILE_ROW = datalake.FILE_ROW  # row index of the alert in that file
HAS_STAMP = "__has_stamp"   # the alert carries stamps


@dataclasses.dataclass
class Rows:
    """Rows a builder derived from one staged batch.

    Attributes
    ----------
    keys : pyarrow.Array of string, shape (n,)
    cells : dict of str to pyarrow.Array of shape (n,)
        ``family:qualifier`` -> values (typed; encoded later with the schema-row type).
    skipped : dict of str to int
        Rows of the batch not placed in this table, by reason.
    types : dict of str to str, optional
        Schema-row types of the cells, when not the staged columns' (summary tables).
    expected : int
        Rows of this table the batch accounts for: ``len(keys) + sum(skipped.values())``
        must hold once written (the push reconciles it per table and night). Alert tables
        expect one row per staged alert; history tables one per packed row derived.
    """

    keys: object
    cells: dict
    skipped: dict = dataclasses.field(default_factory=dict)
    types: dict = None
    expected: int = 0


def cell_value(column, data_type):
    """Spark column converted to what ``cells.encode`` takes: nested types as JSON text
    (``to_json``), timestamps, dates, decimals and nulls as text, others unchanged."""
    if isinstance(data_type, (T.StructType, T.ArrayType, T.MapType)):
        return F.to_json(column)
    if isinstance(data_type, (T.TimestampType, T.TimestampNTZType, T.DateType, T.DecimalType,
                              T.NullType)):
        return column.cast("string")
    return column


def type_name(data_type):
    """Type name recorded in the schema row for a Spark type (its ``simpleString``)."""
    return "string" if isinstance(data_type, T.NullType) else data_type.simpleString()


def alert_cells(schema, survey):
    """Every cell of the main table the night's alerts give: name -> (Spark column, type name).

    Family ``original`` holds the fields of the flattened structs and the root fields the
    survey file lists as original; family ``added`` every other root column, except those
    listed as ``served_elsewhere`` or ``partition``, and helper columns (``__*``).

    Parameters
    ----------
    schema : pyspark.sql.types.StructType
    survey : fink_ingest.config.Survey

    Returns
    -------
    dict of str to (pyspark.sql.Column, str)
    """
    out = {}
    for struct in survey.flatten:
        if struct in schema.names:
            for field in schema[struct].dataType.fields:
                name = f"{survey.original_family}:{field.name}"
                out[name] = (cell_value(F.col(f"`{struct}`.`{field.name}`"), field.dataType),
                             type_name(field.dataType))
    skip = set(survey.flatten) | set(survey.served_elsewhere) | set(survey.partition)
    for field in schema.fields:
        if field.name in skip or field.name.startswith(HELPER_PREFIX):
            continue
        family = survey.original_family if field.name in survey.original_root else survey.added_family
        name = f"{family}:{field.name}"
        if name in out:  # e.g. root candid == candidate.candid: one cell
            continue
        out[name] = (cell_value(F.col(f"`{field.name}`"), field.dataType), type_name(field.dataType))
    return out


def column(batch, name):
    """A staged column of a batch, or an all-null array if the night has no such column."""
    index = batch.schema.get_field_index(name)
    return batch.column(index) if index >= 0 else pa.nulls(batch.num_rows)


class TableBuilder:
    """Base of the table builders.

    Attributes
    ----------
    kind : str
        Registry name (``main``, ``sky``, ...); the table is ``<prefix>.<kind>``.
    source : str
        ``"alerts"`` (staged night) or ``"history"`` (staged history entries).
    key : tuple of str
        Roles of the row-key components, in order (``rowkeys.make`` writes them,
        ``rowkeys.parse`` reads them, ``rowkeys.describe`` names the layout in the schema row).
    merges : bool
        True if ``merge_stored`` must see every earlier write of the push (so the push
        merges and writes one batch after the other).
    """

    kind = ""
    source = "alerts"
    key = ("object", "time", "alert")
    merges = False  # rows are united with the stored ones (``merge_stored``) before a put
    compression = None  # the embedded store's codec for the table (store/rows.py): None (LZ4), "zstd", "dict"

    @property
    def follows_staged_order(self):
        """True if rows come in this table's key order when the staged rows are read in
        theirs (object, then time): keys that start with the object id. The push writes
        other tables' rows in sorted runs (``Table.write_run``)."""
        return self.key[:1] == ("object",)

    def table_name(self, table_prefix):
        """Store table name: ``<prefix>.<kind>``."""
        return f"{table_prefix}.{self.kind}"

    def families_for(self, survey):
        """Column families of this table (list of str)."""
        return [survey.added_family]

    def stage(self, available, survey):
        """Staged columns this table needs.

        Parameters
        ----------
        available : dict of str to (pyspark.sql.Column, str)
            Every column the night can give: the main-table cells (``alert_cells``) plus the
            push's helper columns (``__class``, ``__salt``, ``__file``, ``__row``, ...).
        survey : fink_ingest.config.Survey

        Returns
        -------
        list of str
            Names among ``available``.
        """
        raise NotImplementedError

    def rows(self, batch, survey):
        """Derive this table's rows from a staged batch (a ``pyarrow.RecordBatch``); ``Rows``."""
        raise NotImplementedError

    def cell_types(self, staged_types, survey):
        """Schema-row type of each cell this table writes, from the staged columns' types."""
        return {n: t for n, t in staged_types.items() if not n.startswith(HELPER_PREFIX)}

    def merge_stored(self, table, rows, survey):
        """Rows to write once united with what ``table`` already holds under their keys
        (``Rows``); a put replaces cells, so the default returns ``rows`` as they are. Packed
        history rows merge (``tables.history``)."""
        return rows

    def finish(self, night, survey, counts=None):
        """Rows produced once all batches are seen (``Rows`` or None); for summary tables.
        ``counts``: what the writer counted of the night (``write.drive``), if anything."""
        return None

    def reset(self, row_groups=None):
        """Forget per-night state (called by the push before each night); ``row_groups`` maps
        the night's file URIs to their row-group starts, read once by the footer check."""

    def key_layout(self, survey):
        """Description of this table's row-key layout (str), recorded in its schema row."""
        return rowkeys.describe(self.key, survey)

    def parse_key(self, key):
        """Components of one of this table's row keys, by role (see ``rowkeys.parse``)."""
        return rowkeys.parse(self.key, key)

    def night_keys(self, table, night, survey):
        """Keys of the rows this table holds for a night (for ``--rebuild``): those whose key
        time falls in the night's UTC date. Scans the table.

        Returns
        -------
        list of bytes
        """
        start, stop = night_jd_range(night)
        role = "time" if "time" in self.key else "bucket"
        keys = []
        for key, _ in table.scan(columns=None):
            if rowkeys.is_schema_row(key):
                continue
            if start <= self.parse_key(key)[role] < stop:
                keys.append(key)
        return keys


JD_UNIX_EPOCH = 2440587.5  # Julian Date of 1970-01-01T00:00:00 UTC


def night_jd_range(night):
    """``[start, stop)`` Julian Dates of a night (its UTC date), as floats."""
    import datetime as dt

    days = (night - dt.date(1970, 1, 1)).days
    return JD_UNIX_EPOCH + days, JD_UNIX_EPOCH + days + 1


def alert_key_parts(batch, survey):
    """Key components every alert table takes from a staged batch: ``object``, ``time`` and
    ``alert`` (dict of role to pyarrow array)."""
    f, leaf = survey.original_family, survey.leaf
    return {"object": column(batch, f"{f}:{leaf['object_id']}"), "time": column(batch, f"{f}:{leaf['time']}"),
            "alert": column(batch, f"{f}:{leaf['alert_id']}")}


def alert_key_inputs(survey):
    """Staged columns ``alert_key_parts`` reads (list of str)."""
    f, leaf = survey.original_family, survey.leaf
    return [f"{f}:{leaf['object_id']}", f"{f}:{leaf['time']}", f"{f}:{leaf['alert_id']}"]


def sort_indices(table, columns):
    """Indices sorting a pyarrow table by ``columns`` (list of str), ascending, nulls first
    (as Spark sorts)."""
    try:  # pyarrow >= 21: null placement per sort key
        return pc.sort_indices(table, sort_keys=[(c, "ascending", "at_start") for c in columns])
    except (TypeError, ValueError, pa.ArrowInvalid):
        return pc.sort_indices(table, sort_keys=[(c, "ascending") for c in columns], null_placement="at_start")


def select(rows, mask):
    """Rows restricted to a boolean mask (pyarrow); the rows left out must be counted in
    ``skipped`` by the caller."""
    return Rows(keys=pc.filter(rows.keys, mask),
                cells={n: pc.filter(a, mask) for n, a in rows.cells.items()},
                skipped=rows.skipped, types=rows.types, expected=rows.expected)
