"""A test double of HBase's Thrift gateway, built from happybase's own ``Hbase.thrift``.

It serves, over the real Thrift wire protocol (thriftpy2, buffered transport, binary
protocol, as ``hbase thrift start`` does by default), the calls happybase makes, over an
embedded store, with HBase's semantics (reversed scans: ``startRow`` is the inclusive upper
bound, ``stopRow`` the exclusive lower one; a scan returns only rows with a requested
column). It exists to test the HBase backend end to end; it is not a product.
"""
from __future__ import annotations

import itertools
import os
import socket
import threading

import happybase
import thriftpy2
from thriftpy2.rpc import make_server

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fink_ingest.rowkeys import prefix_stop  # noqa: E402
from fink_ingest.store.sqlite import SQLiteStore  # noqa: E402

HB = thriftpy2.load(os.path.join(os.path.dirname(happybase.__file__), "Hbase.thrift"),
                    module_name="Hbase_double_thrift")


def _family(name):
    return name.decode().rstrip(":") if isinstance(name, bytes) else name.rstrip(":")


class Handler:
    """The Hbase service's calls that happybase uses, over an embedded store."""

    def __init__(self, store):
        self.store = store
        self.scanners = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    def _table(self, name):
        name = name.decode() if isinstance(name, bytes) else name
        if name not in self.store.tables():
            raise HB.IOError(message=f"table {name!r} does not exist")
        return self.store.table(name)

    @staticmethod
    def _columns(columns):
        return [c.rstrip(b":") if c.endswith(b":") else c for c in columns] if columns else None

    @staticmethod
    def _result(key, cells):
        return HB.TRowResult(row=key, columns={q: HB.TCell(value=v, timestamp=0) for q, v in cells.items()})

    # tables
    def getTableNames(self):
        return [n.encode() for n in self.store.tables()]

    def createTable(self, tableName, columnFamilies):
        name = tableName.decode()
        if name in self.store.tables():
            raise HB.AlreadyExists(message=f"table {name!r} exists")
        codecs = {(cd.compression or "").lower() for cd in columnFamilies}
        # a family's ZSTD compression keeps the rows zstd-compressed underneath too
        self.store.create_table(name, [_family(cd.name) for cd in columnFamilies],
                                "zstd" if codecs == {"zstd"} else None)

    def deleteTable(self, tableName):
        self._table(tableName)
        self.store.drop_table(tableName.decode())

    def enableTable(self, tableName):
        self._table(tableName)

    def disableTable(self, tableName):
        self._table(tableName)

    def isTableEnabled(self, tableName):
        self._table(tableName)
        return True

    def getColumnDescriptors(self, tableName):
        self._table(tableName)
        return {f"{f}:".encode(): HB.ColumnDescriptor(name=f"{f}:".encode(), maxVersions=1)
                for f in self.store.families(tableName.decode())}

    def getTableRegions(self, tableName):
        self._table(tableName)
        return [HB.TRegionInfo(startKey=b"", endKey=b"", id=0, name=tableName, version=1)]

    # writes
    def mutateRows(self, tableName, rowBatches, attributes):
        table = self._table(tableName)
        if any(m.isDelete for bm in rowBatches for m in bm.mutations):
            for bm in rowBatches:
                self._mutate(table, bm.row, bm.mutations)
            return
        try:  # a batch of puts in one transaction, as a region server applies a batch
            table.put_batch([(bm.row, {m.column: m.value for m in bm.mutations}) for bm in rowBatches])
        except Exception as exc:  # noqa: BLE001 - HBase reports any failure as IOError
            raise HB.IOError(message=str(exc)) from None

    def mutateRow(self, tableName, row, mutations, attributes):
        self._mutate(self._table(tableName), row, mutations)

    def _mutate(self, table, row, mutations):
        puts = {m.column: m.value for m in mutations if not m.isDelete}
        deletes = [m.column for m in mutations if m.isDelete]
        try:
            if deletes:
                table.delete(row, columns=self._columns(deletes))
            if puts:
                table.put(row, puts)
        except Exception as exc:  # noqa: BLE001 - HBase reports any failure as IOError
            raise HB.IOError(message=str(exc)) from None

    def deleteAllRow(self, tableName, row, attributes):
        self._table(tableName).delete(row)

    # reads
    def getRowWithColumns(self, tableName, row, columns, attributes):
        cells = self._table(tableName).row(row, columns=self._columns(columns))
        return [self._result(row, cells)] if cells else []

    def getRow(self, tableName, row, attributes):
        return self.getRowWithColumns(tableName, row, None, attributes)

    def getRowsWithColumns(self, tableName, rows, columns, attributes):
        return [self._result(k, c) for k, c in self._table(tableName).rows(rows, columns=self._columns(columns))]

    def getRows(self, tableName, rows, attributes):
        return self.getRowsWithColumns(tableName, rows, None, attributes)

    def scannerOpenWithScan(self, tableName, scan, attributes):
        table = self._table(tableName)
        start, stop = scan.startRow or None, scan.stopRow or None
        columns = self._columns(scan.columns)
        if scan.reversed:  # HBase: from startRow (inclusive) down to stopRow (exclusive)
            hi = prefix_stop(start) if start else None  # include startRow itself
            rows = ((k, c) for k, c in table.scan(start=None, stop=hi, columns=columns, reverse=True)
                    if stop is None or k > stop)
        else:
            rows = table.scan(start=start, stop=stop, columns=columns)
        with self.lock:
            scanner_id = next(self.ids)
            self.scanners[scanner_id] = iter(rows)
        return scanner_id

    def scannerGetList(self, id, nbRows):
        it = self.scanners.get(id)
        if it is None:
            raise HB.IllegalArgument(message=f"scanner {id} unknown")
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
    """The double serving a directory's embedded store on 127.0.0.1:``port`` in a thread."""

    def __init__(self, directory, port=None):
        self.directory = directory
        self.port = port or free_port()
        self.server = None
        self.thread = None

    def start(self):
        self.server = make_server(HB.Hbase, Handler(SQLiteStore(self.directory)), "127.0.0.1", self.port,
                                  client_timeout=None)
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
        if self.server is not None:
            self.server.close()
            self.server = None


def main(argv=None):
    """Run the double in its own process: ``python tests/hbase_double.py DIR PORT``."""
    import sys

    directory, port = (argv or sys.argv[1:])[:2]
    double = ThriftDouble(directory, int(port))
    double.server = make_server(HB.Hbase, Handler(SQLiteStore(directory)), "127.0.0.1", int(port),
                                client_timeout=None)
    print("serving", flush=True)
    double.server.serve()


if __name__ == "__main__":
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
    main()
