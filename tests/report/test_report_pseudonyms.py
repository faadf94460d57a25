"""Operator pseudonyms: stable, keyed, and nothing of the operator left in masked text."""

from __future__ import annotations

import re

from posaudit.pins import LocalPinKey
from posaudit.report.pseudonyms import UNKNOWN_OPERATOR, Pseudonyms

KEY = LocalPinKey(b"posaudit-demo-key/simulated-data-only")
PSEUDONYM = re.compile(r"^OP-[A-Z2-7]{6}$")


def test_pseudonyms_are_stable_keyed_and_distinct() -> None:
    first = Pseudonyms.for_deployment(KEY, enabled=True)
    again = Pseudonyms.for_deployment(KEY, enabled=True)
    other_key = Pseudonyms.for_deployment(LocalPinKey(b"another deployment"), enabled=True)
    ids = [f"T{t:06d}-{n:02d}" for t in range(1, 40) for n in (0, 1, 2, 99)]
    names = [first.operator(i) for i in ids]
    assert all(PSEUDONYM.match(n) for n in names)
    assert names == [again.operator(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert first.operator(ids[0]) != other_key.operator(ids[0])


def test_disabled_pseudonyms_show_the_real_operator() -> None:
    plain = Pseudonyms.for_deployment(KEY, enabled=False)
    assert plain.operator("T000001-03") == "T000001-03"
    assert plain.number("T000001", "03") == "03"
    assert plain.name("T000001-03", "Liu Yan") == "Liu Yan"
    sentence = "operator 03 at terminal T000001 had 12 wrong PINs"
    assert plain.text(sentence) == sentence


def test_masked_text_keeps_no_operator_number_or_id() -> None:
    masked = Pseudonyms.for_deployment(KEY, enabled=True)
    op = masked.operator
    cases = {
        "operator 03 at terminal T000001 had 12 wrong PINs": (
            f"operator {op('T000001-03')} at terminal T000001"
        ),
        "administrator 00 at terminal T000019 of merchant M000012 still holds": (
            f"administrator {op('T000019-00')} at"
        ),
        "operator 12 of terminal T000004 was active": (
            f"operator {op('T000004-12')} of terminal T000004"
        ),
        "held the same PIN as 2 other operators (operator 01 at T000008, operator 02 at T000008)": (
            op("T000008-02")
        ),
        "terminal T000007 locked out 3 operators (01, 02 and 05) 4 times": (
            f"({op('T000007-01')}, {op('T000007-02')} and"
        ),
        "refund X1 at terminal T000010 by operator 99 came late": (
            f"by operator {op('T000010-99')} came"
        ),
        "operator T000003-04 refunded": f"operator {op('T000003-04')} refunded",
    }
    for sentence, expected in cases.items():
        shown = masked.text(sentence, terminal_id=re.findall(r"T\d{6}", sentence)[0])
        assert expected in shown, shown
        assert not re.search(r"\b(operator|administrator)s? \d{2}\b", shown), shown
        assert not re.search(r"T\d{6}-\d{2}", shown), shown
        assert not re.search(r"\(\d{2}[,)]", shown), shown


def test_a_number_that_cannot_be_placed_is_hidden_not_shown() -> None:
    masked = Pseudonyms.for_deployment(KEY, enabled=True)
    assert masked.text("operator 07 did something") == f"operator {UNKNOWN_OPERATOR} did something"
    assert masked.operator(None) == UNKNOWN_OPERATOR


def test_masked_evidence() -> None:
    masked = Pseudonyms.for_deployment(KEY, enabled=True)
    evidence = {
        "operator_id": "T000008-04",
        "operator_no": "04",
        "other_operator_ids": ["T000008-01", "T000008-02"],
        "other_operators": ["operator 01 at T000008", "operator 02 at T000008"],
        "operator_nos": ["01", "02"],
        "operators": 2,
        "terminal_id": "T000008",
    }
    shown = masked.evidence(evidence, terminal_id="T000008")
    text = repr(shown)
    assert not re.search(r"T\d{6}-\d{2}|'0[124]'", text), text
    assert shown["operators"] == 2 and shown["terminal_id"] == "T000008"
    assert shown["operator_id"] == masked.operator("T000008-04") == shown["operator_no"]
    assert evidence["operator_id"] == "T000008-04"  # the input is not changed
