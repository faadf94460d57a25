"""The report of a store made by `posaudit ingest`: its provenance names every file ingested,
with its fingerprint and its rows, and a simulated store's report is the same without it."""

from __future__ import annotations

import html as html_text
import re
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from posaudit.report import ReportResult, build_report
from posaudit.report.translations import QUARANTINE_REASONS, TABLES

GENERATED_AT = datetime(2026, 10, 1, 9, 30)
INGESTED_HEADING = {"en": "Files ingested", "zh": "导入的文件"}
# Where the files go: in the scope section, before the summary.
ORDER = {
    "en": ("Scope and provenance", "Files ingested", "Executive summary"),
    "zh": ("范围与来源", "导入的文件", "执行摘要"),
}


def _rows(store: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _headings(page: str) -> list[str]:
    return [
        html_text.unescape(re.sub(r"<[^>]+>", "", h)).strip()
        for h in re.findall(r"<h[23][^>]*>(.*?)</h[23]>", page, flags=re.S)
    ]


@pytest.fixture(scope="module")
def ingested_reports(
    ingested_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ReportResult]:
    out = tmp_path_factory.mktemp("ingested-reports")
    return {
        lang: build_report(
            ingested_store,
            out,
            lang=lang,
            formats=("html", "pdf", "xlsx"),
            generated_at=GENERATED_AT,
        )
        for lang in ("en", "zh")
    }  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def simulated_reports(
    audited_sample: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, ReportResult]:
    out = tmp_path_factory.mktemp("simulated-reports")
    return {
        lang: build_report(
            audited_sample, out, lang=lang, formats=("html", "xlsx"), generated_at=GENERATED_AT
        )
        for lang in ("en", "zh")
    }  # type: ignore[arg-type]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_provenance_lists_every_ingested_file_with_its_rows(
    ingested_reports: dict[str, ReportResult], ingested_store: Path, lang: str
) -> None:
    page = ingested_reports[lang].paths["html"].read_text(encoding="utf-8")
    table = page.split('<table class="ingested">', 1)[1].split("</table>", 1)[0]
    files = _rows(
        ingested_store,
        "SELECT file_name, fingerprint, target_table, rows_read, rows_loaded, rows_duplicate, "
        "rows_quarantined FROM ingested_files ORDER BY ingested_at, file_name",
    )
    assert len(files) == 7
    body = table.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    assert len(rows) == len(files)
    for row, (name, fingerprint, target, read, loaded, duplicate, quarantined) in zip(
        rows, files, strict=True
    ):
        cells = [html_text.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        assert cells[0] == Path(str(name)).name
        assert cells[1] == f"{str(fingerprint)[:12]}…"
        assert cells[2] == TABLES[str(target)][0 if lang == "en" else 1]
        assert cells[3:7] == [f"{n:,}" for n in (read, loaded, duplicate, quarantined)]  # type: ignore[str-format]
        assert read == loaded + duplicate + quarantined  # type: ignore[operator]
    # the three damaged lines of the transactions file, each under its own reason
    (transactions,) = [r for r, f in zip(rows, files, strict=True) if f[2] == "transactions"]
    for reason in ("bad_timestamp", "unknown_terminal", "bad_amount"):
        assert QUARANTINE_REASONS[reason][0 if lang == "en" else 1] in transactions
    footer = table.split("<tfoot>", 1)[1]
    total_read = sum(int(f[3]) for f in files)  # type: ignore[call-overload]
    assert f">{total_read:,}<" in footer
    assert ">3<" in footer  # rows quarantined in all


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_provenance_is_in_the_pdf(ingested_reports: dict[str, ReportResult], lang: str) -> None:
    from pypdf import PdfReader

    pages = [p.extract_text() for p in PdfReader(ingested_reports[lang].paths["pdf"]).pages]
    scope = next(p for p in pages if INGESTED_HEADING[lang] in p)
    assert TABLES["transactions"][0 if lang == "en" else 1] in scope


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_simulated_store_keeps_its_sections(
    simulated_reports: dict[str, ReportResult],
    ingested_reports: dict[str, ReportResult],
    lang: str,
) -> None:
    simulated = simulated_reports[lang].paths["html"].read_text(encoding="utf-8")
    ingested = ingested_reports[lang].paths["html"].read_text(encoding="utf-8")
    assert 'class="ingested"' not in simulated
    assert INGESTED_HEADING[lang] not in _headings(simulated)
    # the same sections in the same order (a family without findings has no section, so the
    # two are compared on the sections both have, each heading once in each: the headings
    # every family's section repeats are left out), the list of files in the scope section
    once = [
        {h for h in heads if heads.count(h) == 1}
        for heads in (_headings(simulated), _headings(ingested))
    ]
    shown = once[0] & once[1]
    assert len(shown) >= 5
    assert [h for h in _headings(simulated) if h in shown] == [
        h for h in _headings(ingested) if h in shown
    ]
    headings = _headings(ingested)
    scope, files, summary = (
        next(i for i, h in enumerate(headings) if h.endswith(title)) for title in ORDER[lang]
    )
    assert scope < files < summary


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_workbook_has_a_sheet_of_the_files_only_when_ingested(
    ingested_reports: dict[str, ReportResult],
    simulated_reports: dict[str, ReportResult],
    ingested_store: Path,
    lang: str,
) -> None:
    import openpyxl

    sheet = INGESTED_HEADING[lang]
    simulated = openpyxl.load_workbook(simulated_reports[lang].paths["xlsx"], read_only=True)
    assert sheet not in simulated.sheetnames
    files = pl.read_excel(ingested_reports[lang].paths["xlsx"], sheet_name=sheet)
    read, quarantined = _rows(
        ingested_store, "SELECT sum(rows_read), sum(rows_quarantined) FROM ingested_files"
    )[0]
    assert files.height == 7 + 1  # a row a file and the total
    assert files.row(-1)[3] == read and files.row(-1)[6] == quarantined == 3
    assert files.head(7).get_column(files.columns[3]).sum() == read
