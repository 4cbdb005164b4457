"""Tests of handpose.metrics on hand-computed cases and independent references (SciPy)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from handpose.metrics import (
    align_root_scale,
    auc,
    box_size,
    detection_scores,
    endpoint_error,
    evaluate_2d,
    handedness_accuracy,
    match_hands,
    mpjpe,
    pa_mpjpe,
    pck,
    pck_curve,
    procrustes_align,
    square_box,
)
from handpose.prediction import HandPrediction


def template(width: float = 100.0, height: float = 50.0) -> np.ndarray:
    """``(21, 2)`` keypoints filling the box ``[0, width] x [0, height]`` (corners included)."""
    t = np.linspace(0.0, 1.0, 21)
    points = np.stack([t * width, (t * 7 % 1.0) * height], axis=-1)
    points[1], points[2] = (0.0, height), (width, 0.0)
    return points


def hand_3d(seed: int = 0, n: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 40.0, (n, 21, 3))


# -- 2D errors and PCK --------------------------------------------------------------------------


def test_box_size_uses_visible_joints() -> None:
    gt = template()[None].copy()
    assert box_size(gt)[0] == 100.0
    gt[0, 5] = (1000.0, -1000.0)
    visible = np.ones((1, 21), bool)
    visible[0, 5] = False
    assert box_size(gt, visible)[0] == 100.0
    gt[0, 5] = np.nan  # NaN means not annotated too
    assert box_size(gt)[0] == 100.0
    assert np.isnan(box_size(np.full((1, 21, 2), np.nan))[0])


def test_endpoint_error_and_pck_by_hand() -> None:
    gt = template()[None]
    pred = gt.copy()
    pred[0, 0] += (3.0, 4.0)  # 5 px
    pred[0, 3] += (19.9, 0.0)  # just below 0.2 * 100
    pred[0, 1] += (0.0, 20.0)  # exactly the threshold (0.2 * 100): wrong, correct is strictly below
    pred[0, 2] += (12.0, 16.0)  # 20 px again
    visible = np.ones((1, 21), bool)
    visible[0, 7] = False

    error = endpoint_error(pred, gt, visible)
    assert error[0, 0] == pytest.approx(5.0) and error[0, 3] == pytest.approx(19.9) and np.isnan(error[0, 7])
    assert error[0, 5] == 0.0 and error[0, 2] == 20.0

    result = pck(pred, gt, alpha=0.2, visible=visible)
    assert result.shape == (1, 21) and np.isnan(result[0, 7])
    assert result[0, 0] == result[0, 3] == 1.0 and result[0, 1] == result[0, 2] == 0.0
    assert np.nanmean(result) == pytest.approx(18 / 20)
    # a larger normaliser makes the 20 px errors correct
    assert np.nanmean(pck(pred, gt, alpha=0.2, size=np.array([200.0]), visible=visible)) == 1.0


def test_pck_validation() -> None:
    gt = template()[None]
    with pytest.raises(ValueError, match="differ in shape"):
        pck(gt, np.concatenate([gt, gt]))
    with pytest.raises(ValueError, match=r"\(N, J, 2\)"):
        pck(np.zeros((1, 21, 3)), np.zeros((1, 21, 3)))
    with pytest.raises(ValueError, match="size"):
        pck(gt, gt, size=np.ones(2))
    with pytest.raises(ValueError, match="alpha"):
        pck(gt, gt, alpha=0.0)
    with pytest.raises(ValueError, match="visible"):
        pck(gt, gt, visible=np.ones((1, 20), bool))


def test_pck_curve_and_auc() -> None:
    errors = np.array([0.1, 0.2, 0.3, np.nan])
    np.testing.assert_allclose(pck_curve(errors, [0.15, 0.25, 0.35]), [1 / 3, 2 / 3, 1.0])
    assert np.all(np.isnan(pck_curve([np.nan], [0.1, 0.2])))
    # trapezoids: (0 + 1) / 2 * 1 + (1 + 1) / 2 * 1 = 1.5 over a range of 2
    assert auc([0.0, 1.0, 2.0], [0.0, 1.0, 1.0]) == pytest.approx(0.75)
    assert auc([20.0, 30.0, 50.0], [1.0, 1.0, 1.0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="increasing"):
        auc([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="two thresholds"):
        auc([0.0], [1.0])


# -- 3D errors ----------------------------------------------------------------------------------


def test_mpjpe_known_value() -> None:
    gt = hand_3d()
    pred = gt + np.array([1.0, 2.0, 2.0])  # 3 mm on every joint
    pred[1, 0] += (0.0, 0.0, 21.0)  # hand 1 joint 0: (1, 2, 23) -> sqrt(534)
    np.testing.assert_allclose(mpjpe(pred, gt), [3.0, (20 * 3.0 + np.sqrt(534.0)) / 21])
    visible = np.ones((2, 21), bool)
    visible[1, 0] = False
    np.testing.assert_allclose(mpjpe(pred, gt, visible), [3.0, 3.0])


def test_pa_mpjpe_removes_rotation_scale_and_translation() -> None:
    gt = hand_3d(1)
    rotation = Rotation.from_rotvec([[0.3, -1.2, 2.0], [2.5, 0.1, -0.4]]).as_matrix()
    pred = 0.7 * np.einsum("nik,njk->nji", rotation, gt) + np.array([[[100.0, -50.0, 400.0]], [[0.0, 5.0, 0.0]]])
    assert mpjpe(pred, gt).min() > 10.0
    np.testing.assert_allclose(pa_mpjpe(pred, gt), 0.0, atol=1e-9)
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-9)


def reference_alignment(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Least-squares similarity with SciPy's Kabsch rotation (always proper)."""
    x, y = pred - pred.mean(0), gt - gt.mean(0)
    rot = Rotation.align_vectors(y, x)[0]
    rx = rot.apply(x)
    return (y * rx).sum() / (x * x).sum() * rx + gt.mean(0)


