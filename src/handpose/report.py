"""Build the course report: run every notebook, export self-contained HTML, an index and a PDF.

``python -m handpose.report [--notebooks NB ...] [--out report] [--timeout 600] [--max-images N]``

* Each notebook runs top to bottom in a fresh kernel of *this* interpreter (the venv's python),
  with the working directory set to the notebook's folder (as in JupyterLab). The kernel sees
  ``HANDPOSE_MAX_IMAGES`` (``--max-images``; notebooks loop over at most that many images) and
  ``PLOTLY_RENDERER`` = :data:`REPORT_RENDERER`.
* ``--timeout`` bounds each notebook's total run time. A failing cell stops the build with one
  message naming the notebook, the cell (number and first line) and the exception.
* ``report/`` (``--out``) receives one HTML file per notebook, ``index.html`` (the front page, see
  :func:`index_page`), and ``report.html`` + ``report.pdf`` (all notebooks in one document) when
  Chromium is on the PATH. Every HTML file opens offline: plotly.js and MathJax are embedded inline
  once per file, thumbnails are data URIs, and no script, stylesheet or image is loaded from the
  network (checked on export). The executed ``.ipynb`` files are not kept: their widgets need the
  live kernel that ran them (opened later in JupyterLab they showed as ``VBox(children=...)``
  text); open the notebooks of ``notebooks/`` to run them, the HTML files to read them.
* The front page's key results are computed on the photo sets (:func:`summarize_photo_set`):
  ``data/demo/`` (rendered, with exact ground truth) and ``data/captured/`` when it holds photos,
  with the notebooks' estimator and its prediction cache.

The notebooks' own helpers (``HANDPOSE_MAX_IMAGES``, ``save_figure``) are in the
light :mod:`handpose.notebook`.
"""
from __future__ import annotations

import argparse
import base64
import copy
import html
import importlib.metadata
import importlib.resources
import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
from jinja2 import DictLoader
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter
from nbformat import NotebookNode

from handpose import io, pipeline
from handpose.groundtruth import read_ground_truth
from handpose.io import write_atomic
from handpose.keypoints import NUM_KEYPOINTS
from handpose.metrics import endpoint_error, evaluate_2d, pck
from handpose.paths import MAX_IMAGES_ENV, find_repo_root

#: Whole-report goal on the 20 demo images, seconds.
GOAL_SECONDS = 300.0
#: Plotly renderer of the report's kernels: the plotly mime type (JupyterLab) plus HTML whose first
#: figure carries plotly.js inline (the exported HTML).
REPORT_RENDERER = "plotly_mimetype+notebook"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--run-all-compositor-stages-before-draw", "--no-pdf-header-footer",
)
# The first line of the plotly.js bundle's licence header; it marks an output that embeds plotly.js.
_PLOTLYJS_MARKER = "* plotly.js v"
_NETWORK_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*</script>", re.IGNORECASE)
_NETWORK_REFERENCE = re.compile(
    r"<script\b[^>]*\bsrc\s*=|<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//|<img\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//"
    r"|@import\s+url\(\s*[\"']?(?:https?:)?//|\bimport\(\s*[\"'](?:https?:)?//",
    re.IGNORECASE,
)
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

#: The nbconvert "lab" template with every network load replaced (package data: no require.js,
#: since plotly.js defines window.Plotly without it; MathJax 3 inline; no mermaid, no widget
#: manager; print-friendly CSS).
TEMPLATE_FILE = "handpose.html.j2"


class NotebookFailure(RuntimeError):
    """A notebook's cell raised or timed out: names the notebook, the cell and the exception."""

    def __init__(self, notebook: Path, cell_number: int | None, first_line: str, error: str) -> None:
        self.notebook, self.cell_number, self.first_line, self.error = notebook, cell_number, first_line, error
        where = f"cell {cell_number} ({first_line!r})" if cell_number is not None else "kernel start"
        super().__init__(f"{notebook.name}: {where} failed: {error}")


@dataclass
class NotebookRun:
    """One executed notebook.

    Attributes:
        source: the notebook in ``notebooks/``.
        title: its first markdown heading (or file stem).
        seconds: wall time of the execution, kernel start included.
        notebook: the executed notebook with its outputs.
    """

    source: Path
    title: str
    seconds: float
    notebook: NotebookNode


