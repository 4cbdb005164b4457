"""The live-widget cells of notebooks 04 and 05 run on their own after a kernel restart, or say on
their first line which cell they need (a static check of the names each cell uses)."""
from __future__ import annotations

import ast
import builtins
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDGETS = ("image_picker", "upload_widget", "hand_model_widget", "annotation_tool")


def _free_names(source: str) -> set[str]:
    """Names a cell reads without defining them (imports, assignments, loop targets, functions)."""
    tree = ast.parse(source)
    bound = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
             if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    bound |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    bound |= {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    bound |= {arg.arg for node in ast.walk(tree) if isinstance(node, ast.arguments)
              for arg in node.args + node.kwonlyargs}
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return used - bound - set(dir(builtins))


def _live_cells(name: str) -> list[str]:
    cells = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4).cells
    return [c.source for c in cells if c.cell_type == "code" and any(f"{w}(" in c.source for w in WIDGETS)]


@pytest.mark.parametrize("name, count", [("04_interactive_3d", 3), ("05_failure_analysis", 1)])
def test_live_cells_are_self_contained_or_say_what_to_run_first(name: str, count: int) -> None:
    cells = _live_cells(name)
    assert len(cells) == count
    for source in cells:
        free = _free_names(source)
        first = source.splitlines()[0]
        if free:
            assert first.startswith("# Needs") and all(f"`{n}`" in first for n in free), \
                f"{name}: a live cell uses {sorted(free)} from other cells without saying so:\n{source}"


def test_the_free_name_check_finds_a_missing_name() -> None:
    assert _free_names("from x import f\nf(model)\nfor i in range(2):\n    print(i)") == {"model"}