def test_procrustes_never_reflects() -> None:
    gt = hand_3d(2, n=1)
    mirror = gt * np.array([-1.0, 1.0, 1.0])  # a left hand made from a right one
    aligned = procrustes_align(mirror, gt)
    np.testing.assert_allclose(aligned[0], reference_alignment(mirror[0], gt[0]), atol=1e-8)
    assert pa_mpjpe(mirror, gt)[0] > 5.0  # a reflection would have brought it to 0

    def volume(p: np.ndarray) -> float:  # signed volume of the first four joints
        return float(np.linalg.det(p[1:4] - p[0]))

    assert np.sign(volume(aligned[0])) == np.sign(volume(mirror[0]))
    noisy = gt + np.random.default_rng(3).normal(0, 5.0, gt.shape)
    np.testing.assert_allclose(procrustes_align(noisy, gt)[0], reference_alignment(noisy[0], gt[0]), atol=1e-8)


def test_pa_mpjpe_skips_nan_and_invisible_ground_truth_joints() -> None:
    """Used to raise LinAlgError (SVD on NaN); now aligns on the known joints only, like mpjpe."""
    gt = hand_3d(5, n=2)
    noisy = gt + np.random.default_rng(6).normal(0, 3.0, gt.shape)
    rotation = Rotation.from_rotvec([0.4, -0.9, 1.3]).as_matrix()
    pred = 1.3 * noisy @ rotation.T + np.array([20.0, -40.0, 500.0])
    unknown = gt.copy()
    unknown[0, 4] = np.nan  # not annotated
    unknown[1, :] = np.nan  # nothing known on the second hand
    known = np.ones((2, 21), bool)
    known[0, 4] = False
    keep = np.arange(21) != 4
    expected = np.linalg.norm(reference_alignment(pred[0, keep], gt[0, keep]) - gt[0, keep], axis=-1).mean()
    errors = pa_mpjpe(pred, unknown)
    np.testing.assert_allclose(errors[0], expected, rtol=1e-9)
    assert np.isnan(errors[1])
    np.testing.assert_allclose(pa_mpjpe(pred, gt, known)[0], expected, rtol=1e-9)  # the mask, finite GT
    aligned = procrustes_align(pred, unknown)
    assert np.all(np.isfinite(aligned[0])) and np.all(np.isnan(aligned[1]))  # every joint moved


def test_align_root_scale_protocol() -> None:
    gt = hand_3d(4)
    pred = 2.5 * gt + np.array([10.0, -3.0, 700.0])
    np.testing.assert_allclose(align_root_scale(pred, gt), gt, atol=1e-9)
    # translate to the GT middle MCP (9), scale by |gt_0 - gt_9| / |pred_0 - pred_9|
    other = hand_3d(5)
    out = align_root_scale(other, gt)
    np.testing.assert_allclose(out[:, 9], gt[:, 9])
    np.testing.assert_allclose(np.linalg.norm(out[:, 0] - out[:, 9], axis=-1),
                               np.linalg.norm(gt[:, 0] - gt[:, 9], axis=-1))
    with pytest.raises(ValueError, match="zero length"):
        align_root_scale(np.zeros_like(gt), gt)
    with pytest.raises(ValueError, match="outside"):
        align_root_scale(pred, gt, root=21)


# -- matching and detection ---------------------------------------------------------------------


def test_hungarian_beats_greedy() -> None:
    hand = template()  # box size 100 px, so a shift of d px costs d / 100
    gt = np.stack([hand, hand + (25.0, 0.0)])
    pred = np.stack([hand + (10.0, 0.0), hand + (-12.0, 0.0)])
    # costs [[0.10, 0.15], [0.12, 0.37]]: greedy takes (0, 0) and then cannot match pred 1 under 0.3
    m = match_hands(pred, gt, max_distance=0.3)
    np.testing.assert_array_equal(m.pairs, [[1, 0], [0, 1]])
    np.testing.assert_allclose(m.distances, [0.12, 0.15])
    assert m.unmatched_pred.size == 0 and m.unmatched_gt.size == 0