@dataclass
class ReportResult:
    """What :func:`build_report` wrote, with the run times."""

    runs: list[NotebookRun]
    index_html: Path
    pdf: Path | None
    seconds: float


class _InterpreterKernelSpecs(KernelSpecManager):
    """Every kernel name resolves to an IPython kernel of the running interpreter (sys.executable),
    which logs only errors to the build's terminal (not its start-up warnings, e.g. about TCP on
    localhost)."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--log-level=ERROR"],
            display_name=f"Python {sys.version_info.major}.{sys.version_info.minor} ({sys.executable})",
            language="python",
        )


def discover_notebooks(directory: str | os.PathLike) -> list[Path]:
    """The ``*.ipynb`` files of ``directory`` in name order (``01_...``, ``02_...``)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder {folder} does not exist")
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def notebook_title(nb: NotebookNode, fallback: str) -> str:
    """The text of the notebook's first markdown heading, or ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def has_outputs(nb: NotebookNode) -> bool:
    """Whether any code cell has outputs or an execution count (committed notebooks must not)."""
    return any(
        cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
        for cell in nb.cells
    )


@contextmanager
def _environment(**variables: str) -> Iterator[None]:
    """Set environment variables (inherited by kernels started inside) and restore them after."""
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_notebook(path: str | os.PathLike, timeout: float = 600.0, max_images: int | None = None) -> NotebookRun:
    """Run one notebook top to bottom in a fresh kernel, cwd = its folder.

    Args:
        path: the ``.ipynb`` file.
        timeout: seconds for the whole notebook.
        max_images: exported to the kernel as ``HANDPOSE_MAX_IMAGES`` when given.

    Raises:
        NotebookFailure: a cell raised, the time ran out, or the kernel died.
    """
    path = Path(path)
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}")
    nb = nbformat.read(path, as_version=4)
    current: dict[str, Any] = {"index": None}
    deadline = time.monotonic() + timeout

    def on_cell_start(cell: NotebookNode, cell_index: int) -> None:
        current["index"] = cell_index

    client = NotebookClient(
        nb,
        km=AsyncKernelManager(kernel_name="python3", kernel_spec_manager=_InterpreterKernelSpecs()),
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
        resources={"metadata": {"path": str(path.parent.resolve())}},
        on_cell_start=on_cell_start,
        allow_errors=False,
        record_timing=False,
    )
    variables = {"PLOTLY_RENDERER": REPORT_RENDERER}
    if max_images is not None:
        variables[MAX_IMAGES_ENV] = str(max_images)
    start = time.perf_counter()
    try:
        with _environment(**variables):
            client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        index = current["index"]
        lines = nb.cells[index].source.strip().splitlines() if index is not None else []
        first_line = lines[0] if lines else ""
        if isinstance(exc, CellExecutionError):
            error = f"{exc.ename}: {exc.evalue}"
        elif isinstance(exc, CellTimeoutError):
            error = f"timed out ({timeout:g} s for the notebook)"
        else:
            error = f"kernel died: {exc}"
        raise NotebookFailure(path, None if index is None else index + 1, first_line, error) from None
    return NotebookRun(path, notebook_title(nb, path.stem), time.perf_counter() - start, nb)


def _mathjax_js() -> str:
    """MathJax 3 (TeX input, SVG output, all TeX packages) as one script, from the mathjax wheel."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("MathJax is not installed: pip install django-static-mathjax")
    path = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5" / "tex-svg-full.js"
    if not path.is_file():
        raise FileNotFoundError(f"MathJax bundle not found at {path}")
    return path.read_text(encoding="utf-8")


