"""Determinism, appending, prevalence across sizes, and no plaintext PIN anywhere."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from posaudit.pins import DEMO_PIN_KEY, pin_digest
from posaudit.simulate.engine import _pin_timeline, _world_for, simulate, world_pins
from posaudit.simulate.pinmodel import PinTimeline, build_pin_timeline, pin_probabilities
from posaudit.simulate.scenario import ATTACK_SCENARIOS, load_scenario
from posaudit.simulate.world import day_start_us
from posaudit.store import Store
from posaudit.store.catalogue import DIMENSION_TABLES, WORLD_TABLES, key_column
from tests.conftest import SAMPLE_DAYS, SAMPLE_MERCHANTS, SAMPLE_SEED, build_store
from tests.pin_leaks import pins_in_folder, pins_in_store, pins_in_text

ORDER = {table: key_column(table) for table in WORLD_TABLES}


def _tables(path: Path) -> dict[str, pl.DataFrame]:
    store = Store.open(path, read_only=True)
    try:
        return {t: store.frame(f"SELECT * FROM {t} ORDER BY {key}") for t, key in ORDER.items()}
    finally:
        store.close()


def test_same_seed_same_tables(tmp_path: Path) -> None:
    a, b, c = (tmp_path / f"{n}.duckdb" for n in "abc")
    for path in (a, b):
        build_store(path, merchants=8, days=5, seed=3)
    build_store(c, merchants=8, days=5, seed=4)
    first, second, other = _tables(a), _tables(b), _tables(c)
    for table in ORDER:
        assert first[table].equals(second[table]), table
    assert not first["transactions"].equals(other["transactions"])


def test_same_seed_same_parquet_bytes(tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.duckdb"
        build_store(path, merchants=5, days=3, seed=9)
        store = Store.open(path, read_only=True)
        folder = tmp_path / f"parquet-{name}"
        store.export_parquet(folder)
        store.close()
        files = sorted(p.relative_to(folder) for p in folder.rglob("*.parquet"))
        # `simulations` records when and how fast each run went: the world's tables must match
        outputs.append({f: (folder / f).read_bytes() for f in files if f.parts[0] != "simulations"})
    assert outputs[0].keys() == outputs[1].keys()
    assert any("date=" in str(f) for f in outputs[0])  # event tables are partitioned by day
    assert outputs[0] == outputs[1]


def test_append_continues_the_world(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    build_store(path, merchants=6, days=4, seed=5)
    before = _tables(path)
    scenario = load_scenario(None, days=2)
    from posaudit.simulate.engine import simulate

    summary = simulate(path, scenario, seed=5, append=True)
    after = _tables(path)
    assert summary.first_day == 4 and summary.days == 2
    for table in DIMENSION_TABLES:
        assert after[table].equals(before[table])
    tx = after["transactions"]
    assert tx.height > before["transactions"].height
    assert tx.get_column("txn_id").is_unique().all()
    assert after["login_events"].get_column("event_id").is_unique().all()
    assert after["ground_truth"].get_column("incident_id").is_unique().all()
    assert tx.get_column("ts").max() >= before["transactions"].get_column("ts").max()
    new_day = tx.filter(pl.col("ts") >= pl.datetime(2026, 9, 5))
    assert new_day.height > 0
    # trace numbers keep increasing across the append boundary
    steps = tx.sort("terminal_id", "ts", "trace_no").with_columns(
        (pl.col("trace_no") - pl.col("trace_no").shift(1).over("terminal_id")).alias("step")
    )
    assert steps.get_column("step").drop_nulls().eq(1).all()
    store = Store.open(path, read_only=True)
    assert store.query("SELECT count(*) FROM simulations")[0][0] == 2
    store.close()


def _exposures(path: Path) -> dict[str, float]:
    """Each scenario's exposure in units of its rate (thousands of operator-days, ...)."""
    store = Store.open(path, read_only=True)
    try:
        q = lambda sql: float(store.query(sql)[0][0])  # noqa: E731
        days = q("SELECT count(DISTINCT CAST(ts AS DATE)) FROM transactions")
        operators = q("SELECT count(*) FROM operators")
        terminals = q("SELECT count(*) FROM terminals")
        sales = q("SELECT count(*) FROM transactions WHERE kind = 'sale' AND status = 'approved'")
    finally:
        store.close()
    out = dict.fromkeys(
        (
            "pin_brute_force",
            "credential_sharing",
            "takeover_refund",
            "off_hours_refunds",
            "refund_burst",
            "round_amount_refunds",
        ),
        operators * days / 1000,
    )
    out |= dict.fromkeys(
        (
            "refund_without_sale",
            "refund_over_sale",
            "refund_without_permission",
            "refund_other_card",
        ),
        sales / 1000,
    )
    return out | {
        "operator_enumeration": terminals * days / 1000,
        "lockout_not_enforced": terminals,
    }