def test_match_hands_counts_misses_and_false_positives() -> None:
    hand = template()
    gt = np.stack([hand, hand + (500.0, 0.0), hand + (0.0, 500.0)])
    pred = np.stack([hand + (500.0, 3.0), hand + (2000.0, 2000.0)])
    m = match_hands(pred, gt)
    np.testing.assert_array_equal(m.pairs, [[0, 1]])
    np.testing.assert_array_equal(m.unmatched_pred, [1])
    np.testing.assert_array_equal(m.unmatched_gt, [0, 2])
    empty = match_hands(np.zeros((0, 21, 2)), gt)
    assert empty.pairs.shape == (0, 2) and list(empty.unmatched_gt) == [0, 1, 2]
    assert match_hands(pred, np.zeros((0, 21, 2))).unmatched_pred.tolist() == [0, 1]
    scores = detection_scores([m, empty])
    assert (scores.n_gt, scores.n_pred, scores.n_matched) == (6, 2, 1)
    assert scores.recall == pytest.approx(1 / 6) and scores.precision == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match=r"\(M, 21, 2\)"):
        match_hands(np.zeros((1, 20, 2)), gt)


def test_handedness_accuracy() -> None:
    assert handedness_accuracy(["left", "right", "left"], ["left", "left", None]) == 0.5
    assert np.isnan(handedness_accuracy([], []))
    with pytest.raises(ValueError, match="labels"):
        handedness_accuracy(["left"], [])


def as_hand(points: np.ndarray, side: str) -> HandPrediction:
    return HandPrediction(points, np.zeros((21, 3)), side, 0.9)


def test_evaluate_2d_by_hand() -> None:
    hand = template()
    far = hand + (3000.0, 0.0)
    wrong3 = hand.copy()
    wrong3[[4, 8, 12]] += (30.0, 0.0)  # three joints off by 0.3 box sizes
    gt_a = np.stack([hand, hand + (400.0, 0.0)])
    gt_b = (hand + (0.0, 400.0))[None]
    gt_c = hand[None].copy()
    gt_c[0, 3:8] = np.nan  # 16 annotated joints; the box (joints 0, 1, 2, 20) keeps its size 100
    predictions = [[as_hand(hand, "right"), as_hand(far, "left")],  # one hit, one false positive, one miss
                   [],  # a miss
                   [as_hand(wrong3, "left")]]  # a hit with 3 of 16 annotated joints wrong (4 is NaN)
    result = evaluate_2d(predictions, [gt_a, gt_b, gt_c], gt_handedness=[["right", "left"], ["left"], ["right"]])
    assert (result.n_images, result.n_gt, result.n_pred, result.n_matched) == (3, 4, 3, 2)
    assert result.recall == 0.5 and result.precision == pytest.approx(2 / 3)
    # correct joints: 21 + 0 + 0 + (16 - 2) over 21 + 21 + 21 + 16 annotated
    assert result.pck == pytest.approx(35 / 79)
    assert result.pck_found == pytest.approx(35 / 37)
    assert result.mean_error == pytest.approx((0.0 + 2 * 30.0 / 16 / 100.0) / 2)
    assert result.handedness_accuracy == 0.5
    np.testing.assert_array_equal(result.matches[0].unmatched_gt, [1])


def test_evaluate_2d_with_arrays_and_nothing_found() -> None:
    gt = [template()[None]]
    nothing = evaluate_2d([np.zeros((0, 21, 2))], gt)
    assert nothing.recall == 0.0 and nothing.pck == 0.0
    assert np.isnan(nothing.precision) and np.isnan(nothing.mean_error) and np.isnan(nothing.handedness_accuracy)
    perfect = evaluate_2d(gt, gt, visible=[np.ones((1, 21), bool)])
    assert (perfect.recall, perfect.precision, perfect.pck, perfect.mean_error) == (1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="ground-truth entries"):
        evaluate_2d(gt, gt + gt)
    with pytest.raises(ValueError, match="visible entries"):
        evaluate_2d(gt, gt, visible=[])


def test_square_box_is_a_square_around_the_points_shifted_into_the_photo() -> None:
    points = np.c_[np.linspace(100, 200, 21), np.linspace(50, 90, 21)]
    points[3] = np.nan  # not annotated: ignored
    x1, y1, x2, y2 = square_box(points, 640, 480, margin=0.25)
    assert x2 - x1 == pytest.approx(y2 - y1) == pytest.approx(150.0)  # 100 px * (1 + 2 * 0.25)
    assert (x1 + x2) / 2 == pytest.approx(150.0) and y1 == 0.0  # shifted down into the photo, not shrunk
    assert square_box(points[:2], 640, 480, min_side=96.0) == pytest.approx((54.5, 3.0, 150.5, 99.0))  # at least 96
    assert square_box(np.full((21, 2), np.nan), 640, 480) == (0.0, 0.0, 640.0, 480.0)
    assert square_box(points, 100, 60, margin=2.0) == pytest.approx((0.0, -20.0, 100.0, 80.0))  # wider than tall
