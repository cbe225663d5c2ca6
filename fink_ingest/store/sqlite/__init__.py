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
from fink_ingest.store.sqlite.store import SQLiteStore
from fink_ingest.store.sqlite.table import CACHE_KIB, PAGE_SIZE, SUFFIX, SQLiteTable

__all__ = ["SQLiteStore", "SQLiteTable", "SUFFIX", "PAGE_SIZE", "CACHE_KIB"]
