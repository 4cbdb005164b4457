"""MediaPipe's palm detector run directly: anchors, decoding, NMS, letterbox, region rule, and
agreement with MediaPipe's own Hands graph on the repository's rendered demo images."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from handpose.io import load_image
from handpose.models.palms import (INPUT_SIZE, PalmDetector, decode, letterbox_view, palm_region, ssd_anchors,
                                   weighted_nms)
from handpose.models.regions import LandmarkNetwork
from _synthetic import gaussian_blob, intensity_centroid

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


@pytest.fixture(scope="module")
def detector():
    palms = PalmDetector()
    yield palms
    palms.close()


def test_anchors_count_and_known_centres():
    anchors = ssd_anchors()
    assert anchors.shape == (2016, 2)  # 24 x 24 x 2 (stride 8) + 12 x 12 x 6 (three stride-16 layers)
    np.testing.assert_array_equal(anchors[:3], [[4, 4], [4, 4], [12, 4]])  # 2 per cell, row by row
    np.testing.assert_array_equal(anchors[1151], [188, 188])  # last cell of the 24 x 24 map
    np.testing.assert_array_equal(anchors[1152:1159], [[8, 8]] * 6 + [[24, 8]])  # 6 per 12 x 12 cell
    np.testing.assert_array_equal(anchors[-1], [184, 184])
    assert ssd_anchors(strides=(8, 16, 32, 32, 32), input_size=256).shape == (2944, 2)  # the older 256 model
    with pytest.raises(ValueError, match="positive"):
        ssd_anchors(strides=())


def test_decode_round_trip_on_synthetic_outputs():
    rng = np.random.default_rng(0)
    anchors = ssd_anchors()
    boxes_centre = rng.uniform(0, INPUT_SIZE, (len(anchors), 2))
    sides = rng.uniform(5, 80, (len(anchors), 2))
    keypoints = rng.uniform(0, INPUT_SIZE, (len(anchors), 7, 2))
    scores = rng.uniform(0.01, 0.99, len(anchors))
    # Encode as the network does: offsets from the anchor centre, sizes in input pixels, logits.
    raw = np.concatenate([boxes_centre - anchors, sides, (keypoints - anchors[:, None]).reshape(-1, 14)], axis=1)
    logits = np.log(scores / (1 - scores))[:, None]
    boxes, kp, s = decode(raw.astype(np.float32), logits.astype(np.float32), anchors)
    np.testing.assert_allclose(boxes, np.c_[boxes_centre - sides / 2, boxes_centre + sides / 2], atol=1e-3)
    np.testing.assert_allclose(kp, keypoints, atol=1e-3)
    np.testing.assert_allclose(s, scores, atol=1e-6)
    # Logits are clipped to +-100 before the sigmoid.
    _, _, extreme = decode(raw[:2], np.array([1e4, -1e4]), anchors[:2])
    np.testing.assert_allclose(extreme, [1.0, 1.0 / (1.0 + np.exp(100.0))])
    with pytest.raises(ValueError, match="raw"):
        decode(raw[:, :17], logits, anchors)


def test_weighted_nms_merges_overlaps_by_score():
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [100, 100, 110, 110], [6, 0, 16, 10]], dtype=np.float64)
    keypoints = np.stack([np.full((7, 2), v) for v in (0.0, 10.0, 50.0, 20.0)])
    scores = np.array([0.9, 0.6, 0.7, 0.8])
    out_boxes, out_kp, out_scores = weighted_nms(boxes, keypoints, scores, 0.3)
    # Best first: box 0 (0.9) takes box 1 (IoU 8/12) and box 3 (IoU 4/16 = 0.25 stays apart).
    np.testing.assert_allclose(out_scores, [0.9, 0.8, 0.7])
    np.testing.assert_allclose(out_boxes[0], (0.9 * boxes[0] + 0.6 * boxes[1]) / 1.5)
    np.testing.assert_allclose(out_kp[0], np.full((7, 2), 0.6 * 10 / 1.5))
    np.testing.assert_allclose(out_boxes[1:], boxes[[3, 2]])
    empty = weighted_nms(np.zeros((0, 4)), np.zeros((0, 7, 2)), np.zeros(0))
    assert [len(a) for a in empty] == [0, 0, 0]
    with pytest.raises(ValueError, match="keypoints"):
        weighted_nms(boxes, keypoints[:3], scores)


def test_palm_region_rule_known_values():
    # Fingers up: centre half the box height above the box centre, 2.6 x the longer side, no turn.
    up = palm_region(np.array([0.0, 0.0, 100.0, 80.0]), wrist=[50.0, 80.0], middle_mcp=[50.0, 10.0])
    np.testing.assert_allclose(up.center, [50.0, 0.0])
    assert up.size == pytest.approx(260.0) and up.angle_deg == pytest.approx(0.0)
    # Fingers pointing right: the region turns the photo by 90 degrees and moves right.
    right = palm_region(np.array([0.0, 0.0, 100.0, 100.0]), wrist=[0.0, 50.0], middle_mcp=[80.0, 50.0])
    np.testing.assert_allclose(right.center, [100.0, 50.0])
    assert right.angle_deg == pytest.approx(90.0)


def test_letterbox_matches_opencv_resize_and_pad():
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8), (0, 0), 2.0)
    view = letterbox_view(image)
    # Oracle: MediaPipe's letterbox as OpenCV resize + equal black padding (300 -> 192: 128 rows, 32 each side).
    resized = cv2.resize(image, (192, 128), interpolation=cv2.INTER_LINEAR)
    expected = cv2.copyMakeBorder(resized, 32, 32, 0, 0, cv2.BORDER_CONSTANT, value=0)
    assert view.image.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    assert np.abs(view.image[34:158].astype(int) - expected[34:158]).max() <= 2
    assert view.image[:31].max() == 0 and view.image[161:].max() == 0
    # Points: photo -> input -> photo is exact; a blob lands where the matrix says.
    points = np.array([[0.0, 0.0], [150.0, 100.0], [300.0, 200.0]])
    forward = points @ view.matrix[:, :2].T + view.matrix[:, 2]
    np.testing.assert_allclose(forward, [[0, 32], [96, 96], [192, 160]], atol=1e-9)
    np.testing.assert_allclose(view.to_photo(forward), points, atol=1e-9)
    blob = (255 * gaussian_blob(np.array([210.0, 60.0]), (200, 300), sigma=6.0)).astype(np.uint8)
    small = letterbox_view(np.repeat(blob[..., None], 3, axis=2)).image[..., 0].astype(np.float64)
    found = view.centres_to_photo(intensity_centroid(small))
    np.testing.assert_allclose(found, [210.0, 60.0], atol=0.3)


def test_letterbox_of_a_turned_tile_round_trip():
    image = np.zeros((400, 600, 3), np.uint8)
    box = np.array([100.0, 50.0, 356.0, 306.0])
    view = letterbox_view(image, box, angle_deg=90.0)
    corners = np.array([[100.0, 50.0], [356.0, 306.0]])
    forward = corners @ view.matrix[:, :2].T + view.matrix[:, 2]
    # Turned counter-clockwise by 90 degrees: the top-left corner goes to the bottom-left.
    np.testing.assert_allclose(forward, [[0.0, 192.0], [192.0, 0.0]], atol=1e-9)
    np.testing.assert_allclose(view.to_photo(forward), corners, atol=1e-9)
    with pytest.raises(ValueError, match="positive side"):
        letterbox_view(image, np.array([5.0, 5.0, 5.0, 5.0]))


def test_detector_validation_and_blank_image(detector):
    with pytest.raises(ValueError, match="num_threads"):
        PalmDetector(num_threads=0)
    with pytest.raises(ValueError, match="min_score"):
        detector.detect(np.zeros((64, 64, 3), np.uint8), min_score=1.5)
    assert detector.detect(np.zeros((300, 400, 3), np.uint8), min_score=0.5) == []


def _demo(name):
    entry = next(e for e in json.loads((DEMO / "gt.json").read_text())["images"] if e["image"] == name)
    return load_image(DEMO / name), np.array([hand["keypoints_2d"] for hand in entry["hands"]])


@pytest.mark.parametrize("name", ["01_palm_open.jpg", "04_side_point.jpg", "11_two_open.jpg", "14_far_small.jpg"])
def test_agrees_with_mediapipe_hands_on_demo_images(detector, name):
    # Independent reference: MediaPipe's own Hands graph (its palm detector, palm -> region rule and
    # landmark network) on the same image. Ours: palm -> Region -> LandmarkNetwork.run.
    from mediapipe.python.solution_base import SolutionBase

    from handpose.models.mediapipe import open_graph, read_landmarks

    image, gt = _demo(name)
    h, w = image.shape[:2]
    graph = open_graph(lambda: SolutionBase(
        binary_graph_path="mediapipe/modules/hand_landmark/hand_landmark_tracking_cpu.binarypb",
        side_inputs={"model_complexity": 1, "num_hands": 4, "use_prev_landmarks": False},
        calculator_params={"palmdetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": 0.5},
        outputs=["multi_hand_landmarks", "multi_hand_world_landmarks", "multi_handedness",
                 "palm_detections", "hand_rects_from_palm_detections"]))
    try:
        result = graph.process(image)
    finally:
        graph.close()
    rects = result.hand_rects_from_palm_detections
    reference = read_landmarks(result, w, h)
    palms = detector.detect(image, min_score=0.5)
    assert len(palms) == len(rects) == len(reference) == len(gt)
    net = LandmarkNetwork()
    try:
        for rect, palm_score in zip(rects, [d.score[0] for d in result.palm_detections]):
            centre = np.array([rect.x_center * w, rect.y_center * h])
            palm = min(palms, key=lambda p: np.linalg.norm(p.region.center - centre))
            assert palm.score == pytest.approx(palm_score, abs=0.05)  # resampling differs a little
            np.testing.assert_allclose(palm.region.center, centre, atol=0.02 * palm.region.size)
            assert palm.region.size == pytest.approx(rect.width * w, rel=0.05)
            turn = (palm.region.angle_deg - np.degrees(rect.rotation) + 180) % 360 - 180
            assert abs(turn) < 3.0
        ours = [net.run(image, palm.region) for palm in palms]
    finally:
        net.close()
    for hand in reference:
        error = min(np.linalg.norm(o.keypoints_2d - hand.keypoints_2d, axis=1).mean() for o in ours)
        assert error < 0.03 * np.ptp(hand.keypoints_2d, axis=0).max()


@pytest.mark.parametrize("angle", [90.0, 180.0, -30.0])
def test_a_turned_window_maps_back_to_the_same_palm(detector, angle):
    # The detector sees the photo turned; mapped back, the palm and its hand region are the
    # upright run's (up to the network's own variation with the turn).
    image, _ = _demo("01_palm_open.jpg")
    (upright,) = detector.detect(image, min_score=0.5)
    (turned,) = detector.detect(image, angle_deg=angle, min_score=0.5)
    side = np.ptp(upright.box.reshape(2, 2), axis=0).max()
    assert np.abs(turned.keypoints - upright.keypoints).max() < 0.15 * side
    np.testing.assert_allclose(turned.region.center, upright.region.center, atol=0.05 * upright.region.size)
    assert abs((turned.region.angle_deg - upright.region.angle_deg + 180) % 360 - 180) < 5.0
