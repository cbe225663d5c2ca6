"""Store backends behind one interface (``store.base``); ``open_store(url)`` picks one."""
from __future__ import annotations

from urllib.parse import urlparse

from fink_ingest.errors import ConfigError


def open_store(url):
    """Open the store a URL names.

    Parameters
    ----------
    url : str
        ``sqlite:///abs/dir`` or a plain directory path: the embedded store;
        ``hbase://host:port?table_prefix=...`` : HBase through its Thrift gateway
        (options in ``store/hbase.py``).

    Returns
    -------
    fink_ingest.store.base.Store

    Raises
    ------
    ConfigError
        If the scheme is not supported.
    """
    from fink_ingest.store.sqlite import SQLiteStore

    parsed = urlparse(str(url))
    if parsed.scheme in ("", "file"):
        return SQLiteStore(parsed.path if parsed.scheme else str(url))
    if parsed.scheme == "sqlite":
        return SQLiteStore(parsed.netloc + parsed.path)
    if parsed.scheme == "hbase":
        from fink_ingest.store.hbase import HBaseStore

        return HBaseStore.from_url(str(url))
    raise ConfigError(f"store URL {url!r}: scheme {parsed.scheme!r} unknown; expected a directory "
                      "sqlite:///path or hbase://host:port")
