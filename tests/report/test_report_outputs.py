"""`posaudit report` on the sample world and a run, opened the way its readers open it."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from markupsafe import escape

from posaudit.detect.policy import load_policy
from posaudit.palette import SEVERITY_COLORS
from posaudit.report import FORMATS, ReportResult, build_report
from posaudit.report.data import FAMILY_ORDER
from posaudit.report.translations import FAMILIES, RULES
from posaudit.run.local import run_pipeline
from posaudit.store import Store

POSAUDIT = [sys.executable, "-m", "posaudit"]
GENERATED_AT = datetime(2026, 10, 1, 9, 30)
EXTERNAL = re.compile(
    r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:|//|ftp:|file:)|@import|url\s*\(""",
    re.I,
)
HEADINGS = {
    "en": [
        "Scope and provenance",
        "Executive summary",
        "PIN hygiene",
        "The auditor's classics",
        "Appendix: all findings",
        "Method and thresholds",
    ],
    "zh": [
        "范围与来源",
        "执行摘要",
        "密码安全状况",
        "审计经典检验",
        "附录：全部发现",
        "方法与阈值",
    ],
}


@pytest.fixture(scope="module")
def audited(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample world audited twice (the second run finds what the first found)."""
    path = tmp_path_factory.mktemp("report") / "w.duckdb"
    shutil.copy(sample_store, path)
    store = Store.open(path)
    try:
        run_pipeline(store, load_policy())
        run_pipeline(store, load_policy())
    finally:
        store.close()
    return path


def _frame(path: Path, sql: str) -> pl.DataFrame:
    store = Store.open(path, read_only=True)
    try:
        return store.frame(sql)
    finally:
        store.close()


@pytest.fixture(scope="module")
def findings(audited: Path) -> pl.DataFrame:
    return _frame(audited, "SELECT * FROM findings WHERE run_id = 'run-00002'")


@pytest.fixture(scope="module")
def reports(audited: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ReportResult]:
    out = tmp_path_factory.mktemp("reports")
    return {
        lang: build_report(audited, out, lang=lang, generated_at=GENERATED_AT)
        for lang in ("en", "zh")
    }  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pdf_text(reports: dict[str, ReportResult]) -> dict[str, list[str]]:
    """Each report's PDF as the text of its pages."""
    from pypdf import PdfReader

    return {
        lang: [page.extract_text() for page in PdfReader(result.paths["pdf"]).pages]
        for lang, result in reports.items()
    }


def test_every_format_is_written(reports: dict[str, ReportResult], findings: pl.DataFrame) -> None:
    for lang, result in reports.items():
        assert set(result.paths) == set(FORMATS), lang
        assert result.run_id == "run-00002"
        assert result.findings == findings.height > 100
        assert result.fallbacks == 0
        for path in result.paths.values():
            assert path.stat().st_size > 1000, path
            assert lang in path.name


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_html_makes_no_external_request(reports: dict[str, ReportResult], lang: str) -> None:
    html = reports[lang].paths["html"].read_text(encoding="utf-8")
    # One inline script (the tables'), allowed by its hash; its strings are no requests.
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S | re.I)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src &#39;sha256-{digest}&#39;" in html
    page = html.replace(scripts[0], "")
    page = re.sub(r"url\(data:[^)]*\)", "", page)  # images inlined in the tables' stylesheet
    assert not EXTERNAL.search(page), EXTERNAL.search(page)
    assert "<link" not in page.lower()
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', html))
    assert "default-src 'none'" in html  # the page forbids itself any request
    # the summary, one chart a family, PIN hygiene, the classics' Benford digits
    assert page.count("<svg") == 1 + len(FAMILY_ORDER) + 1 + 1


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_html_holds_every_section_and_finding(
    reports: dict[str, ReportResult], findings: pl.DataFrame, lang: str
) -> None:
    html = reports[lang].paths["html"].read_text(encoding="utf-8")
    for heading in HEADINGS[lang]:
        assert escape(heading) in html, heading
    for family in FAMILIES.values():
        assert family[0 if lang == "en" else 1] in html
    for rule in set(findings.get_column("rule")):
        assert RULES[rule][0 if lang == "en" else 1] in html
    appendix = html.split('id="findings"', 1)[1].split("</table>", 1)[0]
    assert appendix.count("<tr>") == findings.height + 1  # the header and one row a finding
    assert "run-00002" in html and "run-00001" in html  # the run and the one before it


