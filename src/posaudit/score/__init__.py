"""Anomaly scores: scikit-learn models over per-entity features, shaped as findings.

Where the rules in :mod:`posaudit.detect` test one named condition each, a score ranks whole
operator-days against their merchant's usual behaviour and the operator's own 28-day
context, to surface slow abuse that no single event gives away (``friendly_refunds``).
Feature building stays lazy Polars; the one model step runs inside ``map_batches`` so every
scoring function still returns a LazyFrame and never collects. Modules never import duckdb or
altair.
"""
