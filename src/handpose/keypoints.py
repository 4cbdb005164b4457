"""The 21 hand keypoints: names, bones (and their lengths), fingers, palm sets, colours and index maps.

The course order (also MediaPipe's and the ground truth's) is::

    0 WRIST
    1-4   THUMB  CMC, MCP, IP,  TIP
    5-8   INDEX  MCP, PIP, DIP, TIP
    9-12  MIDDLE MCP, PIP, DIP, TIP
    13-16 RING   MCP, PIP, DIP, TIP
    17-20 PINKY  MCP, PIP, DIP, TIP

Index maps follow one convention: ``X_FROM_Y[i]`` is the index in order ``Y`` of keypoint ``i``
of order ``X``, so ``points_x = points_y[..., X_FROM_Y, :]``.
"""
from __future__ import annotations

import numpy as np

NUM_KEYPOINTS = 21

NAMES: tuple[str, ...] = (
    "WRIST",
    "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP",
    "INDEX_MCP", "INDEX_PIP", "INDEX_DIP", "INDEX_TIP",
    "MIDDLE_MCP", "MIDDLE_PIP", "MIDDLE_DIP", "MIDDLE_TIP",
    "RING_MCP", "RING_PIP", "RING_DIP", "RING_TIP",
    "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP",
)
INDEX: dict[str, int] = {name: i for i, name in enumerate(NAMES)}

WRIST = 0
MIDDLE_MCP = 9

#: Finger name -> the four keypoint indices from the base to the tip.
FINGERS: dict[str, tuple[int, int, int, int]] = {
    "thumb": (1, 2, 3, 4),
    "index": (5, 6, 7, 8),
    "middle": (9, 10, 11, 12),
    "ring": (13, 14, 15, 16),
    "pinky": (17, 18, 19, 20),
}
TIPS: tuple[int, ...] = tuple(chain[-1] for chain in FINGERS.values())

#: The rigid palm: the wrist and the four finger MCPs (the thumb's CMC moves with the thumb). The
#: fit starts from their rotation.
PALM_RIGID: tuple[int, ...] = (WRIST,) + tuple(chain[0] for name, chain in FINGERS.items() if name != "thumb")
#: The palm's outline: the wrist, the thumb's CMC and the four finger MCPs (the slides' sphere-mesh
#: palm is the convex hull of their spheres).
PALM_OUTLINE: tuple[int, ...] = (WRIST,) + tuple(chain[0] for chain in FINGERS.values())

#: Parent of each keypoint (the wrist is the root and has parent -1).
PARENTS: tuple[int, ...] = (-1,) + tuple(
    WRIST if j == 0 else chain[j - 1] for chain in FINGERS.values() for j in range(4)
)

#: The 20 bones as (parent, child) pairs, in child order.
BONES: tuple[tuple[int, int], ...] = tuple((PARENTS[c], c) for c in range(1, NUM_KEYPOINTS))


def bone_lengths(keypoints: np.ndarray) -> np.ndarray:
    """``(..., 21, D)`` keypoints -> ``(..., 20)`` bone lengths in :data:`BONES` order."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    parents, children = np.array(BONES).T
    return np.linalg.norm(keypoints[..., children, :] - keypoints[..., parents, :], axis=-1)


#: One RGB colour (0-255) per finger, and the palm colour for the wrist.
FINGER_COLORS: dict[str, tuple[int, int, int]] = {
    "thumb": (230, 60, 60),
    "index": (240, 170, 30),
    "middle": (60, 190, 70),
    "ring": (40, 140, 230),
    "pinky": (170, 70, 210),
}
PALM_COLOR: tuple[int, int, int] = (200, 200, 200)


def finger_of(index: int) -> str | None:
    """Name of the finger keypoint ``index`` belongs to, or ``None`` for the wrist."""
    if not 0 <= index < NUM_KEYPOINTS:
        raise IndexError(f"keypoint index {index} is outside 0..{NUM_KEYPOINTS - 1}")
    for name, chain in FINGERS.items():
        if index in chain:
            return name
    return None


#: Colour of each keypoint (its finger's colour; the wrist gets the palm colour).
KEYPOINT_COLORS: tuple[tuple[int, int, int], ...] = tuple(
    PALM_COLOR if finger_of(i) is None else FINGER_COLORS[finger_of(i)] for i in range(NUM_KEYPOINTS)
)
#: Colour of each bone (the colour of its child keypoint).
BONE_COLORS: tuple[tuple[int, int, int], ...] = tuple(KEYPOINT_COLORS[c] for _, c in BONES)

# MANO's native joint order is 16 skeleton joints followed by 5 fingertip vertices:
#   0 wrist, 1-3 index, 4-6 middle, 7-9 pinky, 10-12 ring, 13-15 thumb (base to tip joint),
#   16-20 tips of thumb, index, middle, ring, pinky (vertices 745, 317, 444, 556, 673).
COURSE_FROM_MANO: tuple[int, ...] = (
    0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20,
)
MANO_FROM_COURSE: tuple[int, ...] = tuple(COURSE_FROM_MANO.index(i) for i in range(NUM_KEYPOINTS))
MANO_TIP_VERTICES: tuple[int, ...] = (745, 317, 444, 556, 673)

# InterHand2.6M orders each hand tip-first per finger and the wrist last:
#   0-3 thumb tip..base, 4-7 index, 8-11 middle, 12-15 ring, 16-19 pinky, 20 wrist.
COURSE_FROM_INTERHAND: tuple[int, ...] = (20,) + tuple(
    4 * f + (3 - j) for f in range(5) for j in range(4)
)
INTERHAND_FROM_COURSE: tuple[int, ...] = tuple(
    COURSE_FROM_INTERHAND.index(i) for i in range(NUM_KEYPOINTS)
)
