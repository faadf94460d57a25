"""Operator PINs as the audit sees them: keyed digests, and the weakness classes of candidates.

A PIN never leaves this module in plaintext except as the argument a caller passed in. The
store holds ``HMAC-SHA256(key, pin)`` only; the audit finds weak PINs the way a payment HSM's
PIN exclusion list does, by digesting every weak candidate under the same key and comparing
digests. The same classifier answers ``posaudit pins check``.

Whatever posaudit asks of the key goes through one narrow interface, :class:`PinDigester`: a
public fingerprint, and the digests of a batch of values. :class:`LocalPinKey`, a key read
from ``$POSAUDIT_PIN_KEY``, is one implementation; a deployment that keeps its key in another
process or a key service names its own with ``$POSAUDIT_PIN_DIGESTER``
(:func:`pin_digester`). No code outside this module sees the key's bytes: the store's bulk
digest (:mod:`posaudit.store.digests`) is handed only the padded key blocks of RFC 2104.

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
import importlib
import itertools
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from importlib.resources import files
from typing import Final, Literal, Protocol, runtime_checkable

import numpy as np
import polars as pl

from posaudit.config import ConfigError
from posaudit.store.digests import hmac_sha256_digests

PIN_KEY_ENV: Final = "POSAUDIT_PIN_KEY"
# "package.module:factory": a callable returning the deployment's own PinDigester, for a key
# kept outside the audit's environment (another process, a key service).
PIN_DIGESTER_ENV: Final = "POSAUDIT_PIN_DIGESTER"
# Simulated worlds are digested under this published key so that anyone can reproduce a demo
# store; a real deployment sets POSAUDIT_PIN_KEY to the key its terminal management system uses.
DEMO_PIN_KEY: Final = "posaudit-demo-key/simulated-data-only"
# A key is the whole protection of the digests (a 6-digit PIN has 10^6 values to try), so it
# must be a real secret: 256 bits, as for an HMAC-SHA256 key (NIST SP 800-107, 5.3.4).
MIN_PIN_KEY_BYTES: Final = 32
_SHA256_BLOCK: Final = 64

WeaknessClass = Literal[
    "repeated_digit",
    "ascending_run",
    "descending_run",
    "repeated_pair",
    "repeated_triple",
    "tripled_digits",
    "mirrored",
    "doubled_digits",
    "near_run",
    "counting",
    "keypad_shape",
    "famous_number",
    "lucky_number",
    "date",
    "common_pin",
    "operator_number",
]
# Order is precedence: a PIN matching several classes is reported under the first, its simplest
# explanation. Structure of the digits themselves comes first (111222 is two triples, not the
# date 11-12-22), then shapes on the keypad, then meanings (famous and lucky numbers, dates),
# then the blocklist of leaked PINs, and last the operator's own number.
WEAKNESS_CLASSES: Final[tuple[str, ...]] = (
    "repeated_digit",
    "ascending_run",
    "descending_run",
    "repeated_pair",
    "repeated_triple",
    "tripled_digits",
    "mirrored",
    "doubled_digits",
    "near_run",
    "counting",
    "keypad_shape",
    "famous_number",
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
    "tripled_digits": "two triples",
    "mirrored": "mirrored halves",
    "doubled_digits": "doubled digits",
    "near_run": "near-run",
    "counting": "counting sequence",
    "keypad_shape": "keypad shape",
    "famous_number": "famous number",
    "lucky_number": "lucky number",
    "date": "date",
    "common_pin": "common PIN",
    "operator_number": "operator number inside the PIN",
}
NO_CLASS: Final = "-"

# The 3x4 keypad of phones and POS terminals, row by row (no key left and right of the 0),
# and each key's place on it as (row, column).
_KEYPAD_ROWS: Final = ("123", "456", "789", " 0 ")
KEYPAD: Final[dict[int, tuple[int, int]]] = {
    int(key): (row, column)
    for row, keys in enumerate(_KEYPAD_ROWS)
    for column, key in enumerate(keys)
    if key != " "
}
_KEY_AT: Final = {place: key for key, place in KEYPAD.items()}
# Straight lines of three keys: rows, columns (the middle one twice, 2-5-8 and 5-8-0), diagonals.
KEYPAD_LINES: Final = ("123", "456", "789", "147", "258", "580", "369", "159", "357")
# Numbers everyone knows: pi, e, the golden ratio, square roots of 2 and 3, Fibonacci.
FAMOUS_NUMBERS: Final[frozenset[str]] = frozenset(
    {"314159", "271828", "161803", "141421", "173205", "112358", "011235"}
)
# Emergency and service numbers (China 110 police, 119 fire, 120 ambulance, 122 traffic; 112,
# 911, 999 elsewhere): two of them side by side make a PIN nobody forgets.
SERVICE_NUMBERS: Final = (110, 112, 119, 120, 122, 911, 999)
# Chinese number-speak: 520/521 "I love you", 1314 "for a lifetime", 530 "I miss you",
# 584520 "I swear I love you" (Wang et al., ASIACCS 2017, find 520520 and 520131 in the top ten).
LOVE_HALVES: Final = (520, 521, 530)
LOVE_PINS: Final[frozenset[str]] = frozenset({"584520", "584521"})
_LUCKY_DIGITS: Final = (6, 8, 9)
# Steps people count by (in ones, twos, fives, tens, quarters), up or down.
COUNTING_STEPS: Final = (1, 2, 3, 4, 5, 10, 20, 25, 50)
# Plausible years: births of living operators and their families (the oldest born about 1940)
# up to events of the next few years (2029); two-digit years are 40-99 and 00-29.
DATE_YEARS: Final = range(1940, 2030)
# The blocklist of leaked 6-digit PINs (package data), one a line, its source in the header;
# it classes only the PINs that no rule explains.
COMMON_PINS_FILE: Final = "common_pins.txt"


class PinKeyError(ConfigError):
    """A PIN key that must not be used; the message is one line for the user."""


class DemoPinKeyWarning(UserWarning):
    """The published demo key is in use: fit for simulated worlds only."""


@runtime_checkable
class PinDigester(Protocol):
    """All posaudit asks of the PIN key: its public fingerprint and keyed digests.

    ``digests(values)`` is the hex HMAC-SHA256 under the key of each value's UTF-8 bytes,
    in order, as a String Series named ``pin_digest``; ``fingerprint`` is
    :func:`key_fingerprint` of the key, kept in each store so a store and a key can be
    matched. An implementation that forwards to a key service must pickle (the Spark engine
    ships it to its executors) and must give exactly these digests: the store's digests, its
    sealed exclusion list and the report's pseudonyms are all made through it.
    """

    @property
    def fingerprint(self) -> str: ...

    def digests(self, values: pl.Series) -> pl.Series: ...


class LocalPinKey:
    """The PIN key held in this process: the digester :func:`pin_digester` makes from
    ``$POSAUDIT_PIN_KEY``.

    Its repr shows the fingerprint only. It pickles with the key, for the Spark executors;
    nothing else ships or writes it.
    """

    __slots__ = ("_key", "fingerprint")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self.fingerprint = key_fingerprint(key)

    def __repr__(self) -> str:
        return f"LocalPinKey(fingerprint={self.fingerprint!r})"

    def __getstate__(self) -> tuple[bytes, str]:
        return self._key, self.fingerprint

    def __setstate__(self, state: tuple[bytes, str]) -> None:
        self._key, self.fingerprint = state

    def digests(self, values: pl.Series) -> pl.Series:
        return pin_digests(values, key=self._key)


def pin_digester() -> PinDigester:
    """The deployment's PIN digester: ``$POSAUDIT_PIN_DIGESTER``'s, else the local key.

    ``$POSAUDIT_PIN_DIGESTER`` names a callable as ``package.module:factory``; called with
    no argument it returns the deployment's :class:`PinDigester` (one that asks a key
    service, say). Set it and ``$POSAUDIT_PIN_KEY`` both and neither is used: a
    :class:`PinKeyError` says so. Otherwise the key comes from ``$POSAUDIT_PIN_KEY``
    (at least :data:`MIN_PIN_KEY_BYTES`; the demo key with a
    :class:`DemoPinKeyWarning` when unset) as a :class:`LocalPinKey`.
    """
    spec = os.environ.get(PIN_DIGESTER_ENV)
    if spec is None:
        return LocalPinKey(_environment_pin_key())
    if PIN_KEY_ENV in os.environ:
        msg = (
            f"${PIN_DIGESTER_ENV} and ${PIN_KEY_ENV} are both set: a deployment digests PINs "
            "with its own digester or with a local key, not both"
        )
        raise PinKeyError(msg)
    return _named_digester(spec)


def _named_digester(spec: str) -> PinDigester:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        msg = f"${PIN_DIGESTER_ENV} is {spec!r}: name a factory as package.module:factory"
        raise PinKeyError(msg)
    try:
        factory: Callable[[], object] = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        msg = f"${PIN_DIGESTER_ENV} names {spec!r}, which cannot be imported: {exc}"
        raise PinKeyError(msg) from None
    digester = factory()
    if not isinstance(digester, PinDigester):
        msg = (
            f"${PIN_DIGESTER_ENV} names {spec!r}, which made a {type(digester).__name__}: "
            "a PIN digester has a fingerprint and digests(values)"
        )
        raise PinKeyError(msg)
    return digester


def _environment_pin_key() -> bytes:
    """The local PIN key: ``$POSAUDIT_PIN_KEY``, else the published demo key.

    A key shorter than :data:`MIN_PIN_KEY_BYTES` (an empty one included) is refused with
    :class:`PinKeyError`: the key is the whole protection of the PIN digests, since every
    6-digit PIN's digest can be computed in seconds by whoever holds it. With the variable
    unset, the published demo key is used with a :class:`DemoPinKeyWarning`: anyone can
    compute digests under it, so it fits simulated worlds only. Only :class:`LocalPinKey`
    holds what this returns; everything else asks :func:`pin_digester`.
    """
    value = os.environ.get(PIN_KEY_ENV)
    if value is None:
        warnings.warn(
            f"${PIN_KEY_ENV} is not set: using the published demo PIN key, fit for simulated "
            "worlds only",
            DemoPinKeyWarning,
            stacklevel=3,
        )
        return DEMO_PIN_KEY.encode()
    key = value.encode()
    if len(key) < MIN_PIN_KEY_BYTES:
        what = "empty" if not key.strip() else f"{len(key)} bytes"
        msg = (
            f"${PIN_KEY_ENV} is {what}: a PIN key must be at least {MIN_PIN_KEY_BYTES} bytes "
            "(the key your terminal management system digests PINs with)"
        )
        raise PinKeyError(msg)
    return key


def is_demo_key(key: bytes) -> bool:
    """Whether ``key`` is the published demo key (simulated worlds only)."""
    return hmac.compare_digest(key, DEMO_PIN_KEY.encode())


def pin_digest(pin: str, *, key: bytes) -> str:
    """Hex HMAC-SHA256 of a PIN under ``key``, the only form in which a PIN is ever kept."""
    return hmac.digest(key, pin.encode(), "sha256").hex()


def pin_digests(pins: pl.Series, *, key: bytes) -> pl.Series:
    """:func:`pin_digest` of many PINs at once, computed by DuckDB off the interpreter's lock.

    HMAC-SHA256 spelled out over DuckDB's ``sha256``: ``H((K ^ opad) || H((K ^ ipad) || m))``
    with the key padded to SHA-256's 64-byte block (RFC 2104). The padding is done here; the
    store's :func:`~posaudit.store.digests.hmac_sha256_digests` runs the query in a private
    in-memory database, so neither the key nor a PIN reaches a store or a file.
    """
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    block = key.ljust(_SHA256_BLOCK, b"\0")
    inner, outer = bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)
    digests = hmac_sha256_digests(pins, inner_block=inner, outer_block=outer)
    return digests.alias("pin_digest")


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


def _pins(strings: Iterable[str]) -> list[int]:
    return [int(s) for s in strings]


def _runs(step: int) -> list[str]:
    """The 10 six-digit runs that climb by ``step`` (mod 10), one from each first digit."""
    return ["".join(str((first + i * step) % 10) for i in range(6)) for first in range(10)]


def _one_digit_off(pins: Iterable[str]) -> set[str]:
    """Every PIN that differs from one of ``pins`` in exactly one position."""
    return {
        pin[:i] + digit + pin[i + 1 :]
        for pin in pins
        for i in range(6)
        for digit in "0123456789"
        if digit != pin[i]
    }


def _near_run_pins() -> set[str]:
    """Runs with one digit changed (123457, 923456), and runs by 2 (135791) and theirs (135790)."""
    exact = {*_runs(1), *_runs(-1)}
    by_two = {*_runs(2), *_runs(-2)}
    return (_one_digit_off(exact) | by_two | _one_digit_off(by_two)) - exact


def _counting_pins() -> set[str]:
    """Numbers counted up or down by a step people count by, written one after another.

    Three terms or more, written plainly (2 4 6 8 10 -> 246810, 8 9 10 11 -> 891011) or
    padded to two digits (01 02 03 -> 010203, 10 09 08 -> 100908); and a round number then its
    double in three digits each (100200, 050100).
    """
    out: set[str] = set()
    for padded in (False, True):
        for start in range(100):
            for step in (*COUNTING_STEPS, *(-s for s in COUNTING_STEPS)):
                text, term, terms = "", start, 0
                while len(text) < 6 and term >= 0 and not (padded and term > 99):
                    text += f"{term:02d}" if padded else str(term)
                    term, terms = term + step, terms + 1
                if len(text) == 6 and terms >= 3:
                    out.add(text)
    out |= {f"{a:03d}{2 * a:03d}" for a in range(10, 500, 10)}
    return out


def _keypad_neighbours(a: int, b: int) -> bool:
    (row_a, col_a), (row_b, col_b) = KEYPAD[a], KEYPAD[b]
    return max(abs(row_a - row_b), abs(col_a - col_b)) == 1


def _keypad_shifted(key: int, row_shift: int, col_shift: int) -> int | None:
    row, col = KEYPAD[key]
    return _KEY_AT.get((row + row_shift, col + col_shift))


def _keypad_shape_pins() -> set[str]:
    """Patterns the finger traces on the keypad.

    - two straight lines of three keys, each either way (147369, 123789, 159357, 456852);
    - six different keys, each next to the one before, sideways or diagonally (142536, 124578,
      123654, 147852): the finger slides and never lifts;
    - one shape typed again shifted on the keypad: three keys then the same three moved
      (147258, 963852, 258369), or three pairs each moved by the same step (134679, 172839).
    """
    lines = [s for line in KEYPAD_LINES for s in (line, line[::-1])]
    out = {a + b for a in lines for b in lines}
    paths = [[key] for key in KEYPAD]
    for _ in range(5):
        paths = [
            [*path, key]
            for path in paths
            for key in KEYPAD
            if key not in path and _keypad_neighbours(path[-1], key)
        ]
    out |= {"".join(map(str, path)) for path in paths}
    shifts = [(r, c) for r in range(-3, 4) for c in range(-2, 3) if (r, c) != (0, 0)]
    for r, c in shifts:
        for triple in itertools.product(KEYPAD, repeat=3):
            moved = [_keypad_shifted(key, r, c) for key in triple]
            if None not in moved:
                out.add("".join(map(str, [*triple, *moved])))
        for pair in itertools.product(KEYPAD, repeat=2):
            keys: list[int | None] = [*pair]
            keys += [_keypad_shifted(key, r, c) for key in pair]
            keys += [_keypad_shifted(key, 2 * r, 2 * c) for key in pair]
            if None not in keys:
                out.add("".join(map(str, keys)))
    return out


@lru_cache(maxsize=1)
def common_pins() -> frozenset[str]:
    """The blocklist: leaked 6-digit PINs, read from the package's ``common_pins.txt``."""
    text = files("posaudit").joinpath(COMMON_PINS_FILE).read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


