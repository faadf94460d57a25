"""The notebooks' reviewed source: jupytext py:percent, parameterised, logic in the package."""

from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import jupytext.header
import pytest
from notebook_helpers import NOTEBOOK_NAMES, NOTEBOOKS

ROOT = NOTEBOOKS.parent


def test_the_notebooks_are_the_story_in_order() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.py")) == list(NOTEBOOK_NAMES)
    assert "notebooks/*.ipynb" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
@pytest.mark.parametrize("tool_version", [jupytext.__version__, "1.19.6", "9.0.0"])
def test_notebook_is_canonical_py_percent(
    name: str, tool_version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saving from JupyterLab (jupytext) rewrites the file byte for byte: reviews see real edits.

    Whatever jupytext version saves it: the version it would write into the header is filtered
    out by the notebook's own metadata filter, so a new jupytext release changes nothing.
    """
    monkeypatch.setattr(jupytext.header, "__version__", tool_version)
    path = NOTEBOOKS / f"{name}.py"
    notebook = jupytext.read(path)
    assert jupytext.writes(notebook, fmt="py:percent") == path.read_text(encoding="utf-8")
    assert "jupytext_version:" not in path.read_text(encoding="utf-8")
    assert notebook.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith(
        f"# {name[:2]} · "
    )


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_has_one_parameters_cell_with_store_and_run(name: str) -> None:
    notebook = jupytext.read(NOTEBOOKS / f"{name}.py")
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assigned = {
        target.id: ast.literal_eval(node.value)
        for node in ast.parse(tagged[0].source).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert assigned["db"] is None and assigned["run_id"] is None
    assert "nb.open_audit(db, run_id)" in "".join(c.source for c in notebook.cells)


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_holds_no_logic(name: str) -> None:
    """Narrative, parameters, calls and charts: no functions, loops or queries of its own."""
    notebook = jupytext.read(NOTEBOOKS / f"{name}.py")
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(
                node, ast.FunctionDef | ast.ClassDef | ast.Lambda | ast.For | ast.While
            ), f"{name}: {type(node).__name__} in a cell"
            if isinstance(node, ast.ImportFrom):
                assert node.module in {"posaudit", "posaudit.notebook", "IPython.display"}, (
                    node.module
                )
            if isinstance(node, ast.Import):
                raise AssertionError(f"{name}: import {[a.name for a in node.names]}")
        assert "SELECT" not in cell.source.upper().split("#")[0], f"{name}: SQL in a cell"


def test_the_notebooks_link_to_each_other() -> None:
    start = (NOTEBOOKS / "00-start-here.py").read_text(encoding="utf-8")
    for name in NOTEBOOK_NAMES[1:]:
        assert f"]({name}.py)" in start


def test_make_lab_builds_the_demo_store_when_missing() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert 'test -f "$$db" || $(BIN)/posaudit demo --db "$$db"' in recipe
    assert '$(BIN)/posaudit lab --db "$$db"' in recipe


def test_readme_names_the_lab_command() -> None:
    assert "posaudit lab [--db PATH] [--port N]" in Path(ROOT / "README.md").read_text(
        encoding="utf-8"
    )


def test_the_notebook_package_uses_only_public_names_of_the_others() -> None:
    """What the notebooks call reaches the rest of posaudit by its public names only."""
    offenders = []
    for path in sorted((ROOT / "src" / "posaudit" / "notebook").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        other_packages: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("posaudit"):
                if node.module == "posaudit.notebook" or node.module.startswith(
                    "posaudit.notebook."
                ):
                    continue
                offenders += [f"{path.name}: {a.name}" for a in node.names if a.name[0] == "_"]
                other_packages |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                other_packages |= {
                    a.asname or a.name for a in node.names if a.name.startswith("posaudit")
                }
        offenders += [
            f"{path.name}: {node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in other_packages
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ]
    assert offenders == []