def offline_notebook(nb: NotebookNode) -> NotebookNode:
    """A copy of ``nb`` ready for offline HTML: no network scripts, plotly.js once, no widget views.

    * ``<script src="http...">`` tags in HTML outputs are removed (plotly adds a MathJax CDN tag to
      every figure; the page embeds MathJax itself).
    * Outputs embedding plotly.js after the first one are removed.
    * Widget views (live-kernel only) and the notebook's widget state are removed.
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    seen_plotlyjs = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if _WIDGET_VIEW in data:
                continue
            if "text/html" in data:
                text = _NETWORK_SCRIPT.sub("", "".join(data["text/html"]))
                if _PLOTLYJS_MARKER in text:
                    if seen_plotlyjs:
                        continue
                    seen_plotlyjs = True
                data["text/html"] = text
            kept.append(output)
        cell.outputs = kept
    return nb


def network_references(page: str) -> list[str]:
    """Snippets of ``page`` that would load a script, style sheet or image from elsewhere."""
    return [page[m.start():m.start() + 120] for m in _NETWORK_REFERENCE.finditer(page)]


def _template() -> str:
    return importlib.resources.files("handpose").joinpath("templates", TEMPLATE_FILE).read_text(encoding="utf-8")


def export_html(nb: NotebookNode, title: str) -> str:
    """Self-contained HTML of an executed notebook (plotly.js and MathJax inline, no network loads).

    Raises:
        ValueError: the page would still load something from the network.
    """
    exporter = HTMLExporter(
        template_name="lab", extra_loaders=[DictLoader({TEMPLATE_FILE: _template()})],
        template_file=TEMPLATE_FILE,
    )
    nb = offline_notebook(nb)
    nb.metadata["title"] = title
    page, _ = exporter.from_notebook_node(nb, resources={"handpose_mathjax_js": _mathjax_js()})
    leaks = network_references(page)
    if leaks:
        raise ValueError(f"exported HTML of {title!r} still loads from the network: {leaks[:3]}")
    return page


def combined_notebook(runs: Sequence[NotebookRun]) -> NotebookNode:
    """All executed notebooks as one, each starting on a new printed page."""
    combined = nbformat.v4.new_notebook()
    for i, run in enumerate(runs):
        if i:
            combined.cells.append(nbformat.v4.new_markdown_cell('<div class="handpose-page-break"></div>'))
        combined.cells.extend(copy.deepcopy(run.notebook.cells))
    return combined


# -- the front page ----------------------------------------------------------------------------

#: Worst photos shown on the front page per photo set, and their thumbnails' longer side in pixels
#: (shown at half that many CSS pixels: sharp on high-density screens and in print).
WORST_SHOWN = 4
THUMBNAIL_SIDE = 340


@dataclass
class PhotoScore:
    """One photo of a set, scored against its ground truth (when it has some).

    Attributes:
        name: file name.
        n_gt, n_found, n_matched: ground-truth hands, predicted hands, predicted hands matched to one.
        pck: PCK@0.2 of the photo's annotated joints (joints of missed hands count wrong); NaN
            without ground truth.
        mean_px: mean joint error of the matched hands in the photo file's pixels (NaN if none).
        error: why the photo could not be read, else ``None``.
        note: its ``metadata.csv`` notes / scenario, if any.
        thumbnail: ``data:image/jpeg;base64,...`` of the photo with the predicted hands (colours)
            and the ground truth (white), for the worst photos only, else ``""``.
    """

    name: str
    n_gt: int = 0
    n_found: int = 0
    n_matched: int = 0
    pck: float = math.nan
    mean_px: float = math.nan
    error: str | None = None
    note: str = ""
    thumbnail: str = ""


@dataclass
class PhotoSetSummary:
    """Key results of the estimator on one photo set (see :func:`summarize_photo_set`).

    Attributes:
        folder: the set's folder; label: how the page names it.
        model: the estimator's description.
        n_photos: photos listed; n_unreadable: those that could not be read.
        n_hands: hands found.
        ground_truth: the ground-truth file used, or ``None``.
        n_gt_photos, n_gt_hands: photos and hands with ground truth.
        recall, precision, pck: :func:`handpose.metrics.evaluate_2d` over the photos with ground truth.
        mean_px: mean joint error of the matched hands, photo-file pixels.
        worst: the worst photos, worst first (missed hands, then lowest PCK, then largest error).
    """

    folder: Path
    label: str
    model: str
    n_photos: int
    n_unreadable: int
    n_hands: int
    ground_truth: Path | None = None
    n_gt_photos: int = 0
    n_gt_hands: int = 0
    recall: float = math.nan
    precision: float = math.nan
    pck: float = math.nan
    mean_px: float = math.nan
    worst: list[PhotoScore] = field(default_factory=list)


def model_description(model: str | Any) -> str:
    """How the front page names an estimator (its registered name, with the package version)."""
    if model == "mediapipe":
        try:
            version = importlib.metadata.version("mediapipe")
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        return (f"MediaPipe Hands (mediapipe {version}, the models bundled in the wheel) through handpose's "
                "search (whole photo; palm detector on low scores, turns and windows; landmark network beside "
                "found hands, at people's wrists and on a coarse scan, every hand verified), default options")
    if isinstance(model, str):
        return model
    return str(getattr(model, "name", type(model).__name__))


def _thumbnail(image: np.ndarray, hands: Sequence[Any], truth: np.ndarray | None) -> str:
    """JPEG data URI of ``image`` with the predicted hands (colours) and the ground truth ``(M, 21, 2)``
    (white dots) drawn, cropped to the hands with a margin, at most :data:`THUMBNAIL_SIDE` pixels."""
    import cv2

    from handpose.viz import draw_hands, draw_keypoints

    drawn = draw_hands(image, hands, label=False)
    points = [h.keypoints_2d for h in hands]
    for hand in [] if truth is None else truth:
        drawn = draw_keypoints(drawn, hand, color=(255, 255, 255), bones=False)
        points.append(hand)
    points = np.concatenate(points).reshape(-1, 2) if points else np.zeros((0, 2))
    points = points[np.all(np.isfinite(points), axis=1)]
    height, width = drawn.shape[:2]
    if len(points):  # a square around all hands, half a hand's size larger, inside the photo
        centre = (points.min(0) + points.max(0)) / 2
        half = max(32.0, 0.75 * float((points.max(0) - points.min(0)).max()))
        x0, y0 = np.clip(np.floor(centre - half), 0, None).astype(int)
        x1, y1 = np.minimum(np.ceil(centre + half), [width, height]).astype(int)
        drawn = drawn[y0:y1, x0:x1]
    scale = THUMBNAIL_SIDE / max(drawn.shape[:2])
    if scale < 1:
        drawn = cv2.resize(drawn, (max(1, round(drawn.shape[1] * scale)), max(1, round(drawn.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    return "data:image/jpeg;base64," + base64.b64encode(io.encode_jpeg(np.ascontiguousarray(drawn), 85)).decode("ascii")


def summarize_photo_set(folder: str | os.PathLike, label: str | None = None, model: str | Any = "mediapipe",
                        max_images: int | None = None, cache_dir: str | os.PathLike | None = None,
                        worst: int = WORST_SHOWN) -> PhotoSetSummary:
    """Run ``model`` on the photos of ``folder`` (the prediction cache makes this fast after the
    notebooks) and score them against ``gt.json`` / ``annotations.json`` when there is one.

    Args:
        folder: the photo set (its images, :func:`handpose.io.list_images`).
        label: how the page names the set (default: the folder's last two parts).
        model: registered estimator name or an estimator instance.
        max_images: only the first photos, as the notebooks with ``HANDPOSE_MAX_IMAGES``.
        cache_dir: prediction cache (default :func:`handpose.paths.prediction_cache_dir`).
        worst: how many of the worst photos get a thumbnail.
    """
    folder = Path(folder)
    paths = io.list_images(folder)[:max_images]
    results = pipeline.predict_folder(paths, None, model=model, cache_dir=cache_dir, progress=False)
    gt_file = next((f for f in (folder / "gt.json", folder / "annotations.json") if f.is_file()), None)
    truth = read_ground_truth(gt_file) if gt_file is not None else {}
    metadata = io.read_metadata_csv(folder / "metadata.csv") if (folder / "metadata.csv").is_file() else {}
    summary = PhotoSetSummary(folder, label or f"{folder.parent.name}/{folder.name}/", model_description(model),
                              len(paths), sum(r.error is not None for r in results),
                              sum(len(r.hands) for r in results), gt_file)
    scored = [r for r in results if r.error is None and r.image.name in truth]
    scores = {r.image.name: PhotoScore(r.image.name, n_found=len(r.hands), error=r.error) for r in results}
    for name, score in scores.items():
        tags = metadata.get(name, {})
        score.note = tags.get("notes") or ", ".join(
            f"{k} {v}" if k == "occlusion" else v for k, v in tags.items()
            if k in ("view", "gesture", "occlusion") and v not in ("", "none"))
    if scored:
        # Scored on the photo as loaded (it may be downscaled); errors converted to the file's pixels.
        gts = [truth[r.image.name].resized(r.width, r.height) for r in scored]
        evaluation = evaluate_2d([r.hands for r in scored], [g.keypoints_2d for g in gts],
                                 visible=[g.visibility for g in gts], gt_handedness=[g.handedness for g in gts])
        errors = []
        for r, gt, match in zip(scored, gts, evaluation.matches):
            score = scores[r.image.name]
            to_file = truth[r.image.name].width / r.width
            pred = np.array([h.keypoints_2d for h in r.hands]).reshape(-1, NUM_KEYPOINTS, 2)[match.pairs[:, 0]]
            true, visible = gt.keypoints_2d[match.pairs[:, 1]], gt.visibility[match.pairs[:, 1]]
            hand_errors = (np.nanmean(endpoint_error(pred, true, visible), axis=1) * to_file).tolist()
            errors += hand_errors
            score.n_gt, score.n_matched = len(gt.keypoints_2d), len(match.pairs)
            # Joints of missed hands count wrong, as in evaluate_2d.
            n_joints = int(gt.visibility.sum())
            score.pck = float(np.nansum(pck(pred, true, 0.2, visible=visible))) / n_joints if n_joints else math.nan
            score.mean_px = float(np.mean(hand_errors)) if hand_errors else math.nan
        summary.n_gt_photos, summary.n_gt_hands = len(scored), evaluation.n_gt
        summary.recall, summary.precision, summary.pck = evaluation.recall, evaluation.precision, evaluation.pck
        summary.mean_px = float(np.mean(errors)) if errors else math.nan

    def badness(score: PhotoScore) -> tuple:
        return (score.error is None, -(score.n_gt - score.n_matched),
                score.pck if not math.isnan(score.pck) else 2.0, -np.nan_to_num(score.mean_px, nan=-1.0))

    ranked = sorted(scores.values(), key=badness)
    summary.worst = [s for s in ranked if s.error or s.n_matched < s.n_gt or s.pck < 1.0
                     or (not truth and s.n_found == 0)][:worst]
    images = {r.image.name: r for r in results}
    for score in summary.worst:
        if score.error is None:
            result = images[score.name]
            image = io.load_image(result.image)
            gt = truth[score.name].resized(result.width, result.height).keypoints_2d if score.name in truth else None
            score.thumbnail = _thumbnail(image, result.hands, gt)
    return summary


def default_photo_sets(root: Path) -> list[Path]:
    """The front page's photo sets: ``data/demo/`` and ``data/captured/`` (when it holds photos)."""
    sets = []
    for name in ("demo", "captured"):
        folder = root / "data" / name
        if folder.is_dir() and io.list_images(folder):
            sets.append(folder)
    return sets


_MD_INLINE = (
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*"), r"<em>\1</em>"),
    (re.compile(r"\$([^$]+)\$"), r"<var>\1</var>"),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
)


def _inline_markdown(text: str) -> str:
    """HTML of one paragraph of markdown (code, bold, emphasis, links; TeX shown as typed)."""
    text = html.escape(" ".join(text.split()), quote=False)
    for pattern, replacement in _MD_INLINE:
        text = pattern.sub(replacement, text)
    return text


def notebook_summary(nb: NotebookNode) -> str:
    """HTML of what a notebook covers, from its first markdown cell: the first paragraph that says
    "this notebook" (else the first one), with the list that follows it when it ends with a colon."""
    cell = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if cell is None:
        return ""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", cell.source) if b.strip() and not b.lstrip().startswith("#")]
    paragraphs = [i for i, b in enumerate(blocks) if not re.match(r"^(\d+\.|[-*]|\|)\s", b)]
    if not paragraphs:
        return ""
    first = next((i for i in paragraphs if "this notebook" in blocks[i].lower()), paragraphs[0])
    out = f"<p>{_inline_markdown(blocks[first])}</p>"
    following = blocks[first + 1] if first + 1 < len(blocks) else ""
    if blocks[first].endswith(":") and re.match(r"^(\d+\.|[-*])\s", following):
        items = re.split(r"\n\s*(?:\d+\.|[-*])\s+", "\n" + following)[1:]
        tag = "ol" if following[0].isdigit() else "ul"
        out += f"<{tag}>" + "".join(f"<li>{_inline_markdown(item)}</li>" for item in items) + f"</{tag}>"
    return out


def _number(value: float, digits: int = 2, suffix: str = "") -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}{suffix}"


