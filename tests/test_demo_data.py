"""Tests of the rendered demo set (``handpose.demo_data``) and its scene pieces (``handpose.scene``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from handpose import demo_data as dd
from handpose.camera import intrinsics, project
from handpose.groundtruth import METADATA_COLUMNS, read_metadata_csv
from handpose.io import load_image
from handpose.render import rasterize

REPO = Path(__file__).resolve().parents[1]
#: One one-hand scene and one two-hand scene: enough to exercise every code path, fast.
SUBSET = ("01_palm_open", "11_two_open")


@pytest.fixture(scope="module")
def generated(open_hand_export, tmp_path_factory) -> tuple[Path, dd.GenerationResult]:
    out = tmp_path_factory.mktemp("demo")
    return out, dd.generate(out, seed=0, only=SUBSET)


# -- ground truth ---------------------------------------------------------------------------------

def test_gt_format_and_projection(generated):
    out, result = generated
    gt = json.loads((out / "gt.json").read_text())
    shared = {"keypoint_order", "conventions", "images"}
    assert set(gt) == shared and len(gt["keypoint_order"]) == 21 and gt["keypoint_order"][0] == "wrist"
    assert [im["image"] for im in gt["images"]] == [f"{name}.jpg" for name in SUBSET]
    assert [len(im["hands"]) for im in gt["images"]] == [1, 2]
    for entry in gt["images"]:
        image = load_image(out / entry["image"])
        assert image.shape == (entry["height"], entry["width"], 3)
        assert entry["width"] * 3 == entry["height"] * 4  # 4:3
        for hand in entry["hands"]:
            assert set(hand) >= {"handedness", "keypoints_2d", "keypoints_3d_cam_mm", "K", "visibility"}
            K, X = np.asarray(hand["K"]), np.asarray(hand["keypoints_3d_cam_mm"])
            assert 0.9 * entry["width"] <= K[0, 0] <= 1.1 * entry["width"]
            np.testing.assert_allclose(np.asarray(project(X, K)), hand["keypoints_2d"], atol=0.01)
            assert len(hand["visibility"]) == 21 and set(hand["visibility"]) <= {0, 1}


def test_two_hands_are_a_left_and_a_right_hand_where_the_scene_says(generated):
    _, result = generated
    hands = result.gt["images"][1]["hands"]
    assert [h["handedness"] for h in hands] == ["right", "left"]
    wrist_x = [h["keypoints_2d"][0][0] for h in hands]
    assert wrist_x[0] < 400 < wrist_x[1]  # the scene puts the right hand on the image's left


def test_open_palm_faces_the_camera_with_thumb_on_the_right(generated):
    # right palm towards the camera, fingers up: the thumb tip is right of the pinky tip and the
    # middle fingertip above the wrist, and nothing hides the tips.
    _, result = generated
    hand = result.gt["images"][0]["hands"][0]
    kp = np.asarray(hand["keypoints_2d"])
    assert kp[4, 0] > kp[20, 0] and kp[12, 1] < kp[0, 1]
    assert all(hand["visibility"][i] for i in (4, 8, 12, 16, 20))


# -- determinism and the committed set ------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_image(generated, tmp_path):
    out, _ = generated
    again = dd.generate(tmp_path / "again", seed=0, only=SUBSET[:1])
    name = f"{SUBSET[0]}.jpg"
    assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()
    other = dd.render_scene(dd.SCENES[0], seed=1, index=0)
    assert np.abs(other.image.astype(int) - load_image(out / name).astype(int)).mean() > 1.0
    assert again.gt["images"][0] == json.loads((out / "gt.json").read_text())["images"][0]


def test_committed_demo_set_is_reproduced(open_hand_export, tmp_path):
    demo = REPO / "data" / "demo"
    if not (demo / "gt.json").is_file():
        pytest.skip("data/demo has not been generated")
    committed = json.loads((demo / "gt.json").read_text())
    assert [im["image"] for im in committed["images"]] == [dd.image_name(s) for s in dd.SCENES]
    index = 11  # a two-hand scene with an occlusion
    result = dd.generate(tmp_path, seed=0, only=[index])
    fresh = result.gt["images"][0]
    old = committed["images"][index]
    assert fresh["image"] == old["image"]
    for a, b in zip(fresh["hands"], old["hands"]):
        np.testing.assert_allclose(a["keypoints_3d_cam_mm"], b["keypoints_3d_cam_mm"], atol=1e-3)
        assert a["visibility"] == b["visibility"]
    new_pixels = load_image(tmp_path / fresh["image"]).astype(int)
    old_pixels = load_image(demo / old["image"]).astype(int)
    assert np.abs(new_pixels - old_pixels).mean() < 0.5


# -- visibility -----------------------------------------------------------------------------------

def quad_depth(corners_px: np.ndarray, z: float, K: np.ndarray, height: int, width: int) -> np.ndarray:
    """Depth buffer of a flat quad at depth ``z`` whose corners project to ``corners_px`` (4, 2)."""
    corners = z * np.linalg.solve(K, np.c_[corners_px, np.ones(4)].T).T
    screen = np.c_[np.asarray(project(corners, K)), corners[:, 2]]
    return rasterize(screen, np.array([[0, 1, 2], [0, 2, 3]]), height, width).depth


def test_keypoint_visibility_against_a_quad():
    K = intrinsics(100.0, 49.5, 39.5)
    depth = quad_depth(np.array([[0, 0], [49.6, 0], [49.6, 79], [0, 79]]), 300.0, K, 80, 100)

    def at(u, v, z):
        return z * np.linalg.solve(K, [u, v, 1.0])

    points = np.array([at(20, 40, 400), at(80, 40, 400), at(20, 40, 299), at(20, 40, 302.5),
                       at(20, 40, 304), at(120, 40, 400), [0.0, 0.0, -50.0]])
    got = dd.keypoint_visibility(points, K, depth, tolerance=3.0)
    # behind the quad, beside it, in front, just under its surface (within 3 mm), too deep,
    # outside the image, behind the camera
    assert got.tolist() == [False, True, True, True, False, False, False]
    per_point = dd.keypoint_visibility(points[:2], K, depth, tolerance=np.array([150.0, 0.0]))
    assert per_point.tolist() == [True, True]
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        dd.keypoint_visibility(points[:, :2], K, depth, 3.0)


def test_hand_behind_a_phone_loses_exactly_the_covered_keypoints(open_hand_export):
    """A box in front of the fingers: the keypoints whose pixel is inside the box's outline are
    hidden (the box is nearer than the whole hand), all others of an open palm are visible."""
    hand = dd.HandSpec("right", "open", (0, -1, 0), (0, 0, -1), (0.5, 0.5, 450))
    box = dd.ObjectSpec("box", (0, -60, 300), (400, 60, 4), 0, (30, 30, 35))
    spec = dd.SceneSpec("t", "palm", (hand,), "plain:grey", "daylight", "III", objects=(box,), noise=0.0)
    rendered = dd.render_scene(spec)
    K, X = rendered.K, rendered.hands[0].keypoints
    # the box's front face spans y in [-90, -30] mm at z = 298: its image rows, analytically
    rows = K[1, 1] * np.array([-90.0, -30.0]) / 298.0 + K[1, 2]
    v = np.asarray(project(X, K))[:, 1]
    expected = ~((v > rows[0] + 1) & (v < rows[1] - 1))
    ambiguous = (np.abs(v - rows[0]) <= 1) | (np.abs(v - rows[1]) <= 1)
    assert 3 <= (~expected).sum() <= 18  # the scene really hides some keypoints
    np.testing.assert_array_equal(rendered.visibility[0][~ambiguous], expected[~ambiguous])


def test_supersampled_intrinsics_map_pixels_to_the_centre_of_their_block():
    K = intrinsics(500.0, 319.5, 239.5)
    X = np.array([[30.0, -20.0, 700.0], [-5.0, 44.0, 350.0]])
    uv, uv2 = np.asarray(project(X, K)), np.asarray(project(X, dd.supersampled_intrinsics(K, 2)))
    # pixel u covers sub-pixels 2u and 2u + 1, centred at 2u + 0.5
    np.testing.assert_allclose(uv2, 2 * uv + 0.5)


# -- scenes, gestures, metadata -------------------------------------------------------------------

def test_metadata_csv_has_every_column_and_the_scene_tags(generated):
    out, result = generated
    rows = read_metadata_csv(out / "metadata.csv")
    assert list(rows) == [f"{name}.jpg" for name in SUBSET]
    header = (out / "metadata.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == METADATA_COLUMNS
    assert rows["11_two_open.jpg"]["hands"] == "2" and rows["01_palm_open.jpg"]["view"] == "palm"
    for row in rows.values():
        assert all(row[c] for c in METADATA_COLUMNS if c != "notes")


def test_scene_list_covers_the_assignment():
    rows = [s.metadata() for s in dd.SCENES]
    assert len(dd.SCENES) == 20 and len({s.name for s in dd.SCENES}) == 20
    assert {"palm", "back", "side", "top-down", "egocentric"} <= {r["view"] for r in rows}
    assert {"open", "fist", "pinch", "point", "count"} <= {g for r in rows for g in r["gesture"].split("+")}
    assert {"1", "2"} == {r["hands"] for r in rows}
    assert {"object", "border", "other-hand"} <= {r["occlusion"] for r in rows}
    assert {"light", "medium", "dark"} == {r["skin_tone"] for r in rows}
    assert {"plain", "textured", "cluttered"} == {r["background"] for r in rows}
    assert 3 <= sum(r["hard"] == "1" for r in rows) <= 4


@pytest.mark.parametrize("gesture", sorted(dd.GESTURES))
def test_gestures_are_within_the_joint_limits(open_hand_export, gesture):
    from handpose.handmodel import load_hand_model

    lower, upper = (x.double().numpy() for x in load_hand_model("open", "right").pose_limits())
    pose = dd.gesture_pose(gesture)
    assert pose.shape == (45,) and np.all(pose >= lower - 1e-9) and np.all(pose <= upper + 1e-9)
    jittered = dd.gesture_pose(gesture, np.random.default_rng(0), jitter_deg=30, limits=(lower, upper))
    assert np.all(jittered >= lower) and np.all(jittered <= upper) and not np.allclose(jittered, pose)


def test_select_scenes_and_bad_inputs():
    assert dd.select_scenes(count=3) == [0, 1, 2]
    assert dd.select_scenes(only=["11", "01_palm_open", 4]) == [0, 4, 10]  # "11": 11_two_open
    with pytest.raises(ValueError, match="no single scene"):
        dd.select_scenes(only=["99_nothing"])
    with pytest.raises(ValueError, match="count"):
        dd.select_scenes(count=0)
    with pytest.raises(ValueError, match="unknown gesture"):
        dd.gesture_pose("wave")


def test_cli_writes_the_subset(open_hand_export, tmp_path, capsys):
    from handpose.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["demo-data", "--out", str(tmp_path), "--only", "14"])
    assert args.run(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["14_far_small.jpg", "gt.json", "metadata.csv"]
    assert "wrote 1 images" in capsys.readouterr().out
    bad = parser.parse_args(["demo-data", "--out", str(tmp_path), "--count", "0"])
    assert bad.run(bad) == 2
