"""Every notebook runs top to bottom and shows the charts and tables it promises."""

from __future__ import annotations

import re

import pytest
from notebook_helpers import NOTEBOOK_NAMES, chart_rows, chart_titles, outputs_of

from posaudit.notebook import overview
from posaudit.notebook.session import open_audit
from posaudit.store import Store

pytestmark = pytest.mark.slow

# The charts (by title) and tables (by title) each notebook must show.
PROMISED: dict[str, tuple[set[str], set[str]]] = {
    "00-start-here": (
        {
            "Events per day",
            "Findings of the run by family and severity",
            "What changed",
            "New and resolved findings",
        },
        {
            "Tables in the store",
            "Data checks",
            "Terminals quiet for a day or more",
            "Breaks in trace numbers",
            "Audit runs, oldest first",
            "Policy settings changed since the previous run",
            "New and resolved findings, most severe first",
        },
    ),
    "01-logins-and-lockouts": (
        {
            "Failed logins over time",
            "Terminals with the most credential failures",
            "Lockouts per day",
            "Attacks and sharing, in time",
            "The findings",
            "Terminals by lockout setting",
        },
        {
            "Failed logins by outcome (share of all login attempts)",
            "Lockout storms",
            "Attacks by severity",
            "Terminals outside the lockout policy",
        },
    ),
    "02-pin-hygiene": (
        {"PIN problems", "Weak PINs by weakness class", "How old operators' PINs are"},
        {
            "PIN problems of the operators holding a PIN today",
            "Administrators still on the acquirer's default PIN",
            "Operators whose PIN is older than 90 days, oldest first",
            "Groups of operators holding one PIN today",
            "Changes back to an old PIN",
            "Operators with at least one PIN problem",
        },
    ),
    "03-refund-anomalies": (
        {
            "Refunds against their sales",
            "How long after the sale",
            "Refund findings by rule",
            "Refund findings",
            "Merchants' refund rates against their category",
            "Operators' refund rates against their peers",
        },
        {
            "Refund findings by rule",
            "Merchants by refund rate against their category",
            "Operators by refund rate against their peers",
        },
    ),
    "04-operator-risk": (
        {
            "Anomaly scores of all operator-days",
            "Why the top operator-days stand out",
            "What the reported days have in common",
            "Operators who stand out",
            "Their findings",
        },
        {"The highest-scoring operator-days, and what sets them apart", "Operators ranked by risk"},
    ),
    "05-finding-drilldown": (
        {"Around the finding: operator"},
        {"Evidence", "The events the evidence names", "Related findings of the run"},
    ),
    "06-ingested-data": (
        {"Events per day and terminal"},
        {
            "Files ingested",
            "Rows quarantined by reason",
            "Quarantined rows, the first of each reason",
            "Terminals by days without events",
        },
    ),
    # its tables are in widgets: test_triage_shows_the_queue_in_its_widgets
    "07-triage": (set(), set()),
    # fees and completeness
    "09-fees-and-completeness": (
        {"Fees and completeness findings per day"},
        {
            "Fees recomputed from the fee table",
            "Merchants billed off the fee table",
            "Batches with missing records",
            "Sales recorded twice",
        },
    ),
    # privilege audit: the sample world's store predates operator events, so no chart is
    # promised; test_privilege_notebook_shows_the_events_and_findings has a world with them
    "10-operator-privileges": (
        set(),
        {
            "Operators by role and right",
            "Rights granted and revoked in the data window",
            "Privilege findings",
        },
    ),
    "08-sales-patterns": (
        {"How long after the sale a void comes", "Declined sales per terminal-hour"},
        {
            "Sales-pattern findings by rule",
            "Sales-pattern findings, most severe first",
            "Terminal-hours with the most declined sales",
        },
    ),
    "11-merchant-typologies": (
        {"Categories' sales by hour", "Merchants by ticket and card mix"},
        {"Merchant typology findings", "Discount- and charity-class merchants"},
    ),
    "12-auditors-classics": (
        {
            "Benford, first digit: found against expected",
            "Benford, first two: found against expected",
            "Approved sales by stratum of amount",
            "Refunds by days after their sale",
        },
        {
            "Benford's tests on the store's approved sales",
            "Merchants inventing amounts",
            "Merchants least conforming to Benford (first two digits)",
            "Approved sales by stratum",
            "Duplicate sales by kind",
            "The largest duplicate sales",
            "Trace numbers missing inside a batch",
            "Days a terminal went silent against its own pattern",
            "Open findings by days open",
            "A monetary-unit sample of the sales",
        },
    ),
}


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_shows_the_charts_and_tables_it_promises(executed_notebooks, name: str) -> None:
    shown = outputs_of(executed_notebooks.notebooks[name])
    assert not shown.errors, shown.errors
    charts, tables = PROMISED[name]
    titles = {title for spec in shown.charts for title in chart_titles(spec)}
    for title in charts:
        assert any(t.startswith(title) for t in titles), (
            f"{name}: no chart {title!r} among {sorted(titles)}"
        )
    assert tables <= set(shown.tables), f"{name}: missing tables {tables - set(shown.tables)}"
    for spec in shown.charts:
        assert 0 < chart_rows(spec) <= 5000, f"{name}: a chart with {chart_rows(spec)} rows"


