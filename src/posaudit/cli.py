"""posaudit's command line: a thin shell over the library.

Exit codes: 0 ok, 1 unexpected failure, 2 bad input (one line on stderr, nothing written),
3 the store is locked by another posaudit process, 4 findings at or above ``--fail-on``.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from posaudit import __version__
from posaudit.config import ConfigError
from posaudit.store import StoreError, StoreLockedError, default_db_path

if TYPE_CHECKING:
    import polars as pl

    from posaudit.detect.policy import Policy
    from posaudit.ingest.load import IngestSummary
    from posaudit.run.record import RunSummary
    from posaudit.simulate.estimate import SimulationEstimate
    from posaudit.spark.runner import SparkRun
    from posaudit.store import Store

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_LOCKED = 3
EXIT_FINDINGS = 4

app = typer.Typer(
    name="posaudit",
    help="Audit POS terminals and their operators: simulate, detect, evaluate, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
pins_app = typer.Typer(
    help="PIN weakness checks (no PIN is ever stored or logged).", no_args_is_help=True
)
app.add_typer(pins_app, name="pins")
review_app = typer.Typer(
    help=(
        "Analysts' reviews of findings and cases (every finding of one entity): decide, assign, "
        "comment, reopen, snooze; the queue and the cases, a trail, what waits in the queue on "
        "disk; verify the trail; export and import decisions (docs/review.md)."
    ),
    no_args_is_help=True,
)
app.add_typer(review_app, name="review")
analyze_app = typer.Typer(
    help=(
        "The auditor's classic tests on the store's amounts, simulated or ingested "
        "(docs/classics.md). Each reads the store only."
    ),
    no_args_is_help=True,
)
app.add_typer(analyze_app, name="analyze")
sample_app = typer.Typer(
    help=(
        "Audit sampling (docs/classics.md): the sample size by the AICPA formula, a seeded "
        "monetary-unit or stratified sample of transactions or findings to test by hand, and "
        "the evaluation of the tested sample (upper misstatement limit)."
    ),
    no_args_is_help=True,
)
app.add_typer(sample_app, name="sample")

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db", help="The store (DuckDB file). Default: $POSAUDIT_DB or data/posaudit.duckdb."
    ),
]
# The summary-line commands (run, ingest) print the same way.
JsonSummaryOption = Annotated[
    bool, typer.Option("--json", help="Print only the JSON summary line, no table.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Nothing on stderr but errors.")]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """One line on stderr, then exit."""
    err.print(f"posaudit: error: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def environment_problem(exc: OSError) -> str:
    """An operating system's refusal as one line: the path and the cause (its strerror)."""
    where = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    cause = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    return f"{where}: {cause}" if where else cause


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's input errors into one line and exit code 2 (3 when locked).

    An unusable environment is bad input too: a read-only or full file system, a path the
    system refuses (too long, under /proc) is one line naming the path and the cause.
    """
    from posaudit.store import environment_error

    try:
        yield
    except StoreError as exc:
        fail(str(exc), EXIT_LOCKED if isinstance(exc, StoreLockedError) else EXIT_BAD_INPUT)
    except ConfigError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(environment_problem(exc))
    except Exception as exc:
        problem = environment_error(exc)
        if problem is None:
            raise
        fail(str(problem))


def _confirm_size(estimate: SimulationEstimate, *, yes: bool) -> None:
    """Say what a simulation will take; refuse (exit 2) one past the limit without ``--yes``."""
    from posaudit.simulate.estimate import EVENTS_LIMIT

    if estimate.over_limit and not yes:
        fail(
            f"this world would take {estimate.describe()}, past the limit of "
            f"{EVENTS_LIMIT:,} events: add --yes to simulate it anyway, "
            "or fewer --merchants or --days"
        )
    # on stdout, with what was done: stderr stays one line when the simulation then fails
    out.print(f"simulating {estimate.describe()} (estimated)", markup=False, soft_wrap=True)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=err,
        disable=not enabled,
        transient=False,
    )


def _interactive() -> bool:
    return err.is_terminal and not os.environ.get("CI")


def _print_version(value: bool) -> None:
    if value:
        out.print(__version__)
        raise typer.Exit(EXIT_OK)


@app.callback()
def posaudit(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print posaudit's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Audit POS terminals and their operators: simulate, detect, evaluate, report."""


@app.command()
def simulate(
    db: DbOption = None,
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario file (TOML) over the built-in default.")
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed gives the same tables.")
    ] = 7,
    days: Annotated[
        int | None, typer.Option(help="Days to simulate (with --append: days to add).")
    ] = None,
    merchants: Annotated[int | None, typer.Option(help="Merchants in the world.")] = None,
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD.")] = None,
    append: Annotated[
        bool, typer.Option("--append", help="Continue the store's world for --days more days.")
    ] = False,
    no_fraud: Annotated[
        bool,
        typer.Option("--no-fraud", help="No attacks or abuse; conditions such as weak PINs stay."),
    ] = False,
    evasion: Annotated[
        str | None,
        typer.Option(
            help="How hard every attack hides from the default policy, 0 (not) to 1 "
            "(just under every threshold); over the scenario file's levels.",
            show_default=False,
        ),
    ] = None,
    lookalikes: Annotated[
        bool | None,
        typer.Option(
            "--lookalikes/--no-lookalikes",
            help="Switch the innocent look-alikes (honest behaviour resembling attacks, "
            "labelled benign:<kind>; on by default) on or off, over the scenario file's "
            "[lookalikes] enabled.",
            show_default=False,
        ),
    ] = None,
    parquet: Annotated[
        Path | None,
        typer.Option(help="Also export every table as Parquet (Hive-partitioned by date) here."),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            help="Simulate a world past the size limit (100 million events) without asking.",
        ),
    ] = False,
) -> None:
    """Simulate a world of merchants, terminals and operators into the store.

    Before it starts it prints about how many events, bytes and minutes the world takes; a
    world of more than 100 million events needs --yes.

    Example: posaudit simulate --db data/world.duckdb --merchants 50 --days 14 --seed 3
    """
    from posaudit.simulate.engine import continued_scenario
    from posaudit.simulate.engine import simulate as run_simulation
    from posaudit.simulate.estimate import simulation_estimate
    from posaudit.simulate.scenario import check_seed, load_scenario, parse_evasion
    from posaudit.store import Store, lock

    path = db or default_db_path()
    with user_errors():
        level = None if evasion is None else parse_evasion(evasion)
        if append and (
            merchants is not None
            or start is not None
            or scenario is not None
            or level is not None
            or lookalikes is not None
        ):
            fail(
                "--append continues the store's own world: "
                "drop --merchants, --start, --scenario, --evasion and --lookalikes"
            )
        check_seed(seed)
        loaded = load_scenario(
            scenario,
            merchants=merchants,
            days=days if not append else (1 if days is None else days),
            start=start,
            evasion=level,
            lookalikes=lookalikes,
        )
        if not append:
            Store.check_new_path(path)
            if path.exists():
                fail(
                    f"{path} already holds a world: add --append to continue it, "
                    "or choose a new --db"
                )
        if parquet is not None and parquet.exists() and not parquet.is_dir():
            fail(f"--parquet {parquet} is a file, not a folder")
        if append and not path.exists():
            fail(f"--append needs an existing store, and {path} does not exist")
        parquet_made = parquet is not None and not parquet.exists()
        # the writer lock from the estimate (which reads the store to append to) to the rename
        lock.acquire(path, purpose="simulate --append" if append else "simulate")
        try:
            planned = continued_scenario(path, loaded.days) if append else loaded
            _confirm_size(simulation_estimate(planned, new_store=not append), yes=yes)
            with _progress(_interactive()) as bar:
                task = bar.add_task("simulating", total=loaded.days, note="")

                def tick(done: int, total: int, events: int) -> None:
                    bar.update(task, completed=done, total=total, note=f"{events:,} events")

                summary = run_simulation(
                    path,
                    loaded,
                    seed=seed,
                    fraud_on=not no_fraud,
                    append=append,
                    parquet_dir=parquet,
                    progress=tick,
                )
        except BaseException:
            if parquet_made:  # a half-written export is not left behind with no store to match
                shutil.rmtree(parquet, ignore_errors=True)  # type: ignore[arg-type]
            raise
        finally:
            lock.release(path)
    last_day = summary.first_day + summary.days
    table = Table(title=f"{path}: days {summary.first_day + 1}-{last_day} from {summary.start}")
    table.add_column("table")
    table.add_column("rows written", justify="right")
    for name, rows in summary.rows.items():
        table.add_row(name, f"{rows:,}")
    out.print(table)
    incidents = Table(title="incidents by scenario (ground truth)")
    incidents.add_column("scenario")
    incidents.add_column("incidents", justify="right")
    for name, count in summary.incidents.items():
        incidents.add_row(name, f"{count:,}")
    out.print(incidents)
    rate = summary.events / summary.seconds if summary.seconds else 0.0
    out.print(f"{summary.events:,} events in {summary.seconds:.1f} s ({rate:,.0f} events/s)")


def _run_line(record: dict[str, object]) -> None:
    """The scheduler's summary: one JSON line, always the last line on stdout."""
    import json

    sys.stdout.write(json.dumps(record, default=str) + "\n")
    sys.stdout.flush()


def _run_failed(message: str, code: int, status: str) -> NoReturn:
    """The error line on stderr, then the summary line (last in a journal too), then exit."""
    err.print(f"posaudit: error: {message}", markup=False, soft_wrap=True)
    _run_line({"status": status, "error": message, "exit_code": code})
    raise typer.Exit(code)


def _run_error(exc: Exception, *, bad_input: bool) -> NoReturn:
    """End a run that raised: the store locked (exit 3), bad input or an unusable environment
    (a full or read-only file system: exit 2) or a failure (1)."""
    from posaudit.store import environment_error

    if isinstance(exc, OSError):
        _run_failed(environment_problem(exc), EXIT_BAD_INPUT, "bad_input")
    problem = environment_error(exc)
    if bad_input or problem is not None:
        locked = isinstance(exc, StoreLockedError)
        message = str(problem if problem is not None else exc)
        _run_failed(
            message, EXIT_LOCKED if locked else EXIT_BAD_INPUT, "locked" if locked else "bad_input"
        )
    message = f"the run failed and left the findings as they were: {type(exc).__name__}: {exc}"
    _run_failed(message.splitlines()[0], EXIT_FAILURE, "failed")


def _review_note(summary: RunSummary) -> str:
    """What the run did with the analysts' decisions and snoozes, when it met any."""
    counts = summary.counts
    parts = [
        f"{counts.dismissed:,} dismissed by analysts kept closed" if counts.dismissed else "",
        f"{counts.reopened_by_evidence:,} dismissed reopened as their evidence grew"
        if counts.reopened_by_evidence
        else "",
        f"{counts.snoozed:,} new snoozed (not alerted)" if counts.snoozed else "",
        f"{len(summary.queued_applied):,} queued review actions applied"
        if summary.queued_applied
        else "",
    ]
    shown = [p for p in parts if p]
    return f" ({'; '.join(shown)})" if shown else ""


def _not_run_note(summary: RunSummary) -> str:
    """The open findings a run left as they were because their rules are off in its policy."""
    counts = summary.counts
    if not counts.not_run:
        return ""
    rules = ", ".join(counts.rules_not_run)
    return (
        f"; {counts.not_run:,} more open findings kept as they were, their rules not run ({rules})"
    )


def _run_progress_note(name: str, fields: Mapping[str, object]) -> str:
    """What a finished stage of a run reports on the progress bar."""
    if name == "plan":
        return f"{fields['mode']}: {fields['reason']}"
    if name == "read":
        return f"{fields['rows']:,} rows read"
    if name == "detect":
        return f"{fields['findings']:,} findings from {fields['rules']} rules"
    if name == "write":
        not_run = f", {fields['not_run']:,} of rules not run" if fields.get("not_run") else ""
        return (
            f"{fields['new']:,} new, {fields['seen']:,} seen before, "
            f"{fields['resolved']:,} resolved{not_run}"
        )
    return f"{fields['step']}: {fields['status']}"


