"""Scheduled runs: a pipeline definition's steps after detection, and their outputs.

A pipeline definition (TOML, ``pipelines/*.toml``, see docs/scheduling.md) names a policy,
the detect step, and output steps: the run's findings as files, its evaluation against the
simulator's labels, its report. A failed output step is reported and the others still run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from posaudit.atomic import written_file
from posaudit.config import ConfigError, merge_settings, parse_toml, read_text_file
from posaudit.detect.findings import SEVERITIES, SEVERITY_RANK
from posaudit.run.plan import Mode
from posaudit.run.record import EventSink, RunSummary
from posaudit.store import Store, StoreError
from posaudit.untrusted import csv_safe

StepKind = Literal["detect", "findings", "evaluate", "report"]


class PipelineError(ConfigError):
    """A pipeline definition that cannot be used; the message is one line for the user."""


_PIPELINE_DEFAULTS: Final[dict[str, Any]] = {
    "name": "",
    "description": "",
    "mode": "incremental",
    "fail_on": "",
    "out": "out",
    "policy": "",
}
_STEP_DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    "detect": {},
    "findings": {"folder": "{date}", "which": "new", "formats": ["csv", "jsonl"]},
    "evaluate": {"folder": "{date}"},
    "report": {"folder": "{date}", "formats": ["html"], "lang": "en", "timeout_minutes": 60},
}
_FINDINGS_WHICH: Final = ("new", "open")
_FINDINGS_FORMATS: Final = ("csv", "jsonl", "parquet")
_REPORT_FORMATS: Final = ("html", "pdf", "xlsx", "csv", "parquet")
_PLACEHOLDERS: Final = frozenset({"date", "run_id", "pipeline"})


@dataclass(frozen=True)
class Step:
    kind: StepKind
    options: dict[str, Any]

    def options_without(self, *names: str) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k not in names}


@dataclass(frozen=True)
class PipelineDefinition:
    """A scheduled run: which steps, which policy, which outputs and where they go."""

    path: Path
    name: str
    description: str
    mode: Mode
    fail_on: str | None
    out: Path
    policy: Path | None
    steps: tuple[Step, ...]


def load_pipeline(path: Path) -> PipelineDefinition:
    """Read and check a pipeline definition (TOML); raises PipelineError with one clear line."""
    source = str(path)
    text = read_text_file(path, what="pipeline", error=PipelineError)
    raw = parse_toml(text, source=str(path), error=PipelineError)
    unknown = set(raw) - {"pipeline", "steps"}
    if unknown:
        msg = (
            f"{source}: unknown table '{sorted(unknown)[0]}' "
            "(a pipeline has [pipeline] and [[steps]])"
        )
        raise PipelineError(msg)
    settings = dict(_PIPELINE_DEFAULTS)
    try:
        merge_settings(settings, raw.get("pipeline", {}), source=source, where="pipeline")
    except ConfigError as exc:
        raise PipelineError(str(exc)) from None
    if settings["mode"] not in ("full", "incremental"):
        msg = f"{source}: 'pipeline.mode' is 'incremental' or 'full', not {settings['mode']!r}"
        raise PipelineError(msg)
    fail_on = settings["fail_on"] or None
    if fail_on is not None and fail_on not in SEVERITIES:
        msg = f"{source}: 'pipeline.fail_on' is one of {', '.join(SEVERITIES)}, not {fail_on!r}"
        raise PipelineError(msg)
    steps = tuple(_step(source, i, table) for i, table in enumerate(raw.get("steps", []), start=1))
    kinds = [s.kind for s in steps]
    if not kinds or kinds[0] != "detect" or kinds.count("detect") != 1:
        msg = f'{source}: the first of the [[steps]] must be step = "detect", and only the first'
        raise PipelineError(msg)
    policy = Path(settings["policy"]) if settings["policy"] else None
    if policy is not None and not policy.is_absolute():
        policy = Path(path).parent / policy
    return PipelineDefinition(
        path=Path(path),
        name=settings["name"] or Path(path).stem,
        description=settings["description"],
        mode=settings["mode"],
        fail_on=fail_on,
        out=Path(settings["out"]),
        policy=policy,
        steps=steps,
    )


def _step(source: str, number: int, table: object) -> Step:
    where = f"steps[{number}]"
    if not isinstance(table, dict) or not isinstance(table.get("step"), str):
        msg = f"{source}: {where} needs step = one of {', '.join(_STEP_DEFAULTS)}"
        raise PipelineError(msg)
    kind = table["step"]
    if kind not in _STEP_DEFAULTS:
        msg = f"{source}: {where}: unknown step {kind!r} (known: {', '.join(_STEP_DEFAULTS)})"
        raise PipelineError(msg)
    options = json.loads(json.dumps(_STEP_DEFAULTS[kind]))
    try:
        merge_settings(
            options, {k: v for k, v in table.items() if k != "step"}, source=source, where=where
        )
    except ConfigError as exc:
        raise PipelineError(str(exc)) from None
    if "folder" in options:
        names = {
            name
            for _, name, _, _ in string.Formatter().parse(options["folder"])
            if name is not None
        }
        if names - _PLACEHOLDERS:
            unknown_name = sorted(names - _PLACEHOLDERS)[0]
            msg = (
                f"{source}: {where}.folder: unknown placeholder {{{unknown_name}}} "
                "(known: date, run_id, pipeline)"
            )
            raise PipelineError(msg)
    allowed = {"findings": _FINDINGS_FORMATS, "report": _REPORT_FORMATS}.get(kind, ())
    for value in options.get("formats", []):
        if value not in allowed:
            msg = (
                f"{source}: {where}.formats: unknown format {value!r} (known: {', '.join(allowed)})"
            )
            raise PipelineError(msg)
    if kind == "findings" and options["which"] not in _FINDINGS_WHICH:
        msg = f"{source}: {where}.which is 'new' or 'open', not {options['which']!r}"
        raise PipelineError(msg)
    if kind == "report" and options["lang"] not in ("en", "zh"):
        msg = f"{source}: {where}.lang is 'en' or 'zh', not {options['lang']!r}"
        raise PipelineError(msg)
    return Step(kind, options)


@dataclass
class StepResult:
    step: str
    status: Literal["ok", "failed"]
    seconds: float
    files: list[str] = field(default_factory=list)
    error: str | None = None

    def to_record(self) -> dict[str, object]:
        record: dict[str, object] = {
            "step": self.step,
            "status": self.status,
            "seconds": round(self.seconds, 3),
        }
        if self.files:
            record["files"] = self.files
        if self.error:
            record["error"] = self.error
        return record


def step_folder(step: Step, out: Path, *, summary: RunSummary, pipeline: str) -> Path:
    values = {"date": f"{summary.data_to:%Y-%m-%d}", "run_id": summary.run_id, "pipeline": pipeline}
    return out / step.options["folder"].format_map(values)


def run_step(step: Step, *, db: Path, out: Path, summary: RunSummary, pipeline: str) -> StepResult:
    """Run one output step after the detect step; a failure is returned, not raised."""
    began = time.perf_counter()
    try:
        folder = step_folder(step, out, summary=summary, pipeline=pipeline)
        folder.mkdir(parents=True, exist_ok=True)
        if step.kind == "findings":
            files = write_findings_files(
                db, folder, run_id=summary.run_id, **step.options_without("folder")
            )
        elif step.kind == "evaluate":
            files = [write_evaluation(db, folder, run_id=summary.run_id)]
        elif step.kind == "report":
            files = write_report(
                db,
                folder,
                run_id=summary.run_id,
                formats=step.options["formats"],
                lang=step.options["lang"],
                timeout_minutes=step.options["timeout_minutes"],
            )
        else:
            files = []
    except Exception as exc:  # a failed output step is reported; the other steps still run
        text = str(exc).strip().splitlines()
        return StepResult(
            step.kind,
            "failed",
            time.perf_counter() - began,
            error=text[-1] if text else type(exc).__name__,
        )
    return StepResult(step.kind, "ok", time.perf_counter() - began, files=[str(f) for f in files])


def write_findings_files(
    db: Path, folder: Path, *, run_id: str, which: str, formats: list[str]
) -> list[Path]:
    """The run's new (or all open) findings as CSV / JSON Lines / Parquet files in ``folder``."""
    where = "first_run_id = ?" if which == "new" else "status = 'open' AND run_id = ?"
    store = Store.open(db, read_only=True)
    try:
        frame = store.frame(
            "SELECT finding_id, first_run_id, run_id, rule, family, "
            "CAST(severity AS VARCHAR) AS severity, score, "
            "CAST(entity_type AS VARCHAR) AS entity_type, entity_id, merchant_id, "
            "window_start, window_end, summary, "
            "CAST(evidence AS VARCHAR) AS evidence, status FROM findings "
            f"WHERE {where.replace('?', repr(run_id))} "
            "ORDER BY finding_id"
        )
    finally:
        store.close()
    frame = frame.sort(
        pl.col("severity").replace_strict(SEVERITY_RANK, return_dtype=pl.Int8),
        "family",
        "rule",
        "window_start",
        "finding_id",
        descending=[True, False, False, False, False],
    )
    paths = []
    for fmt in formats:
        path = folder / f"findings-{which}-{run_id}.{fmt}"
        # each file appears whole or not at all (a full disk leaves no file that looks done)
        with written_file(path) as part:
            if fmt == "csv":
                csv_safe(frame).write_csv(part)
            elif fmt == "jsonl":
                rows = (
                    row | {"evidence": json.loads(row["evidence"])}
                    for row in frame.iter_rows(named=True)
                )
                part.write_text(
                    "".join(json.dumps(row, default=str) + "\n" for row in rows), encoding="utf-8"
                )
            else:
                frame.write_parquet(part)
        paths.append(path)
    return paths


