"""A finding's sentence, declared once per rule in English and in Chinese.

Each rule declares its sentence next to it as a :class:`Sentence`: an English and a Chinese
template over named fields, each field of a kind that says how its value reads in either
language (a count with its noun, an amount of yuan, an operator by number, a word from a
table, a clause chosen by a key, a list). The same declaration serves three ends:

- :meth:`Sentence.expr` writes the English text as a Polars expression over the rule's
  columns: the ``summary`` every finding is stored with;
- :meth:`Sentence.parse` reads the fields back out of a stored summary (the summary states
  every fact of the sentence, some of them found nowhere in the evidence);
- :meth:`Sentence.render` writes the sentence from those fields in English or Chinese, with
  operators named by number or by the label a caller gives them (a report's pseudonyms).

So a report's English sentence is the stored summary itself, and its Chinese sentence states
the same facts: neither can drift from the rule. A field's value is the text the English
sentence shows for it (numbers as the rule formats them); a clause's value is the key of its
branch, a list's value the list of its items.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final, Literal

import polars as pl

from posaudit.detect.findings import fen_to_yuan

Language = Literal["en", "zh"]
# How a caller shows an operator instead of its number: (operator number, the terminal the
# sentence names it at, if any) -> the label to show.
OperatorLabel = Callable[[str, str | None], str]

# What a field's text looks like in a stored summary.
DAY: Final = r"\d{4}-\d{2}-\d{2}"
CLOCK: Final = r"\d{2}:\d{2}"
MINUTE: Final = DAY + " " + CLOCK
NUMBER: Final = r"-?\d+"
# A float as Polars writes it into a string: '19.5', '2.0', 'inf'.
DECIMAL: Final = r"-?(?:\d+(?:\.\d+)?(?:e-?\d+)?|inf)|NaN"
# An id or a number: no spaces and none of the punctuation sentences put around it.
NAME: Final = r"[^\s,;()]+"

OPERATOR_ROLES: Final[dict[str, tuple[str, str]]] = {
    "operator": ("operator", "操作员"),
    "admin": ("administrator", "管理员"),
}

_PLACEHOLDER: Final = re.compile(r"\{(\w+)\}")
_NAMED_GROUP: Final = re.compile(r"\(\?P<g\d+>")
_LANGUAGE_INDEX: Final[dict[str, int]] = {"en": 0, "zh": 1}

Values = dict[str, Any]
# Reads one field's value out of a match into the values (when its group took part).
_Reader = Callable[[re.Match[str], Values], None]


def _parts(template: str) -> list[str]:
    """Literal text at even positions, field names at odd ones."""
    return _PLACEHOLDER.split(template)


def _names(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def _alternatives(words: list[str]) -> str:
    """Words as one regex alternative, longest first so 'PINs' is tried before 'PIN'."""
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _is_one(value: Any) -> bool:
    """Whether a count is one, compared as a number the way Polars compares it."""
    try:
        return float(value) == 1
    except (TypeError, ValueError):
        return False


def _expr(value: pl.Expr | str | float) -> pl.Expr:
    """A field's Polars value: an expression, a column name, or a constant."""
    if isinstance(value, pl.Expr):
        return value
    if isinstance(value, str):
        return pl.col(value)
    return pl.lit(value)


# -- field kinds ------------------------------------------------------------------------------


class Leaf:
    """A field whose value is one piece of text (a kind of its own for each way it reads)."""

    def polars(self, value: pl.Expr, values: Mapping[str, pl.Expr]) -> pl.Expr:
        """The field as the English sentence writes it, from its Polars value."""
        return value

    def text(
        self, value: Any, values: Values, lang: Language, operator: OperatorLabel | None
    ) -> str:
        """The field in ``lang``."""
        return str(value)

    def regex(self, name: str, group: Callable[[], str]) -> tuple[str, _Reader]:
        """The field's English text as a regex, and how to read its value back."""
        g = group()

        def read(match: re.Match[str], values: Values) -> None:
            if match.group(g) is not None:
                values[name] = match.group(g)

        return f"(?P<{g}>{self.pattern})", read

    @property
    def pattern(self) -> str:
        return NAME


@dataclass(frozen=True)
class Value(Leaf):
    """Shown as it is in both languages: an id, a date, a number as the rule formats it."""

    like: str = NAME

    @property
    def pattern(self) -> str:
        return self.like


