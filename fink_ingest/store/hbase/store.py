"""``HBaseStore`` and ``HBaseTable``: the store interface on HBase's Thrift 1 gateway."""
from __future__ import annotations

import logging
import shlex
import socket
import time
from urllib.parse import parse_qs, urlencode, urlparse

import happybase
import pyarrow as pa
from thriftpy2.thrift import TApplicationException, TException
from thriftpy2.transport import TTransportException

from fink_ingest.errors import ConfigError, StoreError
from fink_ingest.rowkeys import prefix_stop
from fink_ingest.store.base import Store, Table, as_bytes
from fink_ingest.store.hbase import codecs, wire

log = logging.getLogger(__name__)
TRANSIENT = (TTransportException, socket.error, ConnectionError, BrokenPipeError, EOFError)
# happybase joins its table_prefix and a table name with this separator.
PREFIX_SEPARATOR = "_"
URL_OPTIONS = ("table_prefix", "pool", "batch", "retries", "compression")
DEFAULTS = {"pool": 4, "batch": 1000, "retries": 4}


def _key_text(key):
    return as_bytes(key).decode(errors="replace")


class HBaseTable(Table):
    """A table of ``HBaseStore``; ``name`` as the push names it, ``full_name`` as HBase does
    (with the connection's ``table_prefix``)."""

    def __init__(self, store, name):
        self.store = store
        self.name = name
        self.full_name = store.full_name(name)

    def _call(self, what, fn):
        return self.store.call(f"table {self.full_name!r}: {what}", lambda c: fn(c.table(self.name)))

    def put_batch(self, rows):
        rows = [(as_bytes(k), {as_bytes(q): as_bytes(v) for q, v in cells.items()}) for k, cells in rows]
        encoded, keys = wire.encode_rows(rows)
        return self._send(encoded, keys.__getitem__)

    def put_arrow(self, keys, columns):
        """Columnar puts encoded straight into Thrift calls (``wire.encode_arrow``)."""
        encoded, kept = wire.encode_arrow(keys, columns)
        if not kept.all():
            keys = keys.filter(pa.array(kept))
        return self._send(encoded, lambda i: keys[i].as_py())

    def _send(self, encoded, key_at):
        """Send encoded rows in calls of the store's ``batch`` rows; returns rows written.
        A failed call is named by its rows (positions among the rows with cells, and keys)."""
        written, total = 0, len(encoded)
        for start, stop, body in wire.calls(encoded, self.store.batch_size):
            what = (f"put of rows {start}..{stop - 1} of {total} "
                    f"({_key_text(key_at(start))!r} .. {_key_text(key_at(stop - 1))!r})")
            self.store.call(f"table {self.full_name!r}: {what}",
                            lambda c, n=stop - start, b=body: wire.send_call(c, self.full_name, n, b))
            written += stop - start
        return written

    def row(self, key, columns=None):
        return self._call(f"row {_key_text(key)!r}",
                          lambda t: t.row(as_bytes(key), columns=self._columns(columns)))

    def rows(self, keys, columns=None):
        keys = [as_bytes(k) for k in keys]
        what = f"rows ({len(keys)} keys from {_key_text(keys[0])!r})" if keys else "rows"
        return [(k, c) for k, c in self._call(what, lambda t: t.rows(keys, columns=self._columns(columns))) if c]

    @staticmethod
    def _columns(columns):
        return None if columns is None else [as_bytes(c) for c in columns]

    def scan(self, prefix=None, start=None, stop=None, columns=None, limit=None, reverse=False):
        if prefix is not None:
            start, stop = as_bytes(prefix), prefix_stop(as_bytes(prefix))
        start = None if start is None else as_bytes(start)
        stop = None if stop is None else as_bytes(stop)
        if start is not None and stop is not None and start >= stop:
            return  # empty; HBase would return row ``start`` for start == stop
        cols = self._columns(columns)

        def fetch(table):
            if not reverse:
                return list(table.scan(row_start=start, row_stop=stop, columns=cols, limit=limit))
            # HBase reverses from an inclusive startRow down to an exclusive stopRow: start
            # at ``stop`` (skipped if present) and end below ``start`` (a strict prefix of it)
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

        span = f"{_key_text(start) if start else ''!r}..{_key_text(stop) if stop else ''!r}"
        yield from self._call(f"scan {span}", fetch)

    def count(self, prefix=None, start=None, stop=None):
        return sum(1 for _ in self.scan(prefix=prefix, start=start, stop=stop))

    def delete(self, key, columns=None):
        self._call(f"delete {_key_text(key)!r}",
                   lambda t: t.delete(as_bytes(key), columns=self._columns(columns)))