def _photo_set_html(summary: PhotoSetSummary, used_by_notebooks: bool) -> str:
    """One photo set's section of the front page: figures, then the worst photos."""
    esc = html.escape
    found = f"in {summary.n_photos - summary.n_unreadable} photos"
    if summary.n_unreadable:
        found += f" ({summary.n_unreadable} more unreadable)"
    cards = [("hands found", str(summary.n_hands), found)]
    if summary.ground_truth is not None and summary.n_gt_photos:
        cards += [
            ("recall", _number(summary.recall), f"of {summary.n_gt_hands} ground-truth hands"),
            ("PCK@0.2", _number(summary.pck, 3), "joints within 0.2 of the hand's box (missed hands count 0)"),
            ("mean error", _number(summary.mean_px, 1, " px"), "per joint, matched hands, photo pixels"),
            ("precision", _number(summary.precision), "predicted hands that match a true one"),
        ]
        truth_line = (f"Ground truth: <code>{esc(summary.ground_truth.name)}</code> for {summary.n_gt_photos} "
                      f"of the {summary.n_photos} photos.")
    else:
        truth_line = ("No ground truth (<code>gt.json</code> or <code>annotations.json</code>): accuracy not "
                      "computed; notebook 5 has a tool to click the joints.")
    card_html = "".join(f'<div class="card"><div class="value">{esc(v)}</div><div class="label">{esc(k)}</div>'
                        f'<div class="hint">{esc(h)}</div></div>' for k, v, h in cards)
    rows = []
    for score in summary.worst:
        image = (f'<img src="{score.thumbnail}" alt="{esc(score.name)}">' if score.thumbnail else "")
        if score.error:
            what = f"unreadable: {esc(score.error)}"
        elif score.n_gt:
            what = (f"{score.n_matched} of {score.n_gt} hands found" + (f", {score.n_found - score.n_matched} extra"
                    if score.n_found > score.n_matched else "")
                    + f"<br>PCK@0.2 {_number(score.pck, 2)}, mean error {_number(score.mean_px, 1, ' px')}")
        else:
            what = f"{score.n_found} hands found"
        rows.append(f"<div class=photo>{image}<div><strong>{esc(score.name)}</strong><br>{what}"
                    f"{'<br><span class=note>' + esc(score.note) + '</span>' if score.note else ''}</div></div>")
    worst = (f"<h4>Worst photos <span class=hint>(predicted hands in colour, ground truth as white dots)</span></h4>"
             f"<div class=worst>{''.join(rows)}</div>" if rows else "")
    used = " <span class=tag>the notebooks' photos</span>" if used_by_notebooks else ""
    return (f"<section class=set><h3><code>{esc(summary.label)}</code>{used}</h3>"
            f"<p>{summary.n_photos} photos. {truth_line}</p><div class=cards>{card_html}</div>{worst}</section>")


