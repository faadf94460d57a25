"""``posaudit lab`` as an analyst meets it: JupyterLab in a browser, 00-start-here run.

Headless Chromium (Debian's, driven by playwright) opens the start notebook, runs all cells
and waits for every chart to render; screenshots go to the test's tmp_path. Every wait is
bounded, so a broken page fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from notebook_helpers import NOTEBOOKS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "posaudit-test-token"
START_SECONDS = 120  # JupyterLab up and answering
PAGE_MS = 90_000  # the page and the notebook open
RUN_MS = 240_000  # every cell run and every chart drawn
CHARTS_IN_START_HERE = 3

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_lab(db: Path, tmp_path: Path) -> Iterator[str]:
    """``posaudit lab`` on ``db`` and a copy of the notebooks (saving touches no reviewed
    file), until the block ends; its URL."""
    work = tmp_path / "work"
    shutil.copytree(
        NOTEBOOKS,
        work / "notebooks",
        ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"),
    )
    jupyter = tmp_path / "jupyter"
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "IPYTHONDIR": str(jupyter / "ipython"),
    }
    command = [
        sys.executable,
        "-m",
        "posaudit",
        "lab",
        "--db",
        str(db),
        "--port",
        str(port),
        "--",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={TOKEN}",
        f"--LabApp.user_settings_dir={jupyter / 'user-settings'}",
        f"--LabApp.workspaces_dir={jupyter / 'workspaces'}",
    ]
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(
        command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(
                    "posaudit lab exited with "
                    f"{server.returncode}:\n{(tmp_path / 'lab.log').read_text()}"
                )
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"JupyterLab did not answer in {START_SECONDS} "
                        f"s:\n{(tmp_path / 'lab.log').read_text()}"
                    )
                time.sleep(0.5)
        yield url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        log.close()


@pytest.fixture
def lab_server(audited_store, tmp_path: Path) -> Iterator[str]:
    """``posaudit lab`` on the audited sample; its URL."""
    with running_lab(audited_store.path, tmp_path) as url:
        yield url


def test_start_here_runs_in_jupyterlab_and_draws_its_charts(
    lab_server: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(PAGE_MS)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{lab_server}/lab/tree/00-start-here.py?token={TOKEN}")
            # the .py file opens as a notebook (the session's default viewer), with its kernel
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
            page.wait_for_selector(".jp-NotebookPanel .jp-Toolbar :text('Python 3')")
            open_sidebar = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
            if open_sidebar.count():
                open_sidebar.first.click()  # fold the file browser away: room for the notebook
            # the kernel is up, and the notebook (not the side bar) is what the Run menu acts on
            page.wait_for_selector("#jp-main-statusbar :text('Idle')")
            page.locator(".jp-NotebookPanel .jp-Cell").first.click()
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(
                ".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel:text-is('Run All Cells')"
            )
            try:
                page.wait_for_function(
                    """n =>
                    document.querySelectorAll(
                        '.posaudit-chart canvas, .posaudit-chart svg.marks').length >= n
                    && Array.from(document.querySelectorAll(
                        '.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt'))
                         .every(p => /\\[\\d+\\]/.test(p.textContent))""",
                    arg=CHARTS_IN_START_HERE,
                    timeout=RUN_MS,
                )
            except Exception:
                page.screenshot(path=str(tmp_path / "failed-run.png"))
                raise
            page.wait_for_timeout(1000)  # let the last chart finish its first paint
            errors = page.locator("[data-mime-type='application/vnd.jupyter.error']").count()
            failed_charts = page.locator(".posaudit-chart:has-text('chart error')").count()
            charts = page.locator(".posaudit-chart")
            drawn = charts.count()
            tables = page.locator(".posaudit-table").count()
            headline = page.locator(
                ".jp-OutputArea-output.jp-RenderedMarkdown, .jp-OutputArea-output "
                ".jp-RenderedMarkdown"
            ).first.inner_text()
            page.locator(".jp-NotebookPanel .jp-WindowedPanel-outer").evaluate(
                "e => e.scrollTop = 0"
            )
            page.wait_for_timeout(300)
            page.screenshot(path=str(tmp_path / "00-start-here.png"))
            for index in range(drawn):
                chart = charts.nth(index)
                chart.scroll_into_view_if_needed()
                chart.screenshot(path=str(tmp_path / f"00-start-here-chart-{index + 1}.png"))
        finally:
            browser.close()
    assert errors == 0, f"{errors} cells failed"
    assert failed_charts == 0
    assert drawn == CHARTS_IN_START_HERE
    assert tables >= 7
    assert "run-00002" in headline
    assert not problems, problems
    shots = sorted(p.name for p in tmp_path.glob("00-start-here*.png"))
    assert len(shots) == 1 + CHARTS_IN_START_HERE
    assert all((tmp_path / name).stat().st_size > 10_000 for name in shots)
