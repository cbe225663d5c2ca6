"""Apache HBase backend, through its Thrift gateway with happybase.

Start the gateway on the cluster with ``hbase thrift start -p 9090`` (buffered transport,
binary protocol: happybase's defaults). Store URL: ``hbase://host:9090`` with options
``table_prefix`` (happybase's namespace prefix), ``pool`` (connections), ``batch`` (rows per
Thrift batch), ``retries``. Tables are created with one version per cell, a ROW bloom filter
and compression per family (``compression``, default SNAPPY).

Scan semantics are the interface's (``store/base.py``): ``[start, stop)`` in both directions.
HBase's reversed scans run from an inclusive ``startRow`` down to an exclusive ``stopRow``,
so a reversed range is translated (upper bound: ``stop``, skipped if present; lower bound: a
strict prefix of ``start``) and the few rows outside ``[start, stop)`` are dropped here.
Transient Thrift failures are retried with exponential backoff; once retries are spent the
error names the table, the operation and the batch.
"""
from __future__ import annotations

import logging
import socket
import time
from urllib.parse import parse_qs, urlencode, urlparse

import happybase
from thriftpy2.thrift import TApplicationException, TException
from thriftpy2.transport import TTransportException

from fink_ingest.errors import ConfigError, StoreError
from fink_ingest.rowkeys import prefix_stop
from fink_ingest.store.base import Store, Table, as_bytes

log = logging.getLogger(__name__)
TRANSIENT = (TTransportException, socket.error, ConnectionError, BrokenPipeError, EOFError)


class HBaseTable(Table):
    """A table of ``HBaseStore``."""

    def __init__(self, store, name):
        self.store = store
        self.name = name

    def _call(self, what, fn):
        return self.store.call(f"table {self.name!r}: {what}", lambda c: fn(c.table(self.name)))

    def put_batch(self, rows, what="put"):
        rows = list(rows)

        def send(table):
            with table.batch(batch_size=self.store.batch_size) as batch:
                for key, cells in rows:
                    batch.put(as_bytes(key), {as_bytes(q): as_bytes(v) for q, v in cells.items()})
            return len(rows)

        first = as_bytes(rows[0][0]).decode(errors="replace") if rows else ""
        return self._call(f"{what} of {len(rows)} rows from {first!r}", send)

    def row(self, key, columns=None):
        return self._call("row", lambda t: t.row(as_bytes(key), columns=self._columns(columns)))

    def rows(self, keys, columns=None):
        keys = [as_bytes(k) for k in keys]
        return [(k, c) for k, c in self._call("rows", lambda t: t.rows(keys, columns=self._columns(columns))) if c]

    @staticmethod
    def _columns(columns):
        return None if columns is None else [as_bytes(c) for c in columns]

    def scan(self, prefix=None, start=None, stop=None, columns=None, limit=None, reverse=False):
        if prefix is not None:
            start, stop = as_bytes(prefix), prefix_stop(as_bytes(prefix))
        start = None if start is None else as_bytes(start)
        stop = None if stop is None else as_bytes(stop)
        cols = self._columns(columns)

        def fetch(table):
            if not reverse:
                return list(table.scan(row_start=start, row_stop=stop, columns=cols, limit=limit))
            lower = start[:-1] if start else None
            out = []
            for key, cells in table.scan(row_start=stop, row_stop=lower, columns=cols, reverse=True):
                if stop is not None and key >= stop:
                    continue
                if start is not None and key < start:
                    break
                out.append((key, cells))
                if limit is not None and len(out) >= limit:
                    break
            return out

        yield from self._call("scan", fetch)

    def count(self, prefix=None, start=None, stop=None):
        return sum(1 for _ in self.scan(prefix=prefix, start=start, stop=stop))

    def delete(self, key, columns=None):
        self._call("delete", lambda t: t.delete(as_bytes(key), columns=self._columns(columns)))


