"""Thin index tables over the night's alerts: time, sky, class, Solar System objects.

Each row is a key and the survey file's summary cells (``[index] summary``); objectId, jd
and candid are in every key and are not repeated as cells. Keys (``rowkeys``; free text
escaped, the alert id last so that every alert has a row of its own):

- time  ``<salt>_<jd>_<objectId>_<candid>``: salt = 2 hex digits, a hash of objectId modulo
  ``time_buckets``, so one night's writes spread over that many key ranges; a time-window
  read merges the buckets.
- sky   ``<pixel>_<jd>_<objectId>_<candid>``: NESTED HEALPix pixel at ``sky_order`` (29),
  19 digits, so each coarser pixel is one contiguous key range (``healpix.fine_range``).
- class ``<class>_<jd>_<objectId>_<candid>``: the class of Fink's rule (``classification.py``),
  escaped (``EB*_Candidate`` is written ``EB*%5FCandidate``, so the prefix ``EB*_`` selects
  ``EB*`` alone); newest first is a reversed scan of ``<class>_``.
- sso   ``<ssnamenr>_<jd>_<objectId>_<candid>``: alerts with ``roid == 3`` and a real
  ``ssnamenr``, normalised by ``rowkeys.normalize_ssnamenr``.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest import healpix, rowkeys
from fink_ingest.classification import ROID_MPC
from fink_ingest.tables.base import (DERIVED_CLASS, SALT, Rows, TableBuilder, alert_key_inputs,
                                     alert_key_parts, column)


class IndexTable(TableBuilder):
    """Index rows: summary cells plus whatever the key needs (``key_inputs``)."""

    first = ""  # role of the first key component

    @property
    def key(self):
        return (self.first, "time", "object", "alert")

    def families_for(self, survey):
        return [survey.original_family, survey.added_family]

    def key_inputs(self, survey):
        """Staged columns the key needs besides the summary cells (list of str)."""
        return alert_key_inputs(survey)

    def stage(self, available, survey):
        wanted = list(survey.index_summary) + self.key_inputs(survey)
        return [n for n in dict.fromkeys(wanted) if n in available]

    def cell_types(self, staged_types, survey):
        return {n: t for n, t in staged_types.items() if n in survey.index_summary}

    def summary(self, batch, survey):
        """The summary cells of a staged batch: dict of name to pyarrow array."""
        return {n: column(batch, n) for n in survey.index_summary if n in batch.schema.names}

    def first_field(self, batch, survey):
        """First key component of each row (salt, pixel, class or name): pyarrow string array."""
        raise NotImplementedError

    def keys(self, first, batch, survey):
        """Row keys from the first component (pyarrow string array) and the alert's."""
        return rowkeys.make(self.key, {self.first: first, **alert_key_parts(batch, survey)}, survey)

    def rows(self, batch, survey):
        return Rows(keys=self.keys(self.first_field(batch, survey), batch, survey),
                    cells=self.summary(batch, survey), expected=batch.num_rows)


class TimeTable(IndexTable):
    """Alerts by time, salted (see the module docstring)."""

    kind = "time"
    first = "salt"

    def key_inputs(self, survey):
        return super().key_inputs(survey) + [SALT]

    def first_field(self, batch, survey):
        return column(batch, SALT)


class SkyTable(IndexTable):
    """Alerts by NESTED HEALPix pixel (see the module docstring)."""

    kind = "sky"
    first = "pixel"

    def key_inputs(self, survey):
        leaf = survey.leaf
        return super().key_inputs(survey) + [f"{survey.original_family}:{leaf['ra']}",
                                             f"{survey.original_family}:{leaf['dec']}"]

    def first_field(self, batch, survey):
        leaf = survey.leaf
        ra = column(batch, f"{survey.original_family}:{leaf['ra']}").to_numpy(zero_copy_only=False)
        dec = column(batch, f"{survey.original_family}:{leaf['dec']}").to_numpy(zero_copy_only=False)
        return pa.array(healpix.format_pixels(healpix.pixels(ra, dec, survey.sky_order)))


class ClassTable(IndexTable):
    """Alerts by class of Fink's rule (see the module docstring)."""

    kind = "class"
    first = "class"

    def key_inputs(self, survey):
        return super().key_inputs(survey) + [DERIVED_CLASS]

    def first_field(self, batch, survey):
        return column(batch, DERIVED_CLASS)


NOT_MPC = "roid != 3: not a known Solar System object"
NO_NAME = "roid == 3 without a real ssnamenr"


class SsoTable(IndexTable):
    """Alerts of known Solar System objects (see the module docstring)."""

    kind = "sso"
    first = "ssnamenr"

    def key_inputs(self, survey):
        return super().key_inputs(survey) + [f"{survey.original_family}:ssnamenr", "d:roid"]

    def first_field(self, batch, survey):
        return rowkeys.normalize_ssnamenr(column(batch, f"{survey.original_family}:ssnamenr"))

    def rows(self, batch, survey):
        names = self.first_field(batch, survey)
        roid = column(batch, "d:roid")
        mpc = pc.fill_null(pc.equal(pc.cast(roid, pa.int64()), ROID_MPC), False)
        keep = pc.and_(mpc, pc.is_valid(names))
        batch, names = batch.filter(keep), pc.filter(names, keep)
        n_mpc = int(pc.sum(pc.cast(mpc, pa.int64())).as_py() or 0)
        skipped = {NOT_MPC: len(keep) - n_mpc, NO_NAME: n_mpc - batch.num_rows}
        return Rows(keys=self.keys(names, batch, survey), cells=self.summary(batch, survey),
                    skipped={k: v for k, v in skipped.items() if v}, expected=len(keep))