def _prevalence(path: Path) -> dict[str, float]:
    """Incidents per exposure unit, in the units of the scenario file."""
    store = Store.open(path, read_only=True)
    try:
        q = lambda sql: float(store.query(sql)[0][0])  # noqa: E731
        days = q("SELECT count(DISTINCT CAST(ts AS DATE)) FROM transactions")
        operators = q("SELECT count(*) FROM operators")
        terminals = q("SELECT count(*) FROM terminals")
        sales = q("SELECT count(*) FROM transactions WHERE kind = 'sale' AND status = 'approved'")
        incidents = dict(store.query("SELECT scenario, count(*) FROM ground_truth GROUP BY ALL"))
        takeover_refunds = q(
            "SELECT count(*) FROM ground_truth g JOIN transactions t ON g.entity_id = t.txn_id "
            "WHERE g.scenario = 'refund_other_card' AND EXISTS ("
            "SELECT 1 FROM ground_truth h "
            # the login takeover's refunds and the privilege abuses' go to other cards too
            "WHERE h.scenario IN ('takeover_refund', 'privilege_grant_abuse', 'reset_then_refund') "
            "AND h.entity_id = t.operator_id "
            "AND t.ts BETWEEN h.start_ts AND h.end_ts)"
        )
    finally:
        store.close()
    per = {
        "pin_brute_force": operators * days,
        "operator_enumeration": terminals * days,
        "credential_sharing": operators * days,
        "takeover_refund": operators * days,
        "off_hours_refunds": operators * days,
        "refund_burst": operators * days,
        "round_amount_refunds": operators * days,
        "refund_without_sale": sales,
        "refund_over_sale": sales,
        "refund_without_permission": sales,
    }
    out = {name: 1000 * int(incidents.get(name, 0)) / exposure for name, exposure in per.items()}  # type: ignore[call-overload]
    other_card = int(incidents.get("refund_other_card", 0))  # type: ignore[call-overload]
    out["refund_other_card"] = 1000 * (other_card - takeover_refunds) / sales
    out["lockout_not_enforced"] = int(incidents.get("lockout_not_enforced", 0)) / terminals  # type: ignore[call-overload]
    return out


@pytest.mark.slow
def test_prevalence_holds_across_world_sizes(tmp_path: Path) -> None:
    small, large = tmp_path / "small.duckdb", tmp_path / "large.duckdb"
    # Without merchants inventing amounts: their added sales are sales the per-sale scenarios
    # never drew from (the exposure grows by up to half a merchant's trade) and that later
    # refunds may pick; their own prevalence is measured in docs/detection.md.
    inventing = ("invented_amounts",)
    small_summary = build_store(small, merchants=12, days=14, seed=21, without=inventing)
    large_summary = build_store(large, merchants=240, days=14, seed=22, without=inventing)
    assert 25_000 <= small_summary.events <= 60_000
    assert large_summary.events >= 15 * small_summary.events
    configured = load_scenario(None)
    exposures = {small: _exposures(small), large: _exposures(large)}
    for path in (small, large):
        measured = _prevalence(path)
        for name, value in measured.items():
            rate = configured.rate(name)
            assert rate > 0
            # within 10 %, or (in the smallest world) as near as whole incidents can be
            expected_incidents = rate * exposures[path][name]
            within = abs(value / rate - 1) <= 0.10
            nearest = abs(value - rate) * exposures[path][name] <= 0.5 + 1e-9
            assert within or nearest, (path.name, name, value, rate, expected_incidents)


def test_human_pins_have_the_published_shape() -> None:
    p = pin_probabilities(0.6)
    assert p[123456] == pytest.approx(0.04, rel=0.02)
    top10 = [123456, 111111, 123123, 0, 123321, 666666, 888888, 654321, 112233, 520520]
    ranked = np.argsort(-p)[:10]
    assert set(ranked.tolist()) == set(top10)
    rng = np.random.default_rng(0)
    draws = rng.choice(1_000_000, size=100_000, p=p)
    values, counts = np.unique(draws, return_counts=True)
    counts = np.sort(counts)[::-1]
    half = np.searchsorted(np.cumsum(counts), draws.size / 2) + 1
    share_of_distinct = half / values.size
    assert 0.05 <= share_of_distinct <= 0.08, share_of_distinct
    from posaudit.pins import WEAKNESS_CLASSES, _class_codes

    codes = _class_codes()
    date_code = 1 + WEAKNESS_CLASSES.index("date")
    # people choose dates far more often than a random string reads as one
    date_share = float((codes[draws] == date_code).mean())
    assert date_share > 2 * float((codes == date_code).mean())


