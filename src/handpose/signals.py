"""Label-free error signals: how wrong is a prediction when there is no ground truth?

Four families, each a number per predicted hand (higher = more likely wrong, except the score):

* **detector score** passed through from :class:`~handpose.prediction.HandPrediction`;
* **test-time-augmentation disagreement**: the estimator is run again on a mirrored, turned
  (+-10, +-20 degrees) and rescaled (0.8, 1.25) copy of the photo; keypoints are mapped back to the
  photo exactly, hands matched one-to-one, and the per-joint spread (RMS distance to the mean, in
  units of the hand's box side) measures the model's uncertainty;
* **anatomical plausibility** of the 3D keypoints (:mod:`handpose.anatomy`): bone-length ratios
  against a reference hand and joint-angle limits (flexion, hyperextension, abduction);
* **2D-3D consistency**: the residual after registering the 3D keypoints' ``(x, y)`` to the 2D
  keypoints with a least-squares scale + translation (weak perspective).

:func:`signal_error_correlation` tells, on a set with ground truth, how well a signal ranks the
true errors (Spearman's rho). :func:`analyse_image` builds the per-hand table rows of notebook 05
and :func:`handpose.figures.failure_gallery` draws its worst cases.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from handpose.alignment import fit_scale_translation
from handpose.anatomy import anatomical_plausibility
from handpose.io import check_image
from handpose.keypoints import NUM_KEYPOINTS
from handpose.metrics import box_size, match_hands, pck
from handpose.prediction import HandPrediction, Predictor
from handpose.views import rotated_view


# -- test-time augmentation -------------------------------------------------------------------


@dataclass(frozen=True)
class Augmentation:
    """A similarity transform of the photo: optional mirror, then a turn of ``angle_deg``
    (counter-clockwise as displayed) and a zoom by ``scale``, both about the photo centre, on a
    canvas that holds all of it (:func:`handpose.views.rotated_view`)."""

    name: str
    flip: bool = False
    angle_deg: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")


DEFAULT_AUGMENTATIONS: tuple[Augmentation, ...] = (
    Augmentation("flip", flip=True),
    Augmentation("rot-20", angle_deg=-20.0),
    Augmentation("rot-10", angle_deg=-10.0),
    Augmentation("rot+10", angle_deg=10.0),
    Augmentation("rot+20", angle_deg=20.0),
    Augmentation("scale0.8", scale=0.8),
    Augmentation("scale1.25", scale=1.25),
)


@dataclass(frozen=True)
class TTADisagreement:
    """Agreement of the hands of one photo across test-time augmentations.

    Attributes:
        keypoints: ``(N, K + 1, 21, 2)`` photo pixels of each of the ``N`` original hands, first as
            predicted, then in each of the ``K`` augmentations (NaN where it was not found).
        found: ``(N, K)`` whether the hand was found in each augmentation.
        handedness_agrees: ``(N, K)`` whether the (mirror-corrected) handedness agreed (False when not found).
        joint_spread: ``(N, 21)`` RMS distance of each joint to its mean over the available
            predictions, divided by the hand's box side (NaN when found in no augmentation).
        spread: ``(N,)`` mean of ``joint_spread`` over the joints.
        missing: ``(N,)`` fraction of augmentations in which the hand was not found.
        handedness_flips: ``(N,)`` fraction of the augmentations that found the hand but disagreed on its side.
    """

    keypoints: np.ndarray
    found: np.ndarray
    handedness_agrees: np.ndarray
    joint_spread: np.ndarray
    spread: np.ndarray
    missing: np.ndarray
    handedness_flips: np.ndarray


def tta_disagreement(image: np.ndarray, hands: Sequence[HandPrediction], predict: Predictor,
                     augmentations: Sequence[Augmentation] = DEFAULT_AUGMENTATIONS,
                     max_distance: float = 0.5) -> TTADisagreement:
    """Run ``predict`` on augmented copies of ``image`` and measure how much ``hands`` move.

    Augmented hands are mapped back to the photo and matched one-to-one to ``hands``
    (:func:`handpose.metrics.match_hands`: Hungarian method on the mean keypoint distance divided by
    the box side of the hand in ``hands``; pairs farther than ``max_distance`` are unmatched).
    A mirror turns a right hand into a left one, so handedness is swapped back before comparing.

    Joint spread, for the ``n_j`` available positions ``p_kj`` of joint ``j``:
    ``sqrt(1/n_j sum_k ||p_kj - mean_k p_kj||^2) / box_side``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, the photo ``hands`` were predicted on.
        hands: the ``N`` predictions to assess.
        predict: the estimator, ``image -> list[HandPrediction]``.
        augmentations: the ``K`` transforms.
        max_distance: matching gate, fraction of the box side.
    """
    image = check_image(image)
    if not augmentations:
        raise ValueError("augmentations must not be empty")
    n, k = len(hands), len(augmentations)
    points = np.full((n, k + 1, NUM_KEYPOINTS, 2), np.nan)
    found = np.zeros((n, k), dtype=bool)
    agrees = np.zeros((n, k), dtype=bool)
    if n == 0:
        empty = np.zeros(0)
        return TTADisagreement(points, found, agrees, np.zeros((0, NUM_KEYPOINTS)), empty, empty, empty)
    reference = np.stack([hand.keypoints_2d for hand in hands])
    points[:, 0] = reference
    for a, aug in enumerate(augmentations):
        view = rotated_view(image, aug.angle_deg, aug.scale, aug.flip, aug.name)
        others = predict(view.image)
        if not others:
            continue
        mapped = view.centres_to_photo(np.stack([h.keypoints_2d for h in others]))  # pixel centres
        for j, i in match_hands(mapped, reference, max_distance=max_distance).pairs:
            side = others[j].handedness
            if aug.flip:
                side = "left" if side == "right" else "right"
            points[i, a + 1] = mapped[j]
            found[i, a] = True
            agrees[i, a] = side == hands[i].handedness
    # spread_j = sqrt(mean_k ||p_kj - mean_k p_kj||^2) over the predictions that exist.
    mean = np.nanmean(points, axis=1, keepdims=True)
    rms = np.sqrt(np.nanmean(np.sum((points - mean) ** 2, axis=-1), axis=1))
    joint_spread = np.where(found.any(1)[:, None], rms / box_size(reference)[:, None], np.nan)
    n_found = found.sum(1)
    flips = np.where(n_found > 0, (found & ~agrees).sum(1) / np.maximum(n_found, 1), np.nan)
    return TTADisagreement(points, found, agrees, joint_spread, joint_spread.mean(1), 1.0 - n_found / k, flips)


# -- 2D-3D consistency ------------------------------------------------------------------------


def reprojection_residual(keypoints_2d: np.ndarray, keypoints_3d: np.ndarray) -> np.ndarray:
    """Per-joint residual of the weak-perspective registration of the 3D keypoints to the 2D ones.

    ``(s, t) = argmin sum_j ||s X_j + t - x_j||^2`` over the 3D keypoints' ``(x, y)`` (which must
    be in the image's orientation: x right, y down) by :func:`handpose.alignment.fit_scale_translation`;
    the residual ``||s X_j + t - x_j||`` is divided by the 2D box side.

    Args:
        keypoints_2d: ``(B, 21, 2)`` pixels.
        keypoints_3d: ``(B, 21, 3)``.

    Returns:
        ``(B, 21)`` residuals in units of the box side (NaN for a failed registration).
    """
    x2 = np.asarray(keypoints_2d, dtype=np.float64)
    x3 = np.asarray(keypoints_3d, dtype=np.float64)
    if x2.ndim != 3 or x2.shape[1:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints_2d must be (B, 21, 2), got {x2.shape}")
    if x3.shape != (len(x2), NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints_3d must be ({len(x2)}, 21, 3), got {x3.shape}")
    xyc = np.concatenate([x2, np.ones(x2.shape[:2] + (1,))], axis=-1)
    registration = fit_scale_translation(xyc, x3)
    projected = np.asarray(registration.apply(x3), dtype=np.float64)  # s X_xy + t
    residual = np.linalg.norm(projected - x2, axis=-1) / box_size(x2)[:, None]
    return np.where(np.asarray(registration.ok, dtype=bool)[:, None], residual, np.nan)


# -- all signals of one photo -----------------------------------------------------------------

#: Signal name -> whether larger values mean a *better* prediction (only the detector score).
SIGNALS: dict[str, bool] = {
    "score": True,
    "tta_spread": False,
    "tta_missing": False,
    "handedness_flips": False,
    "bone_ratio_error": False,
    "angle_violation": False,
    "implausibility": False,
    "reprojection": False,
}


@dataclass(frozen=True)
class HandSignals:
    """Label-free signals of one predicted hand (see :data:`SIGNALS` for their direction).

    Attributes:
        score: detector confidence.
        tta_spread: mean joint spread across augmentations / box side (NaN if never re-found).
        tta_joint_spread: ``(21,)`` per-joint spread / box side.
        tta_missing: fraction of augmentations that lost the hand.
        handedness_flips: fraction of re-finding augmentations that disagreed on the side.
        bone_ratio_error: mean ``|log|`` bone-length ratio against the reference hand.
        angle_violation: degrees beyond the joint limits, summed over the joints.
        implausibility: fraction of failed anatomical checks.
        reprojection: mean 2D-3D registration residual / box side.
    """

    score: float
    tta_spread: float
    tta_joint_spread: np.ndarray
    tta_missing: float
    handedness_flips: float
    bone_ratio_error: float
    angle_violation: float
    implausibility: float
    reprojection: float

    def as_row(self) -> dict[str, float]:
        """The scalar signals as a plain dict (table row)."""
        return {name: float(getattr(self, name)) for name in SIGNALS}


def compute_signals(image: np.ndarray, hands: Sequence[HandPrediction], predict: Predictor,
                    augmentations: Sequence[Augmentation] = DEFAULT_AUGMENTATIONS,
                    reference_mm: np.ndarray | None = None) -> list[HandSignals]:
    """All label-free signals of the ``hands`` predicted on ``image``, one :class:`HandSignals` each.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        hands: the predictions to assess (from any estimator).
        predict: the estimator run on each augmentation (e.g. a cheaper single-view one).
        augmentations: test-time augmentations (:data:`DEFAULT_AUGMENTATIONS`).
        reference_mm: reference bone lengths for :func:`anatomical_plausibility`.
    """
    if not hands:
        return []
    tta = tta_disagreement(image, hands, predict, augmentations)
    keypoints_3d = np.stack([hand.keypoints_3d for hand in hands])
    anatomy = anatomical_plausibility(keypoints_3d, [hand.handedness for hand in hands], reference_mm)
    residual = reprojection_residual(np.stack([hand.keypoints_2d for hand in hands]), keypoints_3d).mean(-1)
    return [HandSignals(score=hand.score, tta_spread=float(tta.spread[i]), tta_joint_spread=tta.joint_spread[i],
                        tta_missing=float(tta.missing[i]), handedness_flips=float(tta.handedness_flips[i]),
                        bone_ratio_error=float(anatomy.bone_ratio_error[i]),
                        angle_violation=float(anatomy.angle_violation[i]), implausibility=float(anatomy.score[i]),
                        reprojection=float(residual[i]))
            for i, hand in enumerate(hands)]


def signal_error_correlation(signal_values: Sequence[float], true_errors: Sequence[float]) -> float:
    """Spearman's rank correlation between a signal and the true errors, over finite pairs.

    ``rho = 1`` when the signal orders the hands exactly as their errors; NaN with fewer than
    three finite pairs or a constant input.

    Args:
        signal_values: ``(N,)`` one signal per hand.
        true_errors: ``(N,)`` e.g. mean end-point error / box side.
    """
    s = np.asarray(signal_values, dtype=np.float64).reshape(-1)
    e = np.asarray(true_errors, dtype=np.float64).reshape(-1)
    if s.shape != e.shape:
        raise ValueError(f"signal_values and true_errors differ in length: {s.shape} vs {e.shape}")
    keep = np.isfinite(s) & np.isfinite(e)
    if keep.sum() < 3 or np.ptp(s[keep]) == 0 or np.ptp(e[keep]) == 0:
        return float("nan")
    return float(spearmanr(s[keep], e[keep]).statistic)


# -- tables and figures of notebook 05 ----------------------------------------------------------


def analyse_image(name: str, image: np.ndarray, hands: Sequence[HandPrediction], predict: Predictor,
                  gt_keypoints: np.ndarray | None = None, gt_visible: np.ndarray | None = None,
                  gt_handedness: Sequence[str | None] | None = None, alpha: float = 0.2,
                  augmentations: Sequence[Augmentation] = DEFAULT_AUGMENTATIONS,
                  reference_mm: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Table rows of one photo: one per predicted hand, then one per missed ground-truth hand.

    Every row has ``image``, ``hand`` (prediction index, -1 for a missed GT hand), ``detected``,
    ``handedness``, ``box_px`` and the :data:`SIGNALS` (NaN for missed hands). With ground truth,
    predictions are matched one-to-one to GT hands (:func:`handpose.metrics.match_hands`) and rows
    also hold ``gt`` (GT index or -1 for a false positive), ``error`` (mean end-point error / GT box
    side over annotated joints), ``pck`` (PCK@alpha; 0 for a missed hand) and ``handedness_ok``.

    Args:
        name: the photo's name.
        image: ``(H, W, 3)`` uint8 RGB.
        hands: predictions on ``image``.
        predict: the estimator for the test-time augmentations.
        gt_keypoints: optional ``(M, 21, 2)`` ground truth (NaN = not annotated).
        gt_visible: optional ``(M, 21)`` bool, annotated joints (default: the finite ones).
        gt_handedness: optional ``M`` labels (``None`` = unknown).
        alpha: PCK threshold, fraction of the GT box side.
        augmentations, reference_mm: see :func:`compute_signals`.
    """
    rows = [{"image": name, "hand": i, "detected": True, "handedness": hand.handedness,
             "box_px": float(box_size(hand.keypoints_2d[None])[0]), **s.as_row()}
            for i, (hand, s) in enumerate(zip(hands, compute_signals(image, hands, predict, augmentations,
                                                                       reference_mm)))]
    if gt_keypoints is None:
        return rows
    gt = np.asarray(gt_keypoints, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    visible = np.all(np.isfinite(gt), -1) if gt_visible is None else np.asarray(gt_visible, dtype=bool)
    sides = [None] * len(gt) if gt_handedness is None else list(gt_handedness)
    pred = np.array([hand.keypoints_2d for hand in hands]).reshape(-1, NUM_KEYPOINTS, 2)
    matches = match_hands(pred, gt, visible)
    for row in rows:
        row.update(gt=-1, error=np.nan, pck=np.nan, handedness_ok=None)
    for (i, j), distance in zip(matches.pairs, matches.distances):
        correct = pck(pred[i][None], gt[j][None], alpha=alpha, visible=visible[j][None])
        rows[i].update(gt=int(j), error=float(distance), pck=float(np.nanmean(correct)),
                       handedness_ok=None if sides[j] is None else hands[i].handedness == sides[j])
    for j in matches.unmatched_gt:
        rows.append({"image": name, "hand": -1, "detected": False, "handedness": sides[j],
                     "box_px": float(box_size(gt[j][None], visible[j][None])[0]),
                     **{key: np.nan for key in SIGNALS}, "gt": int(j), "error": np.nan, "pck": 0.0,
                     "handedness_ok": None})
    return rows


def signal_correlations(rows: Sequence[Mapping[str, Any]], error_key: str = "error") -> dict[str, float]:
    """Spearman's rho of each of the :data:`SIGNALS` with ``error_key`` over the matched rows,
    oriented so that a positive rho means "the signal predicts larger errors" (the detector score
    is negated)."""
    errors = [row.get(error_key, np.nan) for row in rows]
    return {name: signal_error_correlation([(-1.0 if up else 1.0) * row[name] for row in rows], errors)
            for name, up in SIGNALS.items()}


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], digits: int = 3) -> str:
    """A plain-text table of ``rows`` (one line each) with the given columns, floats rounded."""
    def cell(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            return "nan" if not np.isfinite(value) else f"{value:.{digits}f}"
        return "" if value is None else str(value)

    body = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(line[k]) for line in body]) for k, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths)) for line in body]
    return "\n".join(lines)


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], digits: int = 3) -> str:
    """:func:`format_table` as an HTML table in a box that scrolls sideways when it is wider than
    the page (for ``IPython.display.HTML``): numbers right-aligned, cells escaped, one line each,
    headers wrapped at their underscores."""
    import html

    def cell(value: Any) -> str:
        if isinstance(value, (bool, np.bool_)):
            return str(bool(value))
        if isinstance(value, (float, np.floating)):
            return "nan" if not np.isfinite(value) else f"{value:.{digits}f}"
        return "" if value is None else html.escape(str(value))

    def align(value: Any) -> str:
        number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
        return ' style="text-align:right"' if number else ""

    # Headers may wrap at their underscores (<wbr>), cells do not: the table stays narrow.
    head = "".join(f'<th style="white-space:normal">{html.escape(c).replace("_", "_<wbr>")}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f"<td{align(row.get(c))}>{cell(row.get(c))}</td>" for c in columns) + "</tr>"
                   for row in rows)
    return ('<div style="overflow-x:auto;max-width:100%"><table style="font-size:12px;white-space:nowrap">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def worst_rows(rows: Sequence[Mapping[str, Any]], n: int, key: str = "error") -> list[Mapping[str, Any]]:
    """The ``n`` worst rows: missed GT hands first, then by ``key`` descending (NaN last)."""
    def rank(row: Mapping[str, Any]) -> tuple[int, float]:
        value = float(row.get(key, np.nan))
        return (0 if not row["detected"] else 1, -value if np.isfinite(value) else np.inf)

    return sorted(rows, key=rank)[:n]


def distinctive_tags(metadata: Mapping[str, Mapping[str, str]], columns: Sequence[str]) -> dict[str, str]:
    """Per photo, its metadata tags that differ from the set's most common value of their column
    (what sets the photo apart), as ``"column=value, ..."``; blank values are ignored."""
    common = {}
    for column in columns:
        values = [m.get(column, "") for m in metadata.values() if m.get(column, "")]
        common[column] = max(set(values), key=values.count) if values else None
    return {name: ", ".join(f"{c}={m[c]}" for c in columns if m.get(c, "") and m[c] != common[c])
            for name, m in metadata.items()}


def breakdown(rows: Sequence[Mapping[str, Any]], metadata: Mapping[str, Mapping[str, str]],
              column: str) -> list[dict[str, Any]]:
    """Per value of a metadata ``column`` (e.g. ``"view"``): GT hands, detection recall, mean PCK
    and mean error over the GT rows of the photos with that value (photos without metadata are
    ``"?"``)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("gt", -1) >= 0:
            value = str(metadata.get(row["image"], {}).get(column, "") or "?")
            groups.setdefault(value, []).append(row)
    out = []
    for value, group in sorted(groups.items()):
        errors = np.array([g["error"] for g in group], dtype=np.float64)
        out.append({"column": column, "value": value, "n": len(group),
                    "recall": float(np.mean([g["detected"] for g in group])),
                    "pck": float(np.mean([g["pck"] for g in group])),
                    "error": float(np.nanmean(errors)) if np.isfinite(errors).any() else np.nan})
    return out
