"""The committed notebooks: clean in git, in sync with their sources, and all of them run.

Running them is the slow part of the suite (a fresh kernel each, about 10-30 s per notebook); it
runs in ``make test`` on reduced input (``HANDPOSE_MAX_IMAGES=3``), with figures written to a
temporary folder.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

from handpose import report
from handpose.notebook import FIGURES_DIR_ENV

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = report.discover_notebooks(ROOT / "notebooks")
NAMES = [path.stem for path in NOTEBOOKS]
HAS_DEMO = (ROOT / "data" / "demo" / "gt.json").is_file()

#: Per notebook: PNG files it saves with save_figure (at least these), and the least number of
#: (matplotlib images, plotly figures) its exported HTML shows.
EXPECTED = {
    "01_keypoints_and_heatmaps": (
        {"01_keypoints_named", "01_heatmap_targets", "01_heatmap_loss", "01_argmax_vs_soft_argmax",
         "01_root_depth_from_bone_length"} | ({"01_demo_ground_truth"} if HAS_DEMO else set()), (5, 1)),
    "02_pinhole_projection": (
        {"02_pinhole_steps", "02_weak_vs_perspective", "02_heatmap_registration"}, (3, 1)),
    "03_inference": (set(), (0, 0)),
    "04_interactive_3d": (set(), (0, 1)),
    "05_failure_analysis": (set(), (0, 0)),
    "06_video_and_gestures": ({"06_annotated_strip", "06_jitter", "06_finger_counts"}, (3, 0)),
}


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "scripts" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stderr_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """``"cell N: text"`` for every stderr stream output of an executed notebook."""
    return [f"cell {i + 1}: {output.get('text', '')[:300]}" for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" for output in cell.get("outputs", [])
            if output.get("output_type") == "stream" and output.get("name") == "stderr"]


def forward_fd2_to_notebooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make kernels started from now on in this test forward what their process writes to fd 2
    (native libraries' logs) to the notebook as stderr, as in JupyterLab and ``make report``:
    ipykernel does not when it sees ``PYTEST_CURRENT_TEST`` (inherited from pytest, which sets it
    again when the test body starts, so call this in the body)."""
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)


def test_mediapipe_in_a_kernel_writes_no_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MediaPipe's C++ graph logs reach a notebook through fd 2, which the kernel forwards as stderr."""
    forward_fd2_to_notebooks(monkeypatch)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import sys\nprint('python stderr is kept', file=sys.stderr)"),
        nbformat.v4.new_code_cell(
            f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\nfrom _synthetic import hand_silhouette\n"
            "from handpose.models.mediapipe import MediaPipeEstimator\n"
            "with MediaPipeEstimator() as estimator:\n    hands = estimator.predict(hand_silhouette(256))\n"
            "print(len(hands), 'hands')"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "mediapipe.ipynb")
    run = report.execute_notebook(tmp_path / "mediapipe.ipynb", timeout=300)
    assert [o.get("text") for o in run.notebook.cells[1].outputs] == ["1 hands\n"]
    assert stderr_outputs(run.notebook) == ["cell 1: python stderr is kept\n"]


def test_the_five_notebooks_are_there_in_order() -> None:
    assert NAMES == list(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert not report.has_outputs(nb), f"{path.name} has outputs: clear them (scripts/build_notebooks.py)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_no_markdown_lost_in_code_cells(path: Path) -> None:
    """A commented markdown heading in a code cell means a ``# %% [markdown]`` marker is missing."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            lost = [line for line in cell.source.splitlines() if re.match(r"#\s+#+\s", line)]
            assert not lost, f"{path.name}: markdown heading in a code cell: {lost[0]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_matches_its_source(path: Path) -> None:
    source = ROOT / "scripts" / "notebooks" / f"{path.stem}.py"
    assert path.read_text(encoding="utf-8") == _builder().build(source), \
        f"{path.name} is out of date: run scripts/build_notebooks.py"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_runs_and_exports(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forward_fd2_to_notebooks(monkeypatch)
    monkeypatch.setenv(FIGURES_DIR_ENV, str(tmp_path))
    run = report.execute_notebook(path, timeout=600, max_images=3)  # raises NotebookFailure on a cell error
    page = report.export_html(run.notebook, run.title)  # raises if anything loads from the network
    assert stderr_outputs(run.notebook) == [], f"{path.name} writes to stderr (log noise in the report)"
    figures, (min_images, min_plotly) = EXPECTED[path.stem]
    saved = {p.stem: p for p in tmp_path.glob("*.png")}
    assert figures <= set(saved), f"missing figures: {sorted(figures - set(saved))}"
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in saved.values())
    assert len(re.findall(r'<img\b[^>]*src="data:image/png;base64,', page)) >= min_images
    plotly_figures = page.count('class="plotly-graph-div"')
    assert plotly_figures >= min_plotly
    assert page.count("* plotly.js v") == (1 if plotly_figures else 0)  # embedded once, when needed