def write_evaluation(db: Path, folder: Path, *, run_id: str) -> Path:
    """Recall and precision of the run against the simulator's labels, as JSON."""
    from posaudit.evaluate import evaluate, no_labels

    store = Store.open(db, read_only=True)
    try:
        if store.query("SELECT count(*) FROM ground_truth")[0][0] == 0:
            raise StoreError(no_labels(db))
        findings = store.scan("findings", where=f"run_id = '{run_id}'")
        result = evaluate(findings, store.scan("ground_truth"), store.scan("operators"))
    finally:
        store.close()
    path = folder / f"evaluation-{run_id}.json"
    path.write_text(json.dumps({"run_id": run_id, **result.to_dict()}, indent=2), encoding="utf-8")
    return path


def write_report(
    db: Path,
    folder: Path,
    *,
    run_id: str,
    formats: Sequence[str],
    lang: str,
    timeout_minutes: float,
) -> list[Path]:
    """The run's report (:func:`posaudit.report.build_report`), built in a worker process.

    The worker keeps the renderers' memory apart from the run's, dies with this process, and
    is stopped after ``timeout_minutes``: a report that hangs cannot hold up the schedule (a
    thread could not be stopped). Its error comes back as one line.
    """
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    worker = context.Process(
        target=_report_worker,
        args=(sending, os.getpid(), str(db), str(folder), run_id, list(formats), lang),
        name="posaudit-report",
    )
    worker.start()
    sending.close()
    try:
        if not receiving.poll(timeout_minutes * 60):
            msg = f"the report took more than {timeout_minutes:g} minutes and was stopped"
            raise RuntimeError(msg)
        try:
            written, error = receiving.recv()
        except EOFError:
            worker.join(timeout=10)
            msg = f"the report's worker process ended ({worker.exitcode}) without a report"
            raise RuntimeError(msg) from None
    finally:
        receiving.close()
        if worker.is_alive():
            worker.kill()
        worker.join()
    if error is not None:
        raise RuntimeError(error)
    return [Path(p) for p in written]


