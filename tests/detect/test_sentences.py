"""Sentences declared once: Polars and Python write the same English, and a summary reads back."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from posaudit.detect import pins
from posaudit.detect.sentences import (
    CLOCK,
    DAY,
    DECIMAL,
    MINUTE,
    NAME,
    NUMBER,
    Clause,
    Count,
    Items,
    Money,
    Operator,
    Phrase,
    Sentence,
    Value,
    Words,
)
from posaudit.score import operators
from tests.sentences import SENTENCES

# What a value of each pattern looks like, for the values the sentences are tried with.
EXAMPLES: dict[str, str] = {
    NAME: "T000123",
    DAY: "2026-09-01",
    CLOCK: "10:05",
    MINUTE: "2026-09-01 10:05",
    NUMBER: "12",
    DECIMAL: "2.57",
    r"-?\d+(?:\.\d+)?%?": "40%",
}
DECLARED: dict[str, Sentence] = {
    **SENTENCES,
    "other_operator": pins.OTHER_OPERATOR,
    "feature_phrase": operators.FEATURE_PHRASE,
}


def _clauses(sentence: Sentence) -> list[str]:
    return [name for name, kind in sentence.fields.items() if isinstance(kind, Clause)]


def _value(kind: Any, count: int) -> tuple[Any, Any]:
    """A field's value for Polars and the same value as the sentence reads it back."""
    if isinstance(kind, Count):
        return pl.lit(count), str(count)
    if isinstance(kind, Money):
        return pl.lit(1_234_505), "12345.05"
    if isinstance(kind, Words):
        key = next(iter(kind.words))
        return pl.lit(key), key
    if isinstance(kind, Operator):
        return pl.lit("03"), "03"
    if isinstance(kind, Value):
        assert kind.like in EXAMPLES, f"add an example of {kind.like!r} to EXAMPLES"
        return pl.lit(EXAMPLES[kind.like]), EXAMPLES[kind.like]
    if isinstance(kind, Items):
        if isinstance(kind.item, Sentence):
            _, item = next(_combinations(kind.item))
            written = kind.item.render(item, "en")
            return pl.lit([written, written]), [item, item]
        _, item = _value(kind.item, count)
        return pl.lit([item, item]), [item, item]
    raise AssertionError(kind)


