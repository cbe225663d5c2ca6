"""Read layer: the portal's queries -> store scans -> pandas DataFrames with Fink's columns.

- ``reader``: ``Reader``, every query (one module per family: ``objects``, ``cone``,
  ``classes``, ``sso``, ``names``, ``window``, ``cutouts``, ``summary``; shared parts in
  ``base``).
- ``derived``: the ``v:`` columns Fink adds when serving alerts.
- ``decode``: store rows to DataFrames (schema-row types), dates to Julian Dates.
- ``sky``: angular separation and the HEALPix key ranges covering a cone.
- ``stamps``, ``images``: stamps read from the datalake, and drawn as PNG.
- ``vocabulary``: the class names Fink knows.
"""
from fink_ingest.read.cone import MAX_RADIUS_ARCSEC, MIN_RADIUS_ARCSEC, SEPARATION, parse_position
from fink_ingest.read.cutouts import CUTOUT_KINDS
from fink_ingest.read.decode import decode_rows, history_entries, jd_of
from fink_ingest.read.objects import TAG
from fink_ingest.read.reader import Reader
from fink_ingest.read.sky import cone_ranges, separation_deg

__all__ = ["Reader", "decode_rows", "history_entries", "jd_of", "cone_ranges", "separation_deg", "parse_position",
           "CUTOUT_KINDS", "MAX_RADIUS_ARCSEC", "MIN_RADIUS_ARCSEC", "SEPARATION", "TAG"]