def _report_worker(
    sending: Connection,
    parent: int,
    db: str,
    folder: str,
    run_id: str,
    formats: list[str],
    lang: str,
) -> None:
    """The report worker's body: build the report, send back its files or its error."""
    from posaudit.report import build_report
    from posaudit.report.pdf import die_with_parent

    die_with_parent(parent)
    try:
        result = build_report(db, folder, run_id=run_id, formats=formats, lang=lang)  # type: ignore[arg-type]
        sending.send((sorted(str(p) for p in result.paths.values()), None))
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        sending.send(([], lines[-1] if lines else type(exc).__name__))
    finally:
        sending.close()


def step_summary(
    definition: PipelineDefinition | None, results: list[StepResult]
) -> dict[str, object]:
    if definition is None:
        return {}
    return {"pipeline": definition.name, "steps": [r.to_record() for r in results]}


def run_steps(
    definition: PipelineDefinition,
    *,
    db: Path,
    out: Path,
    summary: RunSummary,
    on_event: EventSink,
) -> list[StepResult]:
    """Run the output steps after the detect step, each told to ``on_event`` as it ends."""
    results = []
    for step in definition.steps[1:]:
        result = run_step(step, db=db, out=out, summary=summary, pipeline=definition.name)
        on_event("step", result.to_record())
        results.append(result)
    return results