def _combinations(sentence: Sentence) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Values for every combination of branches, counts of one and of many."""
    clauses = _clauses(sentence)
    branches = [list(sentence.fields[name].branches) for name in clauses]  # type: ignore[union-attr]
    for count, keys in itertools.product((1, 7), itertools.product(*branches)):
        exprs: dict[str, Any] = {}
        values: dict[str, Any] = {}
        for name, kind in sentence.fields.items():
            if isinstance(kind, Phrase):
                continue
            if isinstance(kind, Clause):
                key = keys[clauses.index(name)]
                exprs[name], values[name] = pl.lit(key), key
            else:
                exprs[name], values[name] = _value(kind, count)
        yield exprs, values


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_polars_and_python_write_the_same_english_and_it_reads_back(name: str) -> None:
    sentence = DECLARED[name]
    for exprs, values in _combinations(sentence):
        english = sentence.render(values, "en")
        assert pl.select(sentence.expr(**exprs)).item() == english
        assert "{" not in english
        read = sentence.parse(english)
        assert read is not None, english
        assert sentence.render(read, "en") == english
        assert sentence.render(read, "zh") == sentence.render(values, "zh")


@pytest.mark.parametrize("name", sorted(SENTENCES))
def test_masked_sentences_name_operators_by_their_label_only(name: str) -> None:
    sentence = SENTENCES[name]
    for _, values in _combinations(sentence):
        for lang in ("en", "zh"):
            masked = sentence.render(values, lang, operator=lambda number, terminal: "OP-TEST00")  # type: ignore[arg-type]
            assert not re.search(r"\b(operator|administrator) 03\b|03 号", masked), masked


def test_a_sentence_reads_back_each_fact() -> None:
    summary = (
        "terminal T000007 locked out 3 operators (01, 02, 05) 4 times in 1 minute on 2026-09-02 "
        "from 10:05"
    )
    values = SENTENCES["lockout_storm"].parse(summary)
    assert values == {
        "terminal_id": "T000007",
        "operators": "3",
        "operator_nos": ["01", "02", "05"],
        "lockouts": "4",
        "span": "1",
        "day": "2026-09-02",
        "start": "10:05",
    }
    assert SENTENCES["lockout_storm"].render(values, "zh") == (
        "终端 T000007 于 2026-09-02 10:05 起的 1 分钟内有 3 名操作员（01、02、05）被锁定，共 4 次"
    )


def test_another_text_is_not_the_sentence() -> None:
    storm = SENTENCES["lockout_storm"]
    assert storm.parse("terminal T000007 locked out 3 operators (01, 02, 05) 4 times") is None
    assert storm.parse("") is None
    # a list item that is not what the list holds
    assert (
        storm.parse(
            "terminal T1 locked out 2 operators (01, a b) 2 times in 3 minutes on 2026-09-02 "
            "from 10:05"
        )
        is None
    )


def test_clauses_and_lists_read_back_and_another_text_does_not() -> None:
    sentence = Sentence(
        "{who} tried {numbers}{outcome}",
        "{who}尝试了 {numbers}{outcome}",
        {
            "who": Value(),
            "numbers": Items(Value(NUMBER)),
            "outcome": Clause(
                {"in": (", then got in at {at}", "，于 {at} 登录成功"), "out": ("", "")}
            ),
            "at": Value(CLOCK),
        },
    )
    text = "T1 tried 01, 02, 03, then got in at 10:05"
    assert sentence.parse(text) == {
        "who": "T1",
        "numbers": ["01", "02", "03"],
        "outcome": "in",
        "at": "10:05",
    }
    assert sentence.parse("T1 tried 01") == {"who": "T1", "numbers": ["01"], "outcome": "out"}
    assert sentence.render(sentence.parse(text), "zh") == "T1尝试了 01、02、03，于 10:05 登录成功"  # type: ignore[arg-type]
    frame = pl.DataFrame({"who": ["T1"], "numbers": [["01", "02", "03"]], "at": ["10:05"]})
    written = frame.select(
        sentence.expr(who="who", numbers="numbers", outcome=pl.lit("in"), at="at")
    )
    assert written.item() == text
    for other in ("T1 tried 01, then got in", "T1 tried a b", "T1 tried 01 and 02", ""):
        assert sentence.parse(other) is None, other


def test_counts_agree_with_their_nouns_in_polars_and_python() -> None:
    sentence = Sentence("{n}", "{n}", {"n": Count("refund", "refunds")})
    for n in (0, 1, 2):
        english = pl.select(sentence.expr(n=pl.lit(n))).item()
        assert english == sentence.render({"n": str(n)}, "en")
    assert sentence.render({"n": "1"}, "en") == "1 refund"
    assert sentence.render({"n": "1.0"}, "en") == "1.0 refund"
    assert sentence.render({"n": "12"}, "zh") == "12"


def test_amounts_are_written_in_yuan_with_two_decimals() -> None:
    sentence = Sentence("{a}", "{a}", {"a": Money()})
    assert pl.select(sentence.expr(a=pl.lit(5))).item() == "0.05 CNY"
    assert sentence.parse("0.05 CNY") == {"a": "0.05"}
    assert sentence.render({"a": "0.05"}, "zh") == "0.05 元"


def test_an_operator_reads_by_number_or_by_its_label() -> None:
    sentence = Sentence(
        "{operator} at terminal {terminal_id}",
        "终端 {terminal_id} 的{operator}",
        {
            "operator": Operator(terminal="terminal_id", role="role"),
            "role": Words(
                {"operator": ("operator", "操作员"), "admin": ("administrator", "管理员")}
            ),
            "terminal_id": Value(),
        },
    )
    values = sentence.parse("administrator 00 at terminal T9")
    assert values == {"operator": "00", "role": "admin", "terminal_id": "T9"}
    assert sentence.render(values, "zh") == "终端 T9 的00 号管理员"
    seen: list[tuple[str, str | None]] = []

    def label(number: str, terminal: str | None) -> str:
        seen.append((number, terminal))
        return "OP-ABCDEF"

    assert sentence.render(values, "en", operator=label) == "administrator OP-ABCDEF at terminal T9"
    assert sentence.render(values, "zh", operator=label) == "终端 T9 的管理员 OP-ABCDEF"
    assert seen == [("00", "T9"), ("00", "T9")]


def test_both_languages_state_the_same_fields() -> None:
    with pytest.raises(ValueError, match="Chinese"):
        Sentence("{a} and {b}", "{a}", {"a": Value(), "b": Value()})
    with pytest.raises(ValueError, match="Chinese"):
        Sentence("{c}", "{c}", {"c": Clause({"x": ("{a}", "")}), "a": Value()})
    with pytest.raises(ValueError, match="no field"):
        Sentence("{a}", "{a}", {})
    with pytest.raises(ValueError, match="no field"):
        Sentence("{o}", "{o}", {"o": Operator(terminal="terminal_id")})


def test_a_missing_value_is_named() -> None:
    with pytest.raises(TypeError, match="terminal_id"):
        SENTENCES["lockout_storm"].expr(operators="operators")
