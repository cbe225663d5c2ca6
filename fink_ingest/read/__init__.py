"""Read layer: the portal's queries -> store scans -> pandas DataFrames with Fink's columns.

- ``reader``: ``Reader``, the queries (objects, conesearch, latests, sso, date window,
  cutouts, statistics, schema).
- ``decode``: store rows to DataFrames (schema-row types), dates to Julian Dates.
- ``sky``: angular separation and the HEALPix key ranges covering a cone.
- ``stamps``: stamps read from the datalake through a cutout pointer.
"""
from fink_ingest.read.decode import decode_rows, history_entries, jd_of
from fink_ingest.read.reader import CUTOUT_KINDS, MAX_RADIUS_ARCSEC, SEPARATION, TAG, Reader
from fink_ingest.read.sky import cone_ranges, separation_deg

__all__ = ["Reader", "decode_rows", "history_entries", "jd_of", "cone_ranges", "separation_deg",
           "CUTOUT_KINDS", "MAX_RADIUS_ARCSEC", "SEPARATION", "TAG"]
