"""Tests of posaudit.pins: keyed PIN digests, the weakness classifier and the exclusion list."""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
from importlib import resources
from pathlib import Path

import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from posaudit.pins import (
    DEMO_PIN_KEY,
    NO_CLASS,
    PIN_KEY_ENV,
    WEAKNESS_CLASSES,
    WEAKNESS_LABELS,
    DemoPinKeyWarning,
    LocalPinKey,
    classify_pins,
    common_pins,
    exclusion_list,
    key_fingerprint,
    pin_digest,
    pin_digester,
    pin_digests,
    weak_pin_values,
    weak_share_of_random_pins,
)

KEY = b"posaudit-test-key/pins"
OTHER_KEY = b"posaudit-test-key/another-deployment"
HEX_64 = re.compile(r"[0-9a-f]{64}")
SIX_DIGITS = re.compile(r"\d{6}")

# The most common human-chosen 6-digit PINs (docs/domain.md and docs/scenarios.md).
TOP_PINS = (
    "123456",
    "111111",
    "123123",
    "000000",
    "123321",
    "666666",
    "888888",
    "654321",
    "112233",
    "520520",
)
# One PIN of each class, and of operator_number for operator '07'.
CLASS_EXAMPLES = {
    "repeated_digit": "777777",
    "ascending_run": "345678",
    "descending_run": "876543",
    "repeated_pair": "474747",
    "repeated_triple": "739739",
    "tripled_digits": "555666",
    "mirrored": "472274",
    "doubled_digits": "447733",
    "near_run": "123457",
    "counting": "246810",
    "keypad_shape": "258963",
    "famous_number": "314159",
    "lucky_number": "698696",
    "date": "880417",
    "common_pin": "135246",
    "operator_number": "070000",
}
STRONG_PINS = ("739204", "480371", "205739")


# --- classifier ---------------------------------------------------------------------------


def test_the_most_common_pins_are_all_flagged() -> None:
    classes = classify_pins(TOP_PINS)
    assert NO_CLASS not in classes, dict(zip(TOP_PINS, classes, strict=True))


def test_the_head_pins_fall_in_the_classes_people_would_name() -> None:
    assert classify_pins(["123456", "111111", "654321", "123123", "123321", "112233"]) == [
        "ascending_run",
        "repeated_digit",
        "descending_run",
        "repeated_triple",
        "mirrored",
        "doubled_digits",
    ]


def test_every_class_has_an_example_and_a_label() -> None:
    assert set(CLASS_EXAMPLES) == set(WEAKNESS_CLASSES)
    assert set(WEAKNESS_LABELS) == set(WEAKNESS_CLASSES)
    for weakness_class, pin in CLASS_EXAMPLES.items():
        assert classify_pins([pin], operator_no="07") == [weakness_class]


# PINs people really choose, with the class their simplest explanation gives them.
CHOSEN_PINS = {
    # year and month, both ways round
    "197001": "date",
    "198807": "date",
    "199912": "date",
    "200001": "date",
    "071988": "date",
    # two triples; 111222 reads as 11-12-22 too, but the repeated block explains it first
    "111222": "tripled_digits",
    "555666": "tripled_digits",
    "222333": "tripled_digits",
    "111000": "tripled_digits",
    # shapes on the keypad: pairs moved down a row, sliding paths, columns and lines
    "134679": "keypad_shape",
    "142536": "keypad_shape",
    "124578": "keypad_shape",
    "147258": "keypad_shape",
    "963852": "keypad_shape",
    "456852": "keypad_shape",
    "123654": "keypad_shape",
    "258085": "keypad_shape",
    # runs with one digit changed, and runs by two
    "123457": "near_run",
    "923456": "near_run",
    "135790": "near_run",
    "135791": "near_run",
    # counting in ones, twos or tens
    "102030": "counting",
    "010203": "counting",
    "121314": "counting",
    "891011": "counting",
    "100200": "counting",
    "314159": "famous_number",
    "112358": "famous_number",
    "110120": "famous_number",
    "584520": "lucky_number",
    "520131": "lucky_number",
    "201314": "lucky_number",
    "315475": "common_pin",
}


