"""07-triage without a browser: the queue's filters, and decisions recorded by its buttons."""

from __future__ import annotations

import doctest
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from posaudit import notebook as nb
from posaudit.notebook import triage
from posaudit.notebook.triage import QueueFilter, TriagePanel, filtered_queue
from posaudit.pins import PIN_KEY_ENV
from posaudit.review import finding_with_trail, review_queue, verify_trail
from posaudit.review.pending import pending_requests
from posaudit.store import Store
from tests.review.conftest import held_by_another_process

NOW = datetime(2026, 12, 6, 12, 0)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(triage, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


QUEUE = pl.DataFrame(
    {
        "finding_id": ["F1", "F2", "F3", "F4"],
        "family": ["pins", "refunds", "refunds", "logins"],
        "severity": ["info", "medium", "critical", "high"],
        "window_end": [
            datetime(2026, 12, 5),
            datetime(2026, 11, 1),
            datetime(2026, 12, 1),
            datetime(2026, 9, 1),
        ],
        "first_seen_at": [datetime(2026, 12, 6), datetime(2026, 12, 6), None, NOW],
        "review_status": ["open", "in_review", "closed", "open"],
        "decision": [None, None, "false_positive", None],
        "assignee": [None, "Wang Li", "li.na", None],
    }
)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (QueueFilter(), ["F1", "F2", "F3", "F4"]),
        (QueueFilter(family="refunds"), ["F2", "F3"]),
        (QueueFilter(min_severity="medium"), ["F2", "F3", "F4"]),
        (QueueFilter(min_severity="high"), ["F3", "F4"]),
        (QueueFilter(min_severity="critical"), ["F3"]),
        (QueueFilter(older_than_days=5), ["F2", "F3", "F4"]),
        (QueueFilter(older_than_days=36), ["F4"]),
        # since a run first found them: F3's run is unknown (found today), the rest are new
        (QueueFilter(older_than_days=1, age_from="first_seen"), []),
        (QueueFilter(assignee="wang"), ["F2"]),
        (QueueFilter(assignee=" LI"), ["F2", "F3"]),
        (QueueFilter(decision="undecided"), ["F1", "F2", "F4"]),
        (QueueFilter(decision="false_positive"), ["F3"]),
        (QueueFilter(status="open"), ["F1", "F4"]),
        (QueueFilter(family="refunds", decision="undecided", min_severity="medium"), ["F2"]),
    ],
)
def test_filters_keep_the_findings_asked_for_in_queue_order(
    filters: QueueFilter, expected: list[str]
) -> None:
    shown = filtered_queue(QUEUE, filters, now=NOW)
    assert shown.get_column("finding_id").to_list() == expected


def test_age_counts_whole_days_from_the_chosen_time() -> None:
    by_window = filtered_queue(QUEUE, QueueFilter(), now=NOW).get_column("age_days").to_list()
    assert by_window == [1, 35, 5, 96]
    first_seen = filtered_queue(QUEUE, QueueFilter(age_from="first_seen"), now=NOW)
    assert first_seen.get_column("age_days").to_list() == [0, 0, 0, 0]


@pytest.fixture
def store(audited_store, tmp_path: Path) -> Path:
    """A copy of the audited sample: the other notebook tests see the sample unchanged."""
    path = tmp_path / "triage.duckdb"
    shutil.copyfile(audited_store.path, path)
    return path


@pytest.fixture
def panel(store: Path, monkeypatch: pytest.MonkeyPatch) -> TriagePanel:
    monkeypatch.setenv("POSAUDIT_ANALYST", "zhang.wei")
    return TriagePanel(nb.open_audit(store), now=NOW)


def _queue(path: Path) -> pl.DataFrame:
    reader = Store.open(path, read_only=True)
    try:
        return review_queue(reader)
    finally:
        reader.close()


def _trail(path: Path, finding_id: str):
    reader = Store.open(path, read_only=True)
    try:
        return finding_with_trail(reader, finding_id)
    finally:
        reader.close()


def test_the_panel_shows_the_queue_and_its_first_finding(panel: TriagePanel, store: Path) -> None:
    queue = _queue(store)
    assert panel.queue.height == queue.height > 0
    assert set(panel.family.options) == {"any", *queue.get_column("family").unique()}
    first = queue.item(0, "finding_id")
    assert panel.finding.value == panel.finding_id == first
    assert f"Finding {first}: never reviewed" in panel.card_html.value
    assert "No review yet" in panel.trail_html.value
    assert 'data-title="Evidence"' in panel.evidence_html.value
    assert f'data-rows="{queue.height}"' in panel.queue_html.value
    assert "Recording as</b> zhang.wei" in panel.analyst.value


