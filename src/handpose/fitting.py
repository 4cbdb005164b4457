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

Every term but the robust one is a sum of squared residuals, ``L = sum_j c'_j rho(|e_j|^2) +
|r|^2`` (:class:`Objective`): ``r`` holds ``sqrt(a_3D) k sqrt(c'_j) (s X_j + t - Y_j)``, the
pose prior as ``sqrt(a_pose) L^T (pose - m)`` (``prior = |L^T (pose - m)|^2`` + const, exact for
the models' quadratic priors), ``sqrt(a_shape / num_beta) beta``, ``sqrt(a_prop) gamma`` and
``sqrt(a_lim) d``.

Solvers (:func:`fit_hand`'s ``solver``):

- ``"lm"`` (default), Levenberg-Marquardt: per hand and iteration, the Jacobian ``J`` of the
  residuals (forward differences in float64, one batched model call for all parameters of all
  hands, since each hand's residuals depend on its own parameters only; checked against autograd
  by the tests), the Geman-McClure term as iteratively reweighted least squares (the 2D residual
  rows weighted by ``sqrt(rho'(|e_j|^2))``), and the step ``(J^T J + lambda diag(J^T J)) h =
  -J^T r``, accepted when ``L`` decreases (``lambda`` by Nielsen's gain-ratio rule). A few dozen
  iterations.
- ``"adam"``: first-order steps on ``L`` (cosine learning-rate decay), a few hundred iterations.

Both minimise the same :class:`Objective` in the same stages (:func:`run_stages`): a few rigid
iterations (orientation and translation on the palm joints only), then pose, orientation,
translation and overall shape from the middle of the joint ranges (a half-closed hand, from which
both open and fully curled fingers are reached without passing through hyper-extension); a
model's proportion components (the open hand's bone lengths and joint offsets) join for the second
half of these iterations, to refine a found pose rather than stand in for one.

Initialisation, so that the solver does not start in a twisted local minimum: the rest hand's
palm (wrist and the four finger MCPs) is aligned rigidly first: rotation by Kabsch against the
3D palm when 3D keypoints are given (else by PnP on the 2D palm), translation in closed form from
the 2D palm (linear least squares of the pinhole equations, i.e. depth from the ratio of the 3D
palm size to the 2D palm size and the focal length). A warm start (``init``: the previous video
frame's fit) skips all of this and refines all parameters from there for a few iterations.

Hands are independent (each has its own parameters, loss, damping and stopping), so a batched fit
equals the hands fitted one by one. The optimisation evaluates the model's keypoints only
(``with_vertices=False``); the mesh is skinned once, for the result. Arrays in and out are numpy;
torch stays inside.
"""
from __future__ import annotations

import contextlib
import copy
import math
import weakref
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from handpose.alignment import kabsch, scale_translation
from handpose.camera import check_intrinsics, pinhole, rotation_from_2d, translation_from_2d, translation_from_size
from handpose.handmodel import HandModel, load_hand_model
from handpose.keypoints import NUM_KEYPOINTS, PALM_RIGID
from handpose.prediction import HandPrediction

#: Solvers of :func:`fit_hand`.
SOLVERS: tuple[str, ...] = ("lm", "adam")

#: Per solver: default ``(iterations, rigid_iterations, tolerance)`` from scratch, and
#: ``(iterations, tolerance)`` warm-started (``init``).
_DEFAULTS = {"lm": (40, 6, 3e-3), "adam": (150, 30, 1e-3)}
_WARM_DEFAULTS = {"lm": (3, 3e-3), "adam": (30, 1e-3)}
#: LM counts a small decrease as convergence only after a step damped at most this much.
_CONVERGED_DAMPING = 1e-2


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
            (1 without 3D keypoints; NaN where the alignment degenerated, ``1 / s' `` with
            ``s' <= 0``).
        residual_3d_mm: ``(B, 21)`` ``|X_j - (s Y_j + t)|`` after the fit, NaN without 3D input
            (or where ``scale`` is NaN).
        residual_2d_px: ``(B, 21)`` ``|pi(K, X_j) - x_j|``, NaN without 2D input.
        loss: ``(B,)`` final objective.
        converged: ``(B,)`` the objective stopped decreasing before the iteration budget ran out.
        iterations: ``(B,)`` solver iterations taken after the rigid ones.
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

    def take(self, index: int | Sequence[int] | np.ndarray) -> FitResult:
        """The hands ``index`` (an int gives a ``B = 1`` result; a sequence or boolean mask, its
        hands in that order)."""
        rows = np.arange(index, index + 1) if isinstance(index, (int, np.integer)) else np.asarray(index)
        if isinstance(index, (int, np.integer)) and not -len(self) <= index < len(self):
            raise IndexError(f"hand {index} of a FitResult of {len(self)} hands")
        if isinstance(index, (int, np.integer)) and index < 0:
            rows = rows + len(self)
        return FitResult(**{name: value[rows] if isinstance(value, np.ndarray) and name != "faces" else value
                            for name, value in vars(self).items()})


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads, restored afterwards (``None``:
    unchanged). The package's one thread guard."""
    if threads is not None and not (int(threads) == threads >= 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads}")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ---------------------------------------------------------------------------------------------
# Objective terms (pure torch functions)
# ---------------------------------------------------------------------------------------------
def geman_mcclure(sq_residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """``rho = sigma^2 r^2 / (r^2 + sigma^2)`` of squared residuals ``r^2`` (any shape)."""
    return sigma**2 * sq_residual / (sq_residual + sigma**2)


def geman_mcclure_weight(sq_residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """IRLS weight ``d rho / d(r^2) = sigma^4 / (r^2 + sigma^2)^2`` (1 at 0, ``-> 0`` for outliers):
    ``sum_j rho(r_j^2)`` and ``sum_j w_j r_j^2`` with these weights frozen have the same gradient."""
    return (sigma**2 / (sq_residual + sigma**2)) ** 2


def limit_residuals(pose: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``(B, P)`` ``d_k = max(lower_k - p_k, 0) + max(p_k - upper_k, 0)`` (radians outside the
    limits; at most one term is non-zero) of ``(B, P)`` poses."""
    return (lower - pose).clamp_min(0) + (pose - upper).clamp_min(0)


_CACHE: "weakref.WeakKeyDictionary[HandModel, dict]" = weakref.WeakKeyDictionary()


def _cached(model: HandModel, key: str, build):
    """``build()`` once per model and key (a model changed in place keeps its stale entries: build
    a new model instead)."""
    entries = _CACHE.setdefault(model, {})
    if key not in entries:
        entries[key] = build()
    return entries[key]


def float64_model(model: HandModel) -> HandModel:
    """A float64 copy of ``model`` (itself if already float64), cached per model: fits run in
    float64 (exact forward differences, no float32 round-off in the residuals)."""
    if all(b.dtype == torch.float64 for b in model.buffers() if b.is_floating_point()):
        return model
    return _cached(model, "float64", lambda: copy.deepcopy(model).double())


def rest_keypoints(model: HandModel) -> torch.Tensor:
    """``(21, 3)`` float64 keypoints of the rest pose and mean shape, mm (cached per model)."""
    def build() -> torch.Tensor:
        with torch.no_grad():
            return float64_model(model)(with_vertices=False).keypoints[0]
    return _cached(model, "rest", build)


def prior_factor(model: HandModel) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L^T (P, P), m (P,))`` float64 with ``model.pose_prior(p) = |L^T (p - m)|^2 + const``.

    From the prior's Hessian ``H`` and gradient ``g`` at the rest pose: ``H / 2 = V E V^T``,
    ``L^T = E^{1/2} V^T``, ``m = -H^+ g``. Exact for a quadratic prior (the open hand's and
    MANO's are), the second-order expansion at rest otherwise. Cached per model.
    """
    def build() -> tuple[torch.Tensor, torch.Tensor]:
        twin = float64_model(model)
        zero = torch.zeros(model.num_pose, dtype=torch.float64)
        prior = lambda p: twin.pose_prior(p[None])[0]  # noqa: E731
        hessian = torch.autograd.functional.hessian(prior, zero)
        gradient = torch.autograd.functional.jacobian(prior, zero)
        hessian = (hessian + hessian.T) / 2
        values, vectors = torch.linalg.eigh(hessian / 2)
        return values.clamp_min(0).sqrt()[:, None] * vectors.T, -torch.linalg.pinv(hessian) @ gradient
    return _cached(model, "prior", build)


# ---------------------------------------------------------------------------------------------
# Initialisation (numpy, per hand)
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
        raise ValueError("keypoints_2d need the intrinsics K (see handpose.camera.default_intrinsics)")
    batch = {len(a) for a in (kp2, kp3) if a is not None}
    if len(batch) > 1:
        raise ValueError(f"keypoints_2d and keypoints_3d disagree on the number of hands: {sorted(batch)}")
    b = batch.pop()
    if K is not None:
        K = check_intrinsics(K)
        K = np.broadcast_to(K, (b, 3, 3)).copy() if K.shape == (3, 3) else K
        if K.shape != (b, 3, 3):
            raise ValueError(f"K must be (3, 3) or ({b}, 3, 3), got {K.shape}")
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
    if kp3 is not None:
        w = conf / conf.sum(1, keepdims=True)
        centred = kp3 - np.einsum("bj,bjk->bk", w, kp3)[:, None]
        flat = np.einsum("bj,bj->b", w, (centred**2).sum(-1)) <= 1e-12 * max(1.0, float(np.abs(kp3).max()) ** 2)
        if flat.any():
            raise ValueError(f"keypoints_3d of hands {np.flatnonzero(flat).tolist()} have no extent (all "
                             "confident joints at one point): no scale can map the model onto them")
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
    palm_rest = rest[list(PALM_RIGID)] - rest[list(PALM_RIGID)].mean(0)
    normal = np.linalg.svd(palm_rest)[2][-1]
    mirror_palm = np.eye(3) - 2.0 * np.outer(normal, normal)
    flip_z = np.diag([1.0, 1.0, -1.0])
    for b in range(batch):
        idx = list(PALM_RIGID) if (conf[b, list(PALM_RIGID)] > 0).sum() >= 3 else list(range(NUM_KEYPOINTS))
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
                if transl[c, b, 2] + rotated[:, 2].min() <= 1.0:  # degenerate: depth from the sizes
                    transl[c, b] = translation_from_size(rotated[idx], kp2[b, idx], K[b], w)
    return orient, transl


# ---------------------------------------------------------------------------------------------
# The objective: residuals and weights, in one place
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One stage of the schedule: which parameter blocks move, on which joints.

    Attributes:
        name: ``"rigid"``, ``"pose"`` or ``"full"``.
        blocks: parameter blocks that move (:attr:`Objective.blocks` names).
        iterations: the stage's budget.
        palm_only: only the palm joints and no prior (the rigid start).
        damping: LM's initial ``lambda``: small near the solution (rigid palm, warm start), large
            from the half-closed start, where full Gauss-Newton steps overshoot into the wrong
            bend of a finger (a distal joint flipped to its other limit).
    """

    name: str
    blocks: tuple[str, ...]
    iterations: int
    palm_only: bool = False
    damping: float = 1.0


@dataclass
class Residuals:
    """The objective's residuals of ``B`` hands at one point (float64).

    Attributes:
        error_2d: ``(B, 21, 2)`` px ``pi(K, X_j) - x_j``, or ``None`` without 2D keypoints.
        weight_2d: ``(B, 21)`` ``c'_j`` (confidences normalised to sum 1 per hand).
        other: ``(B, M)`` the plain residuals ``r`` (3D, priors, limits), weights included.
    """

    error_2d: torch.Tensor | None
    weight_2d: torch.Tensor
    other: torch.Tensor

    def loss(self, sigma: float) -> torch.Tensor:
        """``(B,)`` ``L = sum_j c'_j rho(|e_j|^2) + |r|^2`` (NaN residuals give ``inf``)."""
        loss = (self.other**2).sum(-1)
        if self.error_2d is not None:
            loss = loss + (self.weight_2d * geman_mcclure((self.error_2d**2).sum(-1), sigma)).sum(-1)
        return torch.nan_to_num(loss, nan=math.inf)


class Objective:
    """The fitting objective of ``B`` hands (module docstring) over one parameter vector per hand.

    ``theta (B, N)`` float64, blocks in order (:attr:`blocks`): ``global_orient`` (3, axis-angle),
    ``transl`` (3, in units of about one pixel sideways, ``z0 / f``, and 1 % of the depth ``z0``
    around the start ``t0``: ``t = t0 + (u z0 / f, v z0 / f, d z0 / 100)``), ``pose``
    (``num_pose``), ``shape`` (the overall components) and ``proportions`` (the last
    ``num_proportions`` shape components). :meth:`residuals` is the one place where the terms
    and their weights are written; both solvers use it (:meth:`loss` for Adam, :meth:`linearise`
    for LM).

    Args:
        model: the hand model (evaluated through its float64 copy, :func:`float64_model`).
        weights: the objective's weights.
        conf: ``(B, 21)`` float64 joint confidences (at least 3 > 0 per hand).
        transl0: ``(B, 3)`` mm, the start translation (the origin of the ``transl`` block).
        kp2: ``(B, 21, 2)`` px, with ``K (B, 3, 3)``; kp3: ``(B, 21, 3)`` root-relative, any unit.
    """

    def __init__(
        self,
        model: HandModel,
        weights: FitWeights,
        conf: torch.Tensor,
        transl0: torch.Tensor,
        kp2: torch.Tensor | None = None,
        kp3: torch.Tensor | None = None,
        K: torch.Tensor | None = None,
    ) -> None:
        self.model, self.weights = float64_model(model), weights
        self.conf, self.transl0, self.kp2, self.kp3, self.K = conf, transl0, kp2, kp3, K
        self.lower, self.upper = (v.to(torch.float64) for v in model.pose_limits())
        self.prior_factor, self.prior_centre = prior_factor(model)
        overall = model.num_shape - model.num_proportions
        sizes = {"global_orient": 3, "transl": 3, "pose": model.num_pose, "shape": overall,
                 "proportions": model.num_proportions}
        self.blocks: dict[str, slice] = {}
        start = 0
        for name, size in sizes.items():
            self.blocks[name] = slice(start, start + size)
            start += size
        self.size = start
        if kp2 is not None:
            step_xy = transl0[:, 2] / K[:, 0, 0]
            self.transl_unit = torch.stack([step_xy, step_xy, transl0[:, 2] / 100.0], -1)
        else:  # 3D only: the alignment absorbs any translation
            self.transl_unit = torch.zeros_like(transl0)
        palm = torch.zeros(NUM_KEYPOINTS, dtype=torch.float64)
        palm[list(PALM_RIGID)] = 1.0
        self.palm = palm
        if kp3 is not None:  # k: mm of the rest hand per unit of the 3D keypoints, (B, 1)
            rest = rest_keypoints(model)[None]
            c_norm = conf / conf.sum(-1, keepdim=True)
            self.size_ratio = (_rms_size(rest.expand(len(conf), -1, -1), c_norm) / _rms_size(kp3, c_norm))[:, None]

    def __len__(self) -> int:
        return len(self.conf)

    def select(self, rows: torch.Tensor) -> Objective:
        """The objective of hands ``rows`` only."""
        sub = object.__new__(Objective)
        sub.__dict__.update(self.__dict__)
        for name in ("conf", "transl0", "kp2", "kp3", "K", "transl_unit", "size_ratio"):
            value = getattr(self, name, None)
            if value is not None:
                setattr(sub, name, value[rows])
        return sub

    def start(self, pose: torch.Tensor, shape: torch.Tensor, global_orient: torch.Tensor) -> torch.Tensor:
        """``theta (B, N)`` at the given parameters, translation ``t0``."""
        transl = torch.zeros(len(self), 3, dtype=torch.float64)
        return torch.cat([global_orient, transl, pose, shape], -1).to(torch.float64)

    def unpack(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """``pose, shape, global_orient, transl`` (mm) of ``theta``."""
        b = self.blocks
        return {"pose": theta[:, b["pose"]],
                "shape": theta[:, b["shape"].start:b["proportions"].stop],
                "global_orient": theta[:, b["global_orient"]],
                "transl": self.transl0 + theta[:, b["transl"]] * self.transl_unit}

    def indices(self, blocks: Sequence[str]) -> torch.Tensor:
        """Columns of ``theta`` of the given blocks."""
        return torch.cat([torch.arange(self.blocks[n].start, self.blocks[n].stop) for n in blocks])

    def joint_weights(self, palm_only: bool) -> torch.Tensor:
        w = self.conf * self.palm if palm_only else self.conf
        return w / w.sum(-1, keepdim=True).clamp_min(1e-12)

    def _align(self, keypoints: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Y ~ s' X + t': the model's size cannot shrink L_3D; k = size(rest) / size(Y) to mm
        s_inv, t_inv, _ = scale_translation(keypoints, self.kp3, w)
        gap = s_inv[:, None, None] * keypoints + t_inv[:, None] - self.kp3
        return gap, s_inv, t_inv

    def residuals(
        self, theta: torch.Tensor, palm_only: bool = False, keypoints: torch.Tensor | None = None
    ) -> Residuals:
        """All residuals at ``theta (B, N)`` (differentiable), from the model's keypoints there
        (evaluated without the mesh unless given, ``(B, 21, 3)`` mm)."""
        params = self.unpack(theta)
        if keypoints is None:
            keypoints = self.model(**params, with_vertices=False).keypoints
        w = self.joint_weights(palm_only)
        other = []
        error_2d = None
        if self.kp2 is not None:
            error_2d = pinhole(keypoints, self.K) - self.kp2
        if self.kp3 is not None:
            gap, _, _ = self._align(keypoints, w)
            scale = math.sqrt(self.weights.keypoints_3d) * self.size_ratio * w.sqrt()
            other.append((scale[..., None] * gap).flatten(1))
        if not palm_only:
            a = self.weights
            pose, shape = params["pose"], theta[:, self.blocks["shape"]]
            proportions = theta[:, self.blocks["proportions"]]
            other.append(math.sqrt(a.pose_prior) * (pose - self.prior_centre) @ self.prior_factor.T)
            if shape.shape[1]:
                other.append(math.sqrt(a.shape_prior / shape.shape[1]) * shape)
            other.append(math.sqrt(a.proportion_prior) * proportions)
            other.append(math.sqrt(a.joint_limits) * limit_residuals(pose, self.lower, self.upper))
        other_t = torch.cat(other, -1) if other else theta.new_zeros(len(theta), 0)
        return Residuals(error_2d, w, other_t)

    def loss(self, theta: torch.Tensor, palm_only: bool = False) -> torch.Tensor:
        """``(B,)`` the objective at ``theta``."""
        return self.residuals(theta, palm_only).loss(self.weights.robust_scale_px)

    def flat_residuals(self, theta: torch.Tensor, palm_only: bool = False) -> torch.Tensor:
        """``(B, M)`` the raw 2D errors (flattened, px) then the plain residuals."""
        res = self.residuals(theta, palm_only)
        return res.other if res.error_2d is None else torch.cat([res.error_2d.flatten(1), res.other], -1)

    def linearise(
        self, theta: torch.Tensor, columns: torch.Tensor, palm_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The IRLS least-squares system at ``theta``: ``r (B, M)``, ``J (B, M, len(columns))``
        (``dr / dtheta[:, columns]``) and the loss ``(B,)``.

        ``r`` stacks ``sqrt(c'_j rho'(|e_j|^2)) e_j`` (the robust term reweighted at ``theta``) and
        the plain residuals. ``J`` by forward differences in float64 (relative error about 1e-7,
        checked against autograd by the tests): one batched model evaluation of ``B (C + 1)``
        hands. Forward-mode autograd gives the same ``J`` but costs 4-6 times more on CPU (torch
        2.13's forward AD pays about 0.3 ms per operation mixing a dual tensor and a constant).
        """
        batch, count = len(theta), len(columns)
        # forward differences, all columns at once on `count` copies of the batch (copy k moves
        # column k), evaluated with the batch itself in one model call:
        # dr/dtheta_k = (r(theta + h_k e_k) - r(theta)) / h_k, h_k = 1e-7 (1 + |theta_k|)
        step = 1e-7 * (1.0 + theta[:, columns].abs()).T  # (C, B)
        moved = theta.repeat(count + 1, 1).view(count + 1, batch, -1)
        moved[torch.arange(1, count + 1), :, columns] += step
        copies = self.select(torch.arange(batch).repeat(count + 1))
        flat = copies.flat_residuals(moved.flatten(0, 1), palm_only).view(count + 1, batch, -1)
        values, shifted = flat[0], flat[1:]
        jac = (shifted - values) / step[..., None]  # (C, B, M)
        error_2d = None if self.kp2 is None else values[:, :2 * NUM_KEYPOINTS].view(batch, NUM_KEYPOINTS, 2)
        jac = jac.permute(1, 2, 0)  # (B, M, C)
        w = self.joint_weights(palm_only)
        sigma = self.weights.robust_scale_px
        row = torch.ones_like(values)
        loss = (values[:, 2 * NUM_KEYPOINTS:] ** 2).sum(-1) if self.kp2 is not None else (values**2).sum(-1)
        if error_2d is not None:
            sq = (error_2d**2).sum(-1)
            row[:, :2 * NUM_KEYPOINTS] = (w * geman_mcclure_weight(sq, sigma)).sqrt().repeat_interleave(2, -1)
            loss = loss + (w * geman_mcclure(sq, sigma)).sum(-1)
        return row * values, row[..., None] * jac, torch.nan_to_num(loss, nan=math.inf)

    def result(self, theta: torch.Tensor, converged: np.ndarray, steps: np.ndarray) -> FitResult:
        """The :class:`FitResult` at ``theta`` (skins the mesh once)."""
        batch = len(theta)
        params = self.unpack(theta)
        with torch.no_grad():
            out = self.model(**params, with_vertices=True)
            loss = self.residuals(theta, keypoints=out.keypoints).loss(self.weights.robust_scale_px)
        np64 = lambda x: x.detach().to(torch.float64).numpy()  # noqa: E731
        vertices, keypoints = np64(out.vertices), np64(out.keypoints)
        nan = np.full((batch, NUM_KEYPOINTS), np.nan)
        res2 = res3 = nan.copy()
        scale = np.ones(batch)
        if self.kp2 is not None:
            res2 = np.linalg.norm(np64(pinhole(out.keypoints, self.K) - self.kp2), axis=-1)
        if self.kp3 is not None:
            gap, s_inv, t_inv = (np64(x) for x in self._align(out.keypoints.to(torch.float64), self.conf))
            # reported the other way round, X ~ s Y + t with s = 1 / s', t = -t' / s': only for s' > 0
            ok = s_inv > 1e-9 * np.abs(s_inv).max(initial=1.0)
            safe = np.where(ok, s_inv, 1.0)
            scale = np.where(ok, 1.0 / safe, np.nan)
            res3 = np.where(ok[:, None], np.linalg.norm(gap, axis=-1) / safe[:, None], np.nan)
            if self.kp2 is None:  # express the model in the 3D keypoints' frame: (X - t) / s = s' X + t'
                vertices = s_inv[:, None, None] * vertices + t_inv[:, None]
                keypoints = s_inv[:, None, None] * keypoints + t_inv[:, None]
        return FitResult(
            vertices=vertices,
            keypoints=keypoints,
            faces=self.model.faces.numpy().copy(),
            pose=np64(params["pose"]),
            shape=np64(params["shape"]),
            global_orient=np64(params["global_orient"]),
            transl=np64(params["transl"]) if self.kp2 is not None else np.zeros((batch, 3)),
            scale=scale,
            residual_3d_mm=res3,
            residual_2d_px=res2,
            loss=np64(loss),
            converged=converged,
            iterations=steps,
            side=getattr(self.model, "side", ""),
        )


def _rms_size(points: torch.Tensor, w_norm: torch.Tensor) -> torch.Tensor:
    """``(B,)`` weighted RMS distance of ``(B, J, 3)`` points to their weighted centroid."""
    centre = (w_norm[..., None] * points).sum(1, keepdim=True)
    return torch.sqrt((w_norm * ((points - centre) ** 2).sum(-1)).sum(-1).clamp_min(1e-12))


# ---------------------------------------------------------------------------------------------
# Solvers and the stage runner
# ---------------------------------------------------------------------------------------------
def lm_stage(
    objective: Objective, theta: torch.Tensor, stage: Stage, tolerance: float
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Levenberg-Marquardt iterations of one stage, per hand (see the module docstring).

    A hand stops (``converged``) when an accepted, nearly Gauss-Newton step (damping at most
    ``1e-2``) lowers its loss by at most ``tolerance * loss``, when it fits exactly, or when no step
    can lower its loss (damping beyond ``1e12``). Stopped hands leave the batch.

    Returns:
        ``theta (B, N)``, ``converged (B,)`` and ``iterations (B,)`` of the stage.
    """
    batch = len(theta)
    theta = theta.clone()
    columns = objective.indices(stage.blocks)
    lam = torch.full((batch,), stage.damping, dtype=torch.float64)
    nu = torch.full((batch,), 2.0, dtype=torch.float64)
    converged = np.zeros(batch, dtype=bool)
    steps = np.zeros(batch, dtype=np.int64)
    active = torch.arange(batch)
    sub = objective.select(active)
    r, J, loss = sub.linearise(theta, columns, stage.palm_only)
    eye = torch.eye(len(columns), dtype=torch.float64)
    for iteration in range(stage.iterations):
        done = loss <= 1e-12  # an exact fit
        steps[active[~done].numpy()] += 1
        jtj = J.mT @ J
        grad = J.mT @ r[..., None]
        diag = torch.diagonal(jtj, dim1=-2, dim2=-1)
        damping = lam[active, None] * (diag + 1e-9 * diag.amax(-1, keepdim=True).clamp_min(1e-12))
        h = -torch.linalg.solve(jtj + damping[..., None] * eye, grad)[..., 0]
        # the IRLS model's decrease: L(0) - L(h) = -2 h^T J^T r - |J h|^2 = h^T (lam D h - J^T r)
        predicted = (h * (damping * h - grad[..., 0])).sum(-1)
        candidate = theta[active].clone()
        candidate[:, columns] += h
        # linearised at the candidate straight away (one batched model call): most steps are
        # taken; after the last step, only its loss is needed
        if iteration + 1 < stage.iterations:
            r_new, J_new, loss_new = sub.linearise(candidate, columns, stage.palm_only)
        else:
            r_new, J_new, loss_new = r, J, sub.loss(candidate, stage.palm_only)
        gain = (loss - loss_new) / predicted.clamp_min(1e-30)
        accept = (loss_new < loss) & ~done
        # Nielsen: lam *= max(1/3, 1 - (2 rho - 1)^3) on success, else lam *= nu, nu *= 2
        la, n = lam[active], nu[active]
        la = torch.where(accept, la * torch.clamp(1 - (2 * gain - 1) ** 3, min=1 / 3), la * n)
        n = torch.where(accept, torch.full_like(n, 2.0), 2 * n)
        lam[active], nu[active] = la.clamp(1e-12, 1e16), n
        # converged: a nearly Gauss-Newton step (small damping) that barely lowered the loss; a
        # small decrease under heavy damping is a short step, not a minimum
        done |= (accept & (loss - loss_new <= tolerance * loss_new) & (la <= _CONVERGED_DAMPING)) | (la > 1e12)
        theta[active[accept]] = candidate[accept]
        r = torch.where(accept[:, None], r_new, r)
        J = torch.where(accept[:, None, None], J_new, J)
        loss = torch.where(accept, loss_new, loss)
        if done.any():
            converged[active[done].numpy()] = True
            keep = ~done
            active, r, J, loss = active[keep], r[keep], J[keep], loss[keep]
            if not len(active):
                break
            sub = objective.select(active)
    return theta, converged, steps


def adam_stages(
    objective: Objective,
    theta: torch.Tensor,
    stages: Sequence[Stage],
    tolerance: float,
    learning_rate: float = 0.1,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Adam over consecutive stages with the same joints, one cosine learning-rate decay (to 1 %)
    over their iterations; a later stage's extra blocks join at its first iteration (zero gradient
    before). A hand stops when its loss fell by at most ``tolerance * loss + 1e-6`` over 20 steps,
    counted from the last stage's start.

    Returns:
        ``theta``, ``converged (B,)`` and ``iterations (B,)`` over these stages.
    """
    batch = len(theta)
    theta = theta.clone().requires_grad_(True)
    total = sum(s.iterations for s in stages)
    converged = np.zeros(batch, dtype=bool)
    steps = np.zeros(batch, dtype=np.int64)
    if total == 0:
        return theta.detach(), converged, steps
    optim = torch.optim.Adam([theta], lr=learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=total, eta_min=learning_rate * 0.01)
    active = torch.ones(batch, dtype=torch.bool)
    history: list[torch.Tensor] = []
    schedule = [(s, i) for s in stages for i in range(s.iterations)]
    join = total - stages[-1].iterations
    for step, (stage, _) in enumerate(schedule):
        mask = torch.zeros(objective.size, dtype=torch.float64)
        mask[objective.indices(stage.blocks)] = 1.0
        optim.zero_grad(set_to_none=True)
        loss = objective.loss(theta, stage.palm_only)
        loss.sum().backward()
        theta.grad *= mask
        frozen = theta.detach()[~active].clone()
        optim.step()
        sched.step()
        with torch.no_grad():  # stopped hands keep their parameters (batch independence)
            theta[~active] = frozen
        steps[active.numpy()] += 1
        if step >= join:
            history.append(loss.detach())
        if len(history) > 20:
            old, new = history[-21], history[-1]
            done = (old - new) <= tolerance * new.abs() + 1e-6
            active &= ~done
            converged |= done.numpy()
            if not active.any():
                break
    return theta.detach(), converged, steps


def schedule(objective: Objective, iterations: int, rigid_iterations: int, warm: bool = False) -> list[Stage]:
    """The stages (module docstring): rigid (palm only), pose (with overall shape), full (with
    proportions, the second half of ``iterations`` when the model has any). Warm start: one stage
    on orientation, translation and pose (a tracked hand keeps its shape)."""
    rigid = ("global_orient",) + (("transl",) if objective.kp2 is not None else ())
    pose = rigid + ("pose",) + (("shape",) if objective.blocks["shape"].stop > objective.blocks["shape"].start else ())
    full = pose + (("proportions",) if objective.model.num_proportions else ())
    if warm:  # the hand's shape and proportions stay those of the start
        return [Stage("track", rigid + ("pose",), iterations, damping=1e-2)]
    join = iterations // 2 if objective.model.num_proportions else 0
    stages = [Stage("rigid", rigid, rigid_iterations, palm_only=True, damping=1e-3),
              Stage("pose", pose, iterations - join)]
    return stages + ([Stage("full", full, join)] if join else [])


def run_stages(
    objective: Objective,
    theta: torch.Tensor,
    stages: Sequence[Stage],
    solver: str,
    tolerance: float,
    learning_rate: float = 0.1,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Run ``stages`` with ``solver`` from ``theta (B, N)``.

    Returns:
        ``theta``, ``converged (B,)`` (in the last stage) and ``iterations (B,)`` (outside the
        rigid stage).
    """
    batch = len(theta)
    converged = np.zeros(batch, dtype=bool)
    steps = np.zeros(batch, dtype=np.int64)
    stages = [s for s in stages if s.iterations > 0]
    if solver == "lm":
        for stage in stages:
            theta, converged, taken = lm_stage(objective, theta, stage, tolerance)
            steps += 0 if stage.palm_only else taken
        return theta, converged, steps
    rigid = [s for s in stages if s.palm_only]
    if rigid:
        theta, _, _ = adam_stages(objective, theta, rigid, tolerance, learning_rate)
    rest = [s for s in stages if not s.palm_only]
    if rest:
        theta, converged, steps = adam_stages(objective, theta, rest, tolerance, learning_rate)
    return theta, converged, steps


# ---------------------------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------------------------
def fit_hand(
    model: HandModel,
    keypoints_2d: np.ndarray | None = None,
    keypoints_3d: np.ndarray | None = None,
    K: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    weights: FitWeights = FitWeights(),
    iterations: int | None = None,
    rigid_iterations: int | None = None,
    learning_rate: float = 0.1,
    tolerance: float | None = None,
    threads: int | None = 1,
    solver: str = "lm",
    init: FitResult | None = None,
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
        iterations: solver iterations on all parameters after the rigid ones (the proportions
            join for the second half); default 40 for ``"lm"`` (most hands stop after 15-30),
            150 for ``"adam"``, and 3 / 30 warm-started.
        rigid_iterations: iterations on orientation and translation only, palm joints only;
            default 6 (``"lm"``) / 30 (``"adam"``); none when warm-started.
        learning_rate: Adam's initial step (cosine decay to 1 %), in radians for the angles, in
            about one pixel sideways and 1 % of the depth for the translation; unused by LM.
        tolerance: a hand stops when its loss fell by at most ``tolerance * loss`` in an
            accepted, nearly Gauss-Newton LM step (damping <= 1e-2; default 3e-3), or by at most
            ``tolerance * loss + 1e-6`` over the last 20 Adam steps (default 1e-3).
        threads: torch threads during the fit (restored afterwards); ``None`` keeps torch's
            setting. The tensors are small: one thread is as fast on an idle CPU and several
            times faster on a busy one.
        solver: ``"lm"`` (Levenberg-Marquardt, default) or ``"adam"``.
        init: warm start, e.g. the previous video frame's fit of the same ``B`` hands, in the
            same order: its pose, shape, orientation and translation are the start, with no
            rigid stage and no mirror candidates; a few iterations refine the pose, orientation
            and translation (the shape and proportions stay those of ``init``: a tracked hand
            keeps its shape). ``fit = fit_hand(model, kp2, kp3, K, init=fit)`` per frame tracks
            a hand in real time (about 10 ms per hand on one core). With 2D keypoints, a start
            without a translation in front of the camera (a 3D-only fit's) gets one from the
            2D keypoints.

    Returns:
        :class:`FitResult` with ``B`` hands. From scratch with 2D keypoints only, both starts of
        the palm's mirror ambiguity are fitted and the lower loss is kept.
    """
    kp2, kp3, K, conf = _check_inputs(keypoints_2d, keypoints_3d, K, confidence)
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    warm = init is not None
    n_default, r_default, t_default = _DEFAULTS[solver]
    if warm:
        n_default, t_default = _WARM_DEFAULTS[solver]
        r_default = 0
    iterations = n_default if iterations is None else iterations
    rigid_iterations = r_default if rigid_iterations is None else rigid_iterations
    tolerance = t_default if tolerance is None else tolerance
    if iterations < 0 or rigid_iterations < 0:
        raise ValueError("iterations and rigid_iterations must be >= 0")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be finite and >= 0, got {tolerance}")
    with torch_threads(threads):
        if warm:
            starts = _warm_start(model, init, kp2, K, conf)
        else:
            orient0, transl0 = _initialise(rest_keypoints(model).numpy(), kp2, kp3, K, conf)
            lower, upper = (v.to(torch.float64) for v in model.pose_limits())
            count = orient0.shape[0] * len(conf)
            # from the middle of the joint ranges, the mean shape, each candidate's rigid start
            starts = (((lower + upper) / 2).expand(count, -1), torch.zeros(count, model.num_shape, dtype=torch.float64),
                      torch.as_tensor(orient0.reshape(-1, 3)), torch.as_tensor(transl0.reshape(-1, 3)))
        copies = len(starts[0]) // len(conf)
        tile = lambda a: None if a is None else torch.as_tensor(np.concatenate([a] * copies))  # noqa: E731
        objective = Objective(model, weights, tile(conf), starts[3], tile(kp2), tile(kp3), tile(K))
        theta = objective.start(*starts[:3])
        stages = schedule(objective, iterations, rigid_iterations, warm)
        theta, converged, steps = run_stages(objective, theta, stages, solver, tolerance, learning_rate)
        fit = objective.result(theta.detach(), converged, steps)
    if copies == 1:
        return fit
    batch = len(conf)
    return fit.take(np.argmin(fit.loss.reshape(copies, batch), axis=0) * batch + np.arange(batch))


def _warm_start(
    model: HandModel, init: FitResult, kp2: np.ndarray | None, K: np.ndarray | None, conf: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``pose, shape, global_orient, transl`` float64 tensors from a previous fit of the hands."""
    if not isinstance(init, FitResult):
        raise ValueError(f"init must be a FitResult (a previous fit of the same hands), got {type(init).__name__}")
    if len(init) != len(conf) or init.pose.shape[1:] != (model.num_pose,) or init.shape.shape[1:] != (model.num_shape,):
        raise ValueError(f"init has {len(init)} hands of pose {init.pose.shape[1:]} and shape {init.shape.shape[1:]}; "
                         f"the fit has {len(conf)} hands of a model with ({model.num_pose},) and ({model.num_shape},)")
    as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    pose, shape, orient, transl = (as_t(a).clone() for a in (init.pose, init.shape, init.global_orient, init.transl))
    if kp2 is not None:
        behind = np.flatnonzero(~(init.transl[:, 2] > 0))
        if len(behind):
            ref = model.pose_limits()[0]
            with torch.no_grad():
                posed = model(pose[behind].to(ref), shape[behind].to(ref), orient[behind].to(ref),
                              with_vertices=False).keypoints.double().numpy()
            for row, b in enumerate(behind):
                transl[b] = torch.as_tensor(translation_from_2d(posed[row], kp2[b], K[b], conf[b]))
    return pose, shape, orient, transl


def fit_images(
    model_or_kind: str | HandModel | Mapping[str, HandModel],
    hands_per_image: Sequence[Sequence[HandPrediction]],
    intrinsics: Sequence[np.ndarray],
    threads: int | None = 1,
    **fit_options,
) -> list[list[FitResult]]:
    """Fit a hand model to every predicted hand of several photos, batched per side: the one
    entry point from predictions to fits.

    Each hand is fitted to its 2D keypoints (through its photo's ``K``) and its root-relative 3D
    keypoints, with the model of its handedness. ``fit_images(model, [hands], [K])[0]`` fits one
    photo.

    Args:
        model_or_kind: ``"open"`` / ``"mano"`` (loaded per side with
            :func:`handpose.handmodel.load_hand_model`), a ``{"right": model, "left": model}``
            mapping, or one model (all hands must then be of its side).
        hands_per_image: ``N`` lists of predictions (a list may be empty).
        intrinsics: ``N`` matrices ``K (3, 3)``, one per photo (:func:`handpose.camera.default_intrinsics`
            without calibration).
        threads: torch intra-op threads during the fits (see :func:`fit_hand`).
        **fit_options: passed to :func:`fit_hand`.

    Returns:
        ``N`` lists of :class:`FitResult` (``B = 1`` each), in the order of the hands.
    """
    if len(hands_per_image) != len(intrinsics):
        raise ValueError(f"{len(hands_per_image)} photos but {len(intrinsics)} intrinsics")
    Ks = [np.asarray(K, dtype=np.float64) for K in intrinsics]
    for i, K in enumerate(Ks):
        if K.shape != (3, 3):
            raise ValueError(f"intrinsics[{i}] must be (3, 3), got {K.shape}")
    if threads is not None and not (int(threads) == threads >= 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads}")
    flat = [(i, j, hand) for i, hands in enumerate(hands_per_image) for j, hand in enumerate(hands)]
    sides = sorted({hand.handedness for _, _, hand in flat})
    models = _models(model_or_kind, sides)
    out: list[list[FitResult | None]] = [[None] * len(hands) for hands in hands_per_image]
    for side in sides:
        rows = [(i, j, hand) for i, j, hand in flat if hand.handedness == side]
        fit = fit_hand(
            models[side],
            keypoints_2d=np.stack([hand.keypoints_2d for _, _, hand in rows]),
            keypoints_3d=np.stack([hand.keypoints_3d for _, _, hand in rows]),
            K=np.stack([Ks[i] for i, _, _ in rows]),
            threads=threads,
            **fit_options,
        )
        for row, (i, j, _) in enumerate(rows):
            out[i][j] = fit.take(row)
    return out  # type: ignore[return-value]


def _models(model_or_kind: str | HandModel | Mapping[str, HandModel], sides: Sequence[str]) -> dict[str, HandModel]:
    if isinstance(model_or_kind, str):
        return {side: load_hand_model(kind=model_or_kind, side=side) for side in sides}
    if isinstance(model_or_kind, HandModel):
        wrong = [s for s in sides if s != model_or_kind.side]
        if wrong:
            raise ValueError(f"the model is a {model_or_kind.side} hand but there are {wrong} hands")
        return {model_or_kind.side: model_or_kind}
    models = dict(model_or_kind)
    missing = [s for s in sides if s not in models]
    if missing:
        raise ValueError(f"no model given for the {missing} hands")
    return models
