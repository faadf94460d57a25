"""Altair charts as self-contained HTML that renders offline, several to a page.

Altair's ``html`` renderer with ``template="inline"`` embeds the Vega libraries in every
chart, but as top-level ``const`` declarations: in JupyterLab, where all outputs share one
page, the second chart's copy fails to redeclare them and the chart stays blank. This
renderer wraps the libraries and the embedding in functions and loads the libraries once per
page, so every output still carries all it needs (an exported notebook renders anywhere, no
CDN) and any number of charts render side by side.
"""

from __future__ import annotations

import json
import re
import uuid
from functools import cache
from typing import Any, Final

import altair as alt

RENDERER: Final = "posaudit"
# vega-embed's menu: export is useful; "open in editor" and "view source" need the network.
EMBED_OPTIONS: Final = {
    "mode": "vega-lite",
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
}


@cache
def _vega_bundle() -> tuple[str, str]:
    """The vega + vega-lite + vega-embed bundle vl-convert ships, and its Vega-Lite version."""
    import vl_convert
    from altair.utils._importers import vl_version_for_vl_convert

    version = vl_version_for_vl_convert()
    # the stub marks ``snippet`` required; it is optional (None: the bare libraries)
    bundle: str = vl_convert.javascript_bundle(vl_version=version)  # type: ignore[call-arg]
    return bundle, version


def _json_in_script(value: Any) -> str:
    """JSON that cannot end its <script> element early (``<\\/`` is ``</`` in a JS string)."""
    return json.dumps(value).replace("</", "<\\/")


def _bundle_in_script(bundle: str) -> str:
    """The bundle with any literal closing script tag split (the bundle has none today)."""
    return re.sub(r"</(script)", r"<\\/\1", bundle, flags=re.IGNORECASE)


def chart_html(spec: dict[str, Any], *, embed_options: dict[str, Any] | None = None) -> str:
    """One chart's Vega-Lite spec as an HTML fragment that renders with no network.

    Examples
    --------
    >>> html = chart_html({"mark": "point", "data": {"values": [{"a": 1}]}})
    >>> "window.__posauditVegaEmbed" in html and "</script>" in html
    True
    """
    bundle, version = _vega_bundle()
    div_id = f"posaudit-chart-{uuid.uuid4().hex}"
    options = json.dumps(embed_options or EMBED_OPTIONS)
    return (
        f'<div class="posaudit-chart" id="{div_id}"></div>\n'
        '<script type="text/javascript">\n'
        "(function () {\n"
        f'  if (window.__posauditVegaLite !== "{version}") {{\n'
        f"    (function () {{\n{_bundle_in_script(bundle)}\n    }})();\n"
        f'    window.__posauditVegaLite = "{version}";\n'
        "    window.__posauditVegaEmbed = window.vegaEmbed;\n"
        "  }\n"
        f"  var spec = {_json_in_script(spec)};\n"
        f'  window.__posauditVegaEmbed("#{div_id}", spec, {options}).catch(function (error) {{\n'
        f'    document.getElementById("{div_id}").textContent = "chart error: " + error;\n'
        "  });\n"
        "})();\n"
        "</script>"
    )


def _render(spec: dict[str, Any], **metadata: Any) -> dict[str, str]:
    options = {**EMBED_OPTIONS, **(metadata.get("embed_options") or {})}
    return {"text/html": chart_html(spec, embed_options=options)}


def enable() -> None:
    """Render every Altair chart of this kernel with :func:`chart_html`."""
    alt.renderers.register(RENDERER, _render)
    alt.renderers.enable(RENDERER)
