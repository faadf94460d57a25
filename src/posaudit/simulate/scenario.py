"""Scenario files: the built-in default, a user's overrides, and their validation."""

from __future__ import annotations

import copy
import json
import math
import re
import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from posaudit.config import ConfigError, merge_settings, parse_toml, read_text_file

ATTACK_SCENARIOS: Final = (
    "pin_brute_force",
    "operator_enumeration",
    "credential_sharing",
    "takeover_refund",
    "refund_other_card",
    "refund_without_sale",
    "refund_over_sale",
    "refund_without_permission",
    "late_refund",
    "off_hours_refunds",
    "refund_burst",
    "round_amount_refunds",
    "friendly_refunds",
    # fees and completeness (simulate/ledger_fraud.py)
    "duplicate_transactions",
    "deleted_records",
    "fee_misapplied",
    # privilege audit (simulate/privileges.py)
    "privilege_grant_abuse",
    "reset_then_refund",
    # sales patterns (simulate/sales_fraud.py)
    "split_sales",
    "card_testing",
    "void_abuse",
    # merchant typologies (simulate/merchant_fraud.py)
    "cash_out_sales",
    "category_misuse",
    "dormant_surge",
    "invented_amounts",
)
CONDITION_SCENARIOS: Final = (
    "weak_pin",
    "default_pin",
    "shared_pin",
    "reused_pin",
    "stale_pin",
    "lockout_not_enforced",
    # privilege audit (simulate/privileges.py)
    "manage_and_refund",
    "ghost_operator",
    "common_default_pin",
)
SCENARIOS: Final = ATTACK_SCENARIOS + CONDITION_SCENARIOS
# Innocent look-alikes (docs/scenarios.md), labelled ``benign:<kind>`` in ground truth.
LOOKALIKE_KINDS: Final = (
    "return_wave",
    "replaced_card",
    "closing_refunds",
    "shift_cover",
    "forgetful_operator",
    "hotel_deposits",
    "new_clerk",
    "seasonal_peak",
    # fees and completeness (simulate/ledger_fraud.py)
    "retry_after_decline",
    "trace_wrap",
    "terminal_reinit",
    "debit_cap_purchases",
    # privilege audit (simulate/privileges.py)
    "promotion",
    "staff_turnover",
    # sales patterns (simulate/sales_fraud.py)
    "second_purchase",
    "issuer_outage",
    "closing_corrections",
    # merchant typologies (simulate/merchant_fraud.py): per 1,000 merchants or terminals
    "bulk_buyer",
    "mixed_store",
    "reopening",
)
BENIGN_PREFIX: Final = "benign:"
# Keys whose value is a share and so lies in 0..1.
_SHARE_KEYS: Final = frozenset(
    {
        "typo_share",
        "unknown_operator_share",
        "flaky_terminal_share",
        "flaky_day_share",
        "void_share",
        "roaming_share",
        "transfer_merchant_share",
        "evasion",
    }
)
MAX_MERCHANTS: Final = 1_000_000
MAX_DAYS: Final = 3_650
# The simulated days lie in 2000-2099. A world's terminals were installed up to about four
# years before its first day and the audit's windows reach back from there, so a first day
# near 0001-01-01 leaves dates Python cannot hold, and one near 9999-12-31 runs off the end;
# no POS data this tool audits (EMV cards, QR payments) is older than 2000.
FIRST_START: Final = date(2000, 1, 1)
LAST_DAY: Final = date(2099, 12, 31)
# A seed is kept in the store as a BIGINT.
MAX_SEED: Final = 2**63 - 1
_ISO_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class ScenarioError(ConfigError):
    """A scenario file or value that cannot be used; the message is one line for the user."""


def default_scenario_text() -> str:
    return files("posaudit.simulate").joinpath("default_scenario.toml").read_text("utf-8")


def _merge(base: dict[str, Any], override: dict[str, Any], where: str, source: str) -> None:
    merge_settings(base, override, source=source, share_keys=_SHARE_KEYS, where=where)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: world size, behaviour knobs, and each scenario's switch and rate."""

    settings: dict[str, Any]
    text: str

    @property
    def merchants(self) -> int:
        return int(self.settings["world"]["merchants"])

    @property
    def days(self) -> int:
        return int(self.settings["world"]["days"])

    @property
    def start(self) -> date:
        return date.fromisoformat(self.settings["world"]["start"])

    @property
    def behaviour(self) -> dict[str, Any]:
        return dict(self.settings["behaviour"])

    def evasion(self, scenario: str) -> float:
        """How hard the attack scenario hides from the default policy: 0 (not at all) .. 1."""
        return float(self.settings["scenarios"][scenario].get("evasion", 0.0))

    def lookalike_rate(self, kind: str) -> float:
        """The look-alike kind's rate per 1,000 merchant-days; 0 while look-alikes are off."""
        table = self.settings["lookalikes"]
        return float(table[kind]) if table["enabled"] else 0.0

    def rate(self, scenario: str, *, fraud: bool = True) -> float:
        """The scenario's configured rate, 0 when it is off (attacks are off without fraud)."""
        spec = self.settings["scenarios"][scenario]
        if not spec["enabled"] or (scenario in ATTACK_SCENARIOS and not fraud):
            return 0.0
        return float(spec["rate"])


def check_seed(seed: int) -> None:
    """Raise ScenarioError unless ``seed`` is a whole number the store can keep (0..2**63-1)."""
    if not 0 <= seed <= MAX_SEED:
        msg = f"--seed must be between 0 and {MAX_SEED} (2**63-1), got {seed}"
        raise ScenarioError(msg)


