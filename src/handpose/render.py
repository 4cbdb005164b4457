"""Headless mesh rendering: a vectorised z-buffer rasteriser, shaded overlays on photos, OBJ export.

Everything here is numpy on the CPU (no display, no OpenGL). Conventions:

- Camera frame: x right, y down, z forward, millimetres. A vertex projects with the pinhole
  ``u = fx x / z + cx``, ``v = fy y / z + cy`` (see :mod:`handpose.camera`).
- Pixel ``(col, row)`` covers ``[col - 0.5, col + 0.5] x [row - 0.5, row + 0.5]``: integer image
  coordinates are pixel centres (OpenCV's convention), and a pixel is covered when its centre is
  inside a triangle.
- Depth is the camera-frame ``z`` (mm), interpolated perspective-correctly: ``1 / z`` is affine in
  screen space, so ``1 / z(p) = sum_i b_i(p) / z_i`` with the screen-space barycentrics ``b_i``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np

from handpose.camera import check_intrinsics, project, resize_pixels
from handpose.io import check_image, write_atomic
from handpose.mesh import check_mesh, face_normals, vertex_normals

if TYPE_CHECKING:
    from handpose.fitting import FitResult

#: Default per-hand colours (RGB 0-255), cycled over the meshes.
HAND_COLORS: tuple[tuple[int, int, int], ...] = (
    (120, 175, 235),
    (240, 165, 110),
    (150, 215, 140),
    (215, 140, 215),
)

#: Mesh colour (RGB 0-255) of each handedness in overlays of fitted hands (:func:`mesh_overlay`).
SIDE_COLORS: dict[str, tuple[int, int, int]] = {"right": (80, 150, 255), "left": (110, 215, 110)}

#: Default light direction (from the surface towards the light, camera frame): upper left, near
#: the camera.
DEFAULT_LIGHT_DIR: tuple[float, float, float] = (-0.3, -0.5, -1.0)

# Barycentric tolerance of the inside test (closes cracks on shared edges from rounding).
_EPS = 1e-6
# Near plane (mm) of overlays and depth renders: faces with a vertex closer are clipped.
_NEAR = 1e-3


class Rasterization(NamedTuple):
    """The per-pixel output of :func:`rasterize`.

    Attributes:
        depth: ``(H, W)`` float64 depth of the nearest surface, ``inf`` where nothing is drawn.
        face_id: ``(H, W)`` int64 index of the nearest face, ``-1`` where nothing is drawn.
        barycentrics: ``(H, W, 3)`` float64 weights of the face's three vertices at the pixel
            centre (perspective-correct when rasterised so), zeros where nothing is drawn.
    """

    depth: np.ndarray
    face_id: np.ndarray
    barycentrics: np.ndarray


@dataclass(frozen=True)
class _Coverage:
    """The nearest face at each covered pixel, with what is needed to interpolate there.

    ``pixels (N,)`` flat indices ``row * width + col``; ``tri (N,)`` index into the kept faces;
    ``A, B, C (3, T)`` affine barycentric coefficients and ``z (3, T)`` vertex depths of the kept
    faces; ``ids (T,)`` their indices in the input faces.
    """

    pixels: np.ndarray
    tri: np.ndarray
    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    z: np.ndarray
    ids: np.ndarray
    width: int
    perspective_correct: bool

    def interpolate(self, sel: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Depth ``(n,)`` and barycentrics ``(3, n)`` at the covered pixels ``sel``, float64."""
        t = self.tri[sel]
        py, px = np.divmod(self.pixels[sel], self.width)
        b = np.take(self.A, t, axis=1) * px + np.take(self.B, t, axis=1) * py + np.take(self.C, t, axis=1)
        zt = np.take(self.z, t, axis=1)
        if self.perspective_correct:
            # Perspective-correct weights: b'_i = (b_i / z_i) / sum_j (b_j / z_j), depth = 1 / sum.
            bz = b / zt
            inv = bz[0] + bz[1] + bz[2]
            return 1.0 / inv, bz / inv
        return b[0] * zt[0] + b[1] * zt[1] + b[2] * zt[2], b


