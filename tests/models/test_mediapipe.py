"""The default estimator on images the tests draw (never real photos)."""
import dataclasses

import numpy as np
import pytest

from handpose.views import rot90_view
from handpose.keypoints import MIDDLE_MCP, TIPS, WRIST
from handpose.models.mediapipe import MediaPipeEstimator, MediaPipeOptions
from _synthetic import hand_silhouette

PLAIN = MediaPipeOptions(rescue=False, use_pose=False, coarse_tile_side=0, fine_tile_side=0, low_palms=0)


@pytest.fixture(scope="module")
def hand_image():
    return hand_silhouette(384)


@pytest.fixture(scope="module")
def plain():
    with MediaPipeEstimator(PLAIN) as estimator:
        yield estimator


@pytest.fixture(scope="module")
def robust():
    with MediaPipeEstimator() as estimator:
        yield estimator


@pytest.fixture(scope="module")
def reference(plain, hand_image):
    hands = plain.predict(hand_image)
    assert len(hands) == 1
    return hands[0]


def test_options_validation():
    with pytest.raises(ValueError, match="max_hands"):
        MediaPipeOptions(max_hands=0)
    with pytest.raises(ValueError, match="model_complexity"):
        MediaPipeOptions(model_complexity=2)
    with pytest.raises(ValueError, match="multiples of 90"):
        MediaPipeOptions(rotations=(45,))
    from handpose.pipeline import options_digest

    assert options_digest(MediaPipeOptions()) == options_digest(MediaPipeOptions()) != options_digest(MediaPipeOptions(max_hands=3))


def test_rejects_bad_images(plain):
    with pytest.raises(ValueError, match="uint8"):
        plain.predict(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError):
        plain.predict(np.zeros((64, 64), np.uint8))


def test_blank_image_has_no_hands(robust):
    assert robust.predict(np.full((240, 320, 3), 128, np.uint8)) == []


def test_drawn_hand_keypoints_lie_on_the_hand(reference, hand_image):
    kp = reference.keypoints_2d
    skin = np.array([224, 172, 140])
    # every keypoint falls on the skin-coloured silhouette (shading darkens it by up to 35 %)
    colours = hand_image[kp[:, 1].astype(int), kp[:, 0].astype(int)].astype(float)
    ratio = colours / skin
    assert np.all(np.abs(ratio - ratio.mean(1, keepdims=True)) < 0.08), "a keypoint is off the hand"
    assert np.all(kp[list(TIPS[1:]), 1] < kp[WRIST, 1] - 100)  # fingers point up
    np.testing.assert_allclose(reference.keypoints_3d[WRIST], 0.0)
    assert 50 < np.linalg.norm(reference.keypoints_3d[MIDDLE_MCP]) < 130  # mm
    np.testing.assert_allclose(reference.box_xyxy, [*kp.min(0), *kp.max(0)])
    assert reference.source == "mediapipe:full" and 0.5 <= reference.score <= 1.0


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotated_copy_gives_the_same_keypoints_rotated(plain, reference, hand_image, k):
    view = rot90_view(hand_image, k)
    (hand,) = plain.predict(view.image)
    size = np.ptp(reference.keypoints_2d, axis=0).max()
    # 2D: the prediction on the turned copy, turned back, is the prediction on the original.
    error = np.linalg.norm(view.to_photo(hand.keypoints_2d) - reference.keypoints_2d, axis=1)
    assert error.mean() < 0.03 * size
    # 3D: world landmarks are camera-aligned, so they turn with the image and turn back.
    back = hand.keypoints_3d @ view.rotation_to_photo().T
    assert np.linalg.norm(back - reference.keypoints_3d, axis=1).mean() < 10.0
    assert np.linalg.norm(hand.keypoints_3d - reference.keypoints_3d, axis=1).mean() > 50.0
    assert hand.handedness == reference.handedness


def test_mirrored_copy_flips_handedness(plain, reference, hand_image):
    (hand,) = plain.predict(np.ascontiguousarray(hand_image[:, ::-1]))
    assert {hand.handedness, reference.handedness} == {"left", "right"}
    mirrored = hand.keypoints_2d * [-1, 1] + [hand_image.shape[1], 0]
    assert np.linalg.norm(mirrored - reference.keypoints_2d, axis=1).mean() < 0.03 * np.ptp(mirrored, 0).max()


def test_mirrored_input_option_keeps_mediapipe_labels(reference, hand_image):
    with MediaPipeEstimator(MediaPipeOptions(rescue=False, use_pose=False, tile_grids=(),
                                             mirrored_input=True)) as selfie:
        (hand,) = selfie.predict(hand_image)
    assert hand.handedness != reference.handedness


