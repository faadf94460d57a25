"""The audit policy: every rule's thresholds, from default_policy.toml and a user's file."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from posaudit.config import ConfigError, merge_settings, parse_toml, read_text_file

# Keys naming a span of time or a minimum count: zero would make the rule meaningless.
_POSITIVE_SUFFIXES = ("_minutes", "_hours", "_days")
_POSITIVE_PREFIXES = ("min_", "max_")
# Counts of the anomaly score's model: zero trees or a sample of zero days scores nothing; a
# PIN history of none compares with nothing, and a round unit of 0 fen divides by zero.
_POSITIVE_KEYS = frozenset({"n_estimators", "fit_rows", "history_size", "round_unit_fen"})
_SHARE_KEYS = frozenset({"top_fraction", "min_anomaly_score", "lead_anomaly_score"})
# Days a finding may wait for an analyst's decision when a run's policy does not say (a run
# recorded before the policy had a [review] table): the default policy's value.
DEFAULT_DEADLINE_DAYS = 14


class PolicyError(ConfigError):
    """A policy file that cannot be used; the message is one line for the user."""


def default_policy_text() -> str:
    return files("posaudit.detect").joinpath("default_policy.toml").read_text("utf-8")


@dataclass(frozen=True)
class Policy:
    settings: dict[str, Any]
    text: str

    @property
    def hash(self) -> str:
        """SHA-256 of the effective settings (not of the file's formatting)."""
        canonical = json.dumps(self.settings, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def enabled(self, rule: str) -> bool:
        return bool(self.settings["rules"].get(rule, {}).get("enabled", True))

    @property
    def review_deadline_days(self) -> int:
        """Days a finding may wait for an analyst's decision before it is overdue."""
        return review_deadline_days(self.settings)

    def parameters(self, rule: str) -> dict[str, Any]:
        return {k: v for k, v in self.settings["rules"].get(rule, {}).items() if k != "enabled"}


def review_deadline_days(settings: dict[str, Any]) -> int:
    """``[review] deadline_days`` of a policy's settings (the default when it has none)."""
    return int(settings.get("review", {}).get("deadline_days", DEFAULT_DEADLINE_DAYS))


def _check(settings: dict[str, Any], source: str) -> None:
    deadline = settings.get("review", {}).get("deadline_days", DEFAULT_DEADLINE_DAYS)
    if deadline <= 0:
        msg = f"{source}: 'review.deadline_days' must be positive (got {deadline})"
        raise PolicyError(msg)
    for rule, params in settings["rules"].items():
        for key, value in params.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            positive = (
                key.endswith(_POSITIVE_SUFFIXES)
                or key.startswith(_POSITIVE_PREFIXES)
                or key in _POSITIVE_KEYS
            )
            if positive and value <= 0:
                msg = f"{source}: 'rules.{rule}.{key}' must be positive (got {value})"
                raise PolicyError(msg)


def load_policy(path: Path | None = None) -> Policy:
    """The default policy overridden by ``path``; raises PolicyError with one clear line."""
    if path is None:
        default_text = default_policy_text()
        return Policy(settings=tomllib.loads(default_text), text=default_text)
    text = read_text_file(path, what="policy", error=PolicyError)
    return policy_from_text(text, source=str(path))


def policy_from_text(text: str, *, source: str) -> Policy:
    """The default policy overridden by the TOML ``text`` (a policy file's, or the one a run
    recorded); raises PolicyError with one clear line naming ``source``."""
    override = parse_toml(text, source=source, error=PolicyError)
    merged = tomllib.loads(default_policy_text())
    try:
        merge_settings(merged, override, source=source, share_keys=_SHARE_KEYS)
    except ConfigError as exc:
        raise PolicyError(str(exc)) from None
    _check(merged, source)
    return Policy(settings=merged, text=text)