def _spark_settings(
    engine: str,
    *,
    master: str | None,
    conf: list[str],
    parquet: Path | None,
    buckets: int | None,
    strategy: str | None,
    findings_out: Path | None,
    pipeline: bool,
    full: bool = False,
) -> SparkRun | None:
    """The Spark run asked for (None for the local engine); a bad value fails with exit 2."""
    spark_only = {
        "--master": master,
        "--spark-conf": conf or None,
        "--parquet": parquet,
        "--buckets": buckets,
        "--spark-strategy": strategy,
        "--findings-out": findings_out,
    }
    if engine not in ("local", "spark"):
        fail(f"--engine must be local or spark, got {engine!r}")
    if engine == "local":
        given = [name for name, value in spark_only.items() if value is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            fail(f"{', '.join(given)} {verb} only with --engine spark")
        return None
    from posaudit.spark.runner import STRATEGIES, SparkRun
    from posaudit.spark.session import (
        DEFAULT_MASTER,
        SparkSetupError,
        parse_conf,
        parse_master,
        spark_problem,
    )

    if strategy is not None and strategy not in STRATEGIES:
        fail(f"--spark-strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if buckets is not None and buckets < 1:
        fail(f"--buckets must be at least 1, got {buckets}")
    if findings_out is not None and pipeline:
        fail(
            "--findings-out leaves the store unwritten, "
            "so the pipeline's steps have nothing to read: drop one"
        )
    if findings_out is not None and findings_out.exists() and not findings_out.is_dir():
        fail(f"--findings-out {findings_out} is a file, not a folder")
    if parquet is not None and parquet.exists() and not parquet.is_dir():
        fail(f"--parquet {parquet} is a file, not a folder")
    try:
        chosen = parse_master(master or DEFAULT_MASTER)
        settings = parse_conf(conf)
    except SparkSetupError as exc:
        fail(str(exc))
    problem = spark_problem(chosen)
    if problem:
        fail(problem)
    return SparkRun(
        master=chosen,
        conf=settings,
        strategy=strategy or "shards",  # type: ignore[arg-type]
        parquet=parquet,
        buckets=buckets,
        findings_out=findings_out,
        full=full,
    )


def _run_on_spark(
    path: Path,
    policy: Policy,
    settings: SparkRun,
    on_event: Callable[[str, Mapping[str, object]], None],
) -> RunSummary:
    """``posaudit run --engine spark``: the run, its errors turned into the run's exit codes."""
    from posaudit.spark.export import MANIFEST
    from posaudit.spark.runner import SparkSetupError, run_spark
    from posaudit.store import Store

    # data kept only as an export needs no store when the findings go to Parquet
    parquet_only = (
        settings.findings_out is not None
        and settings.parquet is not None
        and (settings.parquet / MANIFEST).exists()
    )
    store = None
    try:
        if not parquet_only:
            store = Store.open(
                path, read_only=settings.findings_out is not None, purpose="run --engine spark"
            )
        return run_spark(settings, policy, store=store, on_event=on_event)
    except Exception as exc:
        _run_error(exc, bad_input=isinstance(exc, StoreError | SparkSetupError | ConfigError))
    finally:
        if store is not None:
            store.close()


def _check_output_root(root: Path) -> None:
    """Refuse (exit 2) an output root the steps could not write, before the run commits."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        fail(f"--out {root}: {existing} is a file, not a folder for the run's outputs")
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(f"--out {root}: cannot write in {existing}")


@app.command()
def run(
    db: DbOption = None,
    policy: Annotated[
        Path | None, typer.Option(help="Policy file (TOML) over the built-in default.")
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="Re-run every rule over all data, not only what new data can change."
        ),
    ] = False,
    pipeline: Annotated[
        Path | None,
        typer.Option(help="A run definition (pipelines/*.toml): detect, then its output steps."),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Root folder of the pipeline's outputs (default: its `out`)."),
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help=(
                "Exit 4 when a new finding at or above this severity appears "
                "(info, low, medium, high, critical)."
            ),
        ),
    ] = None,
    as_json: JsonSummaryOption = False,
    quiet: QuietOption = False,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Log each stage as a JSON line on stderr.")
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help=(
                "local (DuckDB and Polars on this machine) or spark "
                "(the same rules per bucket on Spark; incremental into a store as local runs "
                "are, full when the findings go to --findings-out)."
            ),
        ),
    ] = "local",
    master: Annotated[
        str | None,
        typer.Option(
            "--master",
            help=(
                "Spark master for --engine spark: local[*] (default), local[N], spark://HOST:PORT, "
                "yarn, k8s://URL, sc://HOST:PORT (Spark Connect)."
            ),
        ),
    ] = None,
    spark_conf: Annotated[
        list[str] | None,
        typer.Option(
            "--spark-conf",
            help=(
                "A Spark setting KEY=VALUE for --engine spark, "
                "repeatable (spark.executor.memory=8g)."
            ),
        ),
    ] = None,
    parquet: Annotated[
        Path | None,
        typer.Option(
            "--parquet",
            help=(
                "--engine spark: the bucketed export to read, brought up to date with --db first; "
                "a new or empty folder gets the store exported into it (default: a temporary "
                "export)."
            ),
        ),
    ] = None,
    buckets: Annotated[
        int | None,
        typer.Option(
            "--buckets",
            help="--engine spark: buckets of a new export (default: 4 per Spark core, at least 8).",
        ),
    ] = None,
    spark_strategy: Annotated[
        str | None,
        typer.Option(
            "--spark-strategy",
            help=(
                "--engine spark: shards (one task per bucket reads its own files; default) "
                "or groupby (Spark reads and groups by bucket)."
            ),
        ),
    ] = None,
    findings_out: Annotated[
        Path | None,
        typer.Option(
            "--findings-out",
            help=(
                "--engine spark: write the findings as Parquet into this folder "
                "instead of into the store."
            ),
        ),
    ] = None,
) -> None:
    """Run the detection rules and scores over what changed since the last run (or --full).

    Findings are merged into the store (new, seen again, resolved, never duplicated) with a
    pipeline_runs row, in one transaction. The last line on stdout is a JSON summary for
    schedulers. Exit codes: 0 ok, 1 failure, 2 bad input, 3 the store is locked by another
    posaudit process, 4 a new finding at or above --fail-on.

    --engine spark runs the same rules per bucket of a bucketed Parquet export on Spark
    (pip install 'posaudit[spark]', Java 17); see docs/scale-out.md.

    Example: posaudit run --db data/posaudit.duckdb --pipeline pipelines/nightly.toml --fail-on high
    """
    from posaudit.detect.findings import SEVERITIES
    from posaudit.detect.policy import load_policy
    from posaudit.run.local import run_pipeline
    from posaudit.run.record import event_line
    from posaudit.run.steps import load_pipeline, run_steps, step_summary
    from posaudit.store import Store

    with user_errors():
        if fail_on is not None and fail_on not in SEVERITIES:
            fail(f"--fail-on must be one of {', '.join(SEVERITIES)}, got {fail_on!r}")
        definition = load_pipeline(pipeline) if pipeline is not None else None
        threshold = fail_on or (definition.fail_on if definition else None)
        loaded = load_policy(policy or (definition.policy if definition else None))
        spark_run = _spark_settings(
            engine,
            master=master,
            conf=spark_conf or [],
            parquet=parquet,
            buckets=buckets,
            strategy=spark_strategy,
            findings_out=findings_out,
            pipeline=definition is not None,
            full=full or (definition is not None and definition.mode == "full"),
        )
    if definition is not None:
        _check_output_root(out_dir or definition.out)
    path = db or default_db_path()
    bars = _interactive() and not (quiet or log_json or as_json)
    outputs = [step.kind for step in definition.steps[1:]] if definition else []
    stages = ["reading", "detecting", "writing", *outputs, "done"]
    with _progress(bars) as bar:
        task = bar.add_task("planning", total=len(stages), note="")

        def on_event(name: str, fields: Mapping[str, object]) -> None:
            if bars:
                bar.update(
                    task,
                    advance=1,
                    description=stages.pop(0),
                    note=_run_progress_note(name, fields),
                )
            elif not quiet:
                err.print(
                    event_line(name, fields, as_json=log_json),
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )

        if spark_run is not None:
            summary = _run_on_spark(path, loaded, spark_run, on_event)
        else:
            try:
                store = Store.open(path, purpose="run")
            except StoreError as exc:
                _run_error(exc, bad_input=True)
            try:
                summary = run_pipeline(
                    store,
                    loaded,
                    full=full or (definition is not None and definition.mode == "full"),
                    on_event=on_event,
                )
            except Exception as exc:
                _run_error(exc, bad_input=isinstance(exc, StoreError | ConfigError))
            finally:
                store.close()
        results = (
            run_steps(
                definition,
                db=path,
                out=out_dir or definition.out,
                summary=summary,
                on_event=on_event,
            )
            if definition is not None
            else []
        )
    failed = [r for r in results if r.status == "failed"]
    alert = threshold is not None and summary.new_at_or_above(threshold) > 0
    code = EXIT_FAILURE if failed else EXIT_FINDINGS if alert else EXIT_OK
    record = summary.to_record() | {"fail_on": threshold, "alert": alert, "exit_code": code}
    record |= step_summary(definition, results)
    if failed:
        record |= {
            "status": "failed",
            "error": "; ".join(f"step {r.step}: {r.error}" for r in failed),
        }
    if not (as_json or quiet):
        counts = summary.open_by_family_and_severity
        table = Table(title=f"{summary.run_id}: open findings")
        for column in counts.columns:
            table.add_column(column, justify="left" if column == "family" else "right")
        for row in counts.iter_rows():
            table.add_row(*[f"{v:,}" if isinstance(v, int) else str(v) for v in row])
        out.print(table)
        out.print(
            f"{summary.findings_open:,} open findings: {summary.new:,} new, "
            f"{summary.seen:,} seen before ({summary.counts.carried:,} carried over), "
            f"{summary.resolved:,} resolved{_not_run_note(summary)}{_review_note(summary)}; "
            f"read {summary.rows_read:,} rows in {summary.seconds:.1f} s ({summary.reason})",
            markup=False,
            soft_wrap=True,
        )
    for r in failed:
        err.print(f"posaudit: error: step {r.step} failed: {r.error}", markup=False, soft_wrap=True)
    if alert and not failed and not quiet:
        count = summary.new_at_or_above(threshold)  # type: ignore[arg-type]
        if log_json:
            err.print(
                event_line("alert", {"new_at_or_above": count, "fail_on": threshold}, as_json=True),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        else:
            err.print(f"posaudit: {count:,} new findings at or above {threshold}", markup=False)
    _run_line(record)
    if code:
        raise typer.Exit(code)


@app.command()
def evaluate(
    db: DbOption = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help="The run to evaluate (default: the latest).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    labels: Annotated[
        str,
        typer.Option(
            "--labels",
            help=(
                "truth: the simulator's ground truth (recall and precision); reviews: the "
                "analysts' decisions (precision per rule with a 95 % interval)."
            ),
        ),
    ] = "truth",
) -> None:
    """Compare a run's findings with the simulator's ground truth: recall and precision; or,
    with --labels reviews, with the analysts' decisions: precision per rule. Both also report
    the alert volume: findings per 1,000 operators per day, by severity.

    Example: posaudit evaluate --db data/posaudit.duckdb --json
    Example: posaudit evaluate --db data/ingested.duckdb --labels reviews
    """
    import json

    from posaudit.evaluate import evaluate as evaluate_run
    from posaudit.evaluate import no_labels
    from posaudit.store import Store

    path = db or default_db_path()
    if labels not in EVALUATION_LABELS:
        fail(f"--labels must be {' or '.join(EVALUATION_LABELS)}, got {labels!r}")
    with user_errors():
        store = Store.open(path, read_only=True)
        try:
            runs = store.query(
                "SELECT run_id FROM pipeline_runs WHERE status = 'succeeded' "
                "ORDER BY started_at DESC, run_id DESC"
            )
            if not runs:
                fail(
                    f"{path} has no successful run to evaluate: "
                    f"run `posaudit run --db {path}` first"
                )
            chosen = run_id or str(runs[0][0])
            if chosen not in {str(r[0]) for r in runs}:
                fail(f"no successful run {chosen!r} in {path}")
            if labels == "reviews":
                _evaluate_reviews(store, chosen, as_json=as_json)
                return
            if store.query("SELECT count(*) FROM ground_truth")[0][0] == 0:
                fail(no_labels(path))
            findings = store.scan("findings", where=f"run_id = '{chosen}'")
            texts = [
                str(row[0])
                for row in store.query(
                    "SELECT scenario_toml FROM simulations ORDER BY simulation_id"
                )
            ]
            result = evaluate_run(
                findings,
                store.scan("ground_truth"),
                store.scan("operators"),
                scenario_texts=texts,
            )
            volume = _alert_volume(store, chosen)
            ranking = _ranking_evaluation(store, findings)
        finally:
            store.close()
    if as_json:
        record = {"run_id": chosen, **result.to_dict(), "alert_volume": volume}
        record["ranking"] = ranking.to_dict()
        out.print_json(json.dumps(record))
        return
    recall = Table(title=f"{chosen}: recall per scenario")
    for column in ("scenario", "evasion", "incidents", "detected", "recall", "by its own rules"):
        recall.add_column(column, justify="left" if column == "scenario" else "right")
    for row in result.recall.iter_rows(named=True):
        levels = result.evasion.get(row["scenario"], [])
        recall.add_row(
            row["scenario"],
            _evasion_cell(levels),
            f"{row['incidents']:,}",
            f"{row['detected']:,}",
            f"{row['recall']:.3f}",
            f"{row['recall_own']:.3f}",
        )
    out.print(recall)
    precision = Table(title=f"{chosen}: precision per rule (severity above info)")
    columns = ("rule", "findings", "true positives", "precision", "any incident", "on look-alikes")
    for column in columns:
        precision.add_column(column, justify="left" if column == "rule" else "right")
    for row in result.precision.iter_rows(named=True):
        precision.add_row(
            row["rule"],
            f"{row['findings']:,}",
            f"{row['true_positives']:,}",
            f"{row['precision']:.3f}",
            f"{row['precision_any']:.3f}",
            f"{row['on_lookalikes']:,}",
        )
    out.print(precision)
    out.print(
        "true positives: findings detecting one of the rule's own scenarios (a score: any "
        "attack); any incident: precision crediting every incident on the entity "
        "(docs/evaluation.md)"
    )
    if result.lookalikes is not None and result.lookalikes.height:
        benign = Table(title=f"{chosen}: findings on innocent look-alikes (false positives)")
        for column in ("kind", "incidents", "rule", "incidents flagged", "findings"):
            benign.add_column(column, justify="left" if column in ("kind", "rule") else "right")
        for row in result.lookalikes.iter_rows(named=True):
            benign.add_row(
                row["kind"],
                f"{row['incidents']:,}",
                row["rule"] or "-",
                f"{row['incidents_flagged']:,}",
                f"{row['findings']:,}",
            )
        out.print(benign)
    out.print(
        f"unmatched findings above 'low': {result.unmatched_above_low:,} "
        f"({result.unmatched_per_1000_operators:.2f} per 1,000 operators, "
        f"{result.unmatched_per_1000_merchants:.2f} per 1,000 merchants)"
    )
    _print_alert_volume(chosen, volume)
    _print_ranking(chosen, ranking)


def _evasion_cell(levels: list[float]) -> str:
    """A scenario's evasion level in evaluate's table: the level, "mixed: a, b" when its days
    ran at several, "-" when it takes none (a condition) or the store was ingested."""
    if not levels:
        return "-"
    if len(levels) == 1:
        return f"{levels[0]:g}"
    return "mixed: " + ", ".join(f"{level:g}" for level in levels)


def _ranking_evaluation(store: Store, findings: pl.LazyFrame) -> Any:
    """The daily ranking's evaluation (``posaudit.ranking_evaluation``) over the store."""
    from posaudit.ranking_evaluation import evaluate_ranking, store_tables

    return evaluate_ranking(store_tables(store), findings)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_ranking(run_id: str, ranking: Any) -> None:
    """The ranking section of ``evaluate``: precision within the budget per score, then
    recall per scenario by the rules, within the budget, and by either; then both scores'
    budget recall on the test days."""
    record = ranking.to_dict()
    days = record["test_days"]
    span = f"{days[0]} to {days[-1]}" if days else "none"
    table = Table(
        title=f"{run_id}: daily ranking; test days {span}, the model trained on the days "
        f"before a {record['gap_days']}-day gap"
    )
    for column in ("kind", "score", "P@100", "P@1%", "AP", "entity-days", "attacks"):
        table.add_column(column, justify="left" if column in ("kind", "score") else "right")
    labels = {
        "unsupervised_all_days": "unsupervised, all days",
        "unsupervised": "unsupervised",
        "supervised": "supervised",
    }
    for kind, scores in record["scores"].items():
        for name, label in labels.items():
            m = scores.get(name) or {}
            table.add_row(
                kind,
                label,
                _share(m.get("precision_at_100")),
                _share(m.get("precision_at_1pct")),
                _share(m.get("average_precision")),
                f"{m['entity_days']:,}" if m else "-",
                f"{m['attacks']:,}" if m else "-",
            )
    out.print(table)
    recall = Table(title=f"{run_id}: recall per scenario within the top 1 % of each day")
    columns = {
        "scenario": "scenario",
        "incidents": "incidents",
        "rules": "rules",
        "unsupervised": "top 1 %",
        "union": "either",
        "union_after_rules": "after rules",
    }
    for header in columns.values():
        recall.add_column(header, justify="left" if header == "scenario" else "right")
    test = Table(title=f"{run_id}: recall within the top 1 % on the test days")
    tested = {
        "scenario": "scenario",
        "test_incidents": "incidents",
        "unsupervised_test": "unsupervised",
        "supervised_test": "supervised",
    }
    for header in tested.values():
        test.add_column(header, justify="left" if header == "scenario" else "right")
    counts = ("scenario", "incidents", "test_incidents")
    for row in record["recall"]:
        recall.add_row(*(str(row[c]) if c in counts else _share(row[c]) for c in columns))
        test.add_row(*(str(row[c]) if c in counts else _share(row[c]) for c in tested))
    if record["recall"]:  # no attack incident (a world without fraud): no recall to show
        out.print(recall)
        out.print(test)
    if record["note"]:
        out.print(f"note: {record['note']}", markup=False, soft_wrap=True)


def _alert_volume(store: Store, run_id: str) -> dict[str, Any]:
    """The run's alert volume (``posaudit.evaluate.alert_volume``) as ``evaluate --json``
    prints it: over the run's data window and the operators active in it."""
    from datetime import datetime

    from posaudit.evaluate import alert_volume, alert_volume_record

    window = store.query("SELECT data_from, data_to FROM pipeline_runs WHERE run_id = ?", [run_id])
    data_from, data_to = (bound if isinstance(bound, datetime) else None for bound in window[0])
    findings = store.scan("findings", where=f"run_id = '{run_id}'")
    volume = alert_volume(
        findings, store.scan("operators"), data_from=data_from, data_to=data_to
    ).collect()
    return {
        "data_from": None if data_from is None else data_from.isoformat(),
        "data_to": None if data_to is None else data_to.isoformat(),
        **alert_volume_record(volume),
    }


def _print_alert_volume(run_id: str, volume: dict[str, Any]) -> None:
    """The alert volume's table, or one line saying why there is no rate."""
    rates = volume["per_1000_operators_per_day"]
    out.print(
        f"{run_id}: alert volume, findings per 1,000 operators per day "
        f"({volume['operators']:,} operators active in a data window of {volume['days']:.2f} days)",
        markup=False,
        soft_wrap=True,
    )
    table = Table()
    for column in ("severity", "findings", "per 1,000 operators per day"):
        table.add_column(column, justify="left" if column == "severity" else "right")
    for severity, findings in volume["findings"].items():
        rate = rates[severity]
        table.add_row(severity, f"{findings:,}", "-" if rate is None else f"{rate:.2f}")
    out.print(table)
    if rates["all"] is None:
        why = (
            "no operator was active in the run's data window"
            if not volume["operators"]
            else "the run's data window has no length"
        )
        out.print(
            f"alert volume: no rate, {why} (docs/evaluation.md)", markup=False, soft_wrap=True
        )


def _backtest_tables(
    rows: list[dict[str, Any]], path: str, current: str, policy: Path
) -> list[Table | str]:
    """A backtest's findings per rule, and the decided ones with the precision from them
    (or a line saying nothing is decided); the total row last in each."""
    # rule names are never cut short: the numbers beside them are narrow
    widest = max(len(row["rule"]) for row in rows)

    def table(title: str, columns: tuple[str, ...]) -> Table:
        made = Table(title=title)
        for column in columns:
            made.add_column(
                column,
                justify="left" if column == "rule" else "right",
                min_width=widest if column == "rule" else None,
            )
        return made

    findings = table(
        f"{path}: findings under {current} policy and under {policy}",
        ("rule", "current", "new", "gained", "lost", "severity\nchanged"),
    )
    for i, row in enumerate(rows):
        counts = ("current_findings", "new_findings", "gained_findings", "lost_findings")
        findings.add_row(
            row["rule"],
            *[f"{row[c]:,}" for c in counts],
            f"{row['severity_raised'] + row['severity_lowered']:,}",
            end_section=i == len(rows) - 2,
        )
    sides = ("decided_true", "decided_false")
    decided = [r for r in rows if any(r[f"{g}_{s}"] for g in ("current", "new") for s in sides)]
    if not decided:
        return [findings, "no finding of either policy has a decision yet"]
    decisions = table(
        "decided findings: true (confirmed_fraud, policy_breach) / false",
        ("rule", "gained\ntrue/false", "lost\ntrue/false", "precision\ncurrent -> new"),
    )
    for i, row in enumerate(decided):
        precisions = [row[f"{g}_precision"] for g in ("current", "new")]
        decisions.add_row(
            row["rule"],
            *[
                f"{row[f'{g}_decided_true']:,}/{row[f'{g}_decided_false']:,}"
                for g in ("gained", "lost")
            ],
            " -> ".join("-" if p is None else f"{p:.3f}" for p in precisions),
            end_section=i == len(decided) - 2,
        )
    return [findings, decisions]


@app.command()
def rank(
    db: DbOption = None,
    day: Annotated[
        str | None, typer.Option(help="The day to rank, YYYY-MM-DD (default: the latest).")
    ] = None,
    entity: Annotated[
        str, typer.Option(help="What to rank: operator (operator-days) or merchant.")
    ] = "operator",
    top: Annotated[
        int | None, typer.Option(help="How many to list (default: 1 % of the day).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """A day's operator-days (or merchant-days) ranked for an analyst's budget.

    Each is scored by how rare its features are that day (docs/detection.md, "Ranking for a
    daily budget"): refunds against its peers and its own past, refund peaks, refunds after
    wrong PINs, refunds to cards that never paid there, work on another terminal or in
    unusual hours. Lists the top --top (default: the day's budget, 1 % of its entity-days, at
    least 1) with the score and the three features that raised it most. Reads the store only.

    Example: posaudit rank --db data/posaudit.duckdb --day 2026-03-14 --json
    """
    import json
    from datetime import date

    from posaudit.ranking_evaluation import budget_size
    from posaudit.score.ranking import RANKING_TABLES, ranked_day
    from posaudit.store import Store

    if entity not in RANKED_ENTITIES:
        fail(f"--entity must be {' or '.join(RANKED_ENTITIES)}, got {entity!r}")
    if top is not None and top < 1:
        fail(f"--top must be at least 1, got {top}")
    wanted = None
    if day is not None:
        try:
            wanted = date.fromisoformat(day)
        except ValueError:
            fail(f"--day must be a date YYYY-MM-DD, got {day!r}")
    path = db or default_db_path()
    with user_errors():
        store = Store.open(path, read_only=True)
        try:
            tables = {name: store.scan(name) for name in RANKING_TABLES}
            ranked, days = ranked_day(tables, entity=entity, day=wanted)  # type: ignore[arg-type]
        finally:
            store.close()
    if not days:
        fail(f"{path} holds no operator activity to rank")
    if ranked is None:
        fail(
            f"no operator activity on {wanted} in {path}: "
            f"the data runs from {days[0]} to {days[-1]}"
        )
    entities = ranked.height
    shown = ranked.head(top if top is not None else budget_size(entities))
    chosen = shown.get_column("day")[0] if shown.height else wanted
    key = f"{entity}_id"
    rows = [
        {
            "rank": row["rank"],
            key: row[key],
            **({"merchant_id": row["merchant_id"]} if entity == "operator" else {}),
            "score": round(row["anomaly_score"], 4),
            "top_features": [
                {"feature": row[f"top_feature_{i}"], "value": row[f"top_value_{i}"]}
                for i in (1, 2, 3)
                if row[f"top_feature_{i}"] is not None
            ],
        }
        for row in shown.iter_rows(named=True)
    ]
    if as_json:
        record = {
            "day": str(chosen),
            "entity": entity,
            "entities": entities,
            "budget": budget_size(entities),
            "top": rows,
        }
        sys.stdout.write(json.dumps(record) + "\n")
        return
    table = Table(
        title=f"{chosen}: {entity}-days ranked ({entities:,} that day; the 1 % budget is "
        f"{budget_size(entities)})"
    )
    for column in ("rank", entity, "score", "top features"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for row in rows:
        table.add_row(
            str(row["rank"]),
            row[key],
            f"{row['score']:.2f}",
            ", ".join(f"{f['feature']} = {f['value']:.3g}" for f in row["top_features"]) or "-",
        )
    out.print(table)


RANKED_ENTITIES = ("operator", "merchant")


@analyze_app.command("duplicates")
def analyze_duplicates(
    db: DbOption = None,
    window_minutes: Annotated[
        int, typer.Option(help="How soon after the card's previous sale a sale is a duplicate.")
    ] = 10,
    tolerance_fen: Annotated[
        int,
        typer.Option(help="Near amounts: the largest difference, in fen, at the same terminal."),
    ] = 100,
    by: Annotated[
        str | None,
        typer.Option(help="Totals per merchant, terminal or operator (of the later sale)."),
    ] = None,
    top: Annotated[int, typer.Option(help="How many pairs (or entities) to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Duplicate sales: each approved card sale set against the card's previous sale at the
    merchant.

    A pair within --window-minutes is exact (same terminal, same amount), other_terminal (the
    same amount at another terminal of the merchant) or near_amount (same terminal, amounts
    at most --tolerance-fen apart). Prints the pairs and amounts of each kind (the later
    sale's), and the pairs of the largest amounts, or with --by the entities with the most
    duplicated money. Reads the store only.

    Example: posaudit analyze duplicates --db data/posaudit.duckdb --by merchant --json
    """
    import json

    import polars as pl

    from posaudit.classics import duplicates as dup
    from posaudit.store import Store

    if window_minutes < 1:
        fail(f"--window-minutes must be at least 1, got {window_minutes}")
    if tolerance_fen < 0:
        fail(f"--tolerance-fen must be 0 or more, got {tolerance_fen}")
    if by is not None and by not in dup.ENTITIES:
        fail(f"--by must be one of {', '.join(dup.ENTITIES)}, got {by!r}")
    if top < 1:
        fail(f"--top must be at least 1, got {top}")
    path = db or default_db_path()
    with user_errors():
        store = Store.open(path, read_only=True)
        try:
            found = dup.duplicates(
                store, window_minutes=window_minutes, tolerance_fen=tolerance_fen
            )
        finally:
            store.close()
    totals = found.totals()
    listed = found.by(by).head(top) if by else found.largest(top)  # type: ignore[arg-type]
    if as_json:
        record = {
            "window_minutes": window_minutes,
            "tolerance_fen": tolerance_fen,
            "totals": totals.to_dicts(),
            "by": by,
            "listed": listed.with_columns(
                pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S")
                for c, t in listed.schema.items()
                if t == pl.Datetime
            ).to_dicts()
            if not by
            else listed.to_dicts(),
        }
        sys.stdout.write(json.dumps(record) + "\n")
        return
    table = Table(
        title=f"Duplicate sales: within {window_minutes} minutes of the card's previous sale at "
        f"the merchant (near: within {tolerance_fen / 100:,.2f} CNY)"
    )
    for column in ("kind", "pairs", "amount (CNY)"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, pairs, amount in totals.iter_rows():
        table.add_row(kind, f"{pairs:,}", f"{amount / 100:,.2f}")
    out.print(table)
    if listed.is_empty():
        return
    if by:
        entities = Table(title=f"the {by}s with the most duplicated money (top {top})")
        for column in (by, "pairs", "amount (CNY)", "exact", "other terminal", "near amount"):
            entities.add_column(column, justify="left" if column == by else "right")
        for row in listed.iter_rows(named=True):
            entities.add_row(
                row[by],
                f"{row['pairs']:,}",
                f"{row['amount_fen'] / 100:,.2f}",
                *(f"{row[f'{k}_pairs']:,}" for k in dup.KINDS),
            )
        out.print(entities)
        return
    largest = Table(title=f"the pairs of the largest amounts (top {top})")
    for column in ("sale", "at", "terminal", "amount (CNY)", "kind", "earlier sale", "gap s"):
        right = column in ("amount (CNY)", "gap s")
        largest.add_column(column, justify="right" if right else "left")
    for row in listed.iter_rows(named=True):
        largest.add_row(
            row["txn_id"],
            row["ts"].strftime("%Y-%m-%d %H:%M:%S"),
            row["terminal_id"],
            f"{row['amount_fen'] / 100:,.2f}",
            row["kind"],
            row["previous_txn_id"],
            f"{row['gap_seconds']:,.0f}",
        )
    out.print(largest)


@analyze_app.command("gaps")
def analyze_gaps(
    db: DbOption = None,
    usual_share: Annotated[
        float,
        typer.Option(
            help="A weekday the terminal traded on at least this share of the time is one of "
            "its trading days; a day of it with no record is missing."
        ),
    ] = 0.8,
    top: Annotated[int, typer.Option(help="How many gaps and missing days to list.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document with every gap and day.")
    ] = False,
) -> None:
    """Gaps: trace numbers missing inside a terminal's batches, and days a terminal that
    usually trades went silent.

    A trace number missing between two that a batch holds is a record written and then lost
    or deleted (numbers wrap from 999,999 to 1). A day with no record is missing when, within
    the terminal's span of trading, it traded on at least --usual-share of the other days of
    that weekday. Prints the totals and the first gaps and days (all of them with --json).
    Reads the store only.

    Example: posaudit analyze gaps --db data/posaudit.duckdb --json
    """
    import json

    from posaudit.classics import gaps as gp
    from posaudit.store import Store

    if not 0.0 < usual_share <= 1.0:
        fail(f"--usual-share must lie above 0 and at most 1, got {usual_share}")
    if top < 1:
        fail(f"--top must be at least 1, got {top}")
    path = db or default_db_path()
    with user_errors():
        store = Store.open(path, read_only=True)
        try:
            found = gp.gaps(store, usual_share=usual_share)
        finally:
            store.close()
    if as_json:
        record = {
            "usual_share": usual_share,
            "traces": {
                "totals": found.trace_totals(),
                "gaps": [
                    {
                        **row,
                        "after_ts": row["after_ts"].isoformat(timespec="seconds"),
                        "before_ts": row["before_ts"].isoformat(timespec="seconds"),
                    }
                    for row in found.traces.iter_rows(named=True)
                ],
            },
            "days": {
                "totals": found.day_totals(),
                "days": [
                    {**row, "day": row["day"].isoformat()}
                    for row in found.days.iter_rows(named=True)
                ],
            },
        }
        sys.stdout.write(json.dumps(record) + "\n")
        return
    traces, days = found.trace_totals(), found.day_totals()
    gap_table = Table(
        title=f"Trace gaps: {traces['missing_trace_numbers']:,} numbers missing in "
        f"{traces['gaps']:,} gaps, {traces['batches']:,} batches of {traces['terminals']:,} "
        f"terminals (first {min(top, traces['gaps'])})"
    )
    for column in ("terminal", "batch", "after", "before", "missing", "between"):
        gap_table.add_column(
            column, justify="left" if column in ("terminal", "between") else "right"
        )
    for row in found.traces.head(top).iter_rows(named=True):
        gap_table.add_row(
            row["terminal_id"],
            str(row["batch_no"]),
            str(row["after_trace_no"]),
            str(row["before_trace_no"]),
            f"{row['missing']:,}",
            f"{row['after_ts']:%Y-%m-%d %H:%M} - {row['before_ts']:%H:%M}",
        )
    out.print(gap_table)
    day_table = Table(
        title=f"Missing days: {days['missing_days']:,} days of {days['terminals']:,} terminals "
        f"that trade on that weekday at least {usual_share:.0%} of the time "
        f"(first {min(top, days['missing_days'])})"
    )
    for column in ("terminal", "day", "weekday", "traded on that weekday"):
        day_table.add_column(column, justify="left" if column != "weekday" else "right")
    weekdays = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    for row in found.days.head(top).iter_rows(named=True):
        day_table.add_row(
            row["terminal_id"],
            str(row["day"]),
            weekdays[row["weekday"] - 1],
            f"{row['weekday_traded']} of {row['weekday_others']} others",
        )
    out.print(day_table)


def _bounds_fen(bounds: str) -> tuple[int, ...]:
    """``--bounds`` (CNY, rising, comma-separated) in fen; a bad one fails in one line."""
    from decimal import Decimal, InvalidOperation

    try:
        fen = [Decimal(b.strip()) * 100 for b in bounds.split(",")]
    except InvalidOperation:
        fail(f"--bounds must be amounts in CNY separated by commas, got {bounds!r}")
    if any(f != f.to_integral_value() or f <= 0 for f in fen):
        fail(f"--bounds must be positive amounts to the fen, got {bounds!r}")
    chosen = tuple(int(f) for f in fen)
    if list(chosen) != sorted(set(chosen)):
        fail(f"--bounds must rise, each once, got {bounds!r}")
    return chosen


def _yuan(fen: int | None) -> str:
    return "" if fen is None else f"{fen / 100:,.2f}"


@analyze_app.command("strata")
def analyze_strata(
    db: DbOption = None,
    kind: Annotated[
        str, typer.Option(help="Whose amounts: sale, refund, void or transfer (approved).")
    ] = "sale",
    bounds: Annotated[
        str | None,
        typer.Option(
            help="The strata's bounds in CNY, rising, comma-separated (default: the amounts' "
            "median and 80th, 95th and 99th percentiles)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Stratification: the approved amounts of one kind by strata of amount, with counts and
    totals.

    Each stratum holds the amounts from its lower bound up to, not including, its upper; the
    first starts at the smallest amount and the last runs past the largest. Prints each
    stratum's count and amount, their shares of the whole, and the smallest, largest and mean
    amount. Reads the store only.

    Example: posaudit analyze strata --db data/posaudit.duckdb --bounds 100,1000,10000
    """
    import json

    from posaudit.classics import strata as st
    from posaudit.store import Store

    if kind not in st.KINDS:
        fail(f"--kind must be one of {', '.join(st.KINDS)}, got {kind!r}")
    chosen = None if bounds is None else _bounds_fen(bounds)
    path = db or default_db_path()
    with user_errors():
        store = Store.open(path, read_only=True)
        try:
            found = st.strata(store, kind, chosen)  # type: ignore[arg-type]
        finally:
            store.close()
    if as_json:
        record = {
            "kind": found.kind,
            "bounds_fen": list(found.bounds_fen),
            "from_quantiles": found.from_quantiles,
            "quantiles": list(st.QUANTILES) if found.from_quantiles else None,
            "strata": found.table.to_dicts(),
        }
        sys.stdout.write(json.dumps(record) + "\n")
        return
    whence = "the median and 80th, 95th, 99th percentiles" if found.from_quantiles else "given"
    table = Table(title=f"Approved {kind} amounts by stratum (bounds: {whence})")
    for column in ("", "amounts (CNY)", "count", "share", "amount (CNY)", "share ", "mean"):
        table.add_column(column, justify="left" if column == "amounts (CNY)" else "right")
    for row in found.table.iter_rows(named=True):
        lower, upper = row["lower_fen"], row["upper_fen"]
        span = (
            f"under {_yuan(upper)}"
            if lower is None
            else f"{_yuan(lower)} or more"
            if upper is None
            else f"{_yuan(lower)} to {_yuan(upper)}"
        )
        table.add_row(
            str(row["stratum"]),
            span,
            f"{row['count']:,}",
            f"{row['count_share']:.1%}",
            _yuan(row["amount_fen"]),
            f"{row['amount_share']:.1%}",
            "-" if row["mean_fen"] is None else _yuan(round(row["mean_fen"])),
        )
    out.print(table)


@analyze_app.command("ageing")
def analyze_ageing(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Ageing: approved refunds by days after their sale, and open findings by days open.

    Refunds fall in bands read against the 15-day refund window (same day, 1-7, 8-15, 16-30,
    31-90, over 90 days; or no sale on record). Open findings are aged by the days of data
    since the run that first raised them (its data's end) to the latest run's, by severity,
    with how many an analyst has decided. Reads the store only.

    Example: posaudit analyze ageing --db data/posaudit.duckdb --json
    """
    import json

    import polars as pl

    from posaudit.classics import ageing as ag
    from posaudit.store import Store

    path = db or default_db_path()
    with user_errors():
        store = Store.open(path, read_only=True)
        try:
            found = ag.ageing(store)
        finally:
            store.close()
    if as_json:
        record = {"refunds": found.refunds.to_dicts(), "findings": found.findings.to_dicts()}
        sys.stdout.write(json.dumps(record) + "\n")
        return
    refunds = Table(title="Approved refunds by days after their sale")
    for column in ("age", "refunds", "amount (CNY)"):
        refunds.add_column(column, justify="left" if column == "age" else "right")
    for band, count, amount in found.refunds.iter_rows():
        refunds.add_row(band, f"{count:,}", _yuan(amount))
    out.print(refunds)
    wide = found.findings.pivot(on="severity", index="band", values="findings")
    decided = found.findings.group_by("band", maintain_order=True).agg(pl.col("decided").sum())
    findings = Table(title="Open findings by days of data since first raised")
    for column in ("open for", *ag.SEVERITIES, "decided"):
        findings.add_column(column, justify="left" if column == "open for" else "right")
    for row, done in zip(wide.iter_rows(named=True), decided["decided"], strict=True):
        findings.add_row(row["band"], *(f"{row[s]:,}" for s in ag.SEVERITIES), f"{done:,}")
    out.print(findings)


@analyze_app.command("benford")
def analyze_benford(
    db: DbOption = None,
    test: Annotated[
        list[str] | None,
        typer.Option(
            "--test",
            help="first_digit, first_two, last_two or second_order; repeat for more "
            "(default: all four).",
        ),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(help="Test each merchant, terminal or operator apart (default: the store)."),
    ] = None,
    min_rows: Annotated[
        int,
        typer.Option(help="The fewest amounts an entity needs in a test to be tested (with --by)."),
    ] = 1_000,
    top: Annotated[
        int, typer.Option(help="With --by: how many entities to list, the least conforming first.")
    ] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Benford's law on the amounts of approved sales (Nigrini's tests).

    For each test: how many amounts, the mean absolute deviation (MAD) from Benford's
    proportions and its conformity band (Nigrini 2012: close, acceptable, marginally
    acceptable, nonconformity; the last-two digits test has none), the chi-square statistic
    and its p-value, and the spikes: the digit combinations found most above their share (Z
    over 1.96). With --by, each entity with at least --min-rows amounts in the test, the
    least conforming (largest MAD) first. Reads the store only.

    Example: posaudit analyze benford --db data/posaudit.duckdb --test first_two --by merchant
    """
    import json

    from posaudit.classics import benford as bf
    from posaudit.store import Store

    tests = list(dict.fromkeys(test or bf.TESTS))
    unknown = [t for t in tests if t not in bf.TESTS]
    if unknown:
        fail(f"--test must be one of {', '.join(bf.TESTS)}, got {unknown[0]!r}")
    if by is not None and by not in bf.ENTITIES:
        fail(f"--by must be one of {', '.join(bf.ENTITIES)}, got {by!r}")
    if min_rows < 100:
        fail(f"--min-rows must be at least 100 (the MAD bands need many amounts), got {min_rows}")
    if top < 1:
        fail(f"--top must be at least 1, got {top}")
    path = db or default_db_path()
    with user_errors():
        store = Store.open(path, read_only=True)
        try:
            results = {
                t: bf.benford(store, t, by=by, min_rows=min_rows)  # type: ignore[arg-type]
                for t in tests
            }
        finally:
            store.close()
    if by is None and not any(results.values()):
        fail(f"{path} holds no approved sale to test")
    if as_json:
        record = {
            "by": by,
            "min_rows": min_rows if by else None,
            "tests": {
                t: {
                    "entities_tested": len(rs),
                    "nonconforming": sum(1 for r in rs if r.conforms is False),
                    "results": [r.as_dict() for r in (rs if by is None else rs[:top])],
                }
                for t, rs in results.items()
            },
        }
        sys.stdout.write(json.dumps(record) + "\n")
        return
    for t, rs in results.items():
        what = "the store" if by is None else f"{len(rs):,} {by}s of {min_rows:,} amounts or more"
        table = Table(title=f"Benford, {t.replace('_', ' ')}: {what}")
        for column in (*(() if by is None else (by,)), "amounts", "MAD", "band", "chi-square", "p"):
            table.add_column(column, justify="left" if column in (by, "band") else "right")
        table.add_column("spikes (digits, z)")
        for r in rs if by is None else rs[:top]:
            table.add_row(
                *(() if by is None else (r.entity or "",)),
                f"{r.n:,}",
                f"{r.mad:.4f}",
                r.band or "no published bands",
                f"{r.chi_square:,.1f}",
                f"{r.p_value:.3g}",
                bf.spike_text(r),
            )
        out.print(table)


ConfidenceOption = Annotated[
    float, typer.Option(help="The confidence (1 - the risk of incorrect acceptance), 0 to 1.")
]
TolerableOption = Annotated[
    float, typer.Option(help="The tolerable misstatement, as a share of the population's value.")
]
ExpectedOption = Annotated[
    float, typer.Option(help="The expected misstatement, as a share of the population's value.")
]


@sample_app.command("size")
def sample_size_command(
    confidence: ConfidenceOption = 0.95,
    tolerable: TolerableOption = 0.05,
    expected: ExpectedOption = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """The monetary-unit sample size by the AICPA formula.

    The smallest n with GammaInv(confidence, 1 + n x expected) at most n x tolerable: the
    sample whose upper misstatement limit stays within the tolerable misstatement if the
    expected misstatement is found (93 at 95 % confidence, 5 % tolerable, 1 % expected).

    Example: posaudit sample size --confidence 0.95 --tolerable 0.05 --expected 0.01
    """
    import json

    from posaudit.classics import sampling as sm

    try:
        n = sm.sample_size(confidence, tolerable, expected)
    except sm.SamplingError as exc:
        fail(str(exc))
    if as_json:
        record = {
            "confidence": confidence,
            "tolerable": tolerable,
            "expected": expected,
            "sample_size": n,
            "interval_share": 1 / n,
        }
        sys.stdout.write(json.dumps(record) + "\n")
        return
    out.print(
        f"{n:,} items: at {confidence:.0%} confidence, {tolerable:.2%} tolerable and "
        f"{expected:.2%} expected misstatement (sampling interval: the population's value / {n})"
    )


@sample_app.command("draw")
def sample_draw(
    out_path: Annotated[
        Path, typer.Option("--out", help="The sample's CSV file, to be tested (must not exist).")
    ],
    db: DbOption = None,
    of: Annotated[
        str, typer.Option("--of", help="What to sample: transactions or findings (the open ones).")
    ] = "transactions",
    method: Annotated[
        str,
        typer.Option(
            help="mus (monetary units, probability proportional to size) or stratified "
            "(random within strata of amount; findings: within families)."
        ),
    ] = "mus",
    kind: Annotated[
        str, typer.Option(help="Which approved transactions: sale, refund, void or transfer.")
    ] = "sale",
    size: Annotated[
        int | None,
        typer.Option(help="The sample size (default: from --confidence, --tolerable, --expected)."),
    ] = None,
    confidence: ConfidenceOption = 0.95,
    tolerable: TolerableOption = 0.05,
    expected: ExpectedOption = 0.0,
    bounds: Annotated[
        str | None,
        typer.Option(
            help="With --method stratified: the strata's bounds in CNY, rising, comma-separated "
            "(default: the amounts' median and 80th, 95th and 99th percentiles)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="The seed: the same seed draws the same sample.")] = 1,
) -> None:
    """Draw a sample to test by hand, seeded and reproducible, into a CSV file.

    Each row is an item with an empty column for what the auditor finds (audited_cny, or for
    findings deviation: yes when the finding did not hold up) and a note; every row also
    carries the sample's parameters, so the file alone can be evaluated (posaudit sample
    evaluate). A monetary-unit sample draws the items holding every interval-th fen from a
    random start: an item as large as the interval is drawn for certain, and hits says how
    many units it holds. Reads the store only.

    Example: posaudit sample draw --db data/posaudit.duckdb --of transactions --method mus
    --tolerable 0.05 --expected 0.01 --seed 7 --out sample.csv
    """

    from posaudit.atomic import written_file
    from posaudit.classics import sampling as sm
    from posaudit.store import Store
    from posaudit.untrusted import csv_safe

    if of not in sm.POPULATIONS:
        fail(f"--of must be one of {', '.join(sm.POPULATIONS)}, got {of!r}")
    if method not in sm.METHODS:
        fail(f"--method must be one of {', '.join(sm.METHODS)}, got {method!r}")
    if of == "findings" and method != "stratified":
        fail("findings have no amount to sample by: use --method stratified with --of findings")
    if bounds is not None and (method != "stratified" or of != "transactions"):
        fail("--bounds applies only to --method stratified of transactions")
    if size is not None and size < 1:
        fail(f"--size must be at least 1, got {size}")
    if out_path.exists():
        fail(f"{out_path} already exists: a tested sample is not overwritten; choose another --out")
    if not out_path.parent.is_dir():
        fail(f"--out {out_path}: the folder {out_path.parent} does not exist")
    chosen = None if bounds is None else _bounds_fen(bounds)
    path = db or default_db_path()
    try:
        n = size if size is not None else sm.sample_size(confidence, tolerable, expected)
        if not 0.0 < confidence < 1.0:
            raise sm.SamplingError(f"--confidence must lie between 0 and 1, got {confidence}")
        with user_errors():
            store = Store.open(path, read_only=True)
            try:
                if of == "findings":
                    drawn = sm.findings_sample(store, n, seed=seed)
                elif method == "mus":
                    drawn = sm.monetary_unit(store, n, seed=seed, kind=kind)
                else:
                    drawn = sm.stratified(store, n, seed=seed, kind=kind, bounds_fen=chosen)
            finally:
                store.close()
    except sm.SamplingError as exc:
        fail(str(exc))
    rows = csv_safe(sm.sample_frame(drawn, confidence))
    with user_errors(), written_file(out_path) as part:
        rows.write_csv(part)
    what = "open findings" if of == "findings" else f"approved {kind}s"
    if drawn.population_items == 0:
        out.print(f"The population is empty (no {what}): {out_path} holds no item.")
        return
    worth = "" if of == "findings" else f" worth {_yuan(drawn.population_fen)} CNY"
    how = (
        f"every {_yuan(round(drawn.interval_fen or 0))} CNY from a random start"
        if drawn.method == "mus"
        else f"at random within {int((drawn.strata['drawn'] > 0).sum())} strata"
    )
    out.print(
        f"{drawn.items.height:,} of {drawn.population_items:,} {what}{worth} drawn ({how}, "
        f"sample size {n:,}, seed {seed}) into {out_path}"
    )


@sample_app.command("evaluate")
def sample_evaluate(
    tested: Annotated[Path, typer.Argument(help="The sample's CSV file, tested.")],
    tolerable_cny: Annotated[
        float | None,
        typer.Option(help="The tolerable misstatement in CNY, to say whether the limit is within."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Evaluate a tested sample: what its errors say of the whole population.

    A monetary-unit sample: the upper misstatement limit (Stringer bound, AICPA): basic
    precision, the projected misstatement of each tainting and the incremental allowance, plus
    what was found in the items tested whole. A stratified sample of transactions: the
    difference estimate and its upper limit. A sample of findings: the share that did not
    hold up and its upper limit. Every item must have been tested.

    Example: posaudit sample evaluate sample.csv --tolerable-cny 50000
    """
    import json

    import polars as pl

    from posaudit.classics import sampling as sm

    if tested.is_dir():
        fail(f"{tested} is a folder: give the sample's CSV file")
    if not tested.is_file():
        fail(f"{tested}: no such file")
    try:
        frame = pl.read_csv(tested, infer_schema=False)
    except (pl.exceptions.PolarsError, UnicodeDecodeError) as exc:
        fail(f"{tested}: not a readable CSV file ({str(exc).splitlines()[0]})")
    except OSError as exc:
        fail(environment_problem(exc))
    try:
        found = sm.evaluate_file(frame)
    except sm.SamplingError as exc:
        fail(f"{tested}: {exc}")
    if found is None:
        if as_json:
            sys.stdout.write(json.dumps({"method": None, "items_tested": 0}) + "\n")
        else:
            out.print("The sample is empty (its population was): nothing to evaluate.")
        return
    record = found.as_dict()
    limit = getattr(found, "upper_limit_fen", None)
    if tolerable_cny is not None and limit is not None:
        record["tolerable_fen"] = round(tolerable_cny * 100)
        record["within_tolerable"] = limit <= tolerable_cny * 100
    if as_json:
        sys.stdout.write(json.dumps(record) + "\n")
        return
    if isinstance(found, sm.AttributeEvaluation):
        out.print(
            f"{found.deviations} of {found.tested} findings did not hold up ({found.rate:.1%}); "
            f"at {found.confidence:.0%} confidence at most {found.upper_rate:.1%} of the "
            f"{found.population_items:,} do not."
        )
        return
    table = Table(title=f"Evaluation at {found.confidence:.0%} confidence (CNY)")
    table.add_column("")
    table.add_column("CNY", justify="right")
    if isinstance(found, sm.MusEvaluation):
        rows = [
            ("items tested", f"{found.items_tested:,}"),
            ("sampling interval", _yuan(round(found.interval_fen))),
            ("overstatements (below the interval)", f"{found.overstatements:,}"),
            ("found in the items tested whole", _yuan(found.known_fen)),
            ("basic precision", _yuan(round(found.basic_precision_fen))),
            ("projected misstatement", _yuan(round(found.projected_fen))),
            ("incremental allowance", _yuan(round(found.allowance_fen))),
            ("upper misstatement limit", _yuan(round(found.upper_limit_fen))),
            ("projected understatement (not bounded)", _yuan(round(found.understatement_fen))),
        ]
    else:
        rows = [
            ("items tested", f"{int(found.strata['tested'].sum()):,}"),
            ("projected misstatement", _yuan(round(found.projected_fen))),
            ("standard error", _yuan(round(found.standard_error_fen))),
            ("upper misstatement limit", _yuan(round(found.upper_limit_fen))),
        ]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    if "within_tolerable" in record:
        verdict = "within" if record["within_tolerable"] else "ABOVE"
        out.print(f"The upper limit is {verdict} the tolerable {tolerable_cny:,.2f} CNY.")


@app.command()
def backtest(
    policy: Annotated[
        Path,
        typer.Option(
            "--policy", help="The policy file (TOML, as for `run --policy`) to compare with."
        ),
    ],
    db: DbOption = None,
    rule: Annotated[
        list[str] | None,
        typer.Option("--rule", help="Only this rule (repeatable). Default: every rule."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Which findings another policy would gain or lose, and what was decided about them.

    Replays the store's current policy (its latest successful run's) and --policy over all
    the stored data, in memory, writing nothing, and compares their findings by id, with each
    finding's latest review decision: true (confirmed_fraud, policy_breach), false
    (false_positive, benign_explained) or undecided. Exit codes: 0 compared, 2 bad input,
    3 a run is writing the store.

    Example: posaudit backtest --policy stricter.toml --rule refund_bursts --json
    """
    import json

    from posaudit.detect.policy import load_policy
    from posaudit.rules import all_rules
    from posaudit.run.backtest import backtest as backtest_policy
    from posaudit.store import Store

    path = db or default_db_path()
    with user_errors():
        new_policy = load_policy(policy)
        known = list(all_rules())
        unknown = [r for r in rule or [] if r not in known]
        if unknown:
            fail(f"unknown rule {unknown[0]!r}: the rules are {', '.join(sorted(known))}")
        store = Store.open(path, read_only=True)
        try:
            result = backtest_policy(store, new_policy, new_source=str(policy), rules=rule)
        finally:
            store.close()
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        return
    current = result.current.run_id or "the default policy"
    for table in _backtest_tables(result.comparison.to_dicts(), f"{path}", f"{current}'s", policy):
        out.print(table)
    if not result.current.as_recorded:
        out.print(
            f"note: {current}'s policy file, laid over this posaudit's default, no longer gives "
            "the policy hash the run recorded (the default changed since)",
            markup=False,
            soft_wrap=True,
        )


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def lab(
    ctx: typer.Context,
    db: DbOption = None,
    port: Annotated[
        int | None, typer.Option(help="Port for JupyterLab (default: 8888 or the next free one).")
    ] = None,
) -> None:
    """Open JupyterLab on the notebooks, which read the store read-only.

    Arguments after -- go to JupyterLab unchanged.

    Example: posaudit lab --db data/posaudit.duckdb --port 8890 -- --no-browser
    """
    from posaudit.notebook.lab import notebooks_dir, run_lab
    from posaudit.store import Store

    path = db or default_db_path()
    if port is not None and not 1 <= port <= 65535:
        fail(f"--port must be between 1 and 65535, got {port}")
    notebooks = notebooks_dir()
    if notebooks is None:
        fail("no notebooks/ folder here: run `posaudit lab` from the posaudit checkout")
    with user_errors():
        store = Store.open(path, read_only=True)
        try:
            succeeded = "SELECT count(*) FROM pipeline_runs WHERE status = 'succeeded'"
            runs = int(store.query(succeeded)[0][0])  # type: ignore[call-overload]
        finally:
            store.close()
    if runs == 0:
        err.print(
            f"posaudit: note: {path} has no audit run yet; "
            f"`posaudit run --db {path}` gives the notebooks their findings",
            markup=False,
        )
    err.print(
        f"posaudit: JupyterLab on {notebooks}, store {path.resolve()} (read-only); "
        "Ctrl-C stops it and its kernels",
        markup=False,
    )
    code = run_lab(db=path, notebooks=notebooks, port=port, extra=list(ctx.args))
    if code:
        raise typer.Exit(code)


@app.command()
def report(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for the report files (created if absent).")
    ],
    db: DbOption = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help="The run to report on (default: the latest).")
    ] = None,
    formats: Annotated[
        str, typer.Option("--format", help="Comma-separated: html,pdf,xlsx,csv,parquet.")
    ] = "html,pdf,xlsx,csv,parquet",
    lang: Annotated[str, typer.Option("--lang", help="Language of the report: en or zh.")] = "en",
    mask_operators: Annotated[
        bool,
        typer.Option(
            "--mask-operators",
            help="Replace operator names, numbers and ids with stable pseudonyms.",
        ),
    ] = False,
    classics: Annotated[
        bool,
        typer.Option(
            help="The auditor's classics (Benford, strata, duplicates, gaps, ageing, the sample "
            "size) as a section and workbook sheets; they read the whole store (seconds on a "
            "large one).",
        ),
    ] = True,
) -> None:
    """Write a run's audit report: HTML, PDF, Excel workbook, and the findings as CSV and Parquet.

    Example: posaudit report --db data/posaudit.duckdb --out out/report --format html,pdf --lang zh
    """
    from posaudit.report import ReportError, build_report, parse_formats

    path = db or default_db_path()
    with user_errors():
        try:
            if lang not in ("en", "zh"):
                fail(f"--lang must be en or zh, got {lang!r}")
            chosen = parse_formats(formats)
            result = build_report(
                path,
                out_dir,
                run_id=run_id,
                formats=chosen,
                lang=lang,  # type: ignore[arg-type]
                mask_operators=mask_operators,
                classics=classics,
            )
        except ReportError as exc:
            fail(str(exc))
        except OSError as exc:  # a full disk, a read-only folder: nothing that looks whole is left
            fail(f"cannot write the report to {out_dir}: {exc.strerror or exc}")
    out.print(
        f"{result.run_id}: {result.findings:,} findings reported in {result.seconds['total']:.1f} s"
    )
    for kind, written in result.paths.items():
        out.print(f"{kind:8} {written}", markup=False, soft_wrap=True)


@app.command()
def export(
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", help="A new or empty folder for the files (Parquet: one folder per table)."
        ),
    ],
    db: DbOption = None,
    flat: Annotated[
        bool, typer.Option("--flat", help="One file per table instead of Hive partitions by date.")
    ] = False,
    layout: Annotated[
        str | None,
        typer.Option(
            "--layout",
            help=(
                "Write the files of a source layout instead of Parquet, as a built-in mapping "
                "describes it (lakala-tms: GB18030 CSV with Chinese headers, yuan amounts, masked "
                "card numbers, transactions one file per month). `posaudit ingest --mapping` "
                "with the same name reads them back."
            ),
        ),
    ] = None,
) -> None:
    """Export every table of the store as Parquet, event tables Hive-partitioned by date, or,
    with --layout, as the files of a terminal-management and merchant-portal export.

    Example: posaudit export --db data/posaudit.duckdb --out data/parquet
    Example: posaudit export --db data/posaudit.duckdb --layout lakala-tms --out data/lakala
    """
    from posaudit.atomic import written_folder
    from posaudit.store import Store

    path = db or default_db_path()
    with user_errors():
        chosen = None
        if layout is not None:
            from posaudit.ingest.layout import load_layout, write_layout

            if flat:
                fail("--flat is for the Parquet export; a --layout has its own files")
            chosen = load_layout(layout)
        if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
            fail(f"--out {out_dir} must be a new or empty folder")
        store = Store.open(path, read_only=True)
        try:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            # the folder appears whole or not at all: a failed export (a full disk, say) leaves
            # nothing to be read as the store, nor to block the next export
            with written_folder(out_dir) as folder:
                if chosen is None:
                    tables = store.export_parquet(folder, partitioned=not flat)
                else:
                    written = write_layout(store, folder, chosen)
        finally:
            store.close()
    if chosen is None:
        out.print(f"exported {len(tables)} tables to {out_dir}", markup=False, soft_wrap=True)
    else:
        what = f"exported {len(written)} files in the {chosen.name} layout to {out_dir}"
        out.print(what, markup=False, soft_wrap=True)


@app.command()
def ingest(
    sources: Annotated[
        list[str],
        typer.Argument(help="Files, folders or globs to ingest (CSV, .xlsx, Parquet, JSON lines)."),
    ],
    mapping: Annotated[
        str,
        typer.Option(
            "--mapping", help="A built-in mapping's name (contract, ...) or a mapping TOML file."
        ),
    ],
    db: DbOption = None,
    parquet: Annotated[
        Path | None,
        typer.Option(
            "--parquet",
            help=(
                "Also write the store, after the ingest, as the bucketed Parquet export the "
                "Spark engine reads (run --engine spark --parquet DIR) into this new or empty "
                "folder."
            ),
        ),
    ] = None,
    as_json: JsonSummaryOption = False,
    quiet: QuietOption = False,
) -> None:
    """Load real exports into the store through a mapping; quarantine the rows it cannot trust.

    All files of one ingest are written in one transaction under the store's writer lock; a
    file already loaded adds nothing, nor does a row whose key the store holds. A store that
    does not exist yet is created. The last line on stdout is a JSON summary. Exit codes: 0
    ok, 1 failure, 2 bad input (one line naming the file and column; nothing written), 3 the
    store is locked by another posaudit process. See docs/ingest.md.

    Example: posaudit ingest --db data/posaudit.duckdb --mapping contract exports/*.parquet
    """
    path = db or default_db_path()
    bars = _interactive() and not (quiet or as_json)
    try:
        summary = _ingest(path, sources, mapping, parquet, bars=bars)
    except typer.Exit as exc:
        status = {EXIT_LOCKED: "locked", EXIT_FAILURE: "failed"}.get(exc.exit_code, "bad_input")
        _run_line({"status": status, "exit_code": exc.exit_code})
        raise
    except Exception as exc:
        err.print(f"posaudit: error: ingest failed: {exc}", markup=False, soft_wrap=True)
        _run_line({"status": "failed", "error": str(exc), "exit_code": EXIT_FAILURE})
        raise typer.Exit(EXIT_FAILURE) from exc
    record = summary.to_record() | {"exit_code": EXIT_OK}
    if not (as_json or quiet):
        _print_ingest(summary)
    _run_line(record)


def _ingest(
    path: Path, sources: list[str], mapping: str, parquet: Path | None, *, bars: bool
) -> IngestSummary:
    """The ingest behind the command; bad input ends in one line and exit 2 (3 locked)."""
    from posaudit.ingest.load import ingest_files
    from posaudit.ingest.mapping import load_mapping
    from posaudit.pins import pin_digester
    from posaudit.spark.export import export_buckets
    from posaudit.store import Store

    with user_errors():
        if (
            parquet is not None
            and parquet.exists()
            and (not parquet.is_dir() or any(parquet.iterdir()))
        ):
            fail(f"--parquet {parquet} must be a new or empty folder")
        loaded = load_mapping(mapping)
        digester = pin_digester()
        with _progress(bars) as bar:
            task = bar.add_task("reading", total=None, note="")

            def on_event(name: str, fields: Mapping[str, object]) -> None:
                if name == "planned":
                    bar.update(task, total=int(fields["files"]) + 1)  # type: ignore[call-overload]
                elif name == "block":
                    bar.update(task, note=f"{fields['file']}: {fields['rows']:,} rows")
                elif name == "file":
                    bar.update(task, advance=1, note=str(fields["file"]))
                elif name == "written":
                    bar.update(task, advance=1, description="written", note="")

            summary = ingest_files(path, loaded, sources, digester=digester, on_event=on_event)
    if parquet is not None:
        try:
            store = Store.open(path, read_only=True)
            try:
                parquet.parent.mkdir(parents=True, exist_ok=True)
                export_buckets(store, parquet)
            finally:
                store.close()
        except (StoreError, OSError) as exc:
            # the ingest is committed: only the export is missing, and can be made again
            cause = environment_problem(exc) if isinstance(exc, OSError) else str(exc)
            done = summary.ingest_id or "nothing new"
            fail(
                f"ingest committed ({done}), but the --parquet export failed: {cause}", EXIT_FAILURE
            )
    return summary


def _print_ingest(summary: IngestSummary) -> None:
    """The summary table: one row per file, where its rows went."""
    table = Table(title=f"{summary.ingest_id or 'nothing new'}: mapping {summary.mapping}")
    for column in ("file", "table", "read", "loaded", "duplicate", "quarantined", "cards"):
        table.add_column(column, justify="left" if column in ("file", "table") else "right")
    for report in summary.files:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(report.reasons.items()))
        quarantined = f"{report.rows_quarantined:,}" + (f" ({reasons})" if reasons else "")
        if report.already_loaded is not None:
            counts = [f"already loaded ({report.already_loaded})", "", "", "", ""]
        else:
            counts = [
                f"{report.rows_read:,}",
                f"{report.rows_loaded:,}",
                f"{report.rows_duplicate:,}",
                quarantined,
                f"{report.cards_in_clear:,}",
            ]
        table.add_row(report.file_name, report.target_table, *counts)
    out.print(table)
    out.print(
        f"{summary.rows_loaded:,} rows loaded, {summary.rows_quarantined:,} quarantined "
        f"from {len(summary.files)} files in {summary.seconds:.1f} s",
        markup=False,
        soft_wrap=True,
    )


@pins_app.command("check")
def pins_check(
    operator_no: Annotated[
        str | None,
        typer.Option("--operator-no", help="Also flag PINs built from this operator number."),
    ] = None,
) -> None:
    """Classify candidate PINs read from stdin, one a line: prints PIN<TAB>CLASS ('-' when none).

    Example: printf '123456\\n739204\\n' | posaudit pins check
    """
    from posaudit.pins import classify_pins

    lines = [line.strip() for line in sys.stdin.read().splitlines()]
    candidates = [line for line in lines if line]
    for number, line in enumerate(lines, start=1):
        if line and (len(line) != 6 or not line.isascii() or not line.isdigit()):
            fail(f"line {number} of stdin is not a 6-digit PIN")
    if operator_no is not None and (len(operator_no) != 2 or not operator_no.isdigit()):
        fail(f"--operator-no must be two digits, got {operator_no!r}")
    classes = classify_pins(candidates, operator_no=operator_no)
    sys.stdout.write(
        "".join(f"{pin}\t{cls}\n" for pin, cls in zip(candidates, classes, strict=True))
    )


@contextmanager
def review_errors() -> Iterator[None]:
    """:func:`user_errors`, and a review that cannot be recorded or read as asked (exit 2)."""
    from posaudit.review import ReviewError

    with user_errors():
        try:
            yield
        except ReviewError as exc:
            fail(str(exc))


def _review_line(review: object) -> str:
    from posaudit.review.trail import Review

    assert isinstance(review, Review)
    decided = f" as {review.decision}" if review.decision else ""
    assigned = f", assigned to {review.assignee}" if review.assignee else ""
    what = f"finding {review.finding_id}" if review.finding_id else f"case {review.case_id}"
    through = f" (through {review.case_id})" if review.finding_id and review.case_id else ""
    return (
        f"review {review.review_id}: {what}{through} {review.status}{decided}"
        f"{assigned}, by {review.analyst} (digest {review.digest})"
    )


TargetArgument = Annotated[
    str,
    typer.Argument(
        metavar="ID",
        help="A finding's id, or a case's: case-<entity type>-<entity id> (review list --cases).",
    ),
]
FindingArgument = Annotated[
    str, typer.Argument(metavar="FINDING_ID", help="The finding's id (findings.finding_id).")
]
NoteOption = Annotated[
    str | None, typer.Option("--note", help="A note for the trail (text, tabs and line breaks).")
]


def _record_review(target: str, kind: str, db: Path | None, **values: object) -> None:
    """Check an action, record it (or queue it while the store is held) and say which."""
    from posaudit.review import checked_action, record_action

    path = db or default_db_path()
    with review_errors():
        action = checked_action(kind, **values)  # type: ignore[arg-type]
        outcome = record_action(path, target, action)
    if outcome.queued is not None:
        out.print(
            f"queued, not yet recorded: {outcome.held_by}; the {kind} on {target} is kept as "
            f"request {outcome.queued.request_id} and applied when the store is free (by the "
            "run holding it as it ends, or the next review); `posaudit review pending` lists it",
            markup=False,
            soft_wrap=True,
        )
        return
    applied = outcome.settled.applied
    if applied:
        out.print(
            f"applied first {len(applied):,} review action{'' if len(applied) == 1 else 's'} "
            "queued while the store was held",
            markup=False,
        )
    for request, reason in outcome.settled.rejected:
        err.print(
            f"posaudit: warning: the queued {request.action.kind} on {request.target} "
            f"could not be applied: {reason}",
            markup=False,
            soft_wrap=True,
        )
    out.print(_review_line(outcome.review), markup=False, soft_wrap=True)
    if len(outcome.reviews) > 1:
        out.print(
            f"and {len(outcome.reviews) - 1:,} of the case's findings with it "
            f"(reviews {outcome.reviews[1].review_id}-{outcome.reviews[-1].review_id})",
            markup=False,
        )


@review_app.command("decide")
def review_decide(
    target: TargetArgument,
    decision: Annotated[
        str,
        typer.Option(
            "--decision",
            help="confirmed_fraud, policy_breach, false_positive or benign_explained.",
        ),
    ],
    note: NoteOption = None,
    status: Annotated[
        str, typer.Option("--status", help="The review's status: open, in_review or closed.")
    ] = "closed",
    db: DbOption = None,
) -> None:
    """Record a decision on a finding, or on a case and its findings not yet closed: a new
    review in the trail, closed unless --status says.

    The analyst is $POSAUDIT_ANALYST, else the OS user. While another posaudit process (a
    run) holds the store, the decision is queued on disk, applied when the store is free, and
    the line says so. Exit codes: 0 recorded or queued, 2 bad input (an unknown finding, case,
    decision or status, a note that is not text: nothing written).

    Example: posaudit review decide 3fa2c1d0e9b8a7f6e5d4 --decision false_positive --note "deposit"
    """
    _record_review(target, "decide", db, decision=decision, status=status, note=note)


@review_app.command("assign")
def review_assign(
    target: TargetArgument,
    to: Annotated[str, typer.Option("--to", help="Who reviews the finding or case.")],
    note: NoteOption = None,
    db: DbOption = None,
) -> None:
    """Assign a finding, or a case and its findings not yet closed, to an analyst: an open one
    is then in review; decisions stay.

    Example: posaudit review assign case-operator-T000011-02 --to wang.li
    """
    _record_review(target, "assign", db, assignee=to, note=note)


@review_app.command("comment")
def review_comment(
    target: TargetArgument,
    note: Annotated[str, typer.Option("--note", help="The comment (text, line breaks).")],
    db: DbOption = None,
) -> None:
    """Comment on a finding or a case: a review that changes nothing but adds the note.

    Example: posaudit review comment case-terminal-T000057 --note "router replaced on 12-01"
    """
    _record_review(target, "comment", db, note=note)


@review_app.command("reopen")
def review_reopen(
    target: TargetArgument,
    note: NoteOption = None,
    db: DbOption = None,
) -> None:
    """Reopen a finding, or a case and the findings closed with it: open and undecided again
    (the earlier decision stays in the trail).

    Example: posaudit review reopen case-operator-T000011-02 --note "new refunds to his card"
    """
    _record_review(target, "reopen", db, note=note)


@review_app.command("snooze")
def review_snooze(
    target: TargetArgument,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (required): kept in the trail.")
    ] = None,
    days: Annotated[
        int | None, typer.Option("--days", help="For this many days (at most 180).")
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option("--until", formats=["%Y-%m-%d"], help="Until this day, UTC (YYYY-MM-DD)."),
    ] = None,
    rule: Annotated[
        str | None, typer.Option("--rule", help="Only this rule (a case: default every rule).")
    ] = None,
    all_rules: Annotated[
        bool, typer.Option("--all-rules", help="Every rule (a finding: default its own rule).")
    ] = False,
    lift: Annotated[
        bool, typer.Option("--lift", help="End the snooze in force now (with --reason).")
    ] = False,
    db: DbOption = None,
) -> None:
    """Snooze a finding's entity for its rule, or a case's entity for every rule (or --rule),
    for at most 180 days: its findings are still recorded and listed, marked snoozed, and count
    for nothing in --fail-on alerts or the report's headline.

    Exit codes: 0 recorded, 2 bad input (no reason, no end or one past 180 days, an unknown
    finding, case or rule), 3 the store is locked by another posaudit process.

    Example: posaudit review snooze case-terminal-T000057 --rule network_failure_burst --days 30
    --reason "router replaced on 2026-12-20"
    """
    from posaudit.review import ReviewError, snooze

    if rule is not None:
        _check_rule_and_family(rule, None, set())
    with review_errors():
        if lift and (days is not None or until is not None):
            raise ReviewError("--lift ends the snooze now: give no --days or --until with it")
        made = snooze(
            db or default_db_path(),
            target,
            reason=reason,
            rule=rule,
            all_rules=all_rules,
            days=days,
            until=until,
            lift=lift,
        )
    covered = made.rule or "every rule"
    verb = "lifted" if lift else f"until {made.until:%Y-%m-%d %H:%M} UTC"
    out.print(
        f"snooze {made.snooze_id}: {made.entity_type} {made.entity_id}, {covered}, {verb}, "
        f"by {made.analyst} (digest {made.digest})",
        markup=False,
        soft_wrap=True,
    )


@review_app.command("pending")
def review_pending(db: DbOption = None) -> None:
    """Review actions queued while the store was held, not yet applied, and those that could
    not be applied (with the reason).

    Example: posaudit review pending --db data/posaudit.duckdb
    """
    from posaudit.review.pending import pending_requests, rejected_requests

    path = db or default_db_path()
    waiting, refused = pending_requests(path), rejected_requests(path)
    for request in waiting:
        out.print(
            f"queued {request.made_at:%Y-%m-%d %H:%M:%S} UTC by {request.action.analyst}: "
            f"{request.action.kind} {request.target} (request {request.request_id})",
            markup=False,
            soft_wrap=True,
        )
    for request, reason in refused:
        out.print(
            f"not applied: {request.action.kind} {request.target} queued "
            f"{request.made_at:%Y-%m-%d %H:%M:%S} UTC by {request.action.analyst}: {reason}",
            markup=False,
            soft_wrap=True,
        )
    out.print(f"{len(waiting):,} queued, {len(refused):,} not applied", markup=False)


def _check_rule_and_family(
    rule: str | None, family: str | None, store_rules: set[tuple[str, str]]
) -> None:
    """Refuse (exit 2) a rule or family that no rule has and no finding in the store names."""
    if rule is None and family is None:
        return
    from posaudit.rules import all_rules

    known = {(name, r.family) for name, r in all_rules().items()} | store_rules
    rules, families = sorted({r for r, _ in known}), sorted({f for _, f in known})
    if rule is not None and rule not in rules:
        fail(f"unknown rule {rule!r}: the rules are {', '.join(rules)}")
    if family is not None and family not in families:
        fail(f"unknown family {family!r}: the families are {', '.join(families)}")


@review_app.command("list")
def review_list(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only this review status: open, in_review, closed."),
    ] = None,
    decision: Annotated[
        str | None,
        typer.Option("--decision", help="Only this decision, or undecided."),
    ] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule's findings.")] = None,
    family: Annotated[
        str | None, typer.Option("--family", help="Only this family's findings (logins, pins...).")
    ] = None,
    case: Annotated[str | None, typer.Option("--case", help="Only this case's findings.")] = None,
    cases: Annotated[
        bool, typer.Option("--cases", help="List the cases (findings by entity), not findings.")
    ] = False,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", min=0, help="Rows of the table shown, the first in queue order; 0: all."
        ),
    ] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array of every row, no table.")
    ] = False,
    db: DbOption = None,
) -> None:
    """The review queue: findings with their current review state, open ones first; or, with
    --cases, the cases: each entity's findings, how many are undecided, the case's review.

    A finding or case never reviewed is open and undecided.

    Example: posaudit review list --status open --family refunds --json
    """

    import polars as pl

    from posaudit.review import case_list, review_queue
    from posaudit.store import Store

    path = db or default_db_path()
    with review_errors():
        store = Store.open(path, read_only=True)
        try:
            pairs = {
                (str(r), str(f))
                for r, f in store.query("SELECT DISTINCT rule, family FROM findings")
            }
            _check_rule_and_family(rule, family, pairs)
            if cases:
                queue = case_list(store, status=status)
            else:
                queue = review_queue(
                    store, status=status, decision=decision, rule=rule, family=family, case=case
                )
        finally:
            store.close()
    if as_json:
        # Polars writes the array itself: 50,000 findings in a tenth of the time of json.dumps
        written = queue.write_json()
        sys.stdout.write(written + "\n")
        return
    total = queue.height
    if limit:
        queue = queue.head(limit)
    table = Table(
        title=f"{path}: {'cases' if cases else 'review queue'}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    shown: tuple[str, ...] = (
        ("case_id", "findings", "undecided", "top_severity", "status", "decision", "assignee")
        if cases
        else ("finding_id", "rule", "severity", "review_status", "decision", "assignee")
    )
    headers = {
        "top_severity": "top",
        "review_status": "status",
        "findings": "all",
        "undecided": "open",
    }
    for column in shown:
        # the ids are what the other review commands take: never cut short
        header = headers.get(column, column.replace("_", " "))
        whole = column in ("finding_id", "case_id", "severity", "top_severity", "findings")
        table.add_column(
            header,
            justify="right" if column in ("findings", "undecided") else "left",
            no_wrap=whole or column == "rule",
            overflow="ellipsis" if column == "rule" else "fold",
            # a narrow terminal cuts the rule's name short (its start tells it), not the table
            min_width=None if whole or column == "rule" else len(header),
            max_width=max(12, out.width - 66) if column == "rule" else None,
        )
    if not cases:
        # a snoozed finding is listed, marked so
        queue = queue.with_columns(
            pl.when(pl.col("snoozed"))
            .then(pl.col("review_status") + " (snoozed)")
            .otherwise(pl.col("review_status"))
            .alias("review_status")
        )
    for row in queue.select(shown).iter_rows():
        table.add_row(*["" if v is None else str(v) for v in row])
    out.print(table)
    noun = "case" if cases else "finding"
    shown_note = (
        f", the first {queue.height:,} shown (--limit 0 shows all, --json prints all)"
        if queue.height < total
        else ""
    )
    out.print(f"{total:,} {noun}{'' if total == 1 else 's'}{shown_note}", markup=False)


def _trail_table(title: str, reviews: Sequence[object]) -> Table:
    from posaudit.review.trail import Review
    from posaudit.untrusted import readable

    trail = Table(title=title)
    for column in ("review", "at (UTC)", "by", "of", "status", "decision", "assignee", "note"):
        trail.add_column(column)
    for r in reviews:
        assert isinstance(r, Review)
        trail.add_row(
            str(r.review_id),
            r.reviewed_at.isoformat(timespec="seconds"),
            readable(r.analyst),
            "case" if r.finding_id is None else "finding",
            r.status,
            r.decision or "",
            readable(r.assignee or ""),
            readable(r.note or ""),
        )
    return trail


@review_app.command("show")
def review_show(
    target: TargetArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, no tables.")] = False,
    db: DbOption = None,
) -> None:
    """A finding as the runs recorded it and its review trail, oldest review first; or a case:
    its findings with their reviews, and the case's own trail.

    Example: posaudit review show 3fa2c1d0e9b8a7f6e5d4
    """
    import json

    from posaudit.review import case_trail, finding_with_trail
    from posaudit.review.cases import is_case_id
    from posaudit.review.trail import plural
    from posaudit.store import Store
    from posaudit.untrusted import readable

    with review_errors():
        store = Store.open(db or default_db_path(), read_only=True)
        try:
            found = None if is_case_id(target) else finding_with_trail(store, target)
            case = case_trail(store, target) if found is None else None
        finally:
            store.close()
    if case is not None:
        if as_json:
            record = {
                "case_id": target,
                "findings": case.findings.to_dicts(),
                "reviews": [r.to_record() for r in case.reviews],
            }
            sys.stdout.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
            return
        current = case.current
        out.print(
            f"case {target}: {plural(case.findings.height, 'finding')}, "
            + ("open, undecided (never reviewed)" if current is None else _review_line(current)),
            markup=False,
            soft_wrap=True,
        )
        table = Table(title="findings")
        shown = ("finding_id", "rule", "severity", "review_status", "decision", "assignee")
        for column in shown:
            table.add_column(column.replace("_", " "), no_wrap=column == "finding_id")
        for row in case.findings.select(shown).iter_rows():
            table.add_row(*["" if v is None else readable(str(v)) for v in row])
        out.print(table)
        out.print(_trail_table(f"case trail: {plural(len(case.reviews), 'review')}", case.reviews))
        return
    assert found is not None
    if as_json:
        trail_record: dict[str, object] = {
            "finding": found.finding,
            "reviews": [r.to_record() for r in found.reviews],
        }
        sys.stdout.write(json.dumps(trail_record, default=str, ensure_ascii=False) + "\n")
        return
    finding = found.finding
    table = Table(title=f"finding {target}", show_header=False)
    for key in (
        "rule",
        "family",
        "severity",
        "score",
        "entity_type",
        "entity_id",
        "window_start",
        "window_end",
        "status",
        "summary",
    ):
        value = finding[key]
        if key == "window_end" and value is None:
            value = "none: a state still held"
        table.add_row(key, f"{value:.3f}" if key == "score" else readable(str(value)))
    current = found.current
    table.add_row(
        "review", "open, undecided (never reviewed)" if current is None else _review_line(current)
    )
    table.add_row("case", f"case-{finding['entity_type']}-{finding['entity_id']}")
    out.print(table)
    out.print(_trail_table(f"trail: {plural(len(found.reviews), 'review')}", found.reviews))


@review_app.command("verify")
def review_verify(db: DbOption = None) -> None:
    """Recompute the chains of digests of the review trail and of the snoozes: exit 0 when
    whole, 2 naming the first review or snooze that was edited, deleted or inserted.

    Example: posaudit review verify --db data/posaudit.duckdb
    """
    from posaudit.review import verify_snoozes, verify_trail
    from posaudit.store import Store

    with review_errors():
        store = Store.open(db or default_db_path(), read_only=True)
        try:
            check = verify_trail(store)
            snoozes = verify_snoozes(store)
        finally:
            store.close()
    for problem in (check, snoozes):
        if not problem.whole:
            fail(problem.line())
    line = check.line()
    if snoozes.last_id is not None:
        line += f"; {snoozes.line()}"
    out.print(line, markup=False, soft_wrap=True)


# -- review export and import, evaluate --labels reviews -----------------------------------
EVALUATION_LABELS = ("truth", "reviews")
# What a file of decisions may be written in: UTF-8 (with or without a byte order mark), else
# GB18030, the encoding a spreadsheet saves CSV in on a Chinese Windows.
DECISION_FILE_ENCODINGS = ("utf-8", "gb18030")


@review_app.command("export")
def review_export(
    out_file: Annotated[
        str,
        typer.Option(
            "--out",
            help="FILE.csv, FILE.xlsx (an Excel workbook) or - for CSV on stdout (the default).",
        ),
    ] = "-",
    current: Annotated[
        bool,
        typer.Option(
            "--current",
            help=(
                "One row per reviewed finding, its latest review, with the finding's rule, "
                "family, severity, entity and window (what `review import` reads back)."
            ),
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Export the review trail: every review, every column, in review_id order; or, with
    --current, each reviewed finding's current review.

    A file is written whole or not at all. Values are as stored, so the digests can be
    recomputed from the export.

    Example: posaudit review export --db data/posaudit.duckdb --out trail.csv
    Example: posaudit review export --current --out decisions.xlsx
    """
    from posaudit.atomic import written_file
    from posaudit.review.export import current_reviews, review_trail
    from posaudit.store import Store

    to_stdout = out_file == "-"
    target = Path(out_file)
    excel = not to_stdout and target.suffix.lower() == ".xlsx"
    with review_errors():
        if not to_stdout and target.is_dir():
            fail(f"--out {target} is a folder, not a file")
        store = Store.open(db or default_db_path(), read_only=True)
        try:
            table = current_reviews(store) if current else review_trail(store)
        finally:
            store.close()
        if to_stdout:
            sys.stdout.write(table.write_csv())
            sys.stdout.flush()
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with written_file(target) as part:
            if excel:
                import xlsxwriter

                # text stays text: a note such as "=1+1" must not become a formula
                options = {
                    "strings_to_formulas": False,
                    "strings_to_urls": False,
                    "strings_to_numbers": False,
                }
                with xlsxwriter.Workbook(str(part), options) as book:
                    table.write_excel(book, worksheet="reviews", autofit=True)
            else:
                table.write_csv(part)
    what = "current reviews" if current else "reviews"
    out.print(f"exported {table.height:,} {what} to {target}", markup=False, soft_wrap=True)


def _decision_file_rows(path: Path) -> pl.DataFrame:
    """The rows of a file of decisions as text, with their line numbers (a polars DataFrame);
    exit 2 when the file is not UTF-8 or GB18030 text, or is not CSV."""
    from posaudit.ingest.mapping import IngestError
    from posaudit.ingest.sources import SourceFile, read_source

    if path.is_dir():
        fail(f"{path} is a folder, not a CSV file of decisions")
    data = path.read_bytes()
    if not data.strip():
        fail(f"{path} is empty: a CSV file of decisions has a header with finding_id, decision")
    encoding = None
    for candidate in DECISION_FILE_ENCODINGS:
        try:
            text = data.decode("utf-8-sig" if candidate == "utf-8" else candidate)
        except UnicodeDecodeError:
            continue
        encoding = candidate
        break
    if encoding is None or "\x00" in text:
        fail(f"{path} is not a CSV file of decisions: not UTF-8 or GB18030 text")
    try:
        return read_source(SourceFile(path, "csv", "", len(data)), encoding=encoding)
    except IngestError as exc:
        fail(str(exc))


@review_app.command("import")
def review_import(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.csv",
            help=(
                "Decisions, one a row: columns finding_id and decision; note, status (closed "
                "when absent) and assignee optional. UTF-8 or GB18030."
            ),
        ),
    ],
    db: DbOption = None,
) -> None:
    """Record the decisions of a CSV file, as an analyst keeps them in a spreadsheet.

    Each row is checked as `review decide` checks a decision. The good rows are recorded in
    one transaction, in the file's order; each bad row is named by its line and reason on
    stderr. Exit codes: 0 every row recorded, 2 some rows refused (the good ones are recorded)
    or a file without the columns finding_id and decision (nothing recorded), 3 the store is
    locked by another posaudit process (nothing recorded).

    Example: posaudit review import decisions.csv --db data/posaudit.duckdb
    """
    from posaudit.review.batch import decision_rows, missing_columns
    from posaudit.review.record import decide_many

    with review_errors():
        rows = _decision_file_rows(file)
        lacking = missing_columns(rows.columns)
        if lacking:
            fail(
                f"{file} line 1: the header has no {' and no '.join(lacking)} column "
                "(a file of decisions has finding_id, decision and optionally note, status, "
                "assignee)"
            )
        good, bad = decision_rows(rows)
        reviews = []
        if good:
            recorded = decide_many(db or default_db_path(), good)
            reviews, bad = recorded.reviews, sorted([*bad, *recorded.refused], key=lambda r: r.line)
    for refused in bad:
        err.print(f"posaudit: error: {file} {refused.text()}", markup=False, soft_wrap=True)
    last = (
        f"; the last review {reviews[-1].review_id} with digest {reviews[-1].digest}"
        if reviews
        else "; no review written"
    )
    out.print(
        f"{file}: {len(reviews):,} recorded, {len(bad):,} refused{last}",
        markup=False,
        soft_wrap=True,
    )
    if bad:
        raise typer.Exit(EXIT_BAD_INPUT)


def _evaluate_reviews(store: Store, run_id: str, *, as_json: bool) -> None:
    """``evaluate --labels reviews``: precision per rule from the analysts' decisions."""
    import json

    import polars as pl

    from posaudit.evaluate import TOTAL, precision_from_reviews
    from posaudit.review.trail import TABLE

    findings = store.scan("findings", where=f"run_id = '{run_id}'")
    reviews = (
        store.scan(TABLE)
        if store.has_table(TABLE)
        else pl.LazyFrame(
            schema={"review_id": pl.Int64, "finding_id": pl.String, "decision": pl.String}
        )
    )
    precision = precision_from_reviews(findings, reviews).collect()
    total = precision.filter(pl.col("rule") == TOTAL).row(0, named=True)
    if not total["decided"]:
        fail(
            f"{store.path} holds no decisions on the findings of {run_id} above 'info': "
            "nothing to evaluate against (record some with `posaudit review decide` or "
            "`posaudit review import`)"
        )
    per_rule = precision.filter(pl.col("rule") != TOTAL)
    volume = _alert_volume(store, run_id)
    if as_json:
        record = {
            "run_id": run_id,
            "labels": "reviews",
            "precision": per_rule.to_dicts(),
            "total": total,
            "alert_volume": volume,
        }
        out.print_json(json.dumps(record))
        return
    from rich import box

    table = Table(
        title=f"{run_id}: precision per rule from the analysts' decisions",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    # figures whole; in a narrow terminal the rule's name is cut short (its start tells it)
    table.add_column("rule", no_wrap=True, overflow="ellipsis", max_width=max(12, out.width - 68))
    for column in ("findings", "decided", "true", "false", "undecided", "precision", "95 %"):
        table.add_column(column, justify="right", no_wrap=True, min_width=max(len(column), 4))
    for row in precision.iter_rows(named=True):
        interval = (
            f"{row['precision_low']:.2f}-{row['precision_high']:.2f}" if row["decided"] else "-"
        )
        table.add_row(
            row["rule"],
            f"{row['findings']:,}",
            f"{row['decided']:,}",
            f"{row['decided_true']:,}",
            f"{row['decided_false']:,}",
            f"{row['undecided_share']:.0%}",
            "-" if row["precision"] is None else f"{row['precision']:.3f}",
            interval,
        )
    out.print(table)
    out.print(
        "true: confirmed_fraud or policy_breach; false: false_positive or benign_explained; "
        "95 %: Wilson score interval of precision (docs/evaluation.md)",
        markup=False,
        soft_wrap=True,
    )
    _print_alert_volume(run_id, volume)


# posaudit_meta marks the stores `posaudit demo` made: the only files it may replace.
DEMO_META_KEY = "made_by"
DEMO_META_VALUE = "posaudit demo"


def _check_demo_may_replace(path: Path) -> None:
    """Refuse (exit 2) when ``path`` holds anything but a store an earlier demo made."""
    from posaudit.store import Store

    if not path.exists() and not path.is_symlink():
        return
    refusal = (
        f"{path} exists and is not a store made by `posaudit demo`; the demo replaces only its "
        "own store: choose another --db (or $POSAUDIT_DB), or move that file away"
    )
    if not path.is_file():
        fail(refusal)
    try:
        store = Store.open(path, read_only=True)
    except StoreError:
        fail(refusal)
    try:
        made_by = store.meta().get(DEMO_META_KEY)
    finally:
        store.close()
    if made_by != DEMO_META_VALUE:
        fail(refusal)


@app.command()
def demo(
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Where the demo's outputs go."),
    ] = Path("out"),
    db: DbOption = None,
    merchants: Annotated[int, typer.Option(help="Merchants in the demo world.")] = 200,
    days: Annotated[int, typer.Option(help="Days in the demo world.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", help="Build a world past the size limit (100 million events) without asking."
        ),
    ] = False,
) -> None:
    """The main job: simulate the default world into a fresh store, audit it and write the report.

    The store at --db is replaced only when an earlier demo made it; any other file there is
    left alone (exit 2).

    Example: posaudit demo --out out
    """
    from posaudit.simulate.engine import simulate as run_simulation
    from posaudit.simulate.estimate import simulation_estimate
    from posaudit.simulate.scenario import check_seed, load_scenario
    from posaudit.store import Store, lock
    from posaudit.store.catalogue import WORLD_TABLES

    path = db or default_db_path()
    with user_errors():
        check_seed(seed)
        loaded = load_scenario(None, merchants=merchants, days=days)
        if out_dir.exists() and not out_dir.is_dir():
            fail(f"--out {out_dir} is a file, not a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        # the demo's store is its own: held from the first check to the report
        lock.acquire(path, purpose="demo")
        try:
            _check_demo_may_replace(path)
            Store.check_new_path(path.with_name(path.name + ".building"))
            _confirm_size(simulation_estimate(loaded), yes=yes)
            # a folder the report cannot be written to fails here, before the world is built
            out_dir.mkdir(parents=True, exist_ok=True)
            building = path.with_name(path.name + ".building")
            for leftover in (building, building.with_name(building.name + ".wal")):
                leftover.unlink(missing_ok=True)
            with _progress(_interactive()) as bar:
                task = bar.add_task("simulating", total=loaded.days, note="")
                summary = run_simulation(
                    building,
                    loaded,
                    seed=seed,
                    progress=lambda d, t, e: bar.update(
                        task, completed=d, total=t, note=f"{e:,} events"
                    ),
                )
            marked = Store.open(building, purpose="demo")
            try:
                marked.set_meta(DEMO_META_KEY, DEMO_META_VALUE)
            finally:
                marked.close()
            # the finished store replaces the old demo store in one step
            os.replace(building, path)
            store = Store.open(path, read_only=True)
            counts = store.row_counts()
            store.close()
            # the audit of the new world, then its report
            from posaudit.detect.policy import load_policy
            from posaudit.report import build_report
            from posaudit.run.local import run_pipeline

            store = Store.open(path, purpose="demo")
            try:
                audit = run_pipeline(store, load_policy())
            finally:
                store.close()
            reported = build_report(path, out_dir, run_id=audit.run_id)
        finally:
            lock.release(path)
    out.print(f"store: {path} ({summary.events:,} events in {summary.seconds:.1f} s)")
    table = Table(title="the demo world")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name in WORLD_TABLES:
        table.add_row(name, f"{counts[name]:,}")
    out.print(table)
    out.print(f"audit {audit.run_id}: {reported.findings:,} findings in {audit.seconds:.1f} s")
    out.print(f"report ({reported.seconds['total']:.1f} s):")
    for kind, written in reported.paths.items():
        out.print(f"  {kind:8} {written}", markup=False, soft_wrap=True)


@app.command()
def version() -> None:
    """Print posaudit's version.

    Example: posaudit version
    """
    out.print(__version__)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """posaudit's own warnings as one line on stderr; others as Python shows them."""
    from posaudit.pins import DemoPinKeyWarning

    if issubclass(category, DemoPinKeyWarning):
        err.print(f"posaudit: warning: {message}", markup=False, soft_wrap=True)
        return
    _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def main() -> None:
    """Entry point: usage errors become one line and exit code 2."""
    from posaudit.pins import DemoPinKeyWarning

    warnings.showwarning = _show_warning
    warnings.simplefilter("once", DemoPinKeyWarning)
    if len(sys.argv) <= 1:
        app()
    try:
        result = app(standalone_mode=False)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err.print("posaudit: aborted")
        raise SystemExit(130) from None
    except typer.TyperException as exc:
        err.print(f"posaudit: error: {exc.format_message()}", markup=False, soft_wrap=True)
        raise SystemExit(EXIT_BAD_INPUT) from None
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        # the reader of the output went away (`| head`): stop as a pipe's writer does, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(128 + signal.SIGPIPE) from None
    raise SystemExit(result if isinstance(result, int) else EXIT_OK)


if __name__ == "__main__":
    main()
