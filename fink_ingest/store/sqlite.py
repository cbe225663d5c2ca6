"""Embedded store: one SQLite file per table (standard library, WAL mode).

Why SQLite: it is in the standard library, its WAL mode lets readers read while one
writer writes, and a killed process never corrupts the file (an interrupted transaction
is rolled back on the next open). Rows live in a ``WITHOUT ROWID`` table keyed by the row
key BLOB, so SQLite's B-tree order is the row-key byte order HBase uses, and range and
prefix scans are B-tree range reads.

Row layout: a row is one SQLite record whose value packs its cells, compressed with the
table's codec (``store/rows.py``: by default LZ4; the main table a zstd dictionary trained per
table). Pages are 16 KiB so that a compressed main-table row stays inside its B-tree page
rather than spilling to overflow pages. See ``benchmarks/README.md`` for the figures.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest.errors import StoreError
from fink_ingest.rowkeys import prefix_stop
from fink_ingest.runs import pid_alive
from fink_ingest.store.base import Store, Table, as_bytes
from fink_ingest.store.rows import CODEC_NAMES, LONG, LZ4, MIN_LENGTH, RowCodec, pack_cells, unpack_cells

SUFFIX = ".sqlite"
PAGE_SIZE = 16384
# Page cache per connection, KiB: a fixed bound (it does not grow with the night) large
# enough that inserting a night's sorted runs rarely reads a page back from disk.
CACHE_KIB = 65536


def _stored_codec(conn):
    """Codec flag recorded in a table file's ``options`` table (LZ4 if it has none)."""
    try:
        hit = conn.execute("SELECT value FROM options WHERE name = 'compression'").fetchone()
    except sqlite3.OperationalError:  # a file made before the option existed
        hit = None
    return CODEC_NAMES[hit[0] if hit else "lz4"]


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

    def prepare_arrow(self, keys, columns):
        """Packed, compressed ``(key, value)`` records of a columnar batch (vectorised packing;
        zstd releases the GIL, so this overlaps with ``write_prepared`` in another thread)."""
        names = [as_bytes(c) for c in columns]
        ids = self._qualifier_ids(names)
        n = len(keys)
        pieces = []
        for qid, col in zip(ids, columns.values()):
            col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            lengths = np.asarray(pc.binary_length(col).fill_null(0).to_numpy(zero_copy_only=False),
                                 dtype=np.int64)
            header = np.empty((n, 2), dtype=">u2")
            header[:, 0] = qid
            header[:, 1] = np.minimum(lengths, LONG)
            hdr = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(4), n, [None, pa.py_buffer(header.tobytes())]).cast(pa.binary())
            if (lengths >= LONG).any():
                extra = np.where(lengths >= LONG, lengths, 0).astype(">u4")
                ext = pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(4), n, [None, pa.py_buffer(extra.tobytes())]).cast(pa.binary())
                hdr = pc.if_else(pa.array(lengths >= LONG),
                                 pc.binary_join_element_wise(hdr, ext, b""), hdr)
            pieces.append(pc.binary_join_element_wise(hdr, col, b""))
        packed = pc.binary_join_element_wise(*pieces, b"", null_handling="skip")
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


