"""Alignments between point sets: the one place for scale + translation fits, Kabsch and Umeyama.

- :func:`scale_translation`: weighted least-squares isotropic scale and translation (no rotation),
  ``min_{s, t} sum_j w_j |s S_j + t - T_j|^2``, torch, any dimension ``D``. Used by the 2D
  registration of 3D joints on detections (:func:`fit_scale_translation`, the course slides'
  and the ICCV 2021 network's), the fit's ``L_3D`` (:mod:`handpose.fitting`) and placing
  root-relative 3D keypoints on a fitted hand (:func:`align_scale_translation`,
  :func:`placed_keypoints`).
- :func:`umeyama`: weighted similarity ``s R x + t`` (rotation never a reflection), numpy,
  batched; :func:`kabsch` is its rotation alone, used by the fit's start and
  :func:`handpose.metrics.procrustes_align`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from handpose._arrays import ArrayLike, as_tensor, like
from handpose.camera import weak_perspective

if TYPE_CHECKING:
    from handpose.fitting import FitResult
    from handpose.prediction import HandPrediction


def scale_translation(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, min_weight: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form weighted least-squares scale and translation mapping ``source`` onto ``target``.

    Minimises ``E(s, t) = sum_j w_j |s S_j + t - T_j|^2``. With weighted centroids
    ``S_bar = sum w S / sum w``, ``T_bar = sum w T / sum w`` and centred ``S~ = S - S_bar``::

        s = sum_j w_j <S~_j, T_j> / sum_j w_j |S~_j|^2,     t = T_bar - s S_bar

    (the solution of the normal equations, without forming them). ``s`` is unconstrained:
    inconsistent data can give ``s <= 0``, which is still the least-squares answer.

    Degenerate cases (``ok`` False, no NaN in values or gradients):

    - no data, ``sum w <= min_weight``: the fallback is ``s = 0`` and ``t`` = the unweighted mean
      of ``target``.
    - the weighted source points coincide: the spread ``sum w |S~|^2 <= eps sum w |S|^2`` (``eps``
      of the dtype) leaves ``s`` free; the fallback is ``s = 0``, ``t = T_bar``.

    Args:
        source, target: ``(B, J, D)``, same dtype; weights: ``(B, J)`` >= 0.
        min_weight: threshold on ``sum_j w_j`` below which a sample has no data.
    Returns:
        ``s (B,)``, ``t (B, D)``, ``ok (B,)`` bool; differentiable w.r.t. all inputs.
    """
    # One (B, J) plane per coordinate: every reduction runs over a contiguous joint axis.
    src, tgt = source.unbind(-1), target.unbind(-1)
    w = weights
    has_data = w.sum(dim=-1) > min_weight  # (B,)
    # Without data, centroids fall back to uniform weights (finite, and not used for s).
    w = torch.where(has_data[:, None], w, torch.ones_like(w))
    W = w.sum(dim=-1, keepdim=True)  # (B, 1)
    src_bar = [(w * x).sum(-1, keepdim=True) / W for x in src]
    tgt_bar = [(w * y).sum(-1, keepdim=True) / W for y in tgt]
    src_c = [x - x_bar for x, x_bar in zip(src, src_bar)]
    num = (w * sum(x_c * y for x_c, y in zip(src_c, tgt))).sum(-1)  # sum w <S~, T> = sum w <S~, T~>
    den = (w * sum(x_c * x_c for x_c in src_c)).sum(-1)  # sum w |S~|^2
    spread = den > torch.finfo(source.dtype).eps * (w * sum(x * x for x in src)).sum(-1)
    ok = has_data & spread
    s = torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))
    # t = T_bar - s S_bar
    t = torch.cat([y_bar - s[:, None] * x_bar for x_bar, y_bar in zip(src_bar, tgt_bar)], -1)
    return s, t, ok


