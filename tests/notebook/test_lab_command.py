"""``posaudit lab``: how it starts JupyterLab, and the errors a user can meet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from notebook_helpers import NOTEBOOKS

from posaudit.notebook import lab

POSAUDIT = [sys.executable, "-m", "posaudit"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POSAUDIT, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posaudit: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_lab_refuses_a_missing_store_and_a_bad_port(tmp_path: Path) -> None:
    one_error_line(run("lab", "--db", str(tmp_path / "none.duckdb")), "no store at")
    one_error_line(
        run("lab", "--db", str(tmp_path / "none.duckdb"), "--port", "70000"),
        "--port must be between 1 and 65535",
    )
    (tmp_path / "not-a-store.duckdb").write_text("hello")
    one_error_line(
        run("lab", "--db", str(tmp_path / "not-a-store.duckdb")), "not a DuckDB database"
    )


def test_lab_finds_the_notebooks_from_anywhere(tmp_path: Path) -> None:
    assert lab.notebooks_dir(NOTEBOOKS.parent) == NOTEBOOKS
    assert lab.notebooks_dir(tmp_path) == NOTEBOOKS  # the source tree's, when the folder has none
    own = tmp_path / "notebooks"
    own.mkdir()
    (own / "00-start-here.py").write_text("# %%\n")
    assert lab.notebooks_dir(tmp_path) == own


def test_lab_command_line() -> None:
    command = lab.lab_command(
        notebooks=Path("/nb"), settings=Path("/s"), port=8890, extra=["--no-browser"], as_root=True
    )
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert "--ServerApp.root_dir=/nb" in command and "--LabApp.app_settings_dir=/s" in command
    assert "--ServerApp.default_url=/lab/tree/00-start-here.py" in command
    assert "--ServerApp.port=8890" in command and "--ServerApp.port_retries=0" in command
    assert "--allow-root" in command and command[-1] == "--no-browser"
    plain = lab.lab_command(notebooks=Path("/nb"), settings=Path("/s"))
    assert "--allow-root" not in plain and not any("port" in a for a in plain)


def test_lab_passes_the_store_to_the_kernels(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert lab.lab_environment(Path("data/x.duckdb"))["POSAUDIT_DB"] == str(
        tmp_path / "data" / "x.duckdb"
    )


def test_lab_settings_open_notebooks_as_notebooks_and_keep_site_overrides(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "overrides.json").write_text(
        json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}})
    )
    folder = lab.write_lab_settings(tmp_path / "session", site_settings=site)
    overrides = json.loads((folder / "overrides.json").read_text())
    assert (
        overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"]
        == "Jupytext Notebook"
    )
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert overrides["@jupyterlab/apputils-extension:themes"]["theme"] == "JupyterLab Dark"
