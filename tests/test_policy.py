"""The policy file: defaults that match the rules, and bad files refused in one line."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from posaudit.detect.policy import PolicyError, default_policy_text, load_policy
from posaudit.rules import all_rules


def test_default_policy_lists_every_rule_with_the_functions_defaults() -> None:
    settings = tomllib.loads(default_policy_text())["rules"]
    rules = all_rules()
    assert set(settings) == set(rules)
    for name, rule in rules.items():
        params = {k: v for k, v in settings[name].items() if k != "enabled"}
        assert params == rule.parameters, name


def test_policy_hash_follows_the_settings(tmp_path: Path) -> None:
    default = load_policy()
    same = tmp_path / "same.toml"
    same.write_text("[rules.stale_pins]\nmax_age_days = 90\n")
    changed = tmp_path / "changed.toml"
    changed.write_text("[rules.stale_pins]\nmax_age_days = 60\n")
    assert load_policy(same).hash == default.hash
    assert load_policy(changed).hash != default.hash
    assert load_policy(changed).parameters("stale_pins") == {"max_age_days": 60}


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[rules.stale_pins]\nmax_age_dayz = 60\n", "unknown key 'rules.stale_pins.max_age_dayz'"),
        ("[rules.no_such_rule]\nx = 1\n", "unknown key 'rules.no_such_rule'"),
        (
            '[rules.pin_brute_force]\nmin_failures = "many"\n',
            "'rules.pin_brute_force.min_failures' must be int",
        ),
        ("[rules.refund_bursts]\nwindow_minutes = -60\n", "must not be negative"),
        ("[rules.refund_bursts]\nwindow_minutes = 0\n", "must be positive"),
        ("[rules.operator_anomaly_scores]\ntop_fraction = 2.0\n", "is a share"),
        ("[rules.operator_anomaly_scores]\nfit_rows = 0\n", "must be positive"),
        ("[rules.stale_pins]\nenabled = 1\n", "must be bool"),
        ("[rules\n", "not valid TOML"),
        ("[review]\ndeadline_days = 0\n", "'review.deadline_days' must be positive"),
        ("[review]\ndeadline_days = -1\n", "'review.deadline_days' must not be negative"),
        ("[review]\ndeadline_days = 1.5\n", "'review.deadline_days' must be int"),
        ("[review]\ndeadline_days = false\n", "'review.deadline_days' must be int"),
    ],
)
def test_bad_policies_are_refused(tmp_path: Path, content: str, needle: str) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text(content)
    pattern = needle.replace("(", r"\(").replace("[", r"\[").replace(".", r"\.")
    with pytest.raises(PolicyError, match=pattern):
        load_policy(policy)


def test_the_review_deadline_is_the_policys_or_fourteen_days(tmp_path: Path) -> None:
    assert load_policy().review_deadline_days == 14
    week = tmp_path / "week.toml"
    week.write_text("[review]\ndeadline_days = 7\n")
    assert load_policy(week).review_deadline_days == 7
    assert load_policy(week).hash != load_policy().hash
