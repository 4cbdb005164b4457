"""The report build: execution in a fresh kernel, offline HTML export, index, errors, PDF."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import stat
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from handpose import report
from handpose.io import save_png_atomic
from handpose.prediction import HandPrediction
from handpose.sample import canonical_hand_keypoints

PLOTLYJS_MARKER = "* plotly.js v"


def hand_2d(centre: tuple[float, float], size: float = 100.0) -> np.ndarray:
    """A plausible hand's 21 keypoints ``(21, 2)`` px, about ``size`` px tall, around ``centre``."""
    xy = canonical_hand_keypoints()[:, :2]
    xy = (xy - xy.mean(0)) / np.ptp(xy, axis=0).max() * size
    return xy + np.asarray(centre)


class ByColourEstimator:
    """A fake estimator: the photo's grey level (10, 20, 30) says which hands it "finds"."""

    name = "by-colour"

    def __init__(self, hands_by_level: dict[int, list[np.ndarray]]) -> None:
        self.hands_by_level = hands_by_level

    def predict(self, image: np.ndarray) -> list[HandPrediction]:
        return [HandPrediction(xy, np.zeros((21, 3)), "right", 0.9)
                for xy in self.hands_by_level[int(image[0, 0, 0])]]

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ByColourEstimator]:
    """Four photos with known answers: a.png, one hand found 5 px off (3-4-5) everywhere; b.png, one
    of two hands found exactly; c.png, no ground truth; d.jpg, unreadable."""
    folder = tmp_path_factory.mktemp("photos")
    left, right = hand_2d((60, 75)), hand_2d((140, 75))
    for name, level in (("a.png", 10), ("b.png", 20), ("c.png", 30)):
        save_png_atomic(folder / name, np.full((150, 200, 3), level, np.uint8))
    (folder / "d.jpg").write_bytes(b"not a photo")
    gt = {"images": [
        {"image": "a.png", "width": 200, "height": 150, "hands": [{"keypoints_2d": left.tolist(), "handedness": "right"}]},
        {"image": "b.png", "width": 200, "height": 150, "hands": [{"keypoints_2d": left.tolist()},
                                                                  {"keypoints_2d": right.tolist()}]},
    ]}
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "metadata.csv").write_text("image,view,gesture,hands,occlusion,background,lighting,skin_tone,hard,notes\n"
                                         "b.png,palm,open,2,none,plain,indoor,light,1,two hands side by side\n")
    return folder, ByColourEstimator({10: [left + [3.0, 4.0]], 20: [right], 30: [left]})


def write_notebook(path: Path, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, photo_set) -> report.ReportResult:
    """Two tiny notebooks (two plotly figures + math, and a plain one) built into a report, with
    the photo set of :func:`photo_set` on its front page."""
    folder = tmp_path_factory.mktemp("notebooks")
    write_notebook(folder / "01_plotly.ipynb", [
        new_markdown_cell("# Tiny plotly notebook\n\nInline $P = K[R|t]$ and $$u = f X / Z$$\n\n"
                          "This notebook draws **two** figures with `plotly`:\n\n1. a 3D line;\n2. a 2D line."),
        new_code_cell("import os, sys\nprint('kernel:', sys.executable)\n"
                      "print('max images:', os.environ.get('HANDPOSE_MAX_IMAGES'))\nprint('cwd:', os.getcwd())"),
        new_code_cell("import plotly.graph_objects as go\n"
                      "go.Figure(go.Scatter3d(x=[0, 1], y=[0, 1], z=[0, 1]), layout=dict(width=400)).show()"),
        new_code_cell("go.Figure(go.Scatter(x=[0, 1], y=[1, 0]), layout=dict(width=400)).show()"),
    ])
    write_notebook(folder / "02_plain.ipynb", [
        new_markdown_cell("# Plain <notebook> & friends"),
        new_code_cell("print(6 * 7)"),
    ])
    out = tmp_path_factory.mktemp("report")
    # Left by an older build: an executed copy of 02 (removed), and an edited copy of 01 (kept).
    old_copy = nbformat.read(folder / "02_plain.ipynb", as_version=4)
    old_copy.cells[1].outputs = [new_output("stream", name="stdout", text="42\n")]
    nbformat.write(old_copy, out / "02_plain.ipynb")
    edited = nbformat.read(folder / "01_plotly.ipynb", as_version=4)
    edited.cells[1].source += "\n# my note"
    edited.cells[1].outputs = [new_output("stream", name="stdout", text="x\n")]
    nbformat.write(edited, out / "01_plotly.ipynb")
    photos, estimator = photo_set
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HANDPOSE_CACHE", str(tmp_path_factory.mktemp("cache")))  # the fake's predictions stay out
        return report.build_report(report.discover_notebooks(folder), out, timeout=120, max_images=3, pdf=False,
                                   log=lambda message: None, photo_sets=[photos], model=estimator)


