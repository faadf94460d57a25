"""Actions queued while another posaudit process holds the store, kept on disk until applied.

A queued action is one JSON file in ``<store>.review-queue/`` beside the store, written under
a temporary name, flushed to disk and renamed into place (the folder flushed too) before the
analyst is told it is queued: from then on a kill, of the analyst's command or of anything
else, does not lose it. The next writer that can (the run holding the store, as it ends, or
the next review) applies the queued actions in the order they were made, in its own
transaction, then removes their files. An action already in the trail (its ``request_id``
there: the writer was killed after committing, before removing the file) is not applied
twice. One that cannot be applied (its finding unknown) is kept as ``<id>.rejected.json``
with the reason, for ``posaudit review pending`` to show.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Final

from posaudit.review.action import Action

QUEUE_SUFFIX: Final = ".review-queue"
_REJECTED: Final = ".rejected.json"


def queue_folder(store: Path) -> Path:
    """Where a store's queued actions wait."""
    return store.with_name(store.name + QUEUE_SUFFIX)


@dataclass(frozen=True)
class Request:
    """A queued action on ``target``, and its file."""

    request_id: str
    target: str
    action: Action
    path: Path

    @property
    def made_at(self) -> datetime:
        assert self.action.made_at is not None
        return self.action.made_at


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def enqueue(store: Path, target: str, action: Action) -> Request:
    """Write ``action`` on ``target`` to the store's queue, durably; its request."""
    folder = queue_folder(store)
    folder.mkdir(exist_ok=True)
    request_id = uuid.uuid4().hex
    action = replace(action, request_id=request_id)
    body = {"target": target, **asdict(action)}
    body["made_at"] = action.made_at.isoformat(timespec="microseconds") if action.made_at else None
    final = folder / f"{body['made_at']}-{request_id}.json".replace(":", "")
    part = folder / f".{final.name}.partial-{os.getpid()}"
    with part.open("w", encoding="utf-8") as out:
        json.dump(body, out, ensure_ascii=False, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, final)
    _sync_folder(folder)
    return Request(request_id, target, action, final)


def _read(path: Path) -> Request:
    body = json.loads(path.read_text(encoding="utf-8"))
    target = body.pop("target")
    body.pop("reason", None)
    made = body.pop("made_at")
    action = Action(**body, made_at=datetime.fromisoformat(made) if made else None)
    return Request(str(action.request_id), target, action, path)


def pending_requests(store: Path) -> list[Request]:
    """The store's queued actions, oldest first (none when it has no queue)."""
    folder = queue_folder(store)
    if not folder.is_dir():
        return []
    files = sorted(
        p
        for p in folder.glob("*.json")
        if not p.name.startswith(".") and not p.name.endswith(_REJECTED)
    )
    return [_read(p) for p in files]


def rejected_requests(store: Path) -> list[tuple[Request, str]]:
    """Queued actions that could not be applied, with the reason."""
    folder = queue_folder(store)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(f"*{_REJECTED}")):
        reason = json.loads(path.read_text(encoding="utf-8")).get("reason", "")
        found.append((_read(path), str(reason)))
    return found


@dataclass
class Settled:
    """Queued actions a writer applied, and those it could not, in a transaction not yet
    committed; :meth:`finish` removes their files once it has."""

    applied: list[Request] = field(default_factory=list)
    rejected: list[tuple[Request, str]] = field(default_factory=list)

    def finish(self, store: Path) -> None:
        """After the commit: applied files removed, rejected ones set aside with the reason."""
        for request in self.applied:
            with contextlib.suppress(FileNotFoundError):
                request.path.unlink()
        for request, reason in self.rejected:
            body = json.loads(request.path.read_text(encoding="utf-8"))
            body["reason"] = reason
            kept = request.path.with_name(request.path.name.removesuffix(".json") + _REJECTED)
            kept.write_text(json.dumps(body, ensure_ascii=False, sort_keys=True), encoding="utf-8")
            request.path.unlink()
        if self.applied or self.rejected:
            _sync_folder(queue_folder(store))
