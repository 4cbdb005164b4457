"""Pinhole and weak-perspective cameras, homogeneous coordinates; the intrinsics of uncalibrated
photos (:func:`default_intrinsics`) and a rigid pose from 2D keypoints (:func:`rotation_from_2d`,
:func:`translation_from_2d`, :func:`translation_from_size`).

Conventions:

- Camera frame: x right, y down, z forward (OpenCV); millimetres. Pixels: ``u`` right, ``v`` down.
- **The package's pixel convention: integer pixel centres.** Pixel column ``u``, row ``v`` has its
  centre at ``(u, v)`` and covers ``[u - 0.5, u + 0.5]``; a ``W x H`` image spans
  ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` and its centre is ``((W - 1) / 2, (H - 1) / 2)``. Every
  array of pixel coordinates that crosses a module border follows it (camera, render, heatmap,
  estimator outputs, ground-truth files, drawing: OpenCV uses it too). *Continuous* coordinates
  (``[0, W]``, pixel centres at ``+0.5``: MediaPipe's normalised landmarks times the size, click
  events, the detection views' matrices) convert at the boundary with
  :func:`continuous_to_centres` (``u = x - 0.5``), :func:`centres_to_continuous` and, for a
  continuous affine map ``[A | t]``, :func:`handpose.views.affine_on_centres`.
- Intrinsics ``K = [[fx, skew, cx], [0, fy, cy], [0, 0, 1]]``; extrinsics map world to camera,
  ``x_cam = R X + t``.
- Cameras are per point set: points are ``(..., N, 3)`` and ``K``, ``R``, ``t`` (``(..., 3, 3)``,
  ``(..., 3, 3)``, ``(..., 3)``) have batch shapes that broadcast with ``points.shape[:-2]``. So
  ``(B, N, 3)`` points go with one ``(B, 3, 3)`` K per set; for one camera per point use
  ``(..., 1, 3)`` points. A single ``(3,)`` point is accepted and gives ``(..., 2)``.
- Functions take numpy arrays or torch tensors and return the type of their main argument
  (``points``, ``uv``, ``t``, ``transl``); torch inputs stay differentiable. Numpy inputs are
  computed through zero-copy torch views.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np
import torch

from handpose._arrays import ArrayLike, as_tensor, like


def intrinsics(f: float, cx: float, cy: float, fy: float | None = None) -> np.ndarray:
    """Pinhole intrinsic matrix ``(3, 3)`` float64 with ``fx = f``, ``fy = fy or f``, no skew."""
    fy = f if fy is None else fy
    for name, value in (("f", f), ("fy", fy)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"focal length {name} must be finite and > 0, got {value}")
    if not (np.isfinite(cx) and np.isfinite(cy)):
        raise ValueError(f"principal point must be finite, got ({cx}, {cy})")
    return np.array([[f, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)



def continuous_to_centres(xy: ArrayLike) -> ArrayLike:
    """``(..., 2)`` continuous pixel coordinates (image ``[0, W]``) -> the package's integer-centre
    ones: ``u = x - 0.5``, ``v = y - 0.5`` (numpy or torch, type kept)."""
    return xy - 0.5


def centres_to_continuous(uv: ArrayLike) -> ArrayLike:
    """Inverse of :func:`continuous_to_centres`: ``x = u + 0.5``, ``y = v + 0.5``."""
    return uv + 0.5


def supersampled_intrinsics(K: np.ndarray, s: int) -> np.ndarray:
    """``(3, 3)`` intrinsics of the same camera on an ``s`` times finer pixel grid.

    Pixel ``u`` covers sub-pixels ``s u + (0 .. s-1)``, whose centres are ``u_s = s (u + 1/2) - 1/2``
    (:func:`resize_pixels`): ``f_s = s f``, ``c_s = s c + (s - 1) / 2``.
    """
    Ks = np.array(K, dtype=np.float64)
    Ks[:2, :2] *= s
    Ks[:2, 2] = resize_pixels(Ks[:2, 2], s, s)
    return Ks


def resize_pixels(uv: ArrayLike, scale_x: float, scale_y: float) -> ArrayLike:
    """``(..., 2)`` pixel centres of an image -> those of the image resized by ``(scale_x, scale_y)``
    (new size / old size): ``u' = (u + 0.5) s_x - 0.5`` (the pixel edges scale, not the centres)."""
    if not (scale_x > 0 and scale_y > 0):
        raise ValueError(f"scales must be positive, got {scale_x}, {scale_y}")
    scale = uv.new_tensor([scale_x, scale_y]) if torch.is_tensor(uv) else np.array([scale_x, scale_y])
    return (uv + 0.5) * scale - 0.5


