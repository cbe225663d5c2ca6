"""Name resolver index: names an alert carries -> the alert's object.

Two resolvers, from what the alerts hold (no external service): ``tns``, the TNS value of
the alert (``d:tns``, in Fink's newest layout), and ``simbad``, the SIMBAD label of the
closest SIMBAD source (``d:cdsxmatch``, except ``Unknown`` and failed cross-matches). Key
``<resolver>_<name>_<jd>_<objectId>_<candid>`` with the name lowercased (look-ups are
case-insensitive, as Fink's resolvers are) and escaped; the cells keep the name as written
(``d:name``) and the position. A name and any prefix of it are one text-prefix scan
(``tns_sn 2023`` finds every name starting with ``sn 2023``); the other way, the names of
an object are in its main-table rows (``read.names``).

Each alert gives two candidate rows, one per resolver: ``expected`` counts both, and the
rows not placed are counted by reason (no TNS value, no SIMBAD label).
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest import rowkeys
from fink_ingest.tables.base import Rows, alert_key_parts, column
from fink_ingest.tables.index import IndexTable

TNS = "d:tns"               # TNS value of the alert (Fink's TNS cross-match, newest layout)
SIMBAD = "d:cdsxmatch"      # SIMBAD label of the closest source (Fink's CDS cross-match)
NAME = "d:name"             # the name as the alert wrote it (the key holds it lowercased)
RESOLVERS = {"tns": TNS, "simbad": SIMBAD}
# Values that name nothing: empty text, Fink's nulls as text, and SIMBAD's non-answers
# (no source within 1 arcsec: Unknown; the cross-match service failed: Fail...).
NOT_A_NAME = ("", "null", "none", "nan", "unknown")
FAILED_PREFIX = "fail"
NOT_PLACED = {"tns": f"no TNS value ({TNS})", "simbad": f"no SIMBAD label ({SIMBAD})"}


def names_of(batch, source):
    """Names of a staged batch's alerts in one source column, null where there is none
    (pyarrow string array, surrounding spaces removed)."""
    text = pc.utf8_trim_whitespace(pc.cast(column(batch, source), pa.string()))
    lower = pc.utf8_lower(text)
    bad = pc.or_(pc.is_in(lower, value_set=pa.array(NOT_A_NAME)), pc.starts_with(lower, FAILED_PREFIX))
    return pc.if_else(pc.fill_null(bad, True), pa.scalar(None, pa.string()), text)


class ResolverTable(IndexTable):
    """Alerts by the names they carry (see the module docstring)."""

    kind = "resolver"
    key = ("resolver", "name", "time", "object", "alert")

    def key_inputs(self, survey):
        return super().key_inputs(survey) + list(RESOLVERS.values())

    def stage(self, available, survey):
        f, leaf = survey.original_family, survey.leaf
        wanted = self.key_inputs(survey) + [f"{f}:{leaf['ra']}", f"{f}:{leaf['dec']}"]
        return [n for n in dict.fromkeys(wanted) if n in available]

    def cell_types(self, staged_types, survey):
        f, leaf = survey.original_family, survey.leaf
        position = {n: staged_types[n] for n in (f"{f}:{leaf['ra']}", f"{f}:{leaf['dec']}") if n in staged_types}
        return {NAME: "string", **position}

    def rows(self, batch, survey):
        f, leaf = survey.original_family, survey.leaf
        keys, cells, skipped = [], {NAME: []}, {}
        position = [n for n in (f"{f}:{leaf['ra']}", f"{f}:{leaf['dec']}") if n in batch.schema.names]
        cells.update({n: [] for n in position})
        for resolver, source in RESOLVERS.items():
            names = names_of(batch, source)
            keep = pc.is_valid(names)
            kept, written = batch.filter(keep), pc.filter(names, keep)
            if batch.num_rows - kept.num_rows:
                skipped[NOT_PLACED[resolver]] = batch.num_rows - kept.num_rows
            parts = {**alert_key_parts(kept, survey), "resolver": pa.array([resolver] * kept.num_rows, pa.string()),
                     "name": pc.utf8_lower(written)}
            keys.append(rowkeys.make(self.key, parts, survey))
            cells[NAME].append(written)
            for n in position:
                cells[n].append(column(kept, n))
        return Rows(keys=pa.concat_arrays(keys), cells={n: pa.concat_arrays(v) for n, v in cells.items()},
                    skipped=skipped, expected=len(RESOLVERS) * batch.num_rows)
