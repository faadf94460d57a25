"""Recording a run: its findings merged into the store, its ``pipeline_runs`` row, its summary.

A finding's id is deterministic (rule, entity, window start), so re-runs never duplicate it.
``first_run_id`` is the run that first reported it and ``run_id`` the latest run whose result
includes it (an incremental run includes the findings it carries over). A finding a run no
longer reports is marked ``resolved`` with ``resolved_run_id``, never deleted, and opens
again if a later run reports it. Everything a run writes commits in one transaction: a run
that fails or is killed leaves the store as it was (a failure is then recorded as a
``failed`` row of its own). Both engines end their runs here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final, Literal

import polars as pl

from posaudit import __version__
from posaudit.detect.findings import FINDINGS_SCHEMA, SEVERITIES, SEVERITY_RANK
from posaudit.detect.policy import Policy
from posaudit.review import apply_queued, respect_decisions, snoozed_sql
from posaudit.review.pending import Settled
from posaudit.run.dimensions import keep_dimensions
from posaudit.run.plan import FINGERPRINT_KEY, Mode, RuleScope, SettledSums, data_fingerprint
from posaudit.store import Store

Engine = Literal["local", "spark"]
# Receives each stage of a run as it ends: its name and its figures.
EventSink = Callable[[str, Mapping[str, object]], None]
# The column of a run's table of open findings counting those of rules the run did not run.
NOT_RUN_COLUMN: Final = "rule not run"


def ignore_events(_name: str, _fields: Mapping[str, object]) -> None:
    """An event sink that keeps nothing."""


def next_run_id(store: Store) -> str:
    return f"run-{_count(store, 'SELECT count(*) FROM pipeline_runs') + 1:05d}"


@dataclass
class MergeCounts:
    new: int = 0
    seen: int = 0  # open after the run and known before: re-decided or carried over
    carried: int = 0  # of ``seen``: carried over unchanged, outside what the run re-decided
    reopened: int = 0  # of ``seen``: resolved before, reported again
    resolved: int = 0
    # open findings of rules the run did not run (switched off in the policy): kept as they
    # were, open and of the run that last ran their rule; neither seen nor resolved
    not_run: int = 0
    rules_not_run: list[str] = field(default_factory=list)
    # of ``seen``: closed by an analyst as a false positive or benign, reported again with no
    # more evidence: not brought back (docs/review.md)
    dismissed: int = 0
    # of ``seen``: so dismissed, but reported with more events inside: reopened for review
    reopened_by_evidence: int = 0
    # of ``new``: snoozed by an analyst, so no part of the alert
    snoozed: int = 0

    def event_fields(self, seconds: float) -> dict[str, object]:
        """The figures of a run's ``write`` event."""
        return {
            "new": self.new,
            "seen": self.seen,
            "carried": self.carried,
            "resolved": self.resolved,
            "not_run": self.not_run,
            "dismissed": self.dismissed,
            "reopened_by_evidence": self.reopened_by_evidence,
            "seconds": round(seconds, 3),
        }


