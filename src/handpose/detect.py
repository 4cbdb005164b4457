"""Geometry of multi-pass hand detection: views, tiles, hand crops, duplicate merging, sanity.

A *view* is an image derived from the photo by a similarity transform (crop, scale, rotation)
on which a detector runs. Detections are mapped back to the photo with the inverse transform.
Coordinates are continuous pixels: the photo spans ``[0, W] x [0, H]`` and pixel ``(i, j)`` has
its centre at ``(j + 0.5, i + 0.5)``, so a rotation by 90 degrees is exact.

Everything here is pure numpy / OpenCV on plain arrays; the detector itself lives in
:mod:`handpose.models.mediapipe`.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from handpose.keypoints import MIDDLE_MCP, WRIST


@dataclass(frozen=True)
class View:
    """An image derived from the photo by ``p_view = A @ p_photo + t``.

    Attributes:
        image: ``(h, w, 3)`` uint8 RGB, the view's pixels.
        matrix: ``(2, 3)`` ``[A | t]`` from photo to view continuous pixel coordinates, with ``A``
            a scaled rotation (``A = s R``).
        name: short label of the view (e.g. ``"full"``, ``"rot90"``, ``"tile2x2:1"``).
    """

    image: np.ndarray
    matrix: np.ndarray
    name: str

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` view pixels back to photo pixels: ``p = A^-1 (p_view - t)``."""
        a, t = self.matrix[:, :2], self.matrix[:, 2]
        # Closed-form 2 x 2 inverse (np.linalg.inv goes through LAPACK: slow on small matrices).
        inverse = np.array([[a[1, 1], -a[0, 1]], [-a[1, 0], a[0, 0]]]) / (a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0])
        return (np.asarray(points, dtype=np.float64) - t) @ inverse.T

    def centres_to_photo(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` view points in integer-pixel-centre coordinates (the package's
        convention, e.g. an estimator's output on ``image``) to the photo's: ``to_photo(u + 0.5) - 0.5``."""
        return self.to_photo(np.asarray(points, dtype=np.float64) + 0.5) - 0.5

    def rotation_to_photo(self) -> np.ndarray:
        """``(3, 3)`` rotation taking camera-aligned 3D vectors of the view to the photo's.

        The view's image axes are the photo's turned in the image plane by ``R = A / s``, so a
        3D vector ``v_view = diag(R, 1) v_photo`` and the inverse is the transpose.
        """
        a = self.matrix[:, :2]
        rot = a / np.sqrt(abs(np.linalg.det(a)))
        out = np.eye(3)
        out[:2, :2] = rot.T
        return out


def _to_cv2(matrix: np.ndarray) -> np.ndarray:
    """Continuous-coordinate ``[A | t]`` -> OpenCV's pixel-centre convention.

    With ``p = i + 0.5``: ``i' + 0.5 = A (i + 0.5) + t``  =>  ``i' = A i + (t + A 0.5 - 0.5)``.
    """
    a, t = matrix[:, :2], matrix[:, 2]
    return np.concatenate([a, (t + a @ np.full(2, 0.5) - 0.5)[:, None]], axis=1)


def identity_view(image: np.ndarray) -> View:
    """The photo itself."""
    return View(image, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), "full")


def rot90_view(image: np.ndarray, quarter_turns: int) -> View:
    """The photo turned counter-clockwise (as displayed) by ``90 * quarter_turns`` degrees.

    Exact pixel permutation (``np.rot90``). For ``W x H`` photos, one quarter turn maps
    ``(x, y) -> (y, W - x)``; two: ``(W - x, H - y)``; three: ``(H - y, x)``.
    """
    h, w = image.shape[:2]
    k = quarter_turns % 4
    matrix = {
        0: [[1, 0, 0], [0, 1, 0]],
        1: [[0, 1, 0], [-1, 0, w]],
        2: [[-1, 0, w], [0, -1, h]],
        3: [[0, -1, h], [1, 0, 0]],
    }[k]
    return View(np.ascontiguousarray(np.rot90(image, k)), np.array(matrix, dtype=np.float64), f"rot{90 * k}")


def warp_view(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], name: str) -> View:
    """Resample the photo through ``[A | t]`` (photo -> view) into a ``size = (w, h)`` view.

    Outside the photo is filled with black (MediaPipe's own letterbox colour).
    """
    matrix = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    interp = cv2.INTER_AREA if abs(np.linalg.det(matrix[:, :2])) < 1.0 else cv2.INTER_LINEAR
    pixels = cv2.warpAffine(image, _to_cv2(matrix), size, flags=interp, borderMode=cv2.BORDER_CONSTANT)
    return View(pixels, matrix, name)


def square_crop_view(image: np.ndarray, center: np.ndarray, side: float, out_size: int, angle_deg: float = 0.0,
                     name: str = "crop") -> View:
    """Square of ``side`` photo pixels around ``center``, turned by ``angle_deg`` (counter-clockwise
    as displayed), resampled to ``out_size x out_size``.

    ``p_view = s R (p - c) + out_size / 2`` with ``s = out_size / side``.
    """
    if side <= 0 or out_size <= 0:
        raise ValueError(f"side and out_size must be positive, got {side}, {out_size}")
    theta = np.deg2rad(angle_deg)
    # Counter-clockwise on screen (y down) is a clockwise rotation of the coordinates.
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    a = (out_size / side) * rot
    t = out_size / 2.0 - a @ np.asarray(center, dtype=np.float64)
    return warp_view(image, np.concatenate([a, t[:, None]], axis=1), (out_size, out_size), name)


def rotated_view(image: np.ndarray, angle_deg: float) -> View:
    """The whole photo turned by ``angle_deg`` counter-clockwise, on a canvas that holds it all."""
    h, w = image.shape[:2]
    theta = np.deg2rad(angle_deg)
    c, s = abs(np.cos(theta)), abs(np.sin(theta))
    out_w, out_h = int(np.ceil(w * c + h * s)), int(np.ceil(w * s + h * c))
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    t = np.array([out_w, out_h]) / 2.0 - rot @ np.array([w, h]) / 2.0
    return warp_view(image, np.concatenate([rot, t[:, None]], axis=1), (out_w, out_h), f"rot{angle_deg:g}")


def tile_boxes(width: int, height: int, grid: int, overlap: float) -> np.ndarray:
    """``(grid * grid, 4)`` overlapping ``[x1, y1, x2, y2]`` tiles covering the photo.

    Each tile spans ``L / (grid - (grid - 1) * overlap)`` of a side ``L``, so neighbours share
    ``overlap`` of a tile and the last tile ends at ``L``.
    """
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    boxes = []
    tw, th = width / (grid - (grid - 1) * overlap), height / (grid - (grid - 1) * overlap)
    for r in range(grid):
        for c in range(grid):
            x1, y1 = c * tw * (1 - overlap), r * th * (1 - overlap)
            boxes.append([x1, y1, min(x1 + tw, width), min(y1 + th, height)])
    return np.round(np.array(boxes, dtype=np.float64))


def tiles_of_side(width: int, height: int, side: int, overlap: float) -> np.ndarray:
    """``(N, 4)`` overlapping square ``[x1, y1, x2, y2]`` tiles of ``side`` pixels covering the photo.

    Along a photo side ``L > side``, ``n = ceil((L - side) / (side (1 - overlap))) + 1`` tiles
    start at ``k (L - side) / (n - 1)``, so neighbours overlap by at least ``overlap`` of a tile
    and the last one ends at ``L``; a photo side ``L <= side`` gets one tile spanning it.
    """
    if side < 1:
        raise ValueError(f"side must be >= 1 pixel, got {side}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")

    def starts(length: int) -> np.ndarray:
        if length <= side:
            return np.zeros(1)
        n = int(np.ceil((length - side) / (side * (1 - overlap)))) + 1
        return np.linspace(0, length - side, n)

    boxes = [[x, y, min(x + side, width), min(y + side, height)] for y in starts(height) for x in starts(width)]
    return np.round(np.array(boxes, dtype=np.float64))


def crop_view(image: np.ndarray, box: np.ndarray, name: str) -> View:
    """Integer sub-rectangle ``box = [x1, y1, x2, y2]`` of the photo, not resampled."""
    x1, y1, x2, y2 = (int(v) for v in box)
    pixels = np.ascontiguousarray(image[y1:y2, x1:x2])
    return View(pixels, np.array([[1.0, 0.0, -x1], [0.0, 1.0, -y1]]), name)


def mask_boxes(mask: np.ndarray, min_fraction: float = 0.01, margin: float = 0.15) -> np.ndarray:
    """Boxes of the connected components of a ``(H, W)`` mask (e.g. people in a segmentation).

    Components smaller than ``min_fraction`` of the image are dropped; each box ``[x1, y1, x2, y2]``
    (continuous pixels, the image spans ``[0, W] x [0, H]``) is grown by ``margin`` of its longer
    side on every side (arms and hands at the mask's edge) and clipped to the image.

    Returns:
        ``(N, 4)`` boxes, largest component first.
    """
    import cv2

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


def touches_cut_edge(keypoints_view: np.ndarray, view: View, width: int, height: int, margin: float) -> bool:
    """Whether a hand found in ``view`` reaches an edge of the view that cuts through the photo.

    A hand within ``margin`` view pixels of such an edge (the photo goes on beyond it, e.g. the
    inner edges of a tile) is likely cut off: a partial copy of a hand that a neighbouring,
    overlapping view holds whole.

    Args:
        keypoints_view: ``(21, 2)`` continuous view pixels.
        width, height: the photo's size.
    """
    kp = np.asarray(keypoints_view, dtype=np.float64)
    h, w = view.image.shape[:2]
    near = (kp[:, 0].min() < margin, kp[:, 0].max() > w - margin, kp[:, 1].min() < margin, kp[:, 1].max() > h - margin)
    beyond = np.array([[-1.0, h / 2], [w + 1.0, h / 2], [w / 2, -1.0], [w / 2, h + 1.0]])  # just outside each edge
    outside = view.to_photo(beyond)
    inside = (outside[:, 0] >= 0) & (outside[:, 0] <= width) & (outside[:, 1] >= 0) & (outside[:, 1] <= height)
    return bool(np.any(np.array(near) & inside))


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
