"""Spark settings win in the order Spark users expect: the command line, then spark-submit's,
then conf/fink_ingest.toml, then Spark's defaults; settings that only take effect at launch
are applied by bin/fink_push and reported as not applied under spark-submit."""
import subprocess
import sys

import pytest

from conftest import ROOT
from fink_ingest.config import load_config
from fink_ingest.spark import settings
from test_cluster import SPARK_BIN

SCRIPT = """
import logging, sys
sys.path.insert(0, {root!r})
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stdout)
from fink_ingest.config import load_config
from fink_ingest.spark import session
spark = session(load_config(None, spark_options=sys.argv[1:]))
print("PARTITIONS", spark.conf.get("spark.sql.shuffle.partitions"))
print("HEAP_GB", round(spark._jvm.java.lang.Runtime.getRuntime().maxMemory() / 2**30, 1))
"""


def test_precedence_of_settings():
    config = load_config(None, spark_options=["spark.sql.shuffle.partitions=7"])
    assert config.spark_options["spark.sql.shuffle.partitions"] == "8"          # conf/fink_ingest.toml
    apply, skipped = settings(config, None)                                       # bin/fink_push: all applied
    assert apply["spark.sql.shuffle.partitions"] == "7" and apply["spark.driver.memory"] == "2g" and not skipped
    submitted = {"spark.sql.shuffle.partitions": "5", "spark.ui.enabled": "true", "spark.master": "yarn"}
    apply, skipped = settings(config, submitted)                                  # under spark-submit
    assert apply["spark.sql.shuffle.partitions"] == "7"                           # the command line wins
    assert "spark.ui.enabled" not in apply                                        # spark-submit's wins over conf/
    assert apply["spark.sql.session.timeZone"] == "UTC"                           # conf/ fills the rest
    assert skipped == {"spark.driver.memory": "2g (conf)"}                        # launch-only: said


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("settings") / "show_settings.py"
    path.write_text(SCRIPT.format(root=str(ROOT)))
    return path


def test_under_spark_submit_its_settings_win_over_conf(script):
    done = subprocess.run([str(SPARK_BIN / "spark-submit"), "--master", "local[1]", "--driver-memory", "1g",
                           "--conf", "spark.sql.shuffle.partitions=5", str(script)],
                          capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PARTITIONS 5" in out and "HEAP_GB 1.0" in out
    assert "settings only take effect at launch and were not applied: spark.driver.memory=2g (conf)" in out
    done = subprocess.run([str(SPARK_BIN / "spark-submit"), "--master", "local[1]", "--conf",
                           "spark.sql.shuffle.partitions=5", str(script), "spark.sql.shuffle.partitions=3"],
                          capture_output=True, text=True, timeout=300)
    assert "PARTITIONS 3" in done.stdout                                           # the command line wins


def test_launched_by_fink_push_the_launch_settings_apply(script):
    done = subprocess.run([sys.executable, str(script), "spark.driver.memory=1g"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PARTITIONS 8" in done.stdout and "HEAP_GB 1.0" in done.stdout and "not applied" not in done.stdout