def project(
    points: ArrayLike,
    K: ArrayLike,
    R: ArrayLike | None = None,
    t: ArrayLike | None = None,
) -> ArrayLike:
    """Perspective projection of 3D points to pixels.

    Args:
        points: ``(..., N, 3)`` (or one ``(3,)`` point), world frame (camera frame if no R, t).
        K: ``(3, 3)`` or ``(..., 3, 3)`` intrinsics, last row ``[0, 0, 1]``.
        R: optional ``(3, 3)`` or ``(..., 3, 3)`` world-to-camera rotation (identity if None).
        t: optional ``(3,)`` or ``(..., 3)`` world-to-camera translation (zero if None).

    Returns:
        ``(..., N, 2)`` pixels ``(u, v)``, same type as ``points``. Points with camera depth
        ``z <= 0`` (on or behind the camera plane) have no image: they give ``NaN`` (with zero
        gradient), never a mirrored pixel.
    """
    X, to_output = as_tensor(points, "points", 3)
    single = X.ndim == 1
    X = X[None] if single else X
    Km = _intrinsics_tensor(K, X)
    Rm = None if R is None else _rotation(R, X)
    tv = None if t is None else _translation(t, X)
    batch = [X.shape[:-2], Km.shape[:-2]]
    batch += [] if Rm is None else [Rm.shape[:-2]]
    batch += [] if tv is None else [tv.shape[:-1]]
    _broadcast(batch, "project: batch shapes of points[:-2], K, R, t")
    # x_cam = R X + t
    if Rm is not None:
        X = X @ Rm.mT
    if tv is not None:
        X = X + tv[..., None, :]
    uv = pinhole(X, Km)
    return to_output(uv[..., 0, :] if single else uv)


