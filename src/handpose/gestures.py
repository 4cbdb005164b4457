"""Fingers and gestures from 3D hand keypoints: extended or curled, finger count, named gesture.

Everything is computed from angles between bones and ratios of distances, which no rotation,
mirror image (a left hand is a mirrored right hand) or scale changes: a palm seen edge-on, from
behind or upside down counts the same, and MediaPipe's world landmarks, a fitted model's keypoints
or camera-frame ground truth can be given alike (any unit).

Per finger (index to pinky), the *curl* is the sum of the bends at its three joints::

    curl = angle(MCP - WRIST, PIP - MCP) + angle(PIP - MCP, DIP - PIP) + angle(DIP - PIP, TIP - DIP)

about 30 degrees for a straight finger of the hand model (the knuckles do not lie on the wrist's
rays; MediaPipe's world landmarks give 30-90), about 260 for a fist. A finger is *extended* below
:data:`EXTENDED_MAX_DEG`, *curled* above :data:`CURLED_MIN_DEG` and *bent* in between. A relaxed
hand (every joint a little flexed) has no defined answer: it falls on either side. The thumb is extended when its MCP
and IP joints are straight (``bend(MCP) + bend(IP) < THUMB_BEND_MAX_DEG``) and its tip stands
away from the index knuckle (``|TIP - INDEX_MCP| > THUMB_REACH_MIN |MIDDLE_MCP - WRIST|``).

Named gestures come from the pattern of extended fingers (thumb, index, middle, ring, pinky) when
no finger of the four is *bent*; a thumb tip touching the index tip
(``|THUMB_TIP - INDEX_TIP| < PINCH_MAX |MIDDLE_MCP - WRIST|``) is ``"ok"`` (OK sign or pinch) first,
unless all four fingers are curled (in a fist the thumb rests on the index finger).

The thresholds suit both the open hand model's keypoints and MediaPipe's world landmarks, which
bend straight fingers more and shorten the thumb's reach (tuned on the rendered clip of
:mod:`handpose.demo_clip` and the demo set, ``bench/bench_gestures.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from handpose.keypoints import FINGERS, MIDDLE_MCP, NUM_KEYPOINTS, WRIST

FINGER_NAMES: tuple[str, ...] = tuple(FINGERS)
#: A finger (index to pinky) with a smaller curl is extended, degrees.
EXTENDED_MAX_DEG = 100.0
#: A finger (index to pinky) with a larger curl is curled, degrees.
CURLED_MIN_DEG = 120.0
#: The thumb's MCP + IP bends must stay below this for it to be extended, degrees.
THUMB_BEND_MAX_DEG = 65.0
#: The thumb tip's least distance from the index knuckle, in palm lengths, for it to be extended.
THUMB_REACH_MIN = 0.55
#: Thumb and index tips closer than this, in palm lengths, touch (OK sign, pinch).
PINCH_MAX = 0.45

#: Named gestures, with their display labels.
GESTURE_LABELS: dict[str, str] = {
    "open_palm": "open palm", "fist": "fist", "point": "point", "victory": "victory/two", "three": "three",
    "four": "four", "thumbs_up": "thumbs-up", "ok": "OK/pinch", "call": "call", "rock": "rock", "other": "other",
}
# (thumb, index, middle, ring, pinky) extended -> gesture; None: the thumb may be either.
_PATTERNS: tuple[tuple[tuple[bool | None, bool, bool, bool, bool], str], ...] = (
    ((True, True, True, True, True), "open_palm"),
    ((False, False, False, False, False), "fist"),
    ((False, True, False, False, False), "point"),
    ((False, True, True, False, False), "victory"),
    ((True, True, True, False, False), "three"),
    ((False, True, True, True, False), "three"),
    ((False, True, True, True, True), "four"),
    ((True, False, False, False, False), "thumbs_up"),
    ((True, False, False, False, True), "call"),
    ((None, True, False, False, True), "rock"),
)


@dataclass(frozen=True)
class HandGesture:
    """Fingers and gesture of one hand.

    Attributes:
        extended: per finger (thumb, index, middle, ring, pinky), extended or not.
        bent: per finger, neither clearly extended nor curled (the thumb is never bent).
        curl_deg: per finger, the summed joint bends, degrees (thumb: MCP and IP only).
        count: number of extended fingers, 0-5.
        gesture: a key of :data:`GESTURE_LABELS` (``"other"`` when none fits).
        pinch_ratio: thumb tip to index tip distance, in palm lengths.
    """

    extended: tuple[bool, bool, bool, bool, bool]
    bent: tuple[bool, bool, bool, bool, bool]
    curl_deg: tuple[float, float, float, float, float]
    count: int
    gesture: str
    pinch_ratio: float

    @property
    def label(self) -> str:
        """Display label, e.g. ``"victory/two"``."""
        return GESTURE_LABELS[self.gesture]

    def to_json(self) -> dict[str, Any]:
        """``{"gesture": name, "fingers": count}``: the fields added to a hand's JSON."""
        return {"gesture": self.gesture, "fingers": self.count}


