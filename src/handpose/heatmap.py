"""Gaussian keypoint heatmaps, (soft-)argmax decoding and the least-squares 2D registration.

Pixel grid convention (as the ICCV 2021 authors): heatmap entry ``h[..., y, x]`` is the value at
the integer pixel coordinates ``(x, y)``, the pixel centre; there is no half-pixel offset, also when
coordinates are rescaled between grids (``p * output_size / origin_size``).

Functions take torch tensors (and numpy arrays, returned as numpy) and stay differentiable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from handpose.camera import ArrayLike, _as_tensor, _like, weak_perspective

#: The ICCV 2021 network's registration mask uses ``exp(-d^2 / 3)``: ``2 sigma^2 = 3``.
ICCV21_SIGMA = math.sqrt(1.5)


def gaussian_heatmaps(
    points: ArrayLike, height: int, width: int, sigma: float = 2.0
) -> ArrayLike:
    """Unnormalised Gaussians centred on keypoints.

    ``h[..., y, x] = exp(-((x - p_x)^2 + (y - p_y)^2) / (2 sigma^2))``, computed as the product of
    a row and a column Gaussian.

    Args:
        points: ``(B, J, 2)`` (any leading shape) pixel coordinates ``(x, y)``.
        height, width: grid size ``H, W``.
        sigma: standard deviation in pixels, > 0.

    Returns:
        ``(B, J, H, W)`` values in ``[0, 1]``, equal to 1 at a point on the integer grid.
    """
    p, to_output = _as_tensor(points, "points", 2)
    _check_size(height, "height")
    _check_size(width, "width")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return to_output(_gaussians(p, height, width, 2.0 * sigma * sigma))


def argmax_2d(heatmaps: ArrayLike) -> ArrayLike:
    """Integer location and value of each heatmap's maximum.

    Args:
        heatmaps: ``(B, J, H, W)`` (any leading shape).

    Returns:
        ``(B, J, 3)`` = ``(u, v, c)``: column ``u`` and row ``v`` of the first maximum in row-major
        order (as floats), and the maximum value ``c``. Not differentiable in ``u, v``.
    """
    h, to_output = _as_tensor(heatmaps, "heatmaps", None)
    _check_grid(h)
    c, index = h.flatten(-2).max(dim=-1)
    width = h.shape[-1]
    u, v = (index % width).to(h.dtype), (index // width).to(h.dtype)
    return to_output(torch.stack([u, v, c], dim=-1))


def soft_argmax_2d(heatmaps: ArrayLike, beta: float = 1.0) -> ArrayLike:
    """Differentiable sub-pixel keypoint location: the mean position under ``softmax(beta h)``.

    ``p[y, x] = exp(beta h[y, x]) / sum exp(beta h)``; ``(u, v) = sum p[y, x] (x, y)``.

    The heatmaps are read as logits. For a probability-like heatmap ``g`` in ``[0, 1]`` (such as
    :func:`gaussian_heatmaps`) pass ``log(g)`` with ``beta = 1``: then ``p = g / sum g`` and a
    Gaussian's centre is recovered to sub-pixel precision. ``softmax(beta g)`` itself gives every
    background pixel a weight of at least 1, which pulls the estimate towards the grid centre unless
    ``beta`` is large, and a large ``beta`` rounds towards the integer argmax.

    Args:
        heatmaps: ``(B, J, H, W)`` logits (any leading shape).
        beta: inverse temperature, > 0.

    Returns:
        ``(B, J, 2)`` = ``(u, v)`` in pixels.
    """
    h, to_output = _as_tensor(heatmaps, "heatmaps", None)
    _check_grid(h)
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    height, width = h.shape[-2:]
    p = torch.softmax(beta * h.flatten(-2), dim=-1).unflatten(-1, (height, width))
    xs = torch.arange(width, dtype=h.dtype, device=h.device)
    ys = torch.arange(height, dtype=h.dtype, device=h.device)
    u = (p.sum(dim=-2) * xs).sum(dim=-1)
    v = (p.sum(dim=-1) * ys).sum(dim=-1)
    return to_output(torch.stack([u, v], dim=-1))


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
            J = _like(joints, params)
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
    d, to_output = _as_tensor(xyc, "xyc", 3)
    J = _like(joints, d)
    if d.ndim != 3:
        raise ValueError(f"xyc must be (B, J, 3), got {tuple(d.shape)}")
    if J.ndim != 3 or J.shape[:2] != d.shape[:2] or J.shape[-1] not in (2, 3):
        raise ValueError(f"joints must be {tuple(d.shape[:2])} + (2|3,), got {tuple(J.shape)}")
    if d.shape[1] == 0:
        raise ValueError("need at least one joint")
    # x and y as separate (B, J) planes: every reduction runs over a contiguous joint axis.
    jx, jy, u, v, c = J[..., 0], J[..., 1], d[..., 0], d[..., 1], d[..., 2]
    w = c * c
    has_data = w.sum(dim=-1) > min_weight  # (B,)
    # Without data, centroids fall back to uniform weights (finite, and not used for s).
    w = torch.where(has_data[:, None], w, torch.ones_like(w))
    W = w.sum(dim=-1, keepdim=True)  # (B, 1)
    jx_bar, jy_bar = (w * jx).sum(-1, keepdim=True) / W, (w * jy).sum(-1, keepdim=True) / W
    u_bar, v_bar = (w * u).sum(-1, keepdim=True) / W, (w * v).sum(-1, keepdim=True) / W
    jx_c, jy_c = jx - jx_bar, jy - jy_bar
    num = (w * (jx_c * u + jy_c * v)).sum(-1)  # sum w <J~, uv~> = sum w <J~, uv>
    den = (w * (jx_c * jx_c + jy_c * jy_c)).sum(-1)  # sum w ||J~||^2
    spread = den > torch.finfo(d.dtype).eps * (w * (jx * jx + jy * jy)).sum(-1)
    ok = has_data & spread
    s = torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))
    # T = uv_bar - s J_bar
    params = torch.cat([s[:, None], u_bar - s[:, None] * jx_bar, v_bar - s[:, None] * jy_bar], -1)
    return Registration(to_output(params), to_output(ok))


def register_heatmap(
    xyc: ArrayLike,
    joints: ArrayLike,
    origin_size: int,
    output_size: int,
    sigma: float = ICCV21_SIGMA,
    detach_fit: bool = False,
) -> ArrayLike:
    """Union heatmap of the joints registered onto the detections (ICCV 2021, section 6).

    ``(s, T) = fit_scale_translation(xyc, joints)`` on the ``origin_size`` grid of ``xyc``, then::

        p_j = (s J_xy,j + T) * output_size / origin_size      (no half-pixel offset)
        h_j(x) = exp(-||x - p_j||^2 / (2 sigma^2))
        H(x) = 1 - prod_j (1 - h_j(x))

    The ICCV 2021 network's mask is ``sigma=ICCV21_SIGMA`` (``exp(-d^2 / 3)``: ``2 sigma^2`` rounds
    to exactly 3 in float32 and is within one ulp of it in float64) with ``detach_fit=True``.

    Args:
        xyc: ``(B, J, 3)`` detections ``(u, v, c)`` in ``origin_size`` grid pixels.
        joints: ``(B, J, 2|3)`` joints (e.g. mm).
        origin_size: side of the (square) grid of ``xyc``.
        output_size: side of the output grid.
        sigma: Gaussian standard deviation in output pixels.
        detach_fit: use ``s, T`` as constants; gradients then reach ``joints`` only through ``p``.

    Returns:
        ``(B, output_size, output_size)`` values in ``[0, 1]``; same type as ``xyc``.
    """
    _check_size(origin_size, "origin_size")
    _check_size(output_size, "output_size")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    d, to_output = _as_tensor(xyc, "xyc", 3)
    J = _like(joints, d)
    fit = fit_scale_translation(d, J)
    if detach_fit:
        fit = fit.detach()
    p = fit.apply(J) * (output_size / origin_size)  # (B, J, 2)
    h = _gaussians(p, output_size, output_size, 2.0 * sigma * sigma)  # (B, J, H, W)
    return to_output(1.0 - torch.prod(1.0 - h, dim=1))


def _gaussians(p: torch.Tensor, height: int, width: int, denominator: float) -> torch.Tensor:
    """``(..., 2)`` -> ``(..., H, W)``: ``exp(-(x - p_x)^2 / d) exp(-(y - p_y)^2 / d)``."""
    xs = torch.arange(width, dtype=p.dtype, device=p.device)
    ys = torch.arange(height, dtype=p.dtype, device=p.device)
    gx = torch.exp(-((xs - p[..., 0, None]) ** 2) / denominator)  # (..., W)
    gy = torch.exp(-((ys - p[..., 1, None]) ** 2) / denominator)  # (..., H)
    return gy[..., :, None] * gx[..., None, :]


def _check_size(n: int, name: str) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")


def _check_grid(h: torch.Tensor) -> None:
    if h.ndim < 2 or h.shape[-1] == 0 or h.shape[-2] == 0:
        raise ValueError(f"heatmaps must be (..., H, W) with H, W >= 1, got {tuple(h.shape)}")
