"""``posaudit lab``: JupyterLab on the notebooks, with the store they read in ``$POSAUDIT_DB``.

The notebooks are jupytext py:percent files; JupyterLab opens them as notebooks (not as
text) because this session's settings make "Jupytext Notebook" the default viewer of Python
files, and it starts on ``00-start-here.py``. Those settings live in a folder made for the
session (any site-wide overrides are kept), so nothing in the user's own JupyterLab settings
changes. The notebooks open the store read-only (:mod:`posaudit.notebook.session`).

Stopping the session (Ctrl-C, ``kill``, closing the terminal) stops JupyterLab and every
kernel it started and removes the session's folder: nothing keeps serving the port.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import psutil

from posaudit.pins import PIN_DIGESTER_ENV, PIN_KEY_ENV

# The signals that stop a lab session: Ctrl-C, kill, and the terminal closing.
STOP_SIGNALS: Final = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
# JupyterLab waits up to 5 s (jupyter_client's default) for each kernel to shut down before
# killing it, so 20 s leaves it room; a kernel may take a moment to be reaped after that.
SERVER_STOP_SECONDS: Final = 20.0
KERNEL_STOP_SECONDS: Final = 5.0
WAIT_SECONDS: Final = 0.5  # how soon a stop signal is acted on
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
    """This process's environment with ``POSAUDIT_DB`` set to the store's absolute path, and
    without the PIN key or the name of the deployment's digester: with the key and the store,
    every PIN digest inverts in seconds, and the notebooks never need it (JupyterLab passes
    its environment to every kernel)."""
    secret = (PIN_KEY_ENV, PIN_DIGESTER_ENV)
    kept = {name: value for name, value in os.environ.items() if name not in secret}
    return {**kept, "POSAUDIT_DB": str(db.resolve())}


def run_lab(
    *, db: Path, notebooks: Path, port: int | None = None, extra: Sequence[str] = ()
) -> int:
    """Run JupyterLab until it exits or this process is asked to stop; returns the exit code.

    JupyterLab runs in a session of its own, so a Ctrl-C in the terminal reaches this process
    only. On SIGINT, SIGTERM or SIGHUP it stops JupyterLab and every kernel JupyterLab started
    (:func:`stop_lab`), removes the session's folder and returns 128 + the signal's number, as
    a shell reports a process a signal stopped.
    """
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    received: list[int] = []

    def on_stop_signal(signum: int, frame: object) -> None:
        received.append(signum)

    # set before JupyterLab starts, so no signal can end this process with JupyterLab running
    previous = {number: signal.signal(number, on_stop_signal) for number in STOP_SIGNALS}
    process: subprocess.Popen[bytes] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="posaudit-lab-") as folder:
            settings = write_lab_settings(Path(folder) / "settings")
            command = lab_command(
                notebooks=notebooks, settings=settings, port=port, extra=extra, as_root=as_root
            )
            process = subprocess.Popen(
                command, env=lab_environment(db), cwd=notebooks, start_new_session=True
            )
            while not received and process.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=WAIT_SECONDS)
            if process.poll() is None:
                stop_lab(process)
            return 128 + received[0] if received else process.returncode
    finally:
        if process is not None and process.poll() is None:
            stop_lab(process)  # an error of this process's own stops JupyterLab too
        for number, handler in previous.items():
            signal.signal(number, handler)


def stop_lab(
    process: subprocess.Popen[bytes],
    *,
    server_seconds: float = SERVER_STOP_SECONDS,
    kernel_seconds: float = KERNEL_STOP_SECONDS,
) -> None:
    """Stop JupyterLab (``process``) and every process it started, kernels included.

    JupyterLab gets SIGTERM, its signal to shut its kernels down and exit without asking; it
    is killed with its process group if it has not exited within ``server_seconds``. Kernels
    run in sessions of their own (so that an interrupt reaches all of a kernel's processes),
    out of reach of a signal to JupyterLab's group: those still running ``kernel_seconds``
    after JupyterLab exited are killed with their own process groups.
    """
    started = descendants(process.pid)
    signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=server_seconds)
    except subprocess.TimeoutExpired:
        signal_group(process.pid, signal.SIGKILL)
        process.wait()
    for leftover in still_running(started, timeout=kernel_seconds):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(leftover.pid) == leftover.pid:
                os.killpg(leftover.pid, signal.SIGKILL)
            leftover.kill()


def descendants(pid: int) -> list[psutil.Process]:
    """The processes ``pid`` started, and the ones they started, as they are now."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to a process group, if it still has members."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def still_running(processes: Sequence[psutil.Process], *, timeout: float) -> list[psutil.Process]:
    """The ``processes`` still running after waiting up to ``timeout`` seconds for them to exit.

    A zombie has exited: it only waits for its parent (after JupyterLab, PID 1) to reap it.
    """
    deadline = time.monotonic() + timeout
    while True:
        running = [p for p in processes if is_running(p)]
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(WAIT_SECONDS / 5)


def is_running(process: psutil.Process) -> bool:
    """Whether ``process`` (the very one, not a later one with its id) has not exited yet."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
