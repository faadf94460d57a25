"""posaudit's command line: a thin shell over the library.

Exit codes: 0 ok, 1 unexpected failure, 2 bad input (one line on stderr, nothing written),
3 the store is locked by another posaudit process, 4 findings at or above ``--fail-on``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from posaudit import __version__
from posaudit.store import StoreError, default_db_path

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
pins_app = typer.Typer(help="PIN weakness checks (no PIN is ever stored or logged).", no_args_is_help=True)
app.add_typer(pins_app, name="pins")

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="The store (DuckDB file). Default: $POSAUDIT_DB or data/posaudit.duckdb."),
]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """One line on stderr, then exit."""
    err.print(f"posaudit: error: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's input errors into one line and exit code 2 (3 when locked)."""
    from posaudit.config import ConfigError

    try:
        yield
    except StoreError as exc:
        fail(str(exc), EXIT_LOCKED if "locked" in str(exc) else EXIT_BAD_INPUT)
    except ConfigError as exc:
        fail(str(exc))


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


@app.command()
def simulate(
    db: DbOption = None,
    scenario: Annotated[Path | None, typer.Option(help="Scenario file (TOML) over the built-in default.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same tables.")] = 7,
    days: Annotated[int | None, typer.Option(help="Days to simulate (with --append: days to add).")] = None,
    merchants: Annotated[int | None, typer.Option(help="Merchants in the world.")] = None,
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD.")] = None,
    append: Annotated[bool, typer.Option("--append", help="Continue the store's world for --days more days.")] = False,
    no_fraud: Annotated[bool, typer.Option("--no-fraud", help="No attacks or abuse; conditions such as weak PINs stay.")] = False,
    parquet: Annotated[Path | None, typer.Option(help="Also export every table as Parquet (Hive-partitioned by date) here.")] = None,
) -> None:
    """Simulate a world of merchants, terminals and operators into the store.

    Example: posaudit simulate --db data/world.duckdb --merchants 50 --days 14 --seed 3
    """
    from posaudit.simulate.engine import simulate as run_simulation
    from posaudit.simulate.scenario import load_scenario
    from posaudit.store import Store

    path = db or default_db_path()
    with user_errors():
        if append and (merchants is not None or start is not None or scenario is not None):
            fail("--append continues the store's own world: drop --merchants, --start and --scenario")
        loaded = load_scenario(scenario, merchants=merchants, days=days if not append else (days or 1), start=start)
        if not append:
            if path.exists():
                fail(f"{path} already holds a world: add --append to continue it, or choose a new --db")
            Store.check_new_path(path)
        if parquet is not None and parquet.exists() and not parquet.is_dir():
            fail(f"--parquet {parquet} is a file, not a folder")
        with _progress(_interactive()) as bar:
            task = bar.add_task("simulating", total=loaded.days, note="")

            def tick(done: int, total: int, events: int) -> None:
                bar.update(task, completed=done, total=total, note=f"{events:,} events")

            summary = run_simulation(
                path, loaded, seed=seed, fraud_on=not no_fraud, append=append, parquet_dir=parquet, progress=tick
            )
    table = Table(title=f"{path}: days {summary.first_day + 1}-{summary.first_day + summary.days} from {summary.start}")
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


@app.command()
def run(
    db: DbOption = None,
    policy: Annotated[Path | None, typer.Option(help="Policy file (TOML) over the built-in default.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-run over all data (the default for now).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary instead of tables.")] = False,
) -> None:
    """Run every detection rule and anomaly score; write findings and a pipeline_runs row.

    Example: posaudit run --db data/posaudit.duckdb --policy my-policy.toml
    """
    import json

    from posaudit.detect.policy import load_policy
    from posaudit.pipeline import run_pipeline
    from posaudit.store import Store

    path = db or default_db_path()
    del full  # every run reads all data until incremental runs exist
    with user_errors():
        loaded = load_policy(policy)
        store = Store.open(path)
        try:
            with _progress(_interactive() and not as_json) as bar:
                task = bar.add_task("audit", total=None, note="")
                summary = run_pipeline(store, loaded, progress=lambda note: bar.update(task, note=note))
        finally:
            store.close()
    counts = summary.by_family_and_severity()
    if as_json:
        record = {
            "run_id": summary.run_id, "status": "succeeded", "seconds": round(summary.seconds, 3),
            "rows_read": summary.rows_read, "findings": summary.findings.height, "new": summary.new,
            "seen": summary.seen, "resolved": summary.resolved, "by_family_and_severity": counts.to_dicts(),
        }  # fmt: skip
        out.print_json(json.dumps(record))
        return
    table = Table(title=f"{summary.run_id}: findings by family and severity")
    table.add_column("family")
    for column in counts.columns[1:]:
        table.add_column(column, justify="right")
    for row in counts.iter_rows():
        table.add_row(*[str(v) for v in row])
    out.print(table)
    out.print(
        f"{summary.findings.height:,} findings ({summary.new:,} new, {summary.seen:,} seen before, "
        f"{summary.resolved:,} resolved) from {summary.rows_read:,} rows in {summary.seconds:.1f} s"
    )


