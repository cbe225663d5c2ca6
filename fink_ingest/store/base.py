"""The store interface: HBase's data model, shaped like happybase.

A store holds named tables. A table has column families; a cell is addressed by
``family:qualifier`` (bytes); rows are ordered by the bytes of their row key.

Semantics every backend obeys (written once, here):

- ``put``/``put_batch`` *merge* cells into a row: cells not named are kept, named cells
  are replaced. Putting the same cells again changes nothing (idempotent).
- ``scan(start=..., stop=...)`` covers keys ``start <= key < stop`` (start inclusive,
  stop exclusive; either may be None for open). ``prefix`` selects keys starting with it
  and excludes ``start``/``stop``. ``reverse=True`` returns the same key range in
  descending key order (unlike raw HBase, start/stop keep their meaning).
  ``limit`` caps the number of rows returned. ``columns`` is a list of ``family`` or
  ``family:qualifier`` (bytes or str); a row with none of them is not returned.
- Keys and qualifiers are returned as bytes, cell values as bytes.
"""
from __future__ import annotations

import abc
import contextlib


def as_bytes(value):
    """str or bytes -> bytes (UTF-8)."""
    return value.encode() if isinstance(value, str) else bytes(value)


class Table(abc.ABC):
    """One table of a store. Obtain it with ``store.table(name)``."""

    name: str

    @abc.abstractmethod
    def put_batch(self, rows):
        """Merge cells into rows.

        Parameters
        ----------
        rows : iterable of (bytes, dict of bytes to bytes)
            ``(row_key, {b"family:qualifier": value})``.

        Returns
        -------
        int
            Rows written.

        Raises
        ------
        StoreError
            If a family is not one of the table's.
        """

    def put(self, key, cells):
        """Merge one row's cells (see ``put_batch``)."""
        return self.put_batch([(key, cells)])

    def put_arrow(self, keys, columns):
        """Merge a columnar batch of cells: the fast path of the nightly push.

        Parameters
        ----------
        keys : pyarrow.Array of string or binary, shape (n,)
            Row keys.
        columns : dict of str to pyarrow.BinaryArray of shape (n,)
            ``"family:qualifier"`` -> cells; a null is an absent cell.

        Returns
        -------
        int
            Rows written.
        """
        names = [as_bytes(c) for c in columns]
        lists = [col.to_pylist() for col in columns.values()]
        rows = []
        for i, key in enumerate(keys.to_pylist()):
            cells = {n: lst[i] for n, lst in zip(names, lists) if lst[i] is not None}
            rows.append((as_bytes(key), cells))
        return self.put_batch(rows)

    def prepare_arrow(self, keys, columns):
        """First half of ``put_arrow``, safe to run in another thread: turn a columnar batch
        into whatever ``write_prepared`` takes (backends override both to overlap encoding
        with writing). Parameters as ``put_arrow``."""
        return keys, columns

    def write_prepared(self, prepared):
        """Second half of ``put_arrow``: write what ``prepare_arrow`` returned; returns rows."""
        return self.put_arrow(*prepared)

    def write_run(self, prepared):
        """Write several ``prepare_arrow`` results (a list) as one run; returns rows.

        A writer whose rows do not come in key order (an index keyed by time, pixel or class
        while the night is read by objectId) hands them over in runs, so that a backend whose
        files are sorted (the embedded store's B-tree) can write each run in key order, as
        HBase writes a sorted file from its memstore. Rows of one key keep the order given
        (the later one is put last). The default writes the parts one after the other.
        """
        return sum(self.write_prepared(p) for p in prepared)

    @abc.abstractmethod
    def row(self, key, columns=None):
        """Cells of one row as dict of bytes to bytes; empty dict if the row does not exist."""

    def rows(self, keys, columns=None):
        """Existing rows among ``keys``, as a list of ``(key, cells)`` in the order given."""
        out = []
        for key in keys:
            cells = self.row(key, columns)
            if cells:
                out.append((as_bytes(key), cells))
        return out

    @abc.abstractmethod
    def scan(self, prefix=None, start=None, stop=None, columns=None, limit=None, reverse=False):
        """Iterate ``(key, cells)`` in key order (see the module docstring for semantics)."""

    def floor_key(self, key):
        """The greatest stored row key at most ``key`` (bytes), None if there is none: a
        writer merging with stored rows reads only the keys up to it. This default does not
        look: it answers ``key`` itself (every key may be stored)."""
        return as_bytes(key)

    @abc.abstractmethod
    def delete(self, key, columns=None):
        """Delete a row, or only the named cells/families of it."""

    @abc.abstractmethod
    def count(self, prefix=None, start=None, stop=None):
        """Number of rows in the range (same range semantics as ``scan``)."""