class HBaseStore(Store):
    """Tables on an HBase Thrift gateway (see the module docstring). The push writes to it
    from the Spark executors: each partition opens ``HBaseStore.from_url(url)`` (its own
    connection) and sends batched puts; the driver only gathers counts.

    Parameters
    ----------
    host : str
    port : int
    table_prefix : str, optional
        happybase's namespace prefix (tables become ``<prefix>_<name>`` on HBase).
    pool_size, batch_size, retries : int
    compression : str
        HBase compression of every family (``SNAPPY``, ``LZ4``, ``GZ`` or ``NONE``).
    """

    def __init__(self, host, port=9090, table_prefix=None, pool_size=4, batch_size=1000, retries=4,
                 compression="SNAPPY"):
        self.host, self.port = host, int(port)
        self.table_prefix = table_prefix
        self.pool_size, self.batch_size, self.retries = int(pool_size), int(batch_size), int(retries)
        self.compression = compression
        options = urlencode({k: v for k, v in (("table_prefix", table_prefix), ("pool", self.pool_size),
                                               ("batch", self.batch_size), ("retries", self.retries),
                                               ("compression", compression)) if v is not None})
        self.url = f"hbase://{host}:{self.port}?{options}"  # every option: executors reopen from it
        self._pool = None

    executor_writes = True

    def bare_table(self, name):
        """The table without checking that it exists (executors: no round trip per partition)."""
        return HBaseTable(self, name)

    @classmethod
    def from_url(cls, url):
        """Store from ``hbase://host:port?table_prefix=...&pool=4&batch=1000&retries=4``.

        Raises
        ------
        ConfigError
            If an option is unknown or not a number.
        """
        parsed = urlparse(url)
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        known = {"table_prefix", "pool", "batch", "retries", "compression"}
        if set(options) - known:
            raise ConfigError(f"store URL {url!r}: options {sorted(set(options) - known)} unknown; "
                              f"expected among {sorted(known)}")
        try:
            return cls(parsed.hostname or "localhost", parsed.port or 9090, options.get("table_prefix"),
                       int(options.get("pool", 4)), int(options.get("batch", 1000)),
                       int(options.get("retries", 4)), options.get("compression", "SNAPPY"))
        except ValueError as exc:
            raise ConfigError(f"store URL {url!r}: {exc}") from None

    @property
    def pool(self):
        """The happybase connection pool, created on first use (so the store pickles to executors)."""
        if self._pool is None:
            self._pool = happybase.ConnectionPool(self.pool_size, host=self.host, port=self.port,
                                                  table_prefix=self.table_prefix, autoconnect=False)
        return self._pool

    def call(self, what, fn):
        """Run ``fn(connection)``, retrying transient Thrift failures with backoff.

        Raises
        ------
        StoreError
            Naming ``what`` once the retries are spent, or at once for a server-side refusal.
        """
        delay = 0.2
        for attempt in range(1, self.retries + 1):
            try:
                with self.pool.connection(timeout=30) as conn:
                    conn.open()
                    return fn(conn)
            except TRANSIENT as exc:
                if attempt == self.retries:
                    raise StoreError(f"{what} failed after {attempt} attempts on {self.url}: "
                                     f"{type(exc).__name__}: {exc}") from None
                log.warning("%s: %s (attempt %d of %d); retrying in %.1f s", what, exc, attempt,
                            self.retries, delay)
                time.sleep(delay)
                delay *= 2
            except (TException, TApplicationException) as exc:
                message = getattr(exc, "message", None) or str(exc)
                raise StoreError(f"{what}: {message}") from None

    def tables(self):
        return sorted(t.decode() for t in self.call("list tables", lambda c: c.tables()))

    def create_table(self, name, families, compression=None):
        families = sorted(set(families))
        if name in self.tables():
            have = self.families(name)
            if have != families:
                raise StoreError(f"table {name!r} exists with families {have}, not {families}")
            return
        # "dict" is the embedded store's own codec (a zstd dictionary per table): HBase compresses
        # blocks of rows itself, with the store's codec
        codec = compression.upper() if compression not in (None, "dict") else self.compression
        spec = {f: dict(max_versions=1, bloom_filter_type="ROW", compression=codec) for f in families}
        self.call(f"create table {name!r}", lambda c: c.create_table(name, spec))

    def families(self, name):
        if name not in self.tables():
            raise StoreError(f"no table {name!r} on {self.url}; tables: {self.tables()}")
        return sorted(f.decode().rstrip(":") for f in self.call(f"families of {name!r}",
                                                                  lambda c: c.table(name).families()))

    def table(self, name):
        if name not in self.tables():
            raise StoreError(f"no table {name!r} on {self.url}; tables: {self.tables()}")
        return HBaseTable(self, name)

    def drop_table(self, name):
        if name in self.tables():
            self.call(f"drop table {name!r}", lambda c: c.delete_table(name, disable=True))

    def truncate_table(self, name):
        table = self.table(name)
        keys = [k for k, _ in table.scan()]
        for i in range(0, len(keys), self.batch_size):
            chunk = keys[i:i + self.batch_size]

            def delete(t, chunk=chunk):
                with t.batch() as batch:
                    for key in chunk:
                        batch.delete(key)

            table._call(f"truncate, keys {i}..{i + len(chunk)}", delete)

    def close(self):
        self._pool = None


def split_keys(kind, survey, regions=16):
    """Row keys at which to pre-split a table, following its key layout, so that one night's
    writes spread over regions (HBase's Thrift 1 ``createTable`` takes no split keys: create
    the tables with ``shell_create`` in the HBase shell before the first push).

    Parameters
    ----------
    kind : str
        Table builder name (``main``, ``time``, ``sky``, ...).
    survey : fink_ingest.config.Survey
    regions : int
        Target number of regions.

    Returns
    -------
    list of bytes
        Sorted split keys (``regions - 1`` of them, or fewer where the key space is smaller).
    """
    from fink_ingest import healpix

    if kind == "time":  # salt buckets
        step = max(1, survey.time_buckets // regions)
        return [f"{b:02x}".encode() for b in range(step, survey.time_buckets, step)]
    if kind == "sky":  # equal NESTED pixel ranges (whole coarse pixels)
        top = 12 << 2 * survey.sky_order
        return [f"{top * i // regions:0{healpix.PIXEL_DIGITS}d}".encode() for i in range(1, regions)]
    if kind in ("main", "upper", "uppervalid", "cutouts"):  # ZTF<yy><7 letters>: years, then letters
        letters = "abcdefghijklmnopqrstuvwxyz"
        return [f"ZTF{yy}{c}".encode() for yy in range(18, 27) for c in letters[:: max(1, 26 * 9 // regions)]][1:regions]
    return []


def shell_create(name, families, splits, compression="SNAPPY"):
    """HBase shell command creating a pre-split table with one version per cell, a ROW bloom
    filter and compression (str)."""
    fams = ", ".join(f"{{NAME => '{f}', VERSIONS => 1, BLOOMFILTER => 'ROW', COMPRESSION => '{compression}'}}"
                     for f in families)
    keys = ", ".join(f"'{k.decode()}'" for k in splits)
    return f"create '{name}', {fams}" + (f", SPLITS => [{keys}]" if keys else "")
