"""Fitting an articulated hand model to 2D and/or 3D keypoints (the slides' objective).

For each hand ``b`` the fit minimises, over pose, shape, global orientation and translation,

    L = L_2D + a_3D L_3D + L_reg

- ``L_2D = sum_j c_j rho(|pi(K, X_j) - x_j|) / sum_j c_j``: robust reprojection error (pixels)
  under the perspective camera ``pi`` (:func:`handpose.camera.project`), with the Geman-McClure
  penalty ``rho(r) = sigma^2 r^2 / (r^2 + sigma^2)`` (about ``r^2`` for ``r << sigma``, bounded
  by ``sigma^2`` for outliers).
- ``L_3D = k^2 min_{s, t} sum_j c_j |s X_j + t - Y_j|^2 / sum_j c_j``: the model keypoints
  ``X`` against the 3D keypoints ``Y`` (root-relative, e.g. MediaPipe's world landmarks in mm) up
  to a translation and a scale, both in closed form (weighted least squares without rotation);
  measured in ``Y``'s frame so that shrinking the hand cannot lower it, and brought to mm by the
  constant ``k = size(rest hand) / size(Y)``.
- ``L_reg = a_pose prior(pose) + a_shape |beta|^2 / num_beta + a_prop |gamma|^2 + a_lim sum_k d_k^2``
  with ``beta`` the overall shape components, ``gamma`` the proportions (the last
  ``model.num_proportions`` shape components, each a local change the keypoints see on its own,
  so each pays on its own) and ``d_k`` how far pose component ``k`` is outside the model's
  ``pose_limits`` (radians).

Initialisation, so that the optimiser does not start in a twisted local minimum: the rest hand's
palm (wrist and the four finger MCPs) is aligned rigidly first: rotation by Kabsch against the
3D palm when 3D keypoints are given (else by PnP on the 2D palm), translation in closed form from
the 2D palm (linear least squares of the pinhole equations, i.e. depth from the ratio of the 3D
palm size to the 2D palm size and the focal length). Then a few rigid iterations, then all
parameters with Adam from the middle of the joint ranges (a half-closed hand, from which both
open and fully curled fingers are reached without passing through hyper-extension); a model's
proportion components (the open hand's bone lengths and joint offsets) join for the second half
of these iterations, to refine a found pose rather than stand in for one (torch, batched over
hands: each hand's parameters and loss are independent, so a batched fit equals the hands fitted
one by one).

The optimisation evaluates the model's keypoints only (``with_vertices=False``); the mesh is
skinned once, for the result. Arrays in and out are numpy; torch stays inside.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import cv2
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from handpose.camera import project
from handpose.handmodel import HandModel
from handpose.keypoints import NUM_KEYPOINTS
from handpose.prediction import HandPrediction

#: Palm keypoints used by the rigid initialisation: the wrist and the index..pinky MCPs.
PALM: tuple[int, ...] = (0, 5, 9, 13, 17)


@dataclass(frozen=True)
class FitWeights:
    """Weights of the fitting objective (see the module docstring).

    Attributes:
        keypoints_3d: ``a_3D``, weight of ``L_3D`` (mm^2) relative to ``L_2D`` (px^2); low by
            default because estimated 3D keypoints (MediaPipe's) are less exact than their 2D.
        pose_prior: ``a_pose``, weight of ``model.pose_prior(pose)``.
        shape_prior: ``a_shape``, weight of the mean squared overall shape coefficient.
        proportion_prior: ``a_prop``, weight of the sum of squared proportion coefficients: a
            Gaussian prior of unit variance on each against 2D noise of ``sigma`` pixels is
            ``sigma^2 / 21``, about 0.2 for MediaPipe on photos.
        joint_limits: ``a_lim``, weight of the squared limit violations (rad^2).
        robust_scale_px: ``sigma`` of the Geman-McClure penalty, pixels.
    """

    keypoints_3d: float = 0.1
    pose_prior: float = 1.0
    shape_prior: float = 1.0
    proportion_prior: float = 0.2
    joint_limits: float = 1e4
    robust_scale_px: float = 30.0

    def __post_init__(self) -> None:
        for name in ("keypoints_3d", "pose_prior", "shape_prior", "proportion_prior", "joint_limits"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"FitWeights.{name} must be finite and >= 0, got {getattr(self, name)}")
        if not (math.isfinite(self.robust_scale_px) and self.robust_scale_px > 0):
            raise ValueError(f"FitWeights.robust_scale_px must be > 0, got {self.robust_scale_px}")


@dataclass
class FitResult:
    """Fitted hands (numpy, float64).

    Attributes:
        vertices: ``(B, V, 3)`` mm; camera frame when fitted to 2D keypoints (with ``K``), else
            in the frame of the 3D keypoints (``(X - t) / s``, the model mapped onto them).
        keypoints: ``(B, 21, 3)`` mm, same frame as ``vertices``, course order.
        faces: ``(F, 3)`` triangle indices.
        pose: ``(B, num_pose)`` axis-angle articulation.
        shape: ``(B, num_shape)`` shape coefficients.
        global_orient: ``(B, 3)`` axis-angle rotation about the wrist.
        transl: ``(B, 3)`` mm, camera-frame translation (zero for 3D-only fits).
        scale: ``(B,)`` ``s`` of the 3D alignment, model mm per unit of the 3D keypoints
            (1 without 3D keypoints).
        residual_3d_mm: ``(B, 21)`` ``|X_j - (s Y_j + t)|`` after the fit, NaN without 3D input.
        residual_2d_px: ``(B, 21)`` ``|pi(K, X_j) - x_j|``, NaN without 2D input.
        loss: ``(B,)`` final objective.
        converged: ``(B,)`` the objective stopped decreasing before the iteration budget ran out.
        iterations: ``(B,)`` optimiser steps taken.
        side: the model's side (``"right"`` / ``"left"``).
    """

    vertices: np.ndarray
    keypoints: np.ndarray
    faces: np.ndarray
    pose: np.ndarray
    shape: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    scale: np.ndarray
    residual_3d_mm: np.ndarray
    residual_2d_px: np.ndarray
    loss: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    side: str = ""
    extras: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.vertices)


def default_intrinsics(width: int, height: int, focal_35mm: float | None = None) -> np.ndarray:
    """Pinhole ``K (3, 3)`` for a photo without calibration, principal point at the centre.

    ``f = 1.2 max(W, H)`` pixels by default: a 45 degree field of view across the long side, between
    a phone's main camera (about 0.8 max(W, H), 26 mm equivalent) and the tighter framing of
    cropped or zoomed hand photos. With ``focal_35mm`` (EXIF ``FocalLengthIn35mmFilm``), the
    35 mm-equivalent focal length maps the 43.27 mm full-frame diagonal to the image diagonal:
    ``f = focal_35mm sqrt(W^2 + H^2) / 43.27``. The centre is ``((W - 1) / 2, (H - 1) / 2)``
    (integer pixel coordinates are pixel centres).
    """
    if not (int(width) == width > 0 and int(height) == height > 0):
        raise ValueError(f"width and height must be positive integers, got {width} x {height}")
    if focal_35mm is None:
        f = 1.2 * max(width, height)
    elif math.isfinite(focal_35mm) and focal_35mm > 0:
        f = focal_35mm * math.hypot(width, height) / 43.27
    else:
        raise ValueError(f"focal_35mm must be > 0, got {focal_35mm}")
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------------------------------
# Objective terms (pure torch functions)
# ---------------------------------------------------------------------------------------------
def geman_mcclure(sq_residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """``rho = sigma^2 r^2 / (r^2 + sigma^2)`` of squared residuals ``r^2`` (any shape)."""
    return sigma**2 * sq_residual / (sq_residual + sigma**2)


def similarity_align(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and translation (no rotation) mapping ``source`` onto ``target``, weighted LSQ.

    ``min_{s, t} sum_j w_j |target_j - (s source_j + t)|^2`` has ``t = mean_w(target) - s
    mean_w(source)`` and ``s = sum_j w_j <S_j, T_j> / sum_j w_j |S_j|^2`` on centred points.

    Args:
        source: ``(B, J, 3)``; target: ``(B, J, 3)``; weights: ``(B, J)`` >= 0.
    Returns:
        ``s (B,)``, ``t (B, 3)``.
    """
    w = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    mu_s = (w[..., None] * source).sum(1)
    mu_t = (w[..., None] * target).sum(1)
    sc, tc = source - mu_s[:, None], target - mu_t[:, None]
    s = (w * (sc * tc).sum(-1)).sum(-1) / (w * (sc * sc).sum(-1)).sum(-1).clamp_min(1e-12)
    return s, mu_t - s[:, None] * mu_s


def limit_violation(pose: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``(B,)`` ``sum_k (max(lower_k - p_k, 0)^2 + max(p_k - upper_k, 0)^2)`` of ``(B, P)`` poses."""
    return ((lower - pose).clamp_min(0) ** 2 + (pose - upper).clamp_min(0) ** 2).sum(-1)


# ---------------------------------------------------------------------------------------------
# Initialisation (numpy, per hand)
# ---------------------------------------------------------------------------------------------
def kabsch(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rotation ``R (3, 3)`` minimising ``sum_j w_j |R (S_j - mu_S) - (T_j - mu_T)|^2``.

    ``H = sum_j w_j (S_j - mu_S)(T_j - mu_T)^T = U Sigma V^T``, ``R = V diag(1, 1, det(V U^T)) U^T``.
    """
    w = weights / max(weights.sum(), 1e-12)
    sc = source - w @ source
    tc = target - w @ target
    u, _, vt = np.linalg.svd((sc * w[:, None]).T @ tc)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def translation_from_2d(points: np.ndarray, uv: np.ndarray, K: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Translation ``t (3,)`` making ``project(points + t, K)`` match ``uv`` in least squares.

    From ``u = fx (X + tx) / (Z + tz) + cx`` (no skew): ``fx tx - (u - cx) tz = (u - cx) Z - fx X``
    and the same in ``v``: linear in ``t`` (the depth comes from the 3D vs 2D size of the points).

    Args:
        points: ``(J, 3)`` mm; uv: ``(J, 2)`` px; K: ``(3, 3)``; weights: ``(J,)``.
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    du, dv = uv[:, 0] - cx, uv[:, 1] - cy
    zeros = np.zeros_like(du)
    a = np.concatenate([np.stack([np.full_like(du, fx), zeros, -du], 1), np.stack([zeros, np.full_like(dv, fy), -dv], 1)])
    b = np.concatenate([du * points[:, 2] - fx * points[:, 0], dv * points[:, 2] - fy * points[:, 1]])
    sw = np.sqrt(np.concatenate([weights, weights]))
    t, *_ = np.linalg.lstsq(a * sw[:, None], b * sw, rcond=None)
    return t


def rotation_from_2d(points: np.ndarray, uv: np.ndarray, K: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rotation ``R (3, 3)`` of the rigid ``points (J, 3)`` seen at ``uv (J, 2)``: OpenCV's SQPnP on
    the joints with weight > 0 (at least 3)."""
    used = weights > 0
    ok, rvec, _ = cv2.solvePnP(points[used].astype(np.float64), uv[used].astype(np.float64),
                               K.astype(np.float64), None, flags=cv2.SOLVEPNP_SQPNP)
    return cv2.Rodrigues(rvec)[0] if ok else np.eye(3)


# ---------------------------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------------------------
def _as_batch(value: np.ndarray | None, width: int, name: str) -> np.ndarray | None:
    if value is None:
        return None
    value = np.asarray(value, dtype=np.float64)
    if value.ndim == 2:
        value = value[None]
    if value.ndim != 3 or value.shape[1:] != (NUM_KEYPOINTS, width):
        raise ValueError(f"{name} must be (B, 21, {width}) or (21, {width}), got {value.shape}")
    return value


def _check_inputs(
    keypoints_2d: np.ndarray | None,
    keypoints_3d: np.ndarray | None,
    K: np.ndarray | None,
    confidence: np.ndarray | None,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray]:
    kp2 = _as_batch(keypoints_2d, 2, "keypoints_2d")
    kp3 = _as_batch(keypoints_3d, 3, "keypoints_3d")
    if kp2 is None and kp3 is None:
        raise ValueError("give keypoints_2d (with K), keypoints_3d, or both")
    if kp2 is not None and K is None:
        raise ValueError("keypoints_2d need the intrinsics K (see default_intrinsics)")
    batch = {len(a) for a in (kp2, kp3) if a is not None}
    if len(batch) > 1:
        raise ValueError(f"keypoints_2d and keypoints_3d disagree on the number of hands: {sorted(batch)}")
    b = batch.pop()
    if K is not None:
        K = np.asarray(K, dtype=np.float64)
        K = np.broadcast_to(K, (b, 3, 3)).copy() if K.shape == (3, 3) else K
        if K.shape != (b, 3, 3) or not np.all(np.isfinite(K)) or np.any(K[:, [0, 1], [0, 1]] <= 0):
            raise ValueError(f"K must be (3, 3) or ({b}, 3, 3) with positive focal lengths, got {K.shape}")
    conf = np.ones((b, NUM_KEYPOINTS)) if confidence is None else np.asarray(confidence, dtype=np.float64)
    conf = np.broadcast_to(conf, (b, NUM_KEYPOINTS)).copy() if conf.shape == (NUM_KEYPOINTS,) else conf
    if conf.shape != (b, NUM_KEYPOINTS) or not np.all(np.isfinite(conf)) or np.any(conf < 0):
        raise ValueError(f"confidence must be ({b}, 21) or (21,), finite and >= 0, got {conf.shape}")
    if np.any((conf > 0).sum(1) < 3):
        raise ValueError("each hand needs at least 3 keypoints with confidence > 0")
    for name, kp in (("keypoints_2d", kp2), ("keypoints_3d", kp3)):
        if kp is not None:
            bad = ~np.isfinite(kp).all(-1) & (conf > 0)
            if bad.any():
                raise ValueError(f"{name} has NaN/inf at joints with confidence > 0: {np.argwhere(bad).tolist()}")
    # Joints without confidence are ignored: give them finite placeholders.
    kp2 = None if kp2 is None else np.where(conf[..., None] > 0, kp2, 0.0)
    kp3 = None if kp3 is None else np.where(conf[..., None] > 0, kp3, 0.0)
    return kp2, kp3, K, conf


def _initialise(
    rest: np.ndarray,
    kp2: np.ndarray | None,
    kp3: np.ndarray | None,
    K: np.ndarray | None,
    conf: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Rigid palm alignment of the rest keypoints ``(21, 3)`` to each hand.

    Returns ``global_orient (C, B, 3)`` and ``transl (C, B, 3)`` for ``C`` candidate starts: one
    with 3D keypoints (Kabsch), two from 2D keypoints only (PnP and its mirror ambiguity: a
    near-planar palm seen at ``R`` looks almost the same at ``D R S``, with ``D`` the reflection
    ``z -> -z`` of the camera and ``S`` the reflection through the palm plane).
    """
    batch = len(conf)
    candidates = 1 if kp3 is not None else 2
    orient = np.zeros((candidates, batch, 3))
    transl = np.zeros((candidates, batch, 3))
    # Palm plane normal of the rest hand (smallest principal axis), for the mirror candidate.
    palm_rest = rest[list(PALM)] - rest[list(PALM)].mean(0)
    normal = np.linalg.svd(palm_rest)[2][-1]
    mirror_palm = np.eye(3) - 2.0 * np.outer(normal, normal)
    flip_z = np.diag([1.0, 1.0, -1.0])
    for b in range(batch):
        idx = list(PALM) if (conf[b, list(PALM)] > 0).sum() >= 3 else list(range(NUM_KEYPOINTS))
        w = conf[b, idx]
        if kp3 is not None:
            rotations = [kabsch(rest[idx], kp3[b, idx], w)]
        else:
            r = rotation_from_2d(rest[idx], kp2[b, idx], K[b], w)
            rotations = [r, flip_z @ r @ mirror_palm]
        for c, R in enumerate(rotations):
            orient[c, b] = Rotation.from_matrix(R).as_rotvec()
            if kp2 is not None:
                rotated = rest @ R.T
                transl[c, b] = translation_from_2d(rotated[idx], kp2[b, idx], K[b], w)
                if transl[c, b, 2] + rotated[:, 2].min() <= 1.0:  # degenerate: put the hand in front
                    transl[c, b, 2] = 0.2 * K[b, 0, 0] - rotated[:, 2].min()
    return orient, transl


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    """Run the block with ``threads`` torch intra-op threads (``None``: unchanged)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _rms_size(points: torch.Tensor, w_norm: torch.Tensor) -> torch.Tensor:
    """``(B,)`` weighted RMS distance of ``(B, J, 3)`` points to their weighted centroid."""
    centre = (w_norm[..., None] * points).sum(1, keepdim=True)
    return torch.sqrt((w_norm * ((points - centre) ** 2).sum(-1)).sum(-1).clamp_min(1e-12))


def fit_hand(
    model: HandModel,
    keypoints_2d: np.ndarray | None = None,
    keypoints_3d: np.ndarray | None = None,
    K: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    weights: FitWeights = FitWeights(),
    iterations: int = 150,
    rigid_iterations: int = 30,
    learning_rate: float = 0.1,
    tolerance: float = 1e-3,
    threads: int | None = 1,
) -> FitResult:
    """Fit ``model`` to the keypoints of ``B`` hands (see the module docstring).

    Args:
        model: a :class:`~handpose.handmodel.HandModel` (one side; all hands use it).
        keypoints_2d: ``(B, 21, 2)`` or ``(21, 2)`` pixels, course order; needs ``K``.
        keypoints_3d: ``(B, 21, 3)`` or ``(21, 3)``, root-relative (mm, or any unit: the scale
            is fitted).
        K: ``(3, 3)`` shared or ``(B, 3, 3)`` per-hand intrinsics.
        confidence: ``(B, 21)`` or ``(21,)`` joint weights ``c_j >= 0`` (0 ignores a joint, whose
            keypoints may then be NaN); default all ones.
        weights: the objective's weights.
        iterations: Adam steps on all parameters (after the rigid ones).
        rigid_iterations: Adam steps on orientation and translation only, palm joints only.
        learning_rate: Adam's initial step (cosine decay to 1 %), in radians for the angles, in
            about one pixel sideways and 1 % of the depth for the translation.
        tolerance: a hand has converged when its loss fell by less than
            ``tolerance * loss + 1e-6`` over the last 20 steps; it is then frozen.
        threads: torch threads during the fit (restored afterwards); ``None`` keeps torch's
            setting. The loop evaluates keypoints only, ``(B, 21, 3)`` tensors far too small to
            split: one thread is as fast on an idle CPU and several times faster on a busy one.

    Returns:
        :class:`FitResult` with ``B`` hands. With 2D keypoints only, both starts of the palm's
        mirror ambiguity are fitted and the lower loss is kept.
    """
    kp2, kp3, K, conf = _check_inputs(keypoints_2d, keypoints_3d, K, confidence)
    if iterations < 0 or rigid_iterations < 0:
        raise ValueError("iterations and rigid_iterations must be >= 0")
    if threads is not None and not (int(threads) == threads >= 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads}")
    with torch.no_grad():
        rest = model(with_vertices=False).keypoints  # (1, 21, 3): rest pose, mean shape
    orient0, transl0 = _initialise(rest[0].double().numpy(), kp2, kp3, K, conf)
    starts = len(orient0)
    tile = lambda a: None if a is None else np.concatenate([a] * starts)  # noqa: E731
    with _torch_threads(threads):
        fit = _optimise(model, tile(kp2), tile(kp3), tile(K), tile(conf), orient0.reshape(-1, 3),
                        transl0.reshape(-1, 3), weights, iterations, rigid_iterations, learning_rate, tolerance)
    if starts == 1:
        return fit
    batch = len(conf)
    best = np.argmin(fit.loss.reshape(starts, batch), axis=0) * batch + np.arange(batch)
    return FitResult(**{name: value[best] if isinstance(value, np.ndarray) and name != "faces" else value
                        for name, value in vars(fit).items()})


def _optimise(
    model: HandModel,
    kp2: np.ndarray | None,
    kp3: np.ndarray | None,
    K: np.ndarray | None,
    conf: np.ndarray,
    orient0: np.ndarray,
    transl0: np.ndarray,
    weights: FitWeights,
    iterations: int,
    rigid_iterations: int,
    learning_rate: float,
    tolerance: float,
) -> FitResult:
    """Adam from the rigid start ``orient0, transl0 (B, 3)``: palm-only rigid steps, then all."""
    batch = len(conf)
    use_2d = kp2 is not None
    with torch.no_grad():
        rest = model(with_vertices=False).keypoints  # (1, 21, 3)
    dtype = rest.dtype
    as_t = lambda a: None if a is None else torch.as_tensor(a, dtype=dtype)  # noqa: E731
    x2d, y3d, Kt, c = as_t(kp2), as_t(kp3), as_t(K), as_t(conf)
    lower, upper = (v.to(dtype) for v in model.pose_limits())
    # Translation is optimised in units of z0 / f (about one pixel sideways) and 1 % of the
    # depth: x = x0 + u z0 / f, y = y0 + v z0 / f, z = z0 (1 + d / 100).
    transl0_t = as_t(transl0)
    if use_2d:
        step_xy = transl0_t[:, 2] / Kt[:, 0, 0]
        transl_unit = torch.stack([step_xy, step_xy, transl0_t[:, 2] / 100.0], -1)
    else:
        transl_unit = torch.zeros(batch, 3, dtype=dtype)  # 3D only: the alignment absorbs it
    # The proportions are masked out (no effect, no gradient) for the first half of the iterations:
    # they refine a fitted pose instead of standing in for one (Adam moves every coefficient by
    # about its step from the first iteration on, and many weakly determined proportions would
    # drift while the pose is still far off, trading the hand's size for its depth).
    overall = model.num_shape - model.num_proportions
    shape_mask = torch.ones(model.num_shape, dtype=dtype)
    shape_mask[overall:] = 0.0
    params = {
        "pose": ((lower + upper) / 2).expand(batch, -1).clone().requires_grad_(True),
        "shape": torch.zeros(batch, model.num_shape, dtype=dtype, requires_grad=True),
        "global_orient": as_t(orient0).clone().requires_grad_(True),
        "transl_step": torch.zeros(batch, 3, dtype=dtype, requires_grad=True),
    }
    palm_mask = torch.zeros(NUM_KEYPOINTS, dtype=dtype)
    palm_mask[list(PALM)] = 1.0
    if kp3 is not None:  # mm of the rest hand per unit of the 3D keypoints, (B, 1)
        c_norm = c / c.sum(-1, keepdim=True)
        size_ratio = (_rms_size(rest.expand(batch, -1, -1), c_norm) / _rms_size(y3d, c_norm))[:, None]

    def evaluate(joint_mask: torch.Tensor | None = None, with_vertices: bool = False):
        transl = transl0_t + params["transl_step"] * transl_unit
        shape = params["shape"] * shape_mask
        out = model(pose=params["pose"], shape=shape, global_orient=params["global_orient"],
                    transl=transl, with_vertices=with_vertices)
        w = c if joint_mask is None else c * joint_mask
        w_norm = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
        loss = torch.zeros(batch, dtype=dtype)
        res2 = res3 = scale = shift = None
        if use_2d:
            uv = project(out.keypoints, Kt)
            res2 = ((uv - x2d) ** 2).sum(-1)
            loss = loss + (w_norm * geman_mcclure(res2, weights.robust_scale_px)).sum(-1)
        if kp3 is not None:
            # Align the model onto the data, Y ~ s' X + t', so that the model's size cannot
            # shrink L_3D; the residual is brought back to mm by the constant
            # size(rest) / size(Y). Reported: X ~ s Y + t with s = 1 / s', t = -t' / s'.
            s_inv, t_inv = similarity_align(out.keypoints, y3d, w)
            gap = s_inv[:, None, None] * out.keypoints + t_inv[:, None] - y3d
            sq = (gap**2).sum(-1)
            loss = loss + weights.keypoints_3d * (size_ratio**2 * w_norm * sq).sum(-1)
            res3, scale, shift = sq / s_inv[:, None] ** 2, 1.0 / s_inv, -t_inv / s_inv[:, None]
        if joint_mask is None:
            loss = loss + weights.pose_prior * model.pose_prior(params["pose"])
            if overall:
                loss = loss + weights.shape_prior * (shape[:, :overall] ** 2).mean(-1)
            loss = loss + weights.proportion_prior * (shape[:, overall:] ** 2).sum(-1)
            loss = loss + weights.joint_limits * limit_violation(params["pose"], lower, upper)
        return loss, out, transl, shape, res2, res3, scale, shift

    steps = np.zeros(batch, dtype=np.int64)
    converged = np.zeros(batch, dtype=bool)
    stages = [(rigid_iterations, ("global_orient", "transl_step"), palm_mask), (iterations, tuple(params), None)]
    for n_steps, names, joint_mask in stages:
        if n_steps == 0:
            continue
        # the step at which the proportions join; hands may converge only from then on
        join = n_steps // 2 if joint_mask is None and model.num_proportions else 0
        active = torch.ones(batch, dtype=torch.bool)
        optim = torch.optim.Adam([params[n] for n in names], lr=learning_rate)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=n_steps, eta_min=learning_rate * 0.01)
        history: list[torch.Tensor] = []
        for step in range(n_steps):
            if joint_mask is None and step == join:
                shape_mask[overall:] = 1.0
            optim.zero_grad(set_to_none=True)
            loss = evaluate(joint_mask)[0]
            loss.sum().backward()
            frozen = {n: params[n].detach()[~active].clone() for n in names}
            optim.step()
            sched.step()
            with torch.no_grad():  # converged hands keep their parameters (batch independence)
                for n in names:
                    params[n][~active] = frozen[n]
            if joint_mask is None:
                steps[active.numpy()] += 1
            if step >= join:
                history.append(loss.detach())
            if len(history) > 20:
                old, new = history[-21], history[-1]
                done = (old - new) <= tolerance * new.abs() + 1e-6
                active &= ~done
                if joint_mask is None:
                    converged |= done.numpy()
                if not active.any():
                    break

    with torch.no_grad():
        loss, out, transl, shape, res2, res3, scale, shift = evaluate(with_vertices=True)
    nan = np.full((batch, NUM_KEYPOINTS), np.nan)
    np64 = lambda x: x.detach().double().numpy()  # noqa: E731
    vertices, keypoints = np64(out.vertices), np64(out.keypoints)
    if not use_2d:  # express the model in the 3D keypoints' frame: (X - t) / s
        s, sh = np64(scale), np64(shift)
        vertices = (vertices - sh[:, None]) / s[:, None, None]
        keypoints = (keypoints - sh[:, None]) / s[:, None, None]
    return FitResult(
        vertices=vertices,
        keypoints=keypoints,
        faces=model.faces.numpy().copy(),
        pose=np64(params["pose"]),
        shape=np64(shape),
        global_orient=np64(params["global_orient"]),
        transl=np64(transl) if use_2d else np.zeros((batch, 3)),
        scale=np.ones(batch) if scale is None else np64(scale),
        residual_3d_mm=nan.copy() if res3 is None else np.sqrt(np64(res3)),
        residual_2d_px=nan.copy() if res2 is None else np.sqrt(np64(res2)),
        loss=np64(loss),
        converged=converged,
        iterations=steps,
        side=getattr(model, "side", ""),
    )


def fit_predictions(
    model_or_kind: str | HandModel | Mapping[str, HandModel],
    hands: Sequence[HandPrediction],
    K: np.ndarray,
    **fit_options,
) -> list[FitResult]:
    """Fit a hand model to each detected hand of one photo (2D keypoints, 3D keypoints, ``K``).

    Hands are fitted batched per side with the model of their handedness.

    Args:
        model_or_kind: ``"open"`` / ``"mano"`` (loaded with
            :func:`handpose.handmodel.load_hand_model` per side), a ``{"right": model,
            "left": model}`` mapping, or one model (every hand must then be of its side).
        hands: the estimator's predictions.
        K: ``(3, 3)`` intrinsics of the photo (:func:`default_intrinsics` without calibration).
        **fit_options: passed to :func:`fit_hand`.

    Returns:
        One :class:`FitResult` (``B = 1``) per hand, in the order of ``hands``.
    """
    hands = list(hands)
    sides = sorted({h.handedness for h in hands})
    if isinstance(model_or_kind, str):
        from handpose.handmodel import load_hand_model

        models = {side: load_hand_model(kind=model_or_kind, side=side) for side in sides}
    elif isinstance(model_or_kind, HandModel):
        wrong = [s for s in sides if s != model_or_kind.side]
        if wrong:
            raise ValueError(f"the model is a {model_or_kind.side} hand but the photo has {wrong} hands")
        models = {model_or_kind.side: model_or_kind}
    else:
        models = dict(model_or_kind)
        missing = [s for s in sides if s not in models]
        if missing:
            raise ValueError(f"no model given for the {missing} hands")
    results: list[FitResult | None] = [None] * len(hands)
    for side in sides:
        idx = [i for i, h in enumerate(hands) if h.handedness == side]
        fit = fit_hand(
            models[side],
            keypoints_2d=np.stack([hands[i].keypoints_2d for i in idx]),
            keypoints_3d=np.stack([hands[i].keypoints_3d for i in idx]),
            K=K,
            **fit_options,
        )
        for row, i in enumerate(idx):
            results[i] = _select(fit, row)
    return results  # type: ignore[return-value]


def _select(fit: FitResult, row: int) -> FitResult:
    """Hand ``row`` of a batched result, as a ``B = 1`` result."""
    values = {}
    for name, value in vars(fit).items():
        if isinstance(value, np.ndarray) and name != "faces":
            values[name] = value[row:row + 1]
        else:
            values[name] = value
    return FitResult(**values)
