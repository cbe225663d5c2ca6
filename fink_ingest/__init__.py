"""fink-ingest: the storage and indexing layer of the Fink alert broker.

Data flow, one module or package per step:

- ``paths``, ``config``, ``survey``: where the datalake is, which night, which survey names.
- ``cells``, ``rowkeys``: every cell and row-key encoding.
- ``tables``: one builder per table (main, ...), found in ``tables.BUILDERS``.
- ``store``: the HBase-shaped store interface and its backends (``sqlite``).
- ``push``: one night from the datalake into the store (run by ``jobs/`` and ``bin/fink_push``).
"""

import os

__version__ = "0.1.0"

# Arrow's allocator (mimalloc) returns freed pages to the system 10 ms after they are freed;
# the driver's write phase frees and allocates a batch's columns (hundreds of MB a second)
# over and over, and every page handed back is faulted in again for the next batch. Kept
# (mimalloc's ``purge_delay`` of -1), every table's write phase of a 400k-alert night took
# 16.2-17.6 s instead of 18.1-19.4 s, for ~300 MB more resident memory in each writing
# process (``benchmarks/README.md``). mimalloc reads it when pyarrow is first imported,
# hence here, before any module of this package imports pyarrow; writer processes inherit
# it. An operator's own setting wins (``MIMALLOC_PURGE_DELAY=10``: mimalloc's default).
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")