def merge_findings(
    store: Store, findings: pl.DataFrame, run_id: str, scopes: Mapping[str, RuleScope]
) -> MergeCounts:
    """Merge a run's findings into the store (inside the caller's transaction).

    New ones are inserted; known ones refreshed (and reopened if resolved); open findings in
    what the run re-decided but did not report are resolved; the other open findings (older
    than what an incremental run re-decides, see :mod:`posaudit.run.plan`) are carried over.
    Findings of rules the run did not run at all (switched off in the policy) are left as they
    were: nothing decided they are gone, so they stay open, under the run that last ran their
    rule, and are counted apart (``not_run``), never as resolved.
    """
    counts = MergeCounts()
    store.execute("CREATE TEMP TABLE _run_findings AS SELECT * FROM findings LIMIT 0")
    store.execute(
        "CREATE TEMP TABLE _run_scope (rule VARCHAR, recheck_from TIMESTAMP, entity_key VARCHAR)"
    )
    store.execute("CREATE TEMP TABLE _run_entities (rule VARCHAR, entity VARCHAR)")
    try:
        for column in ("first_run_id", "status", "resolved_run_id"):
            store.execute(f"ALTER TABLE _run_findings DROP COLUMN {column}")
        staged = findings.with_columns(pl.lit(run_id).alias("run_id"))
        if staged.height:
            store.append(
                "_run_findings",
                staged.select(["finding_id", "run_id", *FINDINGS_SCHEMA.names()[1:]]),
            )
        scope_frame = pl.DataFrame(
            {
                "rule": list(scopes),
                "recheck_from": [s.recheck_from for s in scopes.values()],
                "entity_key": [
                    None if s.entities is None else s.entity_key for s in scopes.values()
                ],
            },
            schema={"rule": pl.String, "recheck_from": pl.Datetime("us"), "entity_key": pl.String},
        )
        if scope_frame.height:
            store.append("_run_scope", scope_frame)
        entity_frame = pl.DataFrame(
            [(name, e) for name, s in scopes.items() for e in sorted(s.entities or ())],
            schema={"rule": pl.String, "entity": pl.String},
            orient="row",
        )
        if entity_frame.height:
            store.append("_run_entities", entity_frame)
        # open findings of a rule the run did not run: untouched
        not_run = "status = 'open' AND rule NOT IN (SELECT rule FROM _run_scope)"
        counts.not_run = _count(store, f"SELECT count(*) FROM findings WHERE {not_run}")
        counts.rules_not_run = [
            str(r[0])
            for r in store.query(
                f"SELECT DISTINCT rule FROM findings WHERE {not_run} ORDER BY rule"
            )
        ]
        # open, not reported, of a rule the run ran, and in what that rule re-decided: the
        # findings ending from its recheck time on (an open one has not ended), of the
        # entities it re-decided when it names them
        unreported = (
            "f.status = 'open' AND f.finding_id NOT IN (SELECT finding_id FROM _run_findings) "
            "AND EXISTS (SELECT 1 FROM _run_scope s WHERE s.rule = f.rule "
            "AND (s.recheck_from IS NULL OR f.window_end IS NULL "
            "OR f.window_end >= s.recheck_from) "
            "AND (s.entity_key IS NULL OR EXISTS (SELECT 1 FROM _run_entities e "
            "WHERE e.rule = f.rule AND e.entity = CASE s.entity_key "
            "WHEN 'merchant_id' THEN f.merchant_id ELSE f.entity_id END)))"
        )
        counts.resolved = _count(store, f"SELECT count(*) FROM findings f WHERE {unreported}")
        store.execute(
            f"UPDATE findings SET status = 'resolved', resolved_run_id = ? WHERE finding_id IN "
            f"(SELECT f.finding_id FROM findings f WHERE {unreported})",
            [run_id],
        )
        carried = (
            "status = 'open' AND finding_id NOT IN (SELECT finding_id FROM _run_findings) "
            "AND rule IN (SELECT rule FROM _run_scope)"
        )
        counts.carried = _count(store, f"SELECT count(*) FROM findings WHERE {carried}")
        store.execute(f"UPDATE findings SET run_id = ? WHERE {carried}", [run_id])
        known = _count(
            store, "SELECT count(*) FROM _run_findings n JOIN findings f USING (finding_id)"
        )
        counts.reopened = _count(
            store,
            "SELECT count(*) FROM _run_findings n JOIN findings f USING (finding_id) "
            "WHERE f.status <> 'open'",
        )
        store.execute(
            "UPDATE findings SET run_id = n.run_id, severity = n.severity, score = n.score, "
            "merchant_id = n.merchant_id, window_end = n.window_end, summary = n.summary, "
            "evidence = n.evidence, status = 'open', resolved_run_id = NULL "
            "FROM _run_findings n WHERE findings.finding_id = n.finding_id"
        )
        store.execute(
            "INSERT INTO findings SELECT n.finding_id, n.run_id, n.run_id, n.rule, n.family, "
            "n.severity, n.score, n.entity_type, n.entity_id, n.merchant_id, n.window_start, "
            "n.window_end, n.summary, n.evidence, 'open', NULL "
            "FROM _run_findings n ANTI JOIN findings f USING (finding_id)"
        )
        counts.new = findings.height - known
        counts.seen = known + counts.carried
        effects = respect_decisions(store, run_id, "_run_findings")
        counts.dismissed, counts.reopened_by_evidence = effects.dismissed, effects.reopened
    finally:
        store.execute("DROP TABLE _run_findings")
        store.execute("DROP TABLE _run_scope")
        store.execute("DROP TABLE _run_entities")
    return counts


def _count(store: Store, sql: str) -> int:
    return int(store.query(sql)[0][0])  # type: ignore[call-overload]


def in_severity_order(counts: Mapping[str, int]) -> dict[str, int]:
    """Counts by severity, from info to critical, only the severities present."""
    return {s: counts[s] for s in SEVERITIES if s in counts}


def pivot_by_severity(counts: pl.DataFrame) -> pl.DataFrame:
    """family x severity counts, severities in order, zeros filled."""
    if counts.is_empty():
        return pl.DataFrame({"family": []}, schema={"family": pl.String})
    wide = counts.pivot(on="severity", index="family", values="n").fill_null(0).sort("family")
    present = [s for s in SEVERITIES if s in wide.columns]
    return wide.select("family", *present)


@dataclass(frozen=True)
class WrittenRun:
    """What merging a run's findings left in the store."""

    counts: MergeCounts
    new_by_severity: dict[str, int]
    open_by_family_and_severity: pl.DataFrame
    # the decisions queued while the run held the store, applied in its transaction: their
    # files are removed once it commits (``queued.finish``)
    queued: Settled = field(default_factory=Settled)