def test_filter_widgets_narrow_the_table_and_the_picker(panel: TriagePanel) -> None:
    panel.severity.value = "medium"
    assert set(panel.shown.get_column("severity")) <= {"medium", "high", "critical"}
    assert f'data-rows="{panel.shown.height}"' in panel.queue_html.value
    panel.family.value = "pins"
    assert set(panel.shown.get_column("family")) == {"pins"}
    assert [value for _label, value in panel.finding.options] == panel.shown.get_column(
        "finding_id"
    ).to_list()[: triage.PICKABLE_FINDINGS]
    assert panel.finding_id == panel.shown.item(0, "finding_id")  # the drill-down followed
    panel.assignee_filter.value = "nobody has this name"
    assert panel.shown.height == 0 and "No finding matches the filters." in panel.queue_html.value


def test_record_decision_button_writes_the_review_and_refreshes_the_queue(
    panel: TriagePanel, store: Path
) -> None:
    panel.decision_filter.value = "undecided"
    before = panel.shown.height
    picked = str(panel.shown.item(1, "finding_id"))
    panel.finding.value = picked
    assert f"Finding {picked}" in panel.card_html.value
    panel.decision.value = "policy_breach"
    panel.note.value = "the supervisor's card, lent to a trainee"
    panel.record.click()

    trail = _trail(store, picked)
    review = trail.current
    assert review is not None and len(trail.reviews) == 1
    assert (review.decision, review.status, review.analyst, review.note) == (
        "policy_breach",
        "closed",
        "zhang.wei",
        "the supervisor's card, lent to a trainee",
    )
    assert panel.result_text == (
        f"review 1: finding {picked} closed as policy_breach, by zhang.wei "
        f"(digest {review.digest})\n"
    )
    # the queue was read again: the finding is decided, so no longer among the undecided
    assert panel.shown.height == before - 1
    assert picked not in panel.shown.get_column("finding_id").to_list()
    # and it stays in view, its trail grown by the review
    assert panel.finding_id == picked and panel.finding.value == picked
    assert 'data-rows="1"' in panel.trail_html.value and "policy_breach" in panel.trail_html.value
    assert panel.note.value == ""
    reader = Store.open(store, read_only=True)
    try:
        assert verify_trail(reader).whole
    finally:
        reader.close()


def test_assign_button_assigns_and_a_second_decision_follows_it(
    panel: TriagePanel, store: Path
) -> None:
    picked = panel.finding_id
    assert picked is not None
    panel.assignee.value = "li.na"
    panel.assign_button.click()
    assert panel.result_text.startswith(f"review 1: finding {picked} in_review, assigned to li.na")
    panel.decision.value = "false_positive"
    panel.record.click()
    assert panel.result_text.startswith(
        f"review 2: finding {picked} closed as false_positive, assigned to li.na"
    )
    row = _queue(store).filter(pl.col("finding_id") == picked).row(0, named=True)
    assert (row["decision"], row["assignee"], row["reviews"]) == ("false_positive", "li.na", 2)


def test_a_finding_gone_from_the_store_is_refused_in_one_line(
    panel: TriagePanel, store: Path
) -> None:
    picked = panel.finding_id
    writer = Store.open(store)
    try:
        writer.execute("DELETE FROM findings WHERE finding_id = ?", [picked])
    finally:
        writer.close()
    panel.record.click()
    assert panel.result_text == (f"unknown finding {picked!r}: no such finding in {store}\n")
    assert panel.result.outputs[0]["name"] == "stderr"
    assert _queue(store).get_column("reviews").sum() == 0


def test_a_note_that_is_not_text_is_refused_and_nothing_written(
    panel: TriagePanel, store: Path
) -> None:
    panel.note.value = "see \x1b[2J the log"
    panel.record.click()
    assert panel.result_text == "the note holds the control character U+001B\n"
    assert panel.note.value == "see \x1b[2J the log"  # kept for the analyst to correct
    assert _queue(store).get_column("reviews").sum() == 0


@pytest.fixture
def held(store: Path) -> Iterator[int]:
    """Another process holding the store for writing, as a run does; its pid."""
    with held_by_another_process(store) as pid:
        yield pid


def test_a_decision_while_a_run_holds_the_store_is_queued_in_one_line(
    panel: TriagePanel, store: Path, held: int
) -> None:
    panel.record.click()
    shown = panel.result_text
    assert shown.startswith(
        f"queued, not yet recorded: {store} is locked by another posaudit process (pid {held}: run"
    )
    assert shown.count("\n") == 1
    assert len(pending_requests(store)) == 1
    # refreshing meanwhile says the same kind of line instead of failing the cell
    panel.refresh()
    assert "is in use by another posaudit process" in panel.result_text


def test_reviews_need_no_pin_key(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel of `posaudit lab` has no PIN key: triage records decisions all the same."""
    monkeypatch.delenv(PIN_KEY_ENV, raising=False)
    monkeypatch.setenv("POSAUDIT_ANALYST", "zhang.wei")
    panel = TriagePanel(nb.open_audit(store), now=NOW)
    panel.record.click()
    assert panel.result_text.startswith("review 1: ")
