"""Apache HBase backend, through its Thrift 1 gateway with happybase.

Start the gateway on the cluster with ``hbase thrift start -p 9090`` (buffered transport,
binary protocol: happybase's defaults). Store URL: ``hbase://host:9090`` with options
``table_prefix`` (happybase's namespace prefix: tables are ``<prefix>_<name>`` on HBase),
``pool`` (connections per process), ``batch`` (rows per Thrift ``mutateRows`` call),
``retries`` (attempts on a transient failure), ``compression`` and ``compression.<kind>``
(codecs of the tables the store creates, see ``codecs``). Tables are created with one
version per cell and a ROW bloom filter.

- ``store``: ``HBaseStore``, ``HBaseTable``. Scan semantics are the interface's
  (``store/base.py``): ``[start, stop)`` in both directions. HBase differs in two ways that
  are translated here: a scan with ``startRow == stopRow`` returns that row (here: empty),
  and reversed scans run from an inclusive ``startRow`` down to an exclusive ``stopRow`` (a
  reversed range is asked with bounds around it and the rows outside ``[start, stop)``
  dropped). HBase returns a row's cells sorted by family and qualifier.
- ``wire``: puts encoded from Arrow straight into Thrift calls; HBase's errors made short
  (exception class and first line, never the Java stack).
- ``codecs``: each table's codec, from the URL and ``[hbase.compression]``, tried on a
  scratch table before a push reads its night.
- ``shell``: HBase shell commands creating the tables pre-split (``split_keys``,
  ``shell_create``).

Errors name the table as HBase does (with the prefix), the operation and the rows.
"""
from fink_ingest.store.hbase.shell import shell_create, shell_script, split_keys
from fink_ingest.store.hbase.store import HBaseStore, HBaseTable

__all__ = ["HBaseStore", "HBaseTable", "shell_create", "shell_script", "split_keys"]
