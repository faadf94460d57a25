"""Secrets at the door: plaintext PINs refused, full card numbers turned into tokens.

A PIN is only ever kept as a keyed digest (docs/reliability.md, "The PIN key"); a source
that holds PINs in clear is refused whole, before anything of it is kept or printed. A full
card number (a primary account number, PAN) must not be stored (PCI DSS 3.4, 3.5): each one
becomes the keyed hash ``HMAC(key, "card:" + number)`` through the deployment's
:class:`~posaudit.pins.PinDigester`, the same token every time for the same card, and is
masked (first 6, last 4) wherever a raw row is kept for an analyst. A Payment Account
Reference (PAR, EMVCo: the 29 characters that name a cardholder's account across its cards)
is tokenised alike, ``HMAC(key, "par:" + reference)``, before anything else reads the row,
so that neither the store nor a quarantined row keeps the reference.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import polars as pl

from posaudit.ingest.mapping import IngestError
from posaudit.pins import PinDigester

# Column names that say a column holds PINs: PIN, 密码 (password), 口令 (passcode).
_PIN_NAME: Final = re.compile(r"(?i)(?:\bpin|pin\b|pin_|_pin|密码|口令)")
_PIN_VALUE: Final = r"^\d{6}$"
# A card number: 13 to 19 digits standing alone (ISO/IEC 7812), not part of a longer run of
# letters and digits such as a hex digest, which holds long digit runs by chance.
_WORD: Final = r"[0-9A-Za-z]+"
_CARD: Final = r"^[0-9]{13,19}$"
# An account reference token as posaudit writes it (a hex HMAC-SHA256, e.g. in a store's
# export): kept as it is, never hashed again. A raw PAR is 29 letters and digits.
_TOKEN: Final = r"^[0-9a-f]{64}$"
CARD_PREFIX: Final = "card:"
# A Payment Account Reference is kept as the keyed hash of this prefix and the reference, as
# a card number is kept as that of CARD_PREFIX and the number.
ACCOUNT_REF_PREFIX: Final = "par:"


def plaintext_pin_column(frame: pl.DataFrame, columns: Iterable[str]) -> str | None:
    """The first column of ``columns`` whose name says PIN and that holds a 6-digit value,
    or a ``pin_digest`` column holding one; None when there is none. The value is never
    returned: only the column's name leaves this function."""
    for name in columns:
        if not (_PIN_NAME.search(name) or name == "pin_digest"):
            continue
        holds = frame.select(pl.col(name).str.strip_chars().str.contains(_PIN_VALUE).any()).item()
        if holds:
            return name
    return None


def refuse_plaintext_pins(frame: pl.DataFrame, columns: Iterable[str], *, file: str) -> None:
    """:class:`IngestError` naming the file and the column when a column holds PINs in clear."""
    column = plaintext_pin_column(frame, columns)
    if column is not None:
        msg = (
            f"{file}: column {column!r} holds plaintext PINs (6 digits): the file is refused "
            "whole; export PIN digests under the deployment key instead"
        )
        raise IngestError(msg)


def luhn_valid(number: str) -> bool:
    """Whether a string of digits passes the Luhn check (ISO/IEC 7812-1 annex B)."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def mask_card(number: str) -> str:
    """The first six and last four digits, the rest starred (PCI DSS 3.4's masking)."""
    return f"{number[:6]}{'*' * (len(number) - 10)}{number[-4:]}"


@dataclass(frozen=True)
class CardNumbers:
    """The source frame twice over: with every full card number replaced by its token (what
    is mapped and loaded) and masked (what quarantine keeps), and how many arrived."""

    tokenised: pl.DataFrame
    masked: pl.DataFrame
    in_clear: int


def card_numbers(frame: pl.DataFrame, columns: Iterable[str], digester: PinDigester) -> CardNumbers:
    """Find the full card numbers in ``columns`` of ``frame`` and tokenise and mask them."""
    # most columns (ids, times, amounts) hold no run of 13 digits: only the others are searched
    columns = list(columns)
    if columns:
        # a column whose cells are all shorter than a card number is not searched
        longest = frame.select(pl.col(c).str.len_bytes().max() for c in columns).row(0)
        columns = [c for c, n in zip(columns, longest, strict=True) if (n or 0) >= 13]
    if columns:
        holds = frame.select(pl.col(c).str.contains(r"[0-9]{13}").any() for c in columns).row(0)
        columns = [c for c, found in zip(columns, holds, strict=True) if found]
    candidates = (
        frame.select(
            pl.concat_list(pl.col(c).str.extract_all(_WORD) for c in columns)
            .explode()
            .drop_nulls()
            .alias("number")
        ).filter(pl.col("number").str.contains(_CARD))
        if columns
        else pl.DataFrame({"number": []}, schema={"number": pl.String})
    )
    counted = candidates.group_by("number").len()
    numbers = [n for n in counted["number"].to_list() if luhn_valid(n)]
    if not numbers:
        return CardNumbers(frame, frame, 0)
    in_clear = int(counted.filter(pl.col("number").is_in(numbers))["len"].sum())
    tokens = digester.digests(pl.Series([CARD_PREFIX + n for n in numbers])).to_list()
    token_of = dict(zip(numbers, tokens, strict=True))
    mask_of = {n: mask_card(n) for n in numbers}

    def replaced(lookup: dict[str, str]) -> pl.DataFrame:
        old, new = list(lookup), list(lookup.values())
        return frame.with_columns(
            # a cell that is the number becomes its token; a number inside text, replaced in it
            pl.col(c).str.replace_many(old, new)
            for c in columns
        )

    return CardNumbers(replaced(token_of), replaced(mask_of), in_clear)


def account_ref_tokens(references: pl.Series, digester: PinDigester) -> pl.Series:
    """The token of each account reference (null stays null), through the deployment's
    digester: ``HMAC(key, "par:" + reference)``. Each distinct reference is digested once."""
    references = references.cast(pl.String)
    distinct = references.drop_nulls().unique()
    if distinct.is_empty():
        return pl.Series("account_ref", [None] * references.len(), dtype=pl.String)
    tokens = digester.digests(ACCOUNT_REF_PREFIX + distinct)
    return references.replace_strict(distinct, tokens, default=None, return_dtype=pl.String).alias(
        "account_ref"
    )


def account_references(
    frame: pl.DataFrame, columns: Iterable[str], digester: PinDigester
) -> pl.DataFrame:
    """``frame`` with each of ``columns``, source columns of account references (PAR), as
    their tokens: each value trimmed, an empty cell null, a value already a token kept,
    every other value ``HMAC(key, "par:" + value)``.

    >>> from posaudit.pins import LocalPinKey
    >>> key = LocalPinKey(b"k" * 32)
    >>> frame = pl.DataFrame({"par": [" V0010013816180398169200863191 ", "", None]})
    >>> tokens = account_references(frame, ["par"], key).get_column("par")
    >>> tokens[0] == account_ref_tokens(pl.Series(["V0010013816180398169200863191"]), key)[0]
    True
    >>> tokens[1:].to_list()
    [None, None]
    """
    replaced = []
    for column in columns:
        values = frame.get_column(column).cast(pl.String).str.strip_chars()
        values = values.replace("", None)
        is_token = values.str.contains(_TOKEN).fill_null(False)
        tokens = account_ref_tokens(
            values.zip_with(~is_token, pl.Series([None], dtype=pl.String)), digester
        )
        replaced.append(values.zip_with(is_token, tokens).alias(column))
    return frame.with_columns(replaced) if replaced else frame