class Store(abc.ABC):
    """A set of tables. Backends: ``store.sqlite.SQLiteStore`` (embedded, one writer: the
    driver) and ``store.hbase.HBaseStore`` (written from the Spark executors)."""

    url: str
    #: True if the push should write from the Spark executors (each partition through its
    #: own connection) rather than from the driver.
    executor_writes = False

    @abc.abstractmethod
    def tables(self):
        """Sorted list of table names (str)."""

    @abc.abstractmethod
    def create_table(self, name, families, compression=None):
        """Create a table with the given column families (list of str), compressed with the
        store's default codec, or ``compression``: a codec of this backend, as
        ``check_codecs`` gives it (embedded: ``"zstd"`` for cold tables, smaller rows for more
        CPU; HBase: a codec name such as ``"GZ"``, set on every family).

        Raises
        ------
        StoreError
            If it exists with other families.
        """

    def check_codecs(self, tables, config=None):
        """The ``compression`` each table is to be created with, checked to work on this store
        before a push reads its night (``push.checks.open_tables``).

        The embedded store takes each builder's own choice (``TableBuilder.compression``:
        None for its default, LZ4, or ``"zstd"`` for cold tables); HBase the codec configured
        per table (``store.hbase.codecs``), each one tried first on a scratch table.

        Parameters
        ----------
        tables : dict of str to fink_ingest.tables.base.TableBuilder
            Table name -> its builder (``kind``, ``compression``).
        config : fink_ingest.config.Config, optional

        Returns
        -------
        dict of str to str or None
            Table name -> the ``compression`` argument of ``create_table``.

        Raises
        ------
        StoreError
            If the store cannot use a codec; the message names it and the setting to change.
        """
        return {name: builder.compression for name, builder in tables.items()}

    def ensure_table(self, name, families, compression=None):
        """Create the table if it does not exist (idempotent); return it."""
        if name not in self.tables():
            self.create_table(name, families, compression)
        return self.table(name)

    @abc.abstractmethod
    def drop_table(self, name):
        """Delete a table and its rows."""

    @abc.abstractmethod
    def truncate_table(self, name):
        """Delete every row of a table, keeping the table."""

    @abc.abstractmethod
    def families(self, name):
        """Column families of a table (list of str)."""

    @abc.abstractmethod
    def table(self, name):
        """The ``Table`` of that name.

        Raises
        ------
        StoreError
            If there is no such table.
        """

    def size_bytes(self, name):
        """Bytes the table occupies on disk, if the backend can tell; else None."""
        return None

    def local_directory(self):
        """Directory holding the tables on this machine (str), or None for a remote store."""
        return None

    def check_writable(self):
        """Check, before any work, that this process can write the store.

        Raises
        ------
        StoreError
            Naming the store and what to do.
        """

    @contextlib.contextmanager
    def writing(self, names, what):
        """Hold the right to write tables ``names`` (list of str) for ``what`` (str, shown to
        another writer): a backend with one writer per table (the embedded store) refuses a
        second writer at once, naming the first; others (HBase) allow concurrent writers.
        Reentrant within one store object.

        Raises
        ------
        StoreError
            If another process writes one of the tables.
        """
        yield

    def close(self):
        """Release connections."""
