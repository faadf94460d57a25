"""docs/scheduling.md: its systemd units are the shipped ones and pass `systemd-analyze verify`;
its cron lines run the shipped definitions."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from pipeline_kit import REPO

DOC = (REPO / "docs" / "scheduling.md").read_text(encoding="utf-8")
UNITS = sorted((REPO / "pipelines" / "systemd").iterdir())


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.DOTALL)


def test_the_documented_units_are_the_shipped_files() -> None:
    assert {u.name for u in UNITS} == {"posaudit-nightly.service", "posaudit-nightly.timer"}
    shown = _blocks("ini")
    for unit in UNITS:
        assert unit.read_text(encoding="utf-8") in shown, unit.name


def test_the_cron_lines_run_shipped_definitions() -> None:
    lines = [
        line for line in _blocks("crontab")[0].splitlines() if line and not line.startswith("#")
    ]
    assert len(lines) == 2
    for line in lines:
        fields = line.split(maxsplit=5)
        assert all(re.fullmatch(r"[\d*,/-]+", f) for f in fields[:5]), line
        words = shlex.split(fields[5])
        definition = words[words.index("--pipeline") + 1]
        assert (REPO / definition).exists() and ".venv/bin/posaudit" in fields[5] and "run" in words


def _verify(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", *(str(p) for p in sorted(folder.iterdir()))],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify refuses an ExecStart= whose program is missing: point the units at this checkout
    assert (REPO / ".venv" / "bin" / "posaudit").exists()
    good, bad = tmp_path / "good", tmp_path / "bad"
    for folder in (good, bad):
        folder.mkdir()
        for unit in UNITS:
            (folder / unit.name).write_text(unit.read_text().replace("/srv/posaudit", str(REPO)))
    result = _verify(good)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    # a service that says nothing to run, and a setting with a typo: both reported
    service = bad / "posaudit-nightly.service"
    text = service.read_text().replace("Type=oneshot", "Type=sometimes")
    service.write_text(
        "\n".join(line for line in text.splitlines() if not line.startswith("ExecStart="))
    )
    broken = _verify(bad)
    assert broken.returncode != 0
    assert "ExecStart=" in broken.stderr and "sometimes" in broken.stderr
