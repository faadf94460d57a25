"""A PIN digester whose key lives in another process, as a deployment's key service's would.

``$POSAUDIT_PIN_DIGESTER=tests.key_service:key_service`` plugs it into the command line.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from typing import Final

import polars as pl

from posaudit.pins import LocalPinKey

SERVICE_KEY: Final = b"posaudit-test-key/the-key-service, 32+ bytes"


def _serve(connection: Connection, key: bytes) -> None:
    """The key's own process: answers fingerprint and digest requests until the pipe closes."""
    local = LocalPinKey(key)
    while True:
        try:
            request = connection.recv()
        except EOFError:
            return
        connection.send(local.fingerprint if request is None else local.digests(request))


class KeyInAnotherProcess:
    """A PIN digester holding no key: it forwards every request to the process that has it,
    and counts the digest requests."""

    def __init__(self, key: bytes) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs, key), daemon=True)
        self._process.start()
        theirs.close()
        self.calls = 0
        self._connection.send(None)
        self.fingerprint: str = self._connection.recv()

    def digests(self, values: pl.Series) -> pl.Series:
        self.calls += 1
        self._connection.send(values)
        digests: pl.Series = self._connection.recv()
        return digests

    def close(self) -> None:
        self._connection.close()
        self._process.join(timeout=10)


def key_service() -> KeyInAnotherProcess:
    """The factory ``$POSAUDIT_PIN_DIGESTER`` names in the tests."""
    return KeyInAnotherProcess(SERVICE_KEY)


def not_a_digester() -> object:
    return object()
