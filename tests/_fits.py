"""Exact hands of a hand model and the fits a perfect fitter would return, for the tests of the
modules that take fitted meshes (pipeline, render, figures, plot3d, losses).

Imported by the tests as ``from _fits import ...`` (``tests/`` is on ``sys.path``).
"""
from __future__ import annotations

import numpy as np

from handpose.camera import project
from handpose.fitting import FitResult
from handpose.handmodel import HandModel, pose_model
from handpose.prediction import HandPrediction

#: ``(3, 3)`` intrinsics of a 640 x 480 photo.
K = np.array([[700.0, 0.0, 319.5], [0.0, 700.0, 239.5], [0.0, 0.0, 1.0]])
#: Few fitting iterations: for tests of the plumbing, not of the fit's accuracy.
FAST = dict(iterations=10, rigid_iterations=4)
_PALM_TO_CAMERA = np.array([0.0, np.pi, 0.0])


def exact_hand(model: HandModel, seed: int, x: float = 0.0) -> tuple[HandPrediction, np.ndarray, np.ndarray]:
    """A hand of ``model`` palm towards the camera, 450 mm away: its exact prediction, pose and
    camera-frame keypoints ``(21, 3)``."""
    rng = np.random.default_rng(seed)
    lower, upper = (v.numpy().astype(np.float64) for v in model.pose_limits())
    pose = 0.5 * (lower + (upper - lower) * rng.uniform(0.3, 0.7, 45))
    posed = pose_model(model, pose=pose, global_orient=_PALM_TO_CAMERA)
    points = posed.keypoints[0] + np.array([x, 0.0, 450.0])
    hand = HandPrediction(project(points, K), points - points[0], model.side, 0.9)
    return hand, pose, points


def exact_fit(model: HandModel, pose: np.ndarray, transl: np.ndarray) -> FitResult:
    """A FitResult holding the exact model output (what a perfect fit returns)."""
    posed = pose_model(model, pose=pose, global_orient=_PALM_TO_CAMERA)
    nan = np.full((1, 21), np.nan)
    return FitResult(vertices=posed.vertices + transl, keypoints=posed.keypoints + transl, faces=posed.faces,
                     pose=pose[None], shape=np.zeros((1, model.num_shape)), global_orient=_PALM_TO_CAMERA[None],
                     transl=transl[None], scale=np.ones(1), residual_3d_mm=nan, residual_2d_px=np.zeros((1, 21)),
                     loss=np.zeros(1), converged=np.ones(1, bool), iterations=np.zeros(1, int), side=model.side)
