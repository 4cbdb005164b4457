"""2D skeleton overlays on photos (OpenCV, anti-aliased); matplotlib figures are :mod:`handpose.figures`.

Colours are :mod:`handpose.keypoints`' per-finger RGB colours; images are ``(H, W, 3)`` uint8 RGB
and are never modified in place. Keypoints are in the package's pixel convention (integer pixel
centres, :mod:`handpose.camera`), which is OpenCV's and matplotlib ``imshow``'s: no conversion.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from handpose.io import check_image
from handpose.keypoints import BONE_COLORS, BONES, KEYPOINT_COLORS, NUM_KEYPOINTS
from handpose.metrics import box_size
from handpose.prediction import HandPrediction


Color = tuple[int, int, int]


def _default_thickness(image: np.ndarray, keypoints_2d: np.ndarray) -> int:
    """Line width from the hand's size (``1/40`` of its box side) within ``[1, 1/150`` of the photo]."""
    hand = float(np.nan_to_num(box_size(keypoints_2d[None])[0]))  # 0 for one point, NaN (none) -> 0
    photo_cap = max(1, round(max(image.shape[:2]) / 150))
    return int(np.clip(round(hand / 40), 1, max(photo_cap, 2)))


def draw_keypoints(image: np.ndarray, keypoints_2d: np.ndarray, color: Color | None = None,
                   radius: int | None = None, thickness: int | None = None, bones: bool = True) -> np.ndarray:
    """Draw one hand's raw keypoints (e.g. ground truth beside a prediction).

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        keypoints_2d: ``(21, 2)`` pixels; rows with NaN (not annotated) are skipped, with their bones.
        color: one RGB colour for everything, or ``None`` for the per-finger colours.
        radius, thickness: dot radius and line width in pixels (``None``: from the hand's size).
        bones: draw the 20 bones as well as the dots.

    Returns:
        ``(H, W, 3)`` uint8 RGB copy with the skeleton drawn.
    """
    out = check_image(image).copy()
    points = np.asarray(keypoints_2d, dtype=np.float64)
    if points.shape != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints_2d must be (21, 2), got {points.shape}")
    thickness = thickness or _default_thickness(out, points)
    radius = radius or thickness + 1
    valid = np.all(np.isfinite(points), axis=1)
    # Sub-pixel positions: OpenCV draws with `shift` fractional bits.
    shift = 4
    fixed = np.round(np.where(valid[:, None], points, 0) * (1 << shift)).astype(np.int64)
    if bones:
        for (parent, child), bone_color in zip(BONES, BONE_COLORS):
            if valid[parent] and valid[child]:
                cv2.line(out, tuple(map(int, fixed[parent])), tuple(map(int, fixed[child])),
                         color or bone_color, thickness, cv2.LINE_AA, shift)
    for i in np.flatnonzero(valid):
        center = tuple(map(int, fixed[i]))
        cv2.circle(out, center, radius << shift, color or KEYPOINT_COLORS[i], -1, cv2.LINE_AA, shift)
        cv2.circle(out, center, radius << shift, (0, 0, 0), 1, cv2.LINE_AA, shift)
    return out


def draw_hands(image: np.ndarray, hands: Sequence[HandPrediction], label: bool = True, box: bool = False,
               thickness: int | None = None, notes: Sequence[str] | None = None, bones: bool = True) -> np.ndarray:
    """Draw predicted hands: finger-coloured skeleton, keypoint dots and a ``"right 0.97"`` label.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        hands: predictions in the image's pixel frame.
        label: write handedness and score above each hand.
        box: also draw each hand's ``box_xyxy``.
        thickness: line width in pixels (``None``: from each hand's size).
        notes: one text per hand appended to its label (e.g. :func:`gesture_notes`).
        bones: draw the skeleton (``False``: labels and boxes only).

    Returns:
        ``(H, W, 3)`` uint8 RGB copy.
    """
    out = check_image(image).copy()
    font_scale = max(0.4, max(out.shape[:2]) / 1400)
    font_thick = max(1, round(font_scale * 2))
    if notes is not None and len(notes) != len(hands):
        raise ValueError(f"{len(hands)} hands but {len(notes)} notes")
    for i, hand in enumerate(hands):
        if bones:
            out = draw_keypoints(out, hand.keypoints_2d, thickness=thickness)
        x1, y1, x2, y2 = (int(round(v)) for v in hand.box_xyxy)
        if box:
            cv2.rectangle(out, (x1, y1), (x2, y2), (255, 255, 255), 1, cv2.LINE_AA)
        if label:
            text = f"{hand.handedness} {hand.score:.2f}" + (f" {notes[i]}" if notes is not None else "")
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, font_thick)
            x = int(np.clip(x1, 0, max(out.shape[1] - tw, 0)))
            y = int(np.clip(y1 - 4, th + 2, out.shape[0] - base))
            out = draw_text(out, text, (x, y - th), font_scale)
    return out


def draw_text(image: np.ndarray, text: str, top_left: tuple[int, int], font_scale: float | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB copy with white ``text`` on a black box whose top-left corner is at
    ``top_left`` px (font size from the image size by default)."""
    out = check_image(image).copy()
    font_scale = font_scale or max(0.4, max(out.shape[:2]) / 1400)
    font_thick = max(1, round(font_scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, font_thick)
    x, y = int(top_left[0]), int(top_left[1]) + th
    cv2.rectangle(out, (x - 1, y - th - 2), (x + tw + 1, y + base), (0, 0, 0), -1)
    cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), font_thick, cv2.LINE_AA)
    return out


def gesture_notes(hands: Sequence[HandPrediction]) -> list[str]:
    """Per hand, ``"<finger count> <gesture label>"`` from its 3D keypoints (:mod:`handpose.gestures`),
    ``"?"`` when they cannot be classified."""
    from handpose.gestures import classify

    notes = []
    for hand in hands:
        try:
            gesture = classify(hand.keypoints_3d)
            notes.append(f"{gesture.count} {gesture.label}")
        except ValueError:
            notes.append("?")
    return notes
