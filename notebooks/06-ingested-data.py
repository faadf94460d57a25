# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Ingested data
#
# A store loaded from a terminal-management system's and a merchant portal's exports
# (`posaudit ingest`, see docs/ingest.md) is audited like a simulated one, but nothing in it
# says which findings are real. Before trusting a finding, check the data it rests on: which
# files came in, which rows were refused and why, and whether every terminal reported on
# every day. A refused row or a silent day is an event the audit never saw.
#
# Run all cells. The store is opened read-only, query by query.

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run to show; None: the latest successful run

# %%
from IPython.display import Markdown, display

from posaudit import notebook as nb
from posaudit.notebook import charts, ingested

nb.setup()
audit = nb.open_audit(db, run_id)
display(Markdown(ingested.ingest_headline(audit)))

# %% [markdown]
# ## What came in
#
# One row per file, known by the first hex digits of the SHA-256 of its bytes: the same
# bytes ingested again add nothing. For every file, rows read = loaded + duplicate (already
# in the store, from an overlapping export) + quarantined.

# %%
nb.Table(
    ingested.ingested_files(audit),
    "Files ingested",
    max_rows=50,
    empty="No file was ingested into this store.",
)

# %% [markdown]
# ## What was quarantined, and why
#
# A row the ingest could not trust is never loaded: it waits in the `quarantine` table with
# its file, its line and a reason. Fix it in its file and ingest the file again; the rows
# already loaded count as duplicates, the fixed ones load. Card numbers in the raw rows were
# masked before they were written.

# %%
nb.Table(
    ingested.quarantine_reasons(audit),
    "Rows quarantined by reason",
    empty="No row was quarantined.",
)

# %%
nb.Table(
    ingested.quarantined_rows(audit),
    "Quarantined rows, the first of each reason",
    max_rows=40,
    empty="No row was quarantined.",
)

# %% [markdown]
# ## Coverage per day and terminal
#
# A terminal that reported nothing on a full day (no login, lockout or transaction) was
# switched off, or its records did not reach the export. Either way its day is unaudited.

# %%
coverage = ingested.coverage(audit)
by_terminal = ingested.coverage_by_terminal(coverage)
charts.coverage_chart(coverage, by_terminal)

# %%
nb.Table(
    by_terminal,
    "Terminals by days without events",
    empty="The store holds no terminal.",
)
