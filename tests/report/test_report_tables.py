"""The HTML report's tables as a reader uses them: offline in Chromium, sorted and filtered.

Headless Chromium (Debian's, driven by playwright) opens the report file with the network
off, records every request, clicks headers and types into the filter. Screenshots of both
languages go to the test's tmp_path. Every wait is bounded.
"""

from __future__ import annotations

import html as html_lib
import re
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from posaudit.detect.policy import load_policy
from posaudit.report import build_report
from posaudit.report.translations import RULES
from posaudit.run.local import run_pipeline
from posaudit.store import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
READY_MS = 30_000
# The filter's label, the first page's line and the line of a filtered table, as shown.
FILTER_UI = {
    "en": ("Filter:", "Findings 1 to 50 of {total}", "of {count} (filtered from {total})"),
    "zh": ("筛选：", "第 1 至 50 项，共 {total} 项发现", "共 {count} 项发现 （由 {total} 项筛选）"),
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)",
    ),
]


@pytest.fixture(scope="module")
def html_reports(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample world audited once; its HTML report in each language."""
    work = tmp_path_factory.mktemp("tables")
    db = work / "w.duckdb"
    shutil.copy(sample_store, db)
    store = Store.open(db)
    try:
        run_pipeline(store, load_policy())
    finally:
        store.close()
    return {
        lang: build_report(
            db, work, formats=("html",), lang=lang, generated_at=datetime(2026, 10, 1, 9, 30)
        ).paths["html"]
        for lang in ("en", "zh")
    }  # type: ignore[arg-type]


def server_rows(path: Path) -> list[list[str]]:
    """The appendix's rows as the file holds them (what a browser without scripts shows)."""
    page = path.read_text(encoding="utf-8")
    body = page.split('id="findings"', 1)[1].split("</tbody>", 1)[0]
    return [
        [
            html_lib.unescape(re.sub(r"<[^>]+>", "", cell))
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1])
    ]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Opened:
    """A report page in the browser, with every request and console error it caused."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("html[data-tables=ready]", state="attached", timeout=READY_MS)
        self.table = self.page.locator("#findings")

    def column(self, index: int) -> list[str]:
        """The text of one column in the rows the page shows now."""
        return self.table.locator(f"tbody tr td:nth-child({index + 1})").all_inner_texts()

    def sort_by(self, index: int, direction: str) -> None:
        """Click a header as a reader does until it sorts ``ascending`` or ``descending``."""
        header = self.table.locator("thead th").nth(index)
        cycle = {None: "ascending", "ascending": "descending", "descending": None}
        for _ in cycle:
            state = header.get_attribute("aria-sort")
            if state == direction:
                return
            header.click()
            self.page.wait_for_function(
                "([th, state]) => th.getAttribute('aria-sort') === state",
                arg=[header.element_handle(), cycle[state]],
                timeout=READY_MS,
            )
        raise AssertionError(f"column {index} never sorted {direction}")

    def filter(self, words: str) -> None:
        self.page.locator("#appendix input[type=search]").fill(words)

    def info(self) -> str:
        return self.page.locator("#appendix .dt-info").inner_text()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_report(browser: Any, html_reports: dict[str, Path]) -> Iterator[Any]:
    """Opens the report of a language; closes what it opened after the test."""
    pages: list[Opened] = []

    def open_(lang: str) -> Opened:
        pages.append(Opened(browser, html_reports[lang]))
        return pages[-1]

    try:
        yield open_
    finally:
        for page in pages:
            page.close()


def _first_day(when: str) -> str:
    """A finding's time as the table shows it, by its first day: an open finding reads
    "since D, still held", an ended one starts with its first day."""
    found = re.search(r"\d{4}-\d{2}-\d{2}", when)
    assert found is not None, when
    return found.group(0)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_tables_work_offline_and_in_the_reports_language(
    open_report: Any, html_reports: dict[str, Path], tmp_path: Path, lang: str
) -> None:
    opened = open_report(lang)
    assert opened.requests == [opened.page.url]  # the file itself, nothing else
    assert all(url.startswith("file://") for url in opened.requests)
    assert opened.errors == []
    label, info, _ = FILTER_UI[lang]
    assert label in opened.page.locator("#appendix .dt-search").inner_text()
    rows = server_rows(html_reports[lang])
    assert len(rows) > 100
    assert opened.info() == info.format(total=f"{len(rows):,}")
    assert opened.table.locator("tbody tr").count() == 50  # the first page
    # Shown first in the order the report wrote: most severe first.
    assert opened.column(0)[:5] == ["1", "2", "3", "4", "5"]
    opened.page.screenshot(path=str(tmp_path / f"{lang}-top.png"))
    opened.page.locator("#appendix").scroll_into_view_if_needed()
    opened.page.screenshot(path=str(tmp_path / f"{lang}-appendix.png"))
    # Short lists sort too, without a filter of their own.
    assert opened.page.locator("table[data-table=list] thead th.dt-orderable-asc").count() > 5
    assert opened.page.locator("input[type=search]").count() == 1


def test_numbers_scores_and_dates_sort_as_values(
    open_report: Any, html_reports: dict[str, Path]
) -> None:
    opened = open_report("en")
    rows = server_rows(html_reports["en"])
    total = len(rows)
    opened.sort_by(0, "ascending")  # "#": 1, 2, 3 ... not 1, 10, 100
    assert opened.column(0)[:3] == ["1", "2", "3"]
    opened.sort_by(0, "descending")
    assert opened.column(0)[:3] == [str(total), str(total - 1), str(total - 2)]

    opened.sort_by(6, "ascending")  # the score, lowest first
    scores = [_number(s) for s in opened.column(6)]
    assert scores == sorted(scores)
    assert scores[0] == min(_number(r[6]) for r in rows)
    opened.sort_by(6, "descending")
    scores = [_number(s) for s in opened.column(6)]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == max(_number(r[6]) for r in rows)

    opened.sort_by(3, "ascending")  # the window, by its start: earliest first
    days = [_first_day(when) for when in opened.column(3)]
    assert days == sorted(days)
    assert days[0] == min(_first_day(r[3]) for r in rows)
    opened.sort_by(3, "descending")
    days = [_first_day(when) for when in opened.column(3)]
    assert days == sorted(days, reverse=True)
    assert days[0] == max(_first_day(r[3]) for r in rows)

    # Severity by rank, not by name (by name "Critical" would come first, then "High").
    ranks = ["Info", "Low", "Medium", "High", "Critical"]
    present = sorted({r[1] for r in rows}, key=ranks.index)
    opened.sort_by(1, "ascending")
    assert opened.column(1)[0] == present[0] == "Info"
    opened.sort_by(1, "descending")
    assert opened.column(1)[:2] == ["Critical", "Critical"]
    assert [ranks.index(s) for s in opened.column(1)] == sorted(
        (ranks.index(s) for s in opened.column(1)), reverse=True
    )


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_filter_shows_the_rows_holding_the_words(
    open_report: Any, html_reports: dict[str, Path], tmp_path: Path, lang: str
) -> None:
    opened = open_report(lang)
    rows = server_rows(html_reports[lang])
    words = RULES["default_pins"][1] if lang == "zh" else rows[len(rows) // 2][5].split()[0]
    expected = [r for r in rows if any(words in cell for cell in r)]
    assert 0 < len(expected) < len(rows)
    opened.filter(words)
    filtered = FILTER_UI[lang][2].format(count=f"{len(expected):,}", total=f"{len(rows):,}")
    opened.page.wait_for_function(
        "line => document.querySelector('#appendix .dt-info').innerText.endsWith(line)",
        arg=filtered,
        timeout=READY_MS,
    )
    shown = opened.table.locator("tbody tr").all_inner_texts()
    assert len(shown) == min(len(expected), 50)
    assert all(words in row for row in shown)
    assert opened.column(0) == [r[0] for r in expected][:50]  # in the report's order
    opened.page.screenshot(path=str(tmp_path / f"{lang}-filtered.png"))
    opened.filter("no finding says this")
    opened.page.wait_for_selector("#findings td.dt-empty", timeout=READY_MS)
    empty = {"en": "No finding matches the filter", "zh": "没有与筛选条件相符的发现"}[lang]
    assert opened.table.locator("tbody").inner_text().strip() == empty
