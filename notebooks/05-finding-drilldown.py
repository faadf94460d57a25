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
# # 05 · Finding drill-down
#
# One finding, the evidence behind it, and everything its terminal or operator did around
# it: logins, lockouts, PIN events (when and by whom, never the PIN) and transactions. Put a
# `finding_id` from any other notebook (or from `posaudit export`) in the parameters below;
# left empty, the run's most severe finding is shown.

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run to show; None: the latest successful run
finding_id = None  # the finding to drill into; None: the run's most severe finding

# %%
from posaudit import notebook as nb
from posaudit.notebook import charts, drilldown

nb.setup()
audit = nb.open_audit(db, run_id)
finding_id = finding_id or drilldown.default_finding_id(audit)
finding = audit.finding(finding_id)
nb.Table(drilldown.finding_card(audit, finding_id), f"Finding {finding_id}", max_rows=20)

# %% [markdown]
# ## The evidence
#
# What the rule recorded: counts, amounts, the thresholds it used, and the ids of the events
# it rests on (at most twenty of each kind). Those events are ringed on the timeline.

# %%
nb.Table(drilldown.evidence_table(finding), "Evidence", max_rows=40)

# %% [markdown]
# ## The timeline
#
# The finding's subject from a little before its window (shaded) to a little after, one lane
# per kind of event. Hover for details; drag to pan and scroll to zoom.

# %%
events = drilldown.timeline(audit, finding_id)
charts.timeline_chart(events, **drilldown.timeline_context(audit, finding_id))

# %%
nb.Table(
    drilldown.evidence_events(events),
    "The events the evidence names",
    columns=(
        "ts",
        "lane",
        "event",
        "event_id",
        "terminal_id",
        "operator_id",
        "amount_cny",
        "detail",
    ),
    max_rows=40,
    empty="The evidence names no event (the finding rests on a setting or a count).",
)

# %% [markdown]
# ## Other findings on the same terminal or operator
#
# A finding rarely comes alone: a takeover shows as guessing, then a lockout, then refunds to
# other cards. Copy an id into `finding_id` above to follow the thread.

# %%
nb.Table(
    drilldown.related_findings(audit, finding_id),
    "Related findings of the run",
    max_rows=25,
    empty="No other finding of the run is about this terminal or operator.",
)
