"""The local engine's run: plan, read, detect, record, in one process on the store.

A run reads the tables the enabled rules name, supplies the inputs no table holds (the PIN
exclusion list, the default-PIN digests, the data window), collects all rules together so
that Polars shares their work, and merges the findings into the store in one transaction
with a ``pipeline_runs`` row. Each stage has its module: :mod:`~posaudit.run.plan` (full or
incremental, and what each rule reads and re-decides), :mod:`~posaudit.run.read`,
:mod:`~posaudit.run.inputs`, :mod:`~posaudit.run.detect` (and :mod:`~posaudit.run.score`
for the anomaly score), :mod:`~posaudit.run.record`, and :mod:`~posaudit.run.kept` for what
a run keeps so that the next one does only the new day's work.

The anomaly score, the longest step, starts on its own thread as soon as its tables are
read, while the others are read and detected; the PIN exclusion list, when not kept, is
built on another thread while the store is read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from posaudit.detect.findings import FINDINGS_SCHEMA
from posaudit.detect.policy import Policy
from posaudit.detect.registry import Rule
from posaudit.pins import PinDigester, pin_digester
from posaudit.rules import all_rules
from posaudit.run.detect import findings_by_rule, one_per_finding_id, outside_lookback
from posaudit.run.inputs import KeptExclusion, derived_inputs, kept_exclusion
from posaudit.run.kept import (
    forget_kept_refunds,
    refunds_kept_by,
    write_kept_days,
    write_kept_refunds,
)
from posaudit.run.plan import RuleScope, RunPlan, check_runnable, over_all_data, plan_run
from posaudit.run.read import (
    ColumnsToRead,
    KeptDays,
    KeptRefunds,
    TableReader,
    columns_to_read,
    read_inputs,
)
from posaudit.run.record import (
    EventSink,
    RunSummary,
    ignore_events,
    next_run_id,
    record_failed_run,
    run_summary,
    write_run,
)
from posaudit.run.score import ScoreOutcome, fits_a_model, keep_score, score_outcome
from posaudit.score.operators import SCORE_RULE, preload_model
from posaudit.store import Store
from posaudit.store.catalogue import WINDOW_TABLES

# Starts the anomaly score on its tables as soon as they are read, with how the run reads
# the refunds.
ScoreStarter = Callable[[dict[str, pl.LazyFrame], KeptRefunds | None], None]


def _digests_of(rules: list[Rule], scopes: Mapping[str, RuleScope]) -> frozenset[str] | None:
    """The operators whose PIN digests the exclusion list is needed for: those the rules
    reading it re-decide, when each names them (None: every operator's)."""
    wanted: set[str] = set()
    for r in rules:
        if "weak_pin_digests" not in r.inputs:
            continue
        scope = scopes[r.name]
        if scope.entities is None or scope.entity_key != "operator_id":
            return None
        wanted |= scope.entities
    return frozenset(wanted)


def run_pipeline(
    store: Store,
    policy: Policy,
    *,
    full: bool = False,
    on_event: EventSink | None = None,
    digester: PinDigester | None = None,
) -> RunSummary:
    """Run every enabled rule (incrementally when possible) and record the run. Raises StoreError.

    ``store`` must be open for writing: its writer lock makes this process the only
    writer. A failure after planning is recorded as a ``failed`` run and re-raised; the
    findings are then untouched. ``digester``: the PIN key's, else :func:`pin_digester`'s.
    """
    emit = on_event or ignore_events
    rules = [r for r in all_rules().values() if policy.enabled(r.name)]
    started_at = datetime.now().replace(microsecond=0)
    started = time.perf_counter()
    digester = pin_digester() if digester is None else digester
    check_runnable(store, digester)
    plan = plan_run(store, policy, rules, full=full)
    # the plan scanned the event times of the whole history to notice late data: a night
    # reads only its days from here on, so those cached blocks are let go (measured: 55 MiB
    # less at the peak of a night on 360 days, no slower; docs/benchmarks.md)
    store.release_cache()
    planned = time.perf_counter() - started
    run_id = next_run_id(store)
    emit(
        "plan",
        {
            "run_id": run_id,
            "mode": plan.mode,
            "reason": plan.reason,
            "previous_run_id": plan.previous_run_id,
            "rules": len(rules),
            "rules_over_all_data": len(plan.rules_over_all_data),
        },
    )
    run = LocalRun(store, policy, rules, plan, run_id, digester, emit)
    try:
        summary = run.execute(started_at, started)
    except Exception as exc:
        record_failed_run(
            store,
            policy,
            run_id=run_id,
            mode=plan.mode,
            engine="local",
            started_at=started_at,
            seconds=time.perf_counter() - started,
            exc=exc,
        )
        raise
    summary.stage_seconds = {"plan": planned, **summary.stage_seconds}
    return summary


@dataclass
class ReadStage:
    """What the read stage hands on: each rule's tables, the runner's inputs, and what the
    run keeps of its reading (the refunds frame, the columns, the exclusion list)."""

    reader: TableReader
    inputs: dict[str, dict[str, pl.LazyFrame]]
    derived: dict[str, pl.LazyFrame]
    columns: ColumnsToRead
    exclusion: KeptExclusion

    def keep(self, store: Store, run_id: str) -> None:
        """Keep what the next run starts from and the score does not decide (in the run's
        transaction): the refunds frame (or mark it as nobody's), the columns and the
        exclusion list."""
        self.columns.keep(store)
        self.exclusion.keep(store, self.derived)
        refunds = self.reader.refunds_to_keep
        if refunds is not None:
            write_kept_refunds(store, run_id, refunds[0], changed_from=refunds[1])
        else:
            forget_kept_refunds(store)
        for name, days in self.reader.days_to_keep.items():
            write_kept_days(store, run_id, name, days.rows, redone=days.redone, reach=days.reach)


@dataclass
class ScoreInBackground:
    """The anomaly score on its own thread, started as soon as its tables are read."""

    pool: ThreadPoolExecutor
    store: Store
    rule: Rule | None
    policy: Policy
    scopes: Mapping[str, RuleScope]
    running: Future[ScoreOutcome] | None = None
    # set once the score reads the store no more, or has stopped
    read_store: threading.Event = field(default_factory=threading.Event)

    def start(self, tables: dict[str, pl.LazyFrame], refunds: KeptRefunds | None) -> None:
        assert self.rule is not None
        scope = self.scopes[self.rule.name]
        self.running = self.pool.submit(self._score, tables, scope, refunds)

    def _score(
        self, tables: dict[str, pl.LazyFrame], scope: RuleScope, refunds: KeptRefunds | None
    ) -> ScoreOutcome:
        assert self.rule is not None
        try:
            return score_outcome(
                self.store, self.rule, tables, self.policy, scope, refunds, self.read_store.set
            )
        finally:
            self.read_store.set()

    def wait_for_its_reads(self) -> None:
        """Wait until the score, if it runs, reads the store no more (or has stopped)."""
        if self.running is not None:
            self.read_store.wait()

    def outcome(self) -> ScoreOutcome | None:
        """The score's outcome once it is done (None: the run has no score)."""
        return self.running.result() if self.running is not None else None


@dataclass
class LocalRun:
    """One planned run of the local engine, stage by stage."""

    store: Store
    policy: Policy
    rules: list[Rule]
    plan: RunPlan
    run_id: str
    digester: PinDigester
    emit: EventSink

    def execute(self, started_at: datetime, started: float) -> RunSummary:
        stages: dict[str, float] = {}
        mark = time.perf_counter()
        scopes = dict(self.plan.scopes)
        score = next((r for r in self.rules if r.name == SCORE_RULE), None)
        if score is not None and fits_a_model(scopes[score.name], self.plan.data_to):
            preload_model()  # while the store is read
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="posaudit-score") as pool:
            scoring = ScoreInBackground(pool, self.store, score, self.policy, scopes)
            read = self.read(scopes, score, scoring.start, scoring.wait_for_its_reads)
            # Every table is read: what DuckDB cached reading them (97 MiB at 360 days) is let
            # go before the rules run, once the score has read what it keeps from the store
            # (measured: docs/benchmarks.md).
            scoring.wait_for_its_reads()
            self.store.release_cache()
            stages["read"] = time.perf_counter() - mark
            self.emit("read", {"rows": read.reader.rows_read, "seconds": round(stages["read"], 3)})

            mark = time.perf_counter()
            frames = self.detect([r for r in self.rules if r is not score], read, scopes)
            with self.store.transaction():
                # What the next run starts from and owes nothing to the score is written
                # while the score, often the longest step, still runs on its own thread.
                read.keep(self.store, self.run_id)
                outcome = scoring.outcome()
                findings = self.all_findings(frames, scopes, outcome)
                stages["detect"] = time.perf_counter() - mark
                over_all = over_all_data(scopes)
                self.emit(
                    "detect",
                    {
                        "rules": len(self.rules),
                        "rules_over_all_data": len(over_all),
                        "findings": findings.height,
                        "seconds": round(stages["detect"], 3),
                    },
                )

                mark = time.perf_counter()
                read_from = read.reader.earliest(WINDOW_TABLES, self.plan.data_from)
                written = write_run(
                    self.store,
                    findings,
                    run_id=self.run_id,
                    scopes=scopes,
                    policy=self.policy,
                    mode=self.plan.mode,
                    engine="local",
                    started_at=started_at,
                    started=started,
                    data_from=read_from,
                    data_to=self.plan.data_to,
                    rows_read=read.reader.rows_read,
                    in_transaction=True,
                    keep_state=lambda: keep_score(self.store, self.run_id, outcome),
                    counted=(
                        (self.plan.counted, self.plan.changed_from.date())
                        if self.plan.counted is not None and self.plan.changed_from is not None
                        else None
                    ),
                    settled=self.plan.settled,
                )
        written.queued.finish(self.store.path)
        stages["write"] = time.perf_counter() - mark
        self.emit("write", written.counts.event_fields(stages["write"]))
        return run_summary(
            written,
            run_id=self.run_id,
            mode=self.plan.mode,
            reason=self.plan.reason,
            previous_run_id=self.plan.previous_run_id,
            started_at=started_at,
            started=started,
            rows_read=read.reader.rows_read,
            data_from=read_from,
            data_to=self.plan.data_to,
            rules_over_all_data=over_all,
            policy=self.policy,
            stage_seconds=stages,
        )

    def read(
        self,
        scopes: Mapping[str, RuleScope],
        score: Rule | None,
        start_score: ScoreStarter,
        wait_for_score: Callable[[], None],
    ) -> ReadStage:
        """Read every rule's tables, the score's first (handed to ``start_score`` as soon as
        they are read), while the runner's inputs are built on a second thread;
        ``wait_for_score`` returns once the score reads the store no more."""
        store, rules, plan = self.store, self.rules, self.plan
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="posaudit-derive") as builder:
            operators = store.read("operators")
            exclusion = kept_exclusion(
                store, rules, operators, digester=self.digester, only=_digests_of(rules, scopes)
            )
            building = builder.submit(
                derived_inputs,
                rules,
                operators,
                window=(plan.data_from, plan.data_to),
                digester=self.digester,
                exclusion=exclusion.rows,
            )
            columns = columns_to_read(store, rules, self.policy)
            current = plan.changed_from is not None and refunds_kept_by(store, plan.previous_run_id)
            # a removed event may have been a refund that kept an earlier day's sale from
            # reading as cash-like: the frames of days are then computed whole
            days_current = plan.changed_from is not None and not plan.events_removed
            reader = TableReader(
                store,
                columns.columns,
                KeptRefunds(plan.changed_from if current else None),
                KeptDays(
                    plan.changed_from.date() if days_current else None,  # type: ignore[union-attr]
                    plan.previous_run_id,
                ),
            )

            # The score's tables hold a night's refunds with their sales, of any age, found
            # by a scan of every transaction id, which DuckDB then keeps cached (75 MiB at
            # 360 days): it is let go before the other tables are read, once the score has
            # read what it keeps (measured: docs/benchmarks.md).
            def let_go() -> None:
                wait_for_score()
                store.release_cache()

            inputs = read_inputs(
                reader,
                rules,
                scopes,
                read_first=score,
                when_read=lambda tables: start_score(tables, reader.kept),
                after_first=let_go,
            )
            return ReadStage(reader, inputs, building.result(), columns, exclusion)

    def detect(
        self, rules: list[Rule], read: ReadStage, scopes: dict[str, RuleScope]
    ) -> dict[str, pl.DataFrame]:
        """Each rule's findings; a windowed rule whose findings outgrow its look-back is
        re-run over all the data (its scope in ``scopes`` says so)."""
        frames = findings_by_rule(rules, read.inputs, read.derived, self.policy, scopes)
        redo = [r for r in rules if outside_lookback(r, scopes[r.name], frames[r.name])]
        if redo:
            for r in redo:
                scopes[r.name] = RuleScope(
                    r.name, None, None, "a finding spans more than its look-back"
                )
            again = read_inputs(read.reader, redo, scopes)
            frames |= findings_by_rule(redo, again, read.derived, self.policy, scopes)
        return frames

    def all_findings(
        self,
        frames: dict[str, pl.DataFrame],
        scopes: dict[str, RuleScope],
        outcome: ScoreOutcome | None,
    ) -> pl.DataFrame:
        """The run's findings, one per id, the score's with the others'; the score's scope
        then says from when it re-decided."""
        if outcome is not None:
            frames[SCORE_RULE] = outcome.findings
            scope = scopes[SCORE_RULE]
            scopes[SCORE_RULE] = RuleScope(
                SCORE_RULE, scope.read_from, outcome.recheck_from, scope.why_all
            )
        if not self.rules:
            return pl.DataFrame(schema=FINDINGS_SCHEMA)
        return one_per_finding_id(pl.concat([frames[r.name] for r in self.rules]))