@dataclass(frozen=True)
class Registration:
    """Isotropic scale + translation mapping joints to pixels, ``uv = s J_xy + T``.

    Attributes:
        params: ``(B, 3)`` = ``[s, tx, ty]``.
        ok: ``(B,)`` bool; False where the fit was degenerate and ``params`` hold the fallback
            (see :func:`fit_scale_translation`).
    """

    params: ArrayLike
    ok: ArrayLike

    @property
    def scale(self) -> ArrayLike:
        """``(B,)`` scale ``s``."""
        return self.params[:, 0]

    @property
    def translation(self) -> ArrayLike:
        """``(B, 2)`` translation ``T`` in pixels."""
        return self.params[:, 1:]

    def apply(self, joints: ArrayLike) -> ArrayLike:
        """``(B, J, 2|3)`` joints -> ``(B, J, 2)`` pixels ``s J_xy + T`` (type of ``params``)."""
        params = self.params
        if isinstance(params, torch.Tensor):
            J = like(joints, params)
        else:
            J = np.asarray(joints, dtype=params.dtype)
        if J.ndim != 3 or J.shape[0] != params.shape[0] or J.shape[-1] not in (2, 3):
            raise ValueError(f"joints must be ({params.shape[0]}, J, 2|3), got {tuple(J.shape)}")
        return weak_perspective(J, self.scale, self.translation)

    def detach(self) -> "Registration":
        """The same registration cut from the autograd graph (numpy registrations are returned)."""
        if isinstance(self.params, torch.Tensor):
            return Registration(self.params.detach(), self.ok)
        return self


def fit_scale_translation(
    xyc: ArrayLike, joints: ArrayLike, min_weight: float = 1e-12
) -> Registration:
    """Closed-form weighted least-squares scale and translation from joints to detections.

    Minimises ``E(s, T) = sum_j w_j ||s J_j + T - uv_j||^2`` with ``w_j = c_j^2`` (the rows of the
    linear system weighted by the confidences ``c_j``, as in the course slides and the ICCV 2021
    network). Setting the gradient to zero with weighted centroids ``J_bar = sum w J / sum w``,
    ``uv_bar = sum w uv / sum w`` and centred ``J~ = J - J_bar``, ``uv~ = uv - uv_bar``::

        s = sum_j w_j <J~_j, uv~_j> / sum_j w_j ||J~_j||^2,     T = uv_bar - s J_bar.

    This is the solution of the 3x3 normal equations, without forming or inverting them. ``s`` is
    unconstrained: inconsistent data can give ``s <= 0``, which is still the least-squares answer.

    Degenerate cases (``ok`` False, no NaN in values or gradients):

    - no data, ``sum w <= min_weight`` (confidences are expected in ``[0, 1]``): every ``(s, T)``
      is a minimiser; the fallback is ``s = 0`` and ``T`` = the unweighted mean of ``uv``.
    - the weighted joints coincide (one joint with weight, or all at one point): the spread
      ``sum w ||J~||^2 <= eps * sum w ||J||^2`` (``eps`` of the dtype) leaves ``s`` free; the
      fallback is the minimiser with ``s = 0``, ``T = uv_bar``.

    Collinear but distinct joints are not degenerate: an isotropic scale and a translation are
    determined by any two distinct points.

    Args:
        xyc: ``(B, J, 3)`` detections ``(u, v, c)``: pixels and confidence.
        joints: ``(B, J, 2|3)`` joints (e.g. mm); only ``x, y`` are used.
        min_weight: threshold on ``sum_j c_j^2`` below which a sample has no data.

    Returns:
        :class:`Registration`, differentiable w.r.t. ``xyc`` and ``joints``; call ``.detach()`` on
        it to use ``s, T`` as constants (as the ICCV 2021 network does). Same type as ``xyc``.
    """
    d, to_output = as_tensor(xyc, "xyc", 3)
    J = like(joints, d)
    if d.ndim != 3:
        raise ValueError(f"xyc must be (B, J, 3), got {tuple(d.shape)}")
    if J.ndim != 3 or J.shape[:2] != d.shape[:2] or J.shape[-1] not in (2, 3):
        raise ValueError(f"joints must be {tuple(d.shape[:2])} + (2|3,), got {tuple(J.shape)}")
    if d.shape[1] == 0:
        raise ValueError("need at least one joint")
    # w_j = c_j^2; only x, y of the joints are used.
    s, t, ok = scale_translation(J[..., :2], d[..., :2], d[..., 2] * d[..., 2], min_weight)
    params = torch.cat([s[:, None], t], -1)
    return Registration(to_output(params), to_output(ok))