def _rasterize_core(
    vertices: np.ndarray, faces: np.ndarray, height: int, width: int, perspective_correct: bool, near: float
) -> _Coverage | None:
    """z-buffer the faces; ``None`` when no pixel is covered. Inputs are already validated."""
    # Component-first layout, (3 vertices, F): numpy reduces and gathers fastest along the long axis.
    x, y, z = (np.take(vertices[:, c], faces.T) for c in range(3))  # (3, F) each
    x_lo, x_hi = np.minimum(np.minimum(x[0], x[1]), x[2]), np.maximum(np.maximum(x[0], x[1]), x[2])
    y_lo, y_hi = np.minimum(np.minimum(y[0], y[1]), y[2]), np.maximum(np.maximum(y[0], y[1]), y[2])
    # Covered pixel centres of a face lie in [ceil(min x), floor(max x)], clipped to the image.
    x0, x1 = np.maximum(np.ceil(x_lo), 0), np.minimum(np.floor(x_hi), width - 1)
    y0, y1 = np.maximum(np.ceil(y_lo), 0), np.minimum(np.floor(y_hi), height - 1)
    # Twice the signed area: a2 = (x1 - x0)(y2 - y0) - (x2 - x0)(y1 - y0).
    area2 = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])
    keep = (x1 >= x0) & (y1 >= y0) & (np.abs(area2) > 1e-12)
    if perspective_correct:
        keep &= np.minimum(np.minimum(z[0], z[1]), z[2]) > near
    ids = np.flatnonzero(keep)
    if ids.size == 0:
        return None
    x, y, z, area2 = x[:, ids], y[:, ids], z[:, ids], area2[ids]
    x0, x1, y0 = (a[ids].astype(np.int64) for a in (x0, x1, y0))
    rows_per_face = y1[ids].astype(np.int64) - y0 + 1

    # Barycentrics are affine in the pixel p: with (j, k) the other two vertices of vertex i,
    # b_i = ((x_j - px)(y_k - py) - (x_k - px)(y_j - py)) / a2 = A_i px + B_i py + C_i.
    j, k = [1, 2, 0], [2, 0, 1]
    A = (y[j] - y[k]) / area2  # (3, T)
    B = (x[k] - x[j]) / area2
    C = (x[j] * y[k] - x[k] * y[j]) / area2
    # The depth key (smaller is nearer) is affine too: -1/z = -sum_i b_i / z_i, or z = sum_i b_i z_i.
    zw = -1.0 / z if perspective_correct else z
    kA, kB, kC = (A * zw).sum(0), (B * zw).sum(0), (C * zw).sum(0)  # (T,)

    # Scanline expansion, flat over all (face, row) pairs: on row py, b_i >= -eps is the half-line
    # px >= (or <=, as A_i > 0 or < 0) P_i + Q_i py with P_i = -(C_i + eps) / A_i, Q_i = -B_i / A_i,
    # so each row's pixels are one span [xl, xr]. A horizontal edge (A_i = 0) bounds rows only,
    # which the face's row range [ceil(min y), floor(max y)] already does.
    pos, neg = A > 1e-12, A < -1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        P, Q = -(C + _EPS) / A, -B / A
    P_lo, Q_lo = np.where(pos, P, -np.inf), np.where(pos, Q, 0.0)  # (3, T) lower bounds
    P_hi, Q_hi = np.where(neg, P, np.inf), np.where(neg, Q, 0.0)  # (3, T) upper bounds
    # Per-fragment arrays are int32 / float32 (image indices fit; halves the memory traffic).
    row_face = np.repeat(np.arange(len(ids), dtype=np.int32), rows_per_face)  # (R,)
    first_row = np.cumsum(rows_per_face) - rows_per_face
    row_y = np.arange(len(row_face)) - np.repeat(first_row - y0, rows_per_face)  # (R,)
    lo = [np.take(P_lo[i], row_face) + np.take(Q_lo[i], row_face) * row_y for i in range(3)]
    hi = [np.take(P_hi[i], row_face) + np.take(Q_hi[i], row_face) * row_y for i in range(3)]
    xl = np.maximum(np.ceil(np.maximum(np.maximum(lo[0], lo[1]), lo[2])), np.take(x0, row_face))
    xr = np.minimum(np.floor(np.minimum(np.minimum(hi[0], hi[1]), hi[2])), np.take(x1, row_face))
    length = np.where(xr >= xl, xr - xl + 1, 0).astype(np.int32)  # (R,)
    nz = np.flatnonzero(length)
    if nz.size == 0:
        return None
    length, row_face, row_y = length[nz], row_face[nz], row_y[nz]
    xl = xl[nz].astype(np.int64)
    # Fragment f of row r sits at px = xl_r + (f - first_r): one arange plus per-row offsets.
    first = np.cumsum(length, dtype=np.int32) - length
    offs = np.arange(int(first[-1] + length[-1]), dtype=np.int32) - np.repeat(first, length)  # (N,)
    pix = np.repeat((row_y * width + xl).astype(np.int32), length) + offs
    row_kA = np.take(kA, row_face)
    key_start = row_kA * xl + np.take(kB, row_face) * row_y + np.take(kC, row_face)
    key = np.repeat(key_start.astype(np.float32), length)
    key += np.repeat(row_kA.astype(np.float32), length) * offs.astype(np.float32)

    # z-buffer: the nearest fragment per pixel wins (ties: any of the tied faces).
    zbuf = np.full(height * width, np.inf, dtype=np.float32)
    np.minimum.at(zbuf, pix, key)
    win = np.flatnonzero(key == np.take(zbuf, pix))
    best = np.full(height * width, -1, dtype=np.int32)
    best[np.take(pix, win)] = np.take(np.repeat(row_face, length), win)
    covered = np.flatnonzero(best >= 0)
    return _Coverage(covered, np.take(best, covered), A, B, C, z, ids, width, perspective_correct)


