"""What a run keeps of what the code computes once for a store: the columns its rules read
and the PIN exclusion list, reused only by the same code, policy, key and operators."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from posaudit.detect.policy import load_policy
from posaudit.pins import PIN_KEY_ENV, exclusion_list, pin_digester
from posaudit.rules import all_rules
from posaudit.run import kept
from posaudit.run.inputs import empty_derived_inputs, kept_exclusion
from posaudit.run.local import run_pipeline
from posaudit.run.read import ColumnsUsed, columns_to_read, store_columns_used
from posaudit.store import Store


@dataclass(frozen=True)
class Kept:
    """What a run finds kept: the columns its rules read and the PIN exclusion list (None:
    not kept for this code, policy, key and operators)."""

    columns: ColumnsUsed | None
    exclusion: pl.DataFrame | None


@pytest.fixture
def audited(sample_store: Path, tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "audited.duckdb"
    shutil.copy(sample_store, path)
    store = Store.open(path)
    run_pipeline(store, load_policy())
    yield store
    store.close()


def _made(store: Store, policy_text: str | None = None, tmp: Path | None = None) -> Kept:
    policy = load_policy()
    if policy_text is not None and tmp is not None:
        (tmp / "policy.toml").write_text(policy_text)
        policy = load_policy(tmp / "policy.toml")
    rules = [r for r in all_rules().values() if policy.enabled(r.name)]
    operators = store.read("operators")
    columns = columns_to_read(store, rules, policy)
    exclusion = kept_exclusion(store, rules, operators, digester=pin_digester())
    return Kept(columns.columns if columns.was_kept else None, exclusion.rows)


def test_a_run_keeps_the_exclusion_list_it_built_and_the_next_finds_it(audited: Store) -> None:
    made = _made(audited)
    assert made.exclusion is not None
    numbers = audited.read("operators").get_column("operator_no").cast(pl.String).to_list()
    built = exclusion_list(digester=pin_digester(), operator_nos=numbers)
    # what the run finds kept: the list's rows for every digest the PIN events hold
    held = audited.frame("SELECT DISTINCT pin_digest FROM pin_events")
    weak_held = built.join(held, on="pin_digest")
    assert weak_held.height > 100
    order = ["pin_digest", "weakness_class", "operator_no"]
    assert_frame_equal(made.exclusion.sort(order), weak_held.sort(order))


def test_the_kept_exclusion_list_says_nothing_without_the_key(audited: Store) -> None:
    """Sealed under the key: no digest of the store, weak or not, and no class in the clear."""
    stored = audited.frame(f"SELECT * FROM {kept.EXCLUSION_TABLE}")
    assert stored.columns == ["tag", "class_code", "number_code"]
    assert stored.get_column("tag").is_sorted()
    digests = set(audited.frame("SELECT pin_digest FROM pin_events").get_column("pin_digest"))
    text = " ".join(stored.get_column("tag"))
    assert not any(d[:32] in text for d in digests)
    # the class codes are masked per row: about as many distinct as a byte allows
    assert stored.get_column("class_code").n_unique() > 200


def test_another_pin_key_finds_no_exclusion_list(
    audited: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PIN_KEY_ENV, "another deployment's key, 32 bytes")
    assert pin_digester().fingerprint != audited.meta()["pin_key_fingerprint"]
    assert _made(audited).exclusion is None


def test_the_kept_columns_are_the_planned_ones_and_another_policy_plans_again(
    audited: Store, tmp_path: Path
) -> None:
    made = _made(audited)
    policy = load_policy()
    rules = [r for r in all_rules().values() if policy.enabled(r.name)]
    empty = empty_derived_inputs(rules)
    planned = store_columns_used(audited, rules, policy, empty)
    assert made.columns == planned
    other = _made(audited, "[rules.weak_pins]\nenabled = false\n", tmp_path)
    assert other.columns is None and other.exclusion is None  # no rule asks for the list
    stricter = _made(audited, "[rules.late_refunds]\nrefund_window_days = 60\n", tmp_path)
    assert stricter.columns is None and stricter.exclusion is not None


def test_other_code_finds_nothing_kept(audited: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept, "code_digest", lambda: "other code")
    made = _made(audited)
    assert made.columns is None and made.exclusion is None


def test_a_run_of_other_code_keeps_its_own_exclusion_list(
    audited: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade, the first run replaces the list an earlier code kept, and the next
    run finds it."""
    monkeypatch.setattr(kept, "code_digest", lambda: "other code")
    assert _made(audited).exclusion is None
    run_pipeline(audited, load_policy())
    assert _made(audited).exclusion is not None
