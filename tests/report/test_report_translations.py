"""Every word and finding sentence of the report in both languages, from the rules' evidence."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from posaudit.pins import LocalPinKey, pin_digester
from posaudit.report.builder import localized_findings
from posaudit.report.data import load_report_data
from posaudit.report.pseudonyms import Pseudonyms
from posaudit.report.translations import (
    FAMILIES,
    LANGUAGES,
    PARAMETERS,
    RULE_DESCRIPTIONS_ZH,
    RULES,
    SUMMARIES,
    UI,
    FindingFacts,
    finding_sentence,
)
from posaudit.rules import all_rules
from posaudit.store import Store

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_rule_has_a_title_description_and_sentence_in_both_languages() -> None:
    rules = all_rules()
    for name, rule in rules.items():
        assert name in RULES, name
        assert name in RULE_DESCRIPTIONS_ZH, name
        assert rule.family in FAMILIES, rule.family
        for lang in LANGUAGES:
            assert name in SUMMARIES[lang], (lang, name)
        for parameter in rule.parameters:
            assert parameter in PARAMETERS, (name, parameter)


def test_every_chinese_label_is_chinese() -> None:
    for key, (english, chinese) in UI.items():
        if english:  # the empty page-number suffix has no English counterpart
            assert CJK.search(chinese) or chinese in ("#",), key


def _facts(
    rule: str,
    evidence: dict[str, object],
    *,
    entity_type: str = "terminal",
    entity_id: str = "T000007",
    masked: bool = False,
) -> FindingFacts:
    return FindingFacts(
        rule=rule,
        entity_type=entity_type,
        entity_id=entity_id,
        merchant_id="M000003",
        window_start=datetime(2026, 9, 2, 10, 5),
        window_end=datetime(2026, 9, 2, 10, 47),
        evidence=evidence,
        role="clerk",
        pseudonyms=Pseudonyms.for_deployment(LocalPinKey(b"k"), enabled=masked),
    )


def test_lockout_storm_sentence() -> None:
    evidence = {
        "lockouts": 4,
        "operators": 3,
        "operator_nos": ["01", "02", "05"],
        "lockout_ids": ["K1"],
        "min_operators": 2,
        "max_gap_minutes": 60,
    }
    zh = finding_sentence(_facts("lockout_storm", evidence), "zh")
    assert zh == (
        "终端 T000007 于 2026-09-02 10:05 起的 42 分钟内"
        "有 3 名操作员（01、02、05）被锁定，共 4 次。"
    )
    en = finding_sentence(_facts("lockout_storm", evidence), "en")
    assert en == (
        "Terminal T000007 locked out 3 operators (01, 02, 05) 4 times in 42 minutes "
        "on 2026-09-02 from 10:05."
    )
    masked = finding_sentence(_facts("lockout_storm", evidence, masked=True), "en")
    assert masked is not None and masked.count("OP-") == 3 and not re.search(r"\(0\d|, 0\d", masked)


def test_a_template_missing_its_evidence_falls_back() -> None:
    assert finding_sentence(_facts("lockout_storm", {"lockouts": 4}), "zh") is None
    assert finding_sentence(_facts("a_rule_without_template", {}), "zh") is None


@pytest.fixture(scope="module")
def sample_run(audited_sample: Path) -> Path:
    return audited_sample


@pytest.mark.parametrize(("lang", "masked"), [("zh", False), ("zh", True), ("en", True)])
def test_every_finding_of_the_sample_run_has_its_own_sentence(
    sample_run: Path, lang: str, masked: bool
) -> None:
    store = Store.open(sample_run, read_only=True)
    try:
        data = load_report_data(store)
    finally:
        store.close()
    findings = data.findings
    assert set(findings.get_column("rule")) >= {"weak_pins", "refunds_over_sale", "pin_brute_force"}
    shown, fallbacks = localized_findings(
        findings,
        lang=lang,
        pseudonyms=Pseudonyms.for_deployment(pin_digester(), enabled=masked),  # type: ignore[arg-type]
    )
    fell_back = shown.filter(pl.col("is_fallback")).get_column("rule").unique().to_list()
    assert fallbacks == 0, f"no {lang} template for {fell_back}"
    for sentence in shown.get_column("sentence"):
        if lang == "zh":
            assert CJK.search(sentence) and sentence.endswith("。"), sentence
        if masked:
            assert not re.search(
                r"T\d{6}-\d{2}|\b(operator|administrator)s? \d{2}\b|\d{2} 号", sentence
            ), sentence
    for evidence in shown.get_column("evidence_shown"):
        assert "pin_digest" not in evidence
        if masked:
            assert not re.search(r"T\d{6}-\d{2}", evidence), evidence
            for key in ("operator_no", "operator_nos"):
                value = json.loads(evidence).get(key)
                assert value is None or "OP-" in str(value), evidence
