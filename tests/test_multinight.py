"""Every real night of ../shared/datasim/ztf, laid out by datasim, pushed into one store.

The nights come from different Fink versions (and raw ZTF alerts with no Fink values), so
this is also the schema-drift test: columns come and go, types widen (roid int -> bigint,
Plx float -> double), timestamp becomes string, a column is all null.
"""
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import make_config
from datasim.layout import layout_datalake
from fink_ingest import cells, paths, schemarow
from fink_ingest.push import push_night
from fink_ingest.store import open_store


@pytest.fixture(scope="module")
def multinight(spark, datasim, tmp_path_factory):
    base = tmp_path_factory.mktemp("multinight")
    layout_datalake([datasim / "ztf"], base / "lake")
    nights = sorted(p for p in (base / "lake" / "science").glob("year=*/month=*/day=*"))
    config = make_config(base / "lake", base / "store", base / "work")
    store = open_store(config.store)
    summaries = {}
    for night_dir in nights:
        y, m, d = (part.split("=")[1] for part in night_dir.parts[-3:])
        night = paths.parse_night(f"{y}-{m}-{d}")
        summaries[night] = (night_dir, push_night(spark, config, store, night))
    return config, store, summaries


def test_every_night_pushed_with_one_row_per_candid(multinight):
    config, store, summaries = multinight
    assert len(summaries) >= 20
    total = 0
    for night, (night_dir, summary) in summaries.items():
        candids = pc.unique(pq.read_table(night_dir, columns=["candid"])["candid"])
        assert summary["ok"], summary
        assert summary["rows_written"]["ztf"] == len(candids), night
        total += len(candids)
    assert total == 1516  # 849 + 72 + 55 + 11 + 31 + 498 real alerts, all distinct
    assert store.table("ztf").count(prefix=b"ZTF") == total


def test_schema_row_follows_drift(multinight):
    config, store, _ = multinight
    types = schemarow.read(store.table("ztf"), config.survey.schema_version)
    assert types["d:roid"] == "bigint" and types["d:Plx"] == "double"     # widened
    assert types["d:timestamp"] == "string"                               # timestamp vs string
    assert types["d:tracklet"] == "string"                                # all-null int in one night
    assert types["d:finkclass"] == "string" and types["i:jd"] == "double"
    # an old cell (int roid of 2024-01-15) still decodes under the widened type
    key, row = next(store.table("ztf").scan(prefix=b"ZTF17aaaaitn_"))
    assert len(row[b"d:roid"]) == 4 and cells.decode(row[b"d:roid"], types["d:roid"]) == 0
