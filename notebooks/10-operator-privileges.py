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
# # 10 · Operator privileges
#
# Who may do what on the terminals, how those rights were given, and the run's findings of
# the privilege audit: a refund right used as soon as it was granted, refunds right after an
# administrator reset someone's PIN, clerks who hold both manage and refund, accounts that
# never log in, and operators still on a common default PIN (docs/domain.md, "Operator
# management"). No PIN is shown: the defaults are found by their digests.

# %% tags=["parameters"]
db = None  # the store; None: $POSAUDIT_DB, else data/posaudit.duckdb
run_id = None  # the audit run to show; None: the latest successful run

# %%
from IPython.display import Markdown, display

from posaudit import notebook as nb
from posaudit.notebook import privileges

nb.setup()
audit = nb.open_audit(db, run_id)
audit

# %% [markdown]
# ## Rights by role
#
# Every administrator holds manage and refund by design; among clerks the two together break
# the segregation of duties.

# %%
nb.Table(privileges.rights_by_role(audit), "Operators by role and right")

# %% [markdown]
# ## How rights changed
#
# The operator events of the data window: additions, deletions, grants and revokes.

# %%
days = privileges.operator_event_days(audit)
if days.is_empty():
    display(Markdown("The store holds no operator events in the data window."))
else:
    display(privileges.operator_events_chart(days))

# %%
nb.Table(
    privileges.grants_in_window(audit),
    "Rights granted and revoked in the data window",
    empty="No right was granted or revoked in the data window.",
)

# %% [markdown]
# ## The findings

# %%
findings = privileges.privilege_findings(audit)
counts = privileges.findings_by_rule(findings)
if counts.is_empty():
    display(Markdown("The run found nothing in the privilege family."))
else:
    display(privileges.privilege_findings_chart(counts))

# %%
nb.Table(findings, "Privilege findings", empty="The run found nothing in the privilege family.")
