"""Post-processing of multi-view hand detection: person boxes, box overlaps,
duplicate merging and layout sanity checks, grey-photo contrast.

The views the detector runs on, and their exact map back to the photo, are :mod:`handpose.views`.
Everything is pure numpy / OpenCV on plain arrays; the detector itself lives in
:mod:`handpose.models.mediapipe`.
"""
from __future__ import annotations

import cv2
import numpy as np

from handpose.keypoints import MIDDLE_MCP, WRIST


def mask_boxes(mask: np.ndarray, min_fraction: float = 0.01, margin: float = 0.15) -> np.ndarray:
    """Boxes of the connected components of a ``(H, W)`` mask (e.g. people in a segmentation).

    Components smaller than ``min_fraction`` of the image are dropped; each box ``[x1, y1, x2, y2]``
    (continuous pixels, the image spans ``[0, W] x [0, H]``) is grown by ``margin`` of its longer
    side on every side (arms and hands at the mask's edge) and clipped to the image.

    Returns:
        ``(N, 4)`` boxes, largest component first.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {m.shape}")
    h, w = m.shape
    count, _, stats, _ = cv2.connectedComponentsWithStats(m.astype(bool).astype(np.uint8), connectivity=8)
    out = []
    for x, y, bw, bh, area in sorted(stats[1:count].tolist(), key=lambda row: -row[4]):
        if area < min_fraction * h * w:
            continue
        grow = margin * max(bw, bh)
        out.append([max(x - grow, 0.0), max(y - grow, 0.0), min(x + bw + grow, w), min(y + bh + grow, h)])
    return np.array(out, dtype=np.float64).reshape(-1, 4)


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(P, B)`` bool: point ``p`` lies in box ``b`` (edges included), for ``(P, 2)`` points and
    ``(B, 4)`` ``xyxy`` boxes in the same pixels."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.all((boxes[None, :, :2] <= points[:, None]) & (points[:, None] <= boxes[None, :, 2:]), axis=-1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` intersection over union of ``(N, 4)`` and ``(M, 4)`` ``xyxy`` boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_overlap_fraction(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``(M,)`` fraction of ``box``'s area (``xyxy``) inside each of ``others`` ``(M, 4)``."""
    box = np.asarray(box, dtype=np.float64).reshape(4)
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(box[:2], others[:, :2])
    hi = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    return inter / max(float(np.prod(box[2:] - box[:2])), 1e-12)