@dataclass(frozen=True)
class Count(Leaf):
    """A count with its noun in English ('1 lockout', '5 lockouts'); the bare number in Chinese,
    whose template says the measure word."""

    one: str
    many: str

    def polars(self, value: pl.Expr, values: Mapping[str, pl.Expr]) -> pl.Expr:
        noun = pl.when(value == 1).then(pl.lit(self.one)).otherwise(pl.lit(self.many))
        return pl.format("{} {}", value, noun)

    def text(
        self, value: Any, values: Values, lang: Language, operator: OperatorLabel | None
    ) -> str:
        if lang == "zh":
            return str(value)
        return f"{value} {self.one if _is_one(value) else self.many}"

    def regex(self, name: str, group: Callable[[], str]) -> tuple[str, _Reader]:
        pattern, read = super().regex(name, group)
        return f"{pattern} (?:{_alternatives([self.one, self.many])})", read

    @property
    def pattern(self) -> str:
        return NUMBER


@dataclass(frozen=True)
class Money(Leaf):
    """An amount: fen in Polars, written as yuan with two decimals ('523.00 CNY', '523.00 元')."""

    def polars(self, value: pl.Expr, values: Mapping[str, pl.Expr]) -> pl.Expr:
        return fen_to_yuan(value)

    def text(
        self, value: Any, values: Values, lang: Language, operator: OperatorLabel | None
    ) -> str:
        return f"{value} CNY" if lang == "en" else f"{value} 元"

    def regex(self, name: str, group: Callable[[], str]) -> tuple[str, _Reader]:
        pattern, read = super().regex(name, group)
        return f"{pattern} CNY", read

    @property
    def pattern(self) -> str:
        return r"-?\d+\.\d{2}"


@dataclass(frozen=True)
class Words(Leaf):
    """A key shown by its words in each language (a key without words shows as itself)."""

    words: Mapping[str, tuple[str, str]]
    other: str | None = None  # what a key without words looks like, when there may be one

    def polars(self, value: pl.Expr, values: Mapping[str, pl.Expr]) -> pl.Expr:
        english = {key: en for key, (en, _) in self.words.items()}
        return value.replace_strict(english, default=value, return_dtype=pl.String)

    def text(
        self, value: Any, values: Values, lang: Language, operator: OperatorLabel | None
    ) -> str:
        pair = self.words.get(str(value))
        return pair[_LANGUAGE_INDEX[lang]] if pair else str(value)

    def regex(self, name: str, group: Callable[[], str]) -> tuple[str, _Reader]:
        g = group()
        keys = {en: key for key, (en, _) in self.words.items()}
        alternatives = _alternatives(list(keys))
        if self.other:
            alternatives += f"|{self.other}"

        def read(match: re.Match[str], values: Values) -> None:
            if match.group(g) is not None:
                values[name] = keys.get(match.group(g), match.group(g))

        return f"(?P<{g}>{alternatives})", read


@dataclass(frozen=True)
class Operator(Leaf):
    """An operator by its number: 'operator 03' / '03 号操作员'.

    ``terminal`` names the field of the terminal the sentence places it at, ``role`` a
    :class:`Words` field over :data:`OPERATOR_ROLES` (without one it is an operator). A
    ``bare`` operator is its number alone, as in a list of numbers. Given an
    :data:`OperatorLabel`, the label replaces the number: 'operator OP-2F7K1Q' /
    '操作员 OP-2F7K1Q'.
    """

    terminal: str | None = None
    role: str | None = None
    bare: bool = False

    def polars(self, value: pl.Expr, values: Mapping[str, pl.Expr]) -> pl.Expr:
        if self.bare:
            return value
        if self.role is None:
            role = pl.lit(OPERATOR_ROLES["operator"][0])
        else:
            role = Words(OPERATOR_ROLES).polars(values[self.role], values)
        return pl.format("{} {}", role, value)

    def text(
        self, value: Any, values: Values, lang: Language, operator: OperatorLabel | None
    ) -> str:
        terminal = str(values[self.terminal]) if self.terminal else None
        shown = operator(str(value), terminal) if operator else str(value)
        if self.bare:
            return shown
        role = OPERATOR_ROLES.get(str(values[self.role]) if self.role else "operator")
        if role is None:
            raise KeyError(self.role)
        if lang == "en":
            return f"{role[0]} {shown}"
        return f"{role[1]} {shown}" if operator else f"{shown} 号{role[1]}"

    def regex(self, name: str, group: Callable[[], str]) -> tuple[str, _Reader]:
        pattern, read_number = super().regex(name, group)
        if self.bare:
            return pattern, read_number
        if self.role is None:
            return f"{re.escape(OPERATOR_ROLES['operator'][0])} {pattern}", read_number
        role_pattern, read_role = Words(OPERATOR_ROLES).regex(self.role, group)

        def read(match: re.Match[str], values: Values) -> None:
            read_role(match, values)
            read_number(match, values)

        return f"{role_pattern} {pattern}", read


