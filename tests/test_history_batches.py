"""Packed history rows of an object whose alerts fall in two staged batches of one push
(``table_writer.TableWriter``: encoded in the preparing threads, merged in the writer thread with
the rows already stored), on the real night 2024-01-15."""
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import NIGHT_DIR
from fink_ingest.config import load_config
from fink_ingest.push import checks
from fink_ingest.push.stage import HISTORY
from fink_ingest.push.table_writer import TableWriter
from fink_ingest.store import open_store
from fink_ingest.tables import BUILDERS
from fink_ingest.tables import history


def staged_alerts(config):
    """The night's alerts as the push stages them for the history tables: the objectId cell
    and each alert's history entries (the survey's history fields), sorted by objectId."""
    survey = config.survey
    night = pq.read_table(NIGHT_DIR, columns=[survey.leaf["object_id"], survey.history_column])
    night = night.sort_by(survey.leaf["object_id"])
    lists = night[survey.history_column].combine_chunks()
    flat = pc.list_flatten(lists)
    fields = [f for f in survey.history_fields if flat.type.get_field_index(f) >= 0]
    entries = pa.StructArray.from_arrays([pc.struct_field(flat, f) for f in fields], fields)
    kept = pa.ListArray.from_arrays(lists.offsets, entries)
    types = {f"{survey.original_family}:{f}": str(flat.type.field(f).type).replace("float64", "double")
             .replace("int64", "bigint").replace("int32", "int") for f in fields}
    return pa.table({f"{survey.original_family}:{survey.leaf['object_id']}": night[survey.leaf["object_id"]],
                     HISTORY: kept}), types


def write(config, store, kind, batches, types):
    """Write staged batches into one table through a ``TableWriter``, one after the other
    as the push hands them over; returns the writer (its counts)."""
    builder = BUILDERS[kind]
    checks.open_tables(store, [builder], config)
    w = TableWriter(store, builder, config, types, set(types))
    for batch in batches:
        rows = builder.rows(history.entries(batch, HISTORY, config.survey), config.survey)
        w.write(w.prepare(rows))
    return w


@pytest.mark.parametrize("kind", ["upper", "uppervalid"])
def test_rows_of_an_object_split_between_two_batches_are_merged(tmp_path, kind):
    """The object with the most entries has its alert split in two: half of its entries end
    the first batch, the other half start the second. The table then holds what one batch
    of the same alerts writes, cell for cell, and every row is accounted for."""
    config = load_config(None, store=str(tmp_path / "unused"))
    alerts, types = staged_alerts(config)
    fam = config.survey.original_family
    packed = BUILDERS[kind].rows(history.entries(alerts, HISTORY, config.survey), config.survey)
    kept = [len(json.loads(v)) for v in packed.cells[f"{fam}:jd"].to_pylist()]
    busiest = packed.keys[kept.index(max(kept))].as_py().split("_")[0]   # most entries this table keeps
    objects = alerts.column(0).to_pylist()
    sizes = pc.list_value_length(alerts[HISTORY].combine_chunks()).to_pylist()
    at = max((i for i, o in enumerate(objects) if o == busiest), key=lambda i: sizes[i])
    row = alerts.slice(at, 1)
    entries = row[HISTORY].combine_chunks()
    n = len(entries[0])
    assert n >= 2                                           # the sample night has such an object
    half = [pa.table({row.column_names[0]: row.column(0),
                      HISTORY: pa.array([entries[0].values[a:b].to_pylist()], entries.type)})
            for a, b in ((0, n // 2), (n // 2, n))]
    first = pa.concat_tables([alerts.slice(0, at), half[0]])
    second = pa.concat_tables([half[1], alerts.slice(at + 1)])

    split = write(config, open_store(str(tmp_path / "split")), kind, [first, second], types)
    whole = write(config, open_store(str(tmp_path / "whole")), kind, [pa.concat_tables([first, second])], types)
    name = split.name
    got = list(open_store(str(tmp_path / "split")).table(name).scan())
    want = list(open_store(str(tmp_path / "whole")).table(name).scan())
    assert got == want and len(got) > 10
    oid = row.column(0)[0].as_py().encode()
    assert any(k.startswith(oid) for k, _ in got)          # the split object has rows here
    for w in (split, whole):
        assert w.expected == w.written + sum(w.skipped.values())
    assert split.written > whole.written                    # its row put, then merged and put again
