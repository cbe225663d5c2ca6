"""Shared fixtures: one local Spark session, the real data, a store filled from the real night,
and where the HBase tests write.

HBase tests run against ``tests/hbase_double.py`` (a Thrift double, one per test), or, with
``FINK_TEST_HBASE=host:port``, against that live Thrift gateway: each test then works under
a table prefix of its own (``fink_test_<random>_<test>``), and its tables are dropped after.
"""
import contextlib
import logging
import os
import re
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "jobs"))
sys.path.insert(0, str(ROOT / "tests"))

DATASIM = Path(os.environ.get("FINK_DATASIM", ROOT.parent / "shared" / "datasim"))
NIGHT_DIR = DATASIM / "ztf" / "archive" / "science" / "year=2024" / "month=01" / "day=15"
# host:port of a live HBase Thrift gateway to run the HBase tests against (else: the double)
LIVE_HBASE = os.environ.get("FINK_TEST_HBASE") or None
TEST_PREFIX = "fink_test_"


@contextlib.contextmanager
def hbase_server(directory, label, options="", codecs="stock-1.x"):
    """Where one test's HBase store lives: a store URL (str).

    Without ``FINK_TEST_HBASE``, a fresh Thrift double serving ``directory`` with the given
    ``codecs`` mode (stopped after). With it, the live gateway under a table prefix made from
    ``label``, its tables dropped after (``codecs`` is then the server's own).

    Parameters
    ----------
    directory : Path
    label : str
        Names the prefix on a live server (e.g. the test's name).
    options : str
        More URL options, ``"retries=2&batch=50"``.
    codecs : str
        The double's codec mode (``hbase_double.CODEC_MODES``).
    """
    extra = f"&{options}" if options else ""
    if LIVE_HBASE is None:
        from hbase_double import ThriftDouble

        double = ThriftDouble(str(directory), codecs=codecs).start()
        try:
            yield f"hbase://127.0.0.1:{double.port}?{options}" if options else f"hbase://127.0.0.1:{double.port}"
        finally:
            double.stop()
        return
    prefix = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}_{re.sub(r'[^A-Za-z0-9]+', '_', label)[:40]}"
    try:
        yield f"hbase://{LIVE_HBASE}?table_prefix={prefix}{extra}"
    finally:
        drop_prefixed(prefix)


def drop_prefixed(prefix):
    """Drop every table of the live server under happybase's ``prefix``."""
    import happybase

    host, _, port = LIVE_HBASE.rpartition(":")
    conn = happybase.Connection(host, int(port), table_prefix=prefix)
    try:
        for name in conn.tables():
            conn.delete_table(name, disable=True)
    finally:
        conn.close()


@pytest.fixture
def hbase_url(request, tmp_path):
    """A store URL of an HBase for this test alone (see ``hbase_server``)."""
    with hbase_server(tmp_path / "hbase", request.node.name) as url:
        yield url


@pytest.fixture(scope="session")
def datasim():
    """Root of the real ZTF data (../shared/datasim or $FINK_DATASIM)."""
    if not NIGHT_DIR.exists():
        pytest.fail(f"real data not found at {DATASIM}; set FINK_DATASIM")
    return DATASIM


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole run (local[2], 2 shuffle partitions, UTC)."""
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("fink-ingest-tests")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    # py4j logs through the root logger at exit, when pytest's streams are closed
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "fink_push", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.WARNING)


def make_config(datalake, store, work_dir, **extra):
    """Configuration of the project with test paths."""
    from fink_ingest.config import load_config

    return load_config(None, datalake=str(datalake), store=str(store), work_dir=str(work_dir), **extra)


@pytest.fixture(scope="session", params=["sqlite", "hbase"])
def real_night_push(request, spark, datasim, tmp_path_factory):
    """The real night 2024-01-15 pushed once into a fresh store, on each backend (the embedded
    store, and HBase over the Thrift wire: tests/hbase_double.py, or the live server of
    ``FINK_TEST_HBASE``): (config, store, summary)."""
    from fink_ingest import paths
    from fink_ingest.push import push_night
    from fink_ingest.store import open_store

    base = tmp_path_factory.mktemp(f"real_night_{request.param}")
    with contextlib.ExitStack() as stack:
        if request.param == "hbase":
            store_url = stack.enter_context(hbase_server(base / "hbase", "real_night"))
        else:
            store_url = str(base / "store")
        config = make_config(datasim / "ztf" / "archive", store_url, base / "work")
        store = open_store(config.store)
        summary = push_night(spark, config, store, paths.parse_night("2024-01-15"))
        yield config, store, summary


@pytest.fixture(scope="session")
def sample_store(spark, datasim, tmp_path_factory):
    """Every real night of ../shared/datasim/ztf (21 nights, 1,516 alerts: several Fink layouts,
    stamps, tracklets, anomaly scores, TNS values, multi-alert objects), laid out by datasim
    and pushed into one embedded store: (config, store)."""
    from datasim.layout import layout_datalake
    from fink_ingest import paths
    from fink_ingest.push import push_night
    from fink_ingest.store import open_store

    base = tmp_path_factory.mktemp("sample_nights")
    layout_datalake([datasim / "ztf"], base / "lake")
    config = make_config(base / "lake", base / "store", base / "work")
    store = open_store(config.store)
    for night_dir in sorted((base / "lake" / "science").glob("year=*/month=*/day=*")):
        y, m, d = (part.split("=")[1] for part in night_dir.parts[-3:])
        summary = push_night(spark, config, store, paths.parse_night(f"{y}-{m}-{d}"))
        assert summary["ok"], summary.get("problems")
    return config, store
