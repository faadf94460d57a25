"""The PDF's font: without Noto Sans CJK SC the report refuses to write a PDF of boxes.

Each case runs ``posaudit report`` in a child process under its own fontconfig
configuration (``FONTCONFIG_FILE``), as a machine without the font would have it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEM_FONTS = Path("/usr/share/fonts")
FONTS_CONF = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig>
{dirs}
  <cachedir>{cache}</cachedir>
</fontconfig>
"""


@pytest.fixture(scope="module")
def audited(audited_sample: Path) -> Path:
    return audited_sample


def fonts_conf(folder: Path, font_dirs: list[Path]) -> Path:
    """A fontconfig configuration that knows only the fonts in ``font_dirs``."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "fonts.conf"
    dirs = "\n".join(f"  <dir>{d}</dir>" for d in font_dirs)
    conf.write_text(FONTS_CONF.format(dirs=dirs, cache=folder / "cache"), encoding="utf-8")
    return conf


def report(db: Path, out: Path, conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FONTCONFIG_FILE": str(conf)}
    command = [sys.executable, "-m", "posaudit", "report", "--db", str(db), "--out", str(out)]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=600, env=env, check=False
    )


def _font_folder(name: str) -> Path:
    found = sorted(SYSTEM_FONTS.rglob(name)) if SYSTEM_FONTS.exists() else []
    if not found:
        pytest.skip(f"no {name} under {SYSTEM_FONTS}")
    return found[0].parent


@pytest.mark.parametrize("fonts", ["none", "latin only"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_no_pdf_without_the_font(audited: Path, tmp_path: Path, fonts: str, lang: str) -> None:
    dirs = [] if fonts == "none" else [_font_folder("DejaVuSans.ttf")]
    conf = fonts_conf(tmp_path / "fc", dirs)
    out = tmp_path / "out"
    done = report(audited, out, conf, "--format", "html,pdf,xlsx", "--lang", lang)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("posaudit: error: the PDF needs the font Noto Sans CJK SC")
    assert "apt-get install fonts-noto-cjk" in lines[0]
    assert not out.exists()  # no PDF, and nothing else half-written beside it
    assert not list(tmp_path.rglob("*.pdf"))


def test_other_formats_need_no_font(audited: Path, tmp_path: Path) -> None:
    conf = fonts_conf(tmp_path / "fc", [])
    done = report(audited, tmp_path / "out", conf, "--format", "csv", "--lang", "zh")
    assert done.returncode == 0, done.stderr
    assert [p.suffix for p in (tmp_path / "out").iterdir()] == [".csv"]


@pytest.mark.slow
def test_pdf_with_the_font(audited: Path, tmp_path: Path) -> None:
    from pypdf import PdfReader

    conf = fonts_conf(tmp_path / "fc", [_font_folder("NotoSansCJK-Regular.ttc")])
    done = report(audited, tmp_path / "out", conf, "--format", "pdf", "--lang", "zh")
    assert done.returncode == 0, done.stderr
    (pdf,) = (tmp_path / "out").glob("*.pdf")
    fonts = {
        str(font.get_object()["/BaseFont"])
        for page in PdfReader(pdf).pages[:3]
        for font in page["/Resources"]["/Font"].values()
    }
    assert any("Noto-Sans-CJK-SC" in f for f in fonts), fonts
    assert all("Noto-Sans" in f for f in fonts), fonts  # the face it names, nothing in its place