def test_start_here_tells_what_is_new_since_the_run_before(
    executed_notebooks, audited_store
) -> None:
    first, second = audited_store.runs
    shown = outputs_of(executed_notebooks.notebooks["00-start-here"])
    store = Store.open(audited_store.path, read_only=True)
    try:
        new, resolved, total = store.query(
            "SELECT findings_new, findings_resolved, findings_total FROM pipeline_runs WHERE "
            "run_id = ?",
            [second],
        )[0]
    finally:
        store.close()
    assert new > 0 and resolved > 0  # the first run's policy makes sure of both
    assert f"Run **{second}**" in shown.text
    assert (
        f"{total:,} findings" in shown.text
        and f"{new:,} of them new since {first} and {resolved:,} resolved" in shown.text
    )
    assert shown.tables["Audit runs, oldest first"] == 2
    assert shown.tables["Policy settings changed since the previous run"] == 4
    changes_html = shown.table_html["Policy settings changed since the previous run"]
    for setting in ("refund_bursts", "round_amount_refunds", "min_errors", "max_age_days"):
        assert setting in changes_html
    assert shown.tables["New and resolved findings, most severe first"] == new + resolved
    changed = shown.chart("What changed")
    kinds = {
        row["change"] for rows in changed["datasets"].values() for row in rows if "change" in row
    }
    assert kinds == {"new", "resolved"}
    # the sample's breaks in trace numbers are the records the simulator deleted and the
    # counters it set anew (a wrap, a re-initialised terminal): nothing else is missing
    store = Store.open(audited_store.path, read_only=True)
    try:
        labelled = {
            row[0]
            for row in store.query(
                "SELECT entity_id FROM ground_truth WHERE scenario IN ('deleted_records', "
                "'benign:trace_wrap', 'benign:terminal_reinit')"
            )
        }
    finally:
        store.close()
    gaps = overview.trace_gaps(open_audit(audited_store.path, audited_store.runs[1]))
    assert shown.tables["Breaks in trace numbers"] == gaps.height > 0
    assert set(gaps.get_column("terminal_id")) <= labelled
    assert shown.tables["Data checks"] == 4 and shown.text.count(">ok<") >= 2


