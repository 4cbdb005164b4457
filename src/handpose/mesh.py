"""Triangle-mesh geometry: validation, normals, primitive meshes and the sphere-mesh hand.

Plain numpy on ``(V, 3)`` vertices and ``(F, 3)`` integer faces (units as given, mm in the package);
no drawing, no torch. The demo scenes (:mod:`handpose.scene`), the rasteriser (:mod:`handpose.render`)
and the 3D figures (:mod:`handpose.plot3d`) build on it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from handpose.keypoints import BONES, NUM_KEYPOINTS, PALM_OUTLINE
from handpose.rotations import normalize


# ------------------------------------------------------------------------------------------------
# Validation and normals
# ------------------------------------------------------------------------------------------------
def check_mesh(vertices: np.ndarray, faces: np.ndarray, name: str = "vertices") -> tuple[np.ndarray, np.ndarray]:
    """``(V, 3)`` finite float64 vertices and ``(F, 3)`` int64 faces indexing them, else a ``ValueError``."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"{name} must be (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be an integer (F, 3) array, got {faces.dtype} {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"faces index vertices outside 0..{len(vertices) - 1}")
    if not np.all(np.isfinite(vertices)):
        raise ValueError(f"{name} contain NaN or inf")
    return vertices, faces.astype(np.int64)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``(F, 3)`` ``(v1 - v0) x (v2 - v0)`` of a mesh checked by :func:`check_mesh`: of length twice
    the face's area, pointing out of a counter-clockwise face."""
    tri = vertices[faces]
    return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, face_n: np.ndarray | None = None) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3)`` of a mesh ``(V, 3)``, ``(F, 3)``.

    n_v = normalise(sum over faces f containing v of (v1 - v0) x (v2 - v0)); zero for isolated
    vertices. ``face_n``: the mesh's :func:`face_normals` ``(F, 3)`` when already computed.
    """
    vertices, faces = check_mesh(vertices, faces)
    if face_n is None:
        face_n = face_normals(vertices, faces)
    elif np.shape(face_n) != faces.shape:
        raise ValueError(f"face_n must be (F, 3) = {faces.shape}, got {np.shape(face_n)}")
    # Scatter-add of each face normal to its three vertices: one bincount per component.
    index = faces.ravel()
    vn = np.stack([np.bincount(index, np.repeat(face_n[:, c], 3), minlength=len(vertices))
                   for c in range(3)], axis=1)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return np.divide(vn, norm, out=np.zeros_like(vn), where=norm > 0)


# ------------------------------------------------------------------------------------------------
# Topology and primitives
# ------------------------------------------------------------------------------------------------
def boundary_loop(faces: np.ndarray) -> np.ndarray:
    """The single boundary loop ``(L,)`` of an open mesh, ordered along its edges.

    Boundary edges are those used by one face; each is oriented as in its face, so walking them
    follows the face winding. Raises ``ValueError`` unless they form exactly one loop.
    """
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.sort(edges, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    boundary = edges[counts[inverse.reshape(-1)] == 1]
    nxt = dict(zip(boundary[:, 0].tolist(), boundary[:, 1].tolist()))
    if len(nxt) != len(boundary) or not boundary.size:
        raise ValueError("the mesh has no boundary or a non-manifold one")
    loop = [int(boundary[0, 0])]
    while (v := nxt[loop[-1]]) != loop[0]:
        loop.append(v)
        if len(loop) > len(boundary):
            raise ValueError("the boundary edges do not close into a loop")
    if len(loop) != len(boundary):
        raise ValueError(f"the mesh has several boundary loops ({len(boundary)} edges, first loop {len(loop)})")
    return np.asarray(loop)


def tube_faces(ring_size: int, rings: int, offset: int = 0) -> np.ndarray:
    """Triangles ``(2 L (rings - 1), 3)`` joining consecutive rings of ``L`` vertices each.

    Ring ``k`` vertex ``i`` has index ``offset + k L + i``; quad ``(k, i)`` is split along its diagonal.
    """
    k, i = np.meshgrid(np.arange(rings - 1), np.arange(ring_size), indexing="ij")
    a = offset + k * ring_size + i
    b = offset + k * ring_size + (i + 1) % ring_size
    c, d = a + ring_size, b + ring_size
    return np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])


def box_mesh(center: np.ndarray, rotation: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A box with flat faces: ``(24, 3)`` vertices (4 per side), ``(12, 3)`` faces, ``(24, 3)`` normals.

    ``size`` ``(3,)`` full edge lengths along the columns of ``rotation`` ``(3, 3)``.
    """
    verts, faces, normals = [], [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            n = np.zeros(3)
            n[axis] = sign
            u, w = np.eye(3)[(axis + 1) % 3], np.eye(3)[(axis + 2) % 3]
            quad = [n + su * u + sw * w for su, sw in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
            base = len(verts)
            verts += [0.5 * q * size for q in quad]
            normals += [n] * 4
            faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    verts = np.asarray(verts) @ rotation.T + center
    return verts, np.asarray(faces), np.asarray(normals) @ rotation.T


def cylinder_mesh(center: np.ndarray, rotation: np.ndarray, radius: float, height: float,
                  segments: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A capped cylinder along ``rotation[:, 1]``: vertices, faces and normals (smooth sides, flat caps)."""
    t = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    circle = np.stack([np.cos(t), np.zeros_like(t), np.sin(t)], -1)
    side = np.concatenate([radius * circle + [0, -height / 2, 0], radius * circle + [0, height / 2, 0]])
    side_n = np.concatenate([circle, circle])
    faces = [tube_faces(segments, 2)]
    caps, caps_n = [], []
    for k, y in enumerate((-height / 2, height / 2)):
        base = len(side) + len(caps)
        caps += [np.array([0.0, y, 0.0])] + list(radius * circle + [0, y, 0])
        caps_n += [np.array([0.0, np.sign(y), 0.0])] * (segments + 1)
        i = np.arange(segments)
        faces.append(np.stack([np.full(segments, base), base + 1 + i, base + 1 + (i + 1) % segments], -1))
    verts = np.concatenate([side, np.asarray(caps)]) @ rotation.T + center
    normals = np.concatenate([side_n, np.asarray(caps_n)]) @ rotation.T
    return verts, np.concatenate(faces), normals


def smooth_normals(normals: np.ndarray, faces: np.ndarray, mask: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Unit normals ``(V, 3)`` with the ``mask``-ed vertices ``(V,)`` replaced, ``iterations`` times,
    by the normalised mean normal of their edge neighbours (and themselves): hides creases where
    two meshes were stitched."""
    from scipy.sparse import coo_matrix

    v = len(normals)
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], np.arange(v)])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], np.arange(v)])
    adjacency = coo_matrix((np.ones(len(i)), (i, j)), shape=(v, v)).tocsr()
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64)
    out = normals.copy()
    for _ in range(iterations):
        out[mask] = normalize(adjacency @ out)[mask]
    return out