class HBaseStore(Store):
    """Tables on an HBase Thrift gateway (see the package docstring). The push writes to it
    from the Spark executors: each partition opens ``HBaseStore.from_url(url)`` (its own
    connection) and sends batched puts; the driver only gathers counts.

    Parameters
    ----------
    host : str
    port : int
    table_prefix : str, optional
        happybase's namespace prefix (tables become ``<prefix>_<name>`` on HBase).
    pool_size : int
        Connections per process.
    batch_size : int
        Rows per Thrift ``mutateRows`` call (calls are also cut at ``wire.MAX_CALL_BYTES``).
    retries : int
        Attempts on a transient Thrift failure.
    compression : dict of str to str, or str, optional
        Codecs given by the URL (``codecs.parse_url_options``; a str: every table's).
    """

    executor_writes = True

    def __init__(self, host, port=9090, table_prefix=None, pool_size=DEFAULTS["pool"],
                 batch_size=DEFAULTS["batch"], retries=DEFAULTS["retries"], compression=None):
        self.host, self.port = host, int(port)
        self.table_prefix = table_prefix or None
        self.pool_size, self.batch_size, self.retries = int(pool_size), int(batch_size), int(retries)
        if isinstance(compression, str):
            compression = {codecs.DEFAULT: compression.upper()}
        self.url_codecs = dict(compression or {})
        self.options = {"table_prefix": self.table_prefix, "pool": self.pool_size, "batch": self.batch_size,
                        "retries": self.retries, **{("compression" if k == codecs.DEFAULT else f"compression.{k}"): v
                                                    for k, v in self.url_codecs.items()}}
        self.url = self.url_with({})  # every option: executors reopen from it
        self._pool = None
        self._codecs_tried = set()

    def url_with(self, changes):
        """This store's URL with some options changed (a value None removes the option)."""
        options = {**self.options, **changes}
        query = urlencode({k: v for k, v in options.items() if v is not None}, safe=":")
        return f"hbase://{self.host}:{self.port}?{query}"

    def full_name(self, name):
        """A table's name on HBase: ``<table_prefix>_<name>``, or ``name`` without a prefix."""
        return f"{self.table_prefix}{PREFIX_SEPARATOR}{name}" if self.table_prefix else name

    def bare_table(self, name):
        """The table without checking that it exists (executors: no round trip per partition)."""
        return HBaseTable(self, name)

    @classmethod
    def from_url(cls, url):
        """Store from ``hbase://host:port?table_prefix=...&pool=4&batch=1000&retries=4&compression=GZ``
        (and ``compression.<kind>=CODEC``).

        Raises
        ------
        ConfigError
            If an option is unknown, not a number, or not a codec.
        """
        parsed = urlparse(url)
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        unknown = sorted(k for k in options if k not in URL_OPTIONS and not k.startswith("compression."))
        if unknown:
            raise ConfigError(f"store URL {shlex.quote(url)}: options {unknown} unknown; expected among "
                              f"{list(URL_OPTIONS)} and compression.<table kind>")
        try:
            numbers = {k: int(options.get(k, v)) for k, v in DEFAULTS.items()}
        except ValueError as exc:
            raise ConfigError(f"store URL {shlex.quote(url)}: {exc}") from None
        bad = [k for k, v in numbers.items() if v < 1]
        if bad:
            raise ConfigError(f"store URL {shlex.quote(url)}: {bad[0]}={numbers[bad[0]]}; expected a positive integer")
        return cls(parsed.hostname or "localhost", parsed.port or 9090, options.get("table_prefix"),
                   numbers["pool"], numbers["batch"], numbers["retries"], codecs.parse_url_options(options, url))

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
            Naming ``what`` (which names the table and the rows) and HBase's exception class
            and first line (``wire.hbase_error``), once the retries are spent, or at once for
            a refusal by the server.
        """
        delay = 0.2
        for attempt in range(1, self.retries + 1):
            try:
                with self.pool.connection(timeout=30) as conn:
                    conn.open()
                    return fn(conn)
            except TRANSIENT as exc:
                if attempt == self.retries:
                    raise StoreError(f"{what} failed after {attempt} attempts on HBase at {self.host}:{self.port}: "
                                     f"{type(exc).__name__}: {exc}") from None
                log.warning("%s: %s (attempt %d of %d); retrying in %.1f s", what, exc, attempt,
                            self.retries, delay)
                time.sleep(delay)
                delay *= 2
            except (TException, TApplicationException) as exc:
                raise StoreError(f"{what}: {wire.hbase_error(exc)}") from None

    def tables(self):
        return sorted(t.decode() for t in self.call("list tables", lambda c: c.tables()))

    def check_codecs(self, tables, config=None):
        """Each table's codec (``codecs.resolve``), every codec of a table still to create
        tried first on a scratch table (``codecs`` module docstring).

        Returns
        -------
        dict of str to str
            Table name -> codec.

        Raises
        ------
        StoreError
            If HBase refuses a codec; the message names it, the tables, the setting and the fix.
        """
        choices = {name: codecs.resolve(b.kind, self.url_codecs, config) for name, b in tables.items()}
        present = set(self.tables())
        missing = [name for name in tables if name not in present]
        for choice in sorted({choices[n] for n in missing}, key=lambda c: c.codec):
            if choice.codec in self._codecs_tried:
                continue
            names = [n for n in missing if choices[n] == choice]
            reason = self._probe(choice.codec)
            if reason is not None:
                raise codecs.refusal(self, choice, [self.full_name(n) for n in names], reason,
                                     [tables[n].kind for n in names])
            self._codecs_tried.add(choice.codec)
        return {name: c.codec for name, c in choices.items()}

    def _probe(self, codec):
        """Create a scratch table compressed with ``codec``, put and read one cell, drop it.
        Returns None, or HBase's reason for refusing (str)."""
        name = codecs.probe_name(codec)
        conn = happybase.Connection(self.host, self.port, timeout=codecs.PROBE_TIMEOUT_S * 1000,
                                    table_prefix=self.table_prefix, autoconnect=False)
        t0 = time.time()
        try:
            conn.open()
            conn.create_table(name, {"p": dict(max_versions=1, compression=codec)})
            conn.table(name).put(b"probe", {b"p:q": b"probe"})
            if conn.table(name).row(b"probe") != {b"p:q": b"probe"}:
                return "the cell put was not read back"
            return None
        except (TException, TApplicationException) as exc:
            return wire.hbase_error(exc)
        except socket.timeout:
            return f"no answer within {codecs.PROBE_TIMEOUT_S} s (do the table's regions open?)"
        finally:
            try:
                if name.encode() in conn.tables():
                    conn.delete_table(name, disable=True)
            except (TException, OSError) as exc:
                log.warning("scratch table %r not dropped: %s", self.full_name(name), exc)
            conn.close()
            log.info("codec %s tried on HBase at %s:%d in %.1f s", codec, self.host, self.port, time.time() - t0)

    def create_table(self, name, families, compression=None):
        """Create a table (one version per cell, a ROW bloom filter); ``compression`` is an
        HBase codec name (default: the store's, ``codecs.resolve``)."""
        families = sorted(set(families))
        if name in self.tables():
            have = self.families(name)
            if have != families:
                raise StoreError(f"table {self.full_name(name)!r} exists with families {have}, not {families}")
            return
        codec = (compression or codecs.resolve("", self.url_codecs).codec).upper()
        spec = {f: dict(max_versions=1, bloom_filter_type="ROW", compression=codec) for f in families}
        self.call(f"create table {self.full_name(name)!r} (families {families}, compression {codec})",
                  lambda c: c.create_table(name, spec))

    def descriptors(self, name):
        """HBase's description of each family of a table (happybase's ``families()``):
        dict of family (str) to dict (``compression``, ``max_versions``, ...)."""
        if name not in self.tables():
            raise StoreError(f"no table {self.full_name(name)!r} on HBase at {self.host}:{self.port}; "
                             f"tables: {[self.full_name(t) for t in self.tables()]}")
        found = self.call(f"families of {self.full_name(name)!r}", lambda c: c.table(name).families())
        return {(f.decode() if isinstance(f, bytes) else f).rstrip(":"): d for f, d in found.items()}

    def families(self, name):
        return sorted(self.descriptors(name))

    def table(self, name):
        if name not in self.tables():
            raise StoreError(f"no table {self.full_name(name)!r} on HBase at {self.host}:{self.port}; "
                             f"tables: {[self.full_name(t) for t in self.tables()]}")
        return HBaseTable(self, name)

    def drop_table(self, name):
        if name in self.tables():
            self.call(f"drop table {self.full_name(name)!r}", lambda c: c.delete_table(name, disable=True))

    def truncate_table(self, name):
        table = self.table(name)
        keys = [k for k, _ in table.scan()]
        for i in range(0, len(keys), self.batch_size):
            chunk = keys[i:i + self.batch_size]

            def delete(t, chunk=chunk):
                with t.batch() as batch:
                    for key in chunk:
                        batch.delete(key)

            table._call(f"truncate, keys {i}..{i + len(chunk) - 1} ({_key_text(chunk[0])!r}..)", delete)

    def close(self):
        self._pool = None
