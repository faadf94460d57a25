"""The documents a report cites (its thresholds' origins among them) are in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from posaudit.detect.policy import load_policy
from posaudit.report import build_report
from posaudit.run.local import run_pipeline
from posaudit.simulate.engine import simulate
from posaudit.simulate.scenario import load_scenario
from posaudit.store import Store

ROOT = Path(__file__).resolve().parents[2]
DOC_CITATION = re.compile(r"docs/[\w.-]+\.md")
OUTSIDE_NOTES = "DOMAIN" + ".md"  # see tests/test_citations.py


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The HTML report, in English and in Chinese, of one run on a small world."""
    folder = tmp_path_factory.mktemp("cited")
    path = folder / "small.duckdb"
    simulate(path, load_scenario(None, merchants=3, days=2), seed=5, fraud_on=True)
    store = Store.open(path)
    try:
        run_pipeline(store, load_policy())
    finally:
        store.close()
    return {
        lang: build_report(path, folder / lang, formats=["html"], lang=lang)
        .paths["html"]
        .read_text(encoding="utf-8")
        for lang in ("en", "zh")
    }  # type: ignore[arg-type]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_document_the_report_cites_exists(report_html: dict[str, str], lang: str) -> None:
    html = report_html[lang]
    cited = set(DOC_CITATION.findall(html))
    assert "docs/domain.md" in cited  # the lockout, PIN age and PIN history thresholds
    assert not [doc for doc in sorted(cited) if not (ROOT / doc).is_file()]
    assert OUTSIDE_NOTES not in html
