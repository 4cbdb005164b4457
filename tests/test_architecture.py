"""The package's layers hold (docs/ARCHITECTURE.md): no module-level import reaches a higher layer,
and the module-level import graph of ``handpose`` has no cycle.

Imports are read with ``ast`` (nothing is imported). Module level means anywhere outside a
function or class body, except under ``if TYPE_CHECKING:``; imports inside functions (lazy, for an
optional plot or dependency) may reach upwards but count for nothing here.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "handpose"

#: Layer of every module, by dotted name relative to ``handpose`` (a package entry covers its
#: submodules). 0 foundations, 1 models, 2 fitting and analysis, 3 drawing, 4 orchestration, 5 faces.
LAYERS: dict[str, int] = {
    "": 0,  # handpose/__init__.py
    "keypoints": 0, "camera": 0, "heatmap": 0, "rotations": 0, "paths": 0, "io": 0, "prediction": 0,
    "sample": 0, "alignment": 0, "groundtruth": 0, "anatomy": 0, "_arrays": 0, "mesh": 0, "views": 0,
    "models": 1, "detect": 1, "handmodel": 1, "setup_assets": 1,
    "fitting": 2, "losses": 2, "metrics": 2, "signals": 2, "sweeps": 2, "gestures": 2, "tracking": 2,
    "render": 3, "viz": 3, "plot3d": 3, "figures": 3,
    "pipeline": 4, "demo_data": 4, "scene": 4, "video": 4, "demo_clip": 4,
    "cli": 5, "report": 5, "widgets": 5, "annotate": 5, "notebook": 5, "live": 5,
}
#: Pairs (importer prefix, imported prefix) that the layer numbers allow but the rules forbid.
FORBIDDEN: tuple[tuple[str, str, str], ...] = (
    ("handmodel", "models", "a hand model knows no estimator"),
    ("render", "models", "drawing takes plain arrays, not estimators"),
    ("viz", "models", "drawing takes plain arrays, not estimators"),
    ("plot3d", "models", "drawing takes plain arrays, not estimators"),
    ("figures", "models", "drawing takes plain arrays, not estimators"),
)


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``src/handpose/a/b.py`` -> ``"a.b"``; a package's ``__init__.py`` -> the package's name."""
    parts = path.relative_to(package).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(path: Path, known: set[str], package: Path = PACKAGE) -> set[str]:
    """The ``handpose`` modules (names as in :data:`LAYERS`) that ``path`` imports at module level."""
    name = module_name(path, package)
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(target: str) -> str:
        """The longest known module at or above ``target`` (``a.b.C`` -> ``a.b`` if it is a module)."""
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "handpose" or alias.name.startswith("handpose."):
                        found.add(resolve(alias.name.removeprefix("handpose").lstrip(".")))
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: from the importing module's package
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (child.level - 1)] if child.level > 1 else base
                    absolute = ".".join([*filter(None, base), *([child.module] if child.module else [])])
                elif child.module == "handpose" or (child.module or "").startswith("handpose."):
                    absolute = child.module.removeprefix("handpose").lstrip(".")
                else:
                    continue
                for alias in child.names:  # `from handpose import camera` imports the module camera
                    found.add(resolve(f"{absolute}.{alias.name}".lstrip(".")))
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    found.discard(name)
    return found


def layer_of(name: str) -> int | None:
    """The layer of module ``name`` from its longest prefix in :data:`LAYERS`, else ``None``."""
    parts = name.split(".") if name else [""]
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return None


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(path) for path in files}
    return {module_name(path): module_level_imports(path, known) for path in files}


def test_every_module_has_a_layer(graph) -> None:
    missing = sorted(name for name in graph if layer_of(name) is None)
    assert not missing, (f"handpose modules without a layer: {missing}. Add each to LAYERS in "
                         f"tests/test_architecture.py and to the table of docs/ARCHITECTURE.md and README.md.")


def test_the_readme_module_table_names_every_module(graph) -> None:
    readme = (SRC.parent / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| layer | module | one idea |"):]
    table = table[:table.index("\n\n")]
    tops = sorted({name.split(".")[0] for name in graph if name})
    missing = [top for top in tops if f"`{top}`" not in table and f"`{top}/`" not in table]
    assert not missing, f"modules missing from README.md's module table: {missing}"


def test_no_module_level_import_reaches_a_higher_layer(graph) -> None:
    upward = [f"handpose.{name or '__init__'} (layer {layer_of(name)}) imports handpose.{other} "
              f"(layer {layer_of(other)})"
              for name, imports in graph.items() for other in sorted(imports)
              if layer_of(name) is not None and layer_of(other) is not None and layer_of(other) > layer_of(name)]
    assert not upward, "upward imports (move the code down, or import inside the function that needs it):\n" + \
        "\n".join(upward)


def test_forbidden_pairs(graph) -> None:
    broken = [f"handpose.{name} imports handpose.{other}: {why}"
              for name, imports in graph.items() for other in imports
              for low, high, why in FORBIDDEN if _under(name, low) and _under(other, high)]
    assert not broken, "\n".join(broken)


def test_no_import_cycle(graph) -> None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def walk(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for other in sorted(graph.get(name, ())):
            if state.get(other) == 1:
                return path[path.index(other):] + [other]
            if other not in state and (cycle := walk(other)):
                return cycle
        path.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := walk(name)):
            pytest.fail("module-level import cycle: " + " -> ".join(f"handpose.{m or '__init__'}" for m in cycle))


# -- the checker itself -------------------------------------------------------------------------


def test_analysis_never_draws() -> None:
    """Layer 2 computes; its figures are built in ``figures``: no import of drawing or matplotlib,
    not even inside a function."""
    drawing = {name for name, layer in LAYERS.items() if layer == 3}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if layer_of(name) != 2:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                if isinstance(node, ast.ImportFrom) else [])
            for target in targets:
                inner = target.removeprefix("handpose").lstrip(".")
                if target.startswith("matplotlib") or (target.startswith("handpose") and inner in drawing):
                    offenders.append(f"{name} imports {target}")
    assert not offenders, offenders


def test_the_reader_sees_module_level_imports_only(tmp_path) -> None:
    package = tmp_path / "handpose"
    (package / "sub").mkdir(parents=True)
    for name in ("__init__.py", "camera.py", "viz.py", "sub/__init__.py", "sub/deep.py"):
        (package / name).write_text("")
    (package / "metrics.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import handpose.camera as cam\n"
        "from handpose import sub\n"
        "from .sub.deep import thing\n"
        "if TYPE_CHECKING:\n    from handpose.viz import Figure\n"
        "try:\n    from handpose.sub import deep\nexcept ImportError:\n    pass\n"
        "def plot():\n    from handpose.viz import axes_grid\n")
    known = {module_name(p, package) for p in package.rglob("*.py")}
    assert module_level_imports(package / "metrics.py", known, package) == {"camera", "sub", "sub.deep"}
    assert layer_of("models.regions") == 1 and layer_of("handmodel.mano") == 1 and layer_of("nothing") is None
