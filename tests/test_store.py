"""Store contract: the semantics written in fink_ingest/store/base.py, on every backend."""
import multiprocessing
import re
import sqlite3

import pyarrow as pa
import pytest

from conftest import hbase_server
from fink_ingest.errors import StoreError
from fink_ingest.store import open_store
from fink_ingest.store.base import Table

BACKENDS = ["sqlite", "hbase"]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """The same contract on the embedded store and on HBase over the Thrift wire (the test
    double, or the live server of ``FINK_TEST_HBASE``)."""
    if request.param == "sqlite":
        s = open_store(str(tmp_path / "store"))
        yield s
        s.close()
        return
    with hbase_server(tmp_path / "hbase", request.node.name, "retries=2") as url:
        s = open_store(url)
        yield s
        s.close()


@pytest.fixture
def table(store):
    store.create_table("t", ["i", "d"])
    t = store.table("t")
    t.put_batch([(f"{oid}_{jd}".encode(), {b"i:jd": str(jd).encode(), b"d:c": oid.encode()})
                 for oid in ("a", "b", "c") for jd in (1, 2, 3)])
    return t


def keys(rows):
    return [k.decode() for k, _ in rows]


def test_put_merges_cells(table):
    table.put(b"a_1", {b"d:new": b"x"})
    table.put(b"a_1", {b"i:jd": b"9"})
    assert table.row(b"a_1") == {b"i:jd": b"9", b"d:c": b"a", b"d:new": b"x"}
    assert table.row(b"zz") == {}


def test_put_same_cells_twice_changes_nothing(table):
    before = list(table.scan())
    table.put_batch([(k, c) for k, c in before])
    assert list(table.scan()) == before


def test_scan_range_semantics(table):
    assert keys(table.scan(start=b"a_2", stop=b"b_2")) == ["a_2", "a_3", "b_1"]
    assert keys(table.scan(prefix=b"b_")) == ["b_1", "b_2", "b_3"]
    assert keys(table.scan(prefix=b"b_", reverse=True)) == ["b_3", "b_2", "b_1"]
    assert keys(table.scan(start=b"a_2", stop=b"b_2", reverse=True)) == ["b_1", "a_3", "a_2"]
    assert keys(table.scan(limit=2, reverse=True)) == ["c_3", "c_2"]
    assert keys(table.scan(start=b"c_2")) == ["c_2", "c_3"]
    assert keys(table.scan(stop=b"a_2")) == ["a_1"]
    assert table.count(prefix=b"a_") == 3


def test_scan_column_subset(table):
    table.put(b"d_1", {b"d:c": b"only d"})
    rows = dict(table.scan(columns=[b"i:jd"]))
    assert rows[b"a_1"] == {b"i:jd": b"1"} and b"d_1" not in rows
    assert dict(table.scan(columns=["d"], prefix=b"d"))[b"d_1"] == {b"d:c": b"only d"}


def test_rows_get_many_in_order(table):
    assert keys(table.rows([b"c_1", b"nope", b"a_2"])) == ["c_1", "a_2"]


def test_floor_key_bounds_every_stored_key_below_it(table):
    """``floor_key(k)``: every stored key at most ``k`` is at most the answer (what a writer
    merging with stored rows relies on to skip lookups), None only when no key is at most
    ``k``; the embedded store answers the greatest such key exactly, a store that does not
    look answers ``k``. A schema row sorting after the data keys does not widen it."""
    table.put(b"schema_fink_ingest_v2", {b"i:jd": b"x"})
    stored = sorted(k for k, _ in table.scan())
    for probe in (b"0", b"a_1", b"a_2~", b"b", b"c_3", b"c_9", b"schema", b"zz"):
        below = [k for k in stored if k <= probe]
        got = table.floor_key(probe)
        if not below:
            assert got is None or got == probe
            continue
        assert got is not None and max(below) <= got <= probe
        if type(table).floor_key is not Table.floor_key:  # the store looks
            assert got == max(below)


def test_put_arrow_equals_put_batch(store):
    store.create_table("x", ["i"])
    store.create_table("y", ["i"])
    big = b"v" * 70000  # longer than the 16-bit length field
    cols = {"i:a": pa.array([b"1", None, big]), "i:b": pa.array([None, b"2", b"3"])}
    store.table("x").put_arrow(pa.array(["k1", "k2", "k3"]), cols)
    store.table("y").put_batch([(b"k1", {b"i:a": b"1"}), (b"k2", {b"i:b": b"2"}),
                                (b"k3", {b"i:a": big, b"i:b": b"3"})])
    assert list(store.table("x").scan()) == list(store.table("y").scan())


def full_name(table):
    """The table's name as the store's errors give it (HBase: with the connection's prefix)."""
    return getattr(table, "full_name", table.name)