class SQLiteStore(Store):
    """Embedded store in a directory: ``<directory>/<table>.sqlite``.

    Parameters
    ----------
    directory : str or Path
        Created if missing.
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"store {self.directory}: cannot create the directory: {exc.strerror}: "
                             "give write access to its parent, or choose another --store") from None
        self.url = f"sqlite://{self.directory.resolve()}"
        self._tables = {}
        self._lock = threading.Lock()
        self._held = {}  # table name -> [lock file descriptor, depth] (``writing``)

    def failure(self, exc, what):
        """A ``StoreError`` for an SQLite error while doing ``what`` (str): the table, the
        store and, for the failures an operator can fix, what to do."""
        text = str(exc)
        low = text.lower()
        if "disk is full" in low or "disk full" in low:
            hint = (f"the disk of {self.directory} is full: free space, or move the store (--store), then run "
                    "the same command again (rows already written are written again, identically)")
        elif "readonly" in low or "read-only" in low:
            hint = f"{self.directory} is read-only for this process: give write access, or choose another --store"
        elif "locked" in low or "busy" in low:
            hint = "another process held the table for over 60 s: wait for it to end, then run the command again"
        else:
            hint = f"sqlite: {text}"
        return StoreError(f"{what}: {text}; {hint}" if hint != f"sqlite: {text}" else f"{what}: {hint}")

    def local_directory(self):
        return str(self.directory)

    def check_writable(self):
        """Create and remove a file in the store's directory (a read-only mount or a missing
        permission shows here, before any work)."""
        probe = self.directory / f".write-check-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StoreError(f"store {self.directory} is not writable ({exc.strerror}): give write access, "
                             "or choose another --store") from None

    @contextlib.contextmanager
    def writing(self, names, what):
        """One writer per table: an exclusive ``flock`` on ``.<table>.lock`` in the store's
        directory, held while ``what`` runs (released by the system if the process dies).

        Raises
        ------
        StoreError
            If another process holds one of the tables: names it, with its pid and command.
        """
        taken = []
        try:
            for name in names:
                self._take(name, what)
                taken.append(name)
            yield
        finally:
            for name in reversed(taken):
                self._release(name)

    def _take(self, name, what):
        if name in self._held:
            self._held[name][1] += 1
            return
        path = self.directory / f".{name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(f"table {name} is being written by {holder}: wait for it to end (one writer per "
                             f"table of the embedded store {self.directory})") from None
        os.ftruncate(fd, 0)
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} ({what}, since {since})".encode(), 0)
        self._held[name] = [fd, 1]

    def _release(self, name):
        held = self._held[name]
        held[1] -= 1
        if held[1] == 0:
            fcntl.flock(held[0], fcntl.LOCK_UN)
            os.close(held[0])
            del self._held[name]

    def path_of(self, name):
        """File of a table, ``<directory>/<name>.sqlite``.

        Raises
        ------
        StoreError
            If the name is empty or holds a path separator.
        """
        if not name or "/" in name or name.startswith("."):
            raise StoreError(f"table name {name!r} is not valid")
        return self.directory / f"{name}{SUFFIX}"

    @staticmethod
    def connect(path):
        """A connection in WAL mode (16 KiB pages, synchronous NORMAL, fixed page cache)."""
        conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        conn.isolation_level = "DEFERRED"
        return conn

    def tables(self):
        return sorted(p.name[: -len(SUFFIX)] for p in self.directory.glob(f"*{SUFFIX}"))

    def create_table(self, name, families, compression=None):
        """Create a table file, atomically: it is built under a temporary name and linked into
        place whole, so a process killed at any moment leaves either no table or a complete
        empty one (a file left half-made by an older version is recognised and replaced)."""
        if compression not in CODEC_NAMES:
            raise StoreError(f"table {name!r}: compression {compression!r} unknown; "
                             f"known: {[c for c in CODEC_NAMES if c]}")
        path = self.path_of(name)
        families = sorted(set(families))
        if path.exists() and self._complete(path):
            have = self.families(name)
            if have != families:
                raise StoreError(f"table {name!r} exists with families {have}, not {families}")
            return
        self._remove_files(path)  # an incomplete file (no data: its tables were never made)
        temp = self.directory / f".{name}.sqlite.tmp-{os.getpid()}-{threading.get_ident()}"
        try:
            conn = sqlite3.connect(temp, isolation_level=None)
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode=DELETE")  # one file to link; WAL is set on first use
            with conn:
                conn.execute("BEGIN")
                conn.execute("CREATE TABLE families (name TEXT PRIMARY KEY)")
                conn.execute("CREATE TABLE qualifiers (id INTEGER PRIMARY KEY AUTOINCREMENT, name BLOB UNIQUE NOT NULL)")
                conn.execute("CREATE TABLE cells (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
                conn.executemany("INSERT INTO families VALUES (?)", [(f,) for f in families])
                conn.execute("CREATE TABLE options (name TEXT PRIMARY KEY, value TEXT)")
                conn.execute("INSERT INTO options VALUES ('compression', ?)", (compression or "lz4",))
            conn.close()
            try:
                os.link(temp, path)  # no-clobber: a table another process made meanwhile is kept
            except FileExistsError:
                pass
        except (sqlite3.Error, OSError) as exc:
            raise self.failure(exc, f"create table {name}") from None
        finally:
            for leftover in [temp] + [p for p in self.directory.glob(f".{name}.sqlite.tmp-*")
                                      if not pid_alive(p.name.rsplit("-", 2)[-2])]:
                try:
                    os.remove(leftover)
                except FileNotFoundError:
                    pass

    @staticmethod
    def _complete(path):
        """True if a table file holds its tables; False if it holds none (a creation by an
        older version cut short: no data in it, safe to replace).

        Raises
        ------
        StoreError
            If the file is not a readable SQLite database (it is never removed then).
        """
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"table file {path} is not a readable SQLite database ({exc}): restore it from a "
                             "backup, or drop the table and rebuild it (bin/fink_push --rebuild TABLE --all-nights)"
                             ) from None
        if {"families", "cells", "qualifiers"} <= names:
            return True
        if names:
            raise StoreError(f"table file {path} holds tables {sorted(names)}, not a fink-ingest table's")
        return False

    def _remove_files(self, path):
        for p in (Path(f"{path}-wal"), Path(f"{path}-shm"), path):
            try:
                os.remove(p)
            except FileNotFoundError:
                pass

    def ensure_table(self, name, families, compression=None):
        """Create the table if it does not exist, or is a file left half-made (see
        ``create_table``); return it."""
        path = self.path_of(name)
        if not path.exists() or not self._complete(path):
            with self._lock:
                self._tables.pop(name, None)
            self.create_table(name, families, compression)
        return self.table(name)

    def codec(self, name):
        """Flag of the codec a table's rows are written with (``store.rows``: LZ4 unless
        created with ``compression="zstd"`` or ``"dict"``; tables made before the option
        existed are LZ4)."""
        return self.table(name).codec.flag

    def families(self, name):
        path = self.path_of(name)
        if not path.exists():
            raise StoreError(f"no table {name!r} in {self.directory}; tables: {self.tables()}")
        if not self._complete(path):
            raise StoreError(f"table {name!r}: its file {path} was left half-made (no tables, no data) by a "
                             "creation cut short: run the push again, which makes it anew")
        conn = self.connect(path)
        try:
            return sorted(r[0] for r in conn.execute("SELECT name FROM families"))
        except sqlite3.Error as exc:
            raise self.failure(exc, f"table {name}: families") from None
        finally:
            conn.close()

    def table(self, name):
        with self._lock:
            if name not in self._tables:
                self._tables[name] = SQLiteTable(self, name)
            return self._tables[name]

    def drop_table(self, name):
        """Remove a table's files (the main file last: a drop cut short leaves the table, to be
        dropped again by the same command)."""
        with self._lock:
            self._tables.pop(name, None)
        self._remove_files(self.path_of(name))

    def truncate_table(self, name):
        self.table(name).delete_range()

    def size_bytes(self, name):
        """Bytes on disk of the table (after a WAL checkpoint), page-exact."""
        conn = self.table(name).conn
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * PAGE_SIZE

    def close(self):
        with self._lock:
            self._tables.clear()
