"""A test double of HBase's Thrift gateway, built from happybase's own ``Hbase.thrift``.

It serves, over the real Thrift wire protocol (thriftpy2, buffered transport, binary
protocol, as ``hbase thrift start`` does by default), the calls happybase and the store
make, over an embedded store, and behaves as HBase 1.1.2's gateway does where it matters
to the store (each checked against a live server by ``tests/test_hbase_semantics.py``):

- a row's cells come back sorted by family, then qualifier;
- reversed scans run from ``startRow`` (inclusive) down to ``stopRow`` (exclusive), and a
  scan with ``startRow == stopRow`` returns that row;
- a scan returns only rows with a requested column;
- an unknown family is refused as HBase refuses it (``NoSuchColumnFamilyException``, the
  other rows of the batch written), with a Java stack trace as the message;
- codecs: ``codecs="stock-1.x"`` (the default) takes NONE and GZ, refuses SNAPPY, LZ4 and
  LZO as a master without Hadoop's native library does, and does not know ZSTD or BZIP2;
  ``"2.x-native"`` takes them all but LZO;
- a table is deleted only once disabled.

It exists to test the HBase backend end to end; it is not a product.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import sys
import threading
from pathlib import Path

import happybase
import thriftpy2
from thriftpy2.rpc import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fink_ingest.rowkeys import prefix_stop  # noqa: E402
from fink_ingest.store.sqlite import SQLiteStore  # noqa: E402

HB = thriftpy2.load(os.path.join(os.path.dirname(happybase.__file__), "Hbase.thrift"),
                    module_name="Hbase_double_thrift")

# What the master says of a codec it cannot use (HBase 1.1.2 without Hadoop's native library).
_NATIVE_FAILURE = {
    "snappy": "java.lang.UnsatisfiedLinkError: 'boolean org.apache.hadoop.util.NativeCodeLoader.buildSupportsSnappy()'",
    "lz4": "java.lang.RuntimeException: native lz4 library not available",
    "lzo": "java.lang.RuntimeException: java.lang.ClassNotFoundException: com.hadoop.compression.lzo.LzoCodec",
}
CODEC_MODES = {
    # codec -> None (accepted), "native" (fails the master's compression test), "unknown"
    "stock-1.x": {"none": None, "gz": None, "snappy": "native", "lz4": "native", "lzo": "native"},
    "2.x-native": {"none": None, "gz": None, "snappy": None, "lz4": None, "lzo": "native", "zstd": None,
                   "bzip2": None},
}
# The double's own rows are zstd-compressed under these codecs (LZ4 under the others).
_ZSTD_UNDER = {"gz", "zstd", "bzip2"}


def _java_stack(*frames):
    return "".join(f"\n\tat {f}" for f in frames)


def _family(name):
    return name.decode().rstrip(":") if isinstance(name, bytes) else name.rstrip(":")


def _cell_order(item):
    family, _, qualifier = item[0].partition(b":")
    return family, qualifier


class Handler:
    """The Hbase service's calls that happybase uses, over an embedded store."""

    def __init__(self, store, codecs="stock-1.x"):
        if codecs not in CODEC_MODES:
            raise ValueError(f"codecs={codecs!r}; expected one of {sorted(CODEC_MODES)}")
        self.store = store
        self.codecs = CODEC_MODES[codecs]
        self.scanners = {}
        self.disabled = set()
        self.failed_codecs = set()   # the master remembers a codec that failed its test
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    # HBase's messages
    @staticmethod
    def _region(name):
        return f"{name},,1700000000000.{hashlib.md5(name.encode()).hexdigest()}."

    def _descriptor_text(self, name):
        return ", ".join(f"{{NAME => '{f}', BLOOMFILTER => 'ROW', VERSIONS => '1', COMPRESSION => "
                         f"'{self._descriptors(name).get(f, {}).get('compression', 'NONE')}'}}"
                         for f in self.store.families(name))

    def _no_family(self, name, family, nested):
        text = (f"org.apache.hadoop.hbase.regionserver.NoSuchColumnFamilyException: Column family {family} does not "
                f"exist in region {self._region(name)} in table '{name}', {self._descriptor_text(name)}")
        if nested:  # as a read reports it: the class twice, then the region server's stack
            return HB.IOError(message=(f"org.apache.hadoop.hbase.regionserver.NoSuchColumnFamilyException: {text}"
                                       + _java_stack("org.apache.hadoop.hbase.regionserver.HRegion.checkFamily"
                                                     "(HRegion.java:7324)")).encode())
        return text

    def _table(self, name, put=False):
        name = name.decode() if isinstance(name, bytes) else name
        if name not in self.store.tables():
            found = f"Table '{name}' was not found, got: {(self.store.tables() or [''])[-1]}."
            if put:
                message = f"org.apache.hadoop.hbase.client.RetriesExhaustedWithDetailsException: Failed 1 action: {found}: 1 time, "
            else:
                message = f"org.apache.hadoop.hbase.TableNotFoundException: {found}"
            raise HB.IOError(message=(message + _java_stack("org.apache.hadoop.hbase.client.ConnectionManager"
                                                            "$HConnectionImplementation.locateRegionInMeta"
                                                            "(ConnectionManager.java:1276)")).encode())
        return name, self.store.table(name)

    def _check_columns(self, name, columns):
        families = set(self.store.families(name))
        for column in columns or ():
            family = _family(column.split(b":", 1)[0])
            if family not in families:
                raise self._no_family(name, family, nested=True)

    @staticmethod
    def _columns(columns):
        return [c.rstrip(b":") if c.endswith(b":") else c for c in columns] if columns else None

    @staticmethod
    def _result(key, cells):
        return HB.TRowResult(row=key, columns={q: HB.TCell(value=v, timestamp=0)
                                               for q, v in sorted(cells.items(), key=_cell_order)})

    # table descriptors, kept beside the table's file
    def _descriptor_path(self, name):
        return self.store.directory / f"{name}.hbase.json"

    def _descriptors(self, name):
        path = self._descriptor_path(name)
        return json.loads(path.read_text()) if path.exists() else {}

    # tables
    def getTableNames(self):
        return [n.encode() for n in self.store.tables()]

    def createTable(self, tableName, columnFamilies):
        name = tableName.decode()
        codecs = {(cd.compression or b"NONE").decode().lower() if isinstance(cd.compression, bytes)
                  else (cd.compression or "NONE").lower() for cd in columnFamilies}
        for codec in sorted(codecs):
            verdict = self.codecs.get(codec, "unknown")
            if verdict == "unknown":  # the gateway's own check, before the master is asked
                raise HB.IllegalArgument(message=(
                    f"java.lang.IllegalArgumentException: Unsupported compression algorithm name: {codec}"
                    + _java_stack("org.apache.hadoop.hbase.io.compress.Compression.getCompressionAlgorithmByName"
                                  "(Compression.java:367)")).encode())
            if verdict == "native":
                cause = (f"Compression algorithm '{codec}' previously failed test." if codec in self.failed_codecs
                         else f"org.apache.hadoop.hbase.DoNotRetryIOException: {_NATIVE_FAILURE[codec]}")
                self.failed_codecs.add(codec)
                raise HB.IOError(message=(
                    f"org.apache.hadoop.hbase.DoNotRetryIOException: {cause} Set hbase.table.sanity.checks to false at conf or table descriptor if you want to "
                    f"bypass sanity checks"
                    + _java_stack("org.apache.hadoop.hbase.master.HMaster.warnOrThrowExceptionForFailure"
                                  "(HMaster.java:1597)")).encode())
        if name in self.store.tables():
            raise HB.AlreadyExists(message=b"table name already in use")
        self.store.create_table(name, [_family(cd.name) for cd in columnFamilies],
                                "zstd" if codecs <= _ZSTD_UNDER else None)
        self._descriptor_path(name).write_text(json.dumps(
            {_family(cd.name): {"compression": (cd.compression or b"NONE").decode().upper()
                                if isinstance(cd.compression, bytes) else (cd.compression or "NONE").upper(),
                                "maxVersions": cd.maxVersions} for cd in columnFamilies}))

    def deleteTable(self, tableName):
        name, _ = self._table(tableName)
        if name not in self.disabled:
            raise HB.IOError(message=(f"org.apache.hadoop.hbase.TableNotDisabledException: {name}"
                                      + _java_stack("org.apache.hadoop.hbase.master.HMaster.checkTableModifiable"
                                                    "(HMaster.java:2092)")).encode())
        self.store.drop_table(name)
        self._descriptor_path(name).unlink(missing_ok=True)
        self.disabled.discard(name)

    def enableTable(self, tableName):
        self.disabled.discard(self._table(tableName)[0])

    def disableTable(self, tableName):
        self.disabled.add(self._table(tableName)[0])

    def isTableEnabled(self, tableName):
        return self._table(tableName)[0] not in self.disabled

    def getColumnDescriptors(self, tableName):
        name, _ = self._table(tableName)
        described = self._descriptors(name)
        return {f"{f}:".encode(): HB.ColumnDescriptor(
            name=f"{f}:".encode(), maxVersions=1, bloomFilterType=b"ROW",
            compression=described.get(f, {}).get("compression", "NONE").encode())
            for f in self.store.families(name)}

    def getTableRegions(self, tableName):
        self._table(tableName)
        return [HB.TRegionInfo(startKey=b"", endKey=b"", id=0, name=tableName, version=1)]

    # writes
    def mutateRows(self, tableName, rowBatches, attributes):
        name, table = self._table(tableName, put=True)
        if any(m.isDelete for bm in rowBatches for m in bm.mutations):
            for bm in rowBatches:
                self._mutate(name, table, bm.row, bm.mutations)
            return
        families = {f.encode() for f in self.store.families(name)}
        rows = [(bm.row, {m.column: m.value for m in bm.mutations}) for bm in rowBatches]
        columns = set().union(*(cells.keys() for _, cells in rows)) if rows else set()
        if all(c.split(b":", 1)[0] in families for c in columns):
            table.put_batch(rows)
            return
        good, bad = [], []
        for row, cells in rows:
            unknown = sorted({_family(c.split(b":", 1)[0]) for c in cells} - {f.decode() for f in families})
            (bad if unknown else good).append(((row, cells), unknown))
        if good:  # the rows HBase can take are written, as a region server does
            table.put_batch([r for r, _ in good])
        if bad:
            causes = "; ".join(dict.fromkeys(self._no_family(name, u[0], nested=False) for _, u in bad))
            raise HB.IOError(message=(
                f"org.apache.hadoop.hbase.client.RetriesExhaustedWithDetailsException: Failed {len(bad)} "
                f"action{'s' if len(bad) > 1 else ''}: {causes}: {len(bad)} time{'s' if len(bad) > 1 else ''}, "
                + _java_stack("org.apache.hadoop.hbase.client.AsyncProcess$BatchErrors.makeException"
                              "(AsyncProcess.java:228)")).encode())

    def mutateRow(self, tableName, row, mutations, attributes):
        name, table = self._table(tableName, put=True)
        self._mutate(name, table, row, mutations)

    def _mutate(self, name, table, row, mutations):
        self._check_columns(name, [m.column for m in mutations])
        puts = {m.column: m.value for m in mutations if not m.isDelete}
        deletes = [m.column for m in mutations if m.isDelete]
        if deletes:
            table.delete(row, columns=self._columns(deletes))
        if puts:
            table.put(row, puts)

    def deleteAllRow(self, tableName, row, attributes):
        self._table(tableName)[1].delete(row)

    # reads
    def getRowWithColumns(self, tableName, row, columns, attributes):
        name, table = self._table(tableName)
        self._check_columns(name, columns)
        cells = table.row(row, columns=self._columns(columns))
        return [self._result(row, cells)] if cells else []

    def getRow(self, tableName, row, attributes):
        return self.getRowWithColumns(tableName, row, None, attributes)

    def getRowsWithColumns(self, tableName, rows, columns, attributes):
        name, table = self._table(tableName)
        self._check_columns(name, columns)
        return [self._result(k, c) for k, c in table.rows(rows, columns=self._columns(columns))]

    def getRows(self, tableName, rows, attributes):
        return self.getRowsWithColumns(tableName, rows, None, attributes)

    def scannerOpenWithScan(self, tableName, scan, attributes):
        name, table = self._table(tableName)
        self._check_columns(name, scan.columns)
        start, stop = scan.startRow or None, scan.stopRow or None
        columns = self._columns(scan.columns)
        if scan.reversed:  # HBase: from startRow (inclusive) down to stopRow (exclusive)
            hi = prefix_stop(start) if start else None  # include startRow itself
            rows = ((k, c) for k, c in table.scan(start=None, stop=hi, columns=columns, reverse=True)
                    if stop is None or k > stop)
        elif start is not None and start == stop:  # HBase: a scan of one row (a Get)
            rows = table.scan(start=start, stop=prefix_stop(start), columns=columns, limit=1)
            rows = (r for r in rows if r[0] == start)
        else:
            rows = table.scan(start=start, stop=stop, columns=columns)
        with self.lock:
            scanner_id = next(self.ids)
            self.scanners[scanner_id] = iter(rows)
        return scanner_id

    def scannerGetList(self, id, nbRows):
        it = self.scanners.get(id)
        if it is None:
            raise HB.IllegalArgument(message=f"scanner {id} unknown".encode())
        return [self._result(k, c) for k, c in itertools.islice(it, nbRows)]

    def scannerGet(self, id):
        return self.scannerGetList(id, 1)

    def scannerClose(self, id):
        self.scanners.pop(id, None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThriftDouble:
    """The double serving a directory's embedded store on 127.0.0.1:``port`` in a thread.

    Parameters
    ----------
    directory : str or Path
    port : int, optional
        Default: a free port.
    codecs : str
        A key of ``CODEC_MODES``: which codecs the "server" has.
    """

    def __init__(self, directory, port=None, codecs="stock-1.x"):
        self.directory = directory
        self.port = port or free_port()
        self.codecs = codecs
        self.server = None
        self.thread = None

    def make_server(self):
        server = make_server(HB.Hbase, Handler(SQLiteStore(self.directory), self.codecs), "127.0.0.1", self.port,
                             client_timeout=None)
        server.daemon = True   # a connection a client left open does not keep the process alive
        return server

    def start(self):
        self.server = self.make_server()
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()
        for _ in range(100):  # wait until it accepts connections
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return self
            except OSError:
                threading.Event().wait(0.02)
        raise RuntimeError(f"thrift double did not start on port {self.port}")

    def stop(self):
        """Stop accepting connections (open ones end with their clients or the process)."""
        if self.server is not None:
            self.server.close()
            try:  # a connection wakes the thread blocked in accept(), which then sees it is closed
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                pass
            if self.thread is not None:
                self.thread.join(timeout=5)
            self.server.trans.close()
            self.server = None


def main(argv=None):
    """Run the double in its own process: ``python tests/hbase_double.py DIR PORT [CODECS]``."""
    args = (argv or sys.argv[1:])
    double = ThriftDouble(args[0], int(args[1]), *(args[2:3] or []))
    double.server = double.make_server()
    print("serving", flush=True)
    double.server.serve()


if __name__ == "__main__":
    main()

