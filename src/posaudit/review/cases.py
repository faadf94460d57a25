"""Cases: a finding's entity (an operator, a terminal, a merchant...) holds one case, made of
every finding that names it.

A case needs no table of its own: its id says its entity (``case-operator-T000011-02``), its
findings are those of that entity, and its state is its latest review in the trail (a review
with a ``case_id`` and no ``finding_id``). A case never reviewed is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from posaudit.review.values import ReviewError
from posaudit.store import Store

CASE_PREFIX: Final = "case-"
# The entity types a finding may name (schema.sql's entity_type_t).
ENTITY_TYPES: Final = ("terminal", "operator", "merchant", "transaction", "card")


@dataclass(frozen=True)
class Entity:
    """What a case is about."""

    entity_type: str
    entity_id: str

    @property
    def case_id(self) -> str:
        return f"{CASE_PREFIX}{self.entity_type}-{self.entity_id}"


def is_case_id(target: str) -> bool:
    return target.startswith(CASE_PREFIX)


def case_entity(case_id: str) -> Entity:
    """The entity of a case id, or ReviewError when the id cannot be one."""
    kind, _, entity_id = case_id.removeprefix(CASE_PREFIX).partition("-")
    if not is_case_id(case_id) or kind not in ENTITY_TYPES or not entity_id:
        msg = (
            f"unknown case {case_id!r}: a case id is case-<entity type>-<entity id>, "
            f"the entity type one of {', '.join(ENTITY_TYPES)}"
        )
        raise ReviewError(msg)
    return Entity(kind, entity_id)


def case_sql(alias: str = "f") -> str:
    """The SQL of a finding's case id, over ``findings`` as ``alias``."""
    return f"'{CASE_PREFIX}' || CAST({alias}.entity_type AS VARCHAR) || '-' || {alias}.entity_id"


def case_findings(store: Store, case_id: str) -> list[str]:
    """The ids of the case's findings; ReviewError when it has none (no such case)."""
    entity = case_entity(case_id)
    rows = store.query(
        "SELECT finding_id FROM findings WHERE CAST(entity_type AS VARCHAR) = ? "
        "AND entity_id = ? ORDER BY finding_id",
        [entity.entity_type, entity.entity_id],
    )
    if not rows:
        msg = (
            f"unknown case {case_id!r}: no finding in {store.path} names that {entity.entity_type}"
        )
        raise ReviewError(msg)
    return [str(r[0]) for r in rows]
