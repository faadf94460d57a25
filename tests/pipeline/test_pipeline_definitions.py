"""The scheduled run definitions in pipelines/: they parse, and they run on data_samples/."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import polars as pl
import pytest
from pipeline_kit import (
    DATA_SAMPLES,
    REPO,
    append_days,
    cli,
    copy,
    run_here,
    store_from_parquet,
    summary_line,
)

from posaudit.run.steps import PipelineError, load_pipeline, write_report

DEFINITIONS = sorted((REPO / "pipelines").glob("*.toml"))


def test_there_are_definitions() -> None:
    assert {p.stem for p in DEFINITIONS} >= {"nightly", "weekly-full"}


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.stem)
def test_a_definition_parses(path: Path) -> None:
    definition = load_pipeline(path)
    assert definition.name == path.stem and definition.description
    assert definition.steps[0].kind == "detect"
    assert definition.policy is None or definition.policy.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[pipeline]\nmode = 'sometimes'\n[[steps]]\nstep = 'detect'\n",
            "'pipeline.mode' is 'incremental' or 'full'",
        ),
        (
            "[pipeline]\nfail_on = 'severe'\n[[steps]]\nstep = 'detect'\n",
            "'pipeline.fail_on' is one of",
        ),
        (
            "[pipeline]\nschedule = 'daily'\n[[steps]]\nstep = 'detect'\n",
            "unknown key 'pipeline.schedule'",
        ),
        ("[[steps]]\nstep = 'findings'\n", 'the first of the [[steps]] must be step = "detect"'),
        ("[[steps]]\nstep = 'detect'\n[[steps]]\nstep = 'mail'\n", "steps[2]: unknown step 'mail'"),
        (
            "[[steps]]\nstep = 'detect'\n[[steps]]\nstep = 'findings'\nformats = ['xml']\n",
            "unknown format 'xml'",
        ),
        (
            "[[steps]]\nstep = 'detect'\n[[steps]]\nstep = 'report'\nfolder = '{day}'\n",
            "unknown placeholder {day}",
        ),
        (
            "[[steps]]\nstep = 'detect'\n[[steps]]\nstep = 'findings'\nwhich = 'old'\n",
            "which is 'new' or 'open'",
        ),
        ("[[steps]\n", "is not valid TOML"),
    ],
)
def test_a_bad_definition_is_refused_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PipelineError) as caught:
        load_pipeline(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def sample_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world of data_samples/, loaded from its Parquet files into a store."""
    return store_from_parquet(DATA_SAMPLES, tmp_path_factory.mktemp("samples") / "samples.duckdb")