def index_page(runs: Sequence[NotebookRun], total_seconds: float, pdf: str | None,
               photo_sets: Sequence[PhotoSetSummary] = ()) -> str:
    """``index.html``, the report's front page: key results per photo set (hands found, accuracy
    against the ground truth, the worst photos as inline thumbnails), the model and the photos,
    then one entry per notebook (link, what it covers, run time), the total and the PDF link."""
    esc = html.escape
    notebooks = "\n".join(
        f'<li><a href="{esc(run.source.stem)}.html">{esc(run.title)}</a> '
        f'<span class=hint>{esc(run.source.name)}, ran in {run.seconds:.1f} s</span>{notebook_summary(run.notebook)}</li>'
        for run in runs
    )
    status = "within" if total_seconds < GOAL_SECONDS else "over"
    pdf_line = f' All notebooks in one document: <a href="{pdf}">{pdf}</a>.' if pdf else ""
    used = next((s for s in photo_sets if s.folder.name == "captured"), photo_sets[0] if photo_sets else None)
    sets_html = "\n".join(_photo_set_html(s, s is used) for s in photo_sets)
    models = sorted({s.model for s in photo_sets})
    model_html = (f"<p><strong>Model:</strong> {esc('; '.join(models))}.</p>" if models else "")
    photos_html = ""
    if photo_sets:
        photos_html = ("<p><strong>Photos:</strong> " + "; ".join(
            f"<code>{esc(s.label)}</code> ({s.n_photos} photos"
            + (", rendered from the open hand model, exact ground truth" if s.folder.name == "demo" else "")
            + (", your photos" if s.folder.name == "captured" else "") + ")" for s in photo_sets)
            + ". The notebooks use <code>data/captured/</code> when it holds photos, else the demo set.</p>")
    results_html = (f"<h2>Key results</h2>{model_html}{photos_html}{sets_html}" if photo_sets else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>handpose report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 920px; margin: 2em auto; padding: 0 1em; color: #222;
        line-height: 1.45; }}
