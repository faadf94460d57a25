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
# # 11 · Merchant typologies
#
# Three ways a merchant misuses its acquiring, each seen only against the other merchants of
# its category: cash-out through sales (套现: credit sales just under round sums, by cards
# that come back, at hours the category does not sell), category misuse (跳码: a discount- or
# charity-class merchant that sells like another trade) and a dormant terminal that comes
# back among the busiest of its category. All three read one reduction of the transactions,
# a row per terminal and day.

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run to show; None: the latest successful run

# %%
from posaudit import notebook as nb
from posaudit.notebook import charts, merchants

nb.setup()
audit = nb.open_audit(db, run_id)
days = merchants.terminal_days(audit)
audit

# %% [markdown]
# ## The findings
#
# What the run found, strongest first. A cash-out finding names the merchant and the nights;
# a misuse finding the category it sells like; a surge the terminal, its silence and its
# jump.

# %%
nb.Table(
    merchants.typology_findings(audit),
    "Merchant typology findings",
    empty="The run found no merchant typology.",
)

# %% [markdown]
# ## When each category sells
#
# Cash-out counts only the sales made in three-hour bins where the merchant's category makes
# almost none of its sales: a company buying gift cards at noon is a customer, the same
# sales at three in the morning are not.

# %%
odd_hour_percent = audit.setting("cash_out_sales", "odd_hour_percent") or 2.0
charts.category_hours_chart(
    merchants.category_hours(days, audit), odd_hour_percent=odd_hour_percent
)

# %% [markdown]
# ## Merchants against their category
#
# Each merchant by its mean ticket and its share of credit-card sales. Merchants of a
# category sit together; a discount- or charity-class merchant among another category's
# merchants pays less than the trade it does. Ringed: named by a finding.

# %%
profiles = merchants.merchant_profiles(days, audit)
charts.merchant_profiles_chart(profiles)

# %%
nb.Table(
    profiles.filter(profiles["fee_class"] != "standard"),
    "Discount- and charity-class merchants",
    empty="No merchant is in the discount or charity class.",
)