def pinhole(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``(..., N, 2)`` pixels of camera-frame ``(..., N, 3)`` points under ``K (..., 3, 3)``.

    The projection of :func:`project` without its validation, for callers that check ``K`` once
    and project many times (the fitting loop). Points with ``z <= 0`` give NaN with zero gradient.
    """
    z = points[..., 2]
    front = z > 0
    z = torch.where(front, z, torch.ones_like(z))
    # x_n = x / z, y_n = y / z;  u = fx x_n + skew y_n + cx;  v = fy y_n + cy
    xn, yn = points[..., 0] / z, points[..., 1] / z
    fx, skew, cx = K[..., 0, 0, None], K[..., 0, 1, None], K[..., 0, 2, None]
    fy, cy = K[..., 1, 1, None], K[..., 1, 2, None]
    uv = torch.stack([fx * xn + skew * yn + cx, fy * yn + cy], dim=-1)
    return torch.where(front[..., None], uv, torch.full_like(uv, float("nan")))


def unproject(uv: ArrayLike, depth: ArrayLike | float, K: ArrayLike) -> ArrayLike:
    """Camera-frame 3D points from pixels and depths (the inverse of :func:`project` without R, t).

    Args:
        uv: ``(..., N, 2)`` pixels (or one ``(2,)`` pixel).
        depth: camera ``z`` of each pixel (not the distance along the ray), broadcastable to
            ``uv.shape[:-1]``.
        K: ``(3, 3)`` or ``(..., 3, 3)`` intrinsics; the batch shape broadcasts with
            ``uv.shape[:-2]``.

    Returns:
        ``(..., N, 3)`` camera-frame points ``z * (x_n, y_n, 1)``, same type as ``uv``.
    """
    p, to_output = as_tensor(uv, "uv", 2)
    single = p.ndim == 1
    p = p[None] if single else p
    Km = _intrinsics_tensor(K, p)
    _broadcast([p.shape[:-2], Km.shape[:-2]], "unproject: batch shapes of uv[:-2] and K")
    z = like(depth, p)
    z = z[..., None] if single else z
    _broadcast([p.shape[:-1], z.shape], "unproject: depth and uv[:-1]")
    fx, skew, cx = Km[..., 0, 0, None], Km[..., 0, 1, None], Km[..., 0, 2, None]
    fy, cy = Km[..., 1, 1, None], Km[..., 1, 2, None]
    # y_n = (v - cy) / fy;  x_n = (u - cx - skew y_n) / fx;  X = z (x_n, y_n, 1)
    yn = (p[..., 1] - cy) / fy
    xn = (p[..., 0] - cx - skew * yn) / fx
    xn, yn, z = torch.broadcast_tensors(xn, yn, z)
    X = torch.stack([xn * z, yn * z, z], dim=-1)
    return to_output(X[..., 0, :] if single else X)


def to_homogeneous(x: ArrayLike) -> ArrayLike:
    """``(..., D)`` -> ``(..., D + 1)``: append a coordinate equal to 1."""
    v, to_output = as_tensor(x, "x", None)
    return to_output(torch.cat([v, torch.ones_like(v[..., :1])], dim=-1))


def from_homogeneous(x: ArrayLike) -> ArrayLike:
    """``(..., D + 1)`` -> ``(..., D)``: divide by the last coordinate ``w``.

    Points at infinity (``w = 0``) give ``inf``/``NaN`` by IEEE division; they have no finite image.
    """
    v, to_output = as_tensor(x, "x", None)
    if v.shape[-1] < 2:
        raise ValueError(f"x must be (..., D + 1) with D >= 1, got {tuple(v.shape)}")
    return to_output(v[..., :-1] / v[..., -1:])


def projection_matrix(K: ArrayLike, R: ArrayLike, t: ArrayLike) -> ArrayLike:
    """``P = K [R | t]``, ``(..., 3, 4)``, same type as ``K``.

    ``from_homogeneous(to_homogeneous(X) @ P.T)`` equals :func:`project` ``(X, K, R, t)`` for points
    in front of the camera.
    """
    Km, to_output = as_tensor(K, "K", None)
    Km = _intrinsics_tensor(Km, Km)
    Rm, tv = _rotation(R, Km), _translation(t, Km)
    shape = _broadcast([Km.shape[:-2], Rm.shape[:-2], tv.shape[:-1]], "K, R and t batch shapes")
    Rt = torch.cat([Rm.expand(*shape, 3, 3), tv.expand(*shape, 3)[..., None]], dim=-1)
    return to_output(Km @ Rt)


def weak_perspective(points: ArrayLike, s: ArrayLike | float, t: ArrayLike) -> ArrayLike:
    """Weak-perspective (scaled orthographic) projection ``uv = s X_xy + t``.

    Args:
        points: ``(..., N, 2|3)`` (or one ``(2|3,)`` point); only x, y are used.
        s: scale (pixels per unit of ``points``), a scalar or ``(...)``.
        t: ``(2,)`` or ``(..., 2)`` pixel translation.

    Returns:
        ``(..., N, 2)`` pixels, same type as ``points``.
    """
    X, to_output = as_tensor(points, "points", None)
    if X.shape[-1] not in (2, 3):
        raise ValueError(f"points must be (..., N, 2|3), got {tuple(X.shape)}")
    single = X.ndim == 1
    X = X[None] if single else X
    sv, tv = like(s, X), like(t, X)
    if tv.ndim < 1 or tv.shape[-1] != 2:
        raise ValueError(f"t must be (..., 2), got {tuple(tv.shape)}")
    _broadcast([X.shape[:-2], sv.shape, tv.shape[:-1]], "weak_perspective: points[:-2], s, t")
    uv = sv[..., None, None] * X[..., :2] + tv[..., None, :]
    return to_output(uv[..., 0, :] if single else uv)


class WeakCamera(NamedTuple):
    """A weak-perspective camera ``uv = s X_xy + t``: ``s`` ``(...)``, ``t`` ``(..., 2)`` pixels."""

    s: ArrayLike
    t: ArrayLike


def weak_to_perspective(
    s: ArrayLike | float, t: ArrayLike, f: ArrayLike | float, cx: ArrayLike | float,
    cy: ArrayLike | float,
) -> ArrayLike:
    """Camera translation of the perspective camera matching a weak-perspective one.

    The model: root-relative points ``X`` (e.g. mm) are placed at ``X + T`` in a pinhole camera
    ``K = intrinsics(f, cx, cy)`` (R = I), so ``u = f (X_x + T_x) / (X_z + T_z) + cx``. Weak
    perspective replaces every point's depth ``X_z + T_z`` by ``T_z``:
    ``u = (f / T_z) X_x + f T_x / T_z + cx = s X_x + t_u``. Hence::

        T_z = f / s,   T_x = (t_u - cx) / s,   T_y = (t_v - cy) / s.

    Both agree exactly for points with ``X_z = 0`` and differ by a relative ``O(X_z / T_z)``
    otherwise (small for far objects).

    Args:
        s: ``(...)`` scale in pixels per unit of ``X``, must be > 0.
        t: ``(..., 2)`` pixel translation.
        f, cx, cy: focal length (pixels, > 0) and principal point, scalars or ``(...)``.

    Returns:
        ``(..., 3)`` translation ``T``, in the units of ``X``; same type as ``t``.
    """
    tv, to_output = as_tensor(t, "t", 2)
    sv, fv, cxv, cyv = (like(v, tv) for v in (s, f, cx, cy))
    if not bool((sv > 0).all()):
        raise ValueError("weak-perspective scale s must be > 0")
    if not bool((fv > 0).all()):
        raise ValueError("focal length f must be > 0")
    # T = ((t_u - cx) / s, (t_v - cy) / s, f / s)
    transl = torch.stack(
        torch.broadcast_tensors((tv[..., 0] - cxv) / sv, (tv[..., 1] - cyv) / sv, fv / sv), dim=-1
    )
    return to_output(transl)


def perspective_to_weak(
    transl: ArrayLike, f: ArrayLike | float, cx: ArrayLike | float, cy: ArrayLike | float
) -> WeakCamera:
    """Weak-perspective camera approximating root-relative points placed at ``transl``.

    Inverse of :func:`weak_to_perspective` (same model): ``s = f / T_z``,
    ``t = f (T_x, T_y) / T_z + (cx, cy)``.

    Args:
        transl: ``(..., 3)`` translation ``T`` with ``T_z > 0``.
        f, cx, cy: focal length (pixels, > 0) and principal point, scalars or ``(...)``.

    Returns:
        :class:`WeakCamera` ``(s (...), t (..., 2))``, same type as ``transl``.
    """
    T, to_output = as_tensor(transl, "transl", 3)
    fv, cxv, cyv = (like(v, T) for v in (f, cx, cy))
    if not bool((T[..., 2] > 0).all()):
        raise ValueError("transl z must be > 0 (the object must be in front of the camera)")
    if not bool((fv > 0).all()):
        raise ValueError("focal length f must be > 0")
    s = fv / T[..., 2]
    t = torch.stack(torch.broadcast_tensors(s * T[..., 0] + cxv, s * T[..., 1] + cyv), dim=-1)
    return WeakCamera(to_output(torch.broadcast_to(s, t.shape[:-1])), to_output(t))


# ---------------------------------------------------------------------------------------------
# Cameras of uncalibrated photos, and a rigid pose from 2D keypoints (numpy, one point set)
# ---------------------------------------------------------------------------------------------
def check_intrinsics(K: np.ndarray) -> np.ndarray:
    """``K`` ``(..., 3, 3)`` as float64 if it is a pinhole intrinsic matrix, else a ``ValueError``.

    Finite, positive focal lengths ``fx, fy``, and upper triangular with last row ``[0, 0, 1]``
    (a transposed ``K``, with ``cx, cy`` in the last row, is the usual mistake).
    """
    Km = np.asarray(K, dtype=np.float64)
    if Km.ndim < 2 or Km.shape[-2:] != (3, 3) or not np.all(np.isfinite(Km)):
        raise ValueError(f"K must be a finite (..., 3, 3) intrinsic matrix, got shape {Km.shape}")
    if np.any(Km[..., 0, 0] <= 0) or np.any(Km[..., 1, 1] <= 0):
        raise ValueError("K must have positive focal lengths fx = K[0, 0] and fy = K[1, 1]")
    if np.any(Km[..., [1, 2, 2, 2], [0, 0, 1, 2]] != [0.0, 0.0, 0.0, 1.0]):
        raise ValueError("K must be upper triangular with last row [0, 0, 1] (is it transposed?)")
    return Km


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


def translation_from_2d(points: np.ndarray, uv: np.ndarray, K: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Translation ``t (3,)`` making ``project(points + t, K)`` match ``uv`` in least squares.

    From ``u = (fx (X + tx) + skew (Y + ty)) / (Z + tz) + cx`` and ``v = fy (Y + ty) / (Z + tz) + cy``:
    ``fx tx + skew ty - (u - cx) tz = (u - cx) Z - fx X - skew Y`` and
    ``fy ty - (v - cy) tz = (v - cy) Z - fy Y``: linear in ``t`` (the depth comes from the 3D vs
    2D size of the points).

    Args:
        points: ``(J, 3)`` mm; uv: ``(J, 2)`` px; K: ``(3, 3)``; weights: ``(J,)``.
    """
    fx, skew, fy, cx, cy = K[0, 0], K[0, 1], K[1, 1], K[0, 2], K[1, 2]
    du, dv = uv[:, 0] - cx, uv[:, 1] - cy
    zeros = np.zeros_like(du)
    a = np.concatenate([np.stack([np.full_like(du, fx), np.full_like(du, skew), -du], 1),
                        np.stack([zeros, np.full_like(dv, fy), -dv], 1)])
    b = np.concatenate([du * points[:, 2] - fx * points[:, 0] - skew * points[:, 1],
                        dv * points[:, 2] - fy * points[:, 1]])
    sw = np.sqrt(np.concatenate([weights, weights]))
    t, *_ = np.linalg.lstsq(a * sw[:, None], b * sw, rcond=None)
    return t


def translation_from_size(points: np.ndarray, uv: np.ndarray, K: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Translation ``t (3,)`` from the sizes of ``points (J, 3)`` mm and ``uv (J, 2)`` px alone.

    Pinhole scaling: an object of RMS size ``S`` mm (about its weighted centroid) spans
    ``s = f S / z`` px at depth ``z``, so ``z = f S / s`` with ``f = sqrt(fx fy)``; the centroid
    is then placed on the ray of the 2D centroid (:func:`unproject`). The 2D size
    is floored at 1 px (a hand less than a pixel across is put where it spans one). The fallback
    when the least squares of :func:`translation_from_2d` put the points behind the camera.
    """
    w = weights / max(weights.sum(), 1e-12)
    centre3, centre2 = w @ points, w @ uv
    size3 = math.sqrt(float(w @ ((points - centre3) ** 2).sum(-1)))
    size2 = max(math.sqrt(float(w @ ((uv - centre2) ** 2).sum(-1))), 1.0)
    depth = math.sqrt(K[0, 0] * K[1, 1]) * size3 / size2
    return unproject(centre2[None], depth, K)[0] - centre3


def rotation_from_2d(points: np.ndarray, uv: np.ndarray, K: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rotation ``R (3, 3)`` of the rigid ``points (J, 3)`` seen at ``uv (J, 2)``: OpenCV's SQPnP on
    the joints with weight > 0 (at least 3); the identity where PnP fails."""
    used = weights > 0
    try:
        ok, rvec, _ = cv2.solvePnP(points[used].astype(np.float64), uv[used].astype(np.float64),
                                   K.astype(np.float64), None, flags=cv2.SOLVEPNP_SQPNP)
    except cv2.error:  # degenerate 2D points (e.g. all on one pixel): no rotation to recover
        ok = False
    return cv2.Rodrigues(rvec)[0] if ok else np.eye(3)


def _intrinsics_tensor(K: ArrayLike, ref: torch.Tensor) -> torch.Tensor:
    """Validated ``(..., 3, 3)`` intrinsics as a tensor like ``ref``."""
    Km = like(K, ref)
    if Km.ndim < 2 or Km.shape[-2:] != (3, 3):
        raise ValueError(f"K must be (..., 3, 3), got {tuple(Km.shape)}")
    lower = Km.detach()[..., [1, 2, 2, 2], [0, 0, 1, 2]]
    if not bool(torch.all(lower == lower.new_tensor([0.0, 0.0, 0.0, 1.0]))):
        raise ValueError("K must be upper triangular with last row [0, 0, 1] (is it transposed?)")
    return Km


def _rotation(R: ArrayLike, ref: torch.Tensor) -> torch.Tensor:
    Rm = like(R, ref)
    if Rm.ndim < 2 or Rm.shape[-2:] != (3, 3):
        raise ValueError(f"R must be (..., 3, 3), got {tuple(Rm.shape)}")
    return Rm


def _translation(t: ArrayLike, ref: torch.Tensor) -> torch.Tensor:
    tv = like(t, ref)
    if tv.ndim < 1 or tv.shape[-1] != 3:
        raise ValueError(f"t must be (..., 3), got {tuple(tv.shape)}")
    return tv


def _broadcast(shapes: list, what: str) -> torch.Size:
    try:
        return torch.broadcast_shapes(*shapes)
    except RuntimeError as err:
        raise ValueError(f"{what} do not broadcast: {[tuple(s) for s in shapes]}") from err
