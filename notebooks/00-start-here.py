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
# # 00 · Start here
#
# The morning read: what the audit store holds, whether its data can be trusted, and what
# the latest audit run found, new since the run before. The other notebooks go deeper:
# logins and lockouts (01), PIN hygiene (02), refunds (03), operator risk (04), one
# finding at a time (05), for a store loaded from exports, the data that came in (06), and
# the review queue where analysts record what each finding was (07).
#
# Run all cells (**Run ▸ Run All Cells**). The store is opened read-only, query by query:
# nothing here can change it, and a scheduled `posaudit run` can still write while this is
# open. To look at another store or an older run, change the parameters below (a scheduler
# or papermill overrides them the same way).

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run to show; None: the latest successful run

# %%
from IPython.display import Markdown, display

from posaudit import notebook as nb
from posaudit.notebook import charts, overview

nb.setup()
audit = nb.open_audit(db, run_id)
display(Markdown(overview.headline(audit)))

# %% [markdown]
# ## What the store holds
#
# One DuckDB file is the system of record: the merchants, terminals and operators, every
# event (logins, lockouts, PIN events, transactions), and what the audit runs found.

# %%
nb.Table(overview.store_contents(audit), "Tables in the store", max_rows=20)

# %% [markdown]
# ## Data quality at a glance
#
# Every finding rests on the data being complete. Three checks come first:
#
# - **volume per day**: a day with under half a table's usual events is data that may not
#   have arrived (the first and last day of the data are partial and not judged);
# - **quiet terminals**: a terminal with a whole day of no login and no transaction, or far
#   behind the store's latest event, has stopped reporting or reports late;
# - **trace numbers**: each transaction on a terminal takes the next trace number, so a gap
#   is a record that never reached the store, and a number used twice is a record doubled.

# %%
volumes = overview.daily_volumes(audit)
activity = overview.terminal_activity(audit)
gaps = overview.trace_gaps(audit)
nb.Table(overview.data_quality(volumes=volumes, activity=activity, gaps=gaps), "Data checks")

# %%
charts.daily_volume_chart(volumes)

# %%
display(
    nb.Table(
        overview.quiet_terminals(activity),
        "Terminals quiet for a day or more",
        empty="Every terminal reported on every full day of the data.",
    )
)
nb.Table(
    gaps,
    "Breaks in trace numbers",
    empty="No trace number is missing or used twice: every numbered transaction is in the store.",
)

# %% [markdown]
# ## The run, and what is new since the one before
#
# Each `posaudit run` reads all the data and writes its findings; a finding keeps its id
# from run to run, so the store knows which findings are new, which are still open and which
# the latest run no longer found. A changed policy (thresholds, rules switched on or off)
# explains many changes, so it is listed first.

# %%
nb.Table(overview.run_history(audit), "Audit runs, oldest first", max_rows=30)

# %%
nb.Table(
    overview.policy_changes(audit),
    "Policy settings changed since the previous run",
    empty="The policy is the same as in the previous run (or this is the first run).",
)

# %%
charts.findings_by_family_chart(overview.findings_by_family(audit))

# %%
changes = overview.run_changes(audit)
charts.run_changes_chart(
    overview.changes_by_rule(changes),
    nb.first_per(changes, "rule", 25),
    previous=audit.previous_run_id,
)

# %%
nb.Table(
    changes,
    "New and resolved findings, most severe first",
    columns=("change", "severity", "rule", "entity_id", "window_start", "summary", "finding_id"),
    empty="Nothing new and nothing resolved in this run.",
)

# %% [markdown]
# ## Where next
#
# - [01 · Logins and lockouts](01-logins-and-lockouts.py): failed logins by cause, lockout
#   storms, PIN guessing and operator enumeration, terminals that do not lock.
# - [02 · PIN hygiene](02-pin-hygiene.py): weak, default, stale, shared and reused PINs.
# - [03 · Refund anomalies](03-refund-anomalies.py): refunds against their sales, each
#   refund rule, refund rates against peers.
# - [04 · Operator risk](04-operator-risk.py): anomaly scores and the operators who stand out.
# - [05 · Finding drill-down](05-finding-drilldown.py): one finding, its evidence and its
#   timeline (copy a `finding_id` from any table into its parameters).
# - [06 · Ingested data](06-ingested-data.py): for a store loaded from exports, the files
#   that came in, the rows quarantined and why, and coverage per day and terminal.
# - [07 · Triage](07-triage.py): the review queue with filters; pick a finding, read its
#   evidence and trail, and record a decision or assign it.
# - [08 · Sales patterns](08-sales-patterns.py): split sales, card testing and late voids, with
#   the voids by minutes after their sale and the declines per terminal-hour.
# - [09 · Fees and completeness](09-fees-and-completeness.py): every fee recomputed from the fee
#   table, the fee leakage, trace number gaps, batches that do not add up and sales recorded twice.
# - [10 · Operator privileges](10-operator-privileges.py): who holds which right, the rights
#   granted and revoked, and the privilege findings.
# - [11 · Merchant typologies](11-merchant-typologies.py): cash-out through sales, category
#   misuse and dormant terminals, each merchant against its category.
# - [12 · The auditor's classics](12-auditors-classics.py): Benford's law, duplicate sales,
#   gaps, amounts by stratum, ageing, and a monetary-unit sample to test by hand.
