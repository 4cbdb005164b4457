"""The annotation store: click order, undo, skip, atomic save and the ground-truth format."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from handpose.annotate import AnnotationStore, click_position, render_annotation
from handpose.groundtruth import read_ground_truth
from handpose.keypoints import NAMES, NUM_KEYPOINTS

SHARED_GT = Path(__file__).resolve().parents[2] / "shared" / "photos" / "gt.json"


def _annotate_hand(store: AnnotationStore, side: str, offset: float, skip: tuple[int, ...] = ()) -> np.ndarray:
    """Click joint j at (offset + j, 2 j), skipping ``skip``; returns the expected (21, 2) with NaN."""
    store.begin_hand(side)
    expected = np.full((NUM_KEYPOINTS, 2), np.nan)
    for j in range(NUM_KEYPOINTS):
        assert store.next_joint == j and store.next_joint_name == NAMES[j]
        if j in skip:
            store.skip()
        else:
            store.click(offset + j, 2.0 * j)
            expected[j] = (offset + j, 2.0 * j)
    assert store.next_joint is None
    return expected


def test_clicks_follow_keypoint_order(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path / "a.json")
    store.open_image("a.jpg", 100, 80)
    expected = _annotate_hand(store, "right", 10.0)
    np.testing.assert_array_equal(store.hand.keypoints_2d, expected)
    assert store.hand.visibility.tolist() == [1] * NUM_KEYPOINTS
    with pytest.raises(RuntimeError, match="no joint"):
        store.click(1.0, 1.0)


def test_undo_steps_back_and_removes_an_empty_hand(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path / "a.json")
    store.open_image("a.jpg", 100, 80)
    store.begin_hand("left")
    store.click(1.0, 2.0)
    store.click(3.0, 4.0)
    store.undo()
    assert store.next_joint == 1
    assert np.isnan(store.hand.keypoints_2d[1]).all() and store.hand.visibility[1] == 0
    store.click(5.0, 6.0)
    np.testing.assert_array_equal(store.hand.keypoints_2d[:2], [[1.0, 2.0], [5.0, 6.0]])
    store.undo()
    store.undo()
    assert store.next_joint == 0
    store.undo()
    assert store.hand is None and store.next_joint is None
    store.undo()  # nothing left: a no-op


def test_skip_marks_not_annotated_and_format_uses_zero_placeholder(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path / "a.json")
    store.open_image("a.jpg", 100, 80)
    _annotate_hand(store, "right", 0.0, skip=(4, 20))
    hand = store.to_json()["images"][0]["hands"][0]
    assert hand["visibility"][4] == 0 and hand["visibility"][20] == 0 and sum(hand["visibility"]) == 19
    assert hand["keypoints_2d"][4] == [0.0, 0.0]
    assert hand["keypoints_2d"][5] == [5.0, 10.0]


def test_validation(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path / "a.json")
    with pytest.raises(RuntimeError, match="no image"):
        store.begin_hand("right")
    store.open_image("a.jpg", 100, 80)
    with pytest.raises(ValueError, match="handedness"):
        store.begin_hand("both")
    store.begin_hand("right")
    with pytest.raises(ValueError, match="outside"):
        store.click(100.0, 5.0)  # beyond the last pixel's edge (99.5)
    store.click(99.5, 79.5)  # the far edge of the last pixel is inside
    with pytest.raises(RuntimeError, match="incomplete"):
        store.begin_hand("left")
    store.set_handedness("left")
    assert store.hand.handedness == "left"
    with pytest.raises(ValueError, match="annotated at 100 x 80"):
        store.open_image("a.jpg", 50, 40)


def test_save_load_round_trip_in_ground_truth_format(tmp_path: Path) -> None:
    path = tmp_path / "captured" / "annotations.json"
    store = AnnotationStore(path)
    store.open_image("a.jpg", 100, 80)
    first = _annotate_hand(store, "right", 10.0, skip=(3,))
    second = _annotate_hand(store, "left", 50.0)
    store.open_image("b.jpg", 64, 48)
    third = _annotate_hand(store, "left", 1.0, skip=(0, 1))
    store.open_image("empty.jpg", 10, 10)  # opened, nothing annotated: not written
    assert store.save() == path
    assert [p.name for p in path.parent.iterdir()] == ["annotations.json"]  # no temporary left over

    data = json.loads(path.read_text())
    assert set(data) == {"keypoint_order", "conventions", "images"}
    assert data["keypoint_order"][0] == "wrist" and data["keypoint_order"][20] == "pinky_tip"
    assert [entry["image"] for entry in data["images"]] == ["a.jpg", "b.jpg"]
    for entry in data["images"]:
        assert {"image", "width", "height", "hands"} <= set(entry)
        for hand in entry["hands"]:
            assert set(hand) == {"handedness", "keypoints_2d", "visibility"}

    truth = read_ground_truth(path)
    np.testing.assert_array_equal(truth["a.jpg"].keypoints_2d, np.stack([first, second]))
    np.testing.assert_array_equal(truth["b.jpg"].keypoints_2d[0], third)
    assert truth["a.jpg"].handedness == ("right", "left") and truth["b.jpg"].width == 64
    assert truth["b.jpg"].visibility[0].tolist() == [False, False] + [True] * 19

    again = AnnotationStore.load(path)
    assert again.to_json() == data
    again.open_image("b.jpg", 64, 48)
    assert again.next_joint is None  # loaded hands are complete: a new hand can begin
    again.begin_hand("right")
    assert len(again.image.hands) == 2


def test_load_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert AnnotationStore.load(tmp_path / "none.json").images == {}


def test_read_ground_truth_rejects_other_json(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a ground-truth file"):
        read_ground_truth(path)


def test_render_draws_clicks_at_the_scaled_position(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path / "a.json")
    store.open_image("a.jpg", 400, 200)
    store.begin_hand("right")
    store.click(200.0, 100.0)
    view, factor = render_annotation(np.zeros((200, 400, 3), np.uint8), store, max_side=100)
    assert view.shape == (50, 100, 3) and factor == 0.25
    ys, xs = np.nonzero(view.any(-1))
    assert abs(xs.mean() - 50.0) < 1.0 and abs(ys.mean() - 25.0) < 1.0


@pytest.mark.skipif(not SHARED_GT.exists(), reason="internal photos (../shared/photos) not present")
def test_reads_the_shared_ground_truth() -> None:
    truth = read_ground_truth(SHARED_GT)
    assert truth
    for entry in truth.values():
        assert entry.keypoints_2d.shape == (len(entry.handedness), NUM_KEYPOINTS, 2)
        assert np.isfinite(entry.keypoints_2d[entry.visibility]).all()
        assert np.isnan(entry.keypoints_2d[~entry.visibility]).all()


def test_ground_truth_resized_to_the_loaded_photo(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path / "a.json")
    store.open_image("a.jpg", 400, 300)
    expected = _annotate_hand(store, "right", 10.0, skip=(2,))
    store.save()
    small = read_ground_truth(store.path)["a.jpg"].resized(100, 150)
    assert (small.width, small.height) == (100, 150)
    np.testing.assert_allclose(small.keypoints_2d[0], (expected + 0.5) * [0.25, 0.5] - 0.5)  # pixel centres
    assert small.visibility[0, 2] == False  # noqa: E712


def test_resized_ground_truth_follows_the_pixels_of_an_opencv_resize(tmp_path: Path) -> None:
    """A bright pixel's centre must stay on the resized bright spot (scaling the centres themselves,
    as before the one pixel convention, lands 0.25-0.5 px off)."""
    import cv2

    store = AnnotationStore(tmp_path / "a.json")
    store.open_image("a.jpg", 40, 40)
    store.begin_hand("right")
    store.click(-0.5, -0.5)  # the photo's corner, the edge of its first pixel
    store.click(12.5, 26.5)  # the centre of the 2 x 2 bright spot below
    for _ in range(NUM_KEYPOINTS - 2):
        store.skip()
    store.save()
    image = np.zeros((40, 40), np.float32)
    image[26:28, 12:14] = 1.0  # a 2 x 2 spot centred on (12.5, 26.5): pixel (6, 13) once halved
    small = cv2.resize(image, (20, 20), interpolation=cv2.INTER_AREA)
    vs, us = np.nonzero(small)
    spot = np.array([(small[vs, us] * us).sum(), (small[vs, us] * vs).sum()]) / small[vs, us].sum()
    truth = read_ground_truth(store.path)["a.jpg"].resized(20, 20)
    np.testing.assert_allclose(spot, [6.0, 13.0])
    np.testing.assert_allclose(truth.keypoints_2d[0, 1], spot, atol=1e-9)
    np.testing.assert_allclose(truth.keypoints_2d[0, 0], [-0.5, -0.5])  # the corner stays the corner


def test_clicks_convert_from_continuous_event_coordinates() -> None:
    # the browser reports continuous coordinates on the view (here half the photo's size)
    assert click_position(0.5, 0.5, 1.0, 40, 30) == (0.0, 0.0)  # the centre of the first pixel
    assert click_position(10.0, 5.0, 0.5, 40, 30) == (19.5, 9.5)
    assert click_position(-3.0, 100.0, 0.5, 40, 30) == (-0.5, 29.5)  # clamped to the photo


def test_widget_buttons_drive_the_store(tmp_path: Path) -> None:
    pytest.importorskip("ipyevents")
    import cv2

    from handpose.annotate import annotation_widget

    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.zeros((30, 40, 3), np.uint8))
    out = tmp_path / "annotations.json"
    ui = annotation_widget([photo], out)
    status, row, picture = ui.children
    buttons = {b.description: b for b in row.children if hasattr(b, "description") and b.description}
    assert "WRIST" in status.value and picture.value[:4] == b"\x89PNG"
    buttons["skip"].click()
    assert "THUMB_CMC" in status.value
    buttons["undo"].click()
    assert "WRIST" in status.value
    for _ in range(NUM_KEYPOINTS):
        buttons["skip"].click()
    assert out.exists()  # saved when the hand was complete
    buttons["next photo"].click()
    assert "done" in status.value
    assert read_ground_truth(out)["p.png"].visibility.sum() == 0


def test_an_incomplete_hand_is_saved_with_its_joints_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "annotations.json"
    store = AnnotationStore(path)
    store.open_image("a.jpg", 100, 80)
    _annotate_hand(store, "left", 10.0)
    store.begin_hand("right")
    store.click(1.0, 2.0)
    store.skip()
    store.click(3.0, 4.0)
    store.save()
    hands = json.loads(path.read_text())["images"][0]["hands"]
    assert "joints_done" not in hands[0] and hands[1]["joints_done"] == 3
    assert read_ground_truth(path)["a.jpg"].visibility[1].tolist() == [True, False, True] + [False] * 18

    again = AnnotationStore.load(path)
    again.open_image("a.jpg", 100, 80)
    assert again.next_joint == 3 and again.hand.handedness == "right"  # resumes at the 4th joint
    again.click(5.0, 6.0)
    np.testing.assert_array_equal(again.hand.keypoints_2d[:4], [[1, 2], [np.nan, np.nan], [3, 4], [5, 6]])
    with pytest.raises(RuntimeError, match="incomplete"):
        again.begin_hand("left")

    bad = json.loads(path.read_text())
    bad["images"][0]["hands"][1]["joints_done"] = 22
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="joints_done"):
        AnnotationStore.load(path)


def test_saved_file_mode_follows_the_umask_and_is_kept_on_replace(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path / "annotations.json")
    store.open_image("a.jpg", 100, 80)
    _annotate_hand(store, "right", 0.0)
    old = os.umask(0o022)
    try:
        store.save()
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o644  # not mkstemp's 0600
        store.path.chmod(0o640)
        store.save()
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def _widget(tmp_path: Path, count: int = 1):
    pytest.importorskip("ipyevents")
    import cv2

    from handpose.annotate import annotation_widget

    photos = []
    for i in range(count):
        photos.append(tmp_path / f"p{i}.png")
        cv2.imwrite(str(photos[-1]), np.zeros((30, 40, 3), np.uint8))
    out = tmp_path / "annotations.json"
    ui = annotation_widget(photos, out)
    status, row, _ = ui.children
    return ui, status, {b.description: b for b in row.children if isinstance(b, type(row.children[1]))}, out


def test_widget_warns_before_leaving_a_hand_incomplete_and_stops_when_done(tmp_path: Path) -> None:
    ui, status, buttons, out = _widget(tmp_path, count=2)
    for _ in range(3):
        buttons["skip"].click()
    buttons["next photo"].click()
    assert "3 of 21 joints" in status.value and "p0.png" in status.value and not out.exists()
    buttons["skip"].click()  # acting withdraws the warning: the next "next photo" warns again
    buttons["next photo"].click()
    assert "4 of 21 joints" in status.value
    buttons["next photo"].click()  # confirmed: saved incomplete, on to the second photo
    assert "p1.png" in status.value
    assert json.loads(out.read_text())["images"][0]["hands"][0]["joints_done"] == 4
    buttons["next photo"].click()
    assert status.value.startswith("done")
    assert all(button.disabled for button in buttons.values())
    saved = out.read_text()
    buttons["skip"].click()
    buttons["undo"].click()
    assert status.value.startswith("done") and out.read_text() == saved

    ui, status, buttons, out = _widget(tmp_path, count=2)  # reopened: resumes at the 5th joint
    assert "THUMB_MCP" not in status.value and "(5/21)" in status.value


def test_annotation_tool_says_where_photos_go_and_offers_a_demo(tmp_path: Path) -> None:
    pytest.importorskip("ipyevents")
    import cv2
    import ipywidgets

    from handpose.annotate import annotation_tool

    empty = tmp_path / "captured"
    assert "copy your photos" in annotation_tool(empty).value  # no folder yet: a message, no error
    demo = tmp_path / "demo.png"
    cv2.imwrite(str(demo), np.zeros((30, 40, 3), np.uint8))
    box = annotation_tool(empty, demo=demo, demo_out=tmp_path / "try" / "annotations.json")
    message, button = box.children
    assert str(empty) in message.value and isinstance(button, ipywidgets.Button)
    button.click()
    note, tool = box.children
    assert "demo.png" in note.value and "WRIST" in tool.children[0].value
    box = annotation_tool(empty, demo=demo)  # no demo_out: the clicks go to a fresh temporary folder
    box.children[1].click()
    assert "handpose_annotate_" in box.children[0].value and "WRIST" in box.children[1].children[0].value
    empty.mkdir()
    cv2.imwrite(str(empty / "mine.png"), np.zeros((30, 40, 3), np.uint8))
    tool = annotation_tool(empty, demo=demo)
    assert "mine.png" in tool.children[0].value
