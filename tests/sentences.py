"""A check every rule test makes of the findings it gets: each summary reads back."""

from __future__ import annotations

import polars as pl

from posaudit.detect import ledger, logins, pins, privileges, refunds, sales
from posaudit.detect.sentences import Sentence
from posaudit.score import operators

SENTENCES: dict[str, Sentence] = {
    **logins.SENTENCES,
    **pins.SENTENCES,
    **refunds.SENTENCES,
    **operators.SENTENCES,
    **ledger.SENTENCES,
    **privileges.SENTENCES,
    **sales.SENTENCES,
}


def assert_summaries_read_back(findings: pl.DataFrame) -> None:
    """Every finding's summary is its rule's sentence: the facts read back out of it write
    the same English again, and the Chinese sentence from the same facts."""
    for rule, summary in findings.select("rule", "summary").iter_rows():
        sentence = SENTENCES[rule]
        values = sentence.parse(summary)
        assert values is not None, f"{rule}: {summary!r} is not its sentence"
        assert sentence.render(values, "en") == summary
        assert sentence.render(values, "zh")
        assert sentence.render(values, "zh", operator=lambda number, terminal: "OP-TEST00")
