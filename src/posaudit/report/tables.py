"""The HTML report's tables in a browser: sorted by a click on a header, filtered as one types.

The page keeps every row as server-rendered HTML, so WeasyPrint (which runs no script) lays
the same rows out for the PDF and a reader with scripts off still sees them all. In a browser
DataTables enhances the tables marked ``data-table``: ``findings`` (the appendix: sort, filter,
pages) and ``list`` (the short lists: sort only). DataTables comes from the ``itables``
package's offline bundle, read at build time and inlined, so the report stays one file that
asks nothing of the network; the page's Content-Security-Policy allows that one script by its
hash and still forbids every request.

Cells whose text does not sort as it reads carry ``data-order``: severities by rank, windows
by their ISO start, scores and counts as plain numbers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

from posaudit.report.translations import Language

FINDINGS_PAGE_ROWS: Final = 50
# The bundle is an ES module ending in one export list; its names become a local object
# instead, so the page's own few lines can follow it in the same inline module.
_EXPORT: Final = re.compile(r"export\s*\{([^}]*)\}\s*;?")
# Inside <script>, "<!--", "<script" and "</script" change how HTML reads what follows. In the
# bundle they occur only inside strings and regular expressions, where \x3C means "<" too.
_SCRIPT_DATA_HAZARD: Final = re.compile(r"<(?=!--|/?script)", re.IGNORECASE)

# DataTables' own words on the page, in the report's language (its defaults are English).
UI: Final[dict[Language, dict[str, Any]]] = {
    "en": {
        "search": "Filter:",
        "searchPlaceholder": "words in any column",
        "lengthMenu": "Show _MENU_ findings a page",
        "info": "Findings _START_ to _END_ of _TOTAL_",
        "infoEmpty": "No findings to show",
        "infoFiltered": "(filtered from _MAX_)",
        "zeroRecords": "No finding matches the filter",
        "emptyTable": "No findings",
        "thousands": ",",
        "decimal": ".",
        "all": "All",
        "aria": {
            "orderable": "Sort by this column",
            "orderableReverse": "Sort this column in reverse",
            "orderableRemove": "Stop sorting by this column",
            "paginate": {
                "first": "First page",
                "previous": "Previous page",
                "next": "Next page",
                "last": "Last page",
            },
        },
    },
    "zh": {
        "search": "筛选：",
        "searchPlaceholder": "任一列中的文字",
        "lengthMenu": "每页显示 _MENU_ 项发现",
        "info": "第 _START_ 至 _END_ 项，共 _TOTAL_ 项发现",
        "infoEmpty": "没有可显示的发现",
        "infoFiltered": "（由 _MAX_ 项筛选）",
        "zeroRecords": "没有与筛选条件相符的发现",
        "emptyTable": "没有发现",
        "thousands": ",",
        "decimal": ".",
        "all": "全部",
        "aria": {
            "orderable": "按此列排序",
            "orderableReverse": "按此列倒序排序",
            "orderableRemove": "取消按此列排序",
            "paginate": {
                "first": "第一页",
                "previous": "上一页",
                "next": "下一页",
                "last": "最后一页",
            },
        },
    },
}

# What the page runs after the bundle: DataTables on each marked table, first shown in the
# order the report wrote (most severe first), never re-sorted until the reader asks.
_ENHANCE: Final = """
const DataTable = __datatables.default;
const ui = __UI__;
const { all, ...language } = ui;
for (const table of document.querySelectorAll("table[data-table]")) {
  const findings = table.dataset.table === "findings";
  new DataTable(table, {
    language,
    order: [],
    autoWidth: false,
    searching: findings,
    paging: findings,
    info: findings,
    pageLength: __PAGE_ROWS__,
    lengthMenu: [25, 50, 100, 500, { label: all, value: -1 }],
    layout: findings
      ? { topStart: "search", topEnd: "pageLength", bottomStart: "info", bottomEnd: "paging" }
      : { topStart: null, topEnd: null, bottomStart: null, bottomEnd: null },
  });
}
document.documentElement.dataset.tables = "ready";
"""


@dataclass(frozen=True)
class TableAssets:
    """The CSS and the one inline module script the HTML report carries for its tables."""

    css: str
    script: str

    @property
    def script_hash(self) -> str:
        """The script's CSP source expression: ``'sha256-...'``."""
        digest = hashlib.sha256(self.script.encode("utf-8")).digest()
        return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


@cache
def _bundle() -> tuple[str, str]:
    """DataTables' CSS and its module, rewritten to run inline (see the constants above)."""
    folder = resources.files("itables") / "html"
    css = (folder / "dt_bundle.css").read_text(encoding="utf-8")
    script = (folder / "dt_bundle.js").read_text(encoding="utf-8")
    exports = _EXPORT.findall(script)
    if len(exports) != 1:
        msg = f"itables' dt_bundle.js has {len(exports)} export lists where one was expected"
        raise RuntimeError(msg)
    names = []
    for item in exports[0].split(","):
        local, _, exported = item.strip().partition(" as ")
        names.append(f"{json.dumps(exported or local)}: {local}")
    script = _EXPORT.sub(lambda _: f"const __datatables = {{{', '.join(names)}}};", script)
    script = _SCRIPT_DATA_HAZARD.sub(r"\\x3C", script)
    return css.replace("</style", "<\\/style"), script


def table_assets(lang: Language) -> TableAssets:
    """What the HTML report inlines so its tables sort and filter in ``lang``."""
    css, bundle = _bundle()
    ui = json.dumps(UI[lang], ensure_ascii=False).replace("<", "\\u003c")
    enhance = _ENHANCE.replace("__UI__", ui).replace("__PAGE_ROWS__", str(FINDINGS_PAGE_ROWS))
    return TableAssets(css=css, script=f"{bundle}\n{enhance}")
