"""Running the notebooks in memory and reading what they showed."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOK_NAMES = (
    "00-start-here",
    "01-logins-and-lockouts",
    "02-pin-hygiene",
    "03-refund-anomalies",
    "04-operator-risk",
    "05-finding-drilldown",
    "06-ingested-data",
    "07-triage",
    "08-sales-patterns",
    "09-fees-and-completeness",
    "10-operator-privileges",
    "11-merchant-typologies",
    "12-auditors-classics",
)


def prepared_notebook(name: str, parameters: dict[str, Any]) -> Any:
    """A notebook of notebooks/ converted in memory, with its parameters overridden.

    The parameters go into a cell right after the one tagged ``parameters``, as papermill does.
    """
    import jupytext
    import nbformat

    notebook = jupytext.read(NOTEBOOKS / f"{name}.py")
    index = next(
        i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])
    )
    source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    notebook.cells.insert(
        index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    )
    return notebook


def execute_notebooks(
    runs: dict[str, dict[str, Any]], *, at_once: int = 3, timeout: int = 300
) -> dict[str, Any]:
    """Run notebooks top to bottom, ``at_once`` kernels at a time, in one event loop.

    ``runs`` maps a notebook name to its parameters; returns the executed notebooks by name.
    A cell that fails raises ``nbclient.exceptions.CellExecutionError``.
    """
    import asyncio

    from nbclient import NotebookClient

    async def run_all() -> dict[str, Any]:
        gate = asyncio.Semaphore(at_once)

        async def run_one(name: str) -> Any:
            notebook = prepared_notebook(name, runs[name])
            client = NotebookClient(
                notebook,
                timeout=timeout,
                kernel_name="python3",
                resources={"metadata": {"path": str(NOTEBOOKS)}},
            )
            async with gate:
                await client.async_execute()
            return notebook

        done = await asyncio.gather(*(run_one(name) for name in runs))
        return dict(zip(runs, done, strict=True))

    return asyncio.run(run_all())


@dataclass(frozen=True)
class Outputs:
    """What a notebook showed: charts (their Vega-Lite specs), tables, and text."""

    charts: list[dict[str, Any]]
    tables: dict[str, int]  # title -> rows
    table_html: dict[str, str]
    text: str  # markdown, plain text, and the tables' HTML
    errors: list[str]

    def chart(self, title: str) -> dict[str, Any]:
        """The first chart with a title starting with ``title``."""
        for spec in self.charts:
            if any(t.startswith(title) for t in chart_titles(spec)):
                return spec
        raise AssertionError(
            f"no chart titled {title!r}; charts: {[sorted(chart_titles(s)) for s in self.charts]}"
        )


_SPEC = re.compile(r"\n  var spec = (\{.*?\});\n  window\.__posauditVegaEmbed", re.DOTALL)
_TABLE = re.compile(r'<div class="posaudit-table" data-title="([^"]*)" data-rows="(\d+)"')


def chart_titles(spec: Any) -> set[str]:
    """Every title text in a Vega-Lite spec, at any depth."""
    found: set[str] = set()
    if isinstance(spec, dict):
        title = spec.get("title")
        if isinstance(title, str):
            found.add(title)
        elif isinstance(title, dict) and isinstance(title.get("text"), str):
            found.add(title["text"])
        for value in spec.values():
            found |= chart_titles(value)
    elif isinstance(spec, list):
        for value in spec:
            found |= chart_titles(value)
    return found


def outputs_of(notebook: Any) -> Outputs:
    charts, tables, table_html, text, errors = [], {}, {}, [], []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                errors.append(f"{output.ename}: {output.evalue}")
                continue
            if output.output_type == "stream":
                text.append(output.text)
                continue
            data = output.get("data", {})
            page = data.get("text/html", "")
            if "posaudit-chart" in page:
                match = _SPEC.search(page)
                assert match, "a chart output without its spec"
                charts.append(json.loads(match.group(1).replace("<\\/", "</")))
                continue
            for title, rows in _TABLE.findall(page):
                tables[html.unescape(title)] = int(rows)
                table_html[html.unescape(title)] = page
            text.append(page)
            text.append(str(data.get("text/markdown", "")))
            text.append(str(data.get("text/plain", "")))
    return Outputs(charts, tables, table_html, "\n".join(text), errors)


def chart_rows(spec: dict[str, Any]) -> int:
    """Rows of inline data a spec carries, over all its datasets."""
    return sum(len(rows) for rows in spec.get("datasets", {}).values())
