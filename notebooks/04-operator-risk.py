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
# # 04 · Operator risk
#
# Some abuse breaks no rule: an operator who, week after week, refunds small purchases by a
# few friends' cards, each refund on its own unremarkable. The anomaly score compares every
# operator-day with its merchant's ordinary day and with the operator's own last 28 days, and
# the run reports the top of the ranking. This notebook shows the whole distribution, what
# sets the top days apart, and then ranks operators over everything the run found on them.
#
# The scores are recomputed here with the run's own settings (same seed, same data: the
# same scores the run saw); on a 10 M-event store that is the longest step of these
# notebooks (docs/benchmarks.md, Notebooks).

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run to show; None: the latest successful run
top_days = 15  # operator-days explained feature by feature
top_operators = 25  # operators in the risk ranking

# %%
from posaudit import notebook as nb
from posaudit.notebook import charts, operators

nb.setup()
audit = nb.open_audit(db, run_id)
scores = operators.operator_day_scores(audit)
audit

# %% [markdown]
# ## Anomaly scores
#
# An Isolation Forest isolates unusual combinations with few random cuts; scores near 0.5 are
# ordinary. Of the top share of each week's operator-days (the policy's `top_fraction`) above
# a minimum score, the run reports the days with a refund to a repeat card, and the others
# only when the forest isolates them very fast (`lead_anomaly_score`), as low leads.

# %%
charts.score_distribution_chart(
    operators.score_distribution(scores), cut=operators.score_cut(scores)
)

# %%
nb.Table(
    operators.top_operator_days(scores, top=top_days),
    "The highest-scoring operator-days, and what sets them apart",
    columns=(
        "operator_id",
        "terminal_id",
        "day",
        "anomaly_score",
        "in_findings",
        "explanation",
        "refund_count",
        "repeat_card_refund_count",
        "wrong_pin_count",
    ),
)

# %% [markdown]
# ## The explanations
#
# For each of the top operator-days, every feature the model sees against the same feature
# on the merchant's median day (darker: further above). Hover a cell for the values. Below,
# how often each feature is among the three that explain a reported day.

# %%
charts.feature_heatmap(operators.feature_ratios(scores, top=top_days))

# %%
charts.standout_chart(operators.standout_features(scores))

# %% [markdown]
# ## Who stands out, and why
#
# Every finding of the run on an operator, or on a refund an operator made, counts toward
# that operator; each rule counts once, by its worst severity, so several kinds of trouble
# outrank many findings of one kind. Click an operator to list its findings.

# %%
risk = operators.operator_risk(audit, scores)
charts.risk_matrix_chart(
    operators.risk_matrix(risk, top=top_operators),
    operators.leaders_findings(audit, risk, top=top_operators),
)

# %%
nb.Table(
    risk,
    "Operators ranked by risk",
    columns=(
        "operator_id",
        "role",
        "terminal_id",
        "risk_points",
        "worst",
        "logins",
        "pins",
        "refunds",
        "scores",
        "top_anomaly_score",
        "explanation",
    ),
    max_rows=top_operators,
    empty="The run found nothing on any operator.",
)

# %% [markdown]
# Next: take an operator's finding into [05 · Finding drill-down](05-finding-drilldown.py).