h1 {{ margin-bottom: 0.1em; }} h2 {{ border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }}
.hint, .note {{ color: #666; font-size: 0.9em; }}
.tag {{ background: #e7f0ff; color: #1a4fa0; font-size: 0.7em; padding: 2px 8px; border-radius: 10px;
        vertical-align: middle; font-family: system-ui, sans-serif; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 10px; margin: 0.6em 0 1em; }}
.card {{ flex: 1 1 150px; border: 1px solid #ddd; border-radius: 8px; padding: 10px 12px; background: #fafafa; }}
.card .value {{ font-size: 1.6em; font-weight: 600; }}
.card .label {{ font-weight: 600; }} .card .hint {{ font-size: 0.8em; }}
.worst {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; }}
.worst .photo {{ display: flex; gap: 10px; align-items: flex-start; break-inside: avoid; }}
.worst img {{ display: block; width: {THUMBNAIL_SIDE // 2}px; flex: none; border-radius: 4px; }}
h4 .hint {{ font-weight: normal; }}
ul.notebooks {{ list-style: none; padding-left: 0; }}
ul.notebooks > li {{ margin-bottom: 1em; }} ul.notebooks p {{ margin: 0.2em 0; }}
ul.notebooks > li > a {{ font-weight: 600; font-size: 1.05em; }}
code {{ background: #f3f3f3; padding: 0 3px; border-radius: 3px; }} var {{ font-family: serif; }}
section.set {{ margin-bottom: 1.5em; }}
</style></head>
<body>
<h1>handpose: hand pose estimation report</h1>
<p class=hint>Built {time.strftime("%Y-%m-%d %H:%M")} in {total_seconds:.1f} s ({status} the {GOAL_SECONDS:.0f} s goal).{pdf_line}</p>
{results_html}
<h2>Notebooks</h2>
<ul class=notebooks>
{notebooks}
</ul>
</body></html>
"""


def find_chromium() -> str | None:
    """Path of the first of ``chromium``, ``chromium-browser``, ``google-chrome`` on the PATH."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def print_pdf(html_path: Path, pdf_path: Path, chromium: str, budget_ms: int = 60_000, timeout: float = 300.0) -> Path:
    """Print an HTML file exported by :func:`export_html` to PDF with headless Chromium.

    The page is opened as ``...html#print``, which makes it replace each plotly figure by a PNG
    snapshot (software WebGL renders the 3D ones). ``budget_ms`` is Chromium's virtual time for
    the page's scripts (MathJax, plotly, snapshots) before printing.
    """
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="handpose-chromium-") as profile:
        tmp_pdf = Path(profile) / "out.pdf"
        command = [
            chromium, *CHROMIUM_FLAGS, f"--virtual-time-budget={budget_ms}", f"--user-data-dir={profile}",
            f"--print-to-pdf={tmp_pdf}", html_path.resolve().as_uri() + "#print",
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"Chromium did not print {html_path.name} within {timeout:g} s") from None
        if result.returncode != 0 or not tmp_pdf.is_file() or tmp_pdf.stat().st_size == 0:
            raise RuntimeError(f"Chromium could not print {html_path.name} (exit {result.returncode}): "
                               f"{result.stderr.strip()[-500:]}")
        return write_atomic(pdf_path, tmp_pdf.read_bytes())


def _is_executed_copy(path: Path, executed: NotebookNode) -> bool:
    """Whether ``path`` is an executed copy of the notebook ``executed`` came from: a notebook with
    outputs and the same cell sources (anything else there, e.g. an edited copy, is left alone)."""
    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError, TypeError, KeyError):
        return False
    return has_outputs(nb) and [c.source for c in nb.cells] == [c.source for c in executed.cells]


def build_report(
    notebooks: Sequence[str | os.PathLike],
    out: str | os.PathLike = "report",
    timeout: float = 600.0,
    max_images: int | None = None,
    pdf: bool = True,
    log: Any = print,
    photo_sets: Sequence[str | os.PathLike] | None = None,
    model: str | Any = "mediapipe",
) -> ReportResult:
    """Execute ``notebooks`` in order and write the report to ``out`` (see the module docstring).

    ``photo_sets``: the folders summarised on the front page (default :func:`default_photo_sets`),
    with ``model`` (and ``max_images``).

    Raises:
        NotebookFailure: the first failing notebook's failing cell.
        RuntimeError: Chromium failed to print the PDF.
    """
    if not notebooks:
        raise ValueError("no notebooks to run")
    out = Path(out)
    start = time.perf_counter()
    runs = []
    for source in map(Path, notebooks):
        run = execute_notebook(source, timeout=timeout, max_images=max_images)
        write_atomic(out / f"{source.stem}.html", export_html(run.notebook, run.title))
        stale = out / source.name
        if _is_executed_copy(stale, run.notebook):  # written by earlier versions of this build
            stale.unlink()
            log(f"report: removed {stale} (executed copies are no longer kept; its widgets showed as text)")
        log(f"report: {source.name:<36} {run.seconds:6.1f} s  {run.title}")
        runs.append(run)
    pdf_path = None
    chromium = find_chromium() if pdf else None
    if pdf and chromium is None:
        log(f"report: no Chromium on the PATH ({', '.join(CHROMIUM_NAMES)}): skipping report.pdf")
    if chromium is not None:
        combined = out / "report.html"
        write_atomic(combined, export_html(combined_notebook(runs), "handpose report"))
        pdf_path = print_pdf(combined, out / "report.pdf", chromium)
        log(f"report: {pdf_path} printed with {chromium}")
    folders = default_photo_sets(find_repo_root()) if photo_sets is None else [Path(f) for f in photo_sets]
    summaries = [summarize_photo_set(folder, model=model, max_images=max_images) for folder in folders]
    for summary in summaries:
        log(f"report: {summary.label:<36} {summary.n_hands} hands in {summary.n_photos} photos, "
            f"PCK@0.2 {_number(summary.pck, 3)}, mean error {_number(summary.mean_px, 1, ' px')}")
    total = time.perf_counter() - start
    index = write_atomic(
        out / "index.html", index_page(runs, total, pdf_path.name if pdf_path else None, summaries)
    )
    verdict = "within" if total < GOAL_SECONDS else "OVER"
    log(f"report: total {total:.1f} s ({verdict} the {GOAL_SECONDS:.0f} s goal) -> {index}")
    return ReportResult(runs, index, pdf_path, total)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m handpose.report", description=__doc__.split("\n")[0])
    parser.add_argument("--notebooks", nargs="+", help="notebooks to run (default: notebooks/*.ipynb)")
    parser.add_argument("--out", type=Path, help="output folder (default: report/ in the checkout)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per notebook (default: 600)")
    parser.add_argument("--max-images", type=int, default=None,
                        help=f"images per notebook loop, exported as {MAX_IMAGES_ENV} (default: all)")
    parser.add_argument("--no-pdf", action="store_true", help="skip report.pdf even when Chromium is found")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or discover_notebooks(find_repo_root() / "notebooks")
    out = args.out or find_repo_root() / "report"
    try:
        build_report(notebooks, out, args.timeout, args.max_images, pdf=not args.no_pdf)
    except NotebookFailure as exc:
        print(f"report: FAILED in {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # printing the PDF
        print(f"report: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
