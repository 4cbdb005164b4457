"""A fixed, realistic 3D hand for the theory notebooks and tests.

The hand is an adult right hand, relaxed and open, in millimetres, in camera axes
(x right, y down, z away from the camera), wrist at the origin, palm facing the camera and fingers
pointing up (towards -y), slightly flexed towards the camera (-z). Bone lengths are those of an
average adult hand (palm wrist -> middle MCP 90 mm; middle finger phalanges 45, 28, 21 mm).
"""
from __future__ import annotations

from typing import Literal

import numpy as np

# (21, 3) mm, course order (handpose.keypoints.NAMES).
_RIGHT_HAND_MM: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 0.0),  # WRIST
    (19.0, -24.0, -6.0), (43.3, -57.1, -21.9), (54.4, -84.2, -34.7), (59.8, -108.4, -45.4),
    (24.0, -86.0, 0.0), (18.6, -124.7, -8.3), (15.6, -145.9, -19.2), (13.4, -161.7, -31.2),
    (4.0, -90.0, 0.0), (4.0, -134.0, -9.4), (4.0, -159.0, -22.1), (4.0, -175.7, -34.7),
    (-14.0, -84.0, 3.0), (-9.1, -124.3, -7.9), (-6.3, -146.7, -22.6), (-4.5, -161.5, -37.4),
    (-30.0, -73.0, 6.0), (-21.9, -103.3, -4.2), (-18.0, -117.8, -15.9), (-15.0, -129.0, -29.7),
)


def canonical_hand_keypoints(side: Literal["right", "left"] = "right") -> np.ndarray:
    """The 21 keypoints of the canonical open hand, ``(21, 3)`` mm, wrist at the origin.

    The left hand is the mirror image of the right one through the plane x = 0.
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    points = np.array(_RIGHT_HAND_MM, dtype=np.float64)
    if side == "left":
        points[:, 0] *= -1.0
    return points


def hand_in_front_of_camera(
    distance_mm: float = 500.0, side: Literal["right", "left"] = "right"
) -> np.ndarray:
    """The canonical hand centred in front of a camera, ``(21, 3)`` mm in the camera frame.

    The hand's bounding-box centre is put on the optical axis at depth ``distance_mm``.
    """
    if not np.isfinite(distance_mm) or distance_mm <= 0:
        raise ValueError(f"distance_mm must be positive, got {distance_mm}")
    points = canonical_hand_keypoints(side)
    centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
    return points - centre + np.array([0.0, 0.0, distance_mm])
