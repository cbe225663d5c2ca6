"""Real-data simulation tools for fink-ingest: build datalakes from real ZTF alerts.

Two tools, both reading real alerts (never synthesising them from nothing):

``datasim.layout.layout_datalake``
    Takes real alert files -- parquet files, Spark datalake trees, single raw ZTF
    Avro alerts or Avro containers -- and writes them as a Fink datalake,
    ``<prefix>/science/year=YYYY/month=MM/day=DD/part-00000-<source>.parquet``,
    the night being the UTC date of ``candidate.jd``. Output is readable by
    Apache Spark 4 (microsecond timestamps, no dictionary or null-typed columns,
    snappy) and re-running it replaces files instead of duplicating alerts.

``datasim.scale.scale_night``
    Clones the alerts of one real night into a bigger night of exactly N alerts
    (fresh ``objectId`` / ``candid``, jittered positions and times inside the
    target night, every column and type kept) for benchmarks, in bounded memory.

Command line: ``bin/fink_datasim layout ...`` and ``bin/fink_datasim scale ...``
(see ``datasim.cli``).
"""
