"""Thin index tables over the night's alerts: time, sky, class, Solar System objects.

Each row is a key and the survey file's summary cells (``[index] summary``); objectId and
jd are in every key and are not repeated as cells. Keys:

- time  ``<salt>_<jd>_<objectId>``: salt = 2 hex digits, a hash of objectId modulo
  ``time_buckets``, so one night's writes spread over that many key ranges; a time-window
  read merges the buckets.
- sky   ``<pixel>_<jd>_<objectId>``: NESTED HEALPix pixel at ``sky_order`` (29), 19 digits,
  so each coarser pixel is one contiguous key range (``healpix.fine_range``).
- class ``<class>_<jd>_<objectId>``: the class of Fink's rule (``classification.py``);
  newest first is a reversed scan of ``<class>_``.
- sso   ``<ssnamenr>_<jd>_<objectId>``: alerts with ``roid == 3`` and a real ``ssnamenr``,
  normalised by ``rowkeys.normalize_ssnamenr``.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest import healpix, rowkeys
from fink_ingest.classification import ROID_MPC
from fink_ingest.tables.base import (DERIVED_CLASS, SALT, Rows, TableBuilder, column, index_keys,
                                     select)


class IndexTable(TableBuilder):
    """Index rows: summary cells plus whatever the key needs (``key_inputs``)."""

    jd_field = -2

    def families_for(self, survey):
        return [survey.original_family, survey.added_family]

    def key_inputs(self, survey):
        """Staged columns the key needs besides the summary cells (list of str)."""
        leaf = survey.leaf
        return [f"{survey.original_family}:{leaf['object_id']}", f"{survey.original_family}:{leaf['time']}"]

    def stage(self, available, survey):
        wanted = list(survey.index_summary) + self.key_inputs(survey)
        return [n for n in dict.fromkeys(wanted) if n in available]

    def cell_types(self, staged_types, survey):
        return {n: t for n, t in staged_types.items() if n in survey.index_summary}

    def summary(self, batch, survey):
        """The summary cells of a staged batch: dict of name to pyarrow array."""
        return {n: column(batch, n) for n in survey.index_summary if n in batch.schema.names}

    def first_field(self, batch, survey):
        """First key field of each row (salt, pixel, class or name): pyarrow string array."""
        raise NotImplementedError

    def rows(self, batch, survey):
        return Rows(keys=index_keys(self.first_field(batch, survey), batch, survey),
                    cells=self.summary(batch, survey))


class TimeTable(IndexTable):
    """Alerts by time, salted (see the module docstring)."""

    kind = "time"

    def key_inputs(self, survey):
        return super().key_inputs(survey) + [SALT]

    def first_field(self, batch, survey):
        return column(batch, SALT)


class SkyTable(IndexTable):
    """Alerts by NESTED HEALPix pixel (see the module docstring)."""

    kind = "sky"

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

    def key_inputs(self, survey):
        return super().key_inputs(survey) + [DERIVED_CLASS]

    def first_field(self, batch, survey):
        return column(batch, DERIVED_CLASS)


class SsoTable(IndexTable):
    """Alerts of known Solar System objects (see the module docstring)."""

    kind = "sso"

    def key_inputs(self, survey):
        return super().key_inputs(survey) + [f"{survey.original_family}:ssnamenr", "d:roid"]

    def first_field(self, batch, survey):
        return rowkeys.normalize_ssnamenr(column(batch, f"{survey.original_family}:ssnamenr"))

    def rows(self, batch, survey):
        names = self.first_field(batch, survey)
        roid = column(batch, "d:roid")
        mpc = pc.fill_null(pc.equal(pc.cast(roid, pa.int64()), ROID_MPC), False)
        named = pc.is_valid(names)
        rows = Rows(keys=index_keys(names, batch, survey), cells=self.summary(batch, survey))
        unnamed = int(pc.sum(pc.and_(mpc, pc.invert(named))).as_py() or 0)
        rows.skipped = {"roid == 3 without a real ssnamenr": unnamed} if unnamed else {}
        return select(rows, pc.and_(mpc, named))

