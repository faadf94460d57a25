"""``posaudit lab``: JupyterLab on the notebooks, with the store they read in ``$POSAUDIT_DB``.

The notebooks are jupytext py:percent files; JupyterLab opens them as notebooks (not as
text) because this session's settings make "Jupytext Notebook" the default viewer of Python
files, and it starts on ``00-start-here.py``. Those settings live in a folder made for the
session (any site-wide overrides are kept), so nothing in the user's own JupyterLab settings
changes. The notebooks open the store read-only (:mod:`posaudit.notebook.session`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

NOTEBOOK_PATTERN: Final = "[0-9][0-9]-*.py"
START_NOTEBOOK: Final = "00-start-here.py"
# JupyterLab settings for the session: text notebooks open as notebooks, no update or news
# checks (they need the network), and every cell stays attached so every chart renders.
LAB_SETTINGS: Final[dict[str, dict[str, Any]]] = {
    "@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}},
    "@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false"},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}


def notebooks_dir(cwd: Path | None = None) -> Path | None:
    """The folder of posaudit's notebooks: ``./notebooks``, else the one of this source tree."""
    here = (cwd or Path.cwd()) / "notebooks"
    source_tree = Path(__file__).resolve().parents[3] / "notebooks"
    for candidate in (here, source_tree):
        if candidate.is_dir() and any(candidate.glob(NOTEBOOK_PATTERN)):
            return candidate
    return None


def write_lab_settings(folder: Path, *, site_settings: Path | None = None) -> Path:
    """Write ``overrides.json`` into ``folder``: the site's overrides, then :data:`LAB_SETTINGS`."""
    site = site_settings or Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings"
    overrides: dict[str, Any] = {}
    existing = site / "overrides.json"
    if existing.is_file():
        overrides = json.loads(existing.read_text(encoding="utf-8"))
    for plugin, values in LAB_SETTINGS.items():
        overrides.setdefault(plugin, {}).update(values)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "overrides.json").write_text(json.dumps(overrides, indent=2), encoding="utf-8")
    return folder


def lab_command(
    *,
    notebooks: Path,
    settings: Path,
    port: int | None = None,
    extra: Sequence[str] = (),
    as_root: bool = False,
) -> list[str]:
    """The JupyterLab command line for the notebooks (``extra`` arguments last, so they win)."""
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={notebooks}",
        f"--LabApp.app_settings_dir={settings}",
        f"--ServerApp.default_url=/lab/tree/{START_NOTEBOOK}",
    ]
    if port is not None:
        command += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    if as_root:
        command.append("--allow-root")
    return [*command, *extra]


def lab_environment(db: Path) -> dict[str, str]:
    """This process's environment with ``POSAUDIT_DB`` set to the store's absolute path."""
    return {**os.environ, "POSAUDIT_DB": str(db.resolve())}


def run_lab(
    *, db: Path, notebooks: Path, port: int | None = None, extra: Sequence[str] = ()
) -> int:
    """Run JupyterLab until it exits; returns its exit code.

    Ctrl-C goes to JupyterLab (which asks before shutting down), not to this process.
    """
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    with tempfile.TemporaryDirectory(prefix="posaudit-lab-") as folder:
        settings = write_lab_settings(Path(folder) / "settings")
        command = lab_command(
            notebooks=notebooks, settings=settings, port=port, extra=extra, as_root=as_root
        )
        process = subprocess.Popen(command, env=lab_environment(db), cwd=notebooks)
        # ignored only once the child runs: a child started while it is ignored ignores it too
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return process.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
