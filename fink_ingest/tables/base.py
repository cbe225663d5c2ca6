"""What every table builder shares: cell columns, Spark-side value conversion, keys.

A builder states its name, families and key, and turns the night's validated, deduplicated
alerts (a Spark DataFrame) into a DataFrame whose columns are named ``family:qualifier``
plus the fields its key needs. Values are converted in Spark to what ``cells.encode``
takes (nested values to JSON text, timestamps and dates to text); the original type of
each column is kept aside for the schema row.
"""
from __future__ import annotations

import dataclasses

from pyspark.sql import functions as F
from pyspark.sql import types as T


@dataclasses.dataclass(frozen=True)
class Staged:
    """A table's DataFrame ready to stage, with the type of each cell column.

    Attributes
    ----------
    frame : pyspark.sql.DataFrame
        Cell columns named ``family:qualifier`` plus the key columns ``key_columns``.
    types : dict of str to str
        ``family:qualifier`` -> type name for the schema row (Spark ``simpleString``).
    key_columns : tuple of str
        Columns of ``frame`` the row key is computed from (they may also be cells).
    """

    frame: object
    types: dict
    key_columns: tuple


def cell_value(column, data_type):
    """Spark column converted to what ``cells.encode`` takes for its type.

    Parameters
    ----------
    column : pyspark.sql.Column
    data_type : pyspark.sql.types.DataType

    Returns
    -------
    pyspark.sql.Column
        Nested types as JSON text (``to_json``), timestamps, dates and decimals as text,
        other types unchanged.
    """
    if isinstance(data_type, (T.StructType, T.ArrayType, T.MapType)):
        return F.to_json(column)
    if isinstance(data_type, (T.TimestampType, T.TimestampNTZType, T.DateType, T.DecimalType)):
        return column.cast("string")
    if isinstance(data_type, T.NullType):
        return column.cast("string")
    return column


def type_name(data_type):
    """Type name recorded in the schema row for a Spark type (its ``simpleString``)."""
    if isinstance(data_type, T.NullType):
        return "string"
    return data_type.simpleString()


def cells_of(fields, family):
    """Cell columns for a list of Spark fields.

    Parameters
    ----------
    fields : list of (pyspark.sql.Column, pyspark.sql.types.StructField)
    family : str

    Returns
    -------
    (list of pyspark.sql.Column, dict of str to str)
        Aliased columns ``family:name`` and their schema-row types.
    """
    cols, types = [], {}
    for col, field in fields:
        name = f"{family}:{field.name}"
        cols.append(cell_value(col, field.dataType).alias(name))
        types[name] = type_name(field.dataType)
    return cols, types


class TableBuilder:
    """Base of the table builders; subclasses set the class attributes and ``build``.

    Attributes
    ----------
    kind : str
        Registry name (``main``, ...).
    families : tuple of str
        Column families, resolved from the survey by ``families_for``.
    """

    kind = ""

    def table_name(self, table_prefix):
        """Store table name: ``<prefix>.<kind>`` (the main table is ``<prefix>`` itself)."""
        return f"{table_prefix}.{self.kind}"

    def families_for(self, survey):
        """Column families of this table for a survey (list of str)."""
        raise NotImplementedError

    def build(self, alerts, survey):
        """Turn the night's alerts into a ``Staged`` table.

        Parameters
        ----------
        alerts : pyspark.sql.DataFrame
            Valid, deduplicated alerts of the night in the datalake layout.
        survey : fink_ingest.config.Survey

        Returns
        -------
        Staged
        """
        raise NotImplementedError

    def keys(self, batch, survey):
        """Row keys of a staged batch.

        Parameters
        ----------
        batch : pyarrow.RecordBatch
            Rows of the staged frame.
        survey : fink_ingest.config.Survey

        Returns
        -------
        pyarrow.Array of string, shape (batch.num_rows,)
        """
        raise NotImplementedError
