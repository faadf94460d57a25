"""The PIN digester: the one interface through which posaudit uses the PIN key.

A run, a simulation and a report work through any :class:`posaudit.pins.PinDigester`: here
one whose key lives in another process, as a key service's would, with the audit's own
environment holding no key at all (a stray read of ``$POSAUDIT_PIN_KEY`` would warn, and
warnings fail the tests).
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from posaudit import pins
from posaudit.detect.policy import load_policy
from posaudit.pins import (
    PIN_DIGESTER_ENV,
    PIN_KEY_ENV,
    LocalPinKey,
    PinDigester,
    PinKeyError,
    exclusion_list,
    key_fingerprint,
    pin_digester,
)
from posaudit.report.pseudonyms import Pseudonyms
from posaudit.run.local import run_pipeline
from posaudit.simulate.engine import simulate
from posaudit.simulate.scenario import load_scenario
from posaudit.store import Store
from tests.key_service import SERVICE_KEY, KeyInAnotherProcess

KEY = SERVICE_KEY
SOURCE = Path(__file__).parents[1] / "src" / "posaudit"
# What a run's findings say about the run itself rather than the data.
RUN_COLUMNS = ("run_id", "first_run_id", "resolved_run_id")
# Everything that reads or handles the key's bytes: only posaudit.pins may use these.
KEY_BYTES_NAMES = frozenset(
    {"pin_digest", "pin_digests", "key_fingerprint", "is_demo_key", "_environment_pin_key"}
)
# The store's bulk digest takes the key's padded blocks: only posaudit.pins may call it.
BULK_DIGEST_MODULE = "posaudit.store.digests"


@pytest.fixture(scope="module")
def key_service() -> Iterator[KeyInAnotherProcess]:
    service = KeyInAnotherProcess(KEY)
    yield service
    service.close()


def _world(path: Path, digester: PinDigester, *, append: bool = False) -> None:
    scenario = load_scenario(None, merchants=4, days=2 if append else 10)
    simulate(path, scenario, seed=5, append=append, digester=digester)


def _findings(store: Store) -> pl.DataFrame:
    return store.frame("SELECT * FROM findings ORDER BY finding_id").drop(RUN_COLUMNS)


def test_the_local_key_digests_as_hmac_sha256() -> None:
    local = LocalPinKey(KEY)
    pins = ["123456", "000000", "739204", "990101"]
    want = [hmac.new(KEY, p.encode(), hashlib.sha256).hexdigest() for p in pins]
    assert local.digests(pl.Series(pins)).to_list() == want
    fingerprint = hmac.new(KEY, b"posaudit key fingerprint", hashlib.sha256).hexdigest()[:16]
    assert local.fingerprint == fingerprint
    assert isinstance(local, PinDigester)


def test_the_local_key_shows_only_its_fingerprint_and_pickles_whole() -> None:
    local = LocalPinKey(KEY)
    assert repr(local) == f"LocalPinKey(fingerprint={key_fingerprint(KEY)!r})"
    assert KEY.decode() not in f"{local!r} {local!s}"
    assert not hasattr(local, "__dict__")
    # the Spark engine ships it to the executors, which digest with it
    shipped = pickle.loads(pickle.dumps(local))
    assert shipped.fingerprint == local.fingerprint
    pins = pl.Series(["123456", "654321"])
    assert shipped.digests(pins).to_list() == local.digests(pins).to_list()


def test_pseudonyms_are_unchanged_by_the_digester() -> None:
    """Derived through the digester, a pseudonym is what the key itself gave before."""
    derived = hmac.new(KEY, b"posaudit/report/operator-pseudonyms/v1", hashlib.sha256).digest()
    before = hmac.new(derived, b"T000007-03", hashlib.sha256).digest()
    shown = Pseudonyms.for_deployment(LocalPinKey(KEY), enabled=True).operator("T000007-03")
    assert shown == "OP-" + base64.b32encode(before).decode()[:6]
    assert "key" not in repr(Pseudonyms.for_deployment(LocalPinKey(KEY), enabled=True))


def test_the_exclusion_list_is_cached_by_fingerprint(key_service: KeyInAnotherProcess) -> None:
    local = exclusion_list(digester=LocalPinKey(KEY), operator_nos=["07"])
    before = key_service.calls
    assert exclusion_list(digester=key_service, operator_nos=["07"]) is local
    assert key_service.calls == before


def test_a_run_works_through_the_digester_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_service: KeyInAnotherProcess
) -> None:
    """Simulate, audit, continue and audit again with the key in another process: the same
    store and findings as with the key in this one."""
    local = LocalPinKey(KEY)
    digesters: dict[str, PinDigester] = {"local": local, "service": key_service}
    findings: dict[str, list[pl.DataFrame]] = {name: [] for name in digesters}
    monkeypatch.delenv(PIN_KEY_ENV)
    for append in (False, True):
        for name, digester in digesters.items():
            path = tmp_path / f"{name}.duckdb"
            _world(path, digester, append=append)
            pins._exclusion_list_cached.cache_clear()  # each builds its own exclusion list
            store = Store.open(path)
            try:
                run_pipeline(store, load_policy(), digester=digester)
                findings[name].append(_findings(store))
                assert store.meta()["pin_key_fingerprint"] == local.fingerprint
            finally:
                store.close()
    assert key_service.calls > 0
    for local_run, service_run in zip(findings["local"], findings["service"], strict=True):
        assert local_run.get_column("family").eq("pins").any()
        assert_frame_equal(local_run, service_run)
    query = "SELECT pin_digest FROM pin_events ORDER BY event_id"
    stored = {name: Store.open(tmp_path / f"{name}.duckdb", read_only=True) for name in digesters}
    try:
        assert_frame_equal(stored["local"].frame(query), stored["service"].frame(query))
    finally:
        for store in stored.values():
            store.close()


def _posaudit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    root = str(Path(__file__).parents[1])
    env = {**env, "PYTHONPATH": os.pathsep.join([root, str(SOURCE.parent)])}
    command = [sys.executable, "-m", "posaudit", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def test_a_deployment_names_its_digester_in_the_environment(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name != PIN_KEY_ENV}
    env[PIN_DIGESTER_ENV] = "tests.key_service:key_service"
    store = tmp_path / "w.duckdb"
    made = _posaudit(env, "simulate", "--db", str(store), "--merchants", "2", "--days", "1")
    assert (made.returncode, made.stderr) == (0, "")
    opened = Store.open(store, read_only=True)
    try:
        assert opened.meta()["pin_key_fingerprint"] == key_fingerprint(KEY)
    finally:
        opened.close()
    both = _posaudit({**env, PIN_KEY_ENV: "k" * 32}, "simulate", "--db", str(tmp_path / "b"))
    assert both.returncode == 2
    assert both.stderr == (
        "posaudit: error: $POSAUDIT_PIN_DIGESTER and $POSAUDIT_PIN_KEY are both set: a "
        "deployment digests PINs with its own digester or with a local key, not both\n"
    )


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("tests.key_service", "name a factory as package.module:factory"),
        ("tests.no_such_module:factory", "cannot be imported"),
        ("tests.key_service:no_such_factory", "cannot be imported"),
        ("tests.key_service:not_a_digester", "made a object: a PIN digester has a fingerprint"),
    ],
)
def test_a_digester_that_cannot_be_made_is_refused(
    monkeypatch: pytest.MonkeyPatch, spec: str, says: str
) -> None:
    monkeypatch.delenv(PIN_KEY_ENV)
    monkeypatch.setenv(PIN_DIGESTER_ENV, spec)
    with pytest.raises(PinKeyError, match=says):
        pin_digester()


def test_no_code_but_posaudit_pins_handles_the_key_bytes() -> None:
    """Every other module asks a PinDigester; none imports what digests with raw key bytes."""
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path in (SOURCE / "pins.py", SOURCE / "store" / "digests.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "posaudit.pins":
                named = {alias.name for alias in node.names}
                offenders += [f"{path.name}: {n}" for n in named & KEY_BYTES_NAMES]
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                named = {f"{node.module}.{alias.name}" for alias in node.names}
                if BULK_DIGEST_MODULE in {node.module, *named}:
                    offenders.append(f"{path.name}: {BULK_DIGEST_MODULE}")
            if isinstance(node, ast.Import) and any(
                alias.name == BULK_DIGEST_MODULE for alias in node.names
            ):
                offenders.append(f"{path.name}: {BULK_DIGEST_MODULE}")
            if isinstance(node, ast.Attribute) and node.attr == "_key":
                offenders.append(f"{path.name}: ._key")
    assert offenders == []
    assert {"pin_digest", "pin_digests", "key_fingerprint"} <= set(dir(pins))
