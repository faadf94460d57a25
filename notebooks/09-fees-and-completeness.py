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
# # 09 · Fees and completeness
#
# The acquirer's books rest on two things: every fee is the fee table's, and every record
# the terminals made is in the store, once. The fee audit recomputes every approved sale's
# fee from the fee table (docs/domain.md) and the merchant's fee class, exact to the fen; the
# completeness checks look for trace numbers missing inside a batch, batches whose records do
# not add up to the terminal's own total, and sales recorded twice within seconds.

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run to show; None: the latest successful run

# %%
from posaudit import notebook as nb
from posaudit.notebook import ledger

nb.setup()
audit = nb.open_audit(db, run_id)
audit

# %% [markdown]
# ## The fee audit
#
# Every record of the store by the merchant's fee class and the channel: the fees charged,
# the fees the table gives, and the difference (expected minus charged: positive is a fee
# not collected). A clean world has no record off the table.

# %%
nb.Table(ledger.fee_audit(audit), "Fees recomputed from the fee table", max_rows=20)

# %%
findings = ledger.ledger_findings(audit)
leakage = ledger.fee_leakage(findings)
print(
    f"Fee leakage by the run's findings: {leakage['total_fen'] / 100:,.2f} CNY net over "
    f"{leakage['findings']:,} merchant-days ({leakage['not_collected_fen'] / 100:,.2f} CNY not "
    f"collected, {leakage['over_charged_fen'] / 100:,.2f} CNY charged over the table)."
)

# %%
nb.Table(
    ledger.merchant_fee_findings(findings),
    "Merchants billed off the fee table",
    empty="Every fee of the run is the fee table's.",
)

# %% [markdown]
# ## Completeness
#
# Trace numbers missing inside a batch (wrap-aware: 1 follows 999,999), and batches whose
# records do not add up to what the terminal counted when it settled them. A batch missing
# its last records shows only in its total.

# %%
nb.Table(
    ledger.completeness_findings(findings),
    "Batches with missing records",
    empty="Every batch's trace numbers run without a gap, and every batch adds up.",
)

# %%
nb.Table(
    ledger.duplicate_findings(findings),
    "Sales recorded twice",
    empty="No sale repeats the one before it on the same card within seconds.",
)

# %%
ledger.findings_per_day_chart(findings)