def test_logins_notebook_shows_the_attacks_of_the_run(executed_notebooks, audited_store) -> None:
    shown = outputs_of(executed_notebooks.notebooks["01-logins-and-lockouts"])
    store = Store.open(audited_store.path, read_only=True)
    try:
        attacks = int(
            store.query(
                "SELECT count(*) FROM findings WHERE status = 'open' AND rule IN "
                "('pin_brute_force', 'operator_enumeration', 'lockout_storm', 'credential_sharing')"
            )[0][0]
        )
        loose = int(
            store.query(
                "SELECT count(*) FROM findings WHERE status = 'open' AND rule = "
                "'lockout_not_enforced'"
            )[0][0]
        )
    finally:
        store.close()
    assert shown.tables["Attacks by severity"] == attacks > 0
    assert shown.tables["Terminals outside the lockout policy"] >= loose > 0
    bubbles = shown.chart("Attacks and sharing, in time")
    rules = {row["rule"] for rows in bubbles["datasets"].values() for row in rows if "rule" in row}
    assert {"pin_brute_force", "operator_enumeration", "credential_sharing"} <= rules
    assert "network_failure_burst" not in rules  # a bad line is not an attack


def test_pin_notebook_never_shows_a_pin_or_a_digest(executed_notebooks, audited_store) -> None:
    store = Store.open(audited_store.path, read_only=True)
    try:
        digests = {str(r[0]) for r in store.query("SELECT DISTINCT pin_digest FROM pin_events")}
    finally:
        store.close()
    for name in NOTEBOOK_NAMES:
        shown = outputs_of(executed_notebooks.notebooks[name])
        visible = shown.text + "".join(str(spec) for spec in shown.charts)
        assert not re.search(r"\b[0-9a-f]{64}\b", visible), f"{name} shows a digest"
        assert not any(d in visible for d in digests)
    pins = outputs_of(executed_notebooks.notebooks["02-pin-hygiene"])
    visible = pins.text + "".join(str(spec) for spec in pins.charts)
    # a PIN is six digits standing alone; ids (T000123), dates, times and colours never are
    assert not re.search(r"(?<![\w.#-])\d{6}(?![\w.])", visible)
    assert pins.tables["PIN problems of the operators holding a PIN today"] == 8
    assert "repeated digit" in visible or "date" in visible  # classes, in words


def test_risk_notebook_agrees_with_the_run(executed_notebooks) -> None:
    shown = outputs_of(executed_notebooks.notebooks["04-operator-risk"])
    assert shown.tables["Operators ranked by risk"] > 0
    heat = shown.chart("Why the top operator-days stand out")
    days = {row["operator_day"] for rows in heat["datasets"].values() for row in rows}
    assert len(days) == 15  # the notebook's top_days parameter


def test_drilldown_shows_the_evidence_on_the_timeline(executed_notebooks, audited_store) -> None:
    import json

    finding_id = executed_notebooks.drilled_finding
    shown = outputs_of(executed_notebooks.notebooks["05-finding-drilldown"])
    store = Store.open(audited_store.path, read_only=True)
    try:
        evidence = json.loads(
            store.query("SELECT evidence FROM findings WHERE finding_id = ?", [finding_id])[0][0]
        )
    finally:
        store.close()
    assert f"Finding {finding_id}" in shown.tables
    timeline = shown.chart("Around the finding: operator")
    ringed = {
        row["event_id"]
        for rows in timeline["datasets"].values()
        for row in rows
        if row.get("in_evidence")
    }
    assert set(evidence["login_event_ids"]) <= ringed
    assert shown.tables["The events the evidence names"] >= len(evidence["login_event_ids"])


def widget_states(notebook) -> list[dict]:
    """The state of every widget the notebook showed, as nbclient stored it."""
    stored = notebook.metadata.get("widgets", {})
    return list(
        stored.get("application/vnd.jupyter.widget-state+json", {}).get("state", {}).values()
    )


def test_triage_shows_the_queue_in_its_widgets(executed_notebooks, audited_store) -> None:
    notebook = executed_notebooks.notebooks["07-triage"]
    shown = outputs_of(notebook)
    assert not shown.errors, shown.errors
    views = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in output.get("data", {})
    ]
    assert len(views) == 1  # the panel, in one output
    states = widget_states(notebook)
    html = " ".join(
        str(w["state"].get("value", "")) for w in states if w["model_name"] == "HTMLModel"
    )
    store = Store.open(audited_store.path, read_only=True)
    try:
        findings = int(store.query("SELECT count(*) FROM findings")[0][0])
    finally:
        store.close()
    assert f"Findings to review: {findings:,} of {findings:,}" in html
    assert f'data-rows="{findings}"' in html
    for title in ("Evidence", "Its review trail, oldest first", "The events the evidence names"):
        assert f'data-title="{title}"' in html
    buttons = {w["state"].get("description") for w in states if w["model_name"] == "ButtonModel"}
    assert {"Record decision", "Assign"} <= buttons
    dropdowns = [w["state"] for w in states if w["model_name"] == "DropdownModel"]
    pickers = [d for d in dropdowns if d.get("description") == "finding"]
    assert len(pickers) == 1 and len(pickers[0]["_options_labels"]) == min(findings, 200) > 0


