"""The Spark engine: the same rules, per bucket, on a cluster (``posaudit run --engine spark``).

- :mod:`posaudit.spark.export`: the bucketed Parquet export the engine reads.
- :mod:`posaudit.spark.buckets`: which rules run per bucket, and one bucket's work (Polars).
- :mod:`posaudit.spark.session`: masters, settings, the Spark session.
- :mod:`posaudit.spark.runner`: the Spark jobs and the run, findings into the store or Parquet.

pyspark is an optional extra (``pip install 'posaudit[spark]'``); only the session and runner
modules import it, and only when a run starts. See docs/scale-out.md.
"""
