"""Operator PINs as the audit sees them: keyed digests, and the weakness classes of candidates.

A PIN never leaves this module in plaintext except as the argument a caller passed in. The
store holds ``HMAC-SHA256(key, pin)`` only; the audit finds weak PINs the way a payment HSM's
PIN exclusion list does, by digesting every weak candidate under the same key and comparing
digests. The same classifier answers ``posaudit pins check``.

Examples
--------
>>> classify_pins(["123456", "111111", "739204"])
['ascending_run', 'repeated_digit', '-']
>>> len(pin_digest("123456", key=b"k"))
64
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final, Literal

import duckdb
import numpy as np
import polars as pl

PIN_KEY_ENV: Final = "POSAUDIT_PIN_KEY"
# Simulated worlds are digested under this published key so that anyone can reproduce a demo
# store; a real deployment sets POSAUDIT_PIN_KEY to the key its terminal management system uses.
DEMO_PIN_KEY: Final = "posaudit-demo-key/simulated-data-only"
_SHA256_BLOCK: Final = 64

WeaknessClass = Literal[
    "repeated_digit",
    "ascending_run",
    "descending_run",
    "repeated_pair",
    "repeated_triple",
    "mirrored",
    "doubled_digits",
    "keypad_shape",
    "lucky_number",
    "date",
    "common_pin",
    "operator_number",
]
# Order is priority: a PIN matching several classes is reported under the first.
WEAKNESS_CLASSES: Final[tuple[str, ...]] = (
    "repeated_digit",
    "ascending_run",
    "descending_run",
    "repeated_pair",
    "repeated_triple",
    "mirrored",
    "doubled_digits",
    "keypad_shape",
    "lucky_number",
    "date",
    "common_pin",
    "operator_number",
)
WEAKNESS_LABELS: Final[dict[str, str]] = {
    "repeated_digit": "repeated digit",
    "ascending_run": "ascending run",
    "descending_run": "descending run",
    "repeated_pair": "repeated pair",
    "repeated_triple": "repeated triple",
    "mirrored": "mirrored halves",
    "doubled_digits": "doubled digits",
    "keypad_shape": "keypad shape",
    "lucky_number": "lucky number",
    "date": "date",
    "common_pin": "common PIN",
    "operator_number": "operator number inside the PIN",
}
NO_CLASS: Final = "-"

# Lines on the 3x3 terminal keypad (1-2-3 on top): rows, columns and diagonals, both ways.
_KEYPAD_LINES: Final = (
    "123", "456", "789", "147", "258", "369", "159", "357",
)  # fmt: skip
# Frequently chosen PINs that no structural class covers (leaked-PIN studies, Chinese sets).
COMMON_PINS: Final[frozenset[str]] = frozenset(
    {
        "123654", "147369", "110110", "119119", "100200", "102030", "010203", "135790",
        "246810", "135246", "741963", "987456", "456789", "321456", "112211", "121314",
        "251314", "201314", "131420", "584520", "000123", "123000", "100000", "111222",
        "123987", "159753", "753951", "456654", "778899", "998877", "101010", "202020",
    }
)  # fmt: skip
_LUCKY_DIGITS: Final = frozenset("689")


def pin_key() -> bytes:
    """The deployment's PIN digest key: ``$POSAUDIT_PIN_KEY``, else the published demo key."""
    return os.environ.get(PIN_KEY_ENV, DEMO_PIN_KEY).encode()


def pin_digest(pin: str, *, key: bytes) -> str:
    """Hex HMAC-SHA256 of a PIN under ``key``, the only form in which a PIN is ever kept."""
    return hmac.digest(key, pin.encode(), "sha256").hex()


