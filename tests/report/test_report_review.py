"""The analysts' review in the report: decisions and open cases per family, ageing against the
policy's deadline, snoozes, the headline without what analysts set aside, and the trail."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import polars as pl
import pytest

from posaudit.detect.policy import load_policy
from posaudit.report import ReportResult, build_report
from posaudit.report.data import FAMILY_ORDER
from posaudit.report.translations import FAMILIES
from posaudit.review import (
    case_list,
    checked_action,
    decide,
    record_action,
    review_queue,
    snooze,
)
from posaudit.run.local import run_pipeline
from posaudit.store import Store
from tests.conftest import build_store

NOTE = '<script>alert("x")</script> seen on CCTV & =HYPERLINK("http://x","y")'


class _Tables(HTMLParser):
    """The rows of every table of a page, by the table's class: the text of each cell."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("class") or ""
            self.tables.setdefault(self._table, [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def numbers(row: list[str]) -> list[int]:
    return [int(cell.replace(",", "")) for cell in row[1:]]


def _run(path: Path, times: int = 1) -> None:
    store = Store.open(path)
    try:
        for _ in range(times):
            run_pipeline(store, load_policy())
    finally:
        store.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-merchant, 5-day world after one run, before any review."""
    path = tmp_path_factory.mktemp("review-report") / "plain.duckdb"
    build_store(path, merchants=10, days=5, seed=3)
    _run(path)
    return path


@pytest.fixture(scope="module")
def reviewed(world: Path) -> dict[str, object]:
    """The world after a few decisions, a case decided whole, and a snooze."""
    path = world.with_name("reviewed.duckdb")
    shutil.copyfile(world, path)
    store = Store.open(path, read_only=True)
    try:
        ids = [
            str(r[0])
            for r in store.query("SELECT min(finding_id) FROM findings GROUP BY rule ORDER BY 1")
        ]
        cases = case_list(store)
    finally:
        store.close()
    fraud, dismissed, explained, snoozed = ids[:4]
    decide(path, fraud, decision="confirmed_fraud", note=NOTE, analyst="ana")
    decide(path, dismissed, decision="false_positive", note="a wedding deposit", analyst="bo")
    # a decision not yet final: decided false, but not closed, so still in the headline
    decide(path, explained, decision="benign_explained", status="in_review", analyst="bo")
    case_id = cases.filter(pl.col("findings") >= 3).get_column("case_id")[0]
    action = checked_action("decide", decision="policy_breach", note="the whole case", analyst="li")
    record_action(path, case_id, action, queue=False)
    made = snooze(path, snoozed, days=30, reason="router replaced", analyst="ana")
    return {"path": path, "case_id": case_id, "snooze": made, "dismissed": dismissed}


@pytest.fixture(scope="module")
def reports(
    reviewed: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ReportResult]:
    out = tmp_path_factory.mktemp("review-reports")
    return {
        lang: build_report(reviewed["path"], out, lang=lang, formats=["html", "xlsx"])  # type: ignore[arg-type]
        for lang in ("en", "zh")
    }


def _html(reports: dict[str, ReportResult], lang: str) -> str:
    return reports[lang].paths["html"].read_text(encoding="utf-8")


def _queue(path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    store = Store.open(path, read_only=True)
    try:
        return review_queue(store), case_list(store)
    finally:
        store.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_decisions_and_open_cases_per_family_are_the_reviews(
    reviewed: dict[str, object], reports: dict[str, ReportResult], lang: str
) -> None:
    queue, cases = _queue(reviewed["path"])  # type: ignore[arg-type]
    open_cases = set(cases.filter(pl.col("status") != "closed").get_column("case_id"))
    rows = tables(_html(reports, lang))["review-decisions"]
    expected = []
    for family in FAMILY_ORDER:
        of = queue.filter(pl.col("family") == family)
        decision = of.get_column("decision")
        expected.append(
            [
                of.height,
                decision.is_in(["confirmed_fraud", "policy_breach"]).sum(),
                decision.is_in(["false_positive", "benign_explained"]).sum(),
                decision.is_null().sum(),
                len(set(of.get_column("case_id")) & open_cases),
                of.get_column("snoozed").sum(),
            ]
        )
    body = rows[1:-1]
    assert [r[0] for r in body] == [FAMILIES[f][0 if lang == "en" else 1] for f in FAMILY_ORDER]
    assert [numbers(r) for r in body] == expected
    # what was done shows: four decided true at least (one alone, the case's), two decided false
    total = numbers(rows[-1])
    assert total[1] >= 4 and total[2] == 2 and total[5] >= 1
    assert total[4] == len(open_cases & set(queue.get_column("case_id")))
    assert reviewed["case_id"] not in open_cases


def test_the_headline_leaves_out_snoozed_and_dismissed_findings_and_says_how_many(
    reviewed: dict[str, object], world: Path, reports: dict[str, ReportResult], tmp_path: Path
) -> None:
    queue, _ = _queue(reviewed["path"])  # type: ignore[arg-type]
    dismissed = queue.filter(
        (pl.col("review_status") == "closed")
        & pl.col("decision").is_in(["false_positive", "benign_explained"])
    ).height
    snoozed = queue.filter(
        pl.col("snoozed")
        & ~(
            (pl.col("review_status") == "closed")
            & pl.col("decision").is_in(["false_positive", "benign_explained"])
        )
    ).height
    assert dismissed == 1 and snoozed >= 1
    html = _html(reports, "en")
    headline = html.split('class="tile total"><div class="figure">')[1].split("<")[0]
    assert int(headline.replace(",", "")) == queue.height - dismissed - snoozed
    assert (
        f"These figures leave out {snoozed} snoozed and {dismissed} dismissed by an analyst" in html
    )
    family_table = tables(html)[""]  # the summary's family-by-severity table has no class
    grand = next(r for r in family_table if r[0] == "Total" and len(r) == 7)
    assert int(grand[-1].replace(",", "")) == queue.height - dismissed - snoozed
    assert "以上数字不含已暂缓的" in _html(reports, "zh")
    # the same store before any review: every finding counts, and the small print says so
    plain = build_report(world, tmp_path, formats=["html"]).paths["html"].read_text("utf-8")
    figure = plain.split('class="tile total"><div class="figure">')[1].split("<")[0]
    assert int(figure.replace(",", "")) == queue.height
    assert "No finding is snoozed or dismissed by an analyst" in plain


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_snoozes_in_force_are_listed(
    reviewed: dict[str, object], reports: dict[str, ReportResult], lang: str
) -> None:
    made = reviewed["snooze"]
    (row,) = tables(_html(reports, lang))["review-snoozes"][1:]
    assert made.entity_id in row[0]  # type: ignore[attr-defined]
    assert row[2] == made.until.strftime("%Y-%m-%d %H:%M")  # type: ignore[attr-defined]
    assert row[3:] == ["router replaced", "ana"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_appendix_lists_the_trail_with_its_check_and_the_workbook_every_review(
    reviewed: dict[str, object], reports: dict[str, ReportResult], lang: str
) -> None:
    import openpyxl

    store = Store.open(reviewed["path"], read_only=True)  # type: ignore[arg-type]
    try:
        trail = store.frame("SELECT * FROM finding_reviews ORDER BY review_id")
        snoozes = store.frame("SELECT * FROM review_snoozes ORDER BY snooze_id")
    finally:
        store.close()
    html = _html(reports, lang)
    assert f"the review trail is whole: {trail.height} reviews, the last review {trail.height}" in (
        html
    )
    assert "the snooze trail is whole: 1 snooze, the last snooze 1" in html
    rows = tables(html)["trail-rows"][1:]
    assert [int(r[0]) for r in rows] == list(range(trail.height, 0, -1))
    last = trail.row(trail.height - 1, named=True)
    assert rows[0][-1] == last["digest"][:12] + "…"
    # an analyst's note is text: escaped, never markup
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    book = openpyxl.load_workbook(reports[lang].paths["xlsx"])
    sheet = book["Review trail" if lang == "en" else "复核记录"]
    cells = list(sheet.iter_rows(values_only=True))
    assert len(cells) == trail.height + 1
    assert [r[0] for r in cells[1:]] == trail.get_column("review_id").to_list()
    assert [r[-1] for r in cells[1:]] == trail.get_column("digest").to_list()
    noted = next(c for c in sheet.iter_rows(min_row=2) if c[0].value == 1)
    assert noted[8].value == NOTE and noted[8].data_type == "s"  # not a formula
    snooze_sheet = list(book["Snoozes" if lang == "en" else "暂缓记录"].iter_rows(values_only=True))
    assert len(snooze_sheet) == snoozes.height + 1
    assert snooze_sheet[1][-1] == snoozes.get_column("digest")[0]


def test_a_masked_report_withholds_the_analysts_notes(
    reviewed: dict[str, object], tmp_path: Path
) -> None:
    html = (
        build_report(reviewed["path"], tmp_path, formats=["html"], mask_operators=True)  # type: ignore[arg-type]
        .paths["html"]
        .read_text("utf-8")
    )
    assert "a wedding deposit" not in html and "router replaced" not in html
    assert "withheld: this report masks operators" in html
    case_id = str(reviewed["case_id"])
    if case_id.startswith("case-operator-"):
        assert case_id not in html


def _at(path: Path, *, starts: dict[str, datetime], end: datetime) -> None:
    """Set the runs' starts, the last run's end, and which run first found each family."""
    con = duckdb.connect(str(path))
    try:
        for run_id, started in starts.items():
            con.execute(
                "UPDATE pipeline_runs SET started_at = ?, finished_at = ? WHERE run_id = ?",
                [started, started + timedelta(hours=1), run_id],
            )
        con.execute("UPDATE pipeline_runs SET finished_at = ? WHERE run_id = 'run-00003'", [end])
        con.execute("UPDATE findings SET first_run_id = 'run-00002' WHERE family = 'pins'")
        con.execute("UPDATE findings SET first_run_id = 'run-00003' WHERE family = 'refunds'")
    finally:
        con.close()


@pytest.mark.parametrize(
    ("deadline", "buckets"),
    [
        # the families' ages: logins and scores 40 days, pins 20, refunds 1
        (14, {"logins": 2, "scores": 2, "pins": 1, "refunds": 0}),
        (30, {"logins": 1, "scores": 1, "pins": 0, "refunds": 0}),
    ],
)
def test_findings_age_against_the_deadline_of_the_runs_policy(
    world: Path, tmp_path: Path, deadline: int, buckets: dict[str, int]
) -> None:
    """Bucket 0: within the deadline, 1: up to twice it, 2: past twice it."""
    path = Path(shutil.copyfile(world, tmp_path / "aged.duckdb"))
    policy = tmp_path / "policy.toml"
    policy.write_text(f"[review]\ndeadline_days = {deadline}\n")
    store = Store.open(path)
    try:
        run_pipeline(store, load_policy())
        run_pipeline(store, load_policy(policy))
        per_family = dict(
            store.query("SELECT family, count(*) FROM findings WHERE status = 'open' GROUP BY 1")
        )
    finally:
        store.close()
    end = datetime(2026, 9, 10, 12, 0)
    starts = {
        "run-00001": end - timedelta(days=40),
        "run-00002": end - timedelta(days=20),
        "run-00003": end - timedelta(days=1),
    }
    _at(path, starts=starts, end=end)
    html = build_report(path, tmp_path, formats=["html"]).paths["html"].read_text("utf-8")
    assert f"The policy gives analysts {deadline} days to decide a finding" in html
    rows = tables(html)["review-ageing"]
    for family, row in zip(FAMILY_ORDER, rows[1:-1], strict=True):
        if family not in buckets:  # a family the world was not built to age: its total
            assert numbers(row)[-1] == sum(numbers(row)[:3]) == per_family.get(family, 0)
            continue
        expected = [0, 0, 0]
        expected[buckets[family]] = per_family.get(family, 0)
        assert numbers(row) == [*expected, per_family.get(family, 0)], family
    assert numbers(rows[-1])[-1] == sum(per_family.values())
    oldest = tables(html)["review-oldest"][1:]
    assert len(oldest) == min(20, sum(per_family.values()))
    ages = [int(r[4]) for r in oldest]
    assert ages == sorted(ages, reverse=True)
    assert ages[0] == (40 if per_family.get("logins") or per_family.get("scores") else 20)
    assert {r[5] for r in oldest} == {"nobody"}


def test_a_store_without_review_tables_says_nothing_was_reviewed(
    world: Path, tmp_path: Path
) -> None:
    path = Path(shutil.copyfile(world, tmp_path / "old.duckdb"))
    con = duckdb.connect(str(path))
    try:
        con.execute("DROP TABLE IF EXISTS finding_reviews")
        con.execute("DROP TABLE IF EXISTS review_snoozes")
        (findings,) = con.execute("SELECT count(*) FROM findings").fetchall()
    finally:
        con.close()
    for lang, said in (("en", "Nothing has been reviewed yet"), ("zh", "尚未进行任何复核")):
        result = build_report(path, tmp_path / lang, formats=["html", "xlsx"], lang=lang)  # type: ignore[arg-type]
        html = result.paths["html"].read_text("utf-8")
        assert said in html
        every = tables(html)
        assert numbers(every["review-ageing"][-1])[-1] == findings[0]
        assert numbers(every["review-decisions"][-1])[3] == findings[0]  # all undecided
        assert "the review trail is empty, and whole" in html
        assert "trail-rows" not in every


def test_a_broken_trail_is_said_first_and_its_text_shown_without_controls(
    reviewed: dict[str, object], tmp_path: Path
) -> None:
    path = Path(shutil.copyfile(reviewed["path"], tmp_path / "tampered.duckdb"))  # type: ignore[arg-type]
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "UPDATE finding_reviews SET note = ?, analyst = ? WHERE review_id = 2",
            ["paid \x1b[31mback\u202e 21:06", "bo\x00b"],
        )
    finally:
        con.close()
    html = build_report(path, tmp_path, formats=["html"]).paths["html"].read_text("utf-8")
    problem = "review 2 breaks the chain: its fields do not give its digest (edited)"
    assert problem in html
    summary = html.split('id="summary"')[1].split("</section>")[0]
    assert "The review trail is not whole" in summary  # in the executive summary already
    assert "\x1b" not in html and "\u202e" not in html and "\x00" not in html
    assert "paid [31mback 21:06" in html and "bob" in html
