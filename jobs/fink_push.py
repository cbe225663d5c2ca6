"""Spark entry point of the nightly push.

Locally (``bin/fink_push``) it starts Spark with the configured master. On a cluster it runs
unchanged under ``spark-submit`` (YARN, Kubernetes or standalone master, datalake and work
directory on ``hdfs://`` or ``s3a://``); settings: the command line's ``--spark-conf`` over
spark-submit's over conf/ over Spark's defaults (``fink_ingest/spark.py``):

    spark-submit --master yarn --py-files fink_ingest.zip jobs/fink_push.py --night 2024-01-15 \
        --datalake hdfs:///user/fink/archive --store /data/fink/store
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fink_ingest.cli import main  # noqa: E402


def spark_session(config):
    """The push's SparkSession (``fink_ingest.spark.session``: command line over spark-submit
    over conf/ over Spark's defaults)."""
    from fink_ingest.spark import session

    return session(config)


if __name__ == "__main__":
    sys.exit(main(spark_session))
