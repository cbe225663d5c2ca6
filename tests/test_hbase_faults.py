"""The HBase path when the Thrift gateway dies in the middle of a push, and comes back.

The gateway is the double, or the live server of ``FINK_TEST_HBASE``, behind a relay that
dies like a gateway does (``hbase_relay.GatewayProxy``).
"""
import re
from urllib.parse import urlparse

import pytest

from conftest import hbase_server, make_config
from fink_ingest import paths
from fink_ingest.errors import StoreError
from fink_ingest.push import push_night
from fink_ingest.store import open_store
from fink_ingest.tables.history import UNCHANGED
from hbase_relay import GatewayProxy

UPPER_ROWS = 1318   # rows of the upper-limit table on the real night 2024-01-15
DIE_AFTER = 650     # rows of it the gateway forwards before it dies
BATCH = 50          # rows per Thrift call: a call lost with the gateway loses at most this many


def snapshot(store):
    return {name: list(store.table(name).scan()) for name in store.tables()}


def through(url, port, options):
    """The same store URL on another port, with more options."""
    parsed = urlparse(url)
    query = "&".join(q for q in (parsed.query, options) if q)
    return f"hbase://127.0.0.1:{port}?{query}"


def test_gateway_dies_mid_push_then_a_rerun_completes_exactly(spark, datasim, tmp_path):
    with hbase_server(tmp_path / "hbase", "gateway_dies") as direct_url:
        direct = open_store(direct_url)
        proxy = GatewayProxy(direct.host, direct.port).start()
        try:
            config = make_config(datasim / "ztf" / "archive", through(direct_url, proxy.port, f"retries=2&batch={BATCH}"),
                                 tmp_path / "w")
            store = open_store(config.store)
            proxy.die_after_rows(store.full_name("ztf.upper"), DIE_AFTER)
            history = re.escape(store.full_name("ztf.upper"))
            # the history tables are written batch by batch together: either may meet the dead gateway
            with pytest.raises(StoreError, match=rf"night 2024-01-15: table '{history}(valid)?': .* failed after 2 "
                                                 rf"attempts on HBase at 127\.0\.0\.1:{proxy.port}: "):
                push_night(spark, config, store, paths.parse_night("2024-01-15"))
            assert proxy.dead.is_set()
            partial = direct.table("ztf.upper").count()
            assert DIE_AFTER - BATCH <= partial <= DIE_AFTER

            proxy.start()   # the gateway comes back, over the same data
            summary = push_night(spark, config, store, paths.parse_night("2024-01-15"))
            # rows the gateway had stored are merged and found unchanged: only the rest is put
            upper, unchanged = summary["rows_written"]["ztf.upper"], summary["rows_skipped"]["ztf.upper"][UNCHANGED]
            assert summary["ok"] and upper + unchanged >= UPPER_ROWS and unchanged >= partial - 2
            clean = open_store(str(tmp_path / "clean"))
            push_night(spark, make_config(datasim / "ztf" / "archive", tmp_path / "clean", tmp_path / "w2"),
                       clean, paths.parse_night("2024-01-15"))
            assert snapshot(direct) == snapshot(clean)   # nothing lost, nothing duplicated
        finally:
            proxy.kill()


def test_executor_merges_see_every_row_of_a_key(spark, datasim, tmp_path, monkeypatch):
    """Staged history files read in many splits (small row groups, small input partitions,
    so an object's entries can start in one split and end in the next) still give exactly
    the history tables of the driver's single writer, row for row."""
    from fink_ingest.push import stage

    monkeypatch.setattr(stage, "STAGE_ROW_GROUP_BYTES", 16 * 1024)
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(32 * 1024))
    try:
        with hbase_server(tmp_path / "hbase", "executor_merges") as url:
            night = paths.parse_night("2024-01-15")
            remote_config = make_config(datasim / "ztf" / "archive", url, tmp_path / "w1")
            remote = open_store(remote_config.store)
            assert push_night(spark, remote_config, remote, night, ["upper", "uppervalid"])["ok"]
            local = open_store(str(tmp_path / "local"))
            push_night(spark, make_config(datasim / "ztf" / "archive", tmp_path / "local", tmp_path / "w2"), local,
                       night, ["upper", "uppervalid"])
            for table in ("ztf.upper", "ztf.uppervalid"):
                assert list(remote.table(table).scan()) == list(local.table(table).scan())
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