def test_the_weak_pin_ground_truth_follows_the_classifier() -> None:
    # evaluation is honest only if a PIN labelled weak is one `pins check` flags, and no other
    from posaudit.pins import classify_pins
    from posaudit.simulate.pinmodel import pin_periods, weak_classes

    scenario = load_scenario(None, merchants=20, days=10)
    world = _world_for(scenario, 3)
    horizon = world.start_us + 10 * 86_400_000_000
    timeline = build_pin_timeline(
        world,
        3,
        horizon,
        weak_share=0.6,
        default_share=0.15,
        shared_share=0.15,
        reused_share=0.1,
        stale_share=0.5,
        forgotten_per_year=1.0,
    )
    periods = pin_periods(world, timeline, horizon)
    ops, pins = periods.get_column("op").to_numpy(), periods.get_column("pin").to_numpy()
    labelled = weak_classes(world, ops, pins).tolist()
    classified = [
        classify_pins([f"{pin:06d}"], operator_no=str(world.o_no[op]))[0]
        for op, pin in zip(ops.tolist(), pins.tolist(), strict=True)
    ]
    assert labelled == classified
    assert "-" in labelled and len(set(labelled)) > 3


def _pin_events(timeline: PinTimeline) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "op": timeline.operator,
            "ts": timeline.ts_us,
            "kind": timeline.kind,
            "actor": timeline.actor,
            "pin": timeline.pin,
        }
    )


def test_a_longer_horizon_only_adds_pin_events() -> None:
    """Appending days continues the world: the PIN history before the old end stays as it was."""
    scenario = load_scenario(None, merchants=20, days=21)
    world = _world_for(scenario, 11)
    short = _pin_timeline(world, scenario, 11, day_start_us(world, 21))
    longer = _pin_timeline(world, scenario, 11, day_start_us(world, 60))
    before = _pin_events(longer).filter(pl.col("ts") < short.horizon_us)
    assert before.equals(_pin_events(short))
    assert _pin_events(longer).height > before.height


def test_world_pins_are_the_pins_behind_every_digest(tmp_path: Path) -> None:
    """world_pins gives each operator's PINs as the simulator drew them, appended days too."""
    path = tmp_path / "w.duckdb"
    scenario = tmp_path / "pins.toml"
    scenario.write_text("[scenarios.weak_pin]\nrate = 0.9\n[scenarios.reused_pin]\nrate = 0.3\n")
    simulate(path, load_scenario(scenario, merchants=6, days=3), seed=21)
    simulate(path, load_scenario(None, days=2), seed=0, append=True)
    held = world_pins(path)
    key = DEMO_PIN_KEY.encode()  # the tests' key (tests/conftest.py)
    digests = {(o, pin_digest(pin, key=key)) for o, pins in held.items() for pin in pins}
    store = Store.open(path, read_only=True)
    try:
        events = store.frame("SELECT operator_id, pin_digest FROM pin_events")
    finally:
        store.close()
    assert set(events.iter_rows()) == digests
    # six digits, but for the common defaults of four and eight (docs/domain.md)
    assert all(re.fullmatch(r"\d{6}|0000|12345678", pin) for pins in held.values() for pin in pins)


def test_no_plaintext_pin_in_any_table_parquet_or_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from typer.testing import CliRunner

    from posaudit.cli import app

    path = tmp_path / "w.duckdb"
    world = ["--db", str(path), "--merchants", "10", "--days", "4", "--seed", "13"]
    result = CliRunner().invoke(app, ["simulate", *world, "--parquet", str(tmp_path / "pq")])
    assert result.exit_code == 0, result.output
    held = world_pins(path)
    pins = frozenset().union(*held.values())
    assert len(pins) > 30
    # the log: no 6-digit token on stdout/stderr is a PIN
    assert not pins_in_text(result.output + capfd.readouterr().err, pins)
    assert not pins_in_store(path, held)
    assert not pins_in_folder(tmp_path / "pq", held)
    # the digests are there instead, and none of them is readable as a PIN
    store = Store.open(path, read_only=True)
    digests = store.frame("SELECT pin_digest FROM pin_events").get_column("pin_digest")
    store.close()
    assert digests.str.len_chars().eq(64).all()


def test_no_fraud_switches_off_attacks_but_keeps_conditions(tmp_path: Path) -> None:
    path = tmp_path / "calm.duckdb"
    build_store(path, merchants=15, days=5, seed=2, fraud=False)
    store = Store.open(path, read_only=True)
    scenarios = {r[0] for r in store.query("SELECT DISTINCT scenario FROM ground_truth")}
    store.close()
    assert not scenarios & set(ATTACK_SCENARIOS)
    assert {"weak_pin", "stale_pin"} <= scenarios


def test_sample_constants_match_data_samples_readme() -> None:
    readme = (Path(__file__).parents[2] / "data_samples" / "README.md").read_text()
    assert f"--merchants {SAMPLE_MERCHANTS} --days {SAMPLE_DAYS} --seed {SAMPLE_SEED}" in readme
