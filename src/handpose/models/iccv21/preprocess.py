"""Input crops of the ICCV 2021 network, as the authors' demo and test code make them.

Two ways to get the 256 x 256 input (``cv2.warpAffine``, bilinear, black outside):

* :func:`demo_transform` (both releases' demo / test script): the whole photo scaled by
  ``r = 256 / max(h, w)``, anchored at the top-left corner, padded with black.
* :func:`box_transform` (v2's dataset code): the box around both hands made square, enlarged
  x1.25 and centred (InterHand2.6M's ``process_bbox`` + ``generate_patch_image``).

Transforms use OpenCV's pixel-centre convention (pixel ``i`` at coordinate ``i``), as the authors'
code, which is also the package's convention (:mod:`handpose.camera`): boxes in and keypoints out
need no conversion.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

INPUT_SIZE = 256
BOX_ENLARGE = 1.25


@dataclass(frozen=True)
class CropTransform:
    """``u = s x + t`` from photo to crop, OpenCV pixel-centre coordinates.

    Attributes:
        matrix: ``(2, 3)`` ``[[s, 0, tx], [0, s, ty]]``.
    """

    matrix: np.ndarray

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel."""
        return float(self.matrix[0, 0])

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """``(..., 2)`` crop pixels -> photo pixels (both pixel centres)."""
        points = np.asarray(points, dtype=np.float64)
        return (points - self.matrix[:, 2]) / self.scale


def demo_transform(height: int, width: int, size: int = INPUT_SIZE) -> CropTransform:
    """The demo's top-left anchored resize: ``r = size / max(h, w)``, ``M = [[r, 0, 0], [0, r, 0]]``."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height} x {width}")
    r = size / max(height, width)
    return CropTransform(np.array([[r, 0.0, 0.0], [0.0, r, 0.0]]))


def box_transform(boxes_xyxy: np.ndarray, size: int = INPUT_SIZE, enlarge: float = BOX_ENLARGE) -> CropTransform:
    """Square crop around the union of ``boxes_xyxy`` ``(N, 4)`` (photo pixels, pixel centres).

    The union box ``(x, y, w, h)`` is made square (``w = h = max(w, h)``) around its centre
    ``c``, enlarged by ``enlarge``, and mapped to the crop's centre: ``u = s (x - c) + size / 2``,
    ``s = size / side`` (InterHand2.6M's ``generate_patch_image`` maps the centre to ``size / 2``).
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    if boxes.shape[0] == 0:
        raise ValueError("boxes_xyxy is empty")
    if not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2:] <= boxes[:, :2]):
        raise ValueError(f"boxes must be finite [x1, y1, x2, y2] with x2 > x1 and y2 > y1, got {boxes.tolist()}")
    lo, hi = boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)
    center = (lo + hi) / 2.0
    side = float((hi - lo).max()) * enlarge
    s = size / side
    return CropTransform(np.array([[s, 0.0, size / 2.0 - s * center[0]], [0.0, s, size / 2.0 - s * center[1]]]))


def crop_image(image: np.ndarray, transform: CropTransform, size: int = INPUT_SIZE) -> np.ndarray:
    """Warp an ``(H, W, 3)`` uint8 RGB photo to the ``(size, size, 3)`` float32 crop in ``[0, 1]``."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    crop = cv2.warpAffine(
        image.astype(np.float32), transform.matrix, (size, size), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    return crop / 255.0


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` or ``(B, H, W, 3)`` float crops -> ``(B, 3, H, W)`` float32 tensor."""
    crops = np.asarray(crops, dtype=np.float32)
    if crops.ndim == 3:
        crops = crops[None]
    if crops.ndim != 4 or crops.shape[3] != 3:
        raise ValueError(f"crops must be (B, H, W, 3), got {crops.shape}")
    return torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2)))
