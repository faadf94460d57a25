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
# # 08 · Sales patterns
#
# Abuse of sales hides among millions of honest ones, so each rule of this family looks for a
# sequence an honest till does not produce: one purchase cut into several sales on the same
# card within minutes (split sales, 拆单), a burst of tiny declined sales from many cards
# (card testing), and sales voided long after the customer left (late voids). Here each is set
# against what the tills do every day.

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run to show; None: the latest successful run

# %%
from posaudit import notebook as nb
from posaudit.notebook import sales, sales_charts

nb.setup()
audit = nb.open_audit(db, run_id)
audit

# %% [markdown]
# ## What each rule found

# %%
nb.Table(sales.sales_rule_counts(audit), "Sales-pattern findings by rule")

# %%
nb.Table(
    sales.sales_findings(audit),
    "Sales-pattern findings, most severe first",
    columns=("rule", "severity", "entity_type", "entity_id", "window_start", "summary"),
    empty="The run found no sales pattern.",
)

# %% [markdown]
# ## Voids: minutes, or hours, after the sale
#
# An honest void corrects a mistake while the customer is still at the till. A void hours
# later, at the end of the batch, is what `void_abuse` counts (unless the sale is rung up
# again at once on the same card: a correction).

# %%
late_void_minutes = audit.setting("void_abuse", "late_void_minutes") or 30
sales_charts.void_delay_chart(sales.void_delays(audit), late_void_minutes=late_void_minutes)

# %% [markdown]
# ## Declined sales per terminal-hour
#
# Natural declines are scattered: a card out of funds here, an expired one there. A terminal
# where many cards are declined within the hour, at tiny amounts, is being used to test
# stolen card numbers.

# %%
declines = sales.declines_by_hour(audit)
sales_charts.declines_chart(declines)

# %%
nb.Table(declines, "Terminal-hours with the most declined sales", max_rows=10)

# %% [markdown]
# Next: one finding in [05 · Finding drill-down](05-finding-drilldown.py).
