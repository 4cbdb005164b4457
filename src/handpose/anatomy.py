"""Anatomical plausibility of 3D hand keypoints: bone-length ratios and joint-angle limits.

Pure keypoint geometry (no model, no image): the estimators' verifier
(:mod:`handpose.models.regions`) and the label-free failure signals (:mod:`handpose.signals`)
both use it. A hand is implausible when its scale-normalised bone lengths stray from a reference
hand's (:data:`REFERENCE_BONE_MM`) or its joints bend past the limits of :data:`ANGLE_LIMITS`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from handpose.keypoints import BONES, FINGERS, NUM_KEYPOINTS, WRIST, bone_lengths
from handpose.rotations import normalize

#: Reference bone lengths in mm, in :data:`handpose.keypoints.BONES` order (child 1..20): the rest
#: pose of the open hand model (:func:`handpose.handmodel.rest_bone_lengths`, mean shape), rounded to 0.5 mm, for
#: when its set-up export is missing. Keypoint-to-keypoint lengths as the estimators place the
#: keypoints (MediaPipe's world landmarks agree within about 10 %), not anatomical bone lengths.
REFERENCE_BONE_MM: np.ndarray = np.array([
    44.5, 30.0, 35.5, 27.0,   # thumb: wrist-CMC, CMC-MCP, MCP-IP, IP-TIP
    105.0, 25.5, 22.5, 26.0,  # index: wrist-MCP, MCP-PIP, PIP-DIP, DIP-TIP
    101.0, 33.0, 27.0, 26.5,  # middle
    97.0, 29.0, 24.5, 26.0,   # ring
    93.5, 21.0, 15.0, 19.5,   # pinky
])

#: The 15 finger joints whose angles are checked: (finger, position in the finger's chain).
JOINTS: tuple[tuple[str, int], ...] = tuple((finger, i) for finger in FINGERS for i in range(3))

# Limits in degrees per joint: (max flexion, max hyperextension, max |abduction|). Fingers: MCP
# 100 / 45 / 40, PIP 110 / 15 / 20, DIP 100 / 30 / 20 (active range of motion plus a tolerance for
# keypoint noise). Thumb: the CMC (wrist-CMC is not an anatomical bone) is not checked; MCP and IP
# only by their unsigned bend, at most 110 (the thumb's flexion plane is not the palm's).
_FINGER_LIMITS = ((100.0, 45.0, 40.0), (110.0, 15.0, 20.0), (100.0, 30.0, 20.0))
_THUMB_LIMITS = ((np.inf, np.inf, np.inf), (110.0, np.inf, np.inf), (110.0, np.inf, np.inf))
ANGLE_LIMITS: np.ndarray = np.array([_THUMB_LIMITS[i] if f == "thumb" else _FINGER_LIMITS[i] for f, i in JOINTS])

#: A bone is implausible when its scale-normalised length is off by more than this factor.
BONE_RATIO_TOLERANCE = 1.3


def joint_angles(keypoints_3d: np.ndarray, handedness: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Flexion and abduction of the 15 :data:`JOINTS`, in degrees.

    The palm normal ``n = (index_MCP - wrist) x (pinky_MCP - wrist)`` points to the palm side of a
    right hand in a right-handed frame (negated for a left hand). At a joint with incoming bone
    direction ``u`` and outgoing bone ``v``: the lateral axis ``a`` is ``m x n`` with ``m`` the
    finger's metacarpal direction (wrist -> MCP), made orthogonal to ``u`` (so it stays the hinge
    axis of a flexed finger), the palm-side axis ``w = a x u``, and

        flexion = atan2(v . w, v . u)     (positive towards the palm, negative = hyperextension)
        abduction = atan2(v . a, |(v . u, v . w)|)   (angle out of the flexion plane)

    For the thumb, flexion is the unsigned bend ``atan2(|u x v|, u . v)`` and abduction is NaN.

    Args:
        keypoints_3d: ``(B, 21, 3)`` with a right-handed frame (e.g. x right, y down, z forward).
        handedness: ``B`` labels, ``"left"`` or ``"right"``.

    Returns:
        ``(flexion (B, 15), abduction (B, 15))`` degrees in :data:`JOINTS` order.
    """
    x = np.asarray(keypoints_3d, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints_3d must be (B, 21, 3), got {x.shape}")
    if len(handedness) != len(x) or any(side not in ("left", "right") for side in handedness):
        raise ValueError(f"handedness must be {len(x)} labels 'left'/'right', got {list(handedness)}")
    sign = np.where(np.asarray(handedness) == "right", 1.0, -1.0)[:, None]
    normal = normalize(sign * np.cross(x[:, FINGERS["index"][0]] - x[:, WRIST], x[:, FINGERS["pinky"][0]] - x[:, WRIST]))
    flexion = np.full((len(x), len(JOINTS)), np.nan)
    abduction = np.full_like(flexion, np.nan)
    for col, (finger, i) in enumerate(JOINTS):
        chain = (WRIST,) + FINGERS[finger]
        parent, joint, child = chain[i], chain[i + 1], chain[i + 2]
        u = normalize(x[:, joint] - x[:, parent])
        v = x[:, child] - x[:, joint]
        if finger == "thumb":
            flexion[:, col] = np.degrees(np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.sum(u * v, -1)))
            continue
        metacarpal = normalize(x[:, chain[1]] - x[:, WRIST])
        lateral = np.cross(metacarpal, normal)
        lateral = normalize(lateral - np.sum(lateral * u, -1, keepdims=True) * u)
        palmar = np.cross(lateral, u)
        along = np.sum(v * u, -1)
        across = np.sum(v * palmar, -1)
        flexion[:, col] = np.degrees(np.arctan2(across, along))
        abduction[:, col] = np.degrees(np.arctan2(np.sum(v * lateral, -1), np.hypot(along, across)))
    return flexion, abduction


