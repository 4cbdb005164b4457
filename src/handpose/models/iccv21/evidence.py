"""What the ICCV 2021 network's own outputs say about each of the two hands it always returns.

The network has no "no hand" output: on a one-hand photo it still returns a second, phantom hand.
Two of its outputs tell them apart, and one checks that the weights are paired as the code assumes:

* **Hand type** (InterNet's ``hand_fc``, a sigmoid per hand, ``[right, left]``): trained with a
  binary cross-entropy on "this hand is in the crop" over all of InterHand2.6M (one-hand and
  two-hand images); the network itself ignores it. This is the main evidence.
* **Heatmap peaks** (the maximum of each joint's volumetric heatmap, ``xyc[..., 2]``; InterNet's
  targets peak at 255): a hand with almost no heatmap response is not there. On one-hand training
  images the absent hand's heatmaps were not supervised (their joints are invalid), so a high
  peak alone does not prove a hand: this rule only removes hands, it never adds one.
* **Registration residual** (self-check): the network registers its 3D joints onto the heatmap's
  2D keypoints by a least-squares scale and translation (:func:`handpose.heatmap.fit_scale_translation`,
  weights ``c^2``). Let ``r_j = s J_xy,j + T - uv_j`` be the residuals and ``uv~_j = uv_j - uv_bar``
  the keypoints about their weighted centroid; the relative residual is::

      rho = sqrt( sum_j w_j ||r_j||^2 / sum_j w_j ||uv~_j||^2 )   in [0, 1]

  (the fraction of the keypoints' spread that the 3D joints do not explain, as ``sqrt(1 - R^2)``).
  When the heatmap channels and the 3D joints are paired in the same joint order, ``rho`` is small
  (the grid quantisation and the weak-perspective approximation only); paired in a wrong order it
  is near 1. The same number is computed with the heatmap channels read in InterHand2.6M's order
  (``rho_interhand``), the other order the weights might have been trained in (ARCHITECTURE.md
  section 3, "Caution: heatmap joint order").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from handpose.alignment import fit_scale_translation
from handpose.keypoints import COURSE_FROM_INTERHAND, NUM_KEYPOINTS

HEATMAP_PEAK = 255.0
#: A hand is present when InterNet's hand-type probability for it is at least this (its training
#: targets are 0 / 1 per hand; 0.5 is the decision boundary of its cross-entropy).
MIN_HAND_TYPE_PROB = 0.5
#: ... and when its mean heatmap peak, as a fraction of InterNet's target peak 255, is at least this.
MIN_PEAK_SCORE = 0.05
#: Self-check: a present hand whose relative registration residual ``rho`` exceeds this is reported
#: (``rho = 0.5``: a quarter of the keypoints' spread unexplained by the 3D joints).
MAX_REGISTRATION_RESIDUAL = 0.5


@dataclass(frozen=True)
class HandEvidence:
    """One hand's evidence in one photo.

    Attributes:
        hand_type_prob: InterNet's sigmoid for this hand, in ``[0, 1]``.
        peak_score: mean over the 21 joints of the heatmap peak / 255, clipped to ``[0, 1]``.
        present: ``hand_type_prob >= min_hand_type_prob and peak_score >= min_peak_score``.
        residual: relative registration residual ``rho`` (module docstring), NaN when the
            keypoints have no spread.
        residual_px: weighted RMS residual, 64-grid pixels (x4 for crop pixels).
        scale: the registration's scale ``s`` (grid px per mm); ``<= 0`` is a mirrored fit.
        residual_interhand: ``rho`` with the heatmap channels in InterHand2.6M's order.
    """

    hand_type_prob: float
    peak_score: float
    present: bool
    residual: float
    residual_px: float
    scale: float
    residual_interhand: float

    @property
    def self_check_ok(self) -> bool:
        """``residual <= MAX_REGISTRATION_RESIDUAL`` and ``scale > 0`` (NaN residual: not ok)."""
        return self.residual <= MAX_REGISTRATION_RESIDUAL and self.scale > 0


def registration_residual(xyc: np.ndarray, joints: np.ndarray) -> tuple[float, float, float]:
    """``(rho, rms_px, s)`` of the scale + translation registration of ``joints`` onto ``xyc``.

    Args:
        xyc: ``(J, 3)`` heatmap keypoints ``[u, v, peak]`` (grid px, raw peak), paired with ...
        joints: ``(J, 2|3)`` joints (mm; only x, y are used), row for row.

    Returns:
        relative residual ``rho`` (NaN without spread), weighted RMS residual in grid px, scale ``s``.
    """
    xyc = np.asarray(xyc, dtype=np.float64)
    joints = np.asarray(joints, dtype=np.float64)
    if xyc.ndim != 2 or xyc.shape[1] != 3 or joints.shape[:1] != xyc.shape[:1] or joints.shape[1] not in (2, 3):
        raise ValueError(f"xyc must be (J, 3) and joints (J, 2|3), got {xyc.shape} and {joints.shape}")
    fit = fit_scale_translation(xyc[None], joints[None])
    uv, w = xyc[:, :2], xyc[:, 2] ** 2
    total = w.sum()
    if not total > 0:
        return math.nan, math.nan, float(fit.scale[0])
    residual = (fit.apply(joints[None])[0] - uv) ** 2  # (J, 2)
    spread = (uv - (w[:, None] * uv).sum(0) / total) ** 2
    res2, spread2 = float((w * residual.sum(1)).sum()), float((w * spread.sum(1)).sum())
    rho = math.sqrt(res2 / spread2) if spread2 > 0 else math.nan
    return rho, math.sqrt(res2 / total), float(fit.scale[0])


def hand_evidence(
    xyc: np.ndarray,
    joints_course: np.ndarray,
    course_from_native: tuple[int, ...],
    hand_type_prob: float,
    min_hand_type_prob: float = MIN_HAND_TYPE_PROB,
    min_peak_score: float = MIN_PEAK_SCORE,
) -> HandEvidence:
    """The evidence for one hand.

    Args:
        xyc: ``(21, 3)`` this hand's heatmap keypoints in channel order (the network's ``xyc``).
        joints_course: ``(21, 3)`` its final 3D joints in the course order, mm.
        course_from_native: the release's map (channel ``course_from_native[i]`` is paired with
            course joint ``i`` by the network).
        hand_type_prob: InterNet's hand-type probability for this hand.
        min_hand_type_prob, min_peak_score: the presence thresholds.
    """
    xyc = np.asarray(xyc, dtype=np.float64)
    if xyc.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"xyc must be (21, 3), got {xyc.shape}")
    peak_score = float(np.clip(xyc[:, 2].mean() / HEATMAP_PEAK, 0.0, 1.0))
    rho, rms, scale = registration_residual(xyc[list(course_from_native)], joints_course)
    rho_ih, _, _ = registration_residual(xyc[list(COURSE_FROM_INTERHAND)], joints_course)
    present = hand_type_prob >= min_hand_type_prob and peak_score >= min_peak_score
    return HandEvidence(float(hand_type_prob), peak_score, bool(present), rho, rms, scale, rho_ih)


def self_check_message(side: str, evidence: HandEvidence) -> str:
    """The warning for a hand that fails the self-check, with its numbers."""
    return (
        f"ICCV21 self-check: the {side} hand's heatmap keypoints and 3D joints disagree: relative "
        f"registration residual {evidence.residual:.2f} (threshold {MAX_REGISTRATION_RESIDUAL}), RMS "
        f"{evidence.residual_px:.1f} heatmap px, scale {evidence.scale:.3g} px/mm; with the heatmap read in "
        f"InterHand2.6M's joint order: {evidence.residual_interhand:.2f}. Rare on odd photos; on most "
        "photos it means the weights' joint order differs from the code's (see weights/README.md)."
    )
