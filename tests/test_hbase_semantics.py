"""Where HBase differs from the embedded store, and what the HBase backend does about it.

Each test runs on the Thrift double and, with ``FINK_TEST_HBASE=host:port``, on that live
server: the raw happybase calls pin down what HBase does (so the double is checked against
a real server), the store calls what callers see.
"""
import re
from urllib.parse import urlparse

import happybase
import pytest

from conftest import LIVE_HBASE, hbase_server
from fink_ingest.errors import StoreError
from fink_ingest.store import open_store

JAVA_STACK = re.compile(r"\tat |org\.apache\.|java\.lang\.")


@pytest.fixture
def store(request, tmp_path):
    with hbase_server(tmp_path / "hbase", request.node.name, "retries=2") as url:
        s = open_store(url)
        s.create_table("t", ["i", "d"])
        yield s
        s.close()


@pytest.fixture
def raw(store):
    """happybase on the same server and prefix: what HBase itself answers."""
    conn = happybase.Connection(store.host, store.port, table_prefix=store.table_prefix)
    yield conn
    conn.close()


def test_cells_come_back_sorted_by_family_and_qualifier(store, raw):
    """HBase returns a row's cells sorted by family, then qualifier, whatever the put order."""
    scrambled = {b"i:zz": b"1", b"d:b": b"2", b"i:a": b"3", b"d:a": b"4", b"i:m": b"5"}
    ordered = [b"d:a", b"d:b", b"i:a", b"i:m", b"i:zz"]
    store.table("t").put(b"k", scrambled)
    assert list(raw.table("t").row(b"k")) == ordered
    assert list(store.table("t").row(b"k")) == ordered
    assert [list(c) for _, c in store.table("t").scan()] == [ordered]
    assert [list(c) for _, c in store.table("t").rows([b"k"])] == [ordered]


def test_a_scan_from_a_key_to_itself_is_empty(store, raw):
    """HBase returns row K for scan(start=K, stop=K); the interface's [start, stop) is empty."""
    store.table("t").put_batch([(k, {b"d:c": k}) for k in (b"a", b"b", b"c")])
    assert [k for k, _ in raw.table("t").scan(row_start=b"b", row_stop=b"b")] == [b"b"]   # HBase
    table = store.table("t")
    assert list(table.scan(start=b"b", stop=b"b")) == []
    assert list(table.scan(start=b"b", stop=b"b", reverse=True)) == []
    assert list(table.scan(start=b"c", stop=b"a")) == []
    assert table.count(start=b"b", stop=b"b") == 0
    assert [k for k, _ in table.scan(start=b"b", stop=b"c")] == [b"b"]


def test_an_unknown_family_is_refused_naming_the_table_rows_and_family(store, raw):
    """HBase writes the other rows of the batch and refuses the row with an unknown family;
    the error names the full table name, the rows and the family, without the Java stack."""
    with pytest.raises(Exception, match="NoSuchColumnFamilyException") as hbase:   # HBase itself
        with raw.table("t").batch() as batch:
            batch.put(b"r1", {b"x:y": b"1"})
    assert b"\tat org.apache.hadoop" in hbase.value.message   # the gateway sends the Java stack
    table = store.table("t")
    full = re.escape(store.full_name("t"))
    with pytest.raises(StoreError, match=rf"^table '{full}': put of rows 0\.\.2 of 3 \('k1' \.\. 'k3'\): IOError: "
                                         r"RetriesExhaustedWithDetailsException: Failed 1 action: "
                                         r"NoSuchColumnFamilyException: Column family x does not exist") as exc:
        table.put_batch([(b"k1", {b"d:q": b"1"}), (b"k2", {b"x:y": b"2"}), (b"k3", {b"i:q": b"3"})])
    assert not JAVA_STACK.search(str(exc.value)) and "\n" not in str(exc.value)
    assert [k for k, _ in table.scan()] == [b"k1", b"k3"]
    with pytest.raises(StoreError, match=rf"table '{full}': scan .*NoSuchColumnFamilyException: Column family x"):
        list(table.scan(columns=[b"x:y"]))
    with pytest.raises(StoreError, match=rf"table '{full}': row 'k1'.*Column family x does not exist"):
        table.row(b"k1", columns=[b"x"])


def test_a_column_without_family_is_refused_before_sending(store):
    """The gateway drops the connection on a column without ':'; the store refuses it first."""
    with pytest.raises(StoreError, match=r"column b'dq' is not family:qualifier"):
        store.table("t").put(b"k", {b"dq": b"1"})
    assert store.table("t").row(b"k") == {}


def test_missing_tables_are_named_in_full(store):
    full = re.escape(store.full_name("nope"))
    with pytest.raises(StoreError, match=rf"no table '{full}' on HBase at "):
        store.table("nope")
    # HBase 1.1.2 says "Table 'x' was not found, got: ..." or only "Failed 1 action: x: 1 time"
    with pytest.raises(StoreError, match=rf"table '{full}': put of rows 0\.\.0 of 1 .*Failed 1 action: .*{full}"):
        store.bare_table("nope").put(b"k", {b"d:q": b"1"})


def test_a_table_is_dropped_only_once_disabled(store, raw):
    with pytest.raises(Exception, match="TableNotDisabledException"):
        raw.delete_table("t", disable=False)
    store.drop_table("t")
    assert store.tables() == []


def test_stock_codecs(store, raw):
    """A stock HBase 1.x: NONE and GZ work; SNAPPY and LZ4 fail the master's native-library
    test; ZSTD is not a name it knows. (Also on the live server given by FINK_TEST_HBASE.)"""
    for codec in ("NONE", "GZ"):
        raw.create_table(f"c_{codec}", {"d": dict(compression=codec)})
        assert raw.table(f"c_{codec}").families()[b"d"]["compression"] == codec.encode()
    for codec in ("SNAPPY", "LZ4"):
        with pytest.raises(Exception, match=rf"DoNotRetryIOException.*({codec.lower()}|Snappy)"):
            raw.create_table(f"c_{codec}", {"d": dict(compression=codec)})
    with pytest.raises(Exception, match="IllegalArgumentException: Unsupported compression algorithm name: zstd"):
        raw.create_table("c_ZSTD", {"d": dict(compression="ZSTD")})
    assert sorted(raw.tables()) == [b"c_GZ", b"c_NONE", b"t"]


@pytest.mark.skipif(LIVE_HBASE is not None, reason="the live server's codecs are its own (stock 1.x here)")
def test_a_double_with_native_codecs_takes_them(tmp_path):
    with hbase_server(tmp_path / "hbase", "native", codecs="2.x-native") as url:
        s = open_store(url)
        for codec in ("SNAPPY", "LZ4", "ZSTD"):
            s.create_table(f"c_{codec}", ["d"], codec)
            assert s.descriptors(f"c_{codec}")["d"]["compression"] == codec.encode()


def test_urls_in_errors_are_shell_quoted(store):
    """A URL with several options holds '&': printed, it is quoted for a shell."""
    url = urlparse(store.url)
    assert "&" in store.url
    with pytest.raises(StoreError, match=r"--store 'hbase://.*&.*compression=GZ'"):
        open_store(f"{store.url}&compression=SNAPPY").check_codecs(_tables(store, "main"))
    assert url.hostname in store.url


def _tables(store, *kinds):
    from fink_ingest.tables import BUILDERS

    return {BUILDERS[k].table_name("ztf"): BUILDERS[k] for k in kinds}
