"""posaudit: fraud and audit analytics for POS terminals and their operators."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

__version__ = "0.1.0"


@lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 of the package's sources (Python, SQL, bundled policies, templates and data).

    What a run keeps because this code computed it (the columns its rules read, the PIN
    exclusion list) is kept under this digest, so that other code never reuses it.
    """
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in _SOURCES):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


_SOURCES = frozenset({".py", ".sql", ".toml", ".j2", ".css", ".txt"})