def write_run(
    store: Store,
    findings: pl.DataFrame,
    *,
    run_id: str,
    scopes: Mapping[str, RuleScope],
    policy: Policy,
    mode: Mode,
    engine: Engine,
    started_at: datetime,
    started: float,
    data_from: datetime,
    data_to: datetime,
    rows_read: int,
    keep_state: Callable[[], None] | None = None,
    in_transaction: bool = False,
    counted: tuple[Mapping[str, Mapping[str, int]], date] | None = None,
    settled: Mapping[str, SettledSums] | None = None,
) -> WrittenRun:
    """Merge a run's findings, record the run and the data's fingerprint, in one transaction.

    Either engine ends its run here. ``started`` is the run's ``time.perf_counter()`` at its
    start; ``data_to`` is the watermark the next run starts from. ``keep_state`` writes what
    the run keeps for the next (:mod:`posaudit.run.kept`) in the same transaction;
    ``in_transaction``: the caller's transaction, which it commits, is the one (it may hold
    more of the run's state). ``counted``: the events per table and day the plan counted,
    current before the given day, from which the data's fingerprint is counted again;
    ``settled``: each table's count and sum of event times before a time, as the plan found
    them (the fingerprint's are then read from that time on, not over the whole history).
    """
    with nullcontext() if in_transaction else store.transaction():
        counts = merge_findings(store, findings, run_id, scopes)
        if keep_state is not None:
            keep_state()
        # what analysts decided while the run held the store, after the run's own reviews
        queued = apply_queued(store)
        open_now = store.frame(
            "SELECT family, CAST(severity AS VARCHAR) AS severity, count(*) AS n FROM findings "
            "WHERE status = 'open' GROUP BY ALL"
        )
        # a snoozed finding is recorded and listed, but no part of the alert
        new_rows = store.query(
            "SELECT CAST(severity AS VARCHAR), count(*) FROM findings f "
            f"WHERE first_run_id = ? AND NOT {snoozed_sql(store, 'f')} GROUP BY ALL",
            [run_id],
        )
        counts.snoozed = counts.new - sum(int(n) for _, n in new_rows)  # type: ignore[call-overload]
        not_run_by_family = _open_by_family(store, counts.rules_not_run)
        seconds = time.perf_counter() - started
        store.execute(
            "INSERT INTO pipeline_runs (run_id, started_at, finished_at, status, mode, engine, "
            "data_from, data_to, watermark, rows_read, findings_total, findings_new, "
            "findings_seen, findings_resolved, policy_hash, policy_toml, code_version, seconds) "
            "VALUES (?, ?, ?, 'succeeded', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                started_at,
                datetime.now().replace(microsecond=0),
                mode,
                engine,
                data_from,
                data_to,
                data_to,
                rows_read,
                counts.new + counts.seen,
                counts.new,
                counts.seen,
                counts.resolved,
                policy.hash,
                policy.text,
                __version__,
                round(seconds, 3),
            ],
        )
        known, recount_from = counted if counted is not None else (None, None)
        fingerprint = json.dumps(
            data_fingerprint(
                store, data_to, known=known, recount_from=recount_from, settled=settled
            )
        )
        store.set_meta(FINGERPRINT_KEY, fingerprint)
        keep_dimensions(store, run_id)
    if not in_transaction:
        queued.finish(store.path)
    by_severity = {str(s): int(n) for s, n in new_rows}  # type: ignore[call-overload]
    table = pivot_by_severity(open_now)
    if not_run_by_family is not None:
        # the open findings the run left as they were, of rules switched off in its policy
        table = table.join(
            not_run_by_family.rename({"n": NOT_RUN_COLUMN}), on="family", how="left"
        ).with_columns(pl.col(NOT_RUN_COLUMN).fill_null(0))
    return WrittenRun(
        counts=counts,
        new_by_severity=in_severity_order(by_severity),
        open_by_family_and_severity=table,
        queued=queued,
    )


def _open_by_family(store: Store, rules: list[str]) -> pl.DataFrame | None:
    """Open findings per family of ``rules`` (None when there are none to count)."""
    if not rules:
        return None
    names = ", ".join(f"$r{i}" for i in range(len(rules)))
    return store.frame(
        "SELECT family, count(*) AS n FROM findings WHERE status = 'open' "
        f"AND rule IN ({names}) GROUP BY ALL",
        {f"r{i}": rule for i, rule in enumerate(rules)},
    )


