"""The report's figures and sentences as a reader checks them: one definition per figure, the
same facts in both languages, evidence in words, and Chinese spaced by one rule."""

from __future__ import annotations

import html as html_lib
import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from posaudit.report import ReportResult, build_report
from posaudit.store import Store

GENERATED_AT = datetime(2026, 10, 1, 9, 30)
HAN = "\u3400-\u4dbf\u4e00-\u9fff"
# A number or a name with digits, as a sentence shows it: 1,064.47 / T000292 / 2026-09-01 / 99.9%
TOKEN = re.compile(r"[A-Z]*\d[\d,.:%\-]*(?<![.,:\-])")


@pytest.fixture(scope="module")
def audited(audited_sample: Path) -> Path:
    return audited_sample


@pytest.fixture(scope="module")
def reports(audited: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ReportResult]:
    out = tmp_path_factory.mktemp("text-reports")
    return {
        lang: build_report(
            audited,
            out,
            lang=lang,  # type: ignore[arg-type]
            formats=("html", "csv", "xlsx"),
            generated_at=GENERATED_AT,
        )
        for lang in ("en", "zh")
    }


def _html(reports: dict[str, ReportResult], lang: str) -> str:
    return reports[lang].paths["html"].read_text(encoding="utf-8")


def _text_nodes(page: str) -> list[str]:
    """The page's visible text, one string per text node."""
    body = re.sub(r"<(style|svg)\b.*?</\1>", "", page, flags=re.S)
    return [html_lib.unescape(t).strip() for t in re.findall(r">([^<>]+)<", body) if t.strip()]


def _section(page: str, section_id: str) -> str:
    start = page.index(f'id="{section_id}"')
    end = page.find("<section", start)
    return page[start : end if end > 0 else len(page)]


def _sentences(reports: dict[str, ReportResult], lang: str) -> dict[str, tuple[str, str]]:
    frame = pl.read_csv(reports[lang].paths["csv"])
    return {f: (r, s) for f, r, s in frame.select("finding_id", "rule", "summary").iter_rows()}


def _findings(audited: Path) -> pl.DataFrame:
    store = Store.open(audited, read_only=True)
    try:
        return store.frame("SELECT * FROM findings")
    finally:
        store.close()


# -- 1. one definition of a PIN figure ---------------------------------------------------------


def _number_after(page: str, label: str) -> int:
    cells = _text_nodes(page)
    return int(cells[cells.index(label) + 1].replace(",", ""))


def test_pin_figures_count_the_pins_held_at_the_end_of_the_data(
    reports: dict[str, ReportResult], audited: Path
) -> None:
    findings = _findings(audited).filter(pl.col("rule") == "weak_pins")
    held = findings.filter(
        pl.col("evidence").str.json_path_match("$.still_held") == "true"
    ).get_column("entity_id")
    ever = findings.get_column("entity_id").n_unique()
    assert held.n_unique() < ever  # the sample has weak PINs changed during the window
    page = _html(reports, "en")
    pins = _section(page, "pin-hygiene")
    assert "at the end of the data" in pins  # the definition, in words
    weak = _number_after(pins, "Operators with a weak PIN")
    assert weak == held.n_unique()
    # the classes add up to the operators: one PIN, so one class, per operator
    table = pins[pins.index("Weak PINs by weakness class") :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr><td>[^<]*</td><td class=\"num\">([\d,]+)</td>", table)
    assert sum(int(r.replace(",", "")) for r in rows) == weak
    # the key point states the same figure and share as the section
    operators = _number_after(pins, "Operators active at the end of the data")
    share = f"{weak / operators * 100:.1f}%"
    assert f"{weak:,} of the {operators:,} operators active then ({share}) held a weak PIN" in page
    assert f'<td class="num">{share}</td>' in pins
    zh = _html(reports, "zh")
    assert f"{operators:,} 名操作员中有 {weak:,} 名（{share}）使用弱密码" in zh


# -- 2. the same facts in both languages -------------------------------------------------------


def test_every_sentence_states_the_same_numbers_and_names_in_both_languages(
    reports: dict[str, ReportResult],
) -> None:
    english, chinese = _sentences(reports, "en"), _sentences(reports, "zh")
    assert english.keys() == chinese.keys()
    differ = {}
    for finding, (rule, sentence) in english.items():
        theirs = chinese[finding][1]
        if Counter(TOKEN.findall(sentence)) != Counter(TOKEN.findall(theirs)):
            differ.setdefault(rule, (sentence, theirs))
    assert not differ, differ


