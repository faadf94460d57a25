"""The auditor's classics: the standard tests an auditor runs on any ledger (docs/classics.md).

Each reads the store, simulated or ingested, and never writes to it.
"""

from __future__ import annotations

from typing import Final, Literal

# Who a classic may test or total apart: each names its column in the transactions.
Entity = Literal["merchant", "terminal", "operator"]
ENTITIES: Final[tuple[Entity, ...]] = ("merchant", "terminal", "operator")
ENTITY_COLUMN: Final[dict[Entity, str]] = {
    "merchant": "merchant_id",
    "terminal": "terminal_id",
    "operator": "operator_id",
}