def test_severities_wear_the_palette_the_notebooks_wear(
    reports: dict[str, ReportResult],
) -> None:
    html = reports["en"].paths["html"].read_text(encoding="utf-8")
    for severity, color in SEVERITY_COLORS.items():
        assert f"--{severity}: {color};" in html, severity
        assert f'class="chip sev-{severity}"' in html, severity  # the glossary shows each


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_pdf_pages_and_text(
    reports: dict[str, ReportResult], pdf_text: dict[str, list[str]], lang: str
) -> None:
    from pypdf import PdfReader

    reader = PdfReader(reports[lang].paths["pdf"])
    assert len(reader.pages) == len(pdf_text[lang])
    assert 15 <= len(reader.pages) <= 80
    first = pdf_text[lang][0]
    assert (
        "POS terminal and operator audit" if lang == "en" else "POS 终端与操作员审计报告"
    ) in first
    text = "\n".join(pdf_text[lang])
    for heading in HEADINGS[lang]:
        assert heading.replace(" ", "") in text.replace(" ", ""), heading
    pages = len(reader.pages)
    assert (f"Page 2 of {pages}" if lang == "en" else f"第 2 页，共 {pages} 页") in text
    assert reader.pages[0].mediabox.width == pytest.approx(595.3, abs=1)  # A4
    assert reader.outline  # bookmarks from the headings
    fonts = {
        str(font.get_object()["/BaseFont"])
        for page in reader.pages[:4]
        for font in page["/Resources"]["/Font"].values()
    }
    # The font the report names, embedded: Chinese is drawn with it, not as boxes.
    assert any("Noto-Sans-CJK-SC" in f for f in fonts), fonts


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_workbook_sheets_match_the_findings(
    reports: dict[str, ReportResult], findings: pl.DataFrame, lang: str
) -> None:
    from openpyxl import load_workbook

    book = load_workbook(reports[lang].paths["xlsx"], read_only=False)
    names = [FAMILIES[f][0 if lang == "en" else 1] for f in FAMILY_ORDER]
    review = ["Awaiting decision", "Review trail", "Snoozes"]
    classics = (
        [
            "Benford",
            "Strata",
            "Duplicate sales",
            "Trace number gaps",
            "Silent days",
            "Refund ageing",
            "Findings ageing",
        ]
        if lang == "en"
        else [
            "本福特定律",
            "金额分层",
            "重复消费",
            "流水号断号",
            "缺失交易日",
            "退款账龄",
            "发现账龄",
        ]
    )
    assert book.sheetnames[1:] == names + classics + (
        review if lang == "en" else ["等待结论", "复核记录", "暂缓记录"]
    )
    counts = dict(findings.group_by("family").len().iter_rows())
    for family, name in zip(FAMILY_ORDER, names, strict=True):
        sheet = book[name]
        assert sheet.max_row - 1 == counts.get(family, 0), name
        assert sheet.freeze_panes == "A2"
        # The sheet's own filter (buttons on every header cell in any spreadsheet program).
        assert sheet.auto_filter.ref == f"A1:P{max(sheet.max_row, 2)}", name
        header = [c.value for c in sheet[1]]
        rows = [dict(zip(header, r, strict=True)) for r in sheet.iter_rows(2, values_only=True)]
        score = "Score" if lang == "en" else "评分"
        scores = [r[score] for r in rows]
        assert all(isinstance(v, float | int) and round(v, 4) == v for v in scores), name
        assert all(c.number_format == "0.0000" for c in next(sheet.iter_cols(2, 2, 2)))
    # the score each finding is ranked by: an anomaly finding's anomaly score, else its score
    stored = {
        row["finding_id"]: json.loads(row["evidence"])["anomaly_score"]
        if row["rule"] == "operator_anomaly_scores"
        else row["score"]
        for row in findings.iter_rows(named=True)
    }
    written = {
        r[14]: r[1]
        for sheet in book.worksheets[1 : 1 + len(FAMILY_ORDER)]
        for r in sheet.iter_rows(2, values_only=True)
    }
    # to four places: a value on the half (0.50085 as the evidence writes it) may go either way
    assert written.keys() == stored.keys()
    assert all(abs(written[f] - v) <= 0.00005 + 1e-9 for f, v in stored.items())
    assert any(round(v, 4) != v for v in stored.values())  # some scores had more places
    if lang == "en":
        sentences = [
            r[11]
            for s in book.worksheets[1 : 1 + len(FAMILY_ORDER)]
            for r in s.iter_rows(2, values_only=True)
        ]
        assert all(s[0].isupper() for s in sentences)
    summary = book[book.sheetnames[0]]
    cells = [c for row in summary.iter_rows(values_only=True) for c in row if c is not None]
    assert "run-00002" in cells
    assert findings.height in cells


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_csv_and_parquet_hold_every_finding(
    reports: dict[str, ReportResult], findings: pl.DataFrame, lang: str
) -> None:
    parquet = pl.read_parquet(reports[lang].paths["parquet"])
    csv = pl.read_csv(reports[lang].paths["csv"])
    for frame in (parquet, csv):
        assert frame.height == findings.height
        assert set(frame.get_column("finding_id")) == set(findings.get_column("finding_id"))
        assert {"rule", "family", "severity", "summary", "evidence", "merchant_name"} <= set(
            frame.columns
        )
    summaries = parquet.get_column("summary")
    if lang == "zh":
        assert summaries.str.contains(r"[\u4e00-\u9fff]").all()
    else:
        # the rule's own sentences, as a reader reads them: capitalised, with a full stop
        assert not summaries.str.contains(r"[\u4e00-\u9fff]").any()
        assert summaries.str.contains(r"^[A-Z].*\.$").all()