def record_failed_run(
    store: Store,
    policy: Policy,
    *,
    run_id: str,
    mode: Mode,
    engine: Engine,
    started_at: datetime,
    seconds: float,
    exc: BaseException,
) -> None:
    """Record a failed run in its own transaction; the findings stay as they were."""
    error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
    try:
        with store.transaction():
            store.execute(
                "INSERT INTO pipeline_runs (run_id, started_at, finished_at, status, mode, "
                "engine, policy_hash, policy_toml, code_version, seconds, error) "
                "VALUES (?, ?, ?, 'failed', ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    started_at,
                    datetime.now().replace(microsecond=0),
                    mode,
                    engine,
                    policy.hash,
                    policy.text,
                    __version__,
                    round(seconds, 3),
                    error,
                ],
            )
    except Exception:  # the original error is the one to report
        pass


@dataclass
class RunSummary:
    """What a run did, for the command line, logs and the scheduler's JSON line."""

    run_id: str
    mode: Mode
    reason: str
    previous_run_id: str | None
    started_at: datetime
    finished_at: datetime
    seconds: float
    rows_read: int
    data_from: datetime
    data_to: datetime
    watermark: datetime
    counts: MergeCounts
    findings_open: int
    rules_over_all_data: list[str]
    policy_hash: str
    code_version: str
    new_by_severity: dict[str, int] = field(default_factory=dict)
    open_by_family_and_severity: pl.DataFrame = field(default_factory=pl.DataFrame)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # the review actions queued while the run held the store that it applied (request ids)
    queued_applied: list[str] = field(default_factory=list)

    @property
    def new(self) -> int:
        return self.counts.new

    @property
    def seen(self) -> int:
        return self.counts.seen

    @property
    def resolved(self) -> int:
        return self.counts.resolved

    def new_at_or_above(self, severity: str) -> int:
        """New findings of this run at or above ``severity``."""
        floor = SEVERITY_RANK[severity]
        return sum(n for s, n in self.new_by_severity.items() if SEVERITY_RANK[s] >= floor)

    def to_record(self) -> dict[str, object]:
        """The summary as a flat JSON-ready dict (the scheduler's line)."""
        record: dict[str, Any] = {
            "run_id": self.run_id,
            "status": "succeeded",
            "mode": self.mode,
            "reason": self.reason,
            "previous_run_id": self.previous_run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "data_from": self.data_from.isoformat(),
            "data_to": self.data_to.isoformat(),
            "watermark": self.watermark.isoformat(),
            "rows_read": self.rows_read,
            "findings": self.findings_open,
            "new": self.new,
            "seen": self.seen,
            "carried": self.counts.carried,
            "reopened": self.counts.reopened,
            "resolved": self.resolved,
            "not_run": self.counts.not_run,
            "rules_not_run": self.counts.rules_not_run,
            "dismissed": self.counts.dismissed,
            "reopened_by_evidence": self.counts.reopened_by_evidence,
            "snoozed": self.counts.snoozed,
            "queued_reviews_applied": len(self.queued_applied),
            "new_by_severity": self.new_by_severity,
            "rules_over_all_data": len(self.rules_over_all_data),
            "policy_hash": self.policy_hash,
            "code_version": self.code_version,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
        }
        return record


def run_summary(
    written: WrittenRun,
    *,
    run_id: str,
    mode: Mode,
    reason: str,
    previous_run_id: str | None,
    started_at: datetime,
    started: float,
    rows_read: int,
    data_from: datetime,
    data_to: datetime,
    rules_over_all_data: list[str],
    policy: Policy,
    stage_seconds: dict[str, float],
) -> RunSummary:
    """The summary of a run that wrote ``written`` and ends now; its watermark is ``data_to``."""
    counts = written.counts
    return RunSummary(
        run_id=run_id,
        mode=mode,
        reason=reason,
        previous_run_id=previous_run_id,
        started_at=started_at,
        finished_at=datetime.now().replace(microsecond=0),
        seconds=time.perf_counter() - started,
        rows_read=rows_read,
        data_from=data_from,
        data_to=data_to,
        watermark=data_to,
        counts=counts,
        findings_open=counts.new + counts.seen,
        rules_over_all_data=rules_over_all_data,
        policy_hash=policy.hash,
        code_version=__version__,
        new_by_severity=written.new_by_severity,
        open_by_family_and_severity=written.open_by_family_and_severity,
        stage_seconds=stage_seconds,
        queued_applied=[r.request_id for r in written.queued.applied],
    )


def event_line(event: str, fields: Mapping[str, object], *, as_json: bool) -> str:
    """One structured log line: logfmt (``event=read rows=12``) or a JSON object."""
    stamp = datetime.now().isoformat(timespec="seconds")
    if as_json:
        return json.dumps({"ts": stamp, "event": event, **fields}, default=str)
    parts = [f"ts={stamp}", f"event={event}"]
    for key, value in fields.items():
        if value is None:
            continue
        text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        if not text or any(c in text for c in ' "=\t'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)