def test_rotated_view_inside_the_estimator_is_mapped_back(robust, reference, hand_image):
    # The Hands graph on a turned view: its outputs are mapped back to photo axes.
    found = robust._run_view(rot90_view(hand_image, 1), 1, 0.5, 0.5)[0]
    assert found.source == "mediapipe:rot90"
    assert np.linalg.norm(found.keypoints_2d - reference.keypoints_2d, axis=1).mean() < 5.0
    assert np.linalg.norm(found.keypoints_3d - reference.keypoints_3d, axis=1).mean() < 10.0


def test_small_hand_in_a_large_photo_is_found_by_tiles(plain, robust, hand_image):
    import cv2

    photo = np.full((720, 1280, 3), 60, np.uint8)
    photo[500:628, 1000:1128] = cv2.resize(hand_image, (128, 128), interpolation=cv2.INTER_AREA)
    assert plain.predict(photo) == []
    (hand,) = robust.predict(photo)
    assert hand.source.startswith("landmarks:tile")
    assert np.all(hand.keypoints_2d >= [995, 495]) and np.all(hand.keypoints_2d <= [1133, 633])


def test_max_hands_keeps_the_best(hand_image):
    two = np.concatenate([hand_image, hand_image[:, ::-1]], axis=1)
    with MediaPipeEstimator(MediaPipeOptions(max_hands=2, use_pose=False)) as both:
        hands = both.predict(two)
    assert len(hands) == 2 and {h.handedness for h in hands} == {"left", "right"}
    assert hands[0].score >= hands[1].score
    with MediaPipeEstimator(MediaPipeOptions(max_hands=1, use_pose=False)) as one:
        assert len(one.predict(two)) == 1


