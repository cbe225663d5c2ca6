"""The push's SparkSession, with settings in the order Spark users expect.

Precedence, highest first: the command line (``--spark-conf KEY=VALUE``), then spark-submit's
own settings (``--conf``, ``--master``, ``--driver-memory``, ``spark-defaults.conf``), then the
configuration file (``conf/fink_ingest.toml`` ``[spark.options]``), then Spark's defaults.

Some settings only take effect when the driver's JVM starts (``LAUNCH_ONLY``: its memory,
Java options, class path, packages). ``bin/fink_push`` starts that JVM itself, so it applies
them; under spark-submit the JVM already runs, so the job applies none of them and says which
ones it could not apply (pass them to spark-submit instead).
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

LAUNCH_ONLY = ("spark.driver.memory", "spark.driver.cores", "spark.driver.extraJavaOptions",
               "spark.driver.extraClassPath", "spark.driver.extraLibraryPath", "spark.jars.packages",
               "spark.jars.repositories", "spark.jars.ivy", "spark.submit.deployMode", "spark.submit.pyFiles")


def under_spark_submit():
    """True if this Python process was started by spark-submit (its JVM already runs)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def settings(config, submitted):
    """Spark settings to apply, and those that cannot be, by precedence.

    Parameters
    ----------
    config : fink_ingest.config.Config
    submitted : dict of str to str, or None
        Settings spark-submit gave (None: not under spark-submit).

    Returns
    -------
    (dict of str to str, dict of str to str)
        To apply; not applied (launch-only settings under spark-submit), with their source.
    """
    apply, skipped = {}, {}
    for source, options in (("conf", config.spark_options), ("command line", config.spark_overrides)):
        for key, value in options.items():
            if submitted is None:
                apply[key] = value
            elif key in LAUNCH_ONLY:
                if submitted.get(key) != value:
                    skipped[key] = f"{value} ({source})"
            elif source == "command line" or key not in submitted:
                apply[key] = value
    return apply, skipped


def session(config, app_name="fink_push"):
    """The SparkSession of a push (see the module docstring for the precedence).

    Returns
    -------
    pyspark.sql.SparkSession
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    submitted = None
    if under_spark_submit():  # attach to spark-submit's JVM first: its settings are its system properties
        SparkContext._ensure_initialized()
        submitted = dict(SparkConf().getAll())
    builder = SparkSession.builder.appName(app_name)
    if submitted is None:
        builder = builder.master(config.spark_master)
    apply, skipped = settings(config, submitted)
    for key, value in apply.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if skipped:
        log.warning("under spark-submit these settings only take effect at launch and were not applied: %s; "
                    "give them to spark-submit (e.g. --driver-memory, --conf KEY=VALUE)",
                    ", ".join(f"{k}={v}" for k, v in sorted(skipped.items())))
    return spark