def rasterize(
    vertices: np.ndarray,
    faces: np.ndarray,
    height: int,
    width: int,
    perspective_correct: bool = True,
    near: float = 1e-3,
) -> Rasterization:
    """Rasterise triangles given in screen space with a z-buffer.

    A pixel is covered by a face when its centre is inside the face (edges included); faces are
    drawn from both sides. Scanline algorithm, vectorised over all (face, row) pairs at once.

    Args:
        vertices: ``(V, 3)`` screen-space vertices ``(x_px, y_px, depth)``.
        faces: ``(F, 3)`` integer vertex indices.
        height, width: output size in pixels.
        perspective_correct: if true, ``depth`` is the camera ``z`` and is interpolated as
            ``1 / z``, barycentrics are perspective-correct, and faces with a vertex at
            ``z <= near`` are clipped (dropped); if false, depth and barycentrics are
            interpolated linearly in screen space (orthographic) and any depth is allowed.
        near: near plane for ``perspective_correct``.

    Returns:
        :class:`Rasterization` with ``depth (H, W)``, ``face_id (H, W)`` and
        ``barycentrics (H, W, 3)``.
    """
    vertices, faces = check_mesh(vertices, faces)
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height} x {width}")
    depth = np.full((height, width), np.inf)
    face_id = np.full((height, width), -1, dtype=np.int64)
    bary = np.zeros((height, width, 3))
    cov = _rasterize_core(vertices, faces, height, width, perspective_correct, near)
    if cov is not None:
        d, b = cov.interpolate()
        depth.reshape(-1)[cov.pixels] = d
        face_id.reshape(-1)[cov.pixels] = np.take(cov.ids, cov.tri)
        bary.reshape(-1, 3)[cov.pixels] = b.T
    return Rasterization(depth, face_id, bary)