# The common defaults a terminal ships with or an installer types, by operator number and
# terminal family (None: every family), as docs/domain.md lists them: clerk 01 on 0000, and
# on smart terminals, which take 8 digits, administrator 99 on 12345678. Public knowledge,
# like the acquirer's own defaults; the audit compares only their digests.
COMMON_DEFAULT_PINS: Final[tuple[tuple[str, str | None, str], ...]] = (
    ("01", None, "0000"),
    ("99", "smart", "12345678"),
)


@lru_cache(maxsize=1)
def _class_codes() -> np.ndarray:
    """Weakness class code of every 6-digit PIN (0 = none, i = WEAKNESS_CLASSES[i - 1])."""
    values = np.arange(1_000_000, dtype=np.int32)
    d = np.indices((10,) * 6, dtype=np.int8).reshape(6, -1)  # the digits of each value, in order
    steps = np.diff(d, axis=0) % 10
    halves_high, halves_low = values // 1000, values % 1000
    masks: dict[str, np.ndarray] = {
        "repeated_digit": (d == d[0]).all(axis=0),
        "ascending_run": (steps == 1).all(axis=0),
        "descending_run": (steps == 9).all(axis=0),
        "repeated_pair": (d[0] == d[2]) & (d[2] == d[4]) & (d[1] == d[3]) & (d[3] == d[5]),
        "repeated_triple": halves_high == halves_low,
        "tripled_digits": (d[0] == d[1]) & (d[1] == d[2]) & (d[3] == d[4]) & (d[4] == d[5]),
        "mirrored": (d[0] == d[5]) & (d[1] == d[4]) & (d[2] == d[3]),
        "doubled_digits": (d[0] == d[1]) & (d[2] == d[3]) & (d[4] == d[5]),
        "near_run": _in(values, _pins(_near_run_pins()), 1_000_000),
        "counting": _in(values, _pins(_counting_pins()), 1_000_000),
        "keypad_shape": _in(values, _pins(_keypad_shape_pins()), 1_000_000),
        "famous_number": _in(values, _pins(FAMOUS_NUMBERS), 1_000_000)
        | _in(halves_high, SERVICE_NUMBERS, 1000) & _in(halves_low, SERVICE_NUMBERS, 1000),
    }
    # "1314" anywhere in the six digits: at the front, in the middle or at the end
    has_1314 = (
        (values // 100 == 1314) | ((values // 10) % 10_000 == 1314) | (values % 10_000 == 1314)
    )
    masks["lucky_number"] = (
        _in(d, _LUCKY_DIGITS, 10).all(axis=0)
        | has_1314
        | _in(halves_high, LOVE_HALVES, 1000)
        | _in(halves_low, LOVE_HALVES, 1000)
        | _in(values, _pins(LOVE_PINS), 1_000_000)
    )
    # Dates in the orders people write them, with plausible years only (DATE_YEARS)
    month_day = _valid_month_day(*np.divmod(np.arange(10_000), 100))  # MMDD as one number
    two_digit_years = _in(np.arange(100), [y % 100 for y in DATE_YEARS], 100)
    first, middle, last = values // 10_000, (values // 100) % 100, values % 100
    year_month = _in(values // 100, DATE_YEARS, 10_000) & (last >= 1) & (last <= 12)
    month_year = (first >= 1) & (first <= 12) & _in(values % 10_000, DATE_YEARS, 10_000)
    masks["date"] = (
        two_digit_years[first] & month_day[values % 10_000]  # YYMMDD
        | two_digit_years[last] & month_day[values // 100]  # MMDDYY
        | two_digit_years[last] & month_day[middle * 100 + first]  # DDMMYY
        | year_month  # YYYYMM
        | month_year  # MMYYYY
    )
    masks["common_pin"] = _in(values, _pins(common_pins()), 1_000_000)
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


class _ByFingerprint:
    """A digester as a cache key: equal to another of the same key, whatever its kind."""

    __slots__ = ("digester",)

    def __init__(self, digester: PinDigester) -> None:
        self.digester = digester

    def __hash__(self) -> int:
        return hash(self.digester.fingerprint)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _ByFingerprint)
            and other.digester.fingerprint == self.digester.fingerprint
        )


@lru_cache(maxsize=4)
def _exclusion_list_cached(key: _ByFingerprint, operator_nos: tuple[str, ...]) -> pl.DataFrame:
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
    digests = key.digester.digests(candidates.get_column("pin")).alias("pin_digest")
    return candidates.select(digests, "weakness_class", "operator_no")


def exclusion_list(*, digester: PinDigester, operator_nos: Sequence[str] = ()) -> pl.DataFrame:
    """Digests of every weak candidate PIN by ``digester``: the HSM-style PIN exclusion list.

    Columns: ``pin_digest``, ``weakness_class``, ``operator_no`` (set for the classes that
    depend on the operator number, null otherwise). Holds no PIN, and each digest once: a
    PIN of a structural class is listed under that class only. ``operator_nos`` usually come
    from the store; a value that is not 2 digits builds no 6-digit PIN and is skipped.
    """
    numbers = {no for no in operator_nos if _is_operator_number(no)}
    return _exclusion_list_cached(_ByFingerprint(digester), tuple(sorted(numbers)))
