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
# # 02 · PIN hygiene
#
# A password audit of the operators' 6-digit PINs: which operators hold a weak PIN, the
# acquirer's default, a PIN older than the policy allows, one shared with a colleague, or one
# they went back to. The operators are told: no runs or repeats, change every 90 days
# (PCI DSS v4.0 8.3.9) to none of the last 4 (8.3.7), never share.
#
# **No PIN is shown, anywhere.** The store keeps only keyed digests; the audit run compared
# them with the digests of every weak candidate PIN, the way a payment HSM's exclusion list
# works, and names the *weakness class* it matched. This notebook reads the run's findings and
# the PIN events' dates, never a digest, and needs no PIN key.

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run to show; None: the latest successful run

# %%
from posaudit import notebook as nb
from posaudit.notebook import charts, pins

nb.setup()
audit = nb.open_audit(db, run_id)
audit

# %% [markdown]
# ## The audit at a glance
#
# One row per problem with the PIN an operator holds today (at the end of the data), for
# the operators still active.

# %%
roster = pins.pin_roster(audit)
summary = pins.pin_audit_summary(roster)
nb.Table(summary, "PIN problems of the operators holding a PIN today")

# %%
charts.pin_problems_chart(summary)

# %% [markdown]
# ## Weak PINs, by weakness class
#
# The classes are what a guesser tries first, each PIN under its simplest explanation:
# repeated digits, runs and near-runs, repeated pairs and triples (111222), counting
# (246810), keypad shapes, famous and lucky numbers, dates (birthdays, year and month),
# the most common PINs of public password leaks, and PINs built from the operator's own
# number. Administrators matter most: their PIN opens the terminal's settings.

# %%
charts.weakness_chart(pins.weakness_classes(roster))

# %% [markdown]
# ## Default PINs never changed
#
# Terminals arrive with the acquirer's default administrator PIN, which is public knowledge
# (vendor manuals). An administrator still holding it has a terminal anyone can configure.

# %%
nb.Table(
    pins.pin_findings(audit, "default_pins"),
    "Administrators still on the acquirer's default PIN",
    columns=("severity", "entity_id", "terminal_id", "set_at", "summary", "finding_id"),
    empty="No administrator holds the acquirer's default PIN.",
)

# %% [markdown]
# ## Stale PINs
#
# How long operators have held their current PIN. The policy's maximum age comes from the
# run's policy (`stale_pins.max_age_days`).

# %%
max_age_days = audit.setting("stale_pins", "max_age_days") or 90
charts.pin_age_chart(pins.pin_ages(roster), max_age_days=max_age_days)

# %%
nb.Table(
    pins.stale_operators(roster),
    f"Operators whose PIN is older than {max_age_days} days, oldest first",
    columns=(
        "operator_id",
        "role",
        "terminal_id",
        "pin_set_at",
        "pin_age_days",
        "set_by",
        "never_changed",
        "weakness",
    ),
    empty="Every active operator changed its PIN within the policy's maximum age.",
)

# %% [markdown]
# ## Shared PINs
#
# Operators of one merchant on one PIN cannot be told apart: anything one of them does,
# any of them could have done. Groups of three or more are a shop's habit, not a slip.

# %%
nb.Table(
    pins.shared_pin_groups(audit),
    "Groups of operators holding one PIN today",
    empty="No two operators of a merchant hold the same PIN.",
)

# %% [markdown]
# ## Reused PINs
#
# A change back to one of the operator's last four PINs is a change in name only.

# %%
nb.Table(
    pins.pin_findings(audit, "reused_pins"),
    "Changes back to an old PIN",
    columns=(
        "severity",
        "entity_id",
        "terminal_id",
        "set_at",
        "set_by",
        "held",
        "summary",
        "finding_id",
    ),
    empty="No operator went back to one of its last PINs.",
)

# %% [markdown]
# ## Every operator with a PIN problem
#
# The roster behind the numbers above, worst first (most problems, then the oldest PIN).

# %%
nb.Table(
    pins.operators_with_problems(roster),
    "Operators with at least one PIN problem",
    columns=(
        "operator_id",
        "role",
        "terminal_id",
        "weakness",
        "is_default",
        "pin_age_days",
        "shared_with",
        "is_reused",
        "issues",
    ),
    max_rows=25,
    empty="No operator has a PIN problem.",
)

# %% [markdown]
# Next: [03 · Refund anomalies](03-refund-anomalies.py).