def test_notebooks_leave_the_store_as_it_was(executed_notebooks) -> None:
    assert executed_notebooks.store_after == executed_notebooks.store_before


# A card number in full: 13 to 19 digits standing alone, not the fraction of a float in a
# chart's data (the Luhn check is left to the ingest tests: any such number here is one too many).
FULL_CARD = re.compile(r"(?<![0-9A-Za-z.])\d{13,19}(?![0-9])")


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_every_notebook_runs_on_an_ingested_store(notebooks_on_ingested, name: str) -> None:
    shown = outputs_of(notebooks_on_ingested[name])
    assert not shown.errors, shown.errors
    for spec in shown.charts:
        assert 0 < chart_rows(spec) <= 5000, f"{name}: a chart with {chart_rows(spec)} rows"
    visible = shown.text + "".join(str(spec) for spec in shown.charts)
    assert not FULL_CARD.search(visible), f"{name} shows a long number"
    assert "ground_truth" not in visible, f"{name} shows the empty ground truth"


def test_ingested_data_notebook_shows_what_came_in(notebooks_on_ingested, ingested_store) -> None:
    shown = outputs_of(notebooks_on_ingested["06-ingested-data"])
    store = Store.open(ingested_store, read_only=True)
    try:
        files, quarantined, terminals = store.query(
            "SELECT (SELECT count(*) FROM ingested_files), (SELECT count(*) FROM quarantine), "
            "(SELECT count(*) FROM terminals)"
        )[0]
    finally:
        store.close()
    assert shown.tables["Files ingested"] == files == 7
    assert shown.tables["Rows quarantined by reason"] == 3
    assert shown.tables["Quarantined rows, the first of each reason"] == quarantined == 3
    assert shown.tables["Terminals by days without events"] == terminals
    quarantine_html = shown.table_html["Rows quarantined by reason"]
    for reason in ("bad_timestamp", "unknown_terminal", "bad_amount"):
        assert reason in quarantine_html
    # the raw rows are shown as escaped text: their JSON quotes never reach the page raw
    rows_html = shown.table_html["Quarantined rows, the first of each reason"]
    assert "&quot;T999999&quot;" in rows_html and '"T999999"' not in rows_html
    coverage = shown.chart("Events per day and terminal")
    assert {r["terminal_id"] for rows in coverage["datasets"].values() for r in rows}
    start = outputs_of(notebooks_on_ingested["00-start-here"])
    assert shown.text.count("no ground truth") == 1
    assert start.tables["Tables in the store"] == 9  # the ten of a simulation, but the labels


def test_fees_notebook_shows_the_leakage_of_the_run(executed_notebooks, audited_store) -> None:
    shown = outputs_of(executed_notebooks.notebooks["09-fees-and-completeness"])
    store = Store.open(audited_store.path, read_only=True)
    try:
        fen, days = store.query(
            "SELECT sum(CAST(json_extract(evidence, '$.difference_fen') AS BIGINT)), count(*) "
            "FROM findings WHERE rule = 'fee_mismatches' AND status = 'open'"
        )[0]
    finally:
        store.close()
    assert days > 0  # the sample holds a merchant billed off the fee table
    assert f"Fee leakage by the run's findings: {fen / 100:,.2f} CNY net over {days:,}" in (
        shown.text
    )
    assert shown.tables["Merchants billed off the fee table"] >= 1