@pytest.mark.slow
def test_nightly_then_weekly_on_data_samples(sample_world: Path, tmp_path: Path) -> None:
    store = copy(sample_world, tmp_path / "schedule.duckdb")
    out = tmp_path / "out"
    nightly = str(REPO / "pipelines" / "nightly.toml")

    first = cli("run", "--pipeline", nightly, "--db", str(store), "--out", str(out), "--quiet")
    summary = summary_line(first.stdout)
    # the first run finds everything for the first time, high findings among them: alert
    assert first.returncode == 4 and summary["alert"] is True, first.stderr
    assert summary["pipeline"] == "nightly" and [s["status"] for s in summary["steps"]] == [
        "ok",
        "ok",
    ]
    day = out / summary["data_to"][:10]
    new = pl.read_csv(day / f"findings-new-{summary['run_id']}.csv")
    assert new.height == summary["new"] and set(new.get_column("first_run_id")) == {
        summary["run_id"]
    }
    lines = (day / f"findings-new-{summary['run_id']}.jsonl").read_text().splitlines()
    assert len(lines) == summary["new"] and isinstance(json.loads(lines[0])["evidence"], dict)
    assert (day / "report" / f"posaudit-report-{summary['run_id']}-en.html").exists()

    append_days(store)
    second = cli("run", "--pipeline", nightly, "--db", str(store), "--out", str(out), "--quiet")
    summary = summary_line(second.stdout)
    assert summary["mode"] == "incremental" and summary["status"] == "succeeded"
    alert = sum(summary["new_by_severity"].get(s, 0) for s in ("high", "critical")) > 0
    assert second.returncode == (4 if alert else 0) and summary["alert"] is alert
    assert (out / summary["data_to"][:10] / f"findings-new-{summary['run_id']}.csv").exists()

    # the weekly definition as shipped, but a report in HTML only: PDF and Excel take the report
    # command a minute here, and its own tests cover them
    text = (REPO / "pipelines" / "weekly-full.toml").read_text()
    assert 'formats = ["html", "pdf", "xlsx"]' in text
    weekly_html = tmp_path / "weekly-full.toml"
    weekly_html.write_text(text.replace('formats = ["html", "pdf", "xlsx"]', 'formats = ["html"]'))
    weekly = cli(
        "run", "--pipeline", str(weekly_html), "--db", str(store), "--out", str(out), "--quiet"
    )
    summary = summary_line(weekly.stdout)
    assert (
        weekly.returncode in (0, 4)
        and summary["mode"] == "full"
        and summary["reason"] == "requested (--full)"
    )
    assert summary["new"] == 0 and all(s["status"] == "ok" for s in summary["steps"]), summary[
        "steps"
    ]
    assert (
        out / summary["data_to"][:10] / "report" / f"posaudit-report-{summary['run_id']}-en.html"
    ).exists()
    assert (
        pl.read_parquet(
            out / summary["data_to"][:10] / f"findings-open-{summary['run_id']}.parquet"
        ).height
        == summary["findings"]
    )


def test_a_failing_step_exits_1_after_the_others_ran(sample_world: Path, tmp_path: Path) -> None:
    store = copy(sample_world, tmp_path / "steps.duckdb")
    definition = tmp_path / "steps.toml"
    definition.write_text(
        "[[steps]]\nstep = 'detect'\n"
        "[[steps]]\nstep = 'report'\nfolder = 'report'\nformats = ['csv']\n"
        "[[steps]]\nstep = 'evaluate'\nfolder = 'quality'\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "report").write_text("a file where the report folder should go")
    result = cli(
        "run", "--pipeline", str(definition), "--db", str(store), "--out", str(out), "--quiet"
    )
    summary = summary_line(result.stdout)
    assert (
        result.returncode == 1
        and summary["status"] == "failed"
        and summary["run_id"] == "run-00001"
    )
    assert [s["status"] for s in summary["steps"]] == ["failed", "ok"]
    assert summary["error"].startswith("step report: ")
    assert result.stderr.startswith("posaudit: error: step report failed: ")
    quality = json.loads((out / "quality" / "evaluation-run-00001.json").read_text())
    assert quality["run_id"] == "run-00001" and quality["recall"]


def test_a_report_step_that_fails_says_why_in_one_line(sample_store: Path, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as failed:
        write_report(
            sample_store,
            tmp_path,
            run_id="run-99999",
            formats=["html"],
            lang="en",
            timeout_minutes=5,
        )
    assert str(failed.value) == (
        f"{sample_store} has no successful run to report on: "
        f"run `posaudit run --db {sample_store}` first"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_report_step_past_its_time_is_stopped(sample_store: Path, tmp_path: Path) -> None:
    """The report's worker is stopped at the step's timeout, leaving no file behind."""
    store = copy(sample_store, tmp_path / "audited.duckdb")
    run_here(store)
    out = tmp_path / "report"
    out.mkdir()
    with pytest.raises(RuntimeError, match=r"^the report took more than 0\.0001 minutes"):
        write_report(
            store,
            out,
            run_id="run-00001",
            formats=["html", "pdf"],
            lang="en",
            timeout_minutes=0.0001,
        )
    assert [p.name for p in out.iterdir()] == []
    assert not [c for c in multiprocessing.active_children() if c.name == "posaudit-report"]
