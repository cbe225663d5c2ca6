"""Table builders, found by name in ``BUILDERS`` (the order is the push order and the order
of the end-of-run summary)."""
from fink_ingest.tables.anomaly import AnomalyTable
from fink_ingest.tables.cutouts import CutoutTable
from fink_ingest.tables.history import BadQualityTable, UpperTable
from fink_ingest.tables.index import ClassTable, SkyTable, SsoTable, TimeTable
from fink_ingest.tables.main import MainTable
from fink_ingest.tables.resolver import ResolverTable
from fink_ingest.tables.statistics import StatisticsTable
from fink_ingest.tables.tracklet import TrackletTable

BUILDERS = {
    "main": MainTable(),
    "time": TimeTable(),
    "sky": SkyTable(),
    "class": ClassTable(),
    "sso": SsoTable(),
    "tracklet": TrackletTable(),
    "anomaly": AnomalyTable(),
    "resolver": ResolverTable(),
    "cutouts": CutoutTable(),
    "statistics": StatisticsTable(),
    "upper": UpperTable(),
    "uppervalid": BadQualityTable(),
}
