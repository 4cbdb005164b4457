"""The notebooks' live widgets in a real browser: JupyterLab on 127.0.0.1 (a free port, a token),
driven by Playwright with Debian's Chromium (``apt-get install chromium``; no browser is ever
downloaded). Skipped where Playwright or Chromium is missing.

* notebook 04 runs (on one photo); picking a photo, uploading one and moving a slider each change
  the output, and the slider keeps the camera the test rotated to;
* notebook 05's annotation tool (its demo offer) records clicks at the photo coordinates under
  the mouse.

Every wait is bounded; the server and its kernels are shut down in a finalizer. About two minutes on
two busy cores, mostly notebook 04 (MediaPipe and the mesh fit of one photo, the figures, the widgets).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import numpy as np
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the Python package) is not installed")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
NOTEBOOK_04 = ROOT / "notebooks" / "04_interactive_3d.ipynb"
SERVER_START_S = 90  # JupyterLab's start, and a kernel's
NOTEBOOK_04_S = 300  # running notebook 04 on one photo
ACTION_S = 60  # one widget's answer (an upload runs MediaPipe and a fit)
#: JupyterLab settings: no news or update pop-ups over the page, every cell rendered (no windowing).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET", body: dict | None = None) -> object:
    request = urllib.request.Request(f"{base}{path}", method=method, data=None if body is None else
                                     json.dumps(body).encode(), headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """``(base_url, token, folder)`` of a JupyterLab serving ``folder``, a temporary copy of what
    the tests open (the repository's notebooks are never opened, so never autosaved)."""
    folder = tmp_path_factory.mktemp("lab")
    config = tmp_path_factory.mktemp("jupyter")
    for name, values in LAB_SETTINGS.items():
        path = config / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    shutil.copy(NOTEBOOK_04, folder / NOTEBOOK_04.name)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "HANDPOSE_MAX_IMAGES": "1", "JUPYTERLAB_SETTINGS_DIR": str(config / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(config / "workspaces"), "JUPYTER_CONFIG_DIR": str(config / "config"),
           "JUPYTER_RUNTIME_DIR": str(config / "runtime"), "PYTHONPATH": os.pathsep.join(
               [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    log = open(config / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
         "--allow-root", "--ServerApp.terminals_enabled=False", "--LabApp.news_url=None",
         "--LabApp.extension_manager=readonly"],  # nothing from the network
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                _api(base, token, "/api/status")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(config / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield base, token, folder
    finally:
        try:
            for kernel in _api(base, token, "/api/kernels") or []:
                _api(base, token, f"/api/kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=15)
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        # As root (CI) Chromium needs --no-sandbox; WebGL (plotly's 3D) is drawn in software.
        args = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=args, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A page 1400 x 1000; on failure its screenshot is saved next to the test's temporary files."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(ACTION_S * 1000)
    yield page
    shot = tmp_path_factory.getbasetemp() / f"{request.node.name}.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()


def _open(page, lab, name: str) -> None:
    """Start the notebook's kernel (a session, through the REST API), open the notebook, which
    attaches to it, and wait until the kernel is idle."""
    base, token, _ = lab
    session = _api(base, token, "/api/sessions", "POST",
                   {"path": name, "name": name, "type": "notebook", "kernel": {"name": "python3"}})
    # A workspace of its own: the page shows this notebook only, not those other tests opened.
    page.goto(f"{base}/lab/workspaces/{Path(name).stem}/tree/{name}?token={token}", timeout=SERVER_START_S * 1000)
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=SERVER_START_S * 1000)
    deadline = time.monotonic() + SERVER_START_S
    while _api(base, token, f"/api/kernels/{session['kernel']['id']}")["execution_state"] != "idle":
        assert time.monotonic() < deadline, f"the kernel of {name} was not ready in {SERVER_START_S} s"
        time.sleep(0.5)
    assert page.get_by_text("Select Kernel").count() == 0


def _run_all(page, timeout_s: float) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    prompts = page.locator(".jp-NotebookPanel:visible .jp-CodeCell .jp-InputPrompt")
    deadline = time.monotonic() + timeout_s
    while True:  # every prompt shows its execution count: "[3]:" (a running or queued cell shows "[*]:")
        texts = prompts.all_inner_texts()
        if texts and all(re.fullmatch(r"\[\d+\]:", t.strip()) for t in texts):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the notebook did not finish in {timeout_s} s: prompts {texts}")
        page.wait_for_timeout(500)


def _cell(page, text: str):
    """The code cell whose source contains ``text``."""
    cell = page.locator(".jp-NotebookPanel:visible .jp-CodeCell").filter(
        has=page.locator(".jp-InputArea", has_text=text))
    assert cell.count() == 1, f"{cell.count()} cells contain {text!r}"
    return cell


def _plot_data(plot) -> list[float]:
    """The first trace's x values of a plotly graph div."""
    return plot.evaluate("gd => Array.from(gd.data[0].x).slice(0, 50)")


def _camera(plot) -> dict:
    return plot.evaluate("gd => JSON.parse(JSON.stringify(gd._fullLayout.scene.camera.eye))")


@pytest.mark.skipif(not (DEMO / "gt.json").is_file(), reason="no demo photos (data/demo)")
def test_notebook_04_runs_and_its_widgets_answer(page, lab) -> None:
    _open(page, lab, NOTEBOOK_04.name)
    _run_all(page, NOTEBOOK_04_S)
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0

    # Pick a photo: its panels (an image) and its 3D view (a plotly graph) appear.
    picker = _cell(page, "image_picker(picked)")
    assert picker.locator(".js-plotly-plot").count() == 0
    select = picker.locator(".widget-dropdown select")
    select.select_option(index=0)
    picker.locator(".widget-output .js-plotly-plot").wait_for()
    assert picker.locator(".widget-output img").count() >= 1

    # Upload a photo: "working", then its panels and 3D view.
    upload = _cell(page, "upload_widget(")
    photo = sorted(DEMO.glob("*.jpg"))[-1]
    with page.expect_file_chooser() as chooser:
        upload.locator(".widget-upload").click()
    chooser.value.set_files(str(photo))
    sync_api.expect(upload.locator(".widget-output")).to_contain_text("working")
    upload.locator(".widget-output .js-plotly-plot").wait_for()
    text = upload.locator(".widget-output").inner_text()
    assert "Error" not in text and upload.locator(".widget-output img").count() >= 1

    # Rotate the hand model (drag on its scene), then move the pose slider: the mesh changes, the
    # camera stays where the drag left it.
    model = _cell(page, "hand_model_widget(")
    plot = model.locator(".js-plotly-plot")
    plot.wait_for()
    plot.scroll_into_view_if_needed()
    before, eye = _plot_data(plot), _camera(plot)
    box = plot.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2 + 30, steps=8)
    page.mouse.up()
    page.wait_for_timeout(500)
    rotated = _camera(plot)
    assert rotated != eye, "the drag did not rotate the scene"
    handle = model.locator(".widget-slider").first.locator(".noUi-handle")
    grip = handle.bounding_box()
    page.mouse.move(grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2)
    page.mouse.down()
    page.mouse.move(grip["x"] + 150, grip["y"] + grip["height"] / 2, steps=10)
    page.mouse.up()
    deadline = time.monotonic() + ACTION_S
    while _plot_data(plot) == before:
        assert time.monotonic() < deadline, "moving the slider did not change the figure"
        page.wait_for_timeout(250)
    assert _camera(plot) == pytest.approx(rotated)


def test_annotation_tool_records_clicks_where_they_land(page, lab) -> None:
    from PIL import Image

    _, _, folder = lab
    width, height = 1200, 900  # larger than the 1000 px display: the clicks are scaled back
    photo = folder / "demo.png"
    Image.fromarray(np.full((height, width, 3), 120, np.uint8)).save(photo)
    out = folder / "try" / "annotations.json"
    # Notebook 05's annotation cell, pointed at an empty folder, this photo as the demo, and `out`.
    source = next(c.source for c in nbformat.read(ROOT / "notebooks" / "05_failure_analysis.ipynb", as_version=4).cells
                  if "annotation_tool(" in c.source)
    source = source.replace("ANNOTATE = False", "ANNOTATE = True")
    call = re.search(r"annotation_tool\(.*\)\)", source).group(0)
    source = source.replace(call, f"annotation_tool({str(folder / 'captured')!r}, demo={str(photo)!r}, "
                                  f"demo_out={str(out)!r}))")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)], metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    nbformat.write(notebook, folder / "annotate.ipynb")

    _open(page, lab, "annotate.ipynb")
    _run_all(page, ACTION_S)
    output = _cell(page, "annotation_tool(").locator(".jp-Cell-outputArea")
    assert "copy your photos" in output.inner_text()
    output.get_by_role("button", name="try it on a demo photo").click()
    image = output.locator(".widget-image")
    image.wait_for()
    status = output.locator(".widget-html").nth(1)
    box = image.bounding_box()
    fractions = [(0.25, 0.5), (0.6, 0.2), (0.9, 0.85)]
    for k, (fx, fy) in enumerate(fractions):
        image.click(position={"x": fx * box["width"], "y": fy * box["height"]})
        sync_api.expect(status).to_contain_text(f"({k + 2}/21)")
    output.get_by_role("button", name="next photo").click()
    sync_api.expect(status).to_contain_text("3 of 21 joints")
    output.get_by_role("button", name="next photo").click()
    sync_api.expect(status).to_contain_text("done")

    hand = json.loads(out.read_text())["images"][0]["hands"][0]
    assert hand["joints_done"] == 3 and hand["visibility"][:4] == [1, 1, 1, 0]
    expected = np.array(fractions) * [width, height]  # continuous pixels of the full-size photo
    # One CSS pixel of the displayed image is width / box width photo pixels; ipyevents rounds to it.
    np.testing.assert_allclose(hand["keypoints_2d"][:3], expected, atol=1.5 * width / box["width"] + 0.5)
