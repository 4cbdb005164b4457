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

from handpose import meshes, widgets  # noqa: E402
from handpose.demo_data import gesture_pose  # noqa: E402
from handpose.fitting import default_intrinsics  # noqa: E402
from handpose.handmodel import load_hand_model  # noqa: E402
from handpose.viz import hand_silhouette  # noqa: E402


@pytest.fixture(scope="module")
def model(open_hand_export):
    return load_hand_model("open", "right")


def _items(count: int) -> list[meshes.MeshedImage]:
    image = np.full((120, 160, 3), 40, np.uint8)
    return [meshes.MeshedImage(Path(f"photo{i}.png"), image, default_intrinsics(160, 120), [], [])
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
    kinds = [sorted(o["data"]) for o in box.children[1].outputs]
    assert "image/png" in kinds[0] and "application/vnd.plotly.v1+json" in kinds[1]
    with pytest.raises(ValueError, match="at least one photo"):
        widgets.image_picker([])


def test_upload_widget_reports_an_unreadable_file_without_raising():
    box = widgets.upload_widget()
    output = box.children[2]
    assert isinstance(output, widgets_lib.Output)
    _upload(box, "broken.png", b"not an image")  # the callback catches and prints the error
    assert output.outputs[0]["text"].startswith("broken.png: ImageError")


def test_predict_and_fit_a_drawn_hand(tmp_path: Path):
    path = tmp_path / "hand.png"
    path.write_bytes(_png(hand_silhouette(256)))
    item = widgets.predict_and_fit(path)
    assert item.image.shape == (256, 256, 3)
    np.testing.assert_array_equal(item.K, default_intrinsics(256, 256))
    assert len(item.hands) == len(item.fits) >= 1
    assert item.fits[0].vertices.shape[1] > 1000


def test_hand_model_widget_poses_with_the_sliders(model):
    box = widgets.hand_model_widget(model, gesture_pose("fist"), shape_components=2)
    sliders = box.children[0].children
    assert [s.description for s in sliders] == ["pose t", "beta 0", "beta 1"]
    output = box.children[1]
    first = output.outputs[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]["x"]
    sliders[0].value = 1.0
    sliders[1].value = 2.0
    assert len(output.outputs) == 1
    moved = output.outputs[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]["x"]
    assert moved != first
    with pytest.raises(ValueError, match="base_pose"):
        widgets.hand_model_widget(model, np.zeros(3))