def test_nothing_is_downloaded(monkeypatch, hand_image):
    import urllib.request

    from mediapipe.python.solutions import download_utils

    def refuse(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(download_utils, "download_oss_model", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with MediaPipeEstimator() as estimator:
        estimator.predict(hand_image)
        estimator._pose().process(hand_image)  # the person-guided stage's models
        estimator._segmentation().process(hand_image)


def test_outputs_are_in_pixel_centres(plain, hand_image):
    # The views work in continuous pixels (photo spans [0, W]); predict converts once: u = x - 0.5.
    from handpose.views import identity_view

    (inner,) = plain._run_view(identity_view(hand_image), 1, 0.5, 0.5)
    (hand,) = plain.predict(hand_image)
    np.testing.assert_allclose(hand.keypoints_2d, inner.keypoints_2d - 0.5, atol=1e-9)
    np.testing.assert_allclose(hand.box_xyxy, [*hand.keypoints_2d.min(0), *hand.keypoints_2d.max(0)], atol=1e-9)


def test_tracker_outputs_are_in_pixel_centres(monkeypatch):
    """Video mode reads MediaPipe's normalised landmarks as the estimator does: ``u = x W - 0.5``."""
    from types import SimpleNamespace

    from handpose.models.mediapipe import MediaPipeTracker

    rng = np.random.default_rng(0)
    norm = rng.uniform(0.2, 0.8, (21, 2))
    point = lambda x, y: SimpleNamespace(x=x, y=y, z=0.0)  # noqa: E731
    result = SimpleNamespace(
        multi_hand_landmarks=[SimpleNamespace(landmark=[point(x, y) for x, y in norm])],
        multi_hand_world_landmarks=[SimpleNamespace(landmark=[point(x / 10, y / 10) for x, y in norm])],
        multi_handedness=[SimpleNamespace(classification=[SimpleNamespace(label="Left", score=0.9)])])
    tracker = MediaPipeTracker(PLAIN)
    monkeypatch.setattr(tracker, "_graph", SimpleNamespace(process=lambda frame: result, close=lambda: None))
    (hand,) = tracker.predict(np.zeros((48, 64, 3), np.uint8))
    np.testing.assert_allclose(hand.keypoints_2d, norm * [64, 48] - 0.5, atol=1e-12)
    assert hand.handedness == "right" and hand.source == "mediapipe:track"


def test_tracker_follows_a_hand_like_the_estimator(plain, reference, hand_image):
    from handpose.models.mediapipe import MediaPipeTracker

    with MediaPipeTracker(PLAIN) as tracker:
        first, second = (tracker.predict(hand_image) for _ in range(2))
    for hands in (first, second):
        (hand,) = hands
        assert hand.handedness == reference.handedness
        assert np.abs(hand.keypoints_2d - reference.keypoints_2d).max() < 0.05 * np.ptp(reference.keypoints_2d, 0).max()


def test_region_options_validation():
    with pytest.raises(ValueError, match="min_presence"):
        MediaPipeOptions(min_presence=1.5)
    with pytest.raises(ValueError, match="region_steps"):
        MediaPipeOptions(region_steps=0)


def test_pair_search_adds_the_second_hand_of_a_touching_pair(hand_image):
    # Two mirrored hands overlapping at the edge; whatever the palm detector finds, the pair
    # search beside the found hand finds the other one, and every hand is a distinct hand.
    h, w = hand_image.shape[:2]
    shift = int(0.6 * w)
    photo = np.full((h, w + shift, 3), 255, np.uint8)
    photo[:, :w] = hand_image
    mirror = np.ascontiguousarray(hand_image[:, ::-1])
    on = mirror.min(-1) < 240
    photo[:, shift:][on] = mirror[on]
    with MediaPipeEstimator(MediaPipeOptions(use_pose=False, tile_grids=())) as estimator:
        hands = estimator.predict(photo)
    assert len(hands) == 2 and {hand.handedness for hand in hands} == {"left", "right"}
    centres = sorted(hand.keypoints_2d[:, 0].mean() for hand in hands)
    assert centres[1] - centres[0] > 0.3 * w


def test_pair_search_finds_the_crossed_hand_the_palm_detector_misses():
    # The repository's rendered demo scene of two crossed hands (exact ground truth).
    import json
    from pathlib import Path

    from handpose.io import load_image
    from handpose.metrics import match_hands

    folder = Path(__file__).resolve().parents[2] / "data" / "demo"
    entry = next(e for e in json.loads((folder / "gt.json").read_text())["images"]
                 if e["image"] == "20_crossed_hard.jpg")
    gt = np.array([hand["keypoints_2d"] for hand in entry["hands"]])
    image = load_image(folder / entry["image"])
    with MediaPipeEstimator(MediaPipeOptions(use_regions=False)) as palms_only:
        assert len(palms_only.predict(image)) == 1
    with MediaPipeEstimator() as estimator:
        hands = estimator.predict(image)
    matches = match_hands(np.stack([hand.keypoints_2d for hand in hands]), gt)
    assert len(hands) == 2 and len(matches.pairs) == 2
    assert any(hand.source == "landmarks:pair" for hand in hands)


def _pose_at(wrist, knuckles, elbow, shoulders=((0.0, 0.0), (60.0, 0.0))):
    """A ``(33, 3)`` pose whose right wrist, pinky / index (both at ``knuckles``) and elbow are given;
    every other landmark invisible."""
    pose = np.zeros((33, 3))
    pose[11:13, :2] = shoulders
    pose[[16, 18, 20, 14], :2] = [wrist, knuckles, knuckles, elbow]
    pose[16, 2] = 1.0
    return pose


def test_wrist_regions_follow_the_forearm():
    from handpose.models.mediapipe import wrist_regions
    from handpose.prediction import HandPrediction

    # Forearm pointing right (elbow left of the wrist): the region turns the hand upright by +90 deg.
    pose = _pose_at(wrist=(200.0, 100.0), knuckles=(220.0, 100.0), elbow=(100.0, 100.0))
    ((region, tag),) = wrist_regions(pose, [], 0.3)
    assert tag == "person-right"
    np.testing.assert_allclose(region.center, [214.0, 100.0])  # 0.7 of the way to the knuckles
    assert region.size == pytest.approx(90.0) and region.angle_deg == pytest.approx(90.0)  # 0.9 forearm
    pose[16, 2] = 0.1
    assert wrist_regions(pose, [], 0.3) == []  # wrist not visible
    pose[16, 2] = 1.0
    kp = np.random.default_rng(0).uniform([190, 90], [240, 110], (21, 2))
    hand = HandPrediction(keypoints_2d=kp, keypoints_3d=np.zeros((21, 3)), handedness="right", score=1.0)
    assert wrist_regions(pose, [hand], 0.3) == []  # a found hand explains the wrist
    with pytest.raises(ValueError, match=r"\(33, 3\)"):
        wrist_regions(pose[:, :2], [], 0.3)


def test_every_person_is_searched(monkeypatch, reference, hand_image):
    # Two people side by side (the test hand twice); MediaPipe Pose finds one person per image,
    # so the second one's wrist comes from a Pose run on its segmentation component.
    from types import SimpleNamespace

    from handpose import detect

    h, w = hand_image.shape[:2]
    photo = np.concatenate([hand_image, hand_image], axis=1)
    mask = np.zeros((h, 2 * w), np.float32)
    mask[h // 8:, w // 8: w - w // 8] = 1.0
    mask[h // 8:, w + w // 8: 2 * w - w // 8] = 1.0
    kp = reference.keypoints_2d + 0.5  # continuous pixels of the test hand
    knuckles = (kp[5] + kp[17]) / 2
    elbow = kp[WRIST] - 1.5 * (kp[MIDDLE_MCP] - kp[WRIST])

    def pose_result(pose, offset, size):
        marks = [SimpleNamespace(x=(x + offset[0]) / size[0], y=(y + offset[1]) / size[1], visibility=v)
                 for x, y, v in pose]
        return SimpleNamespace(pose_landmarks=SimpleNamespace(landmark=marks))

    seen = []

    def fake_pose(image):
        seen.append(image.shape[:2])
        ih, iw = image.shape[:2]
        if iw == 2 * w:  # the whole photo: the left person
            return pose_result(_pose_at(kp[WRIST], knuckles, elbow), (0.0, 0.0), (iw, ih))
        box = max(detect.mask_boxes(mask > 0.5, 0.01), key=lambda b: b[0])  # the right person's crop
        return pose_result(_pose_at(kp[WRIST], knuckles, elbow), (w - np.round(box[0]), -np.round(box[1])),
                           (iw, ih))

    with MediaPipeEstimator(MediaPipeOptions(tile_min_side=256)) as estimator:
        monkeypatch.setattr(estimator, "_pose", lambda: SimpleNamespace(process=fake_pose))
        monkeypatch.setattr(estimator, "_segmentation",
                            lambda: SimpleNamespace(process=lambda image: SimpleNamespace(segmentation_mask=mask)))
        candidates = estimator._person_regions(photo, [])
        assert [tag for _, tag in candidates] == ["person-right", "person-right1"]
        assert len(seen) == 2  # the whole photo, then only the right person (the left one holds the first pose)
        np.testing.assert_allclose(candidates[1][0].center - candidates[0][0].center, [w, 0.0], atol=1.0)
        found, _ = estimator._search_regions(photo, candidates, [], 4)
    assert len(found) == 2
    np.testing.assert_allclose(sorted(hand.keypoints_2d[WRIST, 0] for hand in found),
                               [kp[WRIST, 0], kp[WRIST, 0] + w], atol=0.05 * w)


def test_people_options_validation():
    with pytest.raises(ValueError, match="max_people"):
        MediaPipeOptions(max_people=-1)
    with pytest.raises(ValueError, match="person_min_fraction"):
        MediaPipeOptions(person_min_fraction=2.0)


def test_person_models_build_and_run_silently(capfd, hand_image):
    # No C++ log lines on stderr from the pose and segmentation graphs (built in silenced blocks).
    capfd.readouterr()
    with MediaPipeEstimator(MediaPipeOptions(tile_min_side=256)) as estimator:
        estimator._people(np.concatenate([hand_image, hand_image], axis=1), None)
    assert capfd.readouterr().err == ""


def test_sure_region_hands_pass_a_looser_anatomy_check(monkeypatch, reference, hand_image):
    # The same region hand, its anatomy failing 45 % of the checks: kept when its presence makes it
    # sure (max_plausibility_sure 0.5), dropped when it does not (max_plausibility 0.35).
    from handpose.models import regions

    region = regions.region_from_keypoints(reference.keypoints_2d + 0.5)
    monkeypatch.setattr(regions, "plausibility_failures", lambda hand: 0.45)
    kept = {}
    for sure in (0.0, 1.0):
        with MediaPipeEstimator(MediaPipeOptions(sure_presence=sure)) as estimator:
            kept[sure], _ = estimator._search_regions(hand_image, [(region, "test")], [], 4)
    assert len(kept[0.0]) == 1 and kept[0.0][0].source == "landmarks:test"
    assert kept[1.0] == []
    with pytest.raises(ValueError, match="max_plausibility_sure"):
        MediaPipeOptions(max_plausibility_sure=1.5)


def test_tile_windows_find_a_small_hand_through_the_region_verifier(monkeypatch, hand_image):
    # A rendered hand of about 60 px pasted into a large canvas, out of reach of the full view (the
    # whole-photo palm stage is turned off here): the tile stage's palm windows find it, and it
    # comes out as a verified region hand. A blank canvas gives nothing despite the low palm score.
    import cv2

    photo = np.full((900, 1200, 3), 60, np.uint8)
    photo[300:396, 700:796] = cv2.resize(hand_image, (96, 96), interpolation=cv2.INTER_AREA)
    options = MediaPipeOptions(use_pose=False, rescue=False, tile_min_side=480)
    with MediaPipeEstimator(options) as estimator:
        windows_only = estimator._palm_candidates
        monkeypatch.setattr(estimator, "_palm_candidates", lambda image, windows, found, confidence: (
            windows_only(image, windows, found, confidence) if windows[0][0] is not None else []))
        hands = estimator.predict(photo)
        assert estimator.predict(np.full_like(photo, 60)) == []
    assert len(hands) == 1 and hands[0].source.startswith("landmarks:tile")
    assert np.all(hands[0].keypoints_2d >= [695, 295]) and np.all(hands[0].keypoints_2d <= [801, 401])
    assert 40 <= np.ptp(hands[0].keypoints_2d, axis=0).max() <= 96


def _upright_hand_at(center_x: float, center_y: float) -> np.ndarray:
    """The synthetic open hand (fingers up, ``upright_angle = 0``) moved so that its pair region's
    centre is ``(center_x, center_y)``; returns ``(21, 2)`` keypoints and the region side."""
    from _synthetic import HAND
    from handpose.models import regions

    r = regions.region_from_keypoints(HAND)
    return HAND - r.center + [center_x, center_y], r.size


def test_pair_regions_outside_the_photo_are_skipped():
    # An upright hand whose region centre is half a step from the left edge: of its 10 pair
    # regions, the 2 left of it (one and two steps beside) are outside; the rest lie on its
    # column and one and two steps right.
    from handpose.prediction import HandPrediction

    side = _upright_hand_at(0.0, 0.0)[1]
    step = 0.3 * side
    kp, _ = _upright_hand_at(0.5 * step, 500.0)
    hand = HandPrediction(kp, np.zeros((21, 3)), "right", 1.0)
    with MediaPipeEstimator() as estimator:
        kept = estimator._pair_regions(hand, 1000, 1000)
    assert len(kept) == 8 and all(tag == "pair" for _, tag in kept)
    assert all(0 <= region.center[0] <= 1000 for region, _ in kept)
    columns = sorted({round(region.center[0] - 0.5 * step, 6) + 0.0 for region, _ in kept})
    assert columns == pytest.approx([0.0, step, 2 * step])


def test_pair_hands_overlapping_a_found_hand_are_re_readings(reference, hand_image):
    # The hand itself as a region hand, next to a found copy of it shifted along the box's longer
    # side so that their boxes overlap by IoU 0.51 while their keypoints are too far apart for
    # the duplicate rules: with pair_max_iou 0.5 it is a re-reading and dropped; at 0.6 it is kept.
    from handpose.detect import box_iou, keypoint_distance
    from handpose.models import regions
    from handpose.prediction import HandPrediction

    region = regions.region_from_keypoints(reference.keypoints_2d + 0.5)  # continuous pixels
    with MediaPipeEstimator() as estimator:
        (alone,), _ = estimator._search_regions(hand_image, [(region, "pair")], [], 4)
    kp = alone.keypoints_2d
    sides = np.ptp(kp, axis=0)
    axis = int(np.argmax(sides))
    shift = np.zeros(2)
    shift[axis] = sides[axis] * (1 - 0.51) / 1.51  # (s - d) / (s + d) = 0.51 for boxes of one size
    found = HandPrediction(kp + shift, reference.keypoints_3d, "left", 0.99)
    box = np.r_[kp.min(0), kp.max(0)]
    assert box_iou(box, found.box_xyxy)[0, 0] == pytest.approx(0.51)
    assert keypoint_distance(kp[None], found.keypoints_2d[None])[0, 0] > 0.32  # not the same hand by keypoints
    kept = {}
    for max_iou in (0.5, 0.6):
        with MediaPipeEstimator() as estimator:
            kept[max_iou], _ = estimator._search_regions(hand_image, [(region, "pair")], [found], 4, max_iou=max_iou)
    assert len(kept[0.6]) == 2 and kept[0.6][1].source == "landmarks:pair"
    assert kept[0.5] == [found]
    with pytest.raises(ValueError, match="pair_max_iou"):
        MediaPipeOptions(pair_max_iou=1.5)


def _demo_hand(name):
    """A committed rendered demo image and its one GT hand ``(21, 2)`` (pixel centres)."""
    import json
    from pathlib import Path

    from handpose.io import load_image

    folder = Path(__file__).resolve().parents[2] / "data" / "demo"
    entry = next(e for e in json.loads((folder / "gt.json").read_text())["images"] if e["image"] == name)
    return load_image(folder / name), np.array(entry["hands"][0]["keypoints_2d"])


def test_scan_finds_a_covered_hand_the_palm_detector_misses():
    # A demo hand cropped large (about 0.45 of the photo) with a flat patch over its palm, as an
    # object held in front of it: the palm detector finds nothing, the scan finds the hand.
    from handpose.metrics import match_hands

    image, gt = _demo_hand("05_back_count2.jpg")
    side = int(2.2 * np.ptp(gt, axis=0).max())
    x0, y0 = np.clip((gt.min(0) + gt.max(0)) / 2 - side / 2, 0, None).astype(int)
    photo, kp = image[y0:y0 + side, x0:x0 + side].copy(), gt - [x0, y0]
    palm, r = kp[[0, 5, 9, 13, 17]].mean(0), 0.2 * np.ptp(kp, axis=0).max()
    (a0, b0), (a1, b1) = (palm - r).astype(int), (palm + r).astype(int)
    photo[b0:b1, a0:a1] = (90, 110, 160)
    with MediaPipeEstimator(MediaPipeOptions(use_pose=False, scan=False)) as without:
        assert without.predict(photo) == []
    with MediaPipeEstimator(MediaPipeOptions(use_pose=False)) as estimator:
        hands = estimator.predict(photo)
    assert len(hands) == 1 and hands[0].source == "landmarks:scan"
    assert len(match_hands(hands[0].keypoints_2d[None], kp[None]).pairs) == 1
    # A scan hand must be sure or show a palm wide enough: impossible limits reject it.
    with MediaPipeEstimator(MediaPipeOptions(use_pose=False, scan_min_spread=5.0, sure_presence=1.0)) as strict:
        assert strict.predict(photo) == []


def test_scan_finds_no_hand_in_a_hand_free_photo():
    # The same demo scene with the hand painted out, plus skin-coloured face- and forearm-like shapes.
    import cv2

    from handpose.models import regions

    image, gt = _demo_hand("05_back_count2.jpg")
    mask = np.zeros(image.shape[:2], np.uint8)
    (x1, y1), (x2, y2) = gt.min(0) - 0.4 * np.ptp(gt, axis=0), gt.max(0) + 0.4 * np.ptp(gt, axis=0)
    cv2.rectangle(mask, (int(x1), int(y1)), (int(x2), int(y2)), 255, -1)
    photo = cv2.inpaint(image, mask, 5, cv2.INPAINT_TELEA)
    h, w = photo.shape[:2]
    cv2.ellipse(photo, (w // 4, h // 3), (w // 10, h // 7), 0, 0, 360, (205, 160, 135), -1)
    cv2.line(photo, (w // 2, h), (3 * w // 4, h // 2), (195, 150, 125), max(w // 14, 4))
    with MediaPipeEstimator(MediaPipeOptions(use_pose=False)) as estimator:
        hands = estimator.predict(photo)
        calls = estimator._network().calls
    assert hands == []
    # The scan did run on every region of its cover.
    o = MediaPipeOptions()
    assert calls >= len(regions.scan_regions(w, h, o.scan_sizes, o.scan_step, o.scan_margin, turns=o.scan_turns))


def test_scan_options_validation():
    with pytest.raises(ValueError, match="scan_sizes"):
        MediaPipeOptions(scan_sizes=())
    with pytest.raises(ValueError, match="scan_step"):
        MediaPipeOptions(scan_step=1.5)
    with pytest.raises(ValueError, match="scan_min_spread"):
        MediaPipeOptions(scan_min_spread=-0.1)
    with pytest.raises(ValueError, match="scan_found_scales"):
        MediaPipeOptions(scan_found_scales=(0.0,))
    with pytest.raises(ValueError, match="scan_turns"):
        MediaPipeOptions(scan_turns=())


def _facing_pair(name: str, along: float, turn: float) -> tuple[np.ndarray, np.ndarray]:
    """A committed demo photo of one hand on a plain backdrop with its mirror image pasted over it,
    turned by ``turn`` degrees about its centre and moved ``along`` hand sides along its fingers:
    the other hand of a pair reaching into it (fingers between fingers). Returns the photo and
    the ``(2, 21, 2)`` ground truth (pixel centres, which OpenCV's warpAffine also uses)."""
    import cv2

    image, kp = _demo_hand(name)
    h, w = image.shape[:2]
    backdrop = np.median(np.concatenate([image[:4].reshape(-1, 3), image[:, :4].reshape(-1, 3)]), axis=0)
    centre = (kp.min(0) + kp.max(0)) / 2
    up = (kp[MIDDLE_MCP] - kp[WRIST]) / np.linalg.norm(kp[MIDDLE_MCP] - kp[WRIST])
    flip = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mirrored_centre = flip[:2, :2] @ centre + flip[:2, 2]
    turn_about = np.vstack([cv2.getRotationMatrix2D(tuple(mirrored_centre), turn, 1.0), [0.0, 0.0, 1.0]])
    move = np.eye(3)
    move[:2, 2] = centre + along * np.ptp(kp, axis=0).max() * up - mirrored_centre
    affine = (move @ turn_about @ flip)[:2]
    other = cv2.warpAffine(image, affine, (w, h), borderValue=tuple(float(v) for v in backdrop))
    on = np.abs(other.astype(np.float64) - backdrop).sum(-1) > 40
    on = cv2.morphologyEx(on.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)) > 0
    photo = image.copy()
    photo[on] = other[on]
    return photo, np.stack([kp, kp @ affine[:, :2].T + affine[:, 2]])


@pytest.mark.parametrize("turn", [180.0, 150.0])
def test_pair_search_finds_a_facing_hand_reaching_into_the_found_one(turn):
    # The demo's open right hand and its mirror image (a left hand) coming from above, fingers
    # between its fingers: the palm detector finds one; the pair regions on and along the found
    # hand turned by a + 180 find the other (the 9 image-axis regions of before did not).
    from handpose.metrics import match_hands

    photo, gt = _facing_pair("01_palm_open.jpg", along=0.6, turn=turn)
    options = MediaPipeOptions(use_pose=False, tile_grids=())
    with MediaPipeEstimator(dataclasses.replace(options, use_regions=False)) as palms_only:
        assert len(palms_only.predict(photo)) == 1
    with MediaPipeEstimator(options) as estimator:
        hands = estimator.predict(photo)
    matches = match_hands(np.stack([hand.keypoints_2d for hand in hands]), gt)
    assert len(hands) == 2 and len(matches.pairs) == 2
    assert {hand.handedness for hand in hands} == {"left", "right"}
    assert any(hand.source == "landmarks:pair" for hand in hands)


@pytest.mark.parametrize("name, along", [("02_back_open.jpg", 0.3), ("01_palm_open.jpg", 0.5)])
def test_painted_pair_search_finds_the_covered_hand(name, along):
    # A demo hand with its mirror image pasted over it, turned a quarter: the network reads the
    # upper hand in every pair region; with the found hand painted out, the palm detector around
    # it finds the covered one (the scan and tiles, which could find it later, are off).
    from handpose.metrics import match_hands

    photo, gt = _facing_pair(name, along=along, turn=90.0)
    options = MediaPipeOptions(use_pose=False, scan=False, tile_min_side=100_000)
    for off in (dataclasses.replace(options, pair_paint=False), dataclasses.replace(options, pair_paint_min_hand=1.0)):
        with MediaPipeEstimator(off) as without:  # off, or the found hand too small to search beside
            assert len(without.predict(photo)) == 1
    with MediaPipeEstimator(options) as estimator:
        hands = estimator.predict(photo)
    assert [hand.source for hand in hands].count("landmarks:pair-painted") == 1
    matches = match_hands(np.stack([hand.keypoints_2d for hand in hands]), gt)
    assert len(hands) == 2 and len(matches.pairs) == 2
    assert {hand.handedness for hand in hands} == {"left", "right"}


def test_painted_pair_options_validation():
    with pytest.raises(ValueError, match="pair_paint_width"):
        MediaPipeOptions(pair_paint_width=0.0)
    with pytest.raises(ValueError, match="pair_paint_max_covered"):
        MediaPipeOptions(pair_paint_max_covered=1.5)
    with pytest.raises(ValueError, match="pair_paint_min_hand"):
        MediaPipeOptions(pair_paint_min_hand=-0.1)


def test_tile_windows_cover_the_photo():
    with MediaPipeEstimator(MediaPipeOptions(tile_grids=(2,))) as estimator:
        coarse, fine = estimator._tile_windows(1280, 853)
    names = [name for _, _, name in coarse]
    assert names[:4] == [f"tile2x2-{i}" for i in range(4)] and len(names) == 4 + 6  # 3 x 2 windows of 512 px
    assert len(fine) == 12  # 4 x 3 windows of 384 px
    for windows, side in ((coarse[4:], 512.0), (fine, 384.0)):
        boxes = np.array([box for box, _, _ in windows])
        np.testing.assert_allclose(boxes[:, 2:] - boxes[:, :2], side)
        assert boxes[:, :2].min() == 0 and boxes[:, 2].max() == 1280 and boxes[:, 3].max() == 853
    with MediaPipeEstimator() as estimator:
        (coarse,) = estimator._tile_windows(4032, 3024)  # a phone photo: windows grow, fine ones too many
        assert len(coarse) == 20 and np.ptp(coarse[0][0].reshape(2, 2), axis=0).tolist() == [1008.0, 1008.0]
    with MediaPipeEstimator(MediaPipeOptions(fine_tile_max=8)) as estimator:
        assert [len(windows) for windows in estimator._tile_windows(1280, 853)] == [6]  # too many fine ones
    with MediaPipeEstimator(MediaPipeOptions(coarse_tile_side=0, fine_tile_side=0)) as estimator:
        assert estimator._tile_windows(1280, 853) == []


def test_palms_a_found_hand_explains_are_not_candidates(reference, hand_image):
    # The drawn hand's palm: a candidate on its own, explained (skipped) once the hand is found.
    with MediaPipeEstimator() as estimator:
        alone = estimator._palm_candidates(hand_image, [(None, 0.0, "palms")], [], 0.2)
        known = dataclasses.replace(reference, keypoints_2d=reference.keypoints_2d + 0.5)  # continuous pixels
        assert estimator._palm_candidates(hand_image, [(None, 0.0, "palms")], [known], 0.2) == []
    assert alone and all(tag == "palms" and 0.2 <= score <= 1 for _, tag, score in alone)
    centre = reference.keypoints_2d.mean(0)
    assert np.linalg.norm(alone[0][0].center - centre) < 0.5 * np.ptp(reference.keypoints_2d, axis=0).max()


def test_palm_options_validation():
    with pytest.raises(ValueError, match="low_palms"):
        MediaPipeOptions(low_palms=-1)
    with pytest.raises(ValueError, match="palm_threads"):
        MediaPipeOptions(palm_threads=0)
    with pytest.raises(ValueError, match="palm_min_presence"):
        MediaPipeOptions(palm_min_presence=1.5)


def test_a_sure_window_palm_is_accepted_like_the_graphs(monkeypatch):
    # Demo 13: two fists. The full view finds the right one; a 480 px window's palm detector finds
    # the other with a palm score above min_detection_confidence, and the landmark network reads it
    # well in 2D but its 3D reading fails the anatomy check (half its bones and joints). Such a palm
    # is accepted as MediaPipe's graph accepts it; with the anatomy check it is lost.
    import json
    from pathlib import Path

    from handpose.io import load_image
    from handpose.metrics import match_hands

    folder = Path(__file__).resolve().parents[2] / "data" / "demo"
    entry = next(e for e in json.loads((folder / "gt.json").read_text())["images"] if e["image"].startswith("13_"))
    photo = load_image(folder / entry["image"])
    gt = np.array([hand["keypoints_2d"] for hand in entry["hands"]])
    options = MediaPipeOptions(use_pose=False, scan=False)
    with MediaPipeEstimator(options) as estimator:
        hands = estimator.predict(photo)
        assert len(match_hands(np.stack([hand.keypoints_2d for hand in hands]), gt).pairs) == 2
        assert any(hand.source.startswith("landmarks:tile") for hand in hands)
        search = estimator._search_regions
        monkeypatch.setattr(estimator, "_search_regions", lambda *args, max_plausibility=None, **kwargs: search(
            *args, **kwargs))  # every palm through the anatomy check
        assert len(estimator.predict(photo)) == 1


def test_merge_drops_a_small_hand_read_on_a_larger_hands_fingers():
    # A demo hand and a copy of it at 0.4 of its size on its fingertips, its box mostly outside the
    # larger hand's (nested_in_larger keeps it): the finger rule drops it; the same copy 1.5 sides
    # away (a small hand of its own, wide shots) and the rule switched off keep it.
    from handpose.detect import nested_in_larger
    from handpose.keypoints import MIDDLE_MCP, TIPS
    from handpose.prediction import HandPrediction

    _, gt = _demo_hand("01_palm_open.jpg")
    gt = gt + 1000.0  # room all round in a 4000 px photo
    side = np.ptp(gt, axis=0).max()

    def hand(kp, score):
        mm = 80.0 / np.linalg.norm(kp[MIDDLE_MCP] - kp[WRIST])  # wrist to middle MCP: 80 mm
        return HandPrediction(kp, np.c_[(kp - kp[WRIST]) * mm, np.zeros(21)], "right", score)

    small = 0.4 * (gt - gt.mean(0))
    tips = gt[list(TIPS)].mean(0)
    outward = (tips - gt.mean(0)) / np.linalg.norm(tips - gt.mean(0))
    big = hand(gt, 0.9)
    on_fingers = hand(small + tips + 0.35 * side * outward, 0.95)  # centre 0.54 of its side away
    far = hand(small + gt.mean(0) + 1.5 * side * outward, 0.95)
    assert np.linalg.norm(on_fingers.keypoints_2d.mean(0) - gt.mean(0)) < 0.75 * side
    assert not nested_in_larger(np.stack([big.box_xyxy, on_fingers.box_xyxy]))[1]
    h, w = 4000, 4000
    with MediaPipeEstimator() as estimator:
        assert estimator._merge([big, on_fingers], w, h) == [big]
        assert len(estimator._merge([big, far], w, h)) == 2
    with MediaPipeEstimator(MediaPipeOptions(finger_ratio=0)) as off:
        assert len(off._merge([big, on_fingers], w, h)) == 2
    with pytest.raises(ValueError, match="finger_ratio"):
        MediaPipeOptions(finger_ratio=0.5)
