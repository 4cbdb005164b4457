"""Keypoint accuracy: PCK and its curve, end-point error, (PA-)MPJPE, and detection matching.

Pure numpy (plus SciPy's Hungarian solver). 2D keypoints are ``(N, 21, 2)`` pixels, 3D ones
``(N, 21, 3)`` millimetres, both in the course order. A ``visible`` mask ``(N, 21)`` marks the
annotated joints; unannotated joints give NaN in per-joint outputs and are left out of means.

The benchmark measure of this project (``../shared/photos/README.md``) is :func:`evaluate_2d`:
predicted hands are matched one-to-one to GT hands, a joint is correct when its error is below
``alpha`` times the larger side of the tight box around the GT hand's annotated keypoints, and a
GT hand without a match counts 0 for all its joints.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from handpose.keypoints import MIDDLE_MCP, NUM_KEYPOINTS, WRIST
from handpose.prediction import HandPrediction


def _points(x: np.ndarray, dim: int | None, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or (dim is not None and x.shape[-1] != dim):
        raise ValueError(f"{name} must be (N, J, {dim or 'D'}), got {x.shape}")
    return x


def _pair(pred: np.ndarray, gt: np.ndarray, dim: int | None) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _points(pred, dim, "pred"), _points(gt, dim, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt differ in shape: {pred.shape} vs {gt.shape}")
    return pred, gt


def _visible(visible: np.ndarray | None, gt: np.ndarray) -> np.ndarray:
    """``(N, J)`` bool: the given mask (default: joints with finite GT) and finite GT."""
    finite = np.all(np.isfinite(gt), axis=-1)
    if visible is None:
        return finite
    visible = np.asarray(visible, dtype=bool)
    if visible.shape != gt.shape[:2]:
        raise ValueError(f"visible must be {gt.shape[:2]}, got {visible.shape}")
    return visible & finite


def box_size(keypoints: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """``(N,)`` larger side of the tight box around each hand's visible keypoints ``(N, J, 2)``.

    NaN for a hand with no visible keypoint.
    """
    keypoints = _points(keypoints, 2, "keypoints")
    mask = _visible(visible, keypoints)[..., None]
    lo = np.where(mask, keypoints, np.inf).min(axis=1)
    hi = np.where(mask, keypoints, -np.inf).max(axis=1)
    with np.errstate(invalid="ignore"):
        side = (hi - lo).max(axis=-1)
    return np.where(mask.any(axis=(1, 2)), side, np.nan)


def square_box(points: np.ndarray, width: int, height: int, margin: float = 0.3,
               min_side: float = 96.0) -> tuple[float, float, float, float]:
    """A square ``(x1, y1, x2, y2)`` around the finite ``points`` ``(..., 2)`` (e.g. the keypoints of
    the hands to show), ``margin`` times their box side larger on each side, at least ``min_side``
    pixels, at most the photo's longer side, shifted (not shrunk) to stay in the ``width x height``
    photo when it fits; the whole photo when no point is finite."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    points = points[np.all(np.isfinite(points), axis=1)]
    if not len(points):
        return 0.0, 0.0, float(width), float(height)
    lo, hi = points.min(0), points.max(0)
    side = max(float((hi - lo).max()) * (1 + 2 * margin), min_side)
    side = min(side, float(max(width, height)))
    x1, y1 = (lo + hi) / 2 - side / 2
    x1 = float(np.clip(x1, 0, max(width - side, 0))) if side <= width else (width - side) / 2
    y1 = float(np.clip(y1, 0, max(height - side, 0))) if side <= height else (height - side) / 2
    return x1, y1, x1 + side, y1 + side


