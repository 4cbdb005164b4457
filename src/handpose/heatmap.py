"""Gaussian keypoint heatmaps, (soft-)argmax decoding and the heatmap registration (the least-squares
scale + translation fit itself is :func:`handpose.alignment.fit_scale_translation`).

Pixel grid convention (as the ICCV 2021 authors): heatmap entry ``h[..., y, x]`` is the value at
the integer pixel coordinates ``(x, y)``, the pixel centre; there is no half-pixel offset, also when
coordinates are rescaled between grids (``p * output_size / origin_size``).

Functions take torch tensors (and numpy arrays, returned as numpy) and stay differentiable.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from handpose.alignment import fit_scale_translation
from handpose._arrays import ArrayLike, as_tensor, like

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
    p, to_output = as_tensor(points, "points", 2)
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
    h, to_output = as_tensor(heatmaps, "heatmaps", None)
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
    h, to_output = as_tensor(heatmaps, "heatmaps", None)
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
    d, to_output = as_tensor(xyc, "xyc", 3)
    J = like(joints, d)
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