def test_kernel_is_this_interpreter_with_the_environment(built: report.ReportResult) -> None:
    run = built.runs[0]
    text = "".join(o.get("text", "") for c in run.notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert f"kernel: {sys.executable}\n" in text
    assert "max images: 3\n" in text
    assert f"cwd: {run.source.parent.resolve()}\n" in text


def test_html_embeds_plotlyjs_once_and_loads_nothing_from_the_network(built: report.ReportResult) -> None:
    page = (built.index_html.parent / "01_plotly.html").read_text(encoding="utf-8")
    assert page.count(PLOTLYJS_MARKER) == 1
    assert len(re.findall(r'class="plotly-graph-div"', page)) == 2
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert "require.min.js" not in page and "mermaid" not in page
    assert "window.MathJax" in page and "MathJax.startup" in page  # MathJax 3, inline
    assert report.network_references(page) == []


def test_outputs_and_index(built: report.ReportResult) -> None:
    out = built.index_html.parent
    # No executed .ipynb next to the HTML (their widgets would show as text); an old executed copy
    # is removed, a notebook that is not one is left alone.
    assert sorted(p.name for p in out.iterdir()) == ["01_plotly.html", "01_plotly.ipynb", "02_plain.html", "index.html"]
    assert "# my note" in (out / "01_plotly.ipynb").read_text()
    assert stat.S_IMODE((out / "index.html").stat().st_mode) & 0o444 == 0o444  # readable by all
    assert built.runs[1].notebook.cells[1].outputs[0]["text"] == "42\n"
    index = built.index_html.read_text(encoding="utf-8")
    assert '<a href="01_plotly.html">Tiny plotly notebook</a>' in index
    assert '<a href="02_plain.html">Plain &lt;notebook&gt; &amp; friends</a>' in index
    # What each notebook covers, from its first markdown cell.
    assert ("<p>This notebook draws <strong>two</strong> figures with <code>plotly</code>:</p>"
            "<ol><li>a 3D line;</li><li>a 2D line.</li></ol>") in index
    for run in built.runs:
        assert run.seconds > 0
        assert f"{run.seconds:.1f} s" in index
    assert [run.title for run in built.runs] == ["Tiny plotly notebook", "Plain <notebook> & friends"]


def test_front_page_key_results(built: report.ReportResult, photo_set) -> None:
    """The photo set's known answers, as numbers and as thumbnails, on a page that works offline."""
    index = built.index_html.read_text(encoding="utf-8")
    assert report.network_references(index) == []
    assert f"<code>{photo_set[0].parent.name}/{photo_set[0].name}/</code>" in index
    assert "by-colour" in index  # the model
    for value, label in (("3", "hands found"), ("0.67", "recall"), ("0.667", "PCK@0.2"), ("2.5 px", "mean error"),
                         ("1.00", "precision")):
        assert f'<div class="value">{value}</div><div class="label">{label}</div>' in index
    # --max-images 3 as for the notebooks: d.jpg (unreadable) is not among them.
    assert "Ground truth: <code>gt.json</code> for 2 of the 3 photos." in index and "d.jpg" not in index
    # The worst photo: b.png (a hand missed), with its thumbnail; a.png and c.png are not failures.
    assert "b.png" in index and "a.png" not in index and "c.png" not in index
    assert "1 of 2 hands found<br>PCK@0.2 0.50, mean error 0.0 px" in index
    assert "two hands side by side" in index  # its metadata.csv notes
    (uri,) = re.findall(r'<img src="data:image/jpeg;base64,([^"]+)"', index)
    thumbnail = Image.open(io.BytesIO(base64.b64decode(uri)))
    assert thumbnail.format == "JPEG" and max(thumbnail.size) <= report.THUMBNAIL_SIDE


def test_summarize_photo_set_known_answers(photo_set, tmp_path: Path) -> None:
    folder, estimator = photo_set
    summary = report.summarize_photo_set(folder, model=estimator, cache_dir=tmp_path)
    assert (summary.n_photos, summary.n_unreadable, summary.n_hands) == (4, 1, 3)
    assert summary.ground_truth == folder / "gt.json" and (summary.n_gt_photos, summary.n_gt_hands) == (2, 3)
    assert summary.recall == pytest.approx(2 / 3) and summary.precision == 1.0
    assert summary.pck == pytest.approx(42 / 63)  # b.png's missed hand counts 0
    assert summary.mean_px == pytest.approx(2.5)  # 5 px (a.png) and 0 px (b.png)
    assert [w.name for w in summary.worst] == ["d.jpg", "b.png"]
    assert summary.worst[0].error and not summary.worst[0].thumbnail
    b = summary.worst[1]
    assert (b.n_gt, b.n_found, b.n_matched, b.pck) == (2, 1, 1, 0.5) and b.mean_px == pytest.approx(0.0, abs=1e-9)
    # Only the first photos, as the notebooks with HANDPOSE_MAX_IMAGES.
    first = report.summarize_photo_set(folder, model=estimator, cache_dir=tmp_path, max_images=1)
    # (from the prediction cache, which keeps 0.001 px)
    assert (first.n_photos, first.n_hands, first.pck, first.mean_px) == (1, 1, 1.0, pytest.approx(5.0, abs=1e-3))


def test_photo_set_without_ground_truth(tmp_path: Path) -> None:
    save_png_atomic(tmp_path / "p" / "x.png", np.full((40, 40, 3), 30, np.uint8))
    summary = report.summarize_photo_set(tmp_path / "p", model=ByColourEstimator({30: []}), cache_dir=tmp_path / "c")
    assert summary.ground_truth is None and np.isnan(summary.pck) and summary.n_hands == 0
    assert [w.name for w in summary.worst] == ["x.png"]  # no hand found in a photo without ground truth
    page = report.index_page([], 1.0, None, [summary])
    assert "accuracy not computed" in page and "0 hands found" in page


def test_notebook_summary() -> None:
    nb = new_notebook(cells=[new_markdown_cell(
        "# 6. Video\n\nA first paragraph.\n\nThis notebook tracks *hands* over [frames](https://x.org) "
        "of a <video>.\n\n| a | b |\n|---|---|")])
    assert report.notebook_summary(nb) == ('<p>This notebook tracks <em>hands</em> over <a href="https://x.org">frames'
                                           '</a> of a &lt;video&gt;.</p>')
    assert report.notebook_summary(new_notebook(cells=[new_markdown_cell("# Only a title")])) == ""
    assert report.notebook_summary(new_notebook()) == ""


def test_failing_cell_is_named(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "03_broken.ipynb", [
        new_markdown_cell("# Broken"),
        new_code_cell("x = 1"),
        new_code_cell("\n\ny = x + 1  # second line of the cell\nraise ValueError(f'boom {y}')"),
        new_code_cell("print('never runs')"),
    ])
    with pytest.raises(report.NotebookFailure) as info:
        report.execute_notebook(path, timeout=120)
    failure = info.value
    assert failure.cell_number == 3
    assert failure.first_line == "y = x + 1  # second line of the cell"
    assert failure.error == "ValueError: boom 2"
    assert str(failure) == ("03_broken.ipynb: cell 3 ('y = x + 1  # second line of the cell') failed: "
                            "ValueError: boom 2")


def test_cli_reports_the_failure_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", [new_code_cell("import math\nmath.sqrt(-1)")])
    code = report.main(["--notebooks", str(path), "--out", str(tmp_path / "out"), "--no-pdf", "--timeout", "120"])
    err = capsys.readouterr().err
    assert code == 1
    assert err == "report: FAILED in nb.ipynb: cell 1 ('import math') failed: ValueError: math domain error\n"


def test_notebook_timeout_names_the_running_cell(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "slow.ipynb", [
        new_code_cell("a = 1"), new_code_cell("import time\ntime.sleep(60)")])
    with pytest.raises(report.NotebookFailure, match=r"slow.ipynb: cell 2 \('import time'\) failed: timed out"):
        report.execute_notebook(path, timeout=4)


def test_offline_notebook_keeps_one_plotlyjs_and_strips_network_and_widgets() -> None:
    bundle = f"<script>/**\n{PLOTLYJS_MARKER}3.0.0\n*/ window.Plotly = {{}};</script>"
    cdn = '<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/3.2.2/es5/tex-svg.min.js"></script>'
    figure = '<div class="plotly-graph-div"></div><script>Plotly.newPlot()</script>'

    def html(text: str) -> nbformat.NotebookNode:
        return new_output("display_data", data={"text/html": text, "text/plain": "<Figure>"})

    nb = new_notebook(cells=[
        new_code_cell("a", outputs=[html(bundle), html(cdn + figure)]),
        new_code_cell("b", outputs=[html(bundle), html(figure)]),
        new_code_cell("c", outputs=[new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "VBox()"})]),
    ])
    nb.metadata["widgets"] = {"state": {}}
    clean = report.offline_notebook(nb)
    htmls = [o["data"]["text/html"] for c in clean.cells for o in c.outputs]
    assert htmls == [bundle, figure, figure]
    assert clean.cells[2].outputs == []
    assert "widgets" not in clean.metadata
    # The input is untouched.
    assert len(nb.cells[1].outputs) == 2 and "widgets" in nb.metadata


