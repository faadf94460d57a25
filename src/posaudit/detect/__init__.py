"""Detection rules: pure Polars functions, LazyFrames in, a findings LazyFrame out.

One module per family (``logins``, ``pins``, ``refunds``). Rules never import duckdb, altair
or the CLI, and never collect: the runner collects all rules together.
"""
