"""Incremental runs: the same findings as a full run, no duplicates, nothing deleted."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from pipeline_kit import append_days, comparable, copy, findings, frame, run_here

from posaudit.detect import registry
from posaudit.detect.policy import load_policy
from posaudit.rules import all_rules
from posaudit.run import score as run_score
from posaudit.run.plan import FINGERPRINT_KEY, data_fingerprint
from posaudit.run.record import RunSummary
from posaudit.store import Store
from posaudit.store.catalogue import EVENT_TABLES
from tests.injected import add_invented_amounts, add_lockout_storm, add_merchant_typologies

RULES = sorted(name for name in all_rules() if load_policy().enabled(name))


def append_days_with_a_storm(path: Path) -> None:
    append_days(path)
    add_lockout_storm(path)


@pytest.fixture(scope="module")
def base(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample world with a lockout storm on its last day and the merchant typologies."""
    stormy = copy(sample_store, tmp_path_factory.mktemp("base") / "base.duckdb")
    add_lockout_storm(stormy)
    add_merchant_typologies(stormy)
    add_invented_amounts(stormy)
    return stormy


@pytest.fixture(scope="module")
def chain(base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The sample world audited as a schedule would: a full run, then a day and an incremental
    run, twice; and the same data audited once, in full, on a store that never ran."""
    folder = tmp_path_factory.mktemp("chain")
    scheduled = copy(base, folder / "scheduled.duckdb")
    runs = [run_here(scheduled)]
    for _ in range(2):
        append_days_with_a_storm(scheduled)
        runs.append(run_here(scheduled))
    once = copy(base, folder / "once.duckdb")
    append_days_with_a_storm(once)
    append_days_with_a_storm(once)
    return {"scheduled": scheduled, "runs": runs, "once": once, "full": run_here(once)}


def test_both_stores_hold_the_same_events(chain: dict[str, object]) -> None:
    for table in EVENT_TABLES:
        sql = f"SELECT * FROM {table} ORDER BY ALL"
        assert frame(chain["scheduled"], sql).equals(frame(chain["once"], sql)), table  # type: ignore[arg-type]


def test_the_scheduled_runs_were_incremental(chain: dict[str, object]) -> None:
    first, *later = chain["runs"]  # type: ignore[misc]
    assert first.mode == "full" and first.reason == "first run on this store"
    for summary in later:
        assert summary.mode == "incremental", summary.reason
        # some rules re-decided only recent findings and carried the older ones over
        assert len(summary.rules_over_all_data) < len(RULES)
        # a refund's sale comes through its link, so the per-refund rules read recent days only
        for name in ("refunds_without_sale", "refunds_over_sale", "late_refunds", "refund_bursts"):
            assert name not in summary.rules_over_all_data, name
        assert summary.counts.carried > 0
        # the score took the operator-days and models the run before kept
        assert "operator_anomaly_scores" not in summary.rules_over_all_data
    assert chain["full"].mode == "full"  # type: ignore[attr-defined]


def test_the_fingerprint_a_night_keeps_equals_one_counted_whole(
    chain: dict[str, object],
) -> None:
    """A night reads the count and sum of the settled event times only from the previous
    watermark's day on; what it keeps is what a count over the whole history gives."""
    night = chain["runs"][-1]  # type: ignore[index]
    assert night.mode == "incremental", night.reason
    store = Store.open(chain["scheduled"], read_only=True)  # type: ignore[arg-type]
    try:
        kept = json.loads(store.meta()[FINGERPRINT_KEY])
        whole = data_fingerprint(store, datetime.fromisoformat(kept["watermark"]))
    finally:
        store.close()
    assert kept["settled"] == whole["settled"]
    assert kept["events"] == whole["events"]


def test_nightly_runs_through_a_week_equal_one_full_run(sample_store: Path, tmp_path: Path) -> None:
    """Day by day to the end of a week: the score keeps last week's model while the week
    runs, fits the week's own model the night its Sunday arrives, and always agrees with a
    full run over the same data."""
    nightly = copy(sample_store, tmp_path / "nightly.duckdb")
    run_here(nightly)
    summaries = []
    for _ in range(6):  # Tuesday 2026-09-22 to Sunday 2026-09-27
        append_days(nightly)
        summaries.append(run_here(nightly))
    assert all("operator_anomaly_scores" not in s.rules_over_all_data for s in summaries)
    once = copy(nightly, tmp_path / "once.duckdb")
    assert run_here(once, full=True).mode == "full"
    assert comparable(findings(nightly)).equals(comparable(findings(once)))
    scores = "rule = 'operator_anomaly_scores' AND status = 'open'"
    week = findings(nightly, f"{scores} AND window_start >= TIMESTAMP '2026-09-21 00:00:00'")
    assert week.height > 0


@pytest.mark.parametrize("rule", RULES)
def test_incremental_findings_equal_a_full_run(chain: dict[str, object], rule: str) -> None:
    scheduled = comparable(findings(chain["scheduled"], f"status = 'open' AND rule = '{rule}'"))  # type: ignore[arg-type]
    once = comparable(findings(chain["once"], f"status = 'open' AND rule = '{rule}'"))  # type: ignore[arg-type]
    assert once.height > 0, f"{rule}: no findings to compare"
    keys = ["finding_id", "window_start", "window_end"]
    assert scheduled.select(keys).equals(once.select(keys)), (
        f"{rule}: only incremental "
        f"{scheduled.join(once, on=keys, how='anti').select(keys).to_dicts()[:3]}, "
        f"only full {once.join(scheduled, on=keys, how='anti').select(keys).to_dicts()[:3]}"
    )
    assert scheduled.equals(once), rule


def test_each_finding_names_its_first_and_last_run(chain: dict[str, object]) -> None:
    runs: list[RunSummary] = chain["runs"]  # type: ignore[assignment]
    found = findings(chain["scheduled"], "true")  # type: ignore[arg-type]
    open_now = found.filter(pl.col("status") == "open")
    assert set(open_now.get_column("run_id")) == {runs[-1].run_id}
    assert open_now.get_column("finding_id").is_unique().all()
    firsts = open_now.group_by("first_run_id").len()
    counts = dict(zip(firsts.get_column("first_run_id"), firsts.get_column("len"), strict=True))
    assert counts[runs[0].run_id] > 0
    for summary in runs[1:]:
        assert counts.get(summary.run_id, 0) == summary.new
    stored = frame(chain["scheduled"], "SELECT * FROM pipeline_runs ORDER BY run_id")  # type: ignore[arg-type]
    assert stored.get_column("mode").to_list() == ["full", "incremental", "incremental"]
    assert stored.get_column("findings_new").to_list() == [r.new for r in runs]
    assert stored.get_column("findings_seen").to_list() == [r.seen for r in runs]
    assert (stored.get_column("findings_total") == open_now.height).to_list()[-1]


def test_a_rerun_over_the_same_data_changes_nothing(
    chain: dict[str, object], tmp_path: Path
) -> None:
    store = copy(chain["scheduled"], tmp_path / "again.duckdb")  # type: ignore[arg-type]
    before = findings(store, "true")
    summary = run_here(store)
    assert summary.mode == "incremental" and summary.reason.startswith("no new data")
    assert (summary.new, summary.resolved, summary.counts.reopened) == (0, 0, 0)
    after = findings(store, "true")
    assert comparable(after).equals(comparable(before))
    assert after.select("finding_id", "first_run_id", "status").equals(
        before.select("finding_id", "first_run_id", "status")
    )
    assert set(after.filter(pl.col("status") == "open").get_column("run_id")) == {summary.run_id}


def test_findings_that_stop_appearing_are_resolved_then_reopened(
    chain: dict[str, object], tmp_path: Path
) -> None:
    store = copy(chain["scheduled"], tmp_path / "policy.duckdb")  # type: ignore[arg-type]
    bursts = findings(store, "rule = 'refund_bursts'")
    assert bursts.height > 0
    strict = tmp_path / "strict.toml"
    strict.write_text("[rules.refund_bursts]\nmin_refunds = 1000\n")
    resolving = run_here(store, policy=strict)
    assert resolving.mode == "full" and "policy changed" in resolving.reason
    assert resolving.resolved == bursts.height
    gone = findings(store, "rule = 'refund_bursts'")
    assert gone.height == bursts.height  # resolved, not deleted
    assert set(gone.get_column("status")) == {"resolved"}
    assert set(gone.get_column("resolved_run_id")) == {resolving.run_id}
    assert gone.get_column("run_id").equals(
        bursts.get_column("run_id")
    )  # the last run that saw them
    back = run_here(store)
    assert back.counts.reopened == bursts.height and back.new == 0
    again = findings(store, "rule = 'refund_bursts'")
    assert (
        set(again.get_column("status")) == {"open"}
        and again.get_column("resolved_run_id").is_null().all()
    )
    assert again.get_column("first_run_id").equals(bursts.get_column("first_run_id"))


def test_events_loaded_late_are_audited_from_their_day(
    chain: dict[str, object], tmp_path: Path
) -> None:
    """Events with times before the last watermark (a late load) move the incremental start
    back to their day, and the findings still equal a full run's."""
    store = copy(chain["scheduled"], tmp_path / "late.duckdb")  # type: ignore[arg-type]
    con = duckdb.connect(str(store))
    # a burst of wrong PINs on one operator, eleven days before the end, loaded now
    con.execute(
        "INSERT INTO login_events SELECT 'LATE' || lpad(CAST(i AS VARCHAR), 3, '0'), "
        "TIMESTAMP '2026-09-12 10:00:00' + INTERVAL (i * 20) SECOND, "
        "o.terminal_id, o.operator_no, o.operator_id, "
        "'wrong_pin' FROM range(30) r(i), (SELECT * FROM operators ORDER BY operator_id LIMIT 1) o"
    )
    con.close()
    fresh = copy(store, tmp_path / "fresh.duckdb")
    con = duckdb.connect(str(fresh))
    con.execute(
        "DELETE FROM findings; DELETE FROM pipeline_runs; "
        "DELETE FROM posaudit_meta WHERE key LIKE 'pipeline.%'"
    )
    con.close()
    late = run_here(store)
    assert late.mode == "incremental" and "from 2026-09-12 on" in late.reason
    assert run_here(fresh).mode == "full"
    assert comparable(findings(store)).equals(comparable(findings(fresh)))
    late_attack = findings(
        store,
        "rule = 'pin_brute_force' AND window_start >= TIMESTAMP '2026-09-12 10:00:00' "
        "AND window_start < TIMESTAMP '2026-09-12 10:01:00'",
    )
    assert late_attack.height == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            "UPDATE operators SET can_refund = NOT can_refund WHERE operator_id = $first",
            "'s can_refund changed with no event saying when since run-",
        ),
        (
            "UPDATE operators SET role = CASE WHEN role = 'admin' THEN 'clerk' ELSE 'admin' END "
            "WHERE operator_id = $first",
            "'s role changed",
        ),
        ("DELETE FROM operators WHERE operator_id = $first", " removed since run-"),
        (
            "UPDATE terminals SET lockout_threshold = lockout_threshold + 1 "
            "WHERE terminal_id = (SELECT min(terminal_id) FROM terminals)",
            "'s lockout_threshold changed",
        ),
        (
            "INSERT INTO operators SELECT * REPLACE ($first || 'x' AS operator_id) "
            "FROM operators WHERE operator_id = $first; "
            "UPDATE login_events SET operator_id = $first || 'x' WHERE event_id = "
            "(SELECT min(event_id) FROM login_events WHERE operator_id = $first)",
            "x added, named by earlier login_events",
        ),
    ],
    ids=["a right with no event", "a role", "an operator removed", "a terminal", "named earlier"],
)
def test_a_dimension_change_no_event_explains_means_a_full_run(
    chain: dict[str, object], tmp_path: Path, change: str, reason: str
) -> None:
    """A change to merchants, terminals or operators that the events do not date may change
    what the rules decided of any earlier event: the run is full, and says why."""
    store = copy(chain["scheduled"], tmp_path / "operators.duckdb")  # type: ignore[arg-type]
    con = duckdb.connect(str(store))
    first = con.execute("SELECT min(operator_id) FROM operators").fetchall()[0][0]
    for statement in change.split("; "):
        con.execute(statement, {"first": first} if "$first" in statement else None)
    con.close()
    summary = run_here(store)
    assert summary.mode == "full" and reason in summary.reason, summary.reason