def test_amounts_read_as_the_rule_writes_them_in_both_languages(
    reports: dict[str, ReportResult],
) -> None:
    english, chinese = _sentences(reports, "en"), _sentences(reports, "zh")
    amounts = []
    for finding, (rule, sentence) in english.items():
        ours = re.findall(r"([\d,.]+) CNY", sentence)
        theirs = re.findall(r"([\d,.]+) 元", chinese[finding][1])
        assert Counter(ours) == Counter(theirs), (rule, sentence, chinese[finding][1])
        amounts += ours
    assert any(float(a) >= 1000 for a in amounts)  # large enough to be grouped, were they
    for amount in amounts:
        assert re.fullmatch(r"\d+\.\d\d", amount), amount


# -- 3. anomaly findings ranked and shown by their anomaly score ---------------------------------


def test_anomaly_findings_rank_and_show_the_anomaly_score(
    reports: dict[str, ReportResult], audited: Path
) -> None:
    anomalies = _findings(audited).filter(pl.col("rule") == "operator_anomaly_scores")
    assert anomalies.height >= 3
    scores = {
        f: json.loads(e)["anomaly_score"]
        for f, e in anomalies.select("finding_id", "evidence").iter_rows()
    }
    frame = pl.read_csv(reports["en"].paths["csv"]).filter(
        pl.col("rule") == "operator_anomaly_scores"
    )
    # within a severity, the most anomalous operator-day first
    for _, group in frame.group_by("severity", maintain_order=True):
        ranked = [scores[f] for f in group.get_column("finding_id")]
        assert ranked == sorted(ranked, reverse=True)
    section = _section(_html(reports, "en"), "family-scores")
    shown = [float(s) for s in re.findall(r"· Score (\d\.\d\d)", section)]
    top = frame.filter(pl.col("severity") == frame.get_column("severity")[0])
    assert shown[0] == round(max(scores[f] for f in top.get_column("finding_id")), 2)
    from openpyxl import load_workbook

    sheet = load_workbook(reports["en"].paths["xlsx"], read_only=True)["Anomaly scores"]
    rows = list(sheet.iter_rows(values_only=True))
    score, finding_id = rows[0].index("Score"), rows[0].index("Finding ID")
    assert all(r[score] == pytest.approx(scores[r[finding_id]], abs=0.01) for r in rows[1:])
    zh = _html(reports, "zh")
    assert "高于 100.0%" not in zh and "above 100.0%" not in _html(reports, "en")


# -- 4. every evidence key in words ------------------------------------------------------------