def endpoint_error(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """``(N, J)`` Euclidean distance ``||pred - gt||`` per joint (pixels), NaN where not visible.

    Args:
        pred, gt: ``(N, J, D)`` keypoints (any D; NaN in ``gt`` marks unannotated joints).
        visible: optional ``(N, J)`` bool mask of annotated joints.
    """
    pred, gt = _pair(pred, gt, None)
    error = np.linalg.norm(pred - gt, axis=-1)
    return np.where(_visible(visible, gt), error, np.nan)


def pck(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.2, size: np.ndarray | None = None,
        visible: np.ndarray | None = None) -> np.ndarray:
    """Percentage of correct keypoints, per joint: ``(N, J)`` float, 1 correct, 0 wrong, NaN not visible.

    A joint is correct when ``||pred - gt|| < alpha * size`` (strictly below). ``np.nanmean`` of the
    result over joints gives the per-hand PCK, over everything the pooled PCK.

    Args:
        pred, gt: ``(N, J, 2)`` pixels.
        alpha: threshold as a fraction of ``size``.
        size: ``(N,)`` normaliser per hand; default :func:`box_size` of the visible GT keypoints.
        visible: optional ``(N, J)`` bool mask of annotated joints.
    """
    pred, gt = _pair(pred, gt, 2)
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    vis = _visible(visible, gt)
    size = box_size(gt, vis) if size is None else np.asarray(size, dtype=np.float64).reshape(-1)
    if size.shape != (len(gt),):
        raise ValueError(f"size must be ({len(gt)},), got {size.shape}")
    error = endpoint_error(pred, gt, vis)
    with np.errstate(invalid="ignore"):
        correct = (error < alpha * size[:, None]).astype(np.float64)
    return np.where(vis, correct, np.nan)


def pck_curve(errors_normalised: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``(T,)`` fraction of finite errors strictly below each threshold (NaN errors are ignored).

    Args:
        errors_normalised: any shape, e.g. end-point errors / box size or 3D errors in mm.
        thresholds: ``(T,)`` increasing thresholds in the same unit.
    """
    errors = np.asarray(errors_normalised, dtype=np.float64).reshape(-1)
    errors = errors[np.isfinite(errors)]
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if errors.size == 0:
        return np.full(thresholds.shape, np.nan)
    return (errors[None, :] < thresholds[:, None]).mean(axis=1)


def auc(thresholds: np.ndarray, values: np.ndarray) -> float:
    """Area under a PCK curve divided by the threshold range, so a perfect curve scores 1.

    ``AUC = (1 / (t_max - t_min)) * integral of values dt`` by the trapezoidal rule.
    """
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if t.shape != v.shape or t.size < 2:
        raise ValueError(f"need at least two thresholds and one value each, got {t.shape} and {v.shape}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("thresholds must be strictly increasing")
    return float(np.sum(np.diff(t) * (v[1:] + v[:-1]) / 2.0) / (t[-1] - t[0]))


def mpjpe(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """``(N,)`` mean per-joint position error ``mean_j ||pred_j - gt_j||`` over visible joints (mm)."""
    pred, gt = _pair(pred, gt, 3)
    return _nanmean_rows(endpoint_error(pred, gt, visible))


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    """``(N,)`` mean of the finite entries of each row of ``(N, J)``, NaN for an all-NaN row."""
    counts = np.isfinite(x).sum(axis=1)
    total = np.where(np.isfinite(x), x, 0.0).sum(axis=1)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def procrustes_align(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """``(N, J, 3)`` ``pred`` moved by the similarity ``s R x + t`` closest to ``gt`` in least squares
    over the joints that are visible and finite in both (all joints are moved).

    :func:`handpose.alignment.umeyama` with weight 1 on the used joints (a rotation, never a
    reflection). A hand with no usable joint comes back as NaN.

    Args:
        pred, gt: ``(N, J, 3)``; gt may hold NaN for unknown joints.
        visible: ``(N, J)`` bool, joints to align on (default: every finite GT joint).
    """
    from handpose.alignment import umeyama  # lazy: alignment brings torch, metrics (used by viz, CLI) does not

    pred, gt = _pair(pred, gt, 3)
    used = _visible(visible, gt) & np.all(np.isfinite(pred), axis=-1)  # (N, J)
    sim = umeyama(pred, gt, used)
    aligned = sim.scale[:, None, None] * np.einsum("nik,njk->nji", sim.rotation, pred) + sim.translation[:, None]
    return np.where(used.any(axis=1)[:, None, None], aligned, np.nan)


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """``(N,)`` MPJPE after :func:`procrustes_align` (rotation, translation and scale removed), over
    the visible joints (``visible`` ``(N, J)`` bool; default every finite GT joint), as :func:`mpjpe`."""
    return mpjpe(procrustes_align(pred, gt, visible), gt, visible)


def align_root_scale(pred: np.ndarray, gt: np.ndarray, root: int = MIDDLE_MCP,
                     ref: tuple[int, int] = (WRIST, MIDDLE_MCP)) -> np.ndarray:
    """``(N, J, 3)`` ``pred`` on the GT root and at the GT size: the two-hand papers' protocol.

    ``pred' = (pred - pred_root) * ||gt_a - gt_b|| / ||pred_a - pred_b|| + gt_root`` with
    ``(a, b) = ref`` (default: wrist -> middle MCP, root the middle MCP).
    """
    pred, gt = _pair(pred, gt, 3)
    a, b = ref
    for index in (root, a, b):
        if not 0 <= index < pred.shape[1]:
            raise ValueError(f"joint index {index} is outside 0..{pred.shape[1] - 1}")
    pred_len = np.linalg.norm(pred[:, a] - pred[:, b], axis=-1)
    if np.any(pred_len <= 0):
        raise ValueError(f"pred has zero length between joints {a} and {b}")
    scale = np.linalg.norm(gt[:, a] - gt[:, b], axis=-1) / pred_len
    return (pred - pred[:, root:root + 1]) * scale[:, None, None] + gt[:, root:root + 1]


# -- detection: matching predicted hands to GT hands --------------------------------------------


@dataclass(frozen=True)
class HandMatches:
    """One-to-one matching of one image's predicted hands to its GT hands.

    Attributes:
        pairs: ``(K, 2)`` int rows ``(prediction index, GT index)``, in GT order.
        distances: ``(K,)`` mean joint distance / GT box size of each pair.
        unmatched_pred: ``(P - K,)`` int, predictions matching no GT hand (false positives).
        unmatched_gt: ``(M - K,)`` int, GT hands without a prediction (misses).
    """

    pairs: np.ndarray
    distances: np.ndarray
    unmatched_pred: np.ndarray
    unmatched_gt: np.ndarray


def match_hands(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray | None = None,
                max_distance: float = 0.5) -> HandMatches:
    """Match predicted to GT hands one-to-one, minimising the summed distance (Hungarian method).

    ``d(i, j) = mean over j's visible joints of ||pred_i - gt_j|| / box_size(gt_j)``; a pair with
    ``d > max_distance`` is never matched (0.5: the hands overlap by less than half a hand).

    Args:
        pred: ``(P, 21, 2)`` predicted keypoints (``P`` may be 0).
        gt: ``(M, 21, 2)`` GT keypoints (``M`` may be 0; NaN = not annotated).
        visible: optional ``(M, 21)`` bool mask of annotated GT joints.
        max_distance: largest matchable distance, a fraction of the GT box size.
    """
    pred, gt = _hands(pred, "pred"), _hands(gt, "gt")
    if not max_distance > 0:
        raise ValueError(f"max_distance must be positive, got {max_distance}")
    vis = _visible(visible, gt)
    cost = np.full((len(pred), len(gt)), np.inf)
    sizes = box_size(gt, vis)
    for j in range(len(gt)):
        error = np.linalg.norm(pred - gt[j], axis=-1)[:, vis[j]]  # (P, visible joints)
        if error.shape[1] and sizes[j] > 0:
            cost[:, j] = error.mean(axis=1) / sizes[j]
    feasible = cost <= max_distance  # False for NaN / inf too
    rows, cols = linear_sum_assignment(np.where(feasible, cost, 1e6))
    keep = feasible[rows, cols]
    rows, cols = rows[keep], cols[keep]
    order = np.argsort(cols)
    pairs = np.stack([rows[order], cols[order]], axis=1).astype(np.int64).reshape(-1, 2)
    return HandMatches(
        pairs=pairs,
        distances=cost[pairs[:, 0], pairs[:, 1]],
        unmatched_pred=np.setdiff1d(np.arange(len(pred)), pairs[:, 0]).astype(np.int64),
        unmatched_gt=np.setdiff1d(np.arange(len(gt)), pairs[:, 1]).astype(np.int64),
    )


@dataclass(frozen=True)
class DetectionScores:
    """Hand detection counts and rates over a set of images (NaN when undefined)."""

    n_gt: int
    n_pred: int
    n_matched: int
    recall: float  # n_matched / n_gt
    precision: float  # n_matched / n_pred


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def detection_scores(matches: Sequence[HandMatches]) -> DetectionScores:
    """Recall and precision of the matchings of several images (counts pooled over images)."""
    n_matched = sum(len(m.pairs) for m in matches)
    n_pred = n_matched + sum(len(m.unmatched_pred) for m in matches)
    n_gt = n_matched + sum(len(m.unmatched_gt) for m in matches)
    return DetectionScores(n_gt, n_pred, n_matched, _ratio(n_matched, n_gt), _ratio(n_matched, n_pred))


def handedness_accuracy(pred_labels: Sequence[str], gt_labels: Sequence[str | None]) -> float:
    """Fraction of matched hands whose ``"left"``/``"right"`` label is right; GT ``None`` is skipped."""
    if len(pred_labels) != len(gt_labels):
        raise ValueError(f"{len(pred_labels)} predicted labels but {len(gt_labels)} GT labels")
    known = [(p, g) for p, g in zip(pred_labels, gt_labels) if g is not None]
    return _ratio(sum(p == g for p, g in known), len(known))


@dataclass(frozen=True)
class Evaluation2D:
    """The project's 2D benchmark figures over a set of images (see :func:`evaluate_2d`).

    Attributes:
        n_images, n_gt, n_pred, n_matched: counts.
        recall: matched / GT hands.  precision: matched / predicted hands.
        pck: PCK@alpha over all annotated GT joints, joints of missed hands counted wrong.
        pck_found: PCK@alpha over the joints of matched GT hands only.
        mean_error: mean over matched hands of (mean joint error / GT box size).
        handedness_accuracy: over matched hands with a known GT side (NaN if none).
        matches: the matching of each image.
    """

    n_images: int
    n_gt: int
    n_pred: int
    n_matched: int
    recall: float
    precision: float
    pck: float
    pck_found: float
    mean_error: float
    handedness_accuracy: float
    matches: tuple[HandMatches, ...]


def _hands(x: np.ndarray, name: str) -> np.ndarray:
    """``(M, 21, 2)`` float from ``(M, 21, 2)``, one ``(21, 2)`` hand or an empty array."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x.reshape(0, NUM_KEYPOINTS, 2)
    if x.ndim not in (2, 3) or x.shape[-2:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"{name} must be (M, {NUM_KEYPOINTS}, 2), got {x.shape}")
    return x.reshape(-1, NUM_KEYPOINTS, 2)


def _as_keypoints(hands: np.ndarray | Sequence[HandPrediction], name: str) -> tuple[np.ndarray, list[str] | None]:
    """Keypoints ``(P, 21, 2)`` of one image's predictions, and their handedness when known."""
    if not isinstance(hands, np.ndarray) and len(hands) and all(isinstance(h, HandPrediction) for h in hands):
        return np.array([h.keypoints_2d for h in hands]), [h.handedness for h in hands]
    return _hands(np.asarray(hands), name), None


def evaluate_2d(predictions: Sequence[np.ndarray | Sequence[HandPrediction]], gt_hands: Sequence[np.ndarray],
                alpha: float = 0.2, visible: Sequence[np.ndarray] | None = None,
                gt_handedness: Sequence[Sequence[str | None]] | None = None,
                max_distance: float = 0.5) -> Evaluation2D:
    """Detection recall / precision, PCK@alpha (misses count 0), mean error / box and handedness accuracy.

    The measure of ``../shared/photos/README.md``: per image, predictions are matched one-to-one to
    GT hands (:func:`match_hands`); joints are scored with :func:`pck` against the GT box size.

    Args:
        predictions: per image, ``(P, 21, 2)`` keypoints or a list of :class:`HandPrediction`
            (needed for handedness accuracy).
        gt_hands: per image, ``(M, 21, 2)`` GT keypoints (``M`` may be 0; NaN = not annotated).
        alpha: PCK threshold as a fraction of the GT box size.
        visible: optional per image ``(M, 21)`` bool, annotated joints.
        gt_handedness: optional per image ``M`` labels ``"left"``/``"right"``/``None``.
        max_distance: see :func:`match_hands`.
    """
    if len(predictions) != len(gt_hands):
        raise ValueError(f"{len(predictions)} prediction entries but {len(gt_hands)} ground-truth entries")
    for name, extra in (("visible", visible), ("gt_handedness", gt_handedness)):
        if extra is not None and len(extra) != len(gt_hands):
            raise ValueError(f"{len(gt_hands)} images but {len(extra)} {name} entries")
    matches, correct, total, total_found, errors = [], 0.0, 0, 0, []
    labels_pred: list[str] = []
    labels_gt: list[str | None] = []
    for i, (hands, gt) in enumerate(zip(predictions, gt_hands)):
        pred, sides = _as_keypoints(hands, f"predictions[{i}]")
        gt = _hands(gt, f"gt_hands[{i}]")
        vis = _visible(None if visible is None else np.asarray(visible[i]).reshape(-1, NUM_KEYPOINTS), gt)
        match = match_hands(pred, gt, vis, max_distance)
        matches.append(match)
        total += int(vis.sum())
        if len(match.pairs):
            p, g = match.pairs[:, 0], match.pairs[:, 1]
            correct += float(np.nansum(pck(pred[p], gt[g], alpha, visible=vis[g])))
            total_found += int(vis[g].sum())
            errors.extend(match.distances.tolist())
            if sides is not None and gt_handedness is not None:
                labels_pred.extend(sides[k] for k in p)
                labels_gt.extend(gt_handedness[i][k] for k in g)
    det = detection_scores(matches)
    return Evaluation2D(
        n_images=len(gt_hands), n_gt=det.n_gt, n_pred=det.n_pred, n_matched=det.n_matched,
        recall=det.recall, precision=det.precision,
        pck=_ratio(correct, total), pck_found=_ratio(correct, total_found),
        mean_error=float(np.mean(errors)) if errors else float("nan"),
        handedness_accuracy=handedness_accuracy(labels_pred, labels_gt),
        matches=tuple(matches),
    )