@dataclass(frozen=True)
class Clause:
    """One of several branches, chosen by a key: each branch an English and a Chinese template
    over the sentence's fields. In Polars the field's value is the key expression."""

    branches: Mapping[str, tuple[str, str]]


@dataclass(frozen=True)
class Phrase:
    """A part of the sentence over its fields, always there (it takes no value of its own)."""

    en: str
    zh: str


@dataclass(frozen=True)
class Items:
    """A list, joined by a separator in each language. Items are a :class:`Leaf` kind or a
    :class:`Sentence` of their own; in Polars the value is a list of the items as English
    writes them. ``empty_zh`` is what Chinese says for no items (English says nothing)."""

    item: Leaf | Sentence
    separators: tuple[str, str] = (", ", "、")
    empty_zh: str = ""


Kind = Leaf | Clause | Phrase | Items


# -- the sentence -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sentence:
    """A finding's sentence: English and Chinese templates over named, typed fields.

    Templates name fields in braces (``{terminal_id}``). Every template and branch says the
    same fields in both languages, so the two state the same facts.
    """

    en: str
    zh: str
    fields: Mapping[str, Kind] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pairs = [("sentence", self.en, self.zh)]
        for name, kind in self.fields.items():
            if isinstance(kind, Clause):
                pairs += [(f"{name}.{key}", en, zh) for key, (en, zh) in kind.branches.items()]
            elif isinstance(kind, Phrase):
                pairs.append((name, kind.en, kind.zh))
        for where, en, zh in pairs:
            if _names(en) != _names(zh):
                msg = f"{where}: English says {sorted(_names(en))}, Chinese {sorted(_names(zh))}"
                raise ValueError(msg)
            unknown = _names(en) - set(self.fields)
            if unknown:
                msg = f"{where}: no field {sorted(unknown)}"
                raise ValueError(msg)
            if "{}" in en:
                msg = f"{where}: '{{}}' would read as a placeholder"
                raise ValueError(msg)
        for name, kind in self.fields.items():
            if isinstance(kind, Operator):
                named = {kind.terminal, kind.role} - {None}
                if not named <= set(self.fields):
                    msg = f"{name}: no field {sorted(named - set(self.fields))}"  # type: ignore[type-var]
                    raise ValueError(msg)

    # -- Polars: the stored English summary ---------------------------------------------------

    def expr(self, **values: pl.Expr | str | float) -> pl.Expr:
        """The English sentence as a Polars expression: one value per field (an expression, a
        column name or a constant), a branch key for a clause, a list for a list field."""
        missing = sorted(
            n for n, k in self.fields.items() if n not in values and not isinstance(k, Phrase)
        )
        if missing:
            msg = f"no value for {missing}"
            raise TypeError(msg)
        exprs = {name: _expr(value) for name, value in values.items()}
        return self._polars(self.en, exprs)

    def _polars(self, template: str, values: Mapping[str, pl.Expr]) -> pl.Expr:
        parts = _parts(template)
        if len(parts) == 1:
            return pl.lit(template)
        fields = [self._polars_field(name, values) for name in parts[1::2]]
        return pl.format("{}".join(parts[0::2]), *fields)

    def _polars_field(self, name: str, values: Mapping[str, pl.Expr]) -> pl.Expr:
        kind = self.fields[name]
        if isinstance(kind, Phrase):
            return self._polars(kind.en, values)
        value = values[name]
        if isinstance(kind, Clause):
            (first, (en, _)), *rest = kind.branches.items()
            chosen: Any = pl.when(value == first).then(self._polars(en, values))
            for key, (en, _) in rest:
                chosen = chosen.when(value == key).then(self._polars(en, values))
            return chosen
        if isinstance(kind, Items):
            return value.list.join(kind.separators[0])
        return kind.polars(value, values)

    # -- Python: the sentence in either language ----------------------------------------------

    def render(
        self, values: Values, lang: Language, *, operator: OperatorLabel | None = None
    ) -> str:
        """The sentence in ``lang`` from its fields' values (as :meth:`parse` reads them).

        ``operator`` labels every operator instead of its number. A value missing or a key
        without its branch raises KeyError.
        """
        template = self.en if lang == "en" else self.zh
        return self._render(template, values, lang, operator)

    def _render(
        self, template: str, values: Values, lang: Language, operator: OperatorLabel | None
    ) -> str:
        parts = _parts(template)
        for i in range(1, len(parts), 2):
            parts[i] = self._render_field(parts[i], values, lang, operator)
        return "".join(parts)

    def _render_field(
        self, name: str, values: Values, lang: Language, operator: OperatorLabel | None
    ) -> str:
        kind = self.fields[name]
        index = _LANGUAGE_INDEX[lang]
        if isinstance(kind, Phrase):
            return self._render(kind.en if lang == "en" else kind.zh, values, lang, operator)
        value = values[name]
        if isinstance(kind, Clause):
            return self._render(kind.branches[value][index], values, lang, operator)
        if isinstance(kind, Items):
            if not value:
                return "" if lang == "en" else kind.empty_zh
            if isinstance(kind.item, Sentence):
                shown = [kind.item.render(v, lang, operator=operator) for v in value]
            else:
                shown = [kind.item.text(v, values, lang, operator) for v in value]
            return kind.separators[index].join(shown)
        return kind.text(value, values, lang, operator)

    # -- reading a stored summary back --------------------------------------------------------

    def parse(self, text: str) -> Values | None:
        """The fields' values the English ``text`` was written with; None when it is not this
        sentence (a summary an earlier version of the rule wrote, say)."""
        pattern, readers = self._compiled
        match = pattern.fullmatch(text)
        if match is None:
            return None
        values: Values = {}
        try:
            for read in readers:
                read(match, values)
        except _NotThisSentence:
            return None
        return values

    @cached_property
    def _compiled(self) -> tuple[re.Pattern[str], list[_Reader]]:
        compiler = _Compiler(self)
        return re.compile(compiler.template(self.en), re.DOTALL), compiler.readers


