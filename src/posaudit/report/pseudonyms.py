"""Stable operator pseudonyms for reports that leave the audit team.

An operator is known by a 2-digit number on one terminal (``operator_id`` is
``<terminal_id>-<operator_no>``) and by a name. A report made with ``--mask-operators`` shows
neither: every operator becomes ``OP-XXXXXX``, a keyed digest of its id. The key is derived
from the deployment's PIN key, as its PIN digester's digest of a label, so the same operator
has the same pseudonym in every report of one deployment (an auditor can follow it across
months) while nobody without the key can turn a pseudonym back into an id by trying all
``T…-NN`` ids. The derived key pseudonymises and nothing else: it digests no PIN.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import polars as pl

from posaudit.pins import PinDigester

# Operator ids as the simulator and the terminal management system write them.
OPERATOR_ID: Final = re.compile(r"\bT\d{3,}-\d{2}\b")
# "operator 03", "administrator 99", "clerk 12", optionally followed by its terminal.
OPERATOR_MENTION: Final = re.compile(
    r"\b(operators?|administrators?|clerks?|admins?) (\d{2})\b"
    r"(?= (?:of|at) (?:terminal )?(T\d{3,})\b)?"
)
# Lists of bare operator numbers in parentheses after "operators": "(01, 02 and 05)".
OPERATOR_NUMBER_LIST: Final = re.compile(r"(\boperators?\b[^.;]*?)\(((?:\d{2}(?:, | and )?)+)\)")
PSEUDONYM_PREFIX: Final = "OP-"
UNKNOWN_OPERATOR: Final = "OP-??????"
_DERIVATION_LABEL: Final = "posaudit/report/operator-pseudonyms/v1"
# Evidence keys that hold an operator's number or id, and the lists of them.
_ID_KEYS: Final = frozenset({"operator_id", "other_operator_ids", "operator_ids"})
_NUMBER_KEYS: Final = frozenset({"operator_no", "operator_nos"})
_LABEL_KEYS: Final = frozenset({"other_operators"})


@dataclass
class Pseudonyms:
    """Operator labels for a report: real ids when ``enabled`` is false, pseudonyms when true."""

    key: bytes = field(repr=False)
    enabled: bool = False
    _cache: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def for_deployment(cls, digester: PinDigester, *, enabled: bool) -> Pseudonyms:
        """Labels keyed by ``digester``'s key: its digest of a label no PIN can equal."""
        derived = digester.digests(pl.Series([_DERIVATION_LABEL], dtype=pl.String))
        return cls(key=bytes.fromhex(derived.item()), enabled=enabled)

    def operator(self, operator_id: str | None) -> str:
        """The label of an operator id: the id itself, or its pseudonym when masking."""
        if operator_id is None:
            return UNKNOWN_OPERATOR if self.enabled else "-"
        if not self.enabled:
            return operator_id
        cached = self._cache.get(operator_id)
        if cached is None:
            digest = hmac.new(self.key, operator_id.encode(), hashlib.sha256).digest()
            cached = PSEUDONYM_PREFIX + base64.b32encode(digest).decode()[:6]
            self._cache[operator_id] = cached
        return cached

    def number(self, terminal_id: str | None, operator_no: str | None) -> str:
        """An operator number as shown: the number, or the pseudonym of its operator."""
        if operator_no is None:
            return "-"
        if not self.enabled:
            return operator_no
        if terminal_id is None:
            return UNKNOWN_OPERATOR
        return self.operator(f"{terminal_id}-{operator_no}")

    def name(self, operator_id: str | None, name: str | None) -> str:
        """An operator's name as shown: the name, or nothing when masking."""
        if self.enabled:
            return self.operator(operator_id)
        return name or ""

    def text(
        self, sentence: str, *, operator_ids: Iterable[str] = (), terminal_id: str | None = None
    ) -> str:
        """A free-text sentence with every operator id and operator number masked.

        ``operator_ids`` are the operators the sentence is about (they resolve a bare
        "operator 03"); ``terminal_id`` is the terminal the sentence speaks of when it names
        none after the number. Numbers that cannot be resolved become ``OP-??????``.
        """
        if not self.enabled:
            return sentence
        known = list(operator_ids)

        def resolve(number: str, terminal: str | None) -> str:
            if terminal:
                return self.operator(f"{terminal}-{number}")
            matches = [i for i in known if i.endswith(f"-{number}")]
            if len(set(matches)) == 1:
                return self.operator(matches[0])
            if terminal_id:
                return self.operator(f"{terminal_id}-{number}")
            return UNKNOWN_OPERATOR

        masked = OPERATOR_ID.sub(lambda m: self.operator(m.group(0)), sentence)
        masked = OPERATOR_MENTION.sub(
            lambda m: f"{m.group(1)} {resolve(m.group(2), m.group(3))}", masked
        )
        return OPERATOR_NUMBER_LIST.sub(
            lambda m: (
                m.group(1)
                + "("
                + re.sub(r"\d{2}", lambda n: resolve(n.group(0), None), m.group(2))
                + ")"
            ),
            masked,
        )

    def evidence(self, evidence: Mapping[str, Any], *, terminal_id: str | None) -> dict[str, Any]:
        """Evidence with operator ids, numbers and labels masked (a copy)."""
        if not self.enabled:
            return dict(evidence)
        out: dict[str, Any] = {}
        for key, value in evidence.items():
            if key in _ID_KEYS:
                out[key] = (
                    [self.operator(v) for v in value]
                    if isinstance(value, list)
                    else self.operator(value)
                )
            elif key in _NUMBER_KEYS:
                out[key] = (
                    [self.number(terminal_id, v) for v in value]
                    if isinstance(value, list)
                    else self.number(terminal_id, value)
                )
            elif key in _LABEL_KEYS and isinstance(value, list):
                out[key] = [self.text(str(v), terminal_id=terminal_id) for v in value]
            elif isinstance(value, str):
                out[key] = self.text(value, terminal_id=terminal_id)
            else:
                out[key] = value
        return out