def check_days(start: date, first_day: int, days: int, *, source: str) -> None:
    """Raise ScenarioError when days ``first_day`` .. ``first_day + days - 1`` run past 2099."""
    last = start + timedelta(days=first_day + days - 1)
    if last > LAST_DAY:
        msg = (
            f"{source}: the last simulated day would be {last.isoformat()}: simulated days lie "
            f"between {FIRST_START} and {LAST_DAY}"
        )
        raise ScenarioError(msg)


def _check(settings: dict[str, Any], source: str) -> None:
    world = settings["world"]
    try:
        if not _ISO_DATE.fullmatch(world["start"]):
            raise ValueError
        start = date.fromisoformat(world["start"])
    except ValueError:
        msg = f"{source}: 'world.start' is not a date (YYYY-MM-DD): {world['start']!r}"
        raise ScenarioError(msg) from None
    if not FIRST_START <= start <= LAST_DAY:
        msg = (
            f"{source}: 'world.start' must lie between {FIRST_START} and {LAST_DAY} "
            f"(got {start}): terminals are installed years before the first day, "
            "and POS data this old does not exist"
        )
        raise ScenarioError(msg)
    if not 1 <= world["merchants"] <= MAX_MERCHANTS:
        msg = (
            f"{source}: 'world.merchants' must be between 1 and {MAX_MERCHANTS:,} "
            f"(got {world['merchants']})"
        )
        raise ScenarioError(msg)
    if not 1 <= world["days"] <= MAX_DAYS:
        msg = f"{source}: 'world.days' must be between 1 and {MAX_DAYS} (got {world['days']})"
        raise ScenarioError(msg)
    for name in CONDITION_SCENARIOS:
        rate = settings["scenarios"][name]["rate"]
        if rate > 1:
            msg = f"{source}: 'scenarios.{name}.rate' is a share between 0 and 1 (got {rate})"
            raise ScenarioError(msg)
    check_days(start, 0, world["days"], source=source)


def load_scenario(
    path: Path | None = None,
    *,
    merchants: int | None = None,
    days: int | None = None,
    start: str | None = None,
    evasion: float | None = None,
    lookalikes: bool | None = None,
) -> Scenario:
    """The default scenario, overridden by ``path`` and then by the given values.

    Raises :class:`ScenarioError` with one line naming the problem: an unreadable file,
    TOML syntax, an unknown key, a value of the wrong type, a negative count or rate.
    """
    if path is None:
        return scenario_from_text(
            None,
            merchants=merchants,
            days=days,
            start=start,
            evasion=evasion,
            lookalikes=lookalikes,
        )
    text = read_text_file(path, what="scenario", error=ScenarioError)
    return scenario_from_text(
        text,
        merchants=merchants,
        days=days,
        start=start,
        evasion=evasion,
        lookalikes=lookalikes,
        source=str(path),
    )


def parse_evasion(value: str) -> float:
    """``--evasion``'s value as a number in 0..1; raises ScenarioError with one line."""
    try:
        level = float(value)
    except ValueError:
        level = math.nan
    if not 0 <= level <= 1:  # nan fails too
        msg = f"--evasion must be a number between 0 and 1, got {value!r}"
        raise ScenarioError(msg)
    return level


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def settings_text(settings: dict[str, Any]) -> str:
    """Every setting as a scenario file (scalars in tables and subtables)."""
    lines: list[str] = []

    def table(name: str, values: dict[str, Any]) -> None:
        scalars = {k: v for k, v in values.items() if not isinstance(v, dict)}
        if scalars:
            lines.append(f"[{name}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in scalars.items())
            lines.append("")
        for key, value in values.items():
            if isinstance(value, dict):
                table(f"{name}.{key}", value)

    for name, values in settings.items():
        table(name, values)
    return "\n".join(lines)


def scenario_from_text(
    text: str | None,
    *,
    merchants: int | None = None,
    days: int | None = None,
    start: str | None = None,
    evasion: float | None = None,
    lookalikes: bool | None = None,
    source: str = "scenario",
) -> Scenario:
    """A scenario from TOML text over the default (``None``: the default alone).

    ``evasion`` (``--evasion``) sets every attack scenario's evasion level, over the file's;
    ``lookalikes`` (``--lookalikes`` / ``--no-lookalikes``) switches the innocent look-alikes
    on or off, over the file's ``[lookalikes] enabled``.
    """
    default_text = default_scenario_text()
    settings = tomllib.loads(default_text)
    # every attack scenario may name its evasion level; the default file leaves it out so that
    # the default world, and the scenario text its store keeps, stay what they were
    for name in ATTACK_SCENARIOS:
        settings["scenarios"][name].setdefault("evasion", 0.0)
    if text is not None and text != default_text:
        override = parse_toml(text, source=source, error=ScenarioError)
        _merge(settings, override, "", source)
    cli: dict[str, Any] = {}
    if merchants is not None:
        cli["merchants"] = merchants
    if days is not None:
        cli["days"] = days
    if start is not None:
        cli["start"] = start
    if cli:
        _merge(settings, {"world": cli}, "", "command line")
    _check(settings, source)
    kept = text if text is not None else default_text
    if evasion is not None and any(
        settings["scenarios"][name]["evasion"] != evasion for name in ATTACK_SCENARIOS
    ):
        for name in ATTACK_SCENARIOS:
            settings["scenarios"][name]["evasion"] = float(evasion)
        kept = settings_text(settings)  # the store keeps the level, for --append
    if lookalikes is not None and settings["lookalikes"]["enabled"] != lookalikes:
        settings["lookalikes"]["enabled"] = bool(lookalikes)
        kept = settings_text(settings)  # the store keeps the switch, for --append
    return Scenario(settings=copy.deepcopy(settings), text=kept)
