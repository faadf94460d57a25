"""What the project cites is its own: no tracked file cites a domain file kept outside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The background notes the project was written from live outside the repository; spelled in
# two parts so that this test does not cite them itself. The project cites docs/domain.md.
OUTSIDE_NOTES = "DOMAIN" + ".md"


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False, timeout=60
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no tracked files to read")
    return [ROOT / name for name in listed.stdout.decode().split("\0") if name]


def test_no_tracked_file_cites_the_domain_notes_kept_outside_the_repository() -> None:
    files = [path for path in tracked_files() if path.is_file()]
    assert ROOT / "docs" / "domain.md" in files
    citing = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary: images, Parquet samples
        if OUTSIDE_NOTES in text:
            citing.append(path.relative_to(ROOT).as_posix())
    assert not citing, f"cite docs/domain.md or the primary source instead: {citing}"
