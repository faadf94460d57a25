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
# # 01 · Logins and lockouts
#
# Who is guessing PINs, and which lockouts are just forgetful staff or a bad network? A
# terminal login is a 2-digit operator number and a 6-digit PIN; the lockout after a few
# wrong PINs is what makes guessing hopeless. This notebook separates failures by cause,
# shows the lockouts, the attacks the run found (PIN guessing on one operator, many operator
# numbers tried on one terminal, lockout storms, one login used on two terminals) and the
# terminals whose own setting does not enforce the lockout policy.

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run to show; None: the latest successful run

# %%
from posaudit import notebook as nb
from posaudit.notebook import charts, logins

nb.setup()
audit = nb.open_audit(db, run_id)
audit

# %% [markdown]
# ## Failed logins, by cause
#
# A wrong PIN, an operator number that does not exist, or an attempt while locked are
# failures of the *credentials*: typing, forgetting or guessing. A network error is the
# terminal failing to reach the host: a health matter, never a guess, and it never counts
# toward a lockout. Spikes of credentials failures at one terminal are where attacks show.

# %%
nb.Table(logins.failure_summary(audit), "Failed logins by outcome (share of all login attempts)")

# %%
every = logins.chart_bucket(audit)
charts.failures_chart(
    logins.failures_over_time(audit, every=every),
    logins.failures_by_terminal(audit, every=every),
    every=every,
)

# %% [markdown]
# ## Lockouts
#
# Forgetful staff lock themselves out now and then and are unlocked by the administrator or
# the service desk, usually followed by a PIN reset. An attacker's lockouts end by timeout and
# the guessing resumes. Several operators of one terminal locked out within the hour is a
# *lockout storm*: someone working through the operator numbers.

# %%
charts.lockouts_chart(logins.lockouts_over_time(audit))

# %%
nb.Table(
    logins.login_findings(audit, rules=("lockout_storm",)),
    "Lockout storms",
    columns=("severity", "terminal_id", "window_start", "minutes", "attempts", "summary"),
    empty="No lockout storm: no terminal had several operators locked out within the hour.",
)

# %% [markdown]
# ## Brute force, enumeration and shared logins
#
# Each bubble is one finding of the run, placed at its start; its size is the attempts (or,
# for a shared login, the switches between terminals). Click a bubble to read it below.

# %%
attacks = logins.login_findings(audit, rules=logins.ATTACK_RULES)
charts.login_findings_chart(attacks)

# %%
nb.Table(
    attacks,
    "Attacks by severity",
    columns=(
        "severity",
        "rule",
        "terminal_id",
        "entity_id",
        "window_start",
        "attempts",
        "summary",
        "finding_id",
    ),
    empty="The run found no PIN guessing, enumeration, lockout storm or shared login.",
)

# %% [markdown]
# ## Terminals that do not enforce the lockout policy
#
# Each terminal keeps its own lockout setting. The policy (PCI DSS v4.0 8.3.4 allows at most
# 10) locks an operator after a few wrong PINs for at least half an hour; a terminal that
# never locks, locks late or only briefly gives a guesser the time the policy denies.

# %%
settings = logins.lockout_settings(audit)
policy = logins.lockout_policy(audit)
charts.lockout_settings_chart(logins.lockout_setting_counts(settings), **policy)

# %%
nb.Table(
    logins.outside_policy(settings),
    "Terminals outside the lockout policy",
    columns=(
        "terminal_id",
        "merchant_id",
        "model",
        "locks_after",
        "locks_for",
        "why_not",
        "finding",
    ),
    empty="Every terminal's lockout setting is within the policy.",
)

# %% [markdown]
# Next: [02 · PIN hygiene](02-pin-hygiene.py), or drill into one finding with
# [05 · Finding drill-down](05-finding-drilldown.py).
