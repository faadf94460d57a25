"""The list of every rule a run can apply.

The rules live in two layers: the detection rules in :mod:`posaudit.detect.logins`,
:mod:`posaudit.detect.pins` and :mod:`posaudit.detect.refunds`, and the operator anomaly
score in :mod:`posaudit.score.operators`, and the merchant typologies of
:mod:`posaudit.score.merchants`. Each of those modules registers its rules (and the
shared frames they read) with :mod:`posaudit.detect.registry` when it is imported.

The list lives here, above both packages, because it has to import every rule module: kept
in the registry, it made the registry import the modules that import it, and made detect/
reach up into score/. Whatever needs every rule (a run, a report, an evaluation) asks here;
a rule module needs only the registry.
"""

from __future__ import annotations

from types import ModuleType
from typing import Final

from posaudit.detect import ledger, logins, pins, refunds, sales
from posaudit.detect import privileges as privilege_rules
from posaudit.detect.registry import RULES, Rule
from posaudit.score import merchants, operators

# Importing a module registers its rules; naming them here is what makes the list whole.
RULE_MODULES: Final[tuple[ModuleType, ...]] = (
    logins,
    pins,
    refunds,
    operators,
    ledger,
    privilege_rules,
    sales,
    merchants,
)


def all_rules() -> dict[str, Rule]:
    """Every registered rule by name: the detection rules and the operator anomaly score."""
    return dict(RULES)
