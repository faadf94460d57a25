"""``posaudit lab`` stopped by a signal leaves nothing behind.

A ``kill`` (SIGTERM) or a Ctrl-C (SIGINT) stops JupyterLab and every kernel it started, closes
the port and removes the session's temporary folder. The kernel is started through the
server's REST API, as a browser tab would start it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from posaudit.notebook.lab import still_running, stop_lab
from posaudit.pins import PIN_KEY_ENV
from posaudit.simulate.engine import simulate
from posaudit.simulate.scenario import load_scenario

TOKEN = "posaudit-shutdown-token"
START_SECONDS = 120  # JupyterLab up and answering, a kernel started
STOP_SECONDS = 60  # generous: the lab's own bound is well inside it

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def is_gone(process: psutil.Process) -> bool:
    """Exited: no longer running, or a zombie that only waits for its new parent to reap it."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def all_gone(processes: list[psutil.Process], *, timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds for the processes to exit; those still running."""
    deadline = time.monotonic() + timeout
    while (alive := [p for p in processes if not is_gone(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def process_group(pgid: int) -> list[psutil.Process]:
    """The live processes of a process group."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and not is_gone(process):
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lab-store") / "tiny.duckdb"
    simulate(path, load_scenario(None, merchants=2, days=1), seed=1, fraud_on=False)
    return path


@pytest.fixture
def lab_session(tiny_store: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``posaudit lab`` answering on a free port; its temporary folders go under tmp_path/tmp."""
    jupyter = tmp_path / "jupyter"
    (tmp_path / "tmp").mkdir()
    port = free_port()
    env = {
        **os.environ,
        "TMPDIR": str(tmp_path / "tmp"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "IPYTHONDIR": str(jupyter / "ipython"),
    }
    command = [
        *(sys.executable, "-m", "posaudit", "lab", "--db", str(tiny_store)),
        *("--port", str(port), "--", "--no-browser", "--ServerApp.ip=127.0.0.1"),
        f"--IdentityProvider.token={TOKEN}",
        f"--LabApp.user_settings_dir={jupyter / 'user-settings'}",
        f"--LabApp.workspaces_dir={jupyter / 'workspaces'}",
    ]
    log = (tmp_path / "lab.log").open("w")
    lab = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if lab.poll() is not None:
                pytest.fail(f"posaudit lab exited with {lab.returncode}:\n{log_text(tmp_path)}")
            try:
                urllib.request.urlopen(api(port, "status"), timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer:\n{log_text(tmp_path)}")
                time.sleep(0.5)
        yield lab, port
    finally:
        # whatever is left (every process here names tmp_path), so a failure leaves nothing
        leftovers = [p for p in psutil.process_iter() if tmp_path.as_posix() in cmdline(p)]
        for process in leftovers:
            with contextlib.suppress(psutil.Error):
                process.kill()
        if lab.poll() is None:
            lab.kill()
        lab.wait(timeout=10)
        all_gone(leftovers, timeout=10)
        log.close()


def log_text(tmp_path: Path) -> str:
    return (tmp_path / "lab.log").read_text()


def api(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}/api/{path}?token={TOKEN}"


def cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def started_kernel(port: int) -> str:
    """A kernel started through the REST API, as a notebook tab starts one; its id."""
    request = urllib.request.Request(
        api(port, "kernels"),
        data=json.dumps({"name": "python3"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=START_SECONDS) as response:
        return str(json.load(response)["id"])


def lab_with_a_kernel(
    lab: subprocess.Popen[str], port: int
) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """A kernel started through the REST API: every process the lab then runs, and the kernel's."""
    kernel_id = started_kernel(port)
    deadline = time.monotonic() + START_SECONDS
    while True:
        started = psutil.Process(lab.pid).children(recursive=True)
        kernels = [p for p in started if kernel_id in cmdline(p)]
        if kernels or time.monotonic() > deadline:
            return started, kernels
        time.sleep(0.5)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_lab_leaves_no_server_kernel_port_or_folder(
    lab_session: tuple[subprocess.Popen[str], int], tmp_path: Path, stop: signal.Signals
) -> None:
    lab, port = lab_session
    started, kernels = lab_with_a_kernel(lab, port)
    assert kernels, [cmdline(p) for p in started]
    groups = {os.getpgid(p.pid) for p in started}
    (session_folder,) = (tmp_path / "tmp").glob("posaudit-lab-*")

    lab.send_signal(stop)
    assert lab.wait(timeout=STOP_SECONDS) == 128 + stop, log_text(tmp_path)

    alive = all_gone(started, timeout=STOP_SECONDS)
    assert not alive, [cmdline(p) for p in alive]
    assert not [p for pgid in groups for p in process_group(pgid)]
    assert not port_is_open(port)
    assert not session_folder.exists()


STUBBORN_SERVER = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
kernel = subprocess.Popen(
    [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
     "time.sleep(600)"],
    start_new_session=True,
)
print(kernel.pid, flush=True)
time.sleep(600)
"""


def test_a_server_and_kernel_that_ignore_sigterm_are_killed_after_their_bounds() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", STUBBORN_SERVER],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert server.stdout is not None
    kernel = psutil.Process(int(server.stdout.readline()))
    try:
        assert kernel.ppid() == server.pid and os.getpgid(kernel.pid) != server.pid
        stop_lab(server, server_seconds=1, kernel_seconds=1)
        assert server.returncode == -signal.SIGKILL
        assert not still_running([kernel], timeout=STOP_SECONDS)
    finally:
        with contextlib.suppress(psutil.Error):
            kernel.kill()
        if server.poll() is None:
            server.kill()
        server.wait(timeout=10)
        server.stdout.close()


def test_the_kernels_get_no_pin_key(
    lab_session: tuple[subprocess.Popen[str], int], tiny_store: Path
) -> None:
    """With the key and the store every PIN digest inverts in seconds: the key is set for this
    `posaudit lab` (the tests set it), and neither JupyterLab nor a kernel it starts has it."""
    lab, port = lab_session
    assert os.environ[PIN_KEY_ENV]
    started, kernels = lab_with_a_kernel(lab, port)
    assert kernels and len(started) >= 2
    for process in started:
        environment = process.environ()
        assert PIN_KEY_ENV not in environment, cmdline(process)
        assert environment["POSAUDIT_DB"] == str(tiny_store.resolve())