def test_unknown_family_is_an_error(table):
    """Named with the table (HBase: its full name) and the family."""
    with pytest.raises(StoreError, match=rf"'{re.escape(full_name(table))}'.*(b'x:y'|Column family x does not exist)"):
        table.put(b"k", {b"x:y": b"1"})
    assert table.row(b"k") == {}


def test_delete_cells_and_rows(table):
    table.delete(b"a_1", columns=[b"d:c"])
    assert table.row(b"a_1") == {b"i:jd": b"1"}
    table.delete(b"a_1")
    assert table.row(b"a_1") == {}


def test_tables_truncate_drop_and_families(store, table):
    assert store.tables() == ["t"] and store.families("t") == ["d", "i"]
    with pytest.raises(StoreError, match="families"):
        store.create_table("t", ["i"])
    store.truncate_table("t")
    assert list(store.table("t").scan()) == [] and store.tables() == ["t"]
    store.drop_table("t")
    assert store.tables() == []
    with pytest.raises(StoreError, match=f"no table '{re.escape(getattr(store, 'full_name', str)('t'))}'"):
        store.table("t")


def test_data_survives_reopen(tmp_path):
    s = open_store(str(tmp_path / "s"))
    s.create_table("t", ["i"])
    s.table("t").put(b"k", {b"i:q": b"v"})
    s.close()
    assert open_store(str(tmp_path / "s")).table("t").row(b"k") == {b"i:q": b"v"}


def test_a_store_no_longer_used_closes_its_files(tmp_path):
    """A store dropped by its user (a push per night, a benchmark per size) closes its table
    files and frees their page caches, including after a merging put from several threads."""
    import gc
    import os
    import threading

    def open_files():
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                found.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return [f for f in found if f.startswith(str(tmp_path))]

    s = open_store(str(tmp_path / "s"))
    s.create_table("t", ["i"])
    t = s.table("t")
    t.put(b"k", {b"i:q": b"v"})
    worker = threading.Thread(target=lambda: t.put(b"k", {b"i:r": b"w"}))  # merge_cells, another connection
    worker.start()
    worker.join()
    assert t.row(b"k") == {b"i:q": b"v", b"i:r": b"w"} and open_files()
    del s, t, worker
    gc.collect()
    assert open_files() == []


def _killed_writer(path):
    s = open_store(path)
    t = s.table("t")
    conn = t.conn
    conn.execute("BEGIN")
    conn.execute("INSERT INTO cells VALUES (?, ?)", (b"half", b"\x00written"))
    import os
    os._exit(9)  # killed in the middle of a transaction


