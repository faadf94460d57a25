"""The frames behind the notebooks, on the audited sample and on small literal frames."""

from __future__ import annotations

import doctest
import shutil
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from posaudit.notebook import (
    AuditError,
    Table,
    bounds,
    drilldown,
    logins,
    open_audit,
    operators,
    overview,
    pins,
    refunds,
    render,
    session,
    style,
    tables,
)
from posaudit.notebook import charts as chart_module
from posaudit.palette import SEVERITY_COLORS
from posaudit.store import Store, StoreError

# charts is left out until it has examples of its own
MODULES = (session, tables, render, bounds, overview, logins, pins, refunds, operators, drilldown)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_run(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module.__name__} has no examples to run"
    assert result.failed == 0


# --- the store, read-only ----------------------------------------------------------------------


def test_open_audit_picks_the_latest_run_and_names_the_one_before(audited_store) -> None:
    audit = open_audit(audited_store.path)
    assert audit.run_id == audited_store.runs[1]
    assert audit.previous_run_id == audited_store.runs[0]
    assert open_audit(audited_store.path, audited_store.runs[0]).previous_run_id is None


def test_open_audit_refuses_what_it_cannot_show(
    audited_store, sample_store, tmp_path: Path
) -> None:
    with pytest.raises(AuditError, match="no successful run 'run-09999'"):
        open_audit(audited_store.path, "run-09999")
    unaudited = tmp_path / "unaudited.duckdb"
    shutil.copyfile(sample_store, unaudited)
    with pytest.raises(AuditError, match="no successful audit run yet: run `posaudit run"):
        open_audit(unaudited)
    with pytest.raises(StoreError, match="no store at"):
        open_audit(tmp_path / "missing.duckdb")


def test_the_store_is_read_only_to_a_notebook(audited_store) -> None:
    audit = open_audit(audited_store.path)
    with pytest.raises(Exception, match="read-only"):
        audit.sql("DELETE FROM findings")
    assert audit.sql("SELECT count(*) AS n FROM findings").item() > 0


def test_a_notebook_does_not_keep_the_store_locked(audited_store, tmp_path: Path) -> None:
    path = tmp_path / "copy.duckdb"
    shutil.copyfile(audited_store.path, path)
    audit = open_audit(path)
    audit.findings()
    writer = Store.open(path)  # would fail with "locked" if the notebook held the file
    writer.close()


def test_store_path_finds_data_above_a_notebooks_folder(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "posaudit.duckdb").write_bytes(b"")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv("POSAUDIT_DB", raising=False)
    assert session.store_path(None) == tmp_path / "data" / "posaudit.duckdb"
    monkeypatch.setenv("POSAUDIT_DB", "/elsewhere/x.duckdb")
    assert session.store_path(None) == Path("/elsewhere/x.duckdb")
    assert session.store_path("data/posaudit.duckdb") == tmp_path / "data" / "posaudit.duckdb"


def test_a_runs_findings_are_those_it_found(audited_store) -> None:
    first, second = audited_store.runs
    audit = open_audit(audited_store.path)
    runs = {r["run_id"]: r for r in audit.runs.iter_rows(named=True)}
    latest, earlier = audit.findings(), audit.findings(first)
    assert latest.height == runs[second]["findings_total"]
    assert earlier.height == runs[first]["findings_total"]
    assert int(latest.get_column("is_new").sum()) == runs[second]["findings_new"]
    assert audit.resolved_findings().height == runs[second]["findings_resolved"]
    assert set(latest.filter(pl.col("is_new")).get_column("rule")) >= {
        "refund_bursts",
        "round_amount_refunds",
    }
    assert latest.get_column("severity_rank").is_sorted(descending=True)


def test_policy_changes_name_each_changed_setting(audited_store) -> None:
    changes = overview.policy_changes(open_audit(audited_store.path))
    assert {
        (r["rule"], r["setting"], r["before"], r["now"]) for r in changes.iter_rows(named=True)
    } == {
        ("refund_bursts", "enabled", "off", "on"),
        ("round_amount_refunds", "enabled", "off", "on"),
        ("network_failure_burst", "min_errors", "3", "5"),
        ("stale_pins", "max_age_days", "120", "90"),
    }


