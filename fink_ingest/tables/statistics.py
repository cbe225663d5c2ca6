"""Per-night statistics: one row per night, key ``<survey>_YYYYMMDD`` (as Fink's
``statistics_class``): ``d:alerts``, ``d:objects``, ``d:fid_<n>`` (alerts per band) and
``c:<class>`` (alerts per class of Fink's rule)."""
from __future__ import annotations

import collections

import pyarrow as pa
import pyarrow.compute as pc

from fink_ingest import rowkeys
from fink_ingest.tables.base import DERIVED_CLASS, Rows, TableBuilder, column

CLASS_FAMILY = "c"


class StatisticsTable(TableBuilder):
    """Builder of the statistics table; rows come from ``finish`` once the night is read."""

    kind = "statistics"
    key = ("survey", "night")

    def __init__(self):
        self.reset()

    def reset(self, row_groups=None):
        """Forget counts (called by the push at the start of each night)."""
        self._counts = collections.Counter()
        self.objects = 0

    def families_for(self, survey):
        return [survey.added_family, CLASS_FAMILY]

    def stage(self, available, survey):
        return [n for n in self.counted(survey) if n in available]

    def cell_types(self, staged_types, survey):
        return {}  # every cell is a bigint count; see finish

    def counted(self, survey):
        """Staged columns counted by value (list of str): the band and the class."""
        return [f"{survey.original_family}:fid", DERIVED_CLASS]

    def add(self, alerts, counts, survey):
        """Add counts made elsewhere (the executors' writes count in Spark).

        Parameters
        ----------
        alerts : int
        counts : dict of str to dict
            Staged column (``counted``) -> {value: alerts}.
        survey : fink_ingest.config.Survey
        """
        self._counts["alerts"] += alerts
        for name, prefix in zip(self.counted(survey), ("fid_", "class:")):
            for value, n in counts.get(name, {}).items():
                if value is not None:
                    self._counts[f"{prefix}{value}"] += n

    def rows(self, batch, survey):
        counts = {}
        for name in self.counted(survey):
            counts[name] = {item["values"]: item["counts"] for item in pc.value_counts(column(batch, name)).to_pylist()}
        self.add(batch.num_rows, counts, survey)
        return None

    def finish(self, night, survey, counts=None):
        objects = (counts or {}).get("objects", self.objects)  # counted by the writer, else by Spark
        cells = {f"{survey.added_family}:alerts": self._counts["alerts"],
                 f"{survey.added_family}:objects": objects}
        for name, count in self._counts.items():
            if name.startswith("fid_"):
                cells[f"{survey.added_family}:{name}"] = count
            elif name.startswith("class:"):
                cells[f"{CLASS_FAMILY}:{name[len('class:'):]}"] = count
        return Rows(keys=self.night_key(night, survey), cells={n: pa.array([v], pa.int64()) for n, v in cells.items()},
                    types={n: "bigint" for n in cells}, expected=1)

    def night_key(self, night, survey):
        """Row key of a night (pyarrow string array of one key)."""
        return rowkeys.make(self.key, {"survey": pa.array([survey.name]), "night": pa.array([f"{night:%Y%m%d}"])},
                            survey)

    def night_keys(self, table, night, survey):
        key = self.night_key(night, survey)[0].as_py().encode()
        return [key] if table.row(key) else []

    def nights(self, table):
        """Nights that have a statistics row (list of datetime.date, sorted)."""
        import datetime as dt

        out = []
        for key, _ in table.scan(columns=None):
            if not rowkeys.is_schema_row(key):
                out.append(dt.datetime.strptime(self.parse_key(key)["night"], "%Y%m%d").date())
        return sorted(out)