def _as_mesh_list(
    vertices: np.ndarray | Sequence[np.ndarray], faces: np.ndarray | Sequence[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Normalise ``vertices`` (one ``(V, 3)`` or a list) and ``faces`` (shared or per mesh)."""
    if isinstance(vertices, np.ndarray) and vertices.ndim == 2:
        vertices = [vertices]
    vertices = list(vertices)
    if isinstance(faces, np.ndarray) and faces.ndim == 2:
        faces = [faces] * len(vertices)
    faces = list(faces)
    if len(faces) != len(vertices):
        raise ValueError(f"got {len(vertices)} meshes but {len(faces)} face arrays")
    return [check_mesh(v, f, name=f"vertices[{i}]") for i, (v, f) in enumerate(zip(vertices, faces))]


def _front_faces(vertices: np.ndarray, faces: np.ndarray, face_n: np.ndarray) -> np.ndarray:
    """The faces ``(F', 3)`` of a solid mesh that face a camera at the origin (back-face culling).

    The mesh's winding is read from its signed volume about the centroid c,
    ``6 vol = sum_f (v0 - c) . ((v1 - v0) x (v2 - v0))``; when the per-face terms do not mostly
    agree in sign (an open sheet, inconsistent winding) every face is kept.
    ``face_n``: ``(F, 3)`` from :func:`handpose.mesh.face_normals`.
    """
    v0 = vertices[faces[:, 0]]
    toward = np.einsum("fi,fi->f", v0, face_n)  # n . v0
    terms = toward - face_n @ vertices.mean(0)  # n . (v0 - c)
    if abs(terms.sum()) <= 0.5 * np.abs(terms).sum():
        return faces
    outward = np.sign(terms.sum())
    # Front-facing: the outward normal points towards the camera, n . (v0 - 0) < 0.
    return faces[outward * toward < 0]


def _check_image(image: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB from uint8 RGB, RGBA (alpha dropped) or grayscale ``(H, W[, 1])``."""
    image = check_image(np.asarray(image), channels=(3, 4, None, 1))
    if image.ndim == 2 or image.shape[2] == 1:
        return np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def _check_K(K: np.ndarray) -> np.ndarray:
    K = check_intrinsics(K)
    if K.shape != (3, 3):
        raise ValueError(f"K must be one (3, 3) intrinsic matrix, got shape {K.shape}")
    return K


def _vertex_colors(
    colors: Sequence | None, meshes: list[tuple[np.ndarray, np.ndarray]]
) -> list[np.ndarray]:
    """Per-vertex base colours in [0, 1]: ``colors[i]`` is an RGB triple or ``(V_i, 3)``, 0-255."""
    out = []
    for i, (v, _) in enumerate(meshes):
        c = HAND_COLORS[i % len(HAND_COLORS)] if colors is None else colors[i]
        c = np.asarray(c, dtype=np.float64) / 255.0
        if c.shape == (3,):
            c = np.broadcast_to(c, v.shape)
        if c.shape != v.shape:
            raise ValueError(f"colors[{i}] must be an RGB triple or ({len(v)}, 3), got {c.shape}")
        out.append(c)
    return out


def overlay(
    image: np.ndarray,
    vertices: np.ndarray | Sequence[np.ndarray],
    faces: np.ndarray | Sequence[np.ndarray],
    K: np.ndarray,
    colors: Sequence | None = None,
    alpha: float = 0.85,
    light_dir: Sequence[float] = DEFAULT_LIGHT_DIR,
    ambient: float = 0.35,
    supersample: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw shaded meshes over a photo with a shared z-buffer and anti-aliased edges.

    Back faces of solid, consistently wound meshes are culled (see :func:`_front_faces`).
    Shading is two-sided Lambert plus ambient, per vertex and interpolated (Gouraud):
    ``c = base * (ambient + (1 - ambient) |n . l|)``. Anti-aliasing renders the meshes'
    bounding box at ``supersample`` times the resolution and averages each pixel's samples; the
    pixel's coverage ``m`` blends ``out = (1 - alpha m) image + alpha m c``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB (``(H, W)`` / ``(H, W, 1)`` gray and RGBA are converted).
        vertices: one ``(V, 3)`` array or a list of them, camera frame, mm, z forward.
        faces: one ``(F, 3)`` array shared by all meshes, or one per mesh.
        K: ``(3, 3)`` intrinsics of the photo.
        colors: per mesh an RGB triple or ``(V, 3)`` per-vertex colours, 0-255; default
            :data:`HAND_COLORS`.
        alpha: opacity of the meshes in ``[0, 1]``.
        light_dir: ``(3,)`` direction from the surface towards the light, camera frame.
        ambient: ambient share of the shading in ``[0, 1]``.
        supersample: samples per pixel side (1 disables anti-aliasing).

    Returns:
        ``(image, mask)``: the ``(H, W, 3)`` uint8 composite and the ``(H, W)`` float32 coverage
        of the meshes in ``[0, 1]``.
    """
    image = _check_image(image)
    K = _check_K(K)
    meshes = _as_mesh_list(vertices, faces)
    if not 0.0 <= alpha <= 1.0 or not 0.0 <= ambient <= 1.0:
        raise ValueError(f"alpha and ambient must be in [0, 1], got {alpha}, {ambient}")
    if int(supersample) != supersample or supersample < 1:
        raise ValueError(f"supersample must be a positive integer, got {supersample}")
    light = np.asarray(light_dir, dtype=np.float64).reshape(3)
    if not np.linalg.norm(light) > 0:
        raise ValueError("light_dir must be a non-zero 3-vector")
    light = light / np.linalg.norm(light)
    s = int(supersample)
    height, width = image.shape[:2]
    mask = np.zeros((height, width), dtype=np.float32)
    if not meshes:
        return image.copy(), mask

    # One mesh for the z-buffer: concatenate, offsetting face indices.
    base_colors = _vertex_colors(colors, meshes)
    verts = np.concatenate([v for v, _ in meshes])
    offsets = np.cumsum([0] + [len(v) for v, _ in meshes[:-1]])
    face_n = [face_normals(v, f) for v, f in meshes]
    all_faces = np.concatenate([_front_faces(v, f, n) + o for (v, f), n, o in zip(meshes, face_n, offsets)])
    normals = np.concatenate([vertex_normals(v, f, n) for (v, f), n in zip(meshes, face_n)])
    shade = ambient + (1.0 - ambient) * np.abs(normals @ light)  # (V,)
    vcol = np.concatenate(base_colors) * (255.0 * shade[:, None])  # (V, 3), 0-255

    z = verts[:, 2]
    front = z > _NEAR
    if not front.any():
        return image.copy(), mask
    uv = np.asarray(project(np.where(front[:, None], verts, 1.0), K), dtype=np.float64)
    # Render only the image region the (front) vertices project into.
    lo = np.floor(uv[front].min(0)).astype(np.int64) - 1
    hi = np.ceil(uv[front].max(0)).astype(np.int64) + 1
    ox, oy = max(lo[0], 0), max(lo[1], 0)
    cw, ch = min(hi[0], width - 1) - ox + 1, min(hi[1], height - 1) - oy + 1
    if cw <= 0 or ch <= 0:
        return image.copy(), mask
    # Sub-sample (i, j) of pixel (c, r) sits at c + (i + 0.5) / s - 0.5: x_s = s (x - ox) + (s - 1) / 2.
    screen = np.empty_like(verts)
    screen[:, :2] = resize_pixels(uv - [ox, oy], s, s)
    screen[:, 2] = np.where(front, z, -1.0)  # vertices behind the camera clip their faces
    cov = _rasterize_core(screen, all_faces, ch * s, cw * s, True, _NEAR)
    if cov is None:
        return image.copy(), mask

    # Coverage m of each photo pixel: the share of its s x s samples that hit a face.
    # (N,) photo pixel (in the crop) of each sample, through a lookup table of the sample grid.
    lut = ((np.arange(ch * s, dtype=np.int32) // s * cw)[:, None] + np.arange(cw * s, dtype=np.int32) // s).ravel()
    pixel = np.take(lut, cov.pixels)
    m = np.bincount(pixel, minlength=ch * cw).astype(np.float64) / (s * s)
    # Colour: interpolated at one hit sample per pixel (any of them; they differ only at edges).
    rep = np.full(ch * cw, -1, dtype=np.int64)
    rep[pixel] = np.arange(len(pixel))
    hit = np.flatnonzero(rep >= 0)
    _, b = cov.interpolate(rep[hit])  # (3, n)
    # c = sum_i b_i c_i, component-first: (3 vertices, 3 channels, n) face-vertex colours.
    face_colors = np.take(vcol, all_faces, axis=0).astype(np.float32).transpose(1, 2, 0)  # (3, 3, F)
    gathered = np.take(face_colors, np.take(cov.ids, np.take(cov.tri, rep[hit])), axis=2)  # (3, 3, n)
    col = np.einsum("vn,vcn->nc", b.astype(np.float32), gathered)  # (n, 3)

    # out = (1 - alpha m) image + alpha m c, on the covered pixels of the crop (flat indices into
    # the whole image, so the crop is never copied).
    flat = (hit // cw + oy) * width + hit % cw + ox
    a = (alpha * m[hit, None]).astype(np.float32)
    blended = np.take(image.reshape(-1, 3), flat, axis=0) * (1.0 - a) + a * col
    out = image.copy()
    out.reshape(-1, 3)[flat] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    mask[oy:oy + ch, ox:ox + cw] = m.reshape(ch, cw)
    return out, mask


def mesh_overlay(image: np.ndarray, fits: Sequence["FitResult"], K: np.ndarray, alpha: float = 0.8) -> np.ndarray:
    """``(H, W, 3)`` uint8: the fitted meshes (camera frame) drawn over the photo with one z-buffer,
    coloured by handedness (:data:`SIDE_COLORS`)."""
    if not fits:
        return np.asarray(image).copy()
    vertices = [v for fit in fits for v in fit.vertices]
    colors = [SIDE_COLORS.get(fit.side, SIDE_COLORS["right"]) for fit in fits for _ in fit.vertices]
    return overlay(image, vertices, [fit.faces for fit in fits for _ in fit.vertices], K, colors=colors,
                   alpha=alpha)[0]


def render_depth(
    vertices: np.ndarray | Sequence[np.ndarray],
    faces: np.ndarray | Sequence[np.ndarray],
    K: np.ndarray,
    height: int,
    width: int,
) -> np.ndarray:
    """Camera-frame depth ``(H, W)`` in mm of one or several meshes, ``inf`` where empty.

    Args:
        vertices: one ``(V, 3)`` array or a list, camera frame, mm.
        faces: one ``(F, 3)`` array shared by all meshes, or one per mesh.
        K: ``(3, 3)`` intrinsics.
        height, width: image size.
    """
    K = _check_K(K)
    meshes = _as_mesh_list(vertices, faces)
    if not meshes:
        return np.full((int(height), int(width)), np.inf)
    verts = np.concatenate([v for v, _ in meshes])
    offsets = np.cumsum([0] + [len(v) for v, _ in meshes[:-1]])
    all_faces = np.concatenate([f + o for (_, f), o in zip(meshes, offsets)])
    front = verts[:, 2] > _NEAR
    screen = np.empty_like(verts)
    screen[:, :2] = np.asarray(project(np.where(front[:, None], verts, 1.0), K))
    screen[:, 2] = np.where(front, verts[:, 2], -1.0)
    return rasterize(screen, all_faces, height, width, perspective_correct=True).depth


def export_obj(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """Write a triangle mesh as Wavefront OBJ (``v x y z`` lines, 1-based ``f i j k``), atomically.

    Written with :func:`handpose.io.write_atomic`, so a reader never sees a half-written mesh.

    Args:
        path: destination ``.obj`` path (its folder is created if needed).
        vertices: ``(V, 3)`` positions (mm in this project).
        faces: ``(F, 3)`` 0-based vertex indices.

    Returns:
        The path written.
    """
    vertices, faces = check_mesh(vertices, faces)
    lines = ["# handpose mesh: %d vertices, %d faces\n" % (len(vertices), len(faces))]
    lines += ["v %.6f %.6f %.6f\n" % tuple(p) for p in vertices]
    lines += ["f %d %d %d\n" % tuple(f) for f in faces + 1]
    return write_atomic(path, "".join(lines).encode("ascii"))
