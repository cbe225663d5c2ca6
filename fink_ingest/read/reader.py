"""The portal's queries over the tables of one store (``Reader``).

Every call works on any store backend (it only uses the store interface), decodes cells
with each table's schema row (values come back as the datalake held them: ``i:jd`` float64,
``i:candid`` int64, nested values parsed from JSON) and takes an optional column subset.
A query splits like LSDB's searches: a coarse step lists the key ranges to scan (HEALPix
pixel ranges covering a cone, salt buckets of a time window, a class or name prefix), a
fine step keeps rows (exact angular separation, time bounds). Bad arguments raise
``QueryError`` naming the argument; an object that does not exist gives an empty DataFrame;
a table written with another key layout raises ``LayoutError`` naming the upgrade.

One module per query family: ``objects``, ``cone``, ``classes`` (latests), ``sso``,
``names`` (tracklet, anomaly, resolver), ``window`` (time window), ``cutouts``, ``summary``
(statistics, schema, classes); ``base`` holds what they share, ``derived`` the ``v:``
columns.
"""
from __future__ import annotations

from fink_ingest.read.classes import ClassQueries
from fink_ingest.read.cone import ConeQueries
from fink_ingest.read.cutouts import CutoutQueries
from fink_ingest.read.names import NameQueries
from fink_ingest.read.objects import ObjectQueries
from fink_ingest.read.sso import SsoQueries
from fink_ingest.read.summary import SummaryQueries
from fink_ingest.read.window import WindowQueries


class Reader(ObjectQueries, ConeQueries, ClassQueries, SsoQueries, NameQueries, WindowQueries, CutoutQueries,
             SummaryQueries):
    """The portal's queries over the tables of one store.

    Parameters
    ----------
    store : fink_ingest.store.base.Store
    config : fink_ingest.config.Config
        Gives the table prefix and the survey (column roles, schema version, class rule).

    Notes
    -----
    Safe to share between threads (the HTTP server's): it holds only the store, the
    configuration and caches of schema rows.
    """
