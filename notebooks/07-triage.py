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
# # 07 · Triage
#
# The review queue: every finding with its current review, open ones first, then by severity
# and score. Narrow it with the filters (family, severity at or above, decision, review
# status, assignee, and age: days since the finding's window ended or since a run first found
# it), pick a finding, read its evidence and its review trail on the right, and record what it
# was: choose a decision, write a note, and press **Record decision** (or assign it to someone).
#
# Run all cells (**Run ▸ Run All Cells**); there is no code to write. Each decision is a new
# review in the store's append-only trail, as `posaudit review decide` records it
# ([docs/review.md](../docs/review.md)): nothing is overwritten, and `posaudit review verify`
# checks the chain. Reviews are recorded under your name (`$POSAUDIT_ANALYST`, else your user
# name) and need no PIN key. While a run writes the store a decision is queued, and the line
# under the buttons says so: the run applies it as it ends (`posaudit review pending` lists
# what waits).

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run whose policy and data window the drill-down uses; None: the latest

# %%
from posaudit import notebook as nb
from posaudit.notebook import triage

nb.setup()
audit = nb.open_audit(db, run_id)
panel = triage.TriagePanel(audit)
panel.widget

# %% [markdown]
# ## After triage
#
# - `posaudit review list --decision undecided` prints the same queue in a terminal, and
#   `posaudit review show FINDING_ID` a finding's whole trail with its digests.
# - [05 · Finding drill-down](05-finding-drilldown.py) draws a finding's timeline: put its
#   `finding_id` in that notebook's parameters.