@pytest.mark.parametrize("snippet, leaks", [
    ('<script src="https://cdn.plot.ly/plotly.js"></script>', True),
    ("<script src='local.js'></script>", True),  # any script file breaks a single-file page
    ('<link rel="stylesheet" href="//fonts.example.org/a.css">', True),
    ('<img src="http://example.org/a.png">', True),
    ("<style>@import url('https://example.org/a.css');</style>", True),
    ('<script type="module">await import("https://example.org/m.js")</script>', True),
    ('<a href="https://example.org">a link is fine</a>', False),
    ('<svg xmlns="http://www.w3.org/2000/svg"></svg>', False),
    ('<img src="data:image/png;base64,AAAA">', False),
])
def test_network_references(snippet: str, leaks: bool) -> None:
    assert bool(report.network_references(f"<html>{snippet}</html>")) is leaks


def test_has_outputs() -> None:
    assert not report.has_outputs(new_notebook(cells=[new_markdown_cell("# a"), new_code_cell("1")]))
    assert report.has_outputs(new_notebook(cells=[new_code_cell("1", execution_count=1)]))
    assert report.has_outputs(new_notebook(cells=[new_code_cell("1", outputs=[new_output("stream", text="1")])]))


def test_notebook_title() -> None:
    nb = new_notebook(cells=[new_code_cell("# a comment"), new_markdown_cell("text\n## 2. Second *title*\n# x")])
    assert report.notebook_title(nb, "fallback") == "2. Second *title*"
    assert report.notebook_title(new_notebook(), "fallback") == "fallback"