class _NotThisSentence(Exception):
    """An item of a list is not what the list holds."""


class _Compiler:
    """The English template as one regex, with a reader per field."""

    def __init__(self, sentence: Sentence) -> None:
        self.sentence = sentence
        self.readers: list[_Reader] = []
        self._groups = 0

    def group(self) -> str:
        self._groups += 1
        return f"g{self._groups}"

    def template(self, template: str) -> str:
        parts = _parts(template)
        return "".join(
            re.escape(part) if i % 2 == 0 else self.field(part) for i, part in enumerate(parts)
        )

    def field(self, name: str) -> str:
        kind = self.sentence.fields[name]
        if isinstance(kind, Phrase):
            return self.template(kind.en)
        if isinstance(kind, Clause):
            return (
                "(?:"
                + "|".join(self.branch(name, k, en) for k, (en, _) in kind.branches.items())
                + ")"
            )
        if isinstance(kind, Items):
            return self.items(name, kind)
        pattern, read = kind.regex(name, self.group)
        self.readers.append(read)
        return pattern

    def branch(self, name: str, key: str, template: str) -> str:
        g = self.group()

        def read(match: re.Match[str], values: Values) -> None:
            if match.group(g) is not None:
                values[name] = key

        self.readers.append(read)
        return f"(?P<{g}>{self.template(template)})"

    def items(self, name: str, kind: Items) -> str:
        parse_item, one = _item_parser(kind.item)
        # the whole list in one group; each item read again with the item's own pattern
        one_item = _NAMED_GROUP.sub("(?:", one)
        separator = kind.separators[0]
        g = self.group()

        def read(match: re.Match[str], values: Values) -> None:
            listed = match.group(g)
            if listed is None:
                return
            items = []
            for text in listed.split(separator) if listed else []:
                parsed = parse_item(text)
                if parsed is None:
                    raise _NotThisSentence(text)
                items.append(parsed)
            values[name] = items

        self.readers.append(read)
        more = f"(?:{re.escape(separator)}(?:{one_item}))*"
        return f"(?P<{g}>(?:(?:{one_item}){more})?)"


def _item_parser(item: Leaf | Sentence) -> tuple[Callable[[str], Any], str]:
    """How to read one item of a list, and its pattern."""
    if isinstance(item, Sentence):
        return item.parse, item._compiled[0].pattern
    groups = itertools.count(1)
    pattern, read = item.regex("item", lambda: f"g{next(groups)}")
    compiled = re.compile(pattern)

    def parse(text: str) -> Any:
        match = compiled.fullmatch(text)
        if match is None:
            return None
        values: Values = {}
        read(match, values)
        return values["item"]

    return parse, pattern