def skin_thickness(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Depth ``(N,)`` (mm, along ``z``) of points ``(N, 3)`` under the surface that encloses them,
    seen from a camera at the origin.

    The ray ``t X`` (``0 < t < 1``) from the camera to each point is intersected with every face
    (Moller-Trumbore); the last crossing ``t*`` before the point is where the ray enters the skin
    around it, and the thickness is ``(1 - t*) Z``; 0 when nothing is crossed.
    """
    points = np.asarray(points, dtype=np.float64)
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]  # (F, 3, 3)
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]  # (F, 3)
    # Solve t d = v0 + u e1 + w e2 with d = X: p = d x e2, det = e1 . p, u = (-v0) . p / det, ...
    p = np.cross(points[:, None], e2[None])  # (N, F, 3)
    det = np.einsum("fc,nfc->nf", e1, p)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = -tri[:, 0]  # origin - v0
    u = np.einsum("fc,nfc->nf", s, p) * inv
    q = np.cross(s, e1)  # (F, 3)
    w = np.einsum("nc,fc->nf", points, q) * inv
    t = np.einsum("fc,fc->f", e2, q)[None] * inv
    hit = ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 1e-9) & (t < 1.0)
    last = np.where(hit, t, 0.0).max(1)
    return np.where(hit.any(1), (1.0 - last) * points[:, 2], 0.0)


# ------------------------------------------------------------------------------------------------
# The sphere-mesh hand of the slides
# ------------------------------------------------------------------------------------------------
#: Sphere radius per keypoint (mm) of the sphere-mesh hand: wrist, thumb CMC..tip, then each
#: finger MCP..tip (about half the width of an adult finger at that joint).
SPHERE_RADII_MM: tuple[float, ...] = (
    (20.0,) + (13.0, 11.0, 9.5, 8.5) + (10.0, 9.0, 8.0, 7.0) + (10.5, 9.5, 8.5, 7.5)
    + (10.0, 9.0, 8.0, 7.0) + (9.0, 8.0, 7.0, 6.5)
)


def uv_sphere(n_lat: int = 6, n_lon: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A closed UV unit sphere: ``(2 + (n_lat - 1) n_lon, 3)`` vertices (north pole, ``n_lat - 1``
    rings of ``n_lon``, south pole) and its ``(F, 3)`` triangles, counter-clockwise seen from outside."""
    theta = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    ring = np.stack([np.sin(theta)[:, None] * np.cos(phi), np.sin(theta)[:, None] * np.sin(phi),
                     np.cos(theta)[:, None] * np.ones_like(phi)], -1).reshape(-1, 3)
    vertices = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    faces = []
    last = len(vertices) - 1
    for k in range(n_lon):
        k2 = (k + 1) % n_lon
        faces.append((0, 1 + k, 1 + k2))
        for r in range(n_lat - 2):
            a, b = 1 + r * n_lon + k, 1 + r * n_lon + k2
            faces += [(a, a + n_lon, b), (b, a + n_lon, b + n_lon)]
        base = 1 + (n_lat - 2) * n_lon
        faces.append((base + k, last, base + k2))
    return vertices, np.array(faces, dtype=np.int64)


def frustum(a: np.ndarray, b: np.ndarray, ra: float, rb: float, segments: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """The side of a truncated cone from ``a`` (radius ``ra``) to ``b`` (``rb``): ``(2 segments, 3)``
    vertices, ``(2 segments, 3)`` triangles; empty for coincident ends."""
    axis = b - a
    length = np.linalg.norm(axis)
    if length < 1e-9:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    axis = axis / length
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    circle = np.cos(angle)[:, None] * u + np.sin(angle)[:, None] * v  # (S, 3)
    vertices = np.concatenate([a + ra * circle, b + rb * circle])
    k = np.arange(segments)
    k2 = (k + 1) % segments
    faces = np.concatenate([np.stack([k, k2, segments + k], 1), np.stack([k2, segments + k2, segments + k], 1)])
    return vertices, faces


def sphere_mesh(keypoints_3d: np.ndarray, radii: Sequence[float] = SPHERE_RADII_MM) -> tuple[np.ndarray, np.ndarray]:
    """The sphere-mesh hand of the slides as one triangle soup: a sphere of radius ``r_j`` at each
    keypoint, a truncated cone along each bone (the hull of its two end spheres, approximately),
    and the convex hull of the palm spheres (:data:`handpose.keypoints.PALM_OUTLINE`).

    Args:
        keypoints_3d: ``(21, 3)`` mm.
        radii: 21 sphere radii, mm.
    Returns:
        ``vertices (V, 3)`` mm and ``faces (F, 3)``.
    """
    from scipy.spatial import ConvexHull

    points = np.asarray(keypoints_3d, dtype=np.float64)
    if points.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints_3d must be (21, 3), got {points.shape}")
    radii = np.asarray(radii, dtype=np.float64)
    if radii.shape != (NUM_KEYPOINTS,) or np.any(radii <= 0):
        raise ValueError(f"radii must be 21 positive values, got shape {radii.shape}")
    unit, unit_faces = uv_sphere()
    parts = [(points[j] + radii[j] * unit, unit_faces) for j in range(NUM_KEYPOINTS)]
    parts += [frustum(points[p], points[c], radii[p], radii[c]) for p, c in BONES]
    palm = np.concatenate([points[j] + radii[j] * unit for j in PALM_OUTLINE])
    hull = ConvexHull(palm)
    parts.append((palm, hull.simplices.astype(np.int64)))
    vertices, faces, offset = [], [], 0
    for v, f in parts:
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces)
