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
# # 03 · Refund anomalies
#
# A refund sends money back to a card, and it is where a terminal turns into cash. A
# legitimate refund goes to the card that paid, for at most what it paid, within the
# acquirer's window, made by someone allowed to refund, during opening hours. Each refund rule
# tests one of those; a few look at an operator's pattern (bursts, round amounts, refunds
# right after a suspicious login). Rates against peers then show merchants and operators
# refunding far more than others of their kind.

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run to show; None: the latest successful run

# %%
from posaudit import notebook as nb
from posaudit.notebook import charts, refunds

nb.setup()
audit = nb.open_audit(db, run_id)
audit

# %% [markdown]
# ## Refunds against their sales
#
# Every approved refund that names a sale, placed by the sale's amount and the refund's.
# On the dashed line a refund returned the whole sale; above it, more than the sale took.
# Grey refunds are named by no finding; a colour is the rule of the most severe finding that
# names the refund. Click a rule in the legend to see only its refunds.

# %%
all_refunds = refunds.refunds_with_sales(audit)
charts.refund_scatter_chart(refunds.refund_scatter(all_refunds))

# %%
refund_window_days = audit.setting("late_refunds", "refund_window_days") or 15
charts.refund_lag_chart(
    refunds.refund_lags(all_refunds, refund_window_days=refund_window_days),
    refund_window_days=refund_window_days,
)

# %% [markdown]
# ## Each refund rule
#
# What each rule found, and the money involved. Click a rule to list its findings, most
# severe first.

# %%
rule_counts = refunds.refund_rule_counts(audit)
nb.Table(rule_counts, "Refund findings by rule", empty="The run found no refund anomaly.")

# %%
charts.refund_rules_chart(rule_counts, refunds.refund_findings(audit, per_rule=25))

# %% [markdown]
# ## Refund rates against peers
#
# A merchant's refund rate (approved refunds per approved sale) against the median of its
# category, and each operator's against the other refunding operators of its merchant. Far
# above the dashed lines is worth a look even where no single refund broke a rule: slow abuse
# spreads itself thin.

# %%
merchants = refunds.merchant_refund_rates(audit)
charts.merchant_rates_chart(merchants)

# %%
nb.Table(
    merchants,
    "Merchants by refund rate against their category",
    columns=(
        "merchant_id",
        "name",
        "category",
        "sales",
        "refunds",
        "refund_rate",
        "category_rate",
        "rate_vs_category",
        "flagged_refunds",
    ),
    max_rows=10,
)

# %%
operators = refunds.operator_refund_rates(audit)
charts.operator_rates_chart(operators)

# %%
nb.Table(
    operators,
    "Operators by refund rate against their peers",
    columns=(
        "operator_id",
        "role",
        "can_refund",
        "sales",
        "refunds",
        "refund_rate",
        "peer_rate",
        "rate_vs_peers",
        "flagged_refunds",
        "findings",
    ),
    max_rows=10,
)

# %% [markdown]
# Next: [04 · Operator risk](04-operator-risk.py), or one refund finding in
# [05 · Finding drill-down](05-finding-drilldown.py).
