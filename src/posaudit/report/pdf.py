"""The PDF: the report page through WeasyPrint (A4, page numbers and contents from the CSS).

Kept apart from the builder, with nothing heavier than WeasyPrint to import, so the builder
can lay the PDF out in a child process while it writes the other formats.

WeasyPrint draws with whatever font fontconfig offers in place of a missing one, and says
nothing: without Noto Sans CJK every Chinese character becomes an empty box and the English
report changes its face. :func:`missing_font` asks fontconfig, as Pango will for WeasyPrint,
before anything is written.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Final

# The face the stylesheet and the charts name first (charts.FONT); both languages use it.
PDF_FONT: Final = "Noto Sans CJK SC"
PDF_FONT_PACKAGE: Final = "fonts-noto-cjk"  # Debian's and Ubuntu's package of it
# The names WeasyPrint itself tries when find_library finds nothing (Windows, macOS builds).
_FONTCONFIG_NAMES: Final = (
    "libfontconfig.so.1",
    "fontconfig-1",
    "libfontconfig-1.dll",
    "libfontconfig.1.dylib",
)
_FC_MATCH_PATTERN: Final = 0  # FcMatchKind FcMatchPattern
_FC_RESULT_MATCH: Final = 0  # FcResult FcResultMatch


def _fontconfig() -> ctypes.CDLL | None:
    """The fontconfig library Pango (and so WeasyPrint) draws with; None if none loads."""
    found = ctypes.util.find_library("fontconfig")
    for name in (found, *_FONTCONFIG_NAMES):
        if name:
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                continue
            pointer = ctypes.c_void_p
            for function, argtypes, restype in (
                ("FcInitLoadConfigAndFonts", [], pointer),
                ("FcConfigDestroy", [pointer], None),
                ("FcPatternCreate", [], pointer),
                ("FcPatternDestroy", [pointer], None),
                ("FcPatternAddString", [pointer, ctypes.c_char_p, ctypes.c_char_p], ctypes.c_int),
                ("FcConfigSubstitute", [pointer, pointer, ctypes.c_int], ctypes.c_int),
                ("FcDefaultSubstitute", [pointer], None),
                ("FcFontMatch", [pointer, pointer, ctypes.POINTER(ctypes.c_int)], pointer),
                (
                    "FcPatternGetString",
                    [pointer, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
                    ctypes.c_int,
                ),
            ):
                getattr(lib, function).argtypes = argtypes
                getattr(lib, function).restype = restype
            return lib
    return None


def font_families(family: str) -> list[str] | None:
    """The families of the font fontconfig gives for ``family``; None without fontconfig.

    The question Pango asks when WeasyPrint lays text out, of the same library and under the
    same configuration (``FONTCONFIG_FILE`` included); it imports nothing of WeasyPrint.
    """
    fc = _fontconfig()
    if fc is None:
        return None
    config = fc.FcInitLoadConfigAndFonts()
    pattern = fc.FcPatternCreate()
    families: list[str] = []
    try:
        fc.FcPatternAddString(pattern, b"family", family.encode("utf-8"))
        fc.FcConfigSubstitute(config, pattern, _FC_MATCH_PATTERN)
        fc.FcDefaultSubstitute(pattern)
        result = ctypes.c_int()
        match = fc.FcFontMatch(config, pattern, ctypes.byref(result))
        if match:
            value = ctypes.c_char_p()
            while (
                fc.FcPatternGetString(match, b"family", len(families), ctypes.byref(value))
                == _FC_RESULT_MATCH
            ):
                families.append((value.value or b"").decode("utf-8", "replace"))
            fc.FcPatternDestroy(match)
    finally:
        fc.FcPatternDestroy(pattern)
        if config:
            fc.FcConfigDestroy(config)
    return families


def missing_font() -> str | None:
    """One line for the user when the PDF's font is not installed; None when it is."""
    families = font_families(PDF_FONT)
    if families is None:
        return "the PDF needs fontconfig, which is not installed: `apt-get install fontconfig`"
    if PDF_FONT in families:
        return None
    return (
        f"the PDF needs the font {PDF_FONT}, which fontconfig cannot find: install it with "
        f"`apt-get install {PDF_FONT_PACKAGE}` (Debian package {PDF_FONT_PACKAGE}), "
        "or leave pdf out of --format"
    )


# prctl option: the signal this process gets when its parent dies (linux/prctl.h)
PR_SET_PDEATHSIG: Final = 1
PARENT_CHECK_SECONDS: Final = 0.5


def write_pdf(html: str, path: Path) -> None:
    """Lay out ``html`` (the report page, print variant) and write it to ``path`` as PDF."""
    from weasyprint import HTML

    HTML(string=html, base_url=None).write_pdf(path)


def die_with_parent(parent: int) -> None:
    """Make this worker process end when ``parent`` does, however the parent ends.

    A PDF worker whose parent was killed would otherwise lay out and write the PDF after the
    report has failed, then wait forever for a parent that is gone, holding its memory. On
    Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); elsewhere, and
    for a parent that died before this ran, a watcher thread ends the process once its parent
    is no longer the one it started with.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="posaudit-parent-watch", daemon=True).start()
