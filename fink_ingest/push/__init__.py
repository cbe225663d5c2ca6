"""Nights from the datalake into the store.

- ``night``: one night end to end (``push_night``); ``checks``: free space before, counts
  reconciled after; ``rebuild``: whole tables rebuilt or upgraded.
- ``stage``: the Spark side (what to stage, staging alerts and history).
- ``merge``: reading the staged files back in one key order.
- ``write``: putting batches into a store (the driver's writer, the executors' writer).
"""
from fink_ingest.push.night import push_night
from fink_ingest.push.rebuild import rebuild, stale_tables, upgrade

__all__ = ["push_night", "rebuild", "stale_tables", "upgrade"]