@app.command()
def evaluate(
    db: DbOption = None,
    run_id: Annotated[str | None, typer.Option("--run", help="The run to evaluate (default: the latest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Compare a run's findings with the simulator's ground truth: recall and precision.

    Example: posaudit evaluate --db data/posaudit.duckdb --json
    """
    import json

    from posaudit.evaluate import evaluate as evaluate_run
    from posaudit.store import Store

    path = db or default_db_path()
    with user_errors():
        store = Store.open(path, read_only=True)
        try:
            runs = store.query("SELECT run_id FROM pipeline_runs WHERE status = 'succeeded' ORDER BY started_at DESC, run_id DESC")
            if not runs:
                fail(f"{path} has no successful run to evaluate: run `posaudit run --db {path}` first")
            chosen = run_id or str(runs[0][0])
            if chosen not in {str(r[0]) for r in runs}:
                fail(f"no successful run {chosen!r} in {path}")
            findings = store.scan("findings", where=f"run_id = '{chosen}'")
            result = evaluate_run(findings, store.scan("ground_truth"), store.scan("operators"))
        finally:
            store.close()
    if as_json:
        out.print_json(json.dumps({"run_id": chosen, **result.to_dict()}))
        return
    recall = Table(title=f"{chosen}: recall per scenario")
    for column in ("scenario", "incidents", "detected", "recall"):
        recall.add_column(column, justify="left" if column == "scenario" else "right")
    for row in result.recall.iter_rows(named=True):
        recall.add_row(row["scenario"], f"{row['incidents']:,}", f"{row['detected']:,}", f"{row['recall']:.3f}")
    out.print(recall)
    precision = Table(title=f"{chosen}: precision per rule (severity above info)")
    for column in ("rule", "findings", "true positives", "precision"):
        precision.add_column(column, justify="left" if column == "rule" else "right")
    for row in result.precision.iter_rows(named=True):
        precision.add_row(row["rule"], f"{row['findings']:,}", f"{row['true_positives']:,}", f"{row['precision']:.3f}")
    out.print(precision)
    out.print(
        f"unmatched findings above 'low': {result.unmatched_above_low:,} "
        f"({result.unmatched_per_1000_operators:.2f} per 1,000 operators)"
    )


@app.command()
def export(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the Parquet files (one folder per table).")],
    db: DbOption = None,
    flat: Annotated[bool, typer.Option("--flat", help="One file per table instead of Hive partitions by date.")] = False,
) -> None:
    """Export every table of the store as Parquet, event tables Hive-partitioned by date.

    Example: posaudit export --db data/posaudit.duckdb --out data/parquet
    """
    from posaudit.store import Store

    path = db or default_db_path()
    with user_errors():
        if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
            fail(f"--out {out_dir} must be a new or empty folder")
        store = Store.open(path, read_only=True)
        try:
            tables = store.export_parquet(out_dir, partitioned=not flat)
        finally:
            store.close()
    out.print(f"exported {len(tables)} tables to {out_dir}")


@pins_app.command("check")
def pins_check(
    operator_no: Annotated[str | None, typer.Option("--operator-no", help="Also flag PINs built from this operator number.")] = None,
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
    sys.stdout.write("".join(f"{pin}\t{cls}\n" for pin, cls in zip(candidates, classes, strict=True)))


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo's outputs go.")] = Path("out"),
    db: DbOption = None,
    merchants: Annotated[int, typer.Option(help="Merchants in the demo world.")] = 200,
    days: Annotated[int, typer.Option(help="Days in the demo world.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """The main job: simulate the default world into a fresh store and summarise it.

    Example: posaudit demo --out out
    """
    from posaudit.simulate.engine import simulate as run_simulation
    from posaudit.simulate.scenario import load_scenario
    from posaudit.store import Store

    path = db or default_db_path()
    with user_errors():
        loaded = load_scenario(None, merchants=merchants, days=days)
        path.parent.mkdir(parents=True, exist_ok=True)
        building = path.with_name(path.name + ".building")
        for leftover in (building, building.with_name(building.name + ".wal")):
            leftover.unlink(missing_ok=True)
        with _progress(_interactive()) as bar:
            task = bar.add_task("simulating", total=loaded.days, note="")
            summary = run_simulation(
                building, loaded, seed=seed,
                progress=lambda d, t, e: bar.update(task, completed=d, total=t, note=f"{e:,} events"),
            )  # fmt: skip
        # the finished store replaces the old one in one step
        os.replace(building, path)
        out_dir.mkdir(parents=True, exist_ok=True)
        store = Store.open(path, read_only=True)
        counts = store.row_counts()
        store.close()
    out.print(f"store: {path} ({summary.events:,} events in {summary.seconds:.1f} s)")
    table = Table(title="the demo world")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name in ("merchants", "terminals", "operators", "pin_events", "login_events", "lockouts", "transactions", "ground_truth"):
        table.add_row(name, f"{counts[name]:,}")
    out.print(table)


@app.command()
def version() -> None:
    """Print posaudit's version.

    Example: posaudit version
    """
    out.print(__version__)


def main() -> None:
    """Entry point: usage errors become one line and exit code 2."""
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
    raise SystemExit(result if isinstance(result, int) else EXIT_OK)


if __name__ == "__main__":
    main()
