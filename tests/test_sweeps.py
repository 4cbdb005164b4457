"""Perturbations map keypoints exactly; sweeps measure a perfect and a failing fake estimator."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from handpose.keypoints import NUM_KEYPOINTS
from handpose.metrics import box_size
from handpose.prediction import HandPrediction
from handpose.sweeps import (
    KINDS,
    blur,
    brightness,
    contrast,
    desaturate,
    jpeg,
    occlude,
    perturb,
    robustness_sweep,
    scale_hand,
)

from _synthetic import HAND, blob_image, blob_predictor, find_blobs, hand_from


# -- geometry -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size_px", [150.0, 60.0])
def test_scale_hand_moves_the_image_and_keypoints_together(size_px) -> None:
    view = scale_hand(blob_image(HAND), HAND, size_px)
    assert np.abs(find_blobs(view.image) - view.centres_to_view(HAND)).max() < 0.06


def test_scale_hand_sets_the_box_side_and_centres_the_hand() -> None:
    image = blob_image(HAND)
    view = scale_hand(image, HAND, 40.0)
    moved = view.centres_to_view(HAND)
    assert view.image.shape == image.shape
    assert box_size(moved[None])[0] == pytest.approx(40.0)
    np.testing.assert_allclose((moved.min(0) + moved.max(0)) / 2, [99.5, 109.5])  # ((W - 1) / 2, (H - 1) / 2)


def test_scale_hand_validation() -> None:
    with pytest.raises(ValueError, match="positive"):
        scale_hand(blob_image(HAND), HAND, 0.0)


# -- occlusion and photometric --------------------------------------------------------------------


def test_occlusion_covers_the_fraction_inside_the_box_only() -> None:
    image = np.zeros((120, 160, 3), np.uint8)
    box = np.array([20.0, 30.0, 120.0, 90.0])  # 100 x 60 pixels
    for fraction in (0.1, 0.35, 0.8):
        out = occlude(image, box, fraction, seed=3)
        changed = out.any(-1)
        assert changed.sum() == pytest.approx(fraction * 6000, rel=0.03)
        assert not changed[:30].any() and not changed[90:].any()
        assert not changed[:, :20].any() and not changed[:, 120:].any()
    np.testing.assert_array_equal(occlude(image, box, 0.3, seed=1), occlude(image, box, 0.3, seed=1))
    assert not np.array_equal(occlude(image, box, 0.3, seed=1), occlude(image, box, 0.3, seed=2))
    assert occlude(image, box, 1.0).any(-1).sum() == 6000
    np.testing.assert_array_equal(occlude(image, box, 0.0), image)
    with pytest.raises(ValueError, match="fraction"):
        occlude(image, box, 1.5)


def test_photometric_known_values() -> None:
    image = np.full((8, 10, 3), [100, 150, 200], np.uint8)
    assert brightness(image, 0.5)[0, 0].tolist() == [50, 75, 100]
    assert brightness(image, 2.0)[0, 0].tolist() == [200, 255, 255]
    assert np.ptp(contrast(image, 0.0)) == 0 and contrast(image, 0.0)[0, 0, 0] == 150  # the mean grey
    grey = desaturate(image, 0.0)
    assert grey[0, 0].tolist() == [round(0.299 * 100 + 0.587 * 150 + 0.114 * 200)] * 3
    np.testing.assert_array_equal(desaturate(image, 1.0), image)
    np.testing.assert_array_equal(blur(image, 3.0), image)  # a flat image stays flat


def test_blur_turns_a_step_into_a_gaussian_edge() -> None:
    # Across a 0 -> 255 step the blurred profile is 255 Phi(x / sigma): its derivative is a
    # Gaussian whose variance is sigma^2.
    image = np.zeros((9, 81, 3), np.uint8)
    image[:, 40:] = 255
    profile = blur(image, 3.0)[4, :, 0].astype(np.float64)
    slope = np.diff(profile)
    x = np.arange(80) + 0.5 - 40.0
    assert np.sum(slope) == pytest.approx(255.0)
    assert np.sum(slope * x**2) / np.sum(slope) == pytest.approx(9.0, rel=0.05)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_keeps_dtype_and_channels(kind: str) -> None:
    image = blob_image(HAND)
    for level in KINDS[kind].levels:
        out, gt = perturb(image, HAND[None], kind, level, seed=0)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and gt.shape == (1, NUM_KEYPOINTS, 2)
        if kind not in ("rotation", "scale"):
            assert out.shape == image.shape
            np.testing.assert_array_equal(gt[0], HAND)


def test_jpeg_quality_orders_the_error() -> None:
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (0, 0), 2.0)
    errors = [np.abs(jpeg(image, q).astype(int) - image).mean() for q in (95, 30, 5)]
    assert errors[0] < errors[1] < errors[2] and errors[0] < 2.0
    with pytest.raises(ValueError, match="quality"):
        jpeg(image, 0)


def test_perturb_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb(blob_image(HAND), HAND[None], "snow", 1.0)


# -- sweeps -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, levels", [("rotation", (0, 45, 180)), ("scale", (80, 160)), ("occlusion", (0.0, 0.1)),
                                          ("blur", (0, 4)), ("greyscale", (1.0, 0.0)), ("jpeg", (50, 5))])
def test_sweep_of_a_perfect_estimator(kind: str, levels: tuple[float, ...]) -> None:
    # Geometric kinds: the blob finder (exact wherever the hand moves). Photometric kinds leave the
    # keypoints in place, so an oracle returning the ground truth is perfect.
    geometric = kind in ("rotation", "scale")
    predict = blob_predictor if geometric else (lambda image: [hand_from(HAND)])
    result = robustness_sweep([blob_image(HAND)] * 2, [HAND[None]] * 2, predict, kind, levels, label="fake")
    assert [row.level for row in result.rows] == list(levels)
    for row in result.rows:
        assert (row.n_images, row.n_gt, row.n_pred) == (2, 2, 2)
        assert row.recall == 1.0 and row.precision == 1.0 and row.pck == 1.0
        assert row.error < 0.06 / box_size(HAND[None])[0]
    assert result.as_rows()[0]["kind"] == kind and result.as_rows()[0]["label"] == "fake"
    assert result.summary().startswith(f"{kind}: detection 100% at every level")


def test_sweep_shows_where_an_estimator_fails() -> None:
    # Sees the hand only when the photo is bright enough; returns the exact ground truth then.
    image = np.full((100, 100, 3), 120, np.uint8)
    gt = HAND[None] * 0.4

    def fragile(img: np.ndarray) -> list[HandPrediction]:
        return [hand_from(gt[0])] if img.mean() > 60 else []

    result = robustness_sweep([image], [gt], fragile, "brightness", (0.2, 0.4, 0.6, 1.0))
    np.testing.assert_array_equal(result.column("recall"), [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(result.column("pck"), [0.0, 0.0, 1.0, 1.0])
    assert np.isnan(result.column("precision")[0]) and result.column("error")[3] == 0.0
    assert result.summary() == ("brightness: detection 100% unperturbed, lowest 0% at exposure gain = 0.2; "
                                "below 50% at 0.2, 0.4")


def test_sweep_counts_false_positives_and_shifted_hands() -> None:
    # One GT hand; the fake predicts it shifted by 0.1 box sides in x, plus a hand far away.
    side = box_size(HAND[None])[0]
    shifted, far = HAND + [0.1 * side, 0.0], HAND + [1000.0, 0.0]
    result = robustness_sweep([blob_image(HAND)], [HAND[None]], lambda im: [hand_from(shifted), hand_from(far)],
                              "blur", (0,))
    (row,) = result.rows
    assert (row.recall, row.precision, row.pck) == (1.0, 0.5, 1.0)
    assert row.error == pytest.approx(0.1)


def test_sweep_validation() -> None:
    with pytest.raises(ValueError, match="unknown perturbation"):
        robustness_sweep([], [], blob_predictor, "fog")
    with pytest.raises(ValueError, match="1 images but 0"):
        robustness_sweep([blob_image(HAND)], [], blob_predictor, "blur")