def test_a_right_granted_again_means_a_full_run(chain: dict[str, object], tmp_path: Path) -> None:
    """A grant of a right the operator held already rewrites what its earlier refunds were
    judged by (the refund rule reads a grant as the right not held before it)."""
    store = copy(chain["scheduled"], tmp_path / "regrant.duckdb")  # type: ignore[arg-type]
    con = duckdb.connect(str(store))
    holder, last = con.execute(
        "SELECT (SELECT min(operator_id) FROM operators WHERE can_refund), max(ts) "
        "FROM transactions"
    ).fetchall()[0]
    con.execute(
        "INSERT INTO operator_events VALUES ('O9000001', $ts, $op, 'granted', 'refund', 'admin', "
        "NULL)",
        {"ts": last + timedelta(minutes=1), "op": holder},
    )
    con.close()
    summary = run_here(store)
    assert summary.mode == "full", summary.reason
    assert f"operator {holder} granted refund on" in summary.reason
    assert "which it held already" in summary.reason


def test_operators_hired_granted_and_deleted_by_their_events_keep_the_night_incremental(
    chain: dict[str, object], tmp_path: Path
) -> None:
    """A day that hires, grants and deletes, each with its event, is new data like any other:
    the night stays incremental and equals a full run."""
    nightly = copy(chain["scheduled"], tmp_path / "hired.duckdb")  # type: ignore[arg-type]
    con = duckdb.connect(str(nightly))
    last = con.execute("SELECT max(ts) FROM transactions").fetchall()[0][0]
    lacking, holding, kept = con.execute(
        "SELECT min(operator_id) FILTER (NOT can_refund AND role = 'clerk'), "
        "max(operator_id) FILTER (can_refund AND role = 'clerk'), "
        "max(operator_id) FILTER (disabled_at IS NULL AND NOT can_refund) FROM operators"
    ).fetchall()[0]
    at = [last + timedelta(minutes=m) for m in (1, 2, 3, 4)]
    con.execute(
        "INSERT INTO operators SELECT * REPLACE ($id AS operator_id, $at AS created_at) "
        "FROM operators WHERE operator_id = $like",
        {"id": lacking + "-new", "at": at[0], "like": lacking},
    )
    con.execute("UPDATE operators SET can_refund = true WHERE operator_id = $op", {"op": lacking})
    con.execute("UPDATE operators SET can_refund = false WHERE operator_id = $op", {"op": holding})
    con.execute(
        "UPDATE operators SET disabled_at = $at WHERE operator_id = $op", {"op": kept, "at": at[3]}
    )
    con.execute(
        "INSERT INTO operator_events VALUES "
        "('O9000001', $a0, $new, 'added', NULL, 'admin', NULL), "
        "('O9000002', $a1, $lacking, 'granted', 'refund', 'admin', NULL), "
        "('O9000003', $a2, $holding, 'revoked', 'refund', 'admin', NULL), "
        "('O9000004', $a3, $kept, 'deleted', NULL, 'admin', NULL)",
        {
            "a0": at[0],
            "a1": at[1],
            "a2": at[2],
            "a3": at[3],
            "new": lacking + "-new",
            "lacking": lacking,
            "holding": holding,
            "kept": kept,
        },
    )
    con.close()
    append_days(nightly)
    summary = run_here(nightly)
    assert summary.mode == "incremental", summary.reason
    assert "operators added or changed, each by its events" in summary.reason
    once = copy(nightly, tmp_path / "once.duckdb")
    assert run_here(once, full=True).mode == "full"
    assert comparable(findings(nightly)).equals(comparable(findings(once)))


