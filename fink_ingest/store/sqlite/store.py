"""The embedded store: a directory of table files, created atomically, one writer per table
(a lock), SQLite's errors told as the operator's fix (package docstring: why SQLite)."""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

from fink_ingest.errors import StoreError
from fink_ingest.runs import pid_alive
from fink_ingest.store.base import Store
from fink_ingest.store.rows import CODEC_NAMES
from fink_ingest.store.sqlite.table import CACHE_KIB, PAGE_SIZE, SUFFIX, SQLiteTable


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
