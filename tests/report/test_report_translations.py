"""Every word and finding sentence of the report in both languages, from the rules' sentences."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from posaudit.detect.policy import load_policy
from posaudit.pins import LocalPinKey, pin_digester
from posaudit.report.builder import localized_findings
from posaudit.report.data import load_report_data
from posaudit.report.pseudonyms import Pseudonyms
from posaudit.report.translations import (
    FAMILIES,
    PARAMETERS,
    RULE_DESCRIPTIONS_ZH,
    RULES,
    SENTENCES,
    UI,
    FindingFacts,
    finding_sentence,
)
from posaudit.rules import all_rules
from posaudit.run.local import run_pipeline
from posaudit.store import Store
from tests.injected import add_invented_amounts, add_lockout_storm, add_merchant_typologies

CJK = re.compile(r"[\u4e00-\u9fff]")
STORM = (
    "terminal T000007 locked out 3 operators (01, 02, 05) 4 times in 42 minutes on 2026-09-02 "
    "from 10:05"
)


def test_every_rule_has_a_title_description_and_sentence_in_both_languages() -> None:
    rules = all_rules()
    for name, rule in rules.items():
        assert name in RULES, name
        assert name in RULE_DESCRIPTIONS_ZH, name
        assert rule.family in FAMILIES, rule.family
        assert name in SENTENCES, name
        for parameter in rule.parameters:
            assert parameter in PARAMETERS, (name, parameter)


def test_every_chinese_label_is_chinese() -> None:
    for key, (english, chinese) in UI.items():
        if english:  # the empty page-number suffix has no English counterpart
            assert CJK.search(chinese) or chinese in ("#",), key


def _facts(
    rule: str, summary: str, *, operator_ids: tuple[str, ...] = (), masked: bool = False
) -> FindingFacts:
    return FindingFacts(
        rule=rule,
        summary=summary,
        operator_ids=operator_ids,
        pseudonyms=Pseudonyms.for_deployment(LocalPinKey(b"k"), enabled=masked),
    )


def test_lockout_storm_sentence() -> None:
    zh = finding_sentence(_facts("lockout_storm", STORM), "zh")
    assert zh == (
        "终端 T000007 于 2026-09-02 10:05 起的 42 分钟内"
        "有 3 名操作员（01、02、05）被锁定，共 4 次。"
    )
    en = finding_sentence(_facts("lockout_storm", STORM), "en")
    assert en == STORM[0].upper() + STORM[1:] + "."
    masked = finding_sentence(_facts("lockout_storm", STORM, masked=True), "en")
    assert masked is not None and masked.count("OP-") == 3 and not re.search(r"\(0\d|, 0\d", masked)


def test_a_masked_operator_is_the_one_the_finding_names_by_id() -> None:
    # a refund made at a sibling terminal by operator 03 of T000008
    summary = (
        "refund X1 of 12.00 CNY on 2026-09-02 10:05 at terminal T000007 by operator 03 "
        "although the operator has no refund permission"
    )
    facts = _facts("refunds_without_permission", summary, operator_ids=("T000008-03",), masked=True)
    pseudonym = facts.pseudonyms.operator("T000008-03")
    assert finding_sentence(facts, "en") == (
        f"Refund X1 of 12.00 CNY on 2026-09-02 10:05 at terminal T000007 by operator {pseudonym} "
        "although the operator has no refund permission."
    )
    assert finding_sentence(facts, "zh") == (
        f"操作员 {pseudonym} 于 2026-09-02 10:05 在终端 T000007 办理了退款 X1（12.00 元），"
        "但该操作员没有退款权限。"
    )


def test_a_summary_its_sentence_did_not_write_falls_back() -> None:
    assert finding_sentence(_facts("lockout_storm", "terminal T000007 locked out"), "zh") is None
    assert finding_sentence(_facts("a_rule_without_sentence", STORM), "zh") is None


@pytest.fixture(scope="module")
def sample_run(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample world with a lockout storm and the merchant typologies added, after one full
    run: every rule fires."""
    path = tmp_path_factory.mktemp("every-rule") / "w.duckdb"
    shutil.copy(sample_store, path)
    add_lockout_storm(path)
    add_merchant_typologies(path)
    add_invented_amounts(path)
    store = Store.open(path)
    try:
        run_pipeline(store, load_policy())
    finally:
        store.close()
    return path


def _findings(path: Path) -> pl.DataFrame:
    store = Store.open(path, read_only=True)
    try:
        return load_report_data(store).findings
    finally:
        store.close()


def test_the_english_sentence_of_every_finding_is_its_stored_summary(sample_run: Path) -> None:
    findings = _findings(sample_run)
    assert set(findings.get_column("rule")) == set(all_rules())  # every rule fires
    shown, fallbacks = localized_findings(
        findings,
        lang="en",
        pseudonyms=Pseudonyms.for_deployment(pin_digester(), enabled=False),  # type: ignore[arg-type]
    )
    assert fallbacks == 0
    differ = {
        rule: (summary, sentence)
        for rule, summary, sentence in shown.select("rule", "summary", "sentence").iter_rows()
        if sentence != summary[:1].upper() + summary[1:] + "."
    }
    assert not differ, differ


@pytest.mark.parametrize(("lang", "masked"), [("zh", False), ("zh", True), ("en", True)])
def test_every_finding_of_the_sample_run_has_its_own_sentence(
    sample_run: Path, lang: str, masked: bool
) -> None:
    findings = _findings(sample_run)
    shown, fallbacks = localized_findings(
        findings,
        lang=lang,
        pseudonyms=Pseudonyms.for_deployment(pin_digester(), enabled=masked),  # type: ignore[arg-type]
    )
    fell_back = shown.filter(pl.col("is_fallback")).get_column("rule").unique().to_list()
    assert fallbacks == 0, f"no {lang} sentence for {fell_back}"
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


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_credential_sharings_two_views_read_as_words(lang: str) -> None:
    from posaudit.report.translations import evidence_value

    for view in ("terminals", "till"):
        shown = evidence_value("seen_on", view, lang)
        assert shown and shown != view, (view, shown)
