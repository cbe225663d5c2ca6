"""A table of the embedded store: rows of one SQLite file (package docstring: the layout)."""
from __future__ import annotations

import sqlite3
import threading

import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest.errors import StoreError
from fink_ingest.rowkeys import prefix_stop
from fink_ingest.store.base import Table, as_bytes
from fink_ingest.store.packing import pack_columns
from fink_ingest.store.rows import CODEC_NAMES, LZ4, MIN_LENGTH, RowCodec, pack_cells, unpack_cells

SUFFIX = ".sqlite"
PAGE_SIZE = 16384
# Page cache per connection, KiB: a fixed bound (it does not grow with the night) large
# enough that inserting a night's sorted runs rarely reads a page back from disk.
CACHE_KIB = 65536
# Page cache of a connection that writes, KiB: rows come in key order (main, history) or in
# sorted runs (indexes), so a write visits each page once per run and keeps few of them;
# readers keep ``CACHE_KIB``. Twelve tables' writers at ``CACHE_KIB`` held up to 768 MB
# of cache once a night's tables outgrew it (driver peak 1.5 GB at 400k, 1.9 GB at 2M).
WRITE_CACHE_KIB = 8192
# Rows per transaction when a sorted run is written (``write_run``).
RUN_PUT_ROWS = 50_000


def _stored_codec(conn):
    """Codec flag recorded in a table file's ``options`` table (LZ4 if it has none)."""
    try:
        hit = conn.execute("SELECT value FROM options WHERE name = 'compression'").fetchone()
    except sqlite3.OperationalError:  # a file made before the option existed
        hit = None
    return CODEC_NAMES[hit[0] if hit else "lz4"]


def _first(record):
    return record[0]


