"""What the runner gives the rules beside the store's tables.

Three inputs no table holds: the PIN exclusion list (the keyed digests of every weak
candidate PIN, which only a holder of the PIN key can make), the digests of the acquirer's
default PINs, and the data window. A rule names them among its inputs like any table
(:data:`posaudit.detect.registry.DERIVED_INPUTS`). The exclusion list costs the same whatever
the new data, so a run keeps it, sealed under the PIN key, for the next run with the same key
and operators (:mod:`posaudit.run.kept`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import polars as pl

from posaudit.detect.registry import DERIVED_INPUTS, Rule
from posaudit.pins import COMMON_DEFAULT_PINS, PinDigester, exclusion_list
from posaudit.run.kept import built_for, keep_exclusion_list, kept_exclusion_list
from posaudit.store import Store

# The acquirer's factory defaults for administrator PINs (public knowledge: vendor manuals).
ACQUIRER_DEFAULT_PINS: Final = ("000000", "123456")

# What each runner-supplied input looks like.
DERIVED_INPUT_SCHEMAS: Final = {
    "weak_pin_digests": pl.Schema(
        {"pin_digest": pl.String, "weakness_class": pl.String, "operator_no": pl.String}
    ),
    "default_pin_digests": pl.Schema({"pin_digest": pl.String}),
    "data_window": pl.Schema({"data_from": pl.Datetime("us"), "data_to": pl.Datetime("us")}),
    "common_default_pin_digests": pl.Schema(
        {"pin_digest": pl.String, "operator_no": pl.String, "family": pl.String}
    ),
}


def derived_inputs(
    rules: list[Rule],
    operators: pl.DataFrame,
    *,
    window: tuple[datetime, datetime],
    digester: PinDigester,
    exclusion: pl.DataFrame | None = None,
) -> dict[str, pl.LazyFrame]:
    """The runner-supplied inputs the rules ask for: exclusion list, default PINs, data window.

    ``exclusion``: the exclusion list for ``digester``'s key and these operators, when
    already built.
    """
    wanted = {name for r in rules for name in r.inputs} & DERIVED_INPUTS
    out: dict[str, pl.LazyFrame] = {}
    if "weak_pin_digests" in wanted:
        if exclusion is None:
            exclusion = exclusion_list(digester=digester, operator_nos=operator_numbers(operators))
        out["weak_pin_digests"] = exclusion.lazy()
    if "default_pin_digests" in wanted:
        digests = digester.digests(pl.Series(ACQUIRER_DEFAULT_PINS, dtype=pl.String))
        out["default_pin_digests"] = pl.LazyFrame({"pin_digest": digests})
    if "common_default_pin_digests" in wanted:
        # by operator number and terminal family (posaudit.pins.COMMON_DEFAULT_PINS)
        numbers, families, pins = zip(*COMMON_DEFAULT_PINS, strict=True)
        out["common_default_pin_digests"] = pl.LazyFrame(
            {
                "pin_digest": digester.digests(pl.Series(pins, dtype=pl.String)),
                "operator_no": pl.Series(numbers, dtype=pl.String),
                "family": pl.Series(families, dtype=pl.String),
            }
        )
    if "data_window" in wanted:
        out["data_window"] = pl.LazyFrame({"data_from": [window[0]], "data_to": [window[1]]})
    return {
        name: frame.cast(dict(DERIVED_INPUT_SCHEMAS[name]))  # type: ignore[arg-type]
        for name, frame in out.items()
    }


def operator_numbers(operators: pl.DataFrame) -> list[str]:
    return sorted(operators.get_column("operator_no").drop_nulls().unique().cast(pl.String))


def empty_derived_inputs(rules: list[Rule]) -> dict[str, pl.LazyFrame]:
    """The derived inputs the rules ask for, empty: enough to plan what the rules read."""
    wanted = {name for r in rules for name in r.inputs} & DERIVED_INPUTS
    return {name: pl.LazyFrame(schema=DERIVED_INPUT_SCHEMAS[name]) for name in wanted}


@dataclass(frozen=True)
class KeptExclusion:
    """The PIN exclusion list as an earlier run kept it for this key and these operators
    (``rows``: None when none is kept for them), and the digest to keep it under."""

    kept_for: str
    rows: pl.DataFrame | None
    digester: PinDigester

    def keep(self, store: Store, derived: dict[str, pl.LazyFrame]) -> None:
        """Keep the list a run built, when none was kept (inside the run's transaction)."""
        if self.rows is None and "weak_pin_digests" in derived:
            built = derived["weak_pin_digests"].collect()
            keep_exclusion_list(store, self.kept_for, built, digester=self.digester)


def kept_exclusion(
    store: Store,
    rules: list[Rule],
    operators: pl.DataFrame,
    *,
    digester: PinDigester,
    only: frozenset[str] | None = None,
) -> KeptExclusion:
    """The exclusion list kept for ``digester``'s key and ``operators``, for the PIN digests
    the store's PIN events hold (of the operators ``only`` names, when the rules asking for
    it re-decide only those), when a rule asks for it."""
    kept_for = built_for(digester.fingerprint, *operator_numbers(operators))
    if not any("weak_pin_digests" in r.inputs for r in rules):
        return KeptExclusion(kept_for, None, digester)
    if only is None:
        digests = store.frame("SELECT DISTINCT pin_digest FROM pin_events")
    else:
        digests = store.frame(
            "SELECT DISTINCT pin_digest FROM pin_events WHERE list_contains($ids, operator_id)",
            params={"ids": sorted(only)},
        )
    digests = digests.get_column("pin_digest")
    kept = kept_exclusion_list(store, kept_for, digester=digester, digests=digests)
    return KeptExclusion(kept_for, kept, digester)
