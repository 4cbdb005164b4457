"""A synthetic hand photo and a deterministic fake estimator that really looks at the image.

Joint j is a Gaussian blob of colour (255, 12 j, 0) on black: bilinear resampling against the
black background scales a blob's colour, so G / R still names the joint; the R-weighted centroid
finds its centre to a few hundredths of a pixel, so the fake estimator is exact wherever the image
is. Handedness comes from the layout's chirality, so a mirrored photo shows a left hand, as for a
real estimator.

Imported by the tests as ``from _synthetic import ...`` (pytest puts ``tests/``, which has no
``__init__.py``, on ``sys.path``).
"""
from __future__ import annotations

import cv2
import numpy as np

from handpose.keypoints import NUM_KEYPOINTS, WRIST
from handpose.prediction import HandPrediction

SIGMA = 2.0
#: ``(21, 2)`` pixels, an open right hand in a 200 x 220 image.
HAND = np.array([[100, 170], [122, 160], [138, 148], [150, 136], [160, 124], [118, 112], [120, 92], [121, 76],
                 [122, 60], [100, 108], [100, 86], [100, 68], [100, 52], [84, 110], [81, 90], [79, 73], [77, 58],
                 [70, 116], [64, 100], [60, 88], [57, 76]], dtype=np.float64)


def blob_image(points: np.ndarray, shape: tuple[int, int] = (220, 200), sigma: float = SIGMA) -> np.ndarray:
    """``(H, W, 3)`` uint8: joint j of ``points (21, 2)`` as a Gaussian blob of colour (255, 12 j, 0)."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]  # the package's convention: integer pixel centres
    image = np.zeros((h, w, 3))
    for j, (x, y) in enumerate(points):
        image += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))[..., None] * [255.0, 12.0 * j, 0.0]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def find_blobs(image: np.ndarray) -> np.ndarray:
    """``(21, 2)`` R-weighted blob centroids, joint named by G / R; NaN for a joint not found."""
    red = image[..., 0].astype(np.float64)
    count, labels = cv2.connectedComponents((red > 8).astype(np.uint8))
    points = np.full((NUM_KEYPOINTS, 2), np.nan)
    for label in range(1, count):
        ys, xs = np.nonzero(labels == label)
        weight = red[ys, xs]
        joint = int(round(np.sum(image[ys, xs, 1]) / weight.sum() * 255.0 / 12.0))
        if 0 <= joint < NUM_KEYPOINTS:
            points[joint] = (np.sum(weight * xs), np.sum(weight * ys)) / weight.sum()
    return points


def chirality(points: np.ndarray) -> str:
    """``"right"`` or ``"left"`` from the turn wrist -> index MCP -> pinky MCP (y down)."""
    a, b = points[5] - points[0], points[17] - points[0]
    return "right" if a[0] * b[1] - a[1] * b[0] < 0 else "left"


def hand_from(points: np.ndarray, handedness: str = "right", score: float = 0.9) -> HandPrediction:
    """A prediction with ``points`` as its 2D keypoints and their flat copy (z = 0) as 3D."""
    xyz = np.concatenate([points - points[WRIST], np.zeros((NUM_KEYPOINTS, 1))], axis=1)
    return HandPrediction(points, xyz, handedness, score)


def blob_predictor(image: np.ndarray) -> list[HandPrediction]:
    """The fake estimator: one hand when all 21 blobs are found, else none."""
    points = find_blobs(image)
    return [hand_from(points, chirality(points))] if np.isfinite(points).all() else []


def hand_silhouette(size: int = 384, background: tuple[int, int, int] = (70, 90, 120)) -> np.ndarray:
    """A procedural, shaded hand silhouette (open hand, fingers up, thumb to the image's left)
    on a vertical-gradient background: an ``(size, size, 3)`` uint8 RGB test image that MediaPipe
    detects at any quarter turn, for tests and demos that must not use real photos.

    Palm: ellipse; fingers: round-capped strokes; shading: skin colour darkened towards the
    outline, ``skin * (0.65 + 0.35 min(d / 12 px, 1))`` with ``d`` the distance to the outline.
    """
    if size < 64:
        raise ValueError(f"size must be >= 64, got {size}")
    s = size / 384.0
    rows = np.linspace(0.8, 1.2, size)[:, None, None]
    canvas = np.clip(np.broadcast_to(np.array(background, np.float64), (size, size, 3)) * rows, 0, 255)
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (round(192 * s), round(250 * s)), (round(62 * s), round(72 * s)), 0, 0, 360, 255, -1)
    cv2.rectangle(mask, (round(150 * s), round(290 * s)), (round(234 * s), size), 255, -1)  # forearm
    # (base x, base y, tip x, tip y, width) in a 384-pixel frame: thumb, index, middle, ring, pinky.
    strokes = ((138, 255, 63, 210, 28), (160, 200, 135, 83, 24), (190, 200, 190, 70, 25),
               (218, 200, 239, 82, 23), (243, 200, 279, 112, 20))
    for x1, y1, x2, y2, width in strokes:
        cv2.line(mask, (round(x1 * s), round(y1 * s)), (round(x2 * s), round(y2 * s)), 255, round(width * s),
                 cv2.LINE_AA)
    inside = (mask > 127).astype(np.uint8)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    shade = 0.65 + 0.35 * np.minimum(distance / (12.0 * s), 1.0)
    skin = np.array([224.0, 172.0, 140.0]) * shade[..., None]
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 1.2)[..., None]
    return np.clip(canvas * (1 - alpha) + skin * alpha, 0, 255).astype(np.uint8)


def intensity_centroid(image: np.ndarray) -> np.ndarray:
    """Intensity centroid ``(u, v)`` of a grey image, in integer-centre pixel coordinates."""
    vs, us = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    return np.array([(image * us).sum(), (image * vs).sum()]) / image.sum()


def gaussian_blob(uv: np.ndarray, shape: tuple[int, int], sigma: float = 3.0) -> np.ndarray:
    """``(H, W)`` float32 Gaussian of peak 1 centred on ``uv`` (pixel centres)."""
    vs, us = np.mgrid[0:shape[0], 0:shape[1]]
    return np.exp(-((us - uv[0]) ** 2 + (vs - uv[1]) ** 2) / (2 * sigma**2)).astype(np.float32)