def test_killed_writer_leaves_a_consistent_store(tmp_path):
    path = str(tmp_path / "s")
    s = open_store(path)
    s.create_table("t", ["i"])
    s.table("t").put(b"k", {b"i:q": b"v"})
    proc = multiprocessing.get_context("fork").Process(target=_killed_writer, args=(path,))
    proc.start()
    proc.join()
    assert proc.exitcode == 9
    fresh = open_store(path).table("t")
    assert list(fresh.scan()) == [(b"k", {b"i:q": b"v"})]
    assert fresh.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_reader_reads_while_a_writer_holds_a_transaction(tmp_path):
    path = str(tmp_path / "s")
    s = open_store(path)
    s.create_table("t", ["i"])
    s.table("t").put(b"k", {b"i:q": b"v"})
    writer = sqlite3.connect(s.path_of("t"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM cells")
    assert open_store(path).table("t").row(b"k") == {b"i:q": b"v"}  # WAL: not blocked
    writer.execute("ROLLBACK")


def test_zstd_rows_of_an_earlier_layout_still_read(tmp_path):
    import struct

    from fink_ingest.store import rows as sq

    packed = sq.pack_cells({1: b"x" * 400})
    old = b"\x01" + struct.pack(">I", len(packed)) + pa.Codec("zstd", compression_level=1).compress(packed, asbytes=True)
    assert sq.decompress(old) == packed == sq.decompress(sq.compress(packed))
    assert sq.compress(packed)[0] == sq.LZ4


def test_compress_column_equals_compress_of_each_row():
    """Rows compressed straight from an Arrow array (offsets, slices, nulls, short rows) are
    the bytes ``compress`` gives each row, and decompress to it."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from conftest import NIGHT_DIR
    from fink_ingest.store import rows as sq

    candidate = pq.read_table(NIGHT_DIR, columns=["candidate"])["candidate"].combine_chunks()
    texts = [pc.cast(pc.cast(candidate.field(i), pa.string()), pa.binary()) for i in range(candidate.type.num_fields)]
    packed = pc.binary_join_element_wise(*texts, b"|", null_handling="replace", null_replacement=b"")
    packed = pa.concat_arrays([packed, pa.array([None, b"", b"short"], pa.binary())])
    for codec in (sq.LZ4, sq.ZSTD):
        for part in (packed, packed.slice(5, 400), packed.slice(len(packed) - 4)):
            got = sq.compress_column(part, codec)
            assert got == [sq.compress(p, codec) if p else None for p in part.to_pylist()]
            assert [sq.decompress(v) for v in got if v is not None] == [p for p in part.to_pylist() if p]
    assert sum(len(v) for v in sq.compress_column(packed[:849])) < pc.sum(pc.binary_length(packed[:849])).as_py()


def test_table_compression_is_kept_per_table(tmp_path):
    """A zstd table writes zstd rows (flag 1) and reads them back; others stay LZ4; a table
    file made before the option existed reads as LZ4; an unknown codec is refused."""
    from fink_ingest.store import rows as sq
    from fink_ingest.store.sqlite import SQLiteStore

    s = SQLiteStore(tmp_path / "s")
    s.create_table("cold", ["i"], compression="zstd")
    s.create_table("hot", ["i"])
    value = b"[2460306.9548843,2460308.8358796,2460310.7707523]" * 3
    for name in ("cold", "hot"):
        s.table(name).put_batch([(b"ZTF17aaaaitn_2460300.5000000000", {b"i:jd": value})])
        assert s.table(name).row(b"ZTF17aaaaitn_2460300.5000000000") == {b"i:jd": value}
    raw = {name: sqlite3.connect(s.path_of(name)).execute("SELECT v FROM cells").fetchone()[0]
           for name in ("cold", "hot")}
    assert raw["cold"][0] == sq.ZSTD and raw["hot"][0] in (sq.RAW, sq.LZ4)
    sqlite3.connect(s.path_of("hot")).execute("DROP TABLE options").connection.commit()
    assert SQLiteStore(tmp_path / "s").codec("hot") == sq.LZ4
    with pytest.raises(StoreError, match="compression 'gzip' unknown"):
        s.create_table("bad", ["i"], compression="gzip")


def test_a_table_file_left_half_made_is_made_anew(tmp_path):
    """A creation killed between opening the file and making its tables (how an earlier
    version wedged the store: a WAL file with no tables) is recognised and replaced; a file
    that is not a database is never removed."""
    from fink_ingest.store.sqlite import SQLiteStore

    path = tmp_path / "s" / "ztf.time.sqlite"
    path.parent.mkdir()
    half = sqlite3.connect(path)
    half.execute("PRAGMA journal_mode=WAL")
    half.close()
    store = SQLiteStore(path.parent)
    with pytest.raises(StoreError, match="left half-made.*run the push again"):
        store.table("ztf.time")
    table = store.ensure_table("ztf.time", ["i", "d"])
    table.put(b"k", {b"i:a": b"1"})
    assert list(SQLiteStore(path.parent).table("ztf.time").scan()) == [(b"k", {b"i:a": b"1"})]
    (path.parent / "ztf.bad.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="not a readable SQLite database.*restore it"):
        store.ensure_table("ztf.bad", ["i"])
    assert (path.parent / "ztf.bad.sqlite").exists()


def test_one_writer_per_table(tmp_path):
    """A second process writing a table of the embedded store is refused at once, naming the
    first; the lock goes with the process that held it, even killed."""
    import os

    path = str(tmp_path / "s")
    store = open_store(path)
    store.create_table("t", ["i"])
    ready, release = multiprocessing.get_context("fork").Event(), multiprocessing.get_context("fork").Event()

    def hold():
        with open_store(path).writing(["t"], "bin/fink_push, night 2024-01-15"):
            ready.set()
            release.wait(30)
        os._exit(0)

    proc = multiprocessing.get_context("fork").Process(target=hold)
    proc.start()
    assert ready.wait(30)
    with pytest.raises(StoreError, match=r"table t is being written by pid \d+ on .*night 2024-01-15"):
        with store.writing(["t"], "another push"):
            pass
    proc.kill()
    proc.join()
    with store.writing(["t"], "another push"):   # the killed holder's lock is gone
        with store.writing(["t"], "the same push, again"):   # and a holder may nest
            store.table("t").put(b"k", {b"i:q": b"v"})


@pytest.mark.parametrize("trouble, words", [
    ("PRAGMA max_page_count=3", "disk of .* is full: free space, or move the store"),
    ("PRAGMA query_only=1", "read-only for this process: give write access"),
])
def test_store_failures_name_the_table_and_the_fix(tmp_path, monkeypatch, trouble, words):
    from fink_ingest.store.sqlite import SQLiteStore

    store = open_store(str(tmp_path / "s"))
    store.create_table("ztf.sky", ["i"])
    store.table("ztf.sky").put(b"first", {b"i:q": b"x"})
    connect = SQLiteStore.connect

    def troubled(path):
        conn = connect(path)
        conn.execute(trouble)
        return conn

    monkeypatch.setattr(SQLiteStore, "connect", staticmethod(troubled))
    table = SQLiteStore(tmp_path / "s").table("ztf.sky")
    with pytest.raises(StoreError, match=rf"table ztf.sky: put of 2000 rows from 'k0000'.*{words}"):
        table.put_batch([(f"k{i:04d}".encode(), {b"i:q": b"x" * 2000}) for i in range(2000)])


def test_dictionary_rows_on_real_alerts(tmp_path):
    """A "dict" table trains a zstd dictionary on its first batch of real main-table rows,
    stores every row in well under half of LZ4's bytes, reads them back exactly, merges puts
    into them, and a reader opened before the dictionary existed reads them too."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from conftest import NIGHT_DIR
    from fink_ingest.store import rows as sq
    from fink_ingest.store.sqlite import SQLiteStore

    candidate = pq.read_table(NIGHT_DIR, columns=["objectId", "candidate"])
    cand = candidate["candidate"].combine_chunks()
    columns = {f"i:{cand.type.field(i).name}": pc.cast(pc.cast(cand.field(i), pa.string()), pa.binary())
               for i in range(cand.type.num_fields)}
    keys = pc.binary_join_element_wise(candidate["objectId"], pa.array([str(i) for i in range(candidate.num_rows)]), "_")
    store = SQLiteStore(tmp_path / "s")
    for name, codec in (("dict", "dict"), ("lz4", "lz4")):
        store.create_table(name, ["i"], compression=codec)
    early_reader = SQLiteStore(tmp_path / "s").table("dict")
    for name in ("dict", "lz4"):
        table = store.table(name)
        table.write_prepared(table.prepare_arrow(keys, columns))
    raw = {name: [v for (v,) in sqlite3.connect(store.path_of(name)).execute("SELECT v FROM cells")] for name in ("dict", "lz4")}
    assert {v[0] for v in raw["dict"]} == {sq.DICT} and store.codec("dict") == sq.DICT
    assert sum(map(len, raw["dict"])) < 0.5 * sum(map(len, raw["lz4"]))
    assert list(store.table("dict").scan()) == list(store.table("lz4").scan()) == list(early_reader.scan())
    key = keys[5].as_py().encode()
    store.table("dict").put(key, {b"i:new": b"cell"})            # merged by SQLite's merge_cells
    assert store.table("dict").row(key) == {**store.table("lz4").row(key), b"i:new": b"cell"}


def test_write_run_equals_writes_in_turn(store):
    """A run (several prepared batches, keys in any order, one key in two batches) leaves the
    table as writing the batches one after the other does: the later batch's cell wins and
    the earlier one's other cells stay (the embedded store sorts the run by key first)."""
    for name in ("run", "turns"):
        store.create_table(name, ["i"])
    parts = [(pa.array(["k3", "k1", "k2"]), {"i:a": pa.array([b"3", b"1", b"2"]), "i:b": pa.array([b"x", None, b"y"])}),
             (pa.array(["k0", "k3"]), {"i:a": pa.array([b"0", b"33"]), "i:b": pa.array([None, None], pa.binary())})]
    run, turns = store.table("run"), store.table("turns")
    assert run.write_run([run.prepare_arrow(k, c) for k, c in parts]) == 5
    for k, c in parts:
        turns.write_prepared(turns.prepare_arrow(k, c))
    assert list(run.scan()) == list(turns.scan())
    assert run.row(b"k3") == {b"i:a": b"33", b"i:b": b"x"}


def test_dictionary_column_equals_each_row(tmp_path):
    """Rows of a "dict" table compressed in one call from an Arrow array (offsets, slices,
    nulls, short rows) are the bytes its per-row ``compress`` gives, and read back."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from conftest import NIGHT_DIR
    from fink_ingest.store.sqlite import SQLiteStore

    candidate = pq.read_table(NIGHT_DIR, columns=["candidate"])["candidate"].combine_chunks()
    texts = [pc.cast(pc.cast(candidate.field(i), pa.string()), pa.binary()) for i in range(candidate.type.num_fields)]
    packed = pc.binary_join_element_wise(*texts, b"|", null_handling="replace", null_replacement=b"")
    packed = pa.concat_arrays([packed, pa.array([None, b"", b"short"], pa.binary())])
    store = SQLiteStore(tmp_path / "s")
    store.create_table("d", ["i"], compression="dict")
    table = store.table("d")
    table.codec.compress_column(packed, table.conn)  # trains the dictionary
    assert table.codec.dictionary_id is not None
    for part in (packed, packed.slice(5, 400), packed.slice(len(packed) - 4)):
        got = table.codec.compress_column(part)
        assert got == [table.codec.compress(p) if p else None for p in part.to_pylist()]
        assert [table.codec.decompress(v) for v in got if v is not None] == [p for p in part.to_pylist() if p]
