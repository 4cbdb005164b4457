"""The report build: execution in a fresh kernel, offline HTML export, index, errors, PDF."""
from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from handpose import report

PLOTLYJS_MARKER = "* plotly.js v"


def write_notebook(path: Path, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> report.ReportResult:
    """Two tiny notebooks (two plotly figures + math, and a plain one) built into a report."""
    folder = tmp_path_factory.mktemp("notebooks")
    write_notebook(folder / "01_plotly.ipynb", [
        new_markdown_cell("# Tiny plotly notebook\n\nInline $P = K[R|t]$ and $$u = f X / Z$$"),
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
    return report.build_report(report.discover_notebooks(folder), out, timeout=120, max_images=3, pdf=False,
                               log=lambda message: None)


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
    assert sorted(p.name for p in out.iterdir()) == [
        "01_plotly.html", "01_plotly.ipynb", "02_plain.html", "02_plain.ipynb", "index.html"]
    assert stat.S_IMODE((out / "index.html").stat().st_mode) & 0o444 == 0o444  # readable by all
    executed = nbformat.read(out / "02_plain.ipynb", as_version=4)
    assert executed.cells[1].outputs[0]["text"] == "42\n"
    index = built.index_html.read_text(encoding="utf-8")
    assert '<a href="01_plotly.html">Tiny plotly notebook</a>' in index
    assert '<a href="02_plain.html">Plain &lt;notebook&gt; &amp; friends</a>' in index
    for run in built.runs:
        assert run.seconds > 0
        assert f"{run.seconds:.1f} s" in index
    assert [run.title for run in built.runs] == ["Tiny plotly notebook", "Plain <notebook> & friends"]


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
