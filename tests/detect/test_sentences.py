"""Sentences declared once: Polars and Python write the same English, and a summary reads back."""

from __future__ import annotations

import polars as pl
import pytest

from posaudit.detect.sentences import (
    CLOCK,
    NUMBER,
    Clause,
    Count,
    Items,
    Money,
    Operator,
    Sentence,
    Value,
    Words,
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