# --- data quality ------------------------------------------------------------------------------


def test_trace_number_gaps_counts_missing_and_doubled_numbers() -> None:
    t = pl.DataFrame(
        {
            "terminal_id": ["T1"] * 5 + ["T2"] * 3,
            "merchant_id": "M1",
            "trace_no": [1, 2, 6, 7, 7, 10, 11, 12],
            "ts": [datetime(2026, 9, 1, h) for h in range(8)],
        }
    )
    gaps = overview.trace_number_gaps(t)
    assert gaps.select("terminal_id", "kind", "after_trace_no", "trace_no", "missing").rows() == [
        ("T1", "gap", 2, 6, 3),
        ("T1", "duplicate", 7, 7, 0),
    ]
    assert overview.trace_number_gaps(t.filter(pl.col("terminal_id") == "T2")).height == 0


@pytest.fixture(scope="module")
def damaged_store(
    audited_store, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, str, int, int]:
    """The audited sample with records lost.

    Five transactions of one terminal; everything of a second terminal on 2026-09-10 (which
    also leaves a gap in its trace numbers); most logins of 2026-09-15.
    """
    path = tmp_path_factory.mktemp("damaged") / "damaged.duckdb"
    shutil.copyfile(audited_store.path, path)
    store = Store.open(path)
    try:
        terminal = str(store.query("SELECT min(terminal_id) FROM transactions")[0][0])
        quiet = str(
            store.query(
                f"SELECT min(terminal_id) FROM transactions WHERE terminal_id > '{terminal}'"
            )[0][0]
        )
        quiet_day = f"terminal_id = '{quiet}' AND ts::DATE = DATE '2026-09-10'"
        lost = int(store.query(f"SELECT count(*) FROM transactions WHERE {quiet_day}")[0][0])  # type: ignore[arg-type]
        start = int(
            store.query(
                f"SELECT trace_no FROM transactions WHERE terminal_id = '{terminal}' ORDER BY "
                "trace_no LIMIT 1 OFFSET 100"
            )[0][0]
        )  # type: ignore[arg-type]
        store.execute(
            f"DELETE FROM transactions WHERE terminal_id = '{terminal}' AND trace_no BETWEEN "
            f"{start + 1} AND {start + 5}"
        )
        store.execute(f"DELETE FROM transactions WHERE {quiet_day}")
        store.execute(f"DELETE FROM login_events WHERE {quiet_day}")
        store.execute(
            "DELETE FROM login_events WHERE ts::DATE = DATE '2026-09-15' AND hour(ts) >= 6"
        )
    finally:
        store.close()
    return path, terminal, quiet, lost, start


def test_data_quality_finds_lost_records(damaged_store, audited_store) -> None:
    path, terminal, quiet, lost, start = damaged_store
    audit = open_audit(path)
    gaps = overview.trace_gaps(audit)
    # the sample's own breaks (records the simulator deleted, counters set anew) stay as they were
    before = overview.trace_gaps(open_audit(audited_store.path))
    assert lost > 0
    new = gaps.join(before, on=["terminal_id", "trace_no"], how="anti")
    assert sorted(new.select("terminal_id", "kind", "missing").rows()) == [
        (terminal, "gap", 5),
        (quiet, "gap", lost),
    ]
    assert gaps.filter(pl.col("terminal_id") == terminal).select("after_trace_no", "trace_no").row(
        0
    ) == (start, start + 6)
    # the store's SQL finds the breaks trace_number_gaps defines, row for row
    every = audit.sql("SELECT terminal_id, merchant_id, trace_no, ts FROM transactions")
    assert gaps.equals(overview.trace_number_gaps(every))
    activity = overview.terminal_activity(audit)
    silent = overview.quiet_terminals(activity)
    assert silent.select("terminal_id", "silent_days", "first_silent_day").rows() == [
        (quiet, 1, datetime(2026, 9, 10))
    ]
    volumes = overview.daily_volumes(audit)
    assert volumes.filter(pl.col("is_low")).select("table_name", "day").rows() == [
        ("login_events", datetime(2026, 9, 15))
    ]
    checks = overview.data_quality(volumes=volumes, activity=activity, gaps=gaps)
    was_missing = int(before.filter(pl.col("kind") == "gap").get_column("missing").sum())
    was_doubled = before.filter(pl.col("kind") == "duplicate").height
    assert checks.get_column("verdict").to_list()[:3] == ["look", "look", "look"]
    assert checks.get_column("count").to_list() == [1, 1, 5 + lost + was_missing, was_doubled]


