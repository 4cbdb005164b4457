"""Tests of handpose.widgets: the widgets build headless, react to changes, and never raise."""
from __future__ import annotations

import datetime
import io as stdio
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

widgets_lib = pytest.importorskip("ipywidgets")

from handpose import widgets  # noqa: E402
from handpose.pipeline import MeshedImage  # noqa: E402
from handpose.demo_data import gesture_pose  # noqa: E402
from handpose.camera import default_intrinsics  # noqa: E402
from handpose.handmodel import load_hand_model  # noqa: E402
from _synthetic import hand_silhouette  # noqa: E402


@pytest.fixture(scope="module")
def model(open_hand_export):
    return load_hand_model("open", "right")


def _items(count: int) -> list[MeshedImage]:
    image = np.full((120, 160, 3), 40, np.uint8)
    return [MeshedImage(Path(f"photo{i}.png"), image, default_intrinsics(160, 120), [], [])
            for i in range(count)]


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = stdio.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(box, name: str, content: bytes) -> None:
    upload = box.children[1]
    upload.value = ({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
                     "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)


def test_image_picker_lists_the_photos_and_switches():
    box = widgets.image_picker(_items(3))
    picker = box.children[0]
    assert [label for label, _ in picker.options] == ["photo0.png", "photo1.png", "photo2.png"]
    assert picker.value is None and box.children[1].outputs == ()
    picker.value = 2  # runs the callback: must not raise without a kernel
    photo, note = box.children[1].outputs  # these photos have no hands: the photo, and a note
    assert "image/png" in photo["data"] and note["text"] == "photo2.png: no hands detected\n"
    with pytest.raises(ValueError, match="at least one photo"):
        widgets.image_picker([])


def test_upload_widget_reports_an_unreadable_file_by_its_name_without_raising():
    box = widgets.upload_widget()
    output = box.children[2]
    assert isinstance(output, widgets_lib.Output)
    _upload(box, "broken.png", b"not an image")  # the callback catches and prints the error
    text = output.outputs[-1]["text"]
    assert text.startswith("broken.png: ImageError") and "tmp" not in text and "working" not in text


def test_upload_widget_says_no_hands_and_reruns_the_same_file(monkeypatch: pytest.MonkeyPatch):
    calls = []

    def no_hands(path, model, kind):
        calls.append(Path(path).name)
        return MeshedImage(Path(path), np.full((60, 80, 3), 90, np.uint8), default_intrinsics(80, 60), [], [])

    monkeypatch.setattr(widgets, "predict_and_fit", no_hands)
    box = widgets.upload_widget()
    upload, output = box.children[1], box.children[2]
    seen = []
    output.observe(lambda change: seen.append(change["new"]), names="outputs")
    content = _png(np.zeros((60, 80, 3), np.uint8))
    _upload(box, "empty.png", content)
    assert any("empty.png: working" in o.get("text", "") for outputs in seen for o in outputs)  # shown first
    assert "image/png" in output.outputs[0]["data"]
    assert output.outputs[-1]["text"] == "empty.png: no hands detected\n"
    assert upload.value == ()  # cleared, so that the same choice is a change again
    _upload(box, "empty.png", content)
    assert calls == ["empty.png", "empty.png"]


def test_predict_and_fit_a_drawn_hand(tmp_path: Path):
    path = tmp_path / "hand.png"
    path.write_bytes(_png(hand_silhouette(256)))
    item = widgets.predict_and_fit(path)
    assert item.image.shape == (256, 256, 3)
    np.testing.assert_array_equal(item.K, default_intrinsics(256, 256))
    assert len(item.hands) == len(item.fits) >= 1
    assert item.fits[0].vertices.shape[1] > 1000
    output = widgets_lib.Output()
    widgets._show(output, item, "mediapipe")  # what the picker and the upload show for a hand
    kinds = [sorted(o["data"]) for o in output.outputs]
    assert "image/png" in kinds[0] and "application/vnd.plotly.v1+json" in kinds[1]


def test_hand_model_widget_updates_in_place_and_keeps_camera_and_axes(model):
    box = widgets.hand_model_widget(model, gesture_pose("fist"), shape_components=2)
    sliders = box.children[0].children
    assert [s.description for s in sliders] == ["pose t", "beta 0 (size)", "beta 1"]
    assert not any(s.continuous_update for s in sliders)  # a drag redraws once, on release
    fig = box.children[1]
    assert isinstance(fig, widgets_lib.DOMWidget) and fig.layout.scene.uirevision == "model"
    first = np.array(fig.data[0].x)
    ranges = [tuple(fig.layout.scene[f"{a}axis"].range) for a in "xyz"]
    fig.layout.scene.camera.eye = dict(x=2.0, y=0.1, z=0.2)  # as if the student rotated the view
    joints = np.array(fig.data[-1].x)
    sliders[0].value = 1.0
    assert not np.allclose(np.array(fig.data[0].x), first)
    assert not np.allclose(np.array(fig.data[-1].x), joints)  # the skeleton follows the mesh
    spans = {}
    for beta in (-2.5, 2.5):
        sliders[1].value = beta
        points = np.stack([np.array(fig.data[0][a]) for a in "xyz"], -1)
        for axis, (low, high) in enumerate(ranges):  # inside the fixed axes at the sliders' extremes
            assert low <= points[:, axis].min() and points[:, axis].max() <= high
        spans[beta] = np.ptp(points, 0).max()
    assert spans[2.5] > 1.1 * spans[-2.5]  # beta 0 is the overall size, and the axes show it
    assert [tuple(fig.layout.scene[f"{a}axis"].range) for a in "xyz"] == ranges
    assert fig.layout.scene.camera.eye.x == 2.0
    with pytest.raises(ValueError, match="base_pose"):
        widgets.hand_model_widget(model, np.zeros(3))