def align_scale_translation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` moved by the scale and translation (no rotation) closest to ``target``
    (:func:`scale_translation` with equal weights), numpy float64.

    Args:
        source, target: ``(..., J, 3)``.
    Returns:
        ``(..., J, 3)`` ``s source + t``.
    """
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim < 2 or source.shape[-1] != 3:
        raise ValueError(f"source and target must both be (..., J, 3), got {source.shape} and {target.shape}")
    src = torch.from_numpy(np.ascontiguousarray(source.reshape(-1, *source.shape[-2:])))
    tgt = torch.from_numpy(np.ascontiguousarray(target.reshape(src.shape)))
    s, t, _ = scale_translation(src, tgt, torch.ones(src.shape[:2], dtype=torch.float64))
    return (s[:, None, None] * src + t[:, None]).numpy().reshape(source.shape)


def placed_keypoints(hand: "HandPrediction", fit: "FitResult") -> np.ndarray:
    """``(21, 3)`` mm: the predicted root-relative 3D keypoints placed on the fitted hand in the
    camera frame (:func:`align_scale_translation` onto ``fit.keypoints[0]``)."""
    return align_scale_translation(hand.keypoints_3d, fit.keypoints[0])


class Similarity(NamedTuple):
    """``x -> scale R x + translation`` per set: ``rotation (N, 3, 3)``, ``scale (N,)``,
    ``translation (N, 3)``."""

    rotation: np.ndarray
    scale: np.ndarray
    translation: np.ndarray


def umeyama(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> Similarity:
    """The similarity ``s R x + t`` closest to ``target`` in weighted least squares (Umeyama 1991).

    With weighted centroids ``mu_x``, ``mu_y``, centred ``x_j``, ``y_j`` and
    ``U S V^T = svd(sum_j w_j y_j x_j^T)``: ``R = U D V^T`` with ``D = diag(1, 1, sign det(U V^T))``
    (a rotation, never a reflection), ``s = tr(S D) / sum_j w_j |x_j|^2`` and
    ``t = mu_y - s R mu_x``. Weights only matter relatively; points with weight 0 are ignored
    (they may be NaN); a set without weight or extent gets ``s = 0``.

    Args:
        source, target: ``(N, J, 3)``; weights: ``(N, J)`` >= 0.
    """
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)[..., None]
    if source.ndim != 3 or source.shape != target.shape or source.shape[-1] != 3 or w.shape[:-1] != source.shape[:-1]:
        raise ValueError(f"source and target must be (N, J, 3) with weights (N, J), got {source.shape}, "
                         f"{target.shape} and {w.shape[:-1]}")
    used = w > 0
    source, target = np.where(used, source, 0.0), np.where(used, target, 0.0)
    total = np.where(used.any(axis=1, keepdims=True), w.sum(axis=1, keepdims=True), 1.0)  # (N, 1, 1)
    mu_x, mu_y = (w * source).sum(axis=1, keepdims=True) / total, (w * target).sum(axis=1, keepdims=True) / total
    x, y = source - mu_x, target - mu_y
    u, s, vt = np.linalg.svd(np.einsum("nj,nji,njk->nik", w[..., 0], y, x))
    d = np.ones_like(s)
    d[:, -1] = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)
    rotation = u @ (d[:, :, None] * vt)
    var_x = (w * x ** 2).sum(axis=(1, 2))
    scale = (s * d).sum(axis=1) / np.where(var_x > 0, var_x, 1.0)
    translation = mu_y[:, 0] - scale[:, None] * np.einsum("nik,nk->ni", rotation, mu_x[:, 0])
    return Similarity(rotation, scale, translation)


def kabsch(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rotation ``R (3, 3)`` minimising ``sum_j w_j |R (S_j - mu_S) - (T_j - mu_T)|^2``: the rotation
    of :func:`umeyama` for one set, ``source, target (J, 3)``, ``weights (J,)``."""
    return umeyama(np.asarray(source)[None], np.asarray(target)[None], np.asarray(weights)[None]).rotation[0]


__all__ = [
    "Registration",
    "Similarity",
    "align_scale_translation",
    "fit_scale_translation",
    "kabsch",
    "placed_keypoints",
    "scale_translation",
    "umeyama",
]
