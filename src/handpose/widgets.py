"""ipywidgets for a live JupyterLab (notebook 04): pick a photo, upload a new one, pose the hand.

Each function returns a widget whose callbacks run only on user interaction; executed headless
(``make report``) they display once and do nothing else, so they never block. Figures are put in
``Output`` widgets as display data (never ``fig.show()``, which outside Jupyter opens a browser,
and never by capturing, which can stall a headless client until its timeout).
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

from handpose.fitting import fit_images
from handpose.meshes import MeshedImage, inference_figure, photo_intrinsics, pose_model, scene_traces


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
    """Replace ``output``'s content by the photo's panels (matplotlib) and its 3D scene (plotly)."""
    import matplotlib.pyplot as plt

    from handpose.plot3d import scene_figure

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
    :func:`handpose.meshes.photo_intrinsics`."""
    from handpose.io import load_image
    from handpose.pipeline import predict_image

    image = load_image(path)
    hands = predict_image(image, model)
    K = photo_intrinsics(path, image.shape[1], image.shape[0])
    fits = fit_images(kind, [hands], [K])[0] if hands else []
    return MeshedImage(Path(path), image, K, hands, fits)


def upload_widget(model: str = "mediapipe", kind: str = "open") -> Any:
    """Drop a photo: it is read like any other (EXIF rotation, size limits), its hands predicted
    and fitted, and shown as in :func:`image_picker`."""
    import ipywidgets as widgets

    upload = widgets.FileUpload(accept="image/*", multiple=False, description="photo")
    output = widgets.Output()

    def on_upload(change: dict[str, Any]) -> None:
        if not change["new"]:
            return
        entry = change["new"][0]
        suffix = Path(entry["name"]).suffix or ".jpg"
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"upload{suffix}"
            path.write_bytes(bytes(entry["content"]))
            try:
                item = predict_and_fit(path, model, kind)
            except Exception as exc:  # noqa: BLE001 - show the reason, keep the widget alive
                output.outputs = ()
                output.append_stdout(f"{entry['name']}: {type(exc).__name__}: {exc}\n")
                return
        item.path = Path(entry["name"])
        _show(output, item, model)

    upload.observe(on_upload, names="value")
    return widgets.VBox([widgets.HTML("Drop a photo of hands (JPEG, PNG, ...):"), upload, output])


def hand_model_widget(model: Any, base_pose: np.ndarray, shape_components: int = 3) -> Any:
    """Sliders for ``M(beta, theta)``: ``theta = t * base_pose`` (``t`` from 0, the rest pose, to
    1) and the first ``shape_components`` shape coefficients ``beta_k`` in standard deviations."""
    import ipywidgets as widgets

    from handpose.plot3d import MODEL_VIEW, mesh_trace, scene_figure, skeleton_traces

    base_pose = np.asarray(base_pose, dtype=np.float64)
    if base_pose.shape != (model.num_pose,):
        raise ValueError(f"base_pose must be ({model.num_pose},), got {base_pose.shape}")
    count = min(shape_components, model.num_shape)
    pose_slider = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="pose t")
    shape_sliders = [widgets.FloatSlider(value=0.0, min=-2.5, max=2.5, step=0.25, description=f"beta {k}")
                     for k in range(count)]
    output = widgets.Output()

    def draw(*_: Any) -> None:
        shape = np.zeros(model.num_shape)
        shape[:count] = [s.value for s in shape_sliders]
        posed = pose_model(model, pose=pose_slider.value * base_pose, shape=shape)
        fig = scene_figure([mesh_trace(posed.vertices[0], posed.faces, opacity=0.5),
                            *skeleton_traces(posed.keypoints[0], name="keypoints")], title="M(beta, theta)")
        fig.update_layout(scene_camera=MODEL_VIEW)
        _replace(output, fig)

    for slider in (pose_slider, *shape_sliders):
        slider.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([pose_slider, *shape_sliders]), output])