def pin_digests(pins: pl.Series, *, key: bytes) -> pl.Series:
    """:func:`pin_digest` of many PINs at once, computed by DuckDB off the interpreter's lock.

    HMAC-SHA256 spelled out over DuckDB's ``sha256``: ``H((K ^ opad) || H((K ^ ipad) || m))``
    with the key padded to SHA-256's 64-byte block (RFC 2104). Runs in a private in-memory
    database, so neither the key nor a PIN reaches a store or a file.
    """
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    block = key.ljust(_SHA256_BLOCK, b"\0")
    inner, outer = bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)
    frame = pl.DataFrame({"pin": pins.cast(pl.String)})  # noqa: F841 - DuckDB reads it by name
    with duckdb.connect() as con:
        digests = con.sql(
            "SELECT sha256($outer || unhex(sha256($inner || encode(pin)))) AS d FROM frame",
            params={"outer": outer, "inner": inner},
        ).pl()
    return digests.get_column("d").alias("pin_digest")


def key_fingerprint(key: bytes) -> str:
    """A short public fingerprint of the key, stored so a store and a key can be matched."""
    return hmac.new(key, b"posaudit key fingerprint", hashlib.sha256).hexdigest()[:16]


def _valid_month_day(month: np.ndarray, day: np.ndarray) -> np.ndarray:
    days_in_month = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    ok_month = (month >= 1) & (month <= 12)
    return ok_month & (day >= 1) & (day <= days_in_month[np.clip(month, 0, 12)])


def _in(values: np.ndarray, members: Iterable[int], size: int) -> np.ndarray:
    """``np.isin`` for small non-negative integers, through a lookup table of ``size``."""
    table = np.zeros(size, dtype=bool)
    table[list(members)] = True
    return table[values]