@pytest.mark.parametrize(("pin", "expected"), CHOSEN_PINS.items())
def test_pins_people_choose_are_flagged_under_their_simplest_class(pin: str, expected: str) -> None:
    assert classify_pins([pin]) == [expected]


@pytest.mark.parametrize(
    ("pin", "expected"),
    [
        ("194002", "date"),  # February 1940: the first plausible year
        ("202912", "date"),  # December 2029: the last
        ("193502", NO_CLASS),  # 1935: no operator or family member of theirs was born then
        ("203001", NO_CLASS),  # 2030: not yet
        ("350615", NO_CLASS),  # 35-06-15: a two-digit year of the 1930s
        ("150635", NO_CLASS),  # 15-06-35 and 06-15-35 alike
        ("150699", "date"),
        ("061599", "date"),
        ("990615", "date"),
    ],
)
def test_dates_need_a_plausible_year(pin: str, expected: str) -> None:
    assert classify_pins([pin]) == [expected]


def test_precedence_is_the_documented_order() -> None:
    # each pair: a PIN in two classes, reported under the one listed first in WEAKNESS_CLASSES
    both = {
        "111222": ("tripled_digits", "date"),
        "123321": ("mirrored", "keypad_shape"),
        "147741": ("mirrored", "keypad_shape"),
        "520520": ("repeated_triple", "lucky_number"),
        "121314": ("counting", "date"),
        "110119": ("famous_number", "date"),
        "123457": ("near_run", "date"),
    }
    for pin, (first, second) in both.items():
        assert WEAKNESS_CLASSES.index(first) < WEAKNESS_CLASSES.index(second)
        assert classify_pins([pin]) == [first], pin


