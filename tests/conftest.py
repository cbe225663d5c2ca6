"""Shared fixtures: one local Spark session, the real data, a store filled from the real night."""
import logging
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "jobs"))
sys.path.insert(0, str(ROOT / "tests"))

DATASIM = Path(os.environ.get("FINK_DATASIM", ROOT.parent / "shared" / "datasim"))
NIGHT_DIR = DATASIM / "ztf" / "archive" / "science" / "year=2024" / "month=01" / "day=15"


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
    store, and HBase over the Thrift wire through tests/hbase_double.py): (config, store, summary)."""
    from fink_ingest import paths
    from fink_ingest.push import push_night
    from fink_ingest.store import open_store

    base = tmp_path_factory.mktemp(f"real_night_{request.param}")
    double = None
    if request.param == "hbase":
        from hbase_double import ThriftDouble

        double = ThriftDouble(str(base / "hbase")).start()
        store_url = f"hbase://127.0.0.1:{double.port}"
    else:
        store_url = str(base / "store")
    config = make_config(datasim / "ztf" / "archive", store_url, base / "work")
    store = open_store(config.store)
    summary = push_night(spark, config, store, paths.parse_night("2024-01-15"))
    yield config, store, summary
    if double is not None:
        double.stop()


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