# --- the notebooks' frames stay small and say no PIN -----------------------------------------


def test_pin_views_never_read_a_digest() -> None:
    source = Path(pins.__file__).read_text(encoding="utf-8")
    assert "pin_digest" not in source
    assert "pin_digest" not in Path(drilldown.__file__).read_text(encoding="utf-8")


def test_pin_roster_flags_agree_with_the_runs_findings(audited_store) -> None:
    audit = open_audit(audited_store.path)
    roster = pins.pin_roster(audit)
    assert not any("digest" in c for c in roster.columns)
    _, data_to = audit.data_window
    active = audit.table("operators").filter(
        pl.col("disabled_at").is_null() | (pl.col("disabled_at") > data_to)
    )
    assert roster.height == active.height
    held = audit.findings().filter(pl.col("evidence").str.contains('"still_held":true'))
    for rule, flag in (
        ("default_pins", "is_default"),
        ("stale_pins", "is_stale"),
        ("reused_pins", "is_reused"),
    ):
        expected = set(held.filter(pl.col("rule") == rule).get_column("entity_id"))
        assert set(roster.filter(pl.col(flag)).get_column("operator_id")) == expected, rule
    groups = pins.shared_pin_groups(audit)
    assert groups.get_column("size").min() >= 2


def test_refund_scatter_keeps_under_altairs_limit() -> None:
    n = 20_000
    frame = pl.DataFrame(
        {
            "txn_id": [f"X{i}" for i in range(n)],
            "ts": datetime(2026, 9, 1),
            "terminal_id": "T1",
            "operator_id": "T1-01",
            "amount_fen": 1000,
            "sale_amount_fen": 2000,
            "has_sale": True,
            "lag_days": 1.0,
            "flag": [
                "refunds_to_other_card" if i % 3 == 0 else refunds.NO_FINDING for i in range(n)
            ],
        }
    )
    points = refunds.refund_scatter(frame)
    assert points.height <= 4500
    assert points.item(0, "flagged_total") == 6667 and points.item(0, "ordinary_total") == 13333
    assert points.equals(refunds.refund_scatter(frame))  # seeded: the same chart every time
    chart_module.refund_scatter_chart(points).to_dict()  # Altair raises above 5,000 rows


def test_scores_agree_with_the_runs_anomaly_findings(audited_store) -> None:
    audit = open_audit(audited_store.path)
    scores = operators.operator_day_scores(audit)
    reported = scores.filter(pl.col("in_findings"))
    findings = audit.findings().filter(pl.col("rule") == operators.SCORE_RULE)
    assert reported.height == findings.height > 0
    assert set(reported.get_column("operator_id")) == set(findings.get_column("entity_id"))
    assert operators.score_distribution(scores).get_column("operator_days").sum() == scores.height