def test_index_page_goal_and_pdf_link() -> None:
    runs = [report.NotebookRun(Path("nb/01_a.ipynb"), "A", 12.34, new_notebook())]
    over = report.index_page(runs, 400.0, None)
    assert "over the 300 s goal" in over and "report.pdf" not in over and "12.3 s" in over
    within = report.index_page(runs, 120.0, "report.pdf")
    assert "within the 300 s goal" in within and '<a href="report.pdf">' in within


def test_find_chromium_uses_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert report.find_chromium() is None
    fake = tmp_path / "chromium-browser"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert report.find_chromium() == str(fake)


def test_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timeout"):
        report.execute_notebook(tmp_path / "x.ipynb", timeout=0)
    with pytest.raises(ValueError, match="max_images"):
        report.execute_notebook(tmp_path / "x.ipynb", max_images=0)
    with pytest.raises(ValueError, match="no notebooks"):
        report.build_report([], tmp_path)
    with pytest.raises(FileNotFoundError):
        report.discover_notebooks(tmp_path / "missing")


@pytest.mark.skipif(report.find_chromium() is None, reason="no Chromium on the PATH")
def test_pdf_prints_with_chromium(built: report.ReportResult, tmp_path: Path) -> None:
    html = built.index_html.parent / "01_plotly.html"
    pdf = report.print_pdf(html, tmp_path / "out.pdf", report.find_chromium(), budget_ms=20_000)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 10_000
    assert os.listdir(tmp_path) == ["out.pdf"]
