"""07-triage: the review queue with filters, one finding beside it, and the analyst's decision.

The analyst narrows the queue (:func:`posaudit.review.review_queue`) by family, severity at
or above, age, assignee, decision and review status; picks a finding and reads its card, its
review trail, its evidence and the events behind it (the 05 drill-down's frames); then
records a decision or an assignment with :func:`posaudit.review.record_action`, as ``posaudit review
decide`` does: under the store's writer lock for one transaction, or queued (and said so)
while a run holds the store. Reviews need no PIN key: nothing here reads or asks for one.

The frames (:func:`queue_with_age`, :func:`filtered_queue`, :func:`trail_table`) are plain
functions; :class:`TriagePanel` only wires them to ipywidgets, so its callbacks run the same
with or without a browser (the tests click its buttons with ``button.click()``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import ipywidgets as widgets
import polars as pl

from posaudit.detect.findings import SEVERITIES, SEVERITY_RANK
from posaudit.notebook import drilldown
from posaudit.notebook.session import Audit, AuditError, read_only
from posaudit.notebook.tables import Table
from posaudit.review import (
    DECISIONS,
    STATUSES,
    Action,
    ReviewError,
    checked_action,
    record_action,
    review_queue,
)
from posaudit.review import finding_with_trail as read_finding_with_trail
from posaudit.review.queue import UNDECIDED, FindingTrail
from posaudit.review.trail import Review
from posaudit.review.values import current_analyst
from posaudit.store import StoreError

AgeFrom = Literal["window_end", "first_seen"]
# What a filter left at this value does: nothing.
ANY: Final = "any"
AGE_FROM: Final[dict[str, AgeFrom]] = {"window end": "window_end", "first seen": "first_seen"}
# The queue as the table shows it, narrow enough to sit beside the drill-down (the window is
# in the drill-down, its age here); the rest is in the drill-down.
SHOWN_COLUMNS: Final = (
    "severity",
    "rule",
    "entity_id",
    "age_days",
    "review_status",
    "decision",
    "assignee",
    "finding_id",
)
QUEUE_ROWS: Final = 20
# A dropdown of tens of thousands of findings is unusable: the filters narrow the queue, and
# the picker offers its first findings in queue order.
PICKABLE_FINDINGS: Final = 200
# The age slider's end: a review deadline in a policy is weeks, not years.
MAX_AGE_DAYS: Final = 365
# Shown digests of the trail table: enough to tell reviews apart, short enough to read.
SHORT_DIGEST: Final = 12
EVENT_COLUMNS: Final = ("ts", "lane", "event", "event_id", "terminal_id", "operator_id", "detail")


@dataclass(frozen=True)
class QueueFilter:
    """What the analyst asked the queue for; ``None`` (or 0 days) asks nothing."""

    family: str | None = None
    min_severity: str | None = None
    older_than_days: int = 0
    age_from: AgeFrom = "window_end"
    assignee: str | None = None
    decision: str | None = None
    status: str | None = None


def queue_with_age(audit: Audit) -> pl.DataFrame:
    """Every finding with its current review (the review queue, in its order) and
    ``first_seen_at``: when the run that first found it started (null for a run newer than
    ``audit``)."""
    with read_only(audit.db) as store:
        queue = review_queue(store)
    started = dict(
        zip(
            audit.runs.get_column("run_id").to_list(),
            audit.runs.get_column("started_at").to_list(),
            strict=True,
        )
    )
    first_runs = audit.all_findings().select(
        "finding_id",
        pl.col("first_run_id")
        .replace_strict(started, default=None, return_dtype=pl.Datetime("us"))
        .alias("first_seen_at"),
    )
    return queue.join(first_runs, on="finding_id", how="left", maintain_order="left")


def filtered_queue(
    queue: pl.DataFrame, filters: QueueFilter, *, now: datetime | None = None
) -> pl.DataFrame:
    """The queue's rows that ``filters`` asks for, in the queue's order, with ``age_days``.

    ``age_days`` counts whole days from the finding's ``window_end`` or ``first_seen_at``
    (``filters.age_from``) to ``now`` (default: this computer's clock); a finding whose first
    run is not known counts as found today. ``assignee`` matches any part of the name, in
    any case; ``decision`` may be ``undecided``.

    Examples
    --------
    >>> queue = pl.DataFrame({"finding_id": ["F1", "F2"], "family": ["pins", "refunds"],
    ...     "severity": ["low", "high"], "window_end": [datetime(2026, 9, 1)] * 2,
    ...     "first_seen_at": [datetime(2026, 11, 30)] * 2, "review_status": ["open"] * 2,
    ...     "decision": [None, "false_positive"], "assignee": ["Wang Li", None]})
    >>> now = datetime(2026, 12, 6)
    >>> filtered_queue(queue, QueueFilter(min_severity="medium"), now=now)["finding_id"].to_list()
    ['F2']
    >>> age = QueueFilter(older_than_days=7, age_from="first_seen")
    >>> filtered_queue(queue, age, now=now).height
    0
    >>> filtered_queue(queue, QueueFilter(assignee="wang", decision="undecided"), now=now).rows(
    ...     named=True)[0]["age_days"]
    96
    """
    now = now or datetime.now()
    since = pl.col(filters.age_from if filters.age_from == "window_end" else "first_seen_at")
    conditions: list[pl.Expr] = []
    if filters.family:
        conditions.append(pl.col("family") == filters.family)
    if filters.min_severity:
        rank = SEVERITY_RANK[filters.min_severity]
        conditions.append(
            pl.col("severity").replace_strict(SEVERITY_RANK, default=0, return_dtype=pl.Int8)
            >= rank
        )
    if filters.older_than_days > 0:
        conditions.append(pl.col("age_days") >= filters.older_than_days)
    if filters.assignee and filters.assignee.strip():
        conditions.append(
            pl.col("assignee")
            .str.to_lowercase()
            .str.contains(filters.assignee.strip().lower(), literal=True)
        )
    if filters.decision == UNDECIDED:
        conditions.append(pl.col("decision").is_null())
    elif filters.decision:
        conditions.append(pl.col("decision") == filters.decision)
    if filters.status:
        conditions.append(pl.col("review_status") == filters.status)
    aged = queue.with_columns(
        (pl.lit(now) - since).dt.total_days().fill_null(0).cast(pl.Int64).alias("age_days")
    )
    return aged.filter(*conditions) if conditions else aged


def trail_table(trail: FindingTrail) -> pl.DataFrame:
    """A finding's reviews, oldest first, as the analyst reads them (digests shortened)."""
    rows = [
        {
            "review": review.review_id,
            "reviewed_at": review.reviewed_at,
            "analyst": review.analyst,
            "status": review.status,
            "decision": review.decision,
            "assignee": review.assignee,
            "note": review.note,
            "digest": review.digest[:SHORT_DIGEST] + "…",
        }
        for review in trail.reviews
    ]
    schema = pl.Schema(
        {
            "review": pl.Int64(),
            "reviewed_at": pl.Datetime("us"),
            "analyst": pl.String(),
            "status": pl.String(),
            "decision": pl.String(),
            "assignee": pl.String(),
            "note": pl.String(),
            "digest": pl.String(),
        }
    )
    return pl.DataFrame(rows, schema=schema)


def review_line(review: Review) -> str:
    """What was recorded, in one line: as ``posaudit review decide`` prints it."""
    decided = f" as {review.decision}" if review.decision else ""
    assigned = f", assigned to {review.assignee}" if review.assignee else ""
    return (
        f"review {review.review_id}: finding {review.finding_id} {review.status}{decided}"
        f"{assigned}, by {review.analyst} (digest {review.digest})"
    )


def finding_label(row: dict[str, Any]) -> str:
    """How a finding reads in the picker: severity, rule, entity and id."""
    decided = f" · {row['decision']}" if row.get("decision") else ""
    return (
        f"{row['severity']} · {row['rule']} · {row['entity_type']} {row['entity_id']}{decided}"
        f" · {row['finding_id']}"
    )


# The errors an analyst's action can meet, each a one-line message: a review refused (unknown
# finding, bad note), a store held by a run or not there, a finding the notebook cannot show.
_SHOWN_ERRORS: Final = (ReviewError, StoreError, AuditError)


class TriagePanel:
    """The triage notebook's widgets: filters and the queue on the left, the picked finding
    with its decision, assignment, trail, evidence and events on the right.

    Build it with the notebook's :class:`Audit` and display :attr:`widget`. Every action's
    outcome, or its error in one line, shows in :attr:`result`; a recorded review re-reads
    the queue at once.
    """

    def __init__(self, audit: Audit, *, now: datetime | None = None):
        self.audit = audit
        self.now = now
        self.queue = pl.DataFrame()
        self.shown = pl.DataFrame()
        self.finding_id: str | None = None
        self._quiet = False
        self._build()
        self.refresh()

    # -- the widgets -----------------------------------------------------------------------
    def _build(self) -> None:
        narrow = widgets.Layout(width="240px")
        style = {"description_width": "80px"}
        self.family = widgets.Dropdown(
            options=[ANY], value=ANY, description="family", layout=narrow, style=style
        )
        self.severity = widgets.Dropdown(
            options=[(ANY, ANY)] + [(f"{s} or above", s) for s in SEVERITIES],
            value=ANY,
            description="severity",
            layout=narrow,
            style=style,
        )
        self.decision_filter = widgets.Dropdown(
            options=[ANY, UNDECIDED, *DECISIONS],
            value=ANY,
            description="decision",
            layout=narrow,
            style=style,
        )
        self.status_filter = widgets.Dropdown(
            options=[ANY, *STATUSES], value=ANY, description="review", layout=narrow, style=style
        )
        self.age = widgets.IntSlider(
            value=0,
            min=0,
            max=MAX_AGE_DAYS,
            description="older than",
            continuous_update=False,
            layout=widgets.Layout(width="360px"),
            style=style,
        )
        self.age_from = widgets.Dropdown(
            options=list(AGE_FROM.items()),
            value="window_end",
            description="days since",
            layout=narrow,
            style=style,
        )
        self.assignee_filter = widgets.Text(
            value="",
            description="assignee",
            placeholder="any part of a name",
            continuous_update=False,
            layout=narrow,
            style=style,
        )
        self.queue_html = widgets.HTML()
        self.finding = widgets.Dropdown(
            options=[],
            value=None,
            description="finding",
            layout=widgets.Layout(width="98%"),
            style={"description_width": "60px"},
        )
        self.pick_note = widgets.HTML()
        self.card_html = widgets.HTML()
        self.trail_html = widgets.HTML()
        self.evidence_html = widgets.HTML()
        self.decision = widgets.Dropdown(
            options=list(DECISIONS), value=DECISIONS[0], description="decision", style=style
        )
        self.note = widgets.Textarea(
            value="",
            description="note",
            placeholder="why (optional): what was checked, who confirmed it",
            layout=widgets.Layout(width="98%", height="70px"),
            style=style,
        )
        self.record = widgets.Button(
            description="Record decision", button_style="primary", icon="check"
        )
        self.assignee = widgets.Text(
            value="", description="assign to", placeholder="an analyst's name", style=style
        )
        self.assign_button = widgets.Button(description="Assign", icon="user")
        self.result = widgets.Output(layout=widgets.Layout(width="98%"))
        self.analyst = widgets.HTML()

        # names a page (and the browser test) can find each control by
        for name, control in (
            ("finding", self.finding),
            ("decision", self.decision),
            ("note", self.note),
            ("record", self.record),
            ("assignee", self.assignee),
            ("assign", self.assign_button),
            ("result", self.result),
            ("queue", self.queue_html),
            ("card", self.card_html),
            ("trail", self.trail_html),
        ):
            control.add_class(f"posaudit-triage-{name}")
        for control in (
            self.family,
            self.severity,
            self.decision_filter,
            self.status_filter,
            self.age,
            self.age_from,
            self.assignee_filter,
        ):
            control.observe(self._on_filter, names="value")
        self.finding.observe(self._on_pick, names="value")
        self.record.on_click(lambda _button: self.record_decision())
        self.assign_button.on_click(lambda _button: self.record_assignment())

        filters = widgets.HBox(
            [
                self.family,
                self.severity,
                self.decision_filter,
                self.status_filter,
                self.assignee_filter,
                self.age,
                self.age_from,
            ],
            layout=widgets.Layout(flex_flow="row wrap"),
        )
        actions = widgets.VBox(
            [
                self.analyst,
                widgets.HBox([self.decision, self.record]),
                self.note,
                widgets.HBox([self.assignee, self.assign_button]),
                self.result,
            ],
            layout=widgets.Layout(border="1px solid #ccc", padding="6px", margin="4px 0"),
        )
        left = widgets.VBox(
            [self.queue_html, self.finding, self.pick_note],
            layout=widgets.Layout(width="52%", overflow="auto"),
        )
        right = widgets.VBox(
            [self.card_html, actions, self.trail_html, self.evidence_html],
            layout=widgets.Layout(width="48%", overflow="auto", padding="0 0 0 12px"),
        )
        self.widget = widgets.VBox([filters, widgets.HBox([left, right])])

    # -- reading ---------------------------------------------------------------------------
    @property
    def filters(self) -> QueueFilter:
        """The filters as the widgets now set them."""

        def chosen(control: widgets.Dropdown) -> str | None:
            return None if control.value == ANY else str(control.value)

        return QueueFilter(
            family=chosen(self.family),
            min_severity=chosen(self.severity),
            older_than_days=int(self.age.value),
            age_from=self.age_from.value,
            assignee=self.assignee_filter.value or None,
            decision=chosen(self.decision_filter),
            status=chosen(self.status_filter),
        )

    def refresh(self) -> None:
        """Read the queue from the store again and show it as the filters ask."""
        try:
            self.audit.reread()
            self.queue = queue_with_age(self.audit)
        except _SHOWN_ERRORS as exc:
            self.show_error(exc)
            return
        families = [ANY, *sorted(self.queue.get_column("family").unique().to_list())]
        if list(self.family.options) != families:
            keep = self.family.value if self.family.value in families else ANY
            self._quiet = True  # the queue is shown once, below
            try:
                self.family.options = families
                self.family.value = keep
            finally:
                self._quiet = False
        shown_before = self.finding_id
        self._show_queue(keep_current=True)
        if shown_before is not None and self.finding_id == shown_before:
            self.show_finding(shown_before)  # its trail may have grown
        self._show_analyst()

    def _on_filter(self, _change: dict[str, Any]) -> None:
        if not self._quiet:
            self._show_queue()

    def _show_queue(self, *, keep_current: bool = False) -> None:
        if self.queue.width == 0:  # the store could not be read: its error is shown
            return
        self.shown = filtered_queue(self.queue, self.filters, now=self.now)
        title = (
            f"Findings to review: {self.shown.height:,} of {self.queue.height:,}, "
            "open first, then by severity and score"
        )
        self.queue_html.value = Table(
            self.shown,
            title,
            max_rows=QUEUE_ROWS,
            columns=SHOWN_COLUMNS,
            empty="No finding matches the filters.",
        )._repr_html_()
        picks = self.shown.head(PICKABLE_FINDINGS)
        options = [(finding_label(row), row["finding_id"]) for row in picks.iter_rows(named=True)]
        self.pick_note.value = (
            f"<small>The picker holds the first {PICKABLE_FINDINGS} findings of the queue: "
            "narrow the filters to reach the others.</small>"
            if self.shown.height > PICKABLE_FINDINGS
            else ""
        )
        ids = [value for _label, value in options]
        current = (
            self.queue.filter(pl.col("finding_id") == self.finding_id)
            if keep_current and self.finding_id is not None and self.finding_id not in ids
            else self.queue.clear()
        )
        if current.height:
            # a finding just decided stays in view (its trail grown) though the filters drop it
            options.insert(0, (finding_label(current.row(0, named=True)), self.finding_id))
            ids.insert(0, self.finding_id)
        # the finding shown stays while the queue holds it; else the queue's first is shown
        target = self.finding_id if self.finding_id in ids else (ids[0] if ids else None)
        self._quiet = True
        try:
            self.finding.options = options
            self.finding.value = target
        finally:
            self._quiet = False
        if target is not None and target != self.finding_id:
            self.show_finding(target)

    def _on_pick(self, change: dict[str, Any]) -> None:
        if not self._quiet and change["new"] is not None and change["new"] != self.finding_id:
            self.show_finding(str(change["new"]))

    def _show_analyst(self) -> None:
        try:
            who = current_analyst()
        except ReviewError as exc:
            self.analyst.value = f"<b>Recording as:</b> nobody yet ({exc})"
            return
        self.analyst.value = f"<b>Recording as</b> {who} (<code>$POSAUDIT_ANALYST</code>)"

    def show_finding(self, finding_id: str) -> None:
        """Show one finding beside the queue: card, trail, evidence and the events behind it."""
        self.finding_id = finding_id
        try:
            with read_only(self.audit.db) as store:
                trail = read_finding_with_trail(store, finding_id)
            finding = self.audit.finding(finding_id)
            events = drilldown.evidence_events(drilldown.timeline(self.audit, finding_id))
        except _SHOWN_ERRORS as exc:
            self.card_html.value = self.trail_html.value = self.evidence_html.value = ""
            self.show_error(exc)
            return
        current = trail.current
        state = (
            f"review {current.status}"
            + (f", {current.decision}" if current.decision else ", undecided")
            + (f", assigned to {current.assignee}" if current.assignee else "")
            if current
            else "never reviewed: open, undecided"
        )
        self.card_html.value = Table(
            drilldown.finding_card(self.audit, finding_id), f"Finding {finding_id}: {state}"
        )._repr_html_()
        self.trail_html.value = Table(
            trail_table(trail),
            "Its review trail, oldest first",
            max_rows=30,
            empty="No review yet: the finding is open and undecided.",
        )._repr_html_()
        self.evidence_html.value = (
            Table(drilldown.evidence_table(finding), "Evidence", max_rows=40)._repr_html_()
            + Table(
                events,
                "The events the evidence names",
                columns=EVENT_COLUMNS,
                max_rows=40,
                empty="The evidence names no event (the finding rests on a setting or a count).",
            )._repr_html_()
        )

    # -- writing ---------------------------------------------------------------------------
    def record_decision(self) -> Review | None:
        """Record the chosen decision and note on the picked finding; re-read the queue."""
        note = self.note.value if self.note.value.strip() else None
        return self._act(
            lambda: checked_action("decide", decision=str(self.decision.value), note=note)
        )

    def record_assignment(self) -> Review | None:
        """Assign the picked finding to the name typed (with the note, if any)."""
        note = self.note.value if self.note.value.strip() else None
        return self._act(lambda: checked_action("assign", assignee=self.assignee.value, note=note))

    def _act(self, make: Callable[[], Action]) -> Review | None:
        """Record an action on the picked finding (or queue it while a run holds the store,
        and say so); the review recorded, None when queued or refused."""
        self.result.outputs = ()
        if self.finding_id is None:
            self.result.append_stderr("pick a finding in the queue first\n")
            return None
        try:
            outcome = record_action(self.audit.db, self.finding_id, make())
        except _SHOWN_ERRORS as exc:
            self.show_error(exc)
            return None
        self.note.value = ""
        if outcome.queued is not None:
            self.result.append_stdout(
                f"queued, not yet recorded: {outcome.held_by}; kept as request "
                f"{outcome.queued.request_id} and applied when the store is free\n"
            )
            return None
        self.refresh()  # its own error, if the store is taken meanwhile, shows below the review
        self.result.outputs = (
            {
                "output_type": "stream",
                "name": "stdout",
                "text": review_line(outcome.review) + "\n",
            },
            *self.result.outputs,
        )
        return outcome.review

    def show_error(self, exc: BaseException) -> None:
        """An error's one line in :attr:`result`."""
        self.result.outputs = ()
        self.result.append_stderr(str(exc).splitlines()[0] + "\n")

    @property
    def result_text(self) -> str:
        """What :attr:`result` shows, as text."""
        return "".join(str(output.get("text", "")) for output in self.result.outputs)
