"""The environment a new user gets: uv.lock agrees with pyproject.toml, and the system packages
the README's two commands need are installed or named in one line."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PACKAGES = ROOT / "scripts" / "system-packages"


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _lock() -> dict[str, Any]:
    return tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))


def declared_requirements(pyproject: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """pyproject.toml's requirements as (name, extras, specifier, marker), extras as markers."""
    project = pyproject["project"]
    found = set()
    groups = [(None, project["dependencies"])]
    groups += list(project.get("optional-dependencies", {}).items())
    for extra, requirements in groups:
        for text in requirements:
            requirement = Requirement(text)
            marker = f"extra == '{extra}'" if extra else ""
            if requirement.marker is not None:
                marker = f"{requirement.marker} and {marker}" if marker else str(requirement.marker)
            found.add(
                (
                    canonicalize_name(requirement.name),
                    ",".join(sorted(requirement.extras)),
                    str(requirement.specifier),
                    marker,
                )
            )
    return found


def locked_requirements(lock: dict[str, Any], name: str) -> set[tuple[str, str, str, str]]:
    """What uv.lock recorded of the project's own requirements when it was made."""
    (project,) = [p for p in lock["package"] if p["name"] == name]
    return {
        (
            canonicalize_name(entry["name"]),
            ",".join(sorted(entry.get("extras", []))),
            str(Requirement(f"x{entry.get('specifier', '')}").specifier),
            entry.get("marker", ""),
        )
        for entry in project["metadata"]["requires-dist"]
    }


def test_the_lock_was_made_from_this_pyproject() -> None:
    """An edit of pyproject.toml without `make lock` (or a hand-edited lock) fails here."""
    pyproject, lock = _pyproject(), _lock()
    declared = declared_requirements(pyproject)
    locked = locked_requirements(lock, pyproject["project"]["name"])
    assert declared - locked == set(), "in pyproject.toml, not in uv.lock: run `make lock`"
    assert locked - declared == set(), "in uv.lock, not in pyproject.toml: run `make lock`"
    assert lock["requires-python"] == pyproject["project"]["requires-python"]
    (project,) = [p for p in lock["package"] if p["name"] == pyproject["project"]["name"]]
    assert set(project["metadata"]["provides-extras"]) == set(
        pyproject["project"]["optional-dependencies"]
    )


def test_every_locked_version_meets_its_requirement() -> None:
    pyproject, lock = _pyproject(), _lock()
    versions = {canonicalize_name(p["name"]): Version(p["version"]) for p in lock["package"]}
    for name, _, specifier, _ in declared_requirements(pyproject):
        assert name in versions, f"{name} is required but not locked"
        assert Requirement(f"x{specifier}").specifier.contains(versions[name], prereleases=True), (
            f"{name} {versions[name]} does not meet {specifier}"
        )


def test_declared_requirements_see_a_changed_pyproject() -> None:
    """The comparison itself: a new dependency or a moved range is a difference."""
    pyproject = _pyproject()
    before = declared_requirements(pyproject)
    pyproject["project"]["dependencies"] = [*pyproject["project"]["dependencies"], "six>=1"]
    pyproject["project"]["optional-dependencies"]["dev"] = [
        r.replace(">=9", ">=10") if r.startswith("pytest") else r
        for r in pyproject["project"]["optional-dependencies"]["dev"]
    ]
    after = declared_requirements(pyproject)
    assert after - before == {("six", "", ">=1", ""), ("pytest", "", ">=10", "extra == 'dev'")}


def test_the_readme_commands_install_from_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    syncs = [line for line in makefile.splitlines() if "$(UV) sync" in line]
    assert len(syncs) == 2 and all("--frozen" in line for line in syncs)
    assert "pip install -e" not in makefile
    for target in ("demo", "test"):
        assert f"\n{target}: system-{target} " in makefile


def _bin_without(folder: Path, *, leave_out: set[str]) -> Path:
    """A PATH folder of links to the tools the script uses, less ``leave_out``."""
    folder.mkdir()
    for tool in (
        "bash",
        "env",
        "id",
        "grep",
        "ldconfig",
        "fc-list",
        "chromium",
        "pdftoppm",
        "systemd-analyze",
        "java",
    ):
        found = shutil.which(tool) or (f"/sbin/{tool}" if tool == "ldconfig" else None)
        if found and tool not in leave_out:
            (folder / tool).symlink_to(found)
    return folder


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs the test system packages")
def test_a_missing_system_package_is_named_in_one_line(tmp_path: Path) -> None:
    """Without apt-get (or root), the script names what is missing and how to install it."""
    path = _bin_without(tmp_path / "bin", leave_out={"chromium", "pdftoppm"})
    env = {"PATH": str(path), "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(path / "bash"), str(SYSTEM_PACKAGES), "test"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "posaudit: missing system packages for 'make test': chromium poppler-utils; install them"
        " with: sudo apt-get install -y --no-install-recommends chromium poppler-utils\n"
    )
    # the demo needs neither
    demo = subprocess.run(
        [str(path / "bash"), str(SYSTEM_PACKAGES), "demo"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (demo.returncode, demo.stderr) == (0, "")