def test_the_blocklist_is_package_data_with_its_source() -> None:
    text = (resources.files("posaudit") / "common_pins.txt").read_text("utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("danielmiessler/SecLists" in line for line in header)
    pins = common_pins()
    assert len(pins) > 10_000
    assert all(SIX_DIGITS.fullmatch(pin) for pin in pins)
    # the blocklist only decides where no rule does: most of it is explained by the rules
    classes = classify_pins(sorted(pins))
    assert classes.count("common_pin") < len(pins) / 10
    assert NO_CLASS not in classes


def test_a_changed_blocklist_changes_the_code_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a run keeps the exclusion list under the code's digest: a new blocklist must not reuse it
    import posaudit

    package = tmp_path / "posaudit"
    shutil.copytree(Path(posaudit.__file__).parent, package, ignore=shutil.ignore_patterns("*.pyc"))
    monkeypatch.setattr(posaudit, "__file__", str(package / "__init__.py"))
    before = posaudit.code_digest.__wrapped__()
    blocklist = package / "common_pins.txt"
    blocklist.write_text(blocklist.read_text("utf-8") + "739204\n", "utf-8")
    assert posaudit.code_digest.__wrapped__() != before


def test_the_most_common_pins_of_a_held_out_leak_are_flagged() -> None:
    # benchmarks/pin_classes.py measures this; the list comes from another leak than the
    # blocklist (docs/detection.md)
    path = Path(__file__).parents[1] / "benchmarks" / "heldout_pins_netease.txt"
    lines = path.read_text("utf-8").splitlines()
    top = [line for line in lines if line and not line.startswith("#")][:100]
    classes = classify_pins(top)
    assert sum(cls != NO_CLASS for cls in classes) >= 95
    assert sum(cls not in (NO_CLASS, "common_pin") for cls in classes) >= 95


def test_strong_pins_are_not_flagged() -> None:
    assert classify_pins(STRONG_PINS) == [NO_CLASS] * len(STRONG_PINS)


def test_the_flagged_share_of_all_pins_stays_small() -> None:
    # A classifier that flags most of the space would flag every operator: useless.
    classes = pl.Series(classify_pins(f"{value:06d}" for value in range(1_000_000)))
    flagged = (classes != NO_CLASS).sum()
    assert flagged / 1_000_000 <= 0.15
    # ...and it does flag something real: dates alone are over 7 % of random strings.
    assert flagged / 1_000_000 >= 0.08
    assert flagged == weak_pin_values().height
    assert weak_share_of_random_pins() == pytest.approx(flagged / 1_000_000)
    assert set(classes.unique()) == {NO_CLASS, *WEAKNESS_CLASSES[:-1]}


def test_weak_pin_values_agree_with_the_classifier() -> None:
    values = weak_pin_values()
    assert values.columns == ["pin", "weakness_class"]
    sample = values.sample(500, seed=3)
    assert classify_pins(sample.get_column("pin")) == sample.get_column("weakness_class").to_list()


@pytest.mark.parametrize(
    ("operator_no", "pins", "classes"),
    [
        (
            "07",
            ["070707", "070000", "000700"],
            ["repeated_pair", "operator_number", "operator_number"],
        ),
        (
            "42",
            ["424242", "000042", "004200"],
            ["repeated_pair", "operator_number", "operator_number"],
        ),
        # a PIN of the leaked-PIN blocklist is common_pin first, whoever holds it
        ("07", ["000007"], ["common_pin"]),
    ],
)
def test_pins_built_from_the_operator_number(
    operator_no: str, pins: list[str], classes: list[str]
) -> None:
    assert classify_pins(pins, operator_no=operator_no) == classes
    own = [pin for pin, cls in zip(pins, classes, strict=True) if cls == "operator_number"]
    assert classify_pins(own) == [NO_CLASS] * len(own)
    assert classify_pins(own, operator_no="13") == [NO_CLASS] * len(own)


@pytest.mark.parametrize(
    "bad",
    ["12345", "1234567", "12a456", "abcdef", "123 456", " 123456", "123456\n", "１２３４５６"],
)
def test_bad_input_raises_without_echoing_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match="6 digits") as caught:
        classify_pins(["123456", bad])
    assert bad not in str(caught.value)
    assert bad.strip() not in str(caught.value)


@settings(max_examples=200)
@given(st.text(alphabet="0123456789abcdef", min_size=3, max_size=20))
def test_no_bad_value_reaches_the_error_message(bad: str) -> None:
    assume(not (len(bad) == 6 and bad.isdigit()))
    with pytest.raises(ValueError) as caught:
        classify_pins([bad])
    assert bad not in str(caught.value)


@pytest.mark.parametrize("operator_no", ["7", "007", "a7", ""])
def test_operator_numbers_are_two_digits(operator_no: str) -> None:
    with pytest.raises(ValueError, match="operator number"):
        classify_pins(["123456"], operator_no=operator_no)
    # from the store, an odd number must not stop an audit run: it builds no 6-digit PIN
    listed = exclusion_list(digester=LocalPinKey(KEY), operator_nos=[operator_no, "07"])
    assert set(listed.get_column("operator_no").drop_nulls()) == {"07"}


# --- digests ------------------------------------------------------------------------------


def test_a_digest_is_64_hex_and_keyed() -> None:
    digest = pin_digest("123456", key=KEY)
    assert HEX_64.fullmatch(digest)
    assert digest == hmac.new(KEY, b"123456", hashlib.sha256).hexdigest()
    assert digest == pin_digest("123456", key=KEY)
    assert digest != pin_digest("123456", key=OTHER_KEY)
    assert digest != pin_digest("123457", key=KEY)
    # a plain hash would let anyone tabulate all 10^6 PINs
    assert digest != hashlib.sha256(b"123456").hexdigest()


