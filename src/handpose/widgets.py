"""ipywidgets for a live JupyterLab (notebook 04): pick a photo, upload a new one, pose the hand.

Each function returns a widget whose callbacks run only on user interaction; executed headless
(``make report``) they display once and do nothing else, so they never block. Figures are put in
``Output`` widgets as display data (never ``fig.show()``, which outside Jupyter opens a browser,
and never by capturing, which can stall a headless client until its timeout), except the hand
model's: a plotly ``FigureWidget`` (needs ``anywidget``) whose traces change in place, so that its
camera stays.
"""
from __future__ import annotations

import base64
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handpose.camera import default_intrinsics
from handpose.figures import inference_figure
from handpose.fitting import fit_images
from handpose.handmodel import pose_model
from handpose.io import exif_focal_35mm
from handpose.pipeline import MeshedImage


def _bundle(obj: Any) -> dict[str, Any]:
    """The display data of a plotly figure (plotly's mime type, rendered by JupyterLab) or of a
    matplotlib figure (PNG), made here so that it does not depend on a running shell."""
    import plotly.graph_objects as go
    import plotly.io as pio

    if isinstance(obj, go.Figure):
        return {**pio.renderers["plotly_mimetype"].to_mimebundle(obj.to_dict()), "text/plain": "plotly figure"}
    buffer = io.BytesIO()
    obj.savefig(buffer, format="png", dpi=80, bbox_inches="tight", facecolor="white")
    return {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"), "text/plain": "figure"}


def _replace(output: Any, *objects: Any) -> None:
    """Make ``objects`` (plotly or matplotlib figures) the content of an Output widget by setting its
    ``outputs`` state, not by capturing: a capture while a headless client runs the cell can stall
    that client until its timeout."""
    output.outputs = tuple({"output_type": "display_data", "data": _bundle(obj), "metadata": {}} for obj in objects)


def _show(output: Any, item: MeshedImage, model_name: str) -> None:
    """Replace ``output``'s content by the photo's panels (matplotlib) and its 3D scene (plotly),
    or by the photo and "no hands detected" when it has no hand."""
    import matplotlib.pyplot as plt

    from handpose.plot3d import scene_figure, scene_traces

    if not item.hands:
        fig, ax = plt.subplots(figsize=(5, 5 * item.image.shape[0] / item.image.shape[1]))
        ax.imshow(item.image)
        ax.set_axis_off()
        _replace(output, fig)
        plt.close(fig)
        output.append_stdout(f"{item.name}: no hands detected\n")
        return
    fig = inference_figure(item.image, item.K, {model_name: item}, title=item.name)
    scene = scene_figure(scene_traces(item), title=f"{item.name}: meshes and 3D keypoints (mm)")
    _replace(output, fig, scene)
    plt.close(fig)


def image_picker(items: Sequence[MeshedImage], model_name: str = "mediapipe") -> Any:
    """A drop-down of photos (none chosen at first); choosing one shows its 2D keypoints, 3D
    keypoints and fitted meshes."""
    import ipywidgets as widgets

    items = list(items)
    if not items:
        raise ValueError("image_picker needs at least one photo")
    picker = widgets.Dropdown(options=[(item.name, i) for i, item in enumerate(items)], value=None,
                              description="photo")
    output = widgets.Output()

    def on_pick(change: dict[str, Any]) -> None:
        if change["new"] is not None:
            _show(output, items[change["new"]], model_name)

    picker.observe(on_pick, names="value")
    return widgets.VBox([picker, output])


def predict_and_fit(path: str | os.PathLike, model: str = "mediapipe", kind: str = "open") -> MeshedImage:
    """One photo through the whole pipeline: load, predict (not cached), fit ``kind`` meshes with
    :func:`handpose.camera.default_intrinsics` (EXIF focal length when the photo has one)."""
    from handpose.io import load_image
    from handpose.pipeline import predict_image

    image = load_image(path)
    hands = predict_image(image, model)
    K = default_intrinsics(image.shape[1], image.shape[0], exif_focal_35mm(path))
    fits = fit_images(kind, [hands], [K])[0] if hands else []
    return MeshedImage(Path(path), image, K, hands, fits)


def upload_widget(model: str = "mediapipe", kind: str = "open") -> Any:
    """Drop a photo: it is read like any other (EXIF rotation, size limits), its hands predicted
    and fitted, and shown as in :func:`image_picker`. A message shows while it works; errors name
    the uploaded file; choosing the same file again runs it again."""
    import ipywidgets as widgets

    upload = widgets.FileUpload(accept="image/*", multiple=False, description="photo")
    output = widgets.Output()

    def on_upload(change: dict[str, Any]) -> None:
        if not change["new"]:
            return
        entry = change["new"][0]
        name = Path(entry["name"]).name  # a bare file name: it must stay inside the temporary folder
        name = "upload.jpg" if name in ("", ".", "..") else name
        output.outputs = ()
        output.append_stdout(f"{name}: working (detecting the hands, fitting the meshes: a few seconds)...\n")
        try:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / name  # errors then name the file the student chose
                path.write_bytes(bytes(entry["content"]))
                try:
                    item = predict_and_fit(path, model, kind)
                except Exception as exc:  # noqa: BLE001 - show the reason, keep the widget alive
                    reason = str(exc).removeprefix(f"{path}: ").replace(str(path), name)
                    output.outputs = ()
                    output.append_stdout(f"{name}: {type(exc).__name__}: {reason}\n")
                    return
            item.path = Path(name)
            _show(output, item, model)
        finally:
            upload.value = ()  # else choosing the same file again is no change, and nothing runs

    upload.observe(on_upload, names="value")
    return widgets.VBox([widgets.HTML("Drop a photo of hands (JPEG, PNG, ...):"), upload, output])


def hand_model_widget(model: Any, base_pose: np.ndarray, shape_components: int = 3) -> Any:
    """Sliders for ``M(beta, theta)``: ``theta = t * base_pose`` (``t`` from 0, the rest pose, to
    1) and the first ``shape_components`` shape coefficients ``beta_k`` in standard deviations.

    The figure is a plotly ``FigureWidget`` whose traces are updated in place when a slider is
    released, so the camera the student chose stays; its axes are fixed over the sliders' extremes,
    so that a change of size shows as one.
    """
    import itertools

    import ipywidgets as widgets
    import plotly.graph_objects as go

    from handpose.plot3d import MODEL_VIEW, fixed_scene, mesh_trace, scene_figure, skeleton_traces

    base_pose = np.asarray(base_pose, dtype=np.float64)
    if base_pose.shape != (model.num_pose,):
        raise ValueError(f"base_pose must be ({model.num_pose},), got {base_pose.shape}")
    count = min(shape_components, model.num_shape)
    look = dict(layout=widgets.Layout(width="480px"), style={"description_width": "110px"}, continuous_update=False)
    pose_slider = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="pose t", **look)
    shape_sliders = [widgets.FloatSlider(value=0.0, min=-2.5, max=2.5, step=0.25,
                                         description=f"beta {k}" + (" (size)" if k == 0 else ""), **look)
                     for k in range(count)]

    def evaluate(t: np.ndarray, betas: np.ndarray) -> Any:
        """``M`` at ``N`` slider settings: ``t (N,)``, ``betas (N, count)``."""
        shape = np.zeros((len(t), model.num_shape))
        shape[:, :count] = betas
        return pose_model(model, pose=t[:, None] * base_pose[None], shape=shape)

    # The axes span M at every corner of the sliders' box (t in {0, 1}, each beta_k at -2.5 or +2.5).
    corners = np.array(list(itertools.product([0.0, 1.0], *[[-2.5, 2.5]] * count)))
    extremes = evaluate(corners[:, 0], corners[:, 1:])
    posed = evaluate(np.array([pose_slider.value]), np.zeros((1, count)))
    figure = scene_figure([mesh_trace(posed.vertices[0], posed.faces, opacity=0.5),
                           *skeleton_traces(posed.keypoints[0], name="keypoints")], title="M(β, θ)")
    figure.update_layout(scene=fixed_scene(extremes.vertices.reshape(-1, 3), MODEL_VIEW), scene_uirevision="model")
    fig = go.FigureWidget(figure)

    def draw(*_: Any) -> None:
        posed = evaluate(np.array([pose_slider.value]), np.array([[s.value for s in shape_sliders]]))
        skeleton = skeleton_traces(posed.keypoints[0], name="keypoints")
        with fig.batch_update():
            vertices = posed.vertices[0]
            fig.data[0].update(x=vertices[:, 0], y=vertices[:, 1], z=vertices[:, 2])
            for trace, new in zip(fig.data[1:], skeleton):
                trace.update(x=new.x, y=new.y, z=new.z)

    for slider in (pose_slider, *shape_sliders):
        slider.observe(draw, names="value")
    return widgets.VBox([widgets.VBox([pose_slider, *shape_sliders]), fig])
