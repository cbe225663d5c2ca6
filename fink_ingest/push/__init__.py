"""Nights from the datalake into the store.

- ``night``: nights end to end (``push_night``, ``push_nights``: one Spark job per group of
  nights sharing a schema); ``checks``: free space before, counts reconciled after;
  ``rebuild``: whole tables rebuilt or upgraded.
- ``stage``: the Spark side (what to stage, staging alerts and history).
- ``merge``: reading the staged files back in one key order.
- ``write``: putting batches into a store from the driver; ``executors``: the executors' writer.
"""
from fink_ingest.push.night import push_night, push_nights
from fink_ingest.push.rebuild import rebuild, stale_tables, upgrade

__all__ = ["push_night", "push_nights", "rebuild", "stale_tables", "upgrade"]