def test_scores_are_explained_where_shown_as_the_run_explains_them(audited_store) -> None:
    audit = open_audit(audited_store.path)
    scores = operators.operator_day_scores(audit)
    # the explanation is written for the days a notebook shows, not every operator-day
    assert "explanation" not in scores.columns
    inputs = sum(frame.select(pl.len()).collect().item() for frame in operators.score_inputs(audit))
    assert inputs < audit.sql("SELECT count(*) AS n FROM transactions").item()
    top = operators.top_operator_days(scores, top=10).filter(pl.col("in_findings"))
    summaries = audit.findings().filter(pl.col("rule") == operators.SCORE_RULE)
    assert top.height > 0
    for day in top.iter_rows(named=True):
        summary = summaries.filter(
            (pl.col("entity_id") == day["operator_id"])
            & (pl.col("window_start").dt.date() == day["day"])
        ).item(0, "summary")
        assert day["explanation"] and summary.endswith(f": {day['explanation']}")
    risk = operators.operator_risk(audit, scores)
    assert risk.filter(pl.col("top_anomaly_score").is_not_null())["explanation"].is_not_null().all()


def test_risk_ranking_counts_each_rule_once(audited_store) -> None:
    audit = open_audit(audited_store.path)
    risk = operators.operator_risk(audit, operators.operator_day_scores(audit))
    assert risk.get_column("risk_points").is_sorted(descending=True)
    top = risk.row(0, named=True)
    expected = sum(
        operators.RISK_POINTS[severity]
        for severity in operators.operator_findings(audit)
        .filter(pl.col("operator_id") == top["operator_id"])
        .group_by("rule")
        .agg(pl.col("severity").sort_by("severity_rank").last())
        .get_column("severity")
    )
    assert top["risk_points"] == expected


def test_timeline_rings_the_evidence_and_shows_no_pin(audited_store) -> None:
    audit = open_audit(audited_store.path)
    for rule in ("pin_brute_force", "refunds_to_other_card", "weak_pins", "lockout_not_enforced"):
        finding = audit.findings().filter(pl.col("rule") == rule).row(0, named=True)
        events = drilldown.timeline(audit, finding["finding_id"])
        named = drilldown.evidence_ids(finding)
        ringed = set(events.filter(pl.col("in_evidence")).get_column("event_id"))
        assert ringed == named & set(events.get_column("event_id")), rule
        assert ringed or rule == "lockout_not_enforced", rule  # that one rests on a setting
        assert events.filter(pl.col("in_range")).height <= drilldown.MAX_EVENTS
        assert not events.get_column("detail").str.contains(r"\b\d{6}\b").any()
        context = drilldown.timeline_context(audit, finding["finding_id"])
        chart_module.timeline_chart(events, **context).to_dict()


def test_the_default_finding_is_the_most_severe(audited_store) -> None:
    audit = open_audit(audited_store.path)
    chosen = audit.finding(drilldown.default_finding_id(audit))
    assert chosen["severity"] == "critical"
    with pytest.raises(AuditError, match="no finding 'nope'"):
        audit.finding("nope")


# --- tables and the renderer -----------------------------------------------------------------


def test_table_formats_money_shares_and_severity() -> None:
    page = Table(
        pl.DataFrame(
            {
                "severity": ["critical"],
                "amount_fen": [123456],
                "refund_rate": [0.25],
                "note": ["<b>x</b>"],
            }
        ),
        "Money & more",
    )._repr_html_()
    assert 'data-title="Money &amp; more" data-rows="1"' in page
    assert "1,234.56" in page and "25.0 %" in page and "amount (CNY)" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page  # values are escaped
    assert f"background:{SEVERITY_COLORS['critical']};color:#ffffff" in page  # the critical badge
    empty = Table(pl.DataFrame({"a": []}), "Nothing", empty="All clear.")._repr_html_()
    assert 'data-rows="0"' in empty and "All clear." in empty


def test_chart_html_loads_the_libraries_once_and_cannot_break_out_of_its_script() -> None:
    page = render.chart_html(
        {"mark": "point", "data": {"values": [{"a": "</script><script>alert(1)"}]}}
    )
    assert page.count("</script>") == 1
    assert "<\\/script>" in page
    assert "window.__posauditVegaLite !==" in page and "https://" not in page.split("var spec")[1]


def test_every_chart_has_a_title_and_the_theme_is_registered() -> None:
    style.enable_theme()
    import altair as alt

    assert alt.theme.active == style.THEME
    assert style.theme()["config"]["font"]
