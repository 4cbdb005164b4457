"""Image views: images derived from a photo by a similarity transform, with the exact map back.

A *view* is an image derived from the photo by a similarity transform (mirror, crop, scale,
rotation), e.g. one a detector runs on or a perturbed copy. Points are mapped between the view and
the photo exactly with the transform. The views' matrices act on continuous pixels: the photo spans
``[0, W] x [0, H]`` and pixel ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)``, so a rotation by 90
degrees is exact; :meth:`View.centres_to_photo` and :meth:`View.centres_to_view` take and return the
package's integer pixel centres (:mod:`handpose.camera`).

Pure numpy / OpenCV on plain arrays: views, tiles and hand crops for
:mod:`handpose.models.mediapipe` and :mod:`handpose.models.regions`, the test-time augmentations of
:mod:`handpose.signals` and the geometric perturbations of :mod:`handpose.sweeps`.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class View:
    """An image derived from the photo by ``p_view = A @ p_photo + t``.

    Attributes:
        image: ``(h, w, 3)`` uint8 RGB, the view's pixels.
        matrix: ``(2, 3)`` ``[A | t]`` from photo to view continuous pixel coordinates, with ``A``
            a scaled rotation (``A = s R``), mirrored (``A = s R F``) for a flipped view.
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

    def centres_to_view(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` photo pixel centres to the view's (inverse of :meth:`centres_to_photo`):
        ``u' = A u + t + A 0.5 - 0.5``."""
        points = np.asarray(points, dtype=np.float64)
        if points.shape[-1] != 2:
            raise ValueError(f"points must be (..., 2), got {points.shape}")
        on_centres = affine_on_centres(self.matrix)
        return points @ on_centres[:, :2].T + on_centres[:, 2]

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


def affine_on_centres(matrix: np.ndarray) -> np.ndarray:
    """``(2, 3)`` affine map ``[A | t]`` between continuous pixel coordinates -> the same map on
    integer-centre coordinates (what ``cv2.warpAffine`` takes; :mod:`handpose.camera` states the
    convention).

    With ``x = u + 0.5``: ``u' + 0.5 = A (u + 0.5) + t``  =>  ``u' = A u + (t + A 0.5 - 0.5)``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (2, 3):
        raise ValueError(f"matrix must be (2, 3), got {matrix.shape}")
    a, t = matrix[:, :2], matrix[:, 2]
    return np.concatenate([a, (t + a @ np.full(2, 0.5) - 0.5)[:, None]], axis=1)


def identity_view(image: np.ndarray) -> View:
    """The photo itself."""
    return View(image, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), "full")


def flip_view(image: np.ndarray, name: str = "flip") -> View:
    """Horizontal mirror: ``x' = W - x`` in continuous coordinates (``u' = W - 1 - u`` on pixel
    centres), ``y' = y`` (exact pixel permutation)."""
    w = image.shape[1]
    return View(np.ascontiguousarray(image[:, ::-1]), np.array([[-1.0, 0.0, w], [0.0, 1.0, 0.0]]), name)


def _turn(angle_deg: float) -> np.ndarray:
    """``(2, 2)`` turn by ``angle_deg`` counter-clockwise as displayed: with y down, that is a
    clockwise rotation of the coordinates, ``[[cos, sin], [-sin, cos]]``."""
    theta = np.deg2rad(angle_deg)
    return np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])


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
    pixels = cv2.warpAffine(image, affine_on_centres(matrix), size, flags=interp, borderMode=cv2.BORDER_CONSTANT)
    return View(pixels, matrix, name)


def centred_view(image: np.ndarray, center: np.ndarray, scale: float, size: tuple[int, int],
                  angle_deg: float = 0.0, name: str = "crop") -> View:
    """The photo zoomed by ``scale`` and turned by ``angle_deg`` (counter-clockwise as displayed)
    about ``center`` (continuous pixels), which lands in the middle of a ``size = (w, h)`` view.

    ``p_view = s R (p - c) + (w, h) / 2``; outside the photo is black.
    """
    a = scale * _turn(angle_deg)
    t = np.asarray(size, dtype=np.float64) / 2.0 - a @ np.asarray(center, dtype=np.float64)
    return warp_view(image, np.concatenate([a, t[:, None]], axis=1), size, name)


def square_crop_view(image: np.ndarray, center: np.ndarray, side: float, out_size: int, angle_deg: float = 0.0,
                     name: str = "crop") -> View:
    """Square of ``side`` photo pixels around ``center``, turned by ``angle_deg`` (counter-clockwise
    as displayed), resampled to ``out_size x out_size``: :func:`centred_view` with
    ``s = out_size / side``.
    """
    if side <= 0 or out_size <= 0:
        raise ValueError(f"side and out_size must be positive, got {side}, {out_size}")
    return centred_view(image, center, out_size / side, (out_size, out_size), angle_deg, name)


def rotated_view(image: np.ndarray, angle_deg: float, scale: float = 1.0, mirror: bool = False,
                 name: str | None = None) -> View:
    """The whole photo, optionally mirrored, then turned by ``angle_deg`` (counter-clockwise as
    displayed) and zoomed by ``scale`` about its centre, on a canvas that holds all of it.

    ``p' = s R (F p - c) + c'`` with ``F`` the mirror ``x -> W - x`` (when ``mirror``), ``c`` the
    photo centre and ``c'`` the canvas centre. A pure mirror is :func:`flip_view` (exact pixel
    permutation); anything else is resampled once. ``name`` defaults to ``"rot<angle>"``.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    name = f"rot{angle_deg:g}" if name is None else name
    if mirror and angle_deg == 0.0 and scale == 1.0:
        return flip_view(image, name)
    h, w = image.shape[:2]
    rot = scale * _turn(angle_deg)
    corners = rot @ (np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64) - [w / 2, h / 2]).T
    out_w, out_h = (int(np.ceil(v - 1e-6)) for v in np.ptp(corners, axis=1))  # 1e-6: cos(90 deg) != 0
    similarity = np.eye(3)
    similarity[:2, :2] = rot
    similarity[:2, 2] = np.array([out_w, out_h]) / 2.0 - rot @ np.array([w, h]) / 2.0
    if mirror:
        similarity = similarity @ np.array([[-1.0, 0.0, w], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return warp_view(image, similarity[:2], (out_w, out_h), name)


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