@pytest.mark.parametrize(
    "mistake",
    ["score without the kept 28-day context", "sales not read through the refunds' links"],
)
def test_the_equality_check_can_fail(
    chain: dict[str, object],
    base: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mistake: str,
) -> None:
    """Runs that read less than the rules need differ from a full run, and the comparison sees
    it."""
    if mistake.startswith("score"):
        # the new days' 28-day sums counted from the new days alone
        kept_context = run_score.context_rows
        monkeypatch.setattr(
            run_score, "context_rows", lambda store, day: kept_context(store, day).clear()
        )
        name = "operator_anomaly_scores"
        lookback = registry.RULES[name].lookback
    else:
        # a refund's sale found only within a minute before it, not through original_txn_id
        name, lookback = "refunds_without_sale", timedelta(minutes=1)
        shared = registry.DERIVED_TABLES["approved_refunds"]
        monkeypatch.setitem(
            registry.DERIVED_TABLES, shared.name, dataclasses.replace(shared, linked=None)
        )
    monkeypatch.setitem(
        registry.RULES, name, dataclasses.replace(registry.RULES[name], lookback=lookback)
    )
    store = copy(base, tmp_path / "short.duckdb")
    run_here(store)
    append_days_with_a_storm(store)
    append_days_with_a_storm(store)
    assert run_here(store).mode == "incremental"
    assert not comparable(findings(store)).equals(comparable(findings(chain["once"])))  # type: ignore[arg-type]
