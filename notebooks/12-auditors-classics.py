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
# # 12 · The auditor's classics
#
# The tests an auditor runs on any ledger before anything else (docs/classics.md): Benford's
# law on the amounts, duplicate sales, gaps in trace numbers and trading days, the amounts by
# stratum, refunds and findings by age, and a sample to test by hand. Each reads the store
# as `posaudit analyze` and `posaudit sample` do, simulated or ingested.

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run to show; None: the latest successful run

# %%
from IPython.display import Markdown, display

from posaudit import notebook as nb
from posaudit.notebook import charts, classics

nb.setup()
audit = nb.open_audit(db, run_id)
audit

# %% [markdown]
# ## Benford's law on the sales' amounts
#
# In amounts that span several orders of magnitude, the first digit is a 1 about 30 % of the
# time and a 9 under 5 %. Nigrini reads conformity from the mean absolute deviation (MAD)
# against his bands; the spikes, in red, are the digit combinations found most above their
# share. The shaded band is where a share lies within 1.96 standard errors of Benford's.

# %%
results = classics.benford_tests(audit)
nb.Table(classics.benford_summary(results), "Benford's tests on the store's approved sales")

# %%
classics.benford_chart_of(results[0])

# %%
classics.benford_chart_of(results[1])

# %% [markdown]
# ## Merchants against Benford and against their category
#
# One shop's prices span less than an order of magnitude and end in round sums: many honest
# merchants fail Benford's curve. The run's `invented_amounts` rule flags a merchant only
# when its digits also depart from its own category's and its excess amounts sit just under
# round sums (20, 50, 100), where amounts typed to stay under a limit gather.

# %%
nb.Table(
    classics.invented_findings(audit),
    "Merchants inventing amounts",
    empty="The run found no merchant inventing amounts.",
)

# %%
nb.Table(
    classics.benford_merchants(audit),
    "Merchants least conforming to Benford (first two digits)",
    empty="No merchant has the 1,000 sales the test needs.",
)

# %% [markdown]
# ## Amounts by stratum
#
# The strata's bounds are the sales' median and 80th, 95th and 99th percentiles (`posaudit
# analyze strata --bounds` sets others): the bulk of the amounts, and how much of the money
# lies in the largest few.

# %%
strata = classics.strata_table(classics.strata(audit))
charts.strata_chart(strata)

# %%
nb.Table(strata, "Approved sales by stratum")

# %% [markdown]
# ## Duplicate sales and gaps
#
# A card paying the same amount twice at one terminal within 10 minutes (exact), or at
# another terminal of the merchant, or within 1 CNY (near). Trace numbers missing inside a
# batch, and days a terminal did not trade although it trades on that weekday.

# %%
found = classics.duplicates(audit)
nb.Table(classics.duplicate_totals(found), "Duplicate sales by kind")

# %%
nb.Table(
    classics.largest_duplicates(found),
    "The largest duplicate sales",
    empty="No sale was paid twice.",
)

# %%
holes = classics.gaps(audit)
nb.Table(
    holes.traces,
    "Trace numbers missing inside a batch",
    empty="No trace number is missing inside a batch.",
)

# %%
nb.Table(
    holes.days,
    "Days a terminal went silent against its own pattern",
    empty="No terminal missed a day it usually trades.",
)

# %% [markdown]
# ## Ageing
#
# Refunds by days after their sale, read against the 15-day refund window; open findings by
# the days of data since a run first raised them, and how many an analyst has decided.

# %%
aged = classics.ageing(audit)
charts.refund_ages_chart(classics.refund_ages(aged))

# %%
nb.Table(aged.findings, "Open findings by days open")

# %% [markdown]
# ## A sample to test by hand
#
# The monetary-unit sample size for 95 % confidence, 5 % tolerable and 1 % expected
# misstatement (the AICPA formula), and the sales it draws from a seeded random start: an
# item as large as the interval is drawn for certain. `posaudit sample draw` writes the same
# sample to a file to test; `posaudit sample evaluate` reads it back and gives the upper
# misstatement limit.

# %%
size = classics.sample_size(0.95, 0.05, 0.01)
sample = classics.monetary_unit_sample(audit, size, seed=1)
display(Markdown(classics.sample_line(sample)))
nb.Table(classics.sample_items(sample), "A monetary-unit sample of the sales", max_rows=100)
