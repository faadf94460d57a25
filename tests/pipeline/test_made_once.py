"""What a run keeps of what the code computes once for a store: the columns its rules read
and the PIN exclusion list, reused only by the same code, policy, key and operators."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from posaudit import kept, pipeline
from posaudit.detect.policy import load_policy
from posaudit.detect.registry import all_rules
from posaudit.pins import PIN_KEY_ENV, exclusion_list, key_fingerprint, pin_key
from posaudit.store import Store


@pytest.fixture
def audited(sample_store: Path, tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "audited.duckdb"
    shutil.copy(sample_store, path)
    store = Store.open(path)
    pipeline.run_pipeline(store, load_policy())
    yield store
    store.close()


def _made(
    store: Store, policy_text: str | None = None, tmp: Path | None = None
) -> pipeline.MadeOnce:
    policy = load_policy()
    if policy_text is not None and tmp is not None:
        (tmp / "policy.toml").write_text(policy_text)
        policy = load_policy(tmp / "policy.toml")
    rules = [r for r in all_rules().values() if policy.enabled(r.name)]
    return pipeline._made_once(store, rules, policy, store.read("operators"))


def test_a_run_keeps_the_exclusion_list_it_built_and_the_next_finds_it(audited: Store) -> None:
    made = _made(audited)
    assert made.exclusion is not None
    numbers = audited.read("operators").get_column("operator_no").cast(pl.String).to_list()
    built = exclusion_list(key=pin_key(), operator_nos=numbers)
    assert_frame_equal(made.exclusion.sort("pin_digest"), built.sort("pin_digest"))
    # kept in digest order: nothing in the table says which PIN a row stands for
    stored = audited.frame(f"SELECT pin_digest FROM {kept.EXCLUSION_TABLE}")
    assert stored.get_column("pin_digest").is_sorted()


def test_another_pin_key_finds_no_exclusion_list(
    audited: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PIN_KEY_ENV, "another deployment's key")
    assert key_fingerprint(pin_key()) != audited.meta()["pin_key_fingerprint"]
    assert _made(audited).exclusion is None


def test_the_kept_columns_are_the_planned_ones_and_another_policy_plans_again(
    audited: Store, tmp_path: Path
) -> None:
    made = _made(audited)
    policy = load_policy()
    rules = [r for r in all_rules().values() if policy.enabled(r.name)]
    empty = pipeline.empty_derived_inputs(rules)
    planned = pipeline.store_columns_used(audited, rules, policy, empty)
    assert made.columns == planned
    other = _made(audited, "[rules.weak_pins]\nenabled = false\n", tmp_path)
    assert other.columns is None and other.exclusion is None  # no rule asks for the list
    stricter = _made(audited, "[rules.late_refunds]\nrefund_window_days = 60\n", tmp_path)
    assert stricter.columns is None and stricter.exclusion is not None


def test_other_code_finds_nothing_kept(audited: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept, "code_digest", lambda: "other code")
    made = _made(audited)
    assert made.columns is None and made.exclusion is None
