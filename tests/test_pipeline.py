"""Pipeline: predict_image / predict_folder, predictions.json schema, cache, bad files, registry."""
import json

import cv2
import numpy as np
import pytest

from pathlib import Path

from _fits import FAST, K, exact_hand
from handpose import models, pipeline
from handpose.camera import default_intrinsics, project
from handpose.handmodel import installed_kind, load_hand_model, pose_model
from handpose.prediction import HandPrediction
from _synthetic import hand_silhouette


class CountingEstimator:
    """Fake model: one hand whose x offset is the image's mean brightness; counts its calls."""

    name = "counting"

    def __init__(self, options=None):
        self.calls = 0
        self.options = options

    def predict(self, image):
        self.calls += 1
        if image.mean() > 250:
            raise RuntimeError("too bright")
        kp = np.stack([np.linspace(0, 20, 21) + image.mean(), np.linspace(0, 30, 21)], axis=1)
        return [HandPrediction(kp, np.zeros((21, 3)), "right", 0.9, source="counting")]

    def close(self):
        pass


def write_png(path, image):
    assert cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1]))
    return path


@pytest.fixture
def folder(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_png(photos / "a.png", np.full((40, 60, 3), 10, np.uint8))
    write_png(photos / "b.png", np.full((50, 30, 3), 100, np.uint8))
    (photos / "c.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    return photos


def test_predict_image_from_array_and_path(tmp_path):
    image = hand_silhouette(256)
    path = write_png(tmp_path / "hand.png", image)
    from_array = pipeline.predict_image(image)
    from_path = pipeline.predict_image(path)
    assert len(from_array) == 1 and len(from_path) == 1
    np.testing.assert_allclose(from_array[0].keypoints_2d, from_path[0].keypoints_2d)


def test_folder_schema_overlays_and_bad_file(folder, tmp_path):
    out = tmp_path / "out"
    results = pipeline.predict_folder(folder, out, model=CountingEstimator(), use_cache=False, progress=False)
    assert [r.image.name for r in results] == ["a.png", "b.png", "c.jpg"]
    assert results[2].error and "c.jpg" in results[2].error and results[2].hands == []
    data = json.loads((out / "predictions.json").read_text())
    assert [set(e) for e in data] == [{"image", "width", "height", "hands"}] * 2 + [
        {"image", "width", "height", "hands", "error"}]
    assert (data[0]["width"], data[0]["height"], data[1]["width"]) == (60, 40, 30)
    hand = data[0]["hands"][0]
    assert {"keypoints_2d", "keypoints_3d", "handedness", "score", "box_xyxy"} <= set(hand)
    assert np.asarray(hand["keypoints_2d"]).shape == (21, 2) and np.asarray(hand["keypoints_3d"]).shape == (21, 3)
    assert hand["handedness"] in ("left", "right") and isinstance(hand["score"], float)
    assert len(hand["box_xyxy"]) == 4
    # gestures need a real 3D hand: the fake one's zeros are degenerate, so both fields are null
    assert hand["gesture"] is None and hand["fingers"] is None
    overlay = cv2.imread(str(out / "overlays" / "a.png"))
    assert overlay.shape == (40, 60, 3)
    assert not (out / "overlays" / "c.png").exists()
    round_trip = pipeline.read_predictions(out / "predictions.json")
    np.testing.assert_allclose(round_trip[1].hands[0].keypoints_2d, results[1].hands[0].keypoints_2d, atol=1e-3)


def test_an_estimator_failure_is_recorded_and_the_batch_goes_on(folder, tmp_path):
    write_png(folder / "white.png", np.full((8, 8, 3), 255, np.uint8))
    results = pipeline.predict_folder(folder, None, model=CountingEstimator(), use_cache=False, progress=False)
    errors = {r.image.name: r.error for r in results}
    assert "too bright" in errors["white.png"] and errors["a.png"] is None and errors["b.png"] is None


def test_cache_hits_and_invalidation(folder, tmp_path):
    cache = tmp_path / "cache"
    model = CountingEstimator()
    run = lambda options=None: pipeline.predict_folder(  # noqa: E731
        [folder / "a.png", folder / "b.png"], None, model=model, options=options, cache_dir=cache, progress=False)
    first = run()
    assert model.calls == 2 and not any(r.cached for r in first)
    second = run()
    assert model.calls == 2 and all(r.cached for r in second)
    np.testing.assert_allclose(second[0].hands[0].keypoints_2d, first[0].hands[0].keypoints_2d, atol=1e-3)
    write_png(folder / "b.png", np.full((50, 30, 3), 200, np.uint8))  # file content changes
    third = run()
    assert model.calls == 3 and [r.cached for r in third] == [True, False]
    assert third[1].hands[0].keypoints_2d[0, 0] == pytest.approx(200.0)
    run(options={"max_hands": 1})  # other options: other cache entries
    assert model.calls == 5


def test_cache_key_sees_the_default_options(monkeypatch):
    """``options=None`` means the registered model's defaults: changing a default changes the key
    (a stale prediction of the old defaults must not be served)."""
    from handpose.models.mediapipe import MediaPipeOptions

    before = pipeline.cache_key(b"photo", "mediapipe", None)
    assert before == pipeline.cache_key(b"photo", "mediapipe", MediaPipeOptions())
    monkeypatch.setattr(MediaPipeOptions.__init__, "__defaults__",
                        tuple(3 if d == 4 else d for d in MediaPipeOptions.__init__.__defaults__))
    assert MediaPipeOptions().max_hands == 3
    assert pipeline.cache_key(b"photo", "mediapipe", None) != before


def test_overlay_names_are_unique(tmp_path):
    names = pipeline.output_names([tmp_path / "x" / "a.jpg", tmp_path / "y" / "a.png", tmp_path / "b.jpg"])
    assert names == ["a.png", "a_2.png", "b.png"]


def test_missing_input_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        pipeline.expand_inputs([tmp_path / "nowhere"])


def test_registry(monkeypatch):
    assert {"mediapipe", "iccv21"} <= set(models.available_models())
    with pytest.raises(ValueError, match="unknown model"):
        models.get_estimator("nope")
    monkeypatch.setitem(models._REGISTRY, "counting", f"{__name__}:CountingEstimator")
    estimator = models.get_estimator("counting", options={"a": 1})
    assert type(estimator).__name__ == "CountingEstimator" and estimator.options == {"a": 1}
    monkeypatch.setitem(models._REGISTRY, "broken", f"{__name__}:Missing")
    with pytest.raises(ImportError, match="Missing"):
        models.get_estimator("broken")


class BatchEstimator(CountingEstimator):
    """CountingEstimator with ``predict_batch``: records each batch's size."""

    def __init__(self, options=None):
        super().__init__(options)
        self.batches = []

    def predict_batch(self, images):
        self.batches.append(len(images))
        return [self.predict(image) for image in images]


def test_batches_are_predicted_together_and_a_bad_photo_is_isolated(folder, tmp_path):
    for value, name in ((20, "d.png"), (255, "e.png"), (30, "f.png")):
        write_png(folder / name, np.full((30, 30, 3), value, np.uint8))
    model = BatchEstimator()
    run = lambda: pipeline.predict_folder(folder, tmp_path / "out", model=model, cache_dir=tmp_path / "cache",  # noqa: E731
                                          progress=False, batch_size=4)
    results = run()
    # a, b, c (unreadable), d | e (too bright), f: the second batch fails and is retried one by one
    assert model.batches == [3, 2] and model.calls == 3 + 1 + 2  # e raises first in its batch
    assert [r.image.name for r in results if r.error] == ["c.jpg", "e.png"] and "too bright" in results[4].error
    one_by_one = pipeline.predict_folder(folder, None, model=CountingEstimator(), use_cache=False, progress=False)
    for a, b in zip(results, one_by_one):
        assert a.image == b.image and len(a.hands) == len(b.hands)
        for ha, hb in zip(a.hands, b.hands):
            np.testing.assert_allclose(ha.keypoints_2d, hb.keypoints_2d)
    assert sorted(p.name for p in (tmp_path / "out" / "overlays").iterdir()) == ["a.png", "b.png", "d.png", "f.png"]
    again = run()  # all cached but the failed one
    assert model.batches == [3, 2] and model.calls == 6 + 1 and sum(r.cached for r in again) == 4


class RefusingEstimator:
    built = 0

    def __init__(self, options=None):
        RefusingEstimator.built += 1
        raise ValueError("weights/model.pts: refused")


def test_a_model_that_cannot_be_built_stops_the_run_once(folder, monkeypatch):
    monkeypatch.setitem(models._REGISTRY, "refusing", f"{__name__}:RefusingEstimator")
    with pytest.raises(ValueError, match="model.pts: refused"):
        pipeline.predict_folder(folder, None, model="refusing", use_cache=False, progress=False)
    assert RefusingEstimator.built == 1
    with pytest.raises(ValueError, match="batch_size"):
        pipeline.predict_folder(folder, None, model=CountingEstimator(), progress=False, batch_size=0)



# -- photos -> fitted meshes ----------------------------------------------------------------
def test_mesh_images_uses_known_K_else_the_default(open_hands, tmp_path: Path):
    from PIL import Image

    hand, _, _ = exact_hand(open_hands["right"], 0)
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(tmp_path / name)
    results = [pipeline.ImageResult(tmp_path / "a.png", 640, 480, [hand]), pipeline.ImageResult(tmp_path / "b.png", 640, 480, []),
               pipeline.ImageResult(tmp_path / "gone.png", error="unreadable")]
    meshed = pipeline.mesh_images(results, open_hands, {"a.png": K}, **FAST)
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
    assert installed_kind() == "mano"
    mano = load_hand_model("mano", "right")
    posed = pose_model(mano, pose=np.full(45, 0.1), global_orient=np.array([0.0, np.pi, 0.0]))
    points = posed.keypoints[0] + np.array([0.0, 0.0, 400.0])
    hand = HandPrediction(project(points, K), points - points[0], "right", 0.9)
    Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(tmp_path / "a.png")
    meshed = pipeline.mesh_images([pipeline.ImageResult(tmp_path / "a.png", 640, 480, [hand])], "mano", {"a.png": K})
    (fit,) = meshed[0].fits
    assert fit.vertices.shape == (1, 778, 3) and len(fit.faces) == 1538
    assert np.nanmean(fit.residual_2d_px) < 2.0
    drawn = meshed[0].overlay().sum(-1) > 0
    u, v = np.rint(project(fit.vertices[0], K).mean(0)).astype(int)
    assert drawn.sum() > 100 and drawn[v, u]


def test_mesh_images_takes_the_focal_length_from_exif_else_the_default(tmp_path: Path):
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 26  # a phone's main camera: 26 mm equivalent
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(tmp_path / "plain.png")
    phone, plain = pipeline.mesh_images([pipeline.ImageResult(tmp_path / name, 400, 300, [])
                                          for name in ("phone.jpg", "plain.png")])
    assert phone.K[0, 0] == pytest.approx(26.0 * 500.0 / 43.27)  # the 43.27 mm diagonal maps to 500 px
    np.testing.assert_array_equal(plain.K, default_intrinsics(400, 300))