class SQLiteTable(Table):
    """A table of ``SQLiteStore``; thread-safe (one connection per thread)."""

    def __init__(self, store, name):
        self.store = store
        self.name = name
        self.path = store.path_of(name)
        self._local = threading.local()
        self._ids = {}
        self._names = {}
        self.families = store.families(name)
        first = store.connect(self.path)
        try:
            self.codec = RowCodec(self.path, _stored_codec(first))
        finally:
            first.close()
        self._load_qualifiers()

    @property
    def conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.store.connect(self.path)
            # the function holds the codec, not the table: a table referenced from its own
            # connection's function would never be freed, nor its connection closed
            codec = self.codec
            conn.create_function("merge_cells", 2, codec.merge, deterministic=True)
            self._local.conn = conn
        return conn

    def _load_qualifiers(self):
        for qid, name in self.conn.execute("SELECT id, name FROM qualifiers"):
            self._ids[name] = qid
            self._names[qid] = name

    def _qualifier_ids(self, names):
        """Ids of ``family:qualifier`` names (bytes), registering new ones."""
        missing = [n for n in names if n not in self._ids]
        if missing:
            for n in missing:
                family = n.split(b":", 1)[0].decode()
                if b":" not in n or family not in self.families:
                    raise StoreError(f"table {self.name!r}: column {n!r} is not in a family of "
                                     f"{self.families}")
            try:
                with self.conn:
                    self.conn.executemany("INSERT OR IGNORE INTO qualifiers(name) VALUES (?)",
                                          [(n,) for n in missing])
            except sqlite3.Error as exc:
                raise self.store.failure(exc, f"table {self.name}: new columns") from None
            self._load_qualifiers()
            if max(self._names, default=0) > 0xFFFF:
                raise StoreError(f"table {self.name!r}: more than 65535 distinct columns")
        return [self._ids[n] for n in names]

    def _write(self, records):
        if not getattr(self._local, "writing", False):  # this connection's first write
            self.conn.execute(f"PRAGMA cache_size=-{WRITE_CACHE_KIB}")
            self._local.writing = True
        try:
            with self.conn:
                self.conn.executemany(
                    "INSERT INTO cells(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE "
                    "SET v = merge_cells(v, excluded.v) WHERE v IS NOT excluded.v", records)
        except sqlite3.Error as exc:
            first = records[0][0].decode(errors="replace") if records else ""
            raise self.store.failure(exc, f"table {self.name}: put of {len(records)} rows from {first!r}") from None
        return len(records)

    def put_batch(self, rows):
        records = []
        for key, cells in rows:
            cells = {as_bytes(q): as_bytes(v) for q, v in cells.items()}
            ids = self._qualifier_ids(list(cells))
            records.append((as_bytes(key), self.codec.compress(pack_cells(dict(zip(ids, cells.values()))))))
        return self._write(records)

    def put_arrow(self, keys, columns):
        return self.write_prepared(self.prepare_arrow(keys, columns))

    def write_prepared(self, prepared):
        return self._write(prepared)

    def write_run(self, prepared):
        """Records of several ``prepare_arrow`` results sorted by key (a stable sort: rows of
        one key keep their order) and written in that order, ``RUN_PUT_ROWS`` at a time:
        inserted in key order, the B-tree appends or visits each page once per run instead of
        once per row (400k index rows of ~200 B: 16.7 s in random order, 5.0 s in four
        sorted runs, 3.4 s in one; ``benchmarks/README.md``)."""
        records = sorted((r for part in prepared for r in part), key=_first)
        return sum(self._write(records[i:i + RUN_PUT_ROWS]) for i in range(0, len(records), RUN_PUT_ROWS))

    def prepare_arrow(self, keys, columns):
        """Packed, compressed ``(key, value)`` records of a columnar batch (vectorised packing;
        zstd releases the GIL, so this overlaps with ``write_prepared`` in another thread)."""
        names = [as_bytes(c) for c in columns]
        ids = self._qualifier_ids(names)
        n = len(keys)
        packed = pack_columns(ids, list(columns.values()), n)
        key_list = pc.cast(keys, pa.binary()).to_pylist()
        if self.codec.flag == LZ4 and pc.all(pc.less(pc.binary_length(packed), MIN_LENGTH[LZ4])).as_py():
            # index rows, too short to compress: the flag byte prepended in one vectorised call
            values = pc.binary_join_element_wise(pa.scalar(b"\x00"), packed, b"").to_pylist()
            return [(k, v) for k, v in zip(key_list, values) if len(v) > 1]
        return [(k, v) for k, v in zip(key_list, self.codec.compress_column(packed, self.conn)) if v is not None]

    def _decode(self, value, wanted):
        cells = unpack_cells(self.codec.decompress(value))
        if any(qid not in self._names for qid in cells):
            self._load_qualifiers()
        out = {}
        for qid, v in cells.items():
            name = self._names[qid]
            if wanted is None or name in wanted or name.split(b":", 1)[0] in wanted:
                out[name] = v
        return out

    @staticmethod
    def _wanted(columns):
        return None if columns is None else {as_bytes(c) for c in columns}

    def row(self, key, columns=None):
        hit = self.conn.execute("SELECT v FROM cells WHERE k = ?", (as_bytes(key),)).fetchone()
        return self._decode(hit[0], self._wanted(columns)) if hit else {}

    def rows(self, keys, columns=None):
        keys = [as_bytes(k) for k in keys]
        wanted, found = self._wanted(columns), {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            sql = f"SELECT k, v FROM cells WHERE k IN ({','.join('?' * len(chunk))})"
            for k, v in self.conn.execute(sql, chunk):
                found[k] = self._decode(v, wanted)
        return [(k, found[k]) for k in keys if found.get(k)]

    @staticmethod
    def _range(prefix, start, stop):
        if prefix is not None:
            prefix = as_bytes(prefix)
            return prefix, prefix_stop(prefix)
        return (None if start is None else as_bytes(start)), (None if stop is None else as_bytes(stop))

    def _where(self, prefix, start, stop):
        lo, hi = self._range(prefix, start, stop)
        clauses, args = [], []
        if lo is not None:
            clauses.append("k >= ?")
            args.append(lo)
        if hi is not None:
            clauses.append("k < ?")
            args.append(hi)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def scan(self, prefix=None, start=None, stop=None, columns=None, limit=None, reverse=False):
        where, args = self._where(prefix, start, stop)
        sql = f"SELECT k, v FROM cells{where} ORDER BY k {'DESC' if reverse else 'ASC'}"
        wanted = self._wanted(columns)
        if wanted is None and limit is not None:
            sql += f" LIMIT {int(limit)}"
        returned = 0
        for k, v in self.conn.execute(sql, args):
            cells = self._decode(v, wanted)
            if not cells:
                continue
            yield k, cells
            returned += 1
            if limit is not None and returned >= limit:
                return

    def floor_key(self, key):
        """The greatest stored key at most ``key`` (one B-tree descent), None if none."""
        return self.conn.execute("SELECT max(k) FROM cells WHERE k <= ?", (as_bytes(key),)).fetchone()[0]

    def count(self, prefix=None, start=None, stop=None):
        where, args = self._where(prefix, start, stop)
        return self.conn.execute(f"SELECT count(*) FROM cells{where}", args).fetchone()[0]

    def delete(self, key, columns=None):
        try:
            self._delete(as_bytes(key), columns)
        except sqlite3.Error as exc:
            raise self.store.failure(exc, f"table {self.name}: delete of {key!r}") from None

    def _delete(self, key, columns):
        with self.conn:
            if columns is None:
                self.conn.execute("DELETE FROM cells WHERE k = ?", (key,))
                return
            hit = self.conn.execute("SELECT v FROM cells WHERE k = ?", (key,)).fetchone()
            if not hit:
                return
            wanted = self._wanted(columns)
            keep = {qid: v for qid, v in unpack_cells(self.codec.decompress(hit[0])).items()
                    if not (self._names[qid] in wanted or self._names[qid].split(b":", 1)[0] in wanted)}
            if keep:
                self.conn.execute("UPDATE cells SET v = ? WHERE k = ?", (self.codec.compress(pack_cells(keep)), key))
            else:
                self.conn.execute("DELETE FROM cells WHERE k = ?", (key,))

    def delete_range(self, prefix=None, start=None, stop=None):
        """Delete every row in the range (scan semantics); returns rows deleted."""
        where, args = self._where(prefix, start, stop)
        with self.conn:
            return self.conn.execute(f"DELETE FROM cells{where}", args).rowcount
