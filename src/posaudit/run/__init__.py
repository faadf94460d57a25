"""Detection runs: full or incremental, idempotent, atomic, and one writer at a time.

A run is a story in four stages, each a module of its own:

- :mod:`~posaudit.run.plan`: full or incremental; what each rule reads and re-decides;
- :mod:`~posaudit.run.read`: the columns the rules use, each table read once;
- :mod:`~posaudit.run.detect`: every rule over its inputs (:mod:`~posaudit.run.inputs`
  supplies what no table holds; :mod:`~posaudit.run.score` runs the anomaly score);
- :mod:`~posaudit.run.record`: the findings merged, the run recorded, its summary.

:mod:`~posaudit.run.kept` holds what a run keeps for the next, :mod:`~posaudit.run.local`
tells the local engine's run from plan to record, and :mod:`~posaudit.run.steps` the
scheduled pipeline's output steps. The Spark engine (:mod:`posaudit.spark.runner`) plans,
detects and records through the same modules.
"""
