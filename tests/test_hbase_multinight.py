"""Several real nights of different Fink versions pushed into HBase (the double, or the live
server of ``FINK_TEST_HBASE``): the tables equal the embedded store's, cell for cell, though
the nights went in in another order; a history table rebuilt for a night changes nothing.

The nights: three of the SLSN sample (newest layout, long histories: history rows merge
across nights) and the Solar System night of 2022-08-04 (an older layout: the schema row
follows the drift).
"""
import pytest

from conftest import hbase_server, make_config
from datasim.layout import layout_datalake
from fink_ingest import paths
from fink_ingest.push import push_night, rebuild
from fink_ingest.store import open_store

NIGHTS = ["2022-08-04", "2025-09-01", "2025-09-02", "2025-09-04"]   # 11, 14, 18 and 15 alerts


def snapshot(store):
    return {name: list(store.table(name).scan()) for name in store.tables()}


@pytest.fixture(scope="module")
def lake(datasim, tmp_path_factory):
    base = tmp_path_factory.mktemp("hbase_multinight")
    layout_datalake([datasim / "ztf" / "alerts"], base / "lake")
    return base


@pytest.fixture(scope="module")
def pushed(spark, lake):
    """The nights in order into the embedded store, in reverse order into HBase."""
    local = make_config(lake / "lake", lake / "local", lake / "w1")
    local_store = open_store(local.store)
    for night in NIGHTS:
        assert push_night(spark, local, local_store, paths.parse_night(night))["ok"]
    with hbase_server(lake / "hbase", "multinight") as url:
        remote = make_config(lake / "lake", url, lake / "w2")
        remote_store = open_store(remote.store)
        summaries = [push_night(spark, remote, remote_store, paths.parse_night(night)) for night in reversed(NIGHTS)]
        yield remote, remote_store, local_store, summaries


def test_nights_in_any_order_give_the_embedded_stores_tables(pushed):
    _, remote, local, summaries = pushed
    assert all(s["ok"] for s in summaries), [s["problems"] for s in summaries]
    assert sum(s["rows_written"]["ztf"] for s in summaries) == 11 + 14 + 18 + 15
    assert snapshot(remote) == snapshot(local)


def test_rebuilding_a_history_table_for_a_night_changes_nothing(pushed, spark):
    config, remote, local, _ = pushed
    before = snapshot(remote)
    summaries = rebuild(spark, config, remote, "upper", [paths.parse_night("2025-09-02")], config.work_dir)
    assert summaries[0]["ok"] and summaries[0]["rows_written"]["ztf.upper"] == 0
    assert snapshot(remote) == before == snapshot(local)