@settings(max_examples=50)
@given(st.integers(0, 999_999), st.binary(min_size=1, max_size=32))
def test_other_keys_give_other_digests(value: int, key: bytes) -> None:
    assume(key != KEY)
    pin = f"{value:06d}"
    assert pin_digest(pin, key=key) != pin_digest(pin, key=KEY)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(0, 999_999), min_size=1, max_size=40),
    # keys shorter than, as long as, and longer than SHA-256's 64-byte block (then hashed)
    st.binary(min_size=1, max_size=150),
)
def test_digests_in_bulk_are_the_hmac_of_each_pin(values: list[int], key: bytes) -> None:
    pins = [f"{v:06d}" for v in values]
    bulk = pin_digests(pl.Series(pins), key=key)
    assert bulk.to_list() == [hmac.new(key, p.encode(), hashlib.sha256).hexdigest() for p in pins]
    assert bulk.name == "pin_digest"


def test_the_key_fingerprint_is_short_and_tells_keys_apart() -> None:
    fingerprint = key_fingerprint(KEY)
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint)
    assert fingerprint == key_fingerprint(KEY)
    assert fingerprint != key_fingerprint(OTHER_KEY)


def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PIN_KEY_ENV, raising=False)
    with pytest.warns(DemoPinKeyWarning):
        assert pin_digester().fingerprint == key_fingerprint(DEMO_PIN_KEY.encode())
    monkeypatch.setenv(PIN_KEY_ENV, "deployment-secret, 32 bytes long")
    assert pin_digester().fingerprint == key_fingerprint(b"deployment-secret, 32 bytes long")


# --- the exclusion list -------------------------------------------------------------------


@pytest.fixture(scope="module")
def exclusions() -> pl.DataFrame:
    return exclusion_list(digester=LocalPinKey(KEY), operator_nos=["07", "42", "00"])


def test_the_exclusion_list_holds_digests_and_classes_only(exclusions: pl.DataFrame) -> None:
    assert exclusions.schema == pl.Schema(
        {"pin_digest": pl.String, "weakness_class": pl.String, "operator_no": pl.String}
    )
    assert exclusions.get_column("pin_digest").str.contains(r"^[0-9a-f]{64}$").all()
    assert exclusions.get_column("pin_digest").is_unique().all()
    assert set(exclusions.get_column("weakness_class").unique()) == set(WEAKNESS_CLASSES)
    for column in exclusions.columns:
        values = exclusions.get_column(column).drop_nulls()
        assert not values.str.contains(r"^\d{6}$").any(), f"{column} holds PIN-like values"


def test_the_exclusion_list_covers_every_weak_pin(exclusions: pl.DataFrame) -> None:
    general = exclusions.filter(pl.col("operator_no").is_null())
    assert general.height == weak_pin_values().height
    by_digest = dict(zip(exclusions["pin_digest"], exclusions["weakness_class"], strict=True))
    for pin in TOP_PINS:
        assert by_digest[pin_digest(pin, key=KEY)] != "operator_number"
    for pin in STRONG_PINS:
        assert pin_digest(pin, key=KEY) not in by_digest


def test_operator_number_rows_are_per_number(exclusions: pl.DataFrame) -> None:
    own = exclusions.filter(pl.col("operator_no").is_not_null())
    assert set(own.get_column("weakness_class")) == {"operator_number"}
    assert set(own.get_column("operator_no")) <= {"07", "42", "00"}
    digests = dict(zip(own["pin_digest"], own["operator_no"], strict=True))
    assert digests[pin_digest("070000", key=KEY)] == "07"
    assert digests[pin_digest("000042", key=KEY)] == "42"
    # PINs of a structural class keep that class: 000000 is a repeated digit, not 00's number
    assert pin_digest("000000", key=KEY) not in digests
    assert pin_digest("070707", key=KEY) not in digests
    assert pin_digest("130000", key=KEY) not in digests


def test_the_exclusion_list_is_keyed(exclusions: pl.DataFrame) -> None:
    other = exclusion_list(digester=LocalPinKey(OTHER_KEY), operator_nos=["07"])
    shared = other.join(exclusions, on="pin_digest", how="semi")
    assert shared.height == 0
