"""Outputs that appear whole or not at all: files and folders written under a temporary name
beside their final one and renamed into place when complete.

A killed or failed writer (SIGKILL, a full disk) then leaves no file or folder that looks
finished under the final name: only a temporary one, named ``.<name>.partial-<pid>``, which
the next writer of the same output removes once its writer is dead. Renames within one
folder are atomic on POSIX file systems, which is why the temporary name is a sibling.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Final

PARTIAL_MARK: Final = ".partial-"


def partial_path(final: Path, *, pid: int | None = None) -> Path:
    """The temporary sibling of ``final`` that this process (or ``pid``) writes."""
    return final.with_name(f".{final.name}{PARTIAL_MARK}{os.getpid() if pid is None else pid}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_dead_partials(final: Path) -> list[Path]:
    """Remove what dead writers of ``final`` left; returns what was removed."""
    pattern = re.compile(rf"^\.{re.escape(final.name)}{re.escape(PARTIAL_MARK)}(\d+)$")
    removed = []
    if not final.parent.is_dir():
        return removed
    for sibling in final.parent.iterdir():
        found = pattern.match(sibling.name)
        if not found or _alive(int(found.group(1))):
            continue
        if sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            sibling.unlink(missing_ok=True)
        removed.append(sibling)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def written_file(final: Path) -> Iterator[Path]:
    """Write a file under a temporary name; it replaces ``final`` only when the block ends well.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with written_file(folder / "report.csv") as part:
    ...     _ = part.write_text("a,b\\n")
    >>> sorted(p.name for p in folder.iterdir())
    ['report.csv']
    """
    remove_dead_partials(final)
    part = partial_path(final)
    _remove(part)
    try:
        yield part
        os.replace(part, final)
    except BaseException:
        _remove(part)
        raise


@contextlib.contextmanager
def written_folder(final: Path) -> Iterator[Path]:
    """Fill a new folder under a temporary name; it becomes ``final`` when the block ends well.

    ``final`` must not exist, or be an empty folder (it is then replaced).
    """
    remove_dead_partials(final)
    part = partial_path(final)
    _remove(part)
    part.mkdir()
    try:
        yield part
        if final.is_dir():
            final.rmdir()  # empty, checked by the caller; refused by the OS otherwise
        os.replace(part, final)
    except BaseException:
        _remove(part)
        raise
