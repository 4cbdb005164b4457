"""Build the course report: run every notebook, export self-contained HTML, an index and a PDF.

``python -m handpose.report [--notebooks NB ...] [--out report] [--timeout 600] [--max-images N]``

* Each notebook runs top to bottom in a fresh kernel of *this* interpreter (the venv's python),
  with the working directory set to the notebook's folder (as in JupyterLab). The kernel sees
  ``HANDPOSE_MAX_IMAGES`` (``--max-images``; notebooks loop over at most that many images) and
  ``PLOTLY_RENDERER`` = :data:`REPORT_RENDERER`.
* ``--timeout`` bounds each notebook's total run time. A failing cell stops the build with one
  message naming the notebook, the cell (number and first line) and the exception.
* ``report/`` (``--out``) receives the executed notebooks, one HTML file per notebook, ``index.html``, and
  ``report.html`` + ``report.pdf`` (all notebooks in one document) when Chromium is on the PATH.
  Every HTML file opens offline: plotly.js and MathJax are embedded inline once per file, and no
  script, stylesheet or image is loaded from the network (checked on export).

The notebooks' own helpers (``HANDPOSE_MAX_IMAGES``, ``save_figure``) are in the
light :mod:`handpose.notebook`.
"""
from __future__ import annotations

import argparse
import copy
import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from jinja2 import DictLoader
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter
from nbformat import NotebookNode

from handpose.io import write_atomic
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

# The nbconvert "lab" template with every network load replaced: no require.js (plotly.js defines
# window.Plotly without it), MathJax 3 inline, no mermaid, no widget manager, print-friendly CSS.
_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  svg: {fontCache: 'global'},
  options: {enableMenu: false, ignoreHtmlClass: 'jp-OutputArea-output|jp-CodeMirrorEditor',
            processHtmlClass: 'jp-RenderedMarkdown'}
};
</script>
<script>{{ resources.handpose_mathjax_js }}</script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_css -%}
<style type="text/css">
main { max-width: 1000px; margin: 0 auto; }
.jp-RenderedImage img { max-width: 100%; height: auto; }
.handpose-page-break { break-before: page; }
@page { size: A4; margin: 12mm; }
@media print {
  .jp-InputPrompt, .jp-OutputPrompt { display: none !important; }
  .jp-OutputArea-output { overflow: visible !important; }
  .jp-InputArea-editor pre, .jp-OutputArea-output pre { white-space: pre-wrap !important; overflow-wrap: anywhere; }
  .jp-RenderedImage, .plotly-graph-div, img.handpose-snapshot { break-inside: avoid; }
}
</style>
{%- endblock html_head_css -%}
{%- block footer_js -%}
<script>
// Printing (page opened as ...html#print): WebGL canvases print blank, so every plotly figure is
// replaced by a PNG snapshot of itself once the page has loaded.
if (location.hash === '#print' && window.Plotly) {
  window.addEventListener('load', function () {
    document.querySelectorAll('.plotly-graph-div').forEach(function (gd) {
      var size = gd._fullLayout || {width: 700, height: 500};
      Plotly.toImage(gd, {format: 'png', width: size.width, height: size.height, scale: 2}).then(function (url) {
        var img = document.createElement('img');
        img.className = 'handpose-snapshot';
        img.src = url;
        img.style.width = size.width + 'px';
        gd.parentNode.replaceChild(img, gd);
      });
    });
  });
}
</script>
{%- endblock footer_js -%}
"""


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
    """Every kernel name resolves to an IPython kernel of the running interpreter (sys.executable)."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
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


def export_html(nb: NotebookNode, title: str) -> str:
    """Self-contained HTML of an executed notebook (plotly.js and MathJax inline, no network loads).

    Raises:
        ValueError: the page would still load something from the network.
    """
    exporter = HTMLExporter(
        template_name="lab", extra_loaders=[DictLoader({"handpose.html.j2": _TEMPLATE})],
        template_file="handpose.html.j2",
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


def index_page(runs: Sequence[NotebookRun], total_seconds: float, pdf: str | None) -> str:
    """``index.html``: one link per notebook with its title and run time, the total, the PDF link."""
    rows = "\n".join(
        f'<tr><td><a href="{html.escape(run.source.stem)}.html">{html.escape(run.title)}</a></td>'
        f"<td>{html.escape(run.source.name)}</td><td>{run.seconds:.1f} s</td></tr>"
        for run in runs
    )
    status = "within" if total_seconds < GOAL_SECONDS else "over"
    pdf_line = f'<p>All notebooks in one document: <a href="{pdf}">{pdf}</a>.</p>' if pdf else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>handpose report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 760px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ padding: 6px 10px; border-bottom: 1px solid #ddd; text-align: left; }}
td:last-child, th:last-child {{ text-align: right; }}
</style></head>
<body>
<h1>handpose: hand pose estimation report</h1>
<table><tr><th>notebook</th><th>file</th><th>run time</th></tr>
{rows}
</table>
<p>Total {total_seconds:.1f} s ({status} the {GOAL_SECONDS:.0f} s goal), built {time.strftime("%Y-%m-%d %H:%M")}.</p>
{pdf_line}
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


def build_report(
    notebooks: Sequence[str | os.PathLike],
    out: str | os.PathLike = "report",
    timeout: float = 600.0,
    max_images: int | None = None,
    pdf: bool = True,
    log: Any = print,
) -> ReportResult:
    """Execute ``notebooks`` in order and write the report to ``out`` (see the module docstring).

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
        write_atomic(out / source.name, nbformat.writes(run.notebook))
        write_atomic(out / f"{source.stem}.html", export_html(run.notebook, run.title))
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
    total = time.perf_counter() - start
    index = write_atomic(
        out / "index.html", index_page(runs, total, pdf_path.name if pdf_path else None)
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