def test_no_pin_digest_in_any_output(
    reports: dict[str, ReportResult], pdf_text: dict[str, list[str]], audited: Path
) -> None:
    digests = set(
        _frame(audited, "SELECT DISTINCT pin_digest FROM pin_events").get_column("pin_digest")
    )
    assert len(digests) > 50
    for lang, result in reports.items():
        for kind, path in result.paths.items():
            if kind == "xlsx":
                with zipfile.ZipFile(path) as book:
                    text = " ".join(
                        book.read(n).decode("utf-8", "replace") for n in book.namelist()
                    )
            elif kind == "parquet":
                text = pl.read_parquet(path).write_csv()
            elif kind == "pdf":
                text = " ".join(pdf_text[lang])
            else:
                text = path.read_text(encoding="utf-8-sig")
            found = set(re.findall(r"[0-9a-f]{64}", text)) & digests
            assert not found, (kind, sorted(found)[:1])
            assert "pin_digest" not in text


def test_strings_from_the_data_are_escaped(
    audited: Path, findings: pl.DataFrame, tmp_path: Path
) -> None:
    from openpyxl import load_workbook

    hostile = "<script>alert(1)</script>"
    formula = '=HYPERLINK("https://example.invalid","open")'
    copy = tmp_path / "hostile.duckdb"
    shutil.copy(audited, copy)
    merchants = (
        findings.sort("severity", "score", descending=True).get_column("merchant_id").unique()
    )
    store = Store.open(copy)
    try:
        store.execute(
            "UPDATE merchants SET name = ? WHERE merchant_id = ?", [hostile, merchants[0]]
        )
        store.execute(
            "UPDATE merchants SET name = ? WHERE merchant_id = ?", [formula, merchants[1]]
        )
    finally:
        store.close()
    result = build_report(
        copy, tmp_path / "out", formats=("html", "xlsx"), generated_at=GENERATED_AT
    )
    html = result.paths["html"].read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert hostile not in html
    assert html.lower().count("<script") == 1  # the report's own, for its tables
    book = load_workbook(result.paths["xlsx"])
    cells = [c for sheet in book.worksheets[1:] for row in sheet.iter_rows() for c in row]
    named = [c for c in cells if c.value in (hostile, formula)]
    assert {c.value for c in named} == {hostile, formula}
    assert all(c.data_type == "s" for c in named)  # text, never a formula


def test_masked_report_names_no_operator(audited: Path, tmp_path: Path) -> None:
    operators = _frame(audited, "SELECT operator_id, name FROM operators")
    for lang in ("en", "zh"):
        result = build_report(
            audited,
            tmp_path,
            formats=("html", "csv"),
            lang=lang,
            mask_operators=True,  # type: ignore[arg-type]
            generated_at=GENERATED_AT,
        )
        assert all("masked" in p.name for p in result.paths.values())
        for path in result.paths.values():
            text = path.read_text(encoding="utf-8-sig")
            assert not re.search(r"T\d{6}-\d{2}", text), re.search(r".{40}T\d{6}-\d{2}.{20}", text)
            assert not re.search(
                r"\b(operator|administrator)s? \d{2}\b|\d{2} 号(操作员|管理员)", text
            )
            names = [n for n in operators.get_column("name").unique() if n in text]
            assert not names, names
            assert "OP-" in text


def test_report_on_an_earlier_run(audited: Path, findings: pl.DataFrame, tmp_path: Path) -> None:
    latest = build_report(audited, tmp_path, formats=("parquet",), generated_at=GENERATED_AT)
    earlier = build_report(
        audited, tmp_path, run_id="run-00001", formats=("parquet",), generated_at=GENERATED_AT
    )
    assert latest.run_id == "run-00002" and earlier.run_id == "run-00001"
    assert earlier.findings == latest.findings == findings.height
    assert not pl.read_parquet(latest.paths["parquet"]).get_column("is_new").any()
    assert pl.read_parquet(earlier.paths["parquet"]).get_column("is_new").all()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSAUDIT, "report", *args], capture_output=True, text=True, timeout=300)