def _check(keypoints_3d: np.ndarray) -> np.ndarray:
    points = np.asarray(keypoints_3d, dtype=np.float64)
    if points.ndim < 2 or points.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints_3d must be (..., 21, 3), got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("keypoints_3d has NaN or infinite values: gestures need all 21 keypoints")
    return points


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between vectors ``(..., 3)``, degrees: ``atan2(|a x b|, a . b)`` (exact near 0 and 180)."""
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), (a * b).sum(-1)))


def finger_curls(keypoints_3d: np.ndarray) -> np.ndarray:
    """Curl of each finger, ``(..., 5)`` degrees (thumb, index, middle, ring, pinky).

    Index to pinky: the bends at MCP, PIP and DIP summed (module docstring). Thumb: the bends at
    its MCP and IP (its CMC bend is large even when it is straight).

    Args:
        keypoints_3d: ``(..., 21, 3)`` any unit, course order, any rotation, either hand.
    """
    k = _check(keypoints_3d)
    curls = []
    for name, (a, b, c, d) in FINGERS.items():
        bones = [k[..., b, :] - k[..., a, :], k[..., c, :] - k[..., b, :], k[..., d, :] - k[..., c, :]]
        if name == "thumb":
            curls.append(_angle_deg(bones[0], bones[1]) + _angle_deg(bones[1], bones[2]))
        else:
            bones.insert(0, k[..., a, :] - k[..., WRIST, :])
            curls.append(sum(_angle_deg(bones[i], bones[i + 1]) for i in range(3)))
    return np.stack(curls, axis=-1)


def palm_length(keypoints_3d: np.ndarray) -> np.ndarray:
    """``(...,)`` wrist to middle knuckle distance, the unit of the distance ratios."""
    k = _check(keypoints_3d)
    return np.linalg.norm(k[..., MIDDLE_MCP, :] - k[..., WRIST, :], axis=-1)


def classify(keypoints_3d: np.ndarray) -> HandGesture:
    """Fingers, count and gesture of one hand.

    Args:
        keypoints_3d: ``(21, 3)`` any unit (mm, m), course order, any rotation, left or right.

    Returns:
        :class:`HandGesture`.

    Raises:
        ValueError: wrong shape, NaN, or a degenerate hand (wrist on the middle knuckle).
    """
    k = _check(keypoints_3d)
    if k.ndim != 2:
        raise ValueError(f"classify takes one hand (21, 3); got {k.shape}: use classify_many")
    palm = float(palm_length(k))
    if palm <= 1e-9:
        raise ValueError("degenerate hand: the wrist and the middle knuckle coincide")
    curls = finger_curls(k)
    thumb_reach = np.linalg.norm(k[4] - k[5]) / palm
    thumb = bool(curls[0] < THUMB_BEND_MAX_DEG and thumb_reach > THUMB_REACH_MIN)
    extended = (thumb,) + tuple(bool(c < EXTENDED_MAX_DEG) for c in curls[1:])
    bent = (False,) + tuple(bool(EXTENDED_MAX_DEG <= c <= CURLED_MIN_DEG) for c in curls[1:])
    pinch = float(np.linalg.norm(k[4] - k[8]) / palm)
    if pinch < PINCH_MAX and not all(c > CURLED_MIN_DEG for c in curls[1:]):
        gesture = "ok"
    elif any(bent):
        gesture = "other"
    else:
        gesture = next((name for pattern, name in _PATTERNS
                        if all(p is None or p == e for p, e in zip(pattern, extended))), "other")
    curl = tuple(float(c) for c in curls)
    return HandGesture(extended, bent, curl, int(sum(extended)), gesture, pinch)  # type: ignore[arg-type]


def classify_many(keypoints_3d: np.ndarray) -> list[HandGesture]:
    """:func:`classify` for each hand of ``(N, 21, 3)``."""
    k = _check(keypoints_3d)
    if k.ndim != 3:
        raise ValueError(f"classify_many takes (N, 21, 3), got {k.shape}")
    return [classify(hand) for hand in k]


def gesture_fields(keypoints_3d: np.ndarray) -> dict[str, Any]:
    """``{"gesture": name, "fingers": count}`` of a hand for JSON outputs; both ``None`` when its
    keypoints cannot be classified (NaN, degenerate)."""
    try:
        return classify(keypoints_3d).to_json()
    except ValueError:
        return {"gesture": None, "fingers": None}
