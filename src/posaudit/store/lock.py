"""One writer at a time: the store's writer lock.

Every process that writes a store (a run, an append, a demo, a new simulation) holds this lock
for the whole of its work, from before it reads what it will change until its last byte is in
place. DuckDB's own file lock is not enough: an append writes a staged copy of the store and
renames it over the store when done, so DuckDB never sees it and a run committed meanwhile
would be replaced by the copy.

The lock is an ``flock`` on ``<store>.lock`` beside the store: the kernel releases it when its
holder dies however it dies, so a killed writer never leaves the store locked. The file holds
who has the lock (pid, command, since when) for the message another writer is refused with,
and is removed by its holder on release. Readers take no lock: they read the store as it was
before a writer's rename, or after it.

Within one process the lock is re-entrant (DuckDB lets one process open a store twice): a
count per store is kept, and the lock is released when the last holder lets go.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from posaudit.store.errors import StoreError, StoreLockedError

LOCK_SUFFIX: Final = ".lock"


@dataclass
class _Held:
    fd: int
    count: int


_held: dict[Path, _Held] = {}
_guard = threading.Lock()


def lock_path(store: Path) -> Path:
    """The lock file of a store."""
    return store.with_name(store.name + LOCK_SUFFIX)


def _holder(path: Path) -> str:
    """What the lock file says of its holder, or '' when it says nothing readable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    return text.splitlines()[0][:200] if text else ""


def _key(store: Path) -> Path:
    return Path(os.path.abspath(store))


def acquire(store: Path, *, purpose: str) -> None:
    """Take the writer lock of ``store`` or raise StoreLockedError at once (never waits).

    ``purpose`` names the work in the lock file ("run", "simulate --append", ...).
    """
    key = _key(store)
    with _guard:
        held = _held.get(key)
        if held is not None:
            held.count += 1
            return
        path = lock_path(key)
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                msg = f"cannot lock the store {store} for writing: {path}: {reason}"
                raise StoreError(msg) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = _holder(path)
                msg = f"{store} is locked by another posaudit process" + (
                    f" ({holder})" if holder else ""
                )
                raise StoreLockedError(msg) from None
            # the holder before may have removed the file between our open and our lock:
            # a lock on a file no longer at the path locks nothing, so take the new one
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        since = datetime.now().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {purpose}, since {since}\n".encode())
        _held[key] = _Held(fd=fd, count=1)


def release(store: Path) -> None:
    """Let go of the writer lock taken by :func:`acquire` (the last holder removes the file)."""
    key = _key(store)
    with _guard:
        held = _held.get(key)
        if held is None:
            return
        held.count -= 1
        if held.count:
            return
        del _held[key]
        # removed while still locked, so no other writer can be locking this file meanwhile
        with contextlib.suppress(OSError):  # the lock itself goes with the descriptor
            lock_path(key).unlink(missing_ok=True)
        os.close(held.fd)


def holds(store: Path) -> bool:
    """Whether this process holds the writer lock of ``store``."""
    with _guard:
        return _key(store) in _held