def keypoint_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` mean 2D keypoint distance between ``(N, 21, 2)`` and ``(M, 21, 2)`` hands,
    divided by the larger box side of the two (scale-free: 0 = identical)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    dist = np.linalg.norm(a[:, None] - b[None, :], axis=-1).mean(-1)
    size_a = np.ptp(a, axis=1).max(-1)
    size_b = np.ptp(b, axis=1).max(-1)
    return dist / np.maximum(np.maximum(size_a[:, None], size_b[None, :]), 1e-9)


def suppress_duplicates(keypoints_2d: np.ndarray, scores: np.ndarray, max_distance: float,
                        max_iou: float) -> np.ndarray:
    """Greedy non-maximum suppression of hands; returns kept indices, best score first.

    Two hands are the same when their normalised mean keypoint distance (see
    :func:`keypoint_distance`) is below ``max_distance`` or their boxes' IoU is above ``max_iou``.
    Keypoints rather than boxes alone decide, so that two interacting hands with overlapping
    boxes both survive.

    Args:
        keypoints_2d: ``(N, 21, 2)`` pixels.
        scores: ``(N,)``.
    """
    keypoints_2d = np.asarray(keypoints_2d, dtype=np.float64).reshape(-1, 21, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(keypoints_2d):
        raise ValueError(f"{len(keypoints_2d)} hands but {len(scores)} scores")
    if len(scores) == 0:
        return np.zeros(0, dtype=int)
    boxes = np.concatenate([keypoints_2d.min(1), keypoints_2d.max(1)], axis=1)
    same = (keypoint_distance(keypoints_2d, keypoints_2d) < max_distance) | (box_iou(boxes, boxes) > max_iou)
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if not any(same[i, j] for j in kept):
            kept.append(int(i))
    return np.array(kept, dtype=int)


def nested_in_larger(boxes: np.ndarray, inside: float = 0.5, ratio: float = 1.5) -> np.ndarray:
    """``(N,)`` bool: hand ``j``'s box lies more than ``inside`` of its area in the box of a hand
    ``ratio`` times larger (longer sides): a finger or two read as a small hand of its own.

    Args:
        boxes: ``(N, 4)`` ``xyxy`` pixels.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sides = (boxes[:, 2:] - boxes[:, :2]).max(-1)
    nested = np.zeros(len(boxes), bool)
    for j in range(len(boxes)):
        larger = sides >= ratio * sides[j]
        if np.any(larger):
            nested[j] = bool(np.any(box_overlap_fraction(boxes[j], boxes[larger]) > inside))
    return nested


def beside_larger(keypoints_2d: np.ndarray, ratio: float = 2.0, distance: float = 0.75) -> np.ndarray:
    """``(N,)`` bool: hand ``j`` is at most ``1 / ratio`` the size (box sides) of a hand whose
    keypoint centre lies within ``distance`` of that larger hand's box side from its own: the
    fingers of the larger hand read as a small hand beside or on it, sticking out of its box (which
    :func:`nested_in_larger` needs it inside).

    Args:
        keypoints_2d: ``(N, 21, 2)`` pixels.
    """
    kp = np.asarray(keypoints_2d, dtype=np.float64).reshape(-1, 21, 2)
    sides = np.ptp(kp, axis=1).max(-1)
    centres = kp.mean(1)
    apart = np.linalg.norm(centres[:, None] - centres[None], axis=-1)  # (N, N): apart[j, i]
    # j beside a larger i: side_i >= ratio side_j and |c_j - c_i| < distance side_i.
    return np.any((sides[None] >= ratio * sides[:, None]) & (apart < distance * sides[None]), axis=1)


def layout_is_plausible(keypoints_2d: np.ndarray, keypoints_3d: np.ndarray, width: int, height: int,
                        min_side_px: float, min_inside: float) -> bool:
    """Keypoint-layout sanity check of one hand, to reject false positives.

    Rejects a hand when its 2D box is smaller than ``min_side_px``, when fewer than
    ``min_inside`` of its keypoints fall inside the photo, or when its metric size is not a
    hand's: the wrist to middle-finger MCP distance of an adult or child hand is about
    60-110 mm, accepted within ``[35, 160]`` mm.

    Args:
        keypoints_2d: ``(21, 2)`` pixels.
        keypoints_3d: ``(21, 3)`` millimetres.
    """
    side = np.ptp(keypoints_2d, axis=0).max()
    inside = np.mean((keypoints_2d[:, 0] >= 0) & (keypoints_2d[:, 0] <= width)
                     & (keypoints_2d[:, 1] >= 0) & (keypoints_2d[:, 1] <= height))
    palm_mm = np.linalg.norm(keypoints_3d[MIDDLE_MCP] - keypoints_3d[WRIST])
    return bool(side >= min_side_px and inside >= min_inside and 35.0 <= palm_mm <= 160.0)


def is_greyscale(image: np.ndarray, tolerance: float = 4.0) -> bool:
    """Whether an ``(H, W, 3)`` RGB image is (nearly) grey: mean channel spread below ``tolerance``."""
    small = image[:: max(1, image.shape[0] // 64), :: max(1, image.shape[1] // 64)].astype(np.int16)
    return float(np.mean(small.max(-1) - small.min(-1))) < tolerance


def enhance_contrast(image: np.ndarray, clip_limit: float = 2.0) -> np.ndarray:
    """CLAHE on the lightness channel (Lab), keeping colours: ``(H, W, 3)`` uint8 RGB."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(8, 8)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