@lru_cache(maxsize=1)
def _class_codes() -> np.ndarray:
    """Weakness class code of every 6-digit PIN (0 = none, i = WEAKNESS_CLASSES[i - 1])."""
    values = np.arange(1_000_000, dtype=np.int32)
    d = np.indices((10,) * 6, dtype=np.int8).reshape(6, -1)  # the digits of each value, in order
    steps = np.diff(d, axis=0) % 10
    masks: dict[str, np.ndarray] = {
        "repeated_digit": (d == d[0]).all(axis=0),
        "ascending_run": (steps == 1).all(axis=0),
        "descending_run": (steps == 9).all(axis=0),
        "repeated_pair": (d[0] == d[2]) & (d[2] == d[4]) & (d[1] == d[3]) & (d[3] == d[5]),
        "repeated_triple": (d[0] == d[3]) & (d[1] == d[4]) & (d[2] == d[5]),
        "mirrored": (d[0] == d[5]) & (d[1] == d[4]) & (d[2] == d[3]),
        "doubled_digits": (d[0] == d[1]) & (d[2] == d[3]) & (d[4] == d[5]),
    }
    lines = [int(s) for line in _KEYPAD_LINES for s in (line, line[::-1])]
    halves_high, halves_low = values // 1000, values % 1000
    masks["keypad_shape"] = _in(halves_high, lines, 1000) & _in(halves_low, lines, 1000)
    lucky_digits = _in(d, [6, 8, 9], 10).all(axis=0)
    # "1314" anywhere in the six digits: at the front, in the middle or at the end
    has_1314 = (
        (values // 100 == 1314) | ((values // 10) % 10_000 == 1314) | (values % 10_000 == 1314)
    )
    love = _in(halves_high, [520, 521], 1000) | _in(halves_low, [520, 521], 1000)
    masks["lucky_number"] = (
        lucky_digits
        | has_1314
        | love
        | (halves_high == halves_low) & _in(halves_high, [168, 518, 668, 888, 666, 999], 1000)
    )
    # Birthdays in the three orders people write them; the two-digit year is unrestricted, as
    # in the published analyses of date-like PINs.
    p1, p2 = values // 10_000, (values // 100) % 100
    month_day = _valid_month_day(*np.divmod(np.arange(10_000), 100))  # MMDD as one number
    masks["date"] = (
        month_day[values % 10_000]  # YYMMDD
        | month_day[values // 100]  # MMDDYY
        | month_day[p2 * 100 + p1]  # DDMMYY
    )
    masks["common_pin"] = _in(values, [int(p) for p in COMMON_PINS], 1_000_000)
    codes = np.zeros(values.size, dtype=np.int8)
    for code, name in reversed(list(enumerate(WEAKNESS_CLASSES[:-1], start=1))):
        codes[masks[name]] = code
    return codes


def _is_operator_number(value: object) -> bool:
    return isinstance(value, str) and len(value) == 2 and value.isascii() and value.isdigit()


def _operator_number_pins(operator_no: str) -> set[str]:
    """PINs built from an operator number: the number repeated, or padded with zeros."""
    if not _is_operator_number(operator_no):
        msg = f"an operator number is 2 digits ('00'..'99'); got {operator_no!r}"
        raise ValueError(msg)
    return {operator_no * 3, "0000" + operator_no, operator_no + "0000", "00" + operator_no + "00"}


def classify_pins(pins: Iterable[str], *, operator_no: str | None = None) -> list[str]:
    """Weakness class of each candidate PIN, ``'-'`` where none applies.

    Parameters
    ----------
    pins
        Six-digit strings. Anything else raises ``ValueError``; its message gives the
        length but never the value, which may be someone's real PIN.
    operator_no
        When given (2 digits, else ``ValueError``), PINs built from this operator number
        are classed ``operator_number``.
    """
    codes = _class_codes()
    own = _operator_number_pins(operator_no) if operator_no is not None else set()
    out: list[str] = []
    for pin in pins:
        if len(pin) != 6 or not pin.isascii() or not pin.isdigit():
            # the value itself stays out of the message: it may be someone's real PIN
            detail = ", not all of them ASCII digits" if len(pin) == 6 else ""
            msg = f"a PIN is exactly 6 digits; got {len(pin)} characters{detail}"
            raise ValueError(msg)
        code = int(codes[int(pin)])
        if code:
            out.append(WEAKNESS_CLASSES[code - 1])
        elif pin in own:
            out.append("operator_number")
        else:
            out.append(NO_CLASS)
    return out


def weak_pin_values() -> pl.DataFrame:
    """Every 6-digit PIN in a weakness class, with its class (no operator-specific ones)."""
    codes = _class_codes()
    values = np.flatnonzero(codes)
    names = np.array(WEAKNESS_CLASSES)[codes[values] - 1]
    pins = pl.Series("pin", values).cast(pl.String).str.zfill(6)
    return pl.DataFrame([pins, pl.Series("weakness_class", names)])


def weak_share_of_random_pins() -> float:
    """Share of all 10^6 PINs that fall in a structural weakness class."""
    return float((_class_codes() > 0).mean())


@lru_cache(maxsize=4)
def _exclusion_list_cached(key: bytes, operator_nos: tuple[str, ...]) -> pl.DataFrame:
    # A PIN already in a structural class keeps that class (as in classify_pins), so no digest
    # appears twice in the list and a join on it matches a PIN once.
    codes = _class_codes()
    rows = [
        (p, "operator_number", no)
        for no in operator_nos
        for p in sorted(_operator_number_pins(no))
        if codes[int(p)] == 0
    ]
    own = pl.DataFrame(
        rows,
        schema={"pin": pl.String, "weakness_class": pl.String, "operator_no": pl.String},
        orient="row",
    )
    general = weak_pin_values().with_columns(operator_no=pl.lit(None, pl.String))
    candidates = pl.concat([general, own])
    digests = pin_digests(candidates.get_column("pin"), key=key)
    return candidates.select(digests, "weakness_class", "operator_no")


def exclusion_list(*, key: bytes, operator_nos: Sequence[str] = ()) -> pl.DataFrame:
    """Digests of every weak candidate PIN under ``key``: the HSM-style PIN exclusion list.

    Columns: ``pin_digest``, ``weakness_class``, ``operator_no`` (set for the classes that
    depend on the operator number, null otherwise). Holds no PIN, and each digest once: a
    PIN of a structural class is listed under that class only. ``operator_nos`` usually come
    from the store; a value that is not 2 digits builds no 6-digit PIN and is skipped.
    """
    numbers = {no for no in operator_nos if _is_operator_number(no)}
    return _exclusion_list_cached(key, tuple(sorted(numbers)))
