"""Reports killed at many moments, written onto a full disk, and fed hostile names: no file
that looks whole unless it is, no worker left behind, nothing a reader's software acts on."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from posaudit.store import Store

POSAUDIT = [sys.executable, "-m", "posaudit"]
KILL_SHARES = (0.1, 0.3, 0.5, 0.65, 0.8, 0.9, 1.05)
FORMATS = "html,pdf,xlsx,csv,parquet"
HOSTILE_NAME = '=HYPERLINK("http://x","y") \u202eShop\x00\x1b[2J ' + "W" * 62


@pytest.fixture(scope="module")
def audited(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An audited store whose busiest merchant has a hostile name."""
    path = tmp_path_factory.mktemp("report-faults") / "audited.duckdb"
    shutil.copy(sample_store, path)
    done = subprocess.run(
        [*POSAUDIT, "run", "--db", str(path), "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    store = Store.open(path)
    try:
        busiest = store.query(
            "SELECT merchant_id FROM findings GROUP BY ALL ORDER BY count(*) DESC LIMIT 1"
        )[0][0]
        store.execute(
            "UPDATE merchants SET name = ? WHERE merchant_id = ?", [HOSTILE_NAME, busiest]
        )
    finally:
        store.close()
    return path


def report(store: Path, out: Path) -> list[str]:
    return [*POSAUDIT, "report", "--db", str(store), "--out", str(out), "--format", FORMATS]


def whole(path: Path) -> bool:
    """Whether a report file is complete, as its reader would find out."""
    data = path.read_bytes()
    if path.suffix == ".pdf":
        return data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")
    if path.suffix == ".xlsx":
        try:
            with zipfile.ZipFile(path) as book:
                return book.testzip() is None and "xl/workbook.xml" in book.namelist()
        except zipfile.BadZipFile:
            return False
    if path.suffix == ".html":
        return data.rstrip().endswith(b"</html>")
    if path.suffix == ".parquet":
        return data[:4] == b"PAR1" and data[-4:] == b"PAR1"
    return True  # csv: compared with a whole report's below


def spawned_workers(parent: int) -> Iterator[psutil.Process]:
    for process in psutil.process_iter(["ppid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if process.info["ppid"] == parent and "multiprocessing" in cmdline:
            yield process


def test_a_report_killed_at_any_moment_leaves_no_file_that_looks_whole(
    audited: Path, tmp_path: Path, tally: Any
) -> None:
    complete = tmp_path / "complete"
    began = time.monotonic()
    done = subprocess.run(report(audited, complete), capture_output=True, text=True, check=False)
    seconds = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    expected = {p.name: p.read_bytes() for p in complete.iterdir()}
    assert len(expected) == 5
    for share in KILL_SHARES:
        out = tmp_path / f"killed-{share}"
        process = subprocess.Popen(
            report(audited, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(seconds * share)
        workers = list(spawned_workers(process.pid))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        # the PDF worker dies with its parent: it neither writes nor waits forever
        _gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, [p.pid for p in alive]
        finals = [p for p in out.iterdir() if not p.name.startswith(".")] if out.exists() else []
        for path in finals:
            assert whole(path), f"killed at {share:.0%}: {path.name} is not whole"
            if path.suffix == ".csv":
                assert path.read_bytes() == expected[path.name]
        tally.record("kill -9 of report", f"{len(finals)} of 5 files whole, none half")
        # the next report over the same folder goes through and leaves no temporary file
        again = subprocess.run(report(audited, out), capture_output=True, text=True, check=False)
        assert again.returncode == 0, again.stderr
        assert sorted(p.name for p in out.iterdir()) == sorted(expected)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB file system: a report of the sample world does not fit on it."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_report_onto_a_full_disk_is_one_line_and_leaves_nothing(
    audited: Path, small_disk: Path, tally: Any
) -> None:
    out = small_disk / "report"
    result = subprocess.run(report(audited, out), capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"posaudit: error: cannot write the report to {out}: No space left on device\n"
    )
    assert list(out.iterdir()) == []
    tally.record("report onto a full disk", "one line, exit 2, no file")


def test_hostile_names_reach_the_reader_harmless(audited: Path, tmp_path: Path) -> None:
    out = tmp_path / "hostile"
    done = subprocess.run(report(audited, out), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    html = (out / "posaudit-report-run-00001-en.html").read_text(encoding="utf-8")
    csv = (out / "posaudit-findings-run-00001-en.csv").read_text(encoding="utf-8-sig")
    for text in (html, csv):
        assert not any(c in text for c in "\x00\x1b\u202e"), "a control character got through"
    assert '"\'=HYPERLINK(""http://x"",""y"") Shop[2J ' in csv
    assert "=HYPERLINK(&#34;http://x&#34;,&#34;y&#34;) Shop[2J" in html
    pdf = subprocess.run(
        ["pdftotext", "-layout", str(out / "posaudit-report-run-00001-en.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "\u202e" not in pdf and "Shop" in pdf
    # the long name breaks inside the page: no text line is wider than the page's
    assert max(len(line) for line in pdf.splitlines()) < 200
