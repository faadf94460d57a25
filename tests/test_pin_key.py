"""The PIN key: refused when it is no real secret, and the demo key never used without a word."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from posaudit.pins import (
    DEMO_PIN_KEY,
    PIN_KEY_ENV,
    DemoPinKeyWarning,
    PinKeyError,
    key_fingerprint,
    pin_digester,
)

POSAUDIT = [sys.executable, "-m", "posaudit"]
WARNING = (
    "posaudit: warning: $POSAUDIT_PIN_KEY is not set: using the published demo PIN key, fit "
    "for simulated worlds only\n"
)


def posaudit(*args: str, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != PIN_KEY_ENV}
    if key is not None:
        env[PIN_KEY_ENV] = key
    return subprocess.run([*POSAUDIT, *args], capture_output=True, text=True, env=env, check=False)


@pytest.mark.parametrize(
    ("key", "what"), [("", "empty"), ("   ", "empty"), ("s3cret-but-short", "16 bytes")]
)
def test_a_key_that_is_no_real_secret_is_refused(tmp_path: Path, key: str, what: str) -> None:
    store = tmp_path / "w.duckdb"
    result = posaudit("simulate", "--db", str(store), "--merchants", "2", "--days", "1", key=key)
    assert result.returncode == 2
    assert result.stderr == (
        f"posaudit: error: $POSAUDIT_PIN_KEY is {what}: a PIN key must be at least 32 bytes "
        "(the key your terminal management system digests PINs with)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_run_under_a_short_key_is_bad_input(sample_store: Path) -> None:
    result = posaudit("run", "--db", str(sample_store), "--json", key="x" * 31)
    assert result.returncode == 2
    assert result.stderr.startswith("posaudit: error: $POSAUDIT_PIN_KEY is 31 bytes")
    assert '"status": "bad_input"' in result.stdout.splitlines()[-1]


def test_the_demo_key_is_used_with_a_warning_line(tmp_path: Path) -> None:
    store = tmp_path / "w.duckdb"
    result = posaudit("simulate", "--db", str(store), "--merchants", "2", "--days", "1", key=None)
    assert result.returncode == 0, result.stderr
    assert result.stderr == WARNING  # once, however often the key is read


def test_a_real_key_is_used_without_a_word(tmp_path: Path) -> None:
    store = tmp_path / "w.duckdb"
    key = "k" * 32
    result = posaudit("simulate", "--db", str(store), "--merchants", "2", "--days", "1", key=key)
    assert (result.returncode, result.stderr) == (0, "")
    # the store remembers its key: the demo key may not continue it
    again = posaudit("simulate", "--db", str(store), "--append", "--days", "1", key=None)
    assert again.returncode == 2
    assert again.stderr.startswith(WARNING)
    assert "was written with another PIN key" in again.stderr


def test_pin_key_in_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PIN_KEY_ENV)
    with pytest.warns(DemoPinKeyWarning, match="published demo PIN key"):
        assert pin_digester().fingerprint == key_fingerprint(DEMO_PIN_KEY.encode())
    monkeypatch.setenv(PIN_KEY_ENV, "")
    with pytest.raises(PinKeyError, match="is empty"):
        pin_digester()
    monkeypatch.setenv(PIN_KEY_ENV, "é" * 16)  # 32 bytes in UTF-8
    assert pin_digester().fingerprint == key_fingerprint(("é" * 16).encode())
