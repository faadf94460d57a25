"""07-triage as an analyst uses it: JupyterLab in headless Chromium, a decision recorded by
clicking, and the decision then in the store.

The widgets come from the JupyterLab extension ipywidgets installs (jupyterlab_widgets): the
page loads nothing but from the lab server. Screenshots go to the test's tmp_path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_lab_browser import CHROMIUM, CHROMIUM_ARGS, PAGE_MS, RUN_MS, TOKEN, running_lab

from posaudit.review import review_queue
from posaudit.store import Store

ANALYST = "zhang.wei"
NOTE = "two refunds to one card the same evening; the merchant confirmed neither"
# The finding picked: not the first, which the panel shows before any pick.
PICKED_INDEX = 2

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)",
    ),
]


def test_a_decision_recorded_in_the_triage_notebook_is_in_the_store(
    audited_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import sync_playwright

    store = tmp_path / "triage.duckdb"
    shutil.copyfile(audited_store.path, store)
    monkeypatch.setenv("POSAUDIT_ANALYST", ANALYST)  # the lab's kernels inherit it
    problems: list[str] = []
    elsewhere: list[str] = []
    with running_lab(store, tmp_path) as lab, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.set_default_timeout(PAGE_MS)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "request",
                lambda request: (
                    None
                    if request.url.startswith((lab, "data:", "blob:"))
                    else elsewhere.append(request.url)
                ),
            )
            page.goto(f"{lab}/lab/tree/07-triage.py?token={TOKEN}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
            page.wait_for_selector(".jp-NotebookPanel .jp-Toolbar :text('Python 3')")
            open_sidebar = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
            if open_sidebar.count():
                open_sidebar.first.click()
            page.wait_for_selector("#jp-main-statusbar :text('Idle')")
            page.locator(".jp-NotebookPanel .jp-Cell").first.click()
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(
                ".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel:text-is('Run All Cells')"
            )
            try:
                page.wait_for_selector(".posaudit-triage-record", timeout=RUN_MS)
                page.wait_for_selector(".posaudit-triage-card .posaudit-table")
            except Exception:
                page.screenshot(path=str(tmp_path / "failed-run.png"))
                raise

            picker = page.locator(".posaudit-triage-finding select")
            # the dropdown shows its labels with no-break spaces; the finding id ends them
            label = picker.locator("option").nth(PICKED_INDEX).text_content() or ""
            finding_id = label.replace("\xa0", " ").rsplit(" · ", 1)[-1]
            picker.select_option(index=PICKED_INDEX)
            page.wait_for_selector(
                f".posaudit-triage-card caption:has-text('Finding {finding_id}')"
            )
            page.locator(".posaudit-triage-decision select").select_option("confirmed_fraud")
            page.locator(".posaudit-triage-note textarea").fill(NOTE)
            page.locator(".posaudit-triage-record").click()
            result = page.locator(".posaudit-triage-result")
            recorded = f"finding {finding_id} closed as confirmed_fraud, by {ANALYST}"
            try:
                result.get_by_text(recorded).wait_for()
                page.wait_for_selector(".posaudit-triage-trail caption:has-text('review trail')")
            except Exception:
                page.screenshot(path=str(tmp_path / "failed-decision.png"))
                raise
            shown = result.inner_text()
            note_after = page.locator(".posaudit-triage-note textarea").input_value()
            errors = page.locator("[data-mime-type='application/vnd.jupyter.error']").count()
            page.locator(".posaudit-triage-record").scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            page.screenshot(path=str(tmp_path / "07-triage.png"))
        finally:
            browser.close()

    assert errors == 0, f"{errors} cells failed"
    assert not problems, problems
    assert not elsewhere, f"the page loaded from outside the lab server: {elsewhere}"
    assert note_after == ""
    # the decision is in the store, as `posaudit review show` reads it
    show = subprocess.run(
        [sys.executable, "-m", "posaudit", "review", "show", finding_id, "--json", "--db", store],
        capture_output=True,
        text=True,
        check=True,
    )
    reviews = json.loads(show.stdout)["reviews"]
    assert len(reviews) == 1
    review = reviews[0]
    assert (review["decision"], review["status"], review["analyst"], review["note"]) == (
        "confirmed_fraud",
        "closed",
        ANALYST,
        NOTE,
    )
    assert shown.strip() == f"review {review['review_id']}: {recorded} (digest {review['digest']})"
    # what the next report would read of it: the report has no review section yet, so the
    # queue the review commands read stands for it
    reader = Store.open(store, read_only=True)
    try:
        queue = review_queue(reader, decision="confirmed_fraud")
    finally:
        reader.close()
    assert queue.get_column("finding_id").to_list() == [finding_id]
    assert (tmp_path / "07-triage.png").stat().st_size > 10_000
