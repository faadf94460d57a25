"""The auditor's classics: the standard tests an auditor runs on any ledger (docs/classics.md).

Each reads the store, simulated or ingested, and never writes to it.
"""
