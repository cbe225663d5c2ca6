"""Spark entry point of the nightly push.

Locally (``bin/fink_push``) it starts Spark with the configured master. On a cluster it runs
unchanged under ``spark-submit`` (YARN or Kubernetes master, datalake on ``hdfs://`` or
``s3a://``); spark-submit's master and options then take precedence:

    spark-submit --master yarn --py-files fink_ingest.zip jobs/fink_push.py --night 2024-01-15 \
        --datalake hdfs:///user/fink/archive --store /data/fink/store
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fink_ingest.cli import main  # noqa: E402


def spark_session(config):
    """SparkSession for a push: the configured master and options, unless under spark-submit."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("fink_push")
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not launched by spark-submit
        builder = builder.master(config.spark_master)
    for key, value in config.spark_options.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


if __name__ == "__main__":
    sys.exit(main(spark_session))
