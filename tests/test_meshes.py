"""Tests of handpose.meshes: batched fits over photos, overlays, placement, losses, posing."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from handpose import meshes  # noqa: E402
from handpose.alignment import placed_keypoints  # noqa: E402
from handpose.camera import project  # noqa: E402
from handpose.camera import default_intrinsics  # noqa: E402
from handpose.fitting import FitResult  # noqa: E402
from handpose.handmodel import load_hand_model  # noqa: E402
from handpose.pipeline import ImageResult  # noqa: E402
from handpose.prediction import HandPrediction  # noqa: E402

K = np.array([[700.0, 0.0, 319.5], [0.0, 700.0, 239.5], [0.0, 0.0, 1.0]])
FAST = dict(iterations=10, rigid_iterations=4)


@pytest.fixture(scope="module")
def models(open_hand_export):
    return {side: load_hand_model("open", side) for side in ("right", "left")}


def _synthetic(model, seed: int, x: float = 0.0) -> tuple[HandPrediction, np.ndarray, np.ndarray]:
    """A hand of ``model`` palm towards the camera, 450 mm away: its exact prediction, pose and
    camera-frame keypoints ``(21, 3)``."""
    rng = np.random.default_rng(seed)
    lower, upper = (v.numpy().astype(np.float64) for v in model.pose_limits())
    pose = 0.5 * (lower + (upper - lower) * rng.uniform(0.3, 0.7, 45))
    posed = meshes.pose_model(model, pose=pose, global_orient=np.array([0.0, np.pi, 0.0]))
    points = posed.keypoints[0] + np.array([x, 0.0, 450.0])
    hand = HandPrediction(project(points, K), points - points[0], model.side, 0.9)
    return hand, pose, points


def _fit_from_model(model, pose: np.ndarray, transl: np.ndarray) -> FitResult:
    """A FitResult holding the exact model output (what a perfect fit returns)."""
    posed = meshes.pose_model(model, pose=pose, global_orient=np.array([0.0, np.pi, 0.0]))
    nan = np.full((1, 21), np.nan)
    return FitResult(vertices=posed.vertices + transl, keypoints=posed.keypoints + transl, faces=posed.faces,
                     pose=pose[None], shape=np.zeros((1, model.num_shape)), global_orient=np.array([[0.0, np.pi, 0.0]]),
                     transl=transl[None], scale=np.ones(1), residual_3d_mm=nan, residual_2d_px=np.zeros((1, 21)),
                     loss=np.zeros(1), converged=np.ones(1, bool), iterations=np.zeros(1, int), side=model.side)


# -- intrinsics and model choice ---------------------------------------------------------------
def test_known_intrinsics_reads_first_K_and_validates(tmp_path: Path):
    K2 = [[500.0, 0, 10], [0, 500.0, 20], [0, 0, 1]]
    gt = {"images": [{"image": "a.jpg", "hands": [{"K": K.tolist()}, {"K": K2}]},
                     {"image": "b.jpg", "hands": []},
                     {"image": "c.jpg", "hands": [{"handedness": "left"}, {"K": K2}]}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    found = meshes.known_intrinsics(tmp_path / "gt.json")
    assert sorted(found) == ["a.jpg", "c.jpg"]
    np.testing.assert_array_equal(found["a.jpg"], K)
    np.testing.assert_array_equal(found["c.jpg"], K2)
    assert meshes.known_intrinsics(tmp_path / "missing.json") == {}
    gt["images"][0]["hands"][0]["K"] = [[0.0, 0, 0], [0, 1, 0], [0, 0, 1]]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    with pytest.raises(ValueError, match="a.jpg"):
        meshes.known_intrinsics(tmp_path / "gt.json")


def test_mesh_model_kind_needs_both_mano_files(tmp_path: Path):
    assert meshes.mesh_model_kind(tmp_path) == "open"
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(b"x")
    assert meshes.mesh_model_kind(tmp_path) == "open"
    (tmp_path / "MANO_LEFT.pkl").write_bytes(b"x")
    assert meshes.mesh_model_kind(tmp_path) == "mano"


# -- geometry helpers --------------------------------------------------------------------------
def test_hands_box_is_a_square_around_the_hands_inside_the_photo():
    points = np.c_[np.linspace(100, 200, 21), np.linspace(50, 90, 21)]
    hand = HandPrediction(points, np.zeros((21, 3)), "right", 1.0)
    x1, y1, x2, y2 = meshes.hands_box([hand], 640, 480, margin=0.25)
    assert x2 - x1 == pytest.approx(y2 - y1) == pytest.approx(150.0)  # 100 px * (1 + 2 * 0.25)
    assert (x1 + x2) / 2 == pytest.approx(150.0)
    assert y1 == 0.0  # shifted down into the photo, not shrunk
    assert meshes.hands_box([], 640, 480) == (0.0, 0.0, 640.0, 480.0)


# -- fits --------------------------------------------------------------------------------------
def test_mesh_images_uses_known_K_else_the_default(models, tmp_path: Path):
    from PIL import Image

    hand, _, _ = _synthetic(models["right"], 0)
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(tmp_path / name)
    results = [ImageResult(tmp_path / "a.png", 640, 480, [hand]), ImageResult(tmp_path / "b.png", 640, 480, []),
               ImageResult(tmp_path / "gone.png", error="unreadable")]
    meshed = meshes.mesh_images(results, models, {"a.png": K}, **FAST)
    assert [m.name for m in meshed] == ["a.png", "b.png"]
    np.testing.assert_array_equal(meshed[0].K, K)
    np.testing.assert_array_equal(meshed[1].K, default_intrinsics(640, 480))
    assert len(meshed[0].fits) == 1 and meshed[1].fits == []
    assert meshed[1].overlay().sum() == 0  # no hands: the photo unchanged



def test_mesh_images_with_mano_files(fake_mano_dir, tmp_path: Path, monkeypatch):
    """Given MANO files in the weights folder, photos' hands become fitted MANO meshes on the photo
    (the fake MANO of conftest: random geometry with the official keys, so the hand is its own)."""
    from PIL import Image

    monkeypatch.setenv("HANDPOSE_WEIGHTS", str(fake_mano_dir))
    monkeypatch.setenv("HANDPOSE_CACHE", str(tmp_path / "cache"))
    assert meshes.mesh_model_kind() == "mano"
    mano = load_hand_model("mano", "right")
    posed = meshes.pose_model(mano, pose=np.full(45, 0.1), global_orient=np.array([0.0, np.pi, 0.0]))
    points = posed.keypoints[0] + np.array([0.0, 0.0, 400.0])
    hand = HandPrediction(project(points, K), points - points[0], "right", 0.9)
    Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(tmp_path / "a.png")
    meshed = meshes.mesh_images([ImageResult(tmp_path / "a.png", 640, 480, [hand])], "mano", {"a.png": K})
    (fit,) = meshed[0].fits
    assert fit.vertices.shape == (1, 778, 3) and len(fit.faces) == 1538
    assert np.nanmean(fit.residual_2d_px) < 2.0
    drawn = meshed[0].overlay().sum(-1) > 0
    u, v = np.rint(project(fit.vertices[0], K).mean(0)).astype(int)
    assert drawn.sum() > 100 and drawn[v, u]



def test_photo_intrinsics_from_exif_else_the_default(tmp_path: Path):
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 26  # a phone's main camera: 26 mm equivalent
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(tmp_path / "plain.png")
    K = meshes.photo_intrinsics(tmp_path / "phone.jpg", 400, 300)
    assert K[0, 0] == pytest.approx(26.0 * 500.0 / 43.27)  # the 43.27 mm diagonal maps to 500 px
    np.testing.assert_array_equal(meshes.photo_intrinsics(tmp_path / "plain.png", 400, 300),
                                  default_intrinsics(400, 300))


# -- overlays, placement, figures ---------------------------------------------------------------
def test_overlay_and_placement_of_an_exact_fit(models):
    hand, pose, points = _synthetic(models["right"], 3)
    fit = _fit_from_model(models["right"], pose, points[0])
    np.testing.assert_allclose(fit.keypoints[0], points, atol=1e-4)
    np.testing.assert_allclose(placed_keypoints(hand, fit), points, atol=1e-4)
    image = np.zeros((480, 640, 3), np.uint8)
    out = meshes.mesh_overlay(image, [fit], K, alpha=1.0)
    covered = out.sum(-1) > 0
    u, v = np.rint(hand.keypoints_2d[9]).astype(int)  # middle MCP: inside the palm
    assert covered[v, u]
    colour = out[covered].mean(0)
    assert colour[2] > colour[0]  # right hands are blue (SIDE_COLORS)
    assert not covered[0, 0]


def test_inference_figure_rows_and_validation(models):
    hand, pose, points = _synthetic(models["right"], 4)
    fit = _fit_from_model(models["right"], pose, points[0])
    image = np.full((480, 640, 3), 90, np.uint8)
    item = meshes.MeshedImage(Path("x.png"), image, K, [hand], [fit])
    fig = meshes.inference_figure(image, K, {"a": item, "b": ([hand], [fit])}, title="x")
    assert len(fig.axes) == 6 and fig.axes[1].name == "3d"
    assert fig.axes[0].get_title().startswith("a: 2D keypoints")
    plt.close(fig)
    with pytest.raises(ValueError, match="1 hands but 0 fits"):
        meshes.inference_figure(image, K, {"a": ([hand], [])})
    with pytest.raises(ValueError, match="at least one"):
        meshes.inference_figure(image, K, {})
    fig, ax = plt.subplots(subplot_kw={"projection": "3d"})
    meshes.draw_skeleton_3d(ax, points)
    assert len(ax.lines) == 20
    with pytest.raises(ValueError, match=r"\(21, 3\)"):
        meshes.draw_skeleton_3d(ax, points[:20])
    plt.close(fig)


def test_scene_traces_one_mesh_and_skeleton_per_hand(models):
    hand, pose, points = _synthetic(models["right"], 5)
    fit = _fit_from_model(models["right"], pose, points[0])
    item = meshes.MeshedImage(Path("x.png"), np.zeros((480, 640, 3), np.uint8), K, [hand, hand], [fit, fit])
    traces = meshes.scene_traces(item)
    assert [t.type for t in traces].count("mesh3d") == 2
    assert traces[0].name == "right 0 mesh"


# -- losses and posing --------------------------------------------------------------------------
def test_prediction_losses_of_an_exact_fit(models):
    model = models["right"]
    hand, pose, points = _synthetic(model, 6)
    fit = _fit_from_model(model, pose, points[0])
    losses = meshes.prediction_losses(hand, fit, K, model)
    assert losses.bone_length == pytest.approx(0.0, abs=1e-8)  # bone lengths do not depend on the pose
    assert losses.joint_l2_mm2 == pytest.approx(0.0, abs=1e-6)
    assert losses.reprojection_l1_px == pytest.approx(0.0, abs=1e-3)
    assert losses.regulariser == pytest.approx(float((pose**2).sum()), rel=1e-6)
    assert losses.edge_length_mm > 0.0  # skinning stretches some edges of a posed hand
    # a hand with longer fingers breaks the model's proportions
    longer = hand.keypoints_3d.copy()
    longer[[8, 12, 16, 20]] *= 1.3
    stretched = HandPrediction(hand.keypoints_2d, longer, "right", 1.0)
    assert meshes.prediction_losses(stretched, fit, K, model).bone_length > 0.01
    with pytest.raises(ValueError, match="left hand"):
        meshes.prediction_losses(hand, fit, K, models["left"])


def test_pose_model_broadcasts_and_matches_the_model(models):
    model = models["right"]
    shapes = np.zeros((3, model.num_shape))
    shapes[:, 0] = [-1.0, 0.0, 1.0]
    posed = meshes.pose_model(model, pose=np.zeros(45), shape=shapes)
    assert posed.vertices.shape == (3, model.num_vertices, 3) and posed.keypoints.shape == (3, 21, 3)
    with torch.no_grad():
        rest = model().vertices[0].double().numpy()
    np.testing.assert_allclose(posed.vertices[1], rest, atol=1e-5)
    # the first shape coefficient is mostly size: the hand grows with it
    sizes = np.ptp(posed.keypoints, axis=1).max(-1)
    assert sizes[0] < sizes[1] < sizes[2]
    with pytest.raises(ValueError, match="pose must be"):
        meshes.pose_model(model, pose=np.zeros(44))
    with pytest.raises(ValueError, match="disagree"):
        meshes.pose_model(model, pose=np.zeros((2, 45)), shape=shapes)


def test_skinning_weights_are_a_partition_of_unity(models):
    weights = meshes.skinning_weights(models["right"])
    assert weights.shape == (models["right"].num_vertices, 20)
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
    assert weights.min() >= 0.0
