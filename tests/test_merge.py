"""The k-way merge of sorted files (``push.merge.merged_batches``) on real entries: one order
whatever the files, and rounds of about a batch when buffers are topped up."""
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from conftest import NIGHT_DIR
from fink_ingest.push.merge import merged_batches
from fink_ingest.tables.base import sort_indices

ORDER = ["objectId", "jd", "candid"]


def _entries():
    """The real night's history entries (objectId, jd, candid; ~19 an alert, some nulls)."""
    night = pq.read_table(NIGHT_DIR, columns=["objectId", "prv_candidates"])
    lists = night.column("prv_candidates").combine_chunks()
    flat = pc.list_flatten(lists)
    return pa.table({"objectId": pc.take(night.column("objectId"), pc.list_parent_indices(lists)),
                     "jd": pc.struct_field(flat, "jd"), "candid": pc.struct_field(flat, "candid")})


def test_topped_up_buffers_merge_many_files_in_fewer_rounds(tmp_path):
    entries = _entries()
    assert entries.num_rows > 12 * 1_000  # several buffers of each file
    files = []
    for k in range(12):  # interleaved runs: every file spans the whole key range
        part = entries.take(pa.array(range(k, entries.num_rows, 12)))
        part = part.take(sort_indices(part, ORDER))
        files.append(str(tmp_path / f"run-{k:02d}.parquet"))
        pq.write_table(part, files[-1], row_group_size=500)
    whole = entries.take(sort_indices(entries, ORDER))
    rounds = {}
    for top_up in (0.0, 0.5):
        out = list(merged_batches(files, ORDER, 12_000, merge_files=len(files), top_up=top_up))
        merged = pa.concat_tables(out)
        assert merged.num_rows == whole.num_rows
        for c in ORDER:  # the one order (ties of the whole key may come from either file)
            assert merged.column(c).to_pylist() == whole.column(c).to_pylist(), (top_up, c)
        rounds[top_up] = len(out)
    assert rounds[0.5] * 2 <= rounds[0.0], rounds  # 36 rounds against 14 on 2024-01-15
