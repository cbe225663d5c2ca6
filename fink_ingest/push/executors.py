"""The executors' writer: with a store every executor can reach (HBase), each partition of
the night writes its own rows through a connection of its own; the driver gathers counts."""
from __future__ import annotations

import collections
import functools
import json
import re
import time

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import functions as F

from fink_ingest.errors import StoreError
from fink_ingest.push.table_writer import encode_cells, merge_notes, settle


def write_batches(url, plan, survey, put_rows, night_column, batches):
    """One executor task's writes (``write_from_executors``): each table's rows derived from
    the task's batches, encoded and put through a connection of its own, counted per night.

    Parameters
    ----------
    url : str
        The store's URL (``open_store``).
    plan : list of (TableBuilder, str, dict)
        Builder, table name and cell types of each table.
    survey : fink_ingest.config.Survey
    put_rows : int
        Rows per put (the store cuts them into calls of its own batch size).
    night_column : str or None
        Column telling each row's night (the counts are kept per night), or None.
    batches : iterable of pyarrow.RecordBatch

    Yields
    ------
    pyarrow.RecordBatch
        One row per table and night: ``table``, ``night``, ``expected``, ``written``,
        ``seconds`` (deriving, encoding and putting), ``store_seconds`` (in the store's put),
        ``skipped`` and ``set_aside`` (JSON).
    """
    from fink_ingest.store import open_store

    remote = open_store(url)
    tables = {name: remote.bare_table(name) for _, name, _ in plan}
    count = collections.defaultdict(collections.Counter)        # (table, night) -> counters
    skipped = collections.defaultdict(collections.Counter)
    notes = collections.defaultdict(dict)
    for batch in batches:
        for start in range(0, batch.num_rows, put_rows):
            part = batch.slice(start, put_rows)
            for night, rows_of_night in _by_night(part, night_column):
                for builder, name, types in plan:
                    t0 = time.time()
                    rows = builder.rows(rows_of_night, survey)
                    if rows is None:
                        continue
                    rows = settle(builder.merge_stored(tables[name], rows, survey), types)
                    c = count[(name, night)]
                    c["expected"] += rows.expected
                    skipped[(name, night)].update(rows.skipped)
                    if len(rows.keys):
                        columns, set_aside = encode_cells(rows, types)
                        notes[(name, night)].update(set_aside)
                        t1 = time.time()
                        c["written"] += tables[name].put_arrow(rows.keys, columns)
                        c["store_seconds"] += time.time() - t1
                    c["seconds"] += time.time() - t0
    keys = sorted(count, key=str)
    yield pa.RecordBatch.from_pydict({  # floats even where nothing was timed (an int 0)
        "table": [k[0] for k in keys], "night": [k[1] for k in keys],
        "expected": [count[k]["expected"] for k in keys], "written": [count[k]["written"] for k in keys],
        "seconds": [float(count[k]["seconds"]) for k in keys],
        "store_seconds": [float(count[k]["store_seconds"]) for k in keys],
        "skipped": [json.dumps(dict(skipped[k])) for k in keys], "set_aside": [json.dumps(notes[k]) for k in keys]},
        schema=_RESULT)


_RESULT = pa.schema([("table", pa.string()), ("night", pa.string()), ("expected", pa.int64()),
                     ("written", pa.int64()), ("seconds", pa.float64()), ("store_seconds", pa.float64()),
                     ("skipped", pa.string()), ("set_aside", pa.string())])
_RESULT_DDL = ("table string, night string, expected long, written long, seconds double, store_seconds double, "
               "skipped string, set_aside string")


def _by_night(batch, night_column):
    """(night, rows of that night) of a batch; (None, batch) without a night column."""
    if night_column is None or batch.schema.get_field_index(night_column) < 0:
        yield None, batch
        return
    nights = batch.column(batch.schema.get_field_index(night_column))
    for night in pc.unique(nights).to_pylist():
        yield night, batch.filter(pc.equal(nights, night))


def write_from_executors(store, writers_by_night, frame, config, sort_by=None, night_column=None):
    """Write rows from the Spark executors, straight from the partitions of ``frame``
    (nothing staged, nothing read by the driver): each partition opens its own connection
    (``open_store(url)``) and puts its rows in batches (``write_batches``); the driver sums
    the counts into the writers of each night.

    Parameters
    ----------
    store : fink_ingest.store.base.Store
        A store the executors can reach (``store.executor_writes``).
    writers_by_night : dict of str to list of table_writer.TableWriter
        The writers of each night (its ``YYYYMMDD``; the key None when ``night_column`` is None).
    frame : pyspark.sql.DataFrame
        The rows (``stage.alert_frame`` or ``stage.history_frame``).
    config : fink_ingest.config.Config
    sort_by : list of str, optional
        The rows' key columns: given, and a builder merges with stored rows, every row of an
        object goes to one task, in key order.
    night_column : str, optional
        Column of ``frame`` telling each row's night.

    Raises
    ------
    StoreError
        Naming the table and batch, once a task's retries are spent.
    """
    some = next(iter(writers_by_night.values()))
    types = {}
    for group in writers_by_night.values():  # the nights' types united (a column absent from one night is null there)
        for w in group:
            types.setdefault(w.name, {}).update(w.types)
    plan = [(w.builder, w.name, types[w.name]) for w in some]
    task = functools.partial(write_batches, store.url, plan, config.survey, config.put_rows, night_column)
    if sort_by and any(w.builder.merges for w in some):
        # a merge reads the row it replaces: every row of an object in one task, in key
        # order (a staged file read in several splits would put one key in two tasks)
        frame = (frame.repartition(F.col(f"`{sort_by[0]}`"))
                 .sortWithinPartitions(*[F.col(f"`{c}`") for c in sort_by]))
    try:
        result = frame.mapInArrow(task, _RESULT_DDL).collect()
    except Exception as exc:  # noqa: BLE001 - a task's StoreError arrives wrapped by Spark
        found = re.search(r"StoreError: (.+)", str(exc))
        if found is None:
            raise
        raise StoreError(f"{found.group(1).strip()} (written from a Spark executor)") from None
    by_name = {(night, w.name): w for night, group in writers_by_night.items() for w in group}
    for row in result:
        w = by_name[(row["night"], row["table"])]
        w.expected += row["expected"]
        w.written += row["written"]
        w.seconds += row["seconds"]
        w.store_seconds += row["store_seconds"]
        w.skipped.update(json.loads(row["skipped"]))
        merge_notes(w.notes, {"set_aside": json.loads(row["set_aside"])})
