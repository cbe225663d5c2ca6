"""fink-ingest: the storage and indexing layer of the Fink alert broker.

Data flow, one module or package per step:

- ``paths``, ``config``, ``survey``: where the datalake is, which night, which survey names.
- ``cells``, ``rowkeys``: every cell and row-key encoding.
- ``tables``: one builder per table (main, ...), found in ``tables.BUILDERS``.
- ``store``: the HBase-shaped store interface and its backends (``sqlite``).
- ``push``: one night from the datalake into the store (run by ``jobs/`` and ``bin/fink_push``).
"""

__version__ = "0.1.0"