@dataclass(frozen=True)
class Plausibility:
    """Anatomical checks of ``B`` hands.

    Attributes:
        bone_ratios: ``(B, 20)`` bone length / (scale * reference length), scale the median ratio.
        bone_ratio_error: ``(B,)`` mean ``|log bone_ratio|`` (0 = the reference's proportions).
        flexion, abduction: ``(B, 15)`` degrees (:func:`joint_angles`).
        violation: ``(B, 15)`` degrees beyond the :data:`ANGLE_LIMITS` (0 within them).
        angle_violation: ``(B,)`` sum of ``violation`` over the joints, degrees.
        score: ``(B,)`` fraction of failed checks: bones off by more than
            :data:`BONE_RATIO_TOLERANCE` and joints beyond a limit, over 20 bones + 14 checked joints.
    """

    bone_ratios: np.ndarray
    bone_ratio_error: np.ndarray
    flexion: np.ndarray
    abduction: np.ndarray
    violation: np.ndarray
    angle_violation: np.ndarray
    score: np.ndarray


def anatomical_plausibility(keypoints_3d: np.ndarray, handedness: Sequence[str],
                            reference_mm: np.ndarray | None = None) -> Plausibility:
    """Bone-length ratios and joint-angle limits of ``(B, 21, 3)`` hands.

    ``ratio_b = L_b / (s R_b)`` with ``s = median_b(L_b / R_b)``, so the overall hand size does not
    matter. Violations: ``max(flexion - max_flex, -flexion - max_hyperext, |abduction| - max_abd, 0)``.

    Args:
        keypoints_3d: ``(B, 21, 3)`` in a right-handed frame (units cancel).
        handedness: ``B`` labels.
        reference_mm: ``(20,)`` reference bone lengths (default :data:`REFERENCE_BONE_MM`, or
            :func:`handpose.handmodel.rest_bone_lengths`).
    """
    reference = REFERENCE_BONE_MM if reference_mm is None else np.asarray(reference_mm, dtype=np.float64)
    if reference.shape != (len(BONES),) or not np.all(reference > 0):
        raise ValueError(f"reference_mm must be ({len(BONES)},) positive lengths, got {reference.shape}")
    flexion, abduction = joint_angles(keypoints_3d, handedness)
    lengths = bone_lengths(keypoints_3d)
    scale = np.median(lengths / reference, axis=-1, keepdims=True)
    ratios = lengths / np.maximum(scale * reference, 1e-12)
    log_ratio = np.abs(np.log(np.maximum(ratios, 1e-12)))
    max_flex, max_hyper, max_abd = ANGLE_LIMITS.T
    over = np.stack([flexion - max_flex, -flexion - max_hyper, np.abs(abduction) - max_abd], axis=-1)
    violation = np.where(np.isfinite(over), over, -np.inf).max(axis=-1).clip(min=0.0)
    checked = np.isfinite(max_flex)
    failures = (log_ratio > np.log(BONE_RATIO_TOLERANCE)).sum(-1) + (violation[:, checked] > 0).sum(-1)
    return Plausibility(bone_ratios=ratios, bone_ratio_error=log_ratio.mean(-1), flexion=flexion,
                        abduction=abduction, violation=violation, angle_violation=violation.sum(-1),
                        score=failures / (len(BONES) + int(checked.sum())))