def test_report_command(audited: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    done = _cli("--db", str(audited), "--out", str(out), "--format", "csv,xlsx", "--lang", "zh")
    assert done.returncode == 0, done.stderr
    assert "run-00002" in done.stdout
    assert sorted(p.suffix for p in out.iterdir()) == [".csv", ".xlsx"]
    assert str(out / "posaudit-findings-run-00002-zh.csv") in done.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--format", "html,docx"], "unknown report format docx"),
        (["--run", "run-09999"], "no successful run 'run-09999'"),
        (["--lang", "fr"], "--lang must be en or zh"),
    ],
)
def test_report_command_bad_input(
    audited: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    done = _cli("--db", str(audited), "--out", str(tmp_path / "x"), *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posaudit: error: ") and needle in lines[0], (
        done.stderr
    )
    assert not (tmp_path / "x").exists()


def test_report_of_a_store_without_a_run(sample_store: Path, tmp_path: Path) -> None:
    done = _cli("--db", str(sample_store), "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    assert "no successful run to report on" in done.stderr


@pytest.mark.slow
def test_html_draws_every_chart_offline_in_chromium(
    reports: dict[str, ReportResult], tmp_path: Path
) -> None:
    chromium = Path("/usr/bin/chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed")
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=args)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
            for lang, result in reports.items():
                page = context.new_page()
                requests: list[str] = []
                errors: list[str] = []
                page.on("request", lambda r, seen=requests: seen.append(r.url))
                page.on(
                    "console",
                    lambda m, seen=errors: seen.append(m.text) if m.type == "error" else None,
                )
                page.goto(result.paths["html"].as_uri())
                assert [u for u in requests if not u.startswith("file://")] == [], lang
                assert errors == [], (lang, errors)
                charts = page.locator(".chart svg")
                assert charts.count() == 1 + len(FAMILY_ORDER) + 1 + 1
                for i in range(charts.count()):
                    box = charts.nth(i).bounding_box()
                    assert box and box["width"] > 300 and box["height"] > 80, (lang, i, box)
                    assert charts.nth(i).locator("path").count() > 5  # bars and axes were drawn
                page.screenshot(path=str(tmp_path / f"{lang}.png"), full_page=False)
                page.close()
        finally:
            browser.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_classics_section_and_sheets_hold_the_classics_figures(
    reports: dict[str, ReportResult], audited: Path, lang: str
) -> None:
    from openpyxl import load_workbook

    from posaudit.classics import benford as bf
    from posaudit.classics import duplicates as dup
    from posaudit.classics import strata as st

    store = Store.open(audited, read_only=True)
    try:
        first_two = bf.benford(store, "first_two")[0]
        strata = st.strata(store, "sale").table
        pairs = dup.duplicates(store).pairs
    finally:
        store.close()
    page = reports[lang].paths["html"].read_text("utf-8")
    section = page[page.index('id="classics"') : page.index('id="review"')]
    assert f"{first_two.mad:.5f}" in section and f"{first_two.n:,}" in section
    assert ("close conformity" if lang == "en" else "高度符合") in section
    assert "<svg" in section  # the digits against Benford's curve
    for count in strata["count"]:
        assert f'<td class="num">{count:,}</td>' in section
    assert ("93 units" if lang == "en" else "抽取 93 个单位") in section
    book = load_workbook(reports[lang].paths["xlsx"], read_only=True)
    benford = book["Benford" if lang == "en" else "本福特定律"]
    assert benford.max_row - 1 == 9 + 90 + 100 + 90  # every digit combination of the 4 tests
    assert book["Strata" if lang == "en" else "金额分层"].max_row - 1 == strata.height
    assert book["Duplicate sales" if lang == "en" else "重复消费"].max_row - 1 == pairs.height


def test_a_report_without_the_classics(audited: Path, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    done = build_report(audited, tmp_path, formats=["html", "xlsx"], classics=False)
    page = done.paths["html"].read_text("utf-8")
    assert 'id="classics"' not in page and 'href="#classics"' not in page
    assert page.count('<div class="chart">') == 1 + len(FAMILY_ORDER) + 1
    book = load_workbook(done.paths["xlsx"], read_only=True)
    assert "Benford" not in book.sheetnames and "Review trail" in book.sheetnames