def test_every_evidence_key_has_a_label_in_both_languages(audited: Path) -> None:
    from posaudit.report.translations import EVIDENCE, FEATURES

    keys = {
        key
        for evidence in _findings(audited).get_column("evidence")
        for key in json.loads(evidence)
    }
    missing = sorted(k for k in keys if k not in EVIDENCE and k not in FEATURES)
    assert not missing, missing


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_evidence_shows_labels_and_money_not_raw_keys(
    reports: dict[str, ReportResult], lang: str
) -> None:
    page = _html(reports, lang)
    evidence = " ".join(re.findall(r'<p class="evidence">(.*?)</p>', page, flags=re.S))
    assert evidence
    keys = re.findall(r'<span class="k">([^<]*)</span>', evidence)
    raw = sorted({k for k in keys if re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+", k)})
    assert not raw, raw
    assert "_fen" not in evidence
    unit = "CNY" if lang == "en" else "元"
    assert re.search(rf"\d\.\d\d {unit}", evidence)


# -- 5. the appendix is in the order it says ---------------------------------------------------


def test_appendix_is_ordered_by_severity_then_score_then_time(
    reports: dict[str, ReportResult],
) -> None:
    page = _html(reports, "en")
    appendix = _section(page, "appendix")
    assert "by severity, then score (highest first), then time" in appendix
    rows = re.findall(
        r'<tr><td class="num">\d+</td><td class="severity" data-order="\d+">'
        r'<span class="chip sev-(\w+)">[^<]*</span></td>.*?'
        r'<td class="when" data-order="([^"]*)">.*?<td class="num" data-order="([^"]*)">',
        appendix,
    )
    assert len(rows) == len(_sentences(reports, "en"))
    order = ["critical", "high", "medium", "low", "info"]
    keys = [(order.index(sev), -float(score)) for sev, _, score in rows]
    assert keys == sorted(keys)


# -- 6. money at risk ----------------------------------------------------------------------------


def test_money_at_risk_counts_each_refund_once(
    reports: dict[str, ReportResult], audited: Path
) -> None:
    refunds = _findings(audited).filter(pl.col("family") == "refunds")
    store = Store.open(audited, read_only=True)
    try:
        amounts = dict(
            store.query("SELECT txn_id, amount_fen FROM transactions WHERE kind = 'refund'")
        )
    finally:
        store.close()
    named: set[str] = set()
    per_rule: dict[str, set[str]] = {}
    for rule, evidence in refunds.select("rule", "evidence").iter_rows():
        values = json.loads(evidence)
        ids = values.get("refund_txn_ids") or [values["refund_txn_id"]]
        named.update(ids)
        per_rule.setdefault(rule, set()).update(ids)
    total = sum(int(amounts[i]) for i in named)  # type: ignore[call-overload]
    by_rule = sum(sum(int(amounts[i]) for i in ids) for ids in per_rule.values())  # type: ignore[call-overload]
    assert by_rule > total  # some refunds break two rules: the total counts them once
    page = _html(reports, "en")
    summary = _section(page, "summary")
    assert f"{total / 100:,.2f} CNY" in summary
    assert f"{len(named):,} refunds totalling {total / 100:,.2f} CNY" in summary
    assert "each refund counted once" in summary
    rows = re.findall(r"<td class=\"num\">([\d,]+\.\d\d) CNY</td></tr>", summary)
    assert sum(float(r.replace(",", "")) for r in rows[:-1]) == pytest.approx(by_rule / 100)
    assert f"{total / 100:,.2f} 元" in _section(_html(reports, "zh"), "summary")


# -- 7. Chinese spaced by one rule, English sentences capitalised --------------------------------


def test_zh_spacing_rule() -> None:
    from posaudit.report.translations import zh_spacing

    assert zh_spacing("是原交易金额 149.81 元 的 2.07倍") == "是原交易金额 149.81 元的 2.07 倍"
    assert zh_spacing("1至2年、91 至 180 天") == "1 至 2 年、91 至 180 天"
    assert zh_spacing("退款 X42732（27.46 元） ，但") == "退款 X42732（27.46 元），但"


def test_chinese_text_follows_one_spacing_rule(reports: dict[str, ReportResult]) -> None:
    texts = _text_nodes(_html(reports, "zh")) + [s for _, s in _sentences(reports, "zh").values()]
    glued = re.compile(f"[{HAN}][A-Za-z0-9]|[A-Za-z0-9%][{HAN}]")
    spaced = re.compile(f"[{HAN}] +[{HAN}]|[{HAN}] +[，。、；：（）]|[，。、；：（）] +[{HAN}]")
    wrong = [t for t in texts if glued.search(t) or spaced.search(t)]
    assert not wrong, wrong[:5]


def test_refund_without_permission_reads_as_a_whole_chinese_sentence(
    reports: dict[str, ReportResult],
) -> None:
    sentences = [
        s for r, s in _sentences(reports, "zh").values() if r == "refunds_without_permission"
    ]
    assert sentences
    assert all("办理了退款" in s and "，但" in s for s in sentences), sentences[0]


def test_english_sentences_are_capitalised_and_end_with_a_full_stop(
    reports: dict[str, ReportResult],
) -> None:
    for _, sentence in _sentences(reports, "en").values():
        assert sentence[0].isupper() and sentence.endswith("."), sentence
        assert not re.search(r"(?<![\d.,])1 (minutes|times|days|refunds)\b", sentence), sentence


def test_english_counts_agree_with_their_nouns(reports: dict[str, ReportResult]) -> None:
    page = " ".join(_text_nodes(_html(reports, "en")))
    assert "from 1 rule (" in page  # the anomaly family has one rule
    assert not re.search(r"(?<![\d.,])1 (rules|findings|[a-z]+ findings)\b", page)
