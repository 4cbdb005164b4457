"""The one output type of every estimator: :class:`HandPrediction`.

Its JSON form is a public interface (``predictions.json``): keep the keys stable.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from handpose.keypoints import NUM_KEYPOINTS

Handedness = Literal["left", "right"]


@dataclass
class HandPrediction:
    """One detected hand.

    Attributes:
        keypoints_2d: ``(21, 2)`` image pixels (x right, y down), course order.
        keypoints_3d: ``(21, 3)`` millimetres, root-relative (wrist at the origin unless stated).
        handedness: ``"left"`` or ``"right"`` hand of the person in an ordinary (non-mirrored) photo.
        score: detector confidence in ``[0, 1]``.
        box_xyxy: ``(4,)`` tight box ``[x1, y1, x2, y2]`` around the 2D keypoints, pixels.
        source: which model / detector path produced it (e.g. ``"mediapipe:full"``).
        vertices: optional ``(V, 3)`` mesh vertices in mm (camera frame or root-relative, see source).
        faces: optional ``(F, 3)`` triangle indices into ``vertices``.
    """

    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray
    handedness: Handedness
    score: float
    box_xyxy: np.ndarray | None = None
    source: str = ""
    vertices: np.ndarray | None = None
    faces: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints_2d = np.asarray(self.keypoints_2d, dtype=np.float64)
        self.keypoints_3d = np.asarray(self.keypoints_3d, dtype=np.float64)
        if self.keypoints_2d.shape != (NUM_KEYPOINTS, 2):
            raise ValueError(f"keypoints_2d must be (21, 2), got {self.keypoints_2d.shape}")
        if self.keypoints_3d.shape != (NUM_KEYPOINTS, 3):
            raise ValueError(f"keypoints_3d must be (21, 3), got {self.keypoints_3d.shape}")
        if self.handedness not in ("left", "right"):
            raise ValueError(f"handedness must be 'left' or 'right', got {self.handedness!r}")
        if self.box_xyxy is None:
            self.box_xyxy = np.concatenate([self.keypoints_2d.min(0), self.keypoints_2d.max(0)])
        self.box_xyxy = np.asarray(self.box_xyxy, dtype=np.float64).reshape(4)
        self.score = float(self.score)

    def to_json(self) -> dict[str, Any]:
        """The ``predictions.json`` form of this hand (lists of floats, course order)."""
        return {
            "keypoints_2d": np.round(self.keypoints_2d, 3).tolist(),
            "keypoints_3d": np.round(self.keypoints_3d, 3).tolist(),
            "handedness": self.handedness,
            "score": round(self.score, 4),
            "box_xyxy": np.round(self.box_xyxy, 2).tolist(),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "HandPrediction":
        """Inverse of :meth:`to_json`."""
        return cls(
            keypoints_2d=np.asarray(data["keypoints_2d"]),
            keypoints_3d=np.asarray(data["keypoints_3d"]),
            handedness=data["handedness"],
            score=data["score"],
            box_xyxy=np.asarray(data["box_xyxy"]) if data.get("box_xyxy") is not None else None,
            source=data.get("source", ""),
        )


#: A function from one ``(H, W, 3)`` uint8 RGB image to its hands: an estimator's bound
#: ``predict`` (:class:`handpose.models.Estimator`) or any fake with the same signature.
Predictor = Callable[[np.ndarray], list[HandPrediction]]
