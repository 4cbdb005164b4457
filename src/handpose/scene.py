"""Pieces of a photo-like scene for the rendered demo set: skin, meshes, lights, backgrounds, camera,
posed hands with forearms (:class:`HandFactory`) and their shading through one z-buffer
(:func:`shade_meshes`); :mod:`handpose.demo_data` composes them into the demo images.

Numpy, except :class:`HandFactory`, which poses the open hand model (torch, imported when used).
Colours are linear RGB in ``[0, 1]`` inside this module (shading is done in linear light) and sRGB
only at the edges (:func:`srgb_to_linear`, :func:`linear_to_srgb`). Geometry is in
the camera frame (x right, y down, z forward, mm), as in :mod:`handpose.render`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from handpose.camera import project
from handpose.mesh import boundary_loop, skin_thickness, smooth_normals, tube_faces, vertex_normals
from handpose.render import rasterize
from handpose.rotations import frame_from_directions, normalize

if TYPE_CHECKING:
    from handpose.demo_data import HandSpec
    from handpose.handmodel import OpenHandModel

#: Fitzpatrick-like skin palette: type -> (back-of-hand sRGB, palm sRGB, tag for ``metadata.csv``).
#: Palms are lighter and pinker than the back, much more so for dark skin.
SKIN_TONES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], str]] = {
    "I": ((238, 200, 178), (240, 196, 180), "light"),
    "II": ((226, 178, 146), (232, 182, 160), "light"),
    "III": ((202, 150, 112), (218, 164, 138), "medium"),
    "IV": ((168, 118, 82), (200, 146, 118), "medium"),
    "V": ((122, 82, 56), (184, 130, 104), "dark"),
    "VI": ((82, 54, 38), (168, 116, 92), "dark"),
}
#: Nail plate colour (sRGB) blended over the skin on the nail bed.
NAIL_SRGB = (236, 204, 198)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB in ``[0, 1]`` -> linear: ``c / 12.92`` below 0.04045, else ``((c + 0.055) / 1.055)^2.4``."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Inverse of :func:`srgb_to_linear`, clipped to ``[0, 1]``."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``t^2 (3 - 2 t)`` with ``t = clip((x - lo) / (hi - lo), 0, 1)``."""
    t = np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def look_rotation(forward: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Rotation ``(3, 3)`` taking the hand's canonical axes to the camera frame.

    Canonical hand frame (:mod:`handpose.handmodel`): ``+y`` wrist -> middle MCP, ``+z`` out of the
    palm. ``R e_y = forward``, ``R e_z = normal`` made orthogonal to it (Gram-Schmidt), and
    ``R e_x = R e_y x R e_z``.
    """
    try:
        return frame_from_directions(np.asarray(forward, dtype=np.float64), np.asarray(normal, dtype=np.float64))
    except ValueError as err:
        raise ValueError(f"forward and normal must not be parallel or zero: {err}") from err


# ------------------------------------------------------------------------------------------------
# Meshes
# ------------------------------------------------------------------------------------------------
@dataclass
class Mesh:
    """A triangle mesh with per-vertex material, camera frame.

    Attributes:
        vertices: ``(V, 3)`` mm.
        faces: ``(F, 3)`` vertex indices.
        albedo: ``(V, 3)`` linear RGB.
        specular: ``(V,)`` strength of the glossy highlight.
        subsurface: ``(V,)`` share of wrapped, reddened light (skin ~0.5, cloth and objects 0).
        normals: ``(V, 3)`` unit normals for smooth shading; ``None``: area-weighted vertex normals.
    """

    vertices: np.ndarray
    faces: np.ndarray
    albedo: np.ndarray
    specular: np.ndarray
    subsurface: np.ndarray
    normals: np.ndarray | None = None


def forearm_rings(loop_points: np.ndarray, axis: np.ndarray, distances: np.ndarray, scales: np.ndarray,
                  follow: np.ndarray | None = None) -> np.ndarray:
    """Rings ``(R, L, 3)`` of a tapered tube continuing a wrist loop ``(L, 3)`` along ``axis``.

    With ``c`` the loop's centroid, ``a`` the unit axis, ``h_i = (p_i - c) . a`` each loop point's
    height along the axis and ``q_i = p_i - c - h_i a`` its offset across it, ring ``k`` is
    ``r_ki = c + (d_k + f_k h_i + (1 - f_k) max_j h_j) a + s_k q_i``: ``distances (R,)`` ``d_k``
    beyond the loop, ``scales (R,)`` ``s_k`` and ``follow (R,)`` ``f_k`` (1: keep the loop's
    slanted outline, 0: a flat ring past its highest point; default 0).
    """
    a = normalize(np.asarray(axis, dtype=np.float64))
    c = loop_points.mean(0)
    rel = loop_points - c
    h = rel @ a
    flat = rel - h[:, None] * a
    f = np.zeros(len(distances)) if follow is None else np.asarray(follow, dtype=np.float64)
    along = distances[:, None] + f[:, None] * h[None] + (1.0 - f[:, None]) * h.max()  # (R, L)
    return c + along[..., None] * a + scales[:, None, None] * flat[None]


def ambient_occlusion(vertices: np.ndarray, normals: np.ndarray, radius: float = 18.0) -> np.ndarray:
    """Cheap per-vertex ambient occlusion ``(V,)`` in ``[0, 1]`` (1 = open).

    Counts the mesh's other vertices in the hemisphere above each vertex's tangent plane, weighted
    by closeness: ``o_i = sum_j max(0, 1 - d_ij / r) [ (v_j - v_i) . n_i > 0.15 d_ij ]``, and maps it
    to ``exp(-o_i / 6)``. Vertices ``(V, 3)`` and unit normals ``(V, 3)``; memory grows as ``V^2``.
    """
    diff = vertices[None, :, :] - vertices[:, None, :]  # (V, V, 3), v_j - v_i
    dist = np.linalg.norm(diff, axis=-1)
    above = np.einsum("ijc,ic->ij", diff, normals) > 0.15 * dist
    weight = np.clip(1.0 - dist / radius, 0.0, None) * above
    return np.exp(-weight.sum(1) / 6.0)


# ------------------------------------------------------------------------------------------------
# Lighting
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lighting:
    """One key light plus a sky/ground ambient, linear RGB intensities.

    Attributes:
        direction: ``(3,)`` from the surface towards the key light, camera frame.
        key: ``(3,)`` key light colour times intensity.
        sky: ``(3,)`` ambient from above (``-y``), ``ground``: from below.
        ground: ``(3,)``.
    """

    direction: tuple[float, float, float]
    key: tuple[float, float, float]
    sky: tuple[float, float, float]
    ground: tuple[float, float, float]


def shade(normal: np.ndarray, position: np.ndarray, albedo: np.ndarray, specular: np.ndarray,
          subsurface: np.ndarray, occlusion: np.ndarray, light: Lighting) -> np.ndarray:
    """Linear RGB ``(N, 3)`` of surface samples: wrapped Lambert, hemispheric ambient, Blinn-Phong.

    Args: unit ``normal (N, 3)`` facing the camera, ``position (N, 3)`` mm, ``albedo (N, 3)``,
    ``specular (N,)``, ``subsurface (N,)``, ambient ``occlusion (N,)`` (1 = open).

    ``diffuse = albedo key [(1 - s) max(0, n.l) + s tint (n.l + w) / (1 + w)]`` with wrap
    ``w = 0.5`` and a red ``tint`` (light scattered under the skin comes out reddened and past
    the terminator); ``ambient = albedo occ mix(ground, sky, (1 - n_y) / 2)``;
    ``spec = specular key (n.h)^24`` with ``h = normalise(l + v)``.
    """
    l = normalize(np.asarray(light.direction, dtype=np.float64))
    v = normalize(-position)
    ndl = normal @ l
    wrap = 0.5
    s = subsurface[:, None]
    tint = np.array([1.0, 0.55, 0.45])
    scatter = np.clip((ndl + wrap) / (1.0 + wrap), 0.0, None)[:, None] ** 1.5
    direct = (1.0 - s) * np.clip(ndl, 0.0, None)[:, None] + s * tint * scatter
    up = ((1.0 - normal[:, 1]) / 2.0)[:, None]  # camera y points down: n_y = -1 faces the sky
    ambient = np.asarray(light.ground) * (1.0 - up) + np.asarray(light.sky) * up
    h = normalize(l + v)
    spec = specular[:, None] * np.clip((normal * h).sum(-1), 0.0, None)[:, None] ** 24 * (ndl > 0)[:, None]
    key = np.asarray(light.key)
    return albedo * (key * direct + ambient * occlusion[:, None]) + key * spec


# ------------------------------------------------------------------------------------------------
# Backgrounds (linear RGB, (H, W, 3))
# ------------------------------------------------------------------------------------------------
def value_noise(height: int, width: int, cells: float, rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """Smooth fractal noise ``(H, W)`` in about ``[-1, 1]``: bicubically upsampled random grids,
    each octave twice as fine and half as strong."""
    import cv2

    out = np.zeros((height, width))
    amplitude, total = 1.0, 0.0
    for o in range(octaves):
        n = max(2, int(round(cells * 2**o)))
        grid = rng.uniform(-1.0, 1.0, (max(2, int(n * height / width)) + 1, n + 1)).astype(np.float32)
        out += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        total += amplitude
        amplitude *= 0.5
    return out / total


def gradient_background(height: int, width: int, top: np.ndarray, bottom: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
    """A plain wall: vertical gradient ``top -> bottom`` (linear RGB) with faint blotches."""
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    base = (1 - t) * np.asarray(top) + t * np.asarray(bottom)
    return base * (1.0 + 0.04 * value_noise(height, width, 3, rng)[..., None])


def streak_noise(height: int, width: int, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Noise ``(H, W)`` in about ``[-1, 1]`` stretched along x: a random ``rows x cols`` grid,
    bicubically resized (long streaks when ``cols << rows``)."""
    import cv2

    grid = rng.uniform(-1.0, 1.0, (rows, cols)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float64)


def wood_background(height: int, width: int, color: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A wooden table top: planks along x with their own tint, wavy growth lines from warped
    stripes, long fine grain streaks and dark seams between planks."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    plank_h = height / rng.uniform(2.5, 3.5)
    plank = np.floor(y / plank_h)
    warp = 18.0 * value_noise(height, width, 1.5, rng, octaves=2) + 6.0 * streak_noise(height, width, 40, 5, rng)
    lines = np.sin((y + warp + 37.0 * plank) / rng.uniform(3.0, 5.0)) ** 8
    grain = (0.6 * streak_noise(height, width, height // 3, 12, rng)
             + 0.4 * streak_noise(height, width, height // 6, 4, rng))
    tint = 1.0 + 0.08 * np.sin(2.3 * plank + rng.uniform(0, 6))
    value = tint * (1.0 - 0.18 * lines + 0.07 * grain)
    seam = 1.0 - 0.5 * np.exp(-(((y + 1.0) % plank_h) ** 2) / 1.5)
    hue = np.stack([value, value ** 1.15, value ** 1.3], -1)  # darker grain is also redder
    return np.asarray(color) * hue * seam[..., None]


def fabric_background(height: int, width: int, color: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A woven cloth: two crossed thread sine patterns, slow folds and colour noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    period = rng.uniform(3.0, 5.0)
    weave = 0.5 * (np.sin(2 * np.pi * x / period) * np.sin(2 * np.pi * y / period) + 1.0)
    folds = value_noise(height, width, 2.5, rng, octaves=2)
    tint = 1.0 + 0.05 * np.stack([value_noise(height, width, 6, rng, 2) for _ in range(3)], -1)
    return np.asarray(color) * tint * (0.85 + 0.1 * weave + 0.2 * folds)[..., None]


def clutter_background(height: int, width: int, base: np.ndarray, rng: np.random.Generator,
                       count: int = 14) -> np.ndarray:
    """A cluttered room or desk: a base texture with random shaded rectangles, discs and stripes
    (books, screens, mugs, posters), softened like an out-of-focus photo."""
    import cv2

    image = np.ascontiguousarray(base, dtype=np.float32)
    palette = srgb_to_linear(np.array([
        [200, 60, 50], [40, 90, 160], [230, 200, 80], [60, 130, 80], [30, 30, 35], [240, 240, 235],
        [150, 100, 60], [120, 60, 130], [210, 140, 60], [90, 160, 170]]) / 255.0)
    for _ in range(count):
        color = palette[rng.integers(len(palette))] * rng.uniform(0.6, 1.1)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        size = rng.uniform(0.05, 0.3) * width
        layer = np.zeros((height, width), np.float32)
        kind = rng.integers(3)
        if kind == 0:
            angle = rng.uniform(-20, 20)
            box = ((cx, cy), (size, size * rng.uniform(0.3, 1.5)), angle)
            cv2.fillPoly(layer, [cv2.boxPoints(box).astype(np.int32)], 1.0)
        elif kind == 1:
            cv2.ellipse(layer, (int(cx), int(cy)), (int(size / 2), int(size / 2 * rng.uniform(0.4, 1))),
                        rng.uniform(0, 180), 0, 360, 1.0, -1)
        else:
            x0 = int(cx)
            for k in range(int(rng.integers(3, 7))):
                w = int(rng.uniform(8, 25))
                c = palette[rng.integers(len(palette))]
                cv2.rectangle(layer, (x0, int(cy)), (x0 + w, int(cy + size)), 1.0, -1)
                image[int(cy):int(cy + size), x0:x0 + w] = c * rng.uniform(0.5, 1.0)
                x0 += w + 2
            continue
        ramp = 0.8 + 0.4 * np.linspace(0, 1, height, dtype=np.float32)[:, None] * rng.uniform(-1, 1)
        image = image * (1 - layer[..., None]) + layer[..., None] * color * ramp[..., None]
    return image.astype(np.float64)


def sample_photo_background(name: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A public-domain photo shipped with matplotlib (``matplotlib.cbook.get_sample_data``),
    randomly cropped to the aspect ratio and resized, linear RGB."""
    import cv2
    from matplotlib import cbook

    with cbook.get_sample_data(name) as fh:
        data = np.frombuffer(fh.read(), np.uint8)
    image = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    ch = int(min(h, w * height / width) * rng.uniform(0.7, 1.0))
    cw = int(ch * width / height)
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = cv2.resize(image[y0:y0 + ch, x0:x0 + cw], (width, height), interpolation=cv2.INTER_AREA)
    return srgb_to_linear(crop / 255.0)


# ------------------------------------------------------------------------------------------------
# Camera effects
# ------------------------------------------------------------------------------------------------
def camera_finish(linear: np.ndarray, rng: np.random.Generator, exposure: float = 1.0, blur: float = 0.0,
                  noise: float = 0.0, vignette: float = 0.25) -> np.ndarray:
    """Linear RGB ``(H, W, 3)`` -> sRGB uint8 as a phone would: exposure, vignetting
    ``1 - v r^2`` (``r`` = distance to the centre over the half diagonal), Gaussian blur of
    ``blur`` px, gentle highlight roll-off ``x / (1 + x / 4)`` scaled back to 1 at 1, and
    signal-dependent noise ``sigma = noise sqrt(x)``."""
    import cv2

    h, w = linear.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    r2 = ((x - w / 2) ** 2 + (y - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
    img = linear * exposure * (1.0 - vignette * r2)[..., None]
    if blur > 0:
        img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), blur).astype(np.float64)
    img = img / (1.0 + img / 4.0) * 1.25
    if noise > 0:
        img = img + noise * np.sqrt(np.clip(img, 0, None)) * rng.standard_normal(img.shape)
    return np.rint(255.0 * linear_to_srgb(img)).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# Hands with forearms
# ------------------------------------------------------------------------------------------------
@dataclass
class PosedHand:
    """One posed hand in the camera frame.

    Attributes:
        side: ``"right"`` or ``"left"``.
        keypoints: ``(21, 3)`` mm, course order.
        skin_depth: ``(21,)`` mm, depth of each keypoint under its own skin along the camera ray
            (:func:`handpose.mesh.skin_thickness`).
        mesh: the hand, forearm and sleeve as one :class:`Mesh`.
    """

    side: str
    keypoints: np.ndarray
    skin_depth: np.ndarray
    mesh: Mesh


class HandFactory:
    """Posed open hands with forearm, sleeve and skin material (models loaded once per side)."""

    def __init__(self) -> None:
        from handpose.handmodel import load_hand_model

        self.models = {side: load_hand_model("open", side) for side in ("right", "left")}
        model = self.models["right"]
        self.loop = boundary_loop(model.faces.numpy())
        self.materials = {side: self._skin_weights(m) for side, m in self.models.items()}

    @staticmethod
    def _skin_weights(model: "OpenHandModel") -> tuple[np.ndarray, np.ndarray]:
        """Per rest vertex ``(V,)`` palm weight (palm side 1, back 0) and nail weight."""
        import torch

        with torch.no_grad():
            rest = model().vertices[0].double().numpy()
        faces = model.faces.numpy()
        normals = vertex_normals(rest, faces)
        palm = smoothstep(normals[:, 2], -0.15, 0.45)
        # Nails: on the distal phalanx, facing away from where it flexes, near the tip.
        weights = model.weights.numpy()
        labels = {f"finger{f}-3": f for f in range(1, 6)}
        bone = weights.argmax(1)
        frames = model.frames.numpy()
        tails = model.tails.numpy()
        nail = np.zeros(len(rest))
        names = list(model.bone_labels)
        heads = model.heads.numpy()
        for label, f in labels.items():
            k = names.index(label)
            dorsal = -frames[3 * (f - 1) + 2][:, 2]
            axis = tails[k] - heads[k]
            length = np.linalg.norm(axis)
            t = (rest - heads[k]) @ axis / length**2  # 0 at the DIP, 1 at the tip
            on = (bone == k) | (weights[:, k] > 0.5)
            nail += on * smoothstep(normals @ dorsal, 0.35, 0.7) * smoothstep(t, 0.3, 0.5)
        return palm, np.clip(nail, 0.0, 1.0)

    def build(self, spec: "HandSpec", skin: str, sleeve_rgb: tuple[int, int, int], shape: np.ndarray,
              pose: np.ndarray, K: np.ndarray, width: int, height: int) -> PosedHand:
        """Pose the hand of ``spec`` (pose ``(45,)`` rad, shape ``(S,)``: the first ``S`` shape
        components, the rest, proportions included, at the mean) for the camera ``K`` of a
        ``width x height`` image, and attach its forearm."""
        import torch
        from scipy.spatial.transform import Rotation

        model = self.models[spec.side]
        rotation = look_rotation(np.asarray(spec.forward, float), np.asarray(spec.normal, float))
        orient = Rotation.from_matrix(rotation).as_rotvec()
        coefficients = np.zeros(model.num_shape)
        coefficients[:len(shape)] = shape
        with torch.no_grad():
            out = model(pose=torch.as_tensor(pose, dtype=torch.float32)[None],
                        shape=torch.as_tensor(coefficients, dtype=torch.float32)[None],
                        global_orient=torch.as_tensor(orient, dtype=torch.float32)[None])
        # move the palm centre onto the ray through `at`: target = z K^-1 (u W, v H, 1)
        u, v, z = spec.at
        target = z * np.linalg.solve(K, np.array([u * width, v * height, 1.0]))
        keypoints = out.keypoints[0].double().numpy()
        shift = target - 0.5 * (keypoints[0] + keypoints[9])
        keypoints = keypoints + shift
        verts = out.vertices[0].double().numpy() + shift
        faces = model.faces.numpy().astype(np.int64)
        palm, nail = self.materials[spec.side]

        # Forearm: the wrist loop continued along the arm axis, hand bent by `bend` about its x axis:
        # arm axis (wrist -> elbow) = R (-cos b e_y + sin b e_z). Ring distances start past the
        # loop's own extent along the axis, so the tube never folds back into the wrist.
        b = np.radians(spec.bend)
        axis = rotation @ np.array([0.0, -np.cos(b), np.sin(b)])
        loop = self.loop
        arm_d = np.array([5.0, 14.0, 30.0, 55.0, 85.0, 120.0, spec.sleeve_at + 10.0])
        follow = 1.0 - smoothstep(arm_d, 0.0, 40.0)
        arm_s = 1.0 + 0.3 * smoothstep(arm_d, 0.0, 140.0)
        rings = forearm_rings(verts[loop], axis, arm_d, arm_s, follow)  # (R, L, 3)
        # the sleeve runs 400 mm towards the elbow, stopping 80 mm in front of the camera plane
        centre_z, axis_z = verts[loop].mean(0)[2], axis[2]
        reach = 400.0 if axis_z >= 0 else min(400.0, (centre_z - 80.0) / -axis_z - 20.0 - spec.sleeve_at)
        sleeve_d = spec.sleeve_at + np.array([-8.0, 0.0, 12.0, max(reach, 20.0)])
        sleeve_s = (1.0 + 0.3 * smoothstep(spec.sleeve_at, 0.0, 140.0)) * np.array([1.02, 1.45, 1.5, 1.6])
        sleeve = forearm_rings(verts[loop], axis, sleeve_d, sleeve_s)
        n_hand, n_loop = len(verts), len(loop)
        # ring 0 of the forearm is the hand's own wrist loop (shared vertices: smooth normals)
        arm_faces = tube_faces(n_loop, len(arm_d) + 1, offset=n_hand)
        ring_index = np.concatenate([loop, n_hand + np.arange(len(arm_d) * n_loop)])
        arm_faces = ring_index[arm_faces - n_hand]
        sleeve_faces = tube_faces(n_loop, len(sleeve_d), offset=n_hand + len(arm_d) * n_loop)
        vertices = np.concatenate([verts, rings.reshape(-1, 3), sleeve.reshape(-1, 3)])
        all_faces = np.concatenate([faces, arm_faces[:, ::-1], sleeve_faces[:, ::-1]])
        skin_normals = vertex_normals(vertices[: n_hand + len(arm_d) * n_loop],
                                      np.concatenate([faces, arm_faces[:, ::-1]]))
        near_seam = np.linalg.norm(vertices[:, None] - verts[loop][None], axis=-1).min(1) < 28.0
        near_seam[n_hand + len(arm_d) * n_loop:] = False
        skin_normals = smooth_normals(skin_normals, np.concatenate([faces, arm_faces]),
                                      near_seam[: len(skin_normals)], iterations=8)
        sleeve_normals = vertex_normals(vertices, all_faces)[n_hand + len(arm_d) * n_loop:]
        normals = np.concatenate([skin_normals, sleeve_normals])

        back_rgb, palm_rgb, _ = SKIN_TONES[skin]
        back_lin = srgb_to_linear(np.asarray(back_rgb) / 255.0)
        palm_lin = srgb_to_linear(np.asarray(palm_rgb) / 255.0)
        nail_lin = srgb_to_linear(np.asarray(NAIL_SRGB) / 255.0)
        # forearm: the palm-side colour fades to half along the inner forearm
        arm_palm = palm[loop][None, :] * (1.0 - 0.5 * smoothstep(arm_d, 0.0, 80.0))[:, None]
        w_palm = np.concatenate([palm, arm_palm.reshape(-1)])[:, None]
        w_nail = np.concatenate([nail, np.zeros(len(arm_d) * n_loop)])[:, None]
        albedo = (1 - w_palm) * back_lin + w_palm * palm_lin
        albedo = (1 - 0.55 * w_nail) * albedo + 0.55 * w_nail * nail_lin
        n_sleeve = len(sleeve_d) * n_loop
        sleeve_lin = np.broadcast_to(srgb_to_linear(np.asarray(sleeve_rgb) / 255.0), (n_sleeve, 3))
        albedo = np.concatenate([albedo, sleeve_lin])
        specular = np.concatenate([0.05 + 0.25 * w_nail[:, 0], np.full(n_sleeve, 0.01)])
        subsurface = np.concatenate([np.full(len(w_nail), 0.45), np.zeros(n_sleeve)])

        mesh = Mesh(vertices, all_faces, albedo, specular, subsurface, normals)
        return PosedHand(spec.side, keypoints, skin_thickness(keypoints, vertices, all_faces), mesh)


# ------------------------------------------------------------------------------------------------
# Shading through one z-buffer
# ------------------------------------------------------------------------------------------------
def shade_meshes(meshes: Sequence[Mesh], K: np.ndarray, height: int, width: int, light: Lighting,
                 occlusion: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render meshes with one z-buffer: ``(colour (H, W, 3) linear, coverage (H, W) bool, depth (H, W))``.

    Per pixel: perspective-correct barycentrics ``b`` of the nearest face interpolate the vertex
    normal (Phong shading, turned towards the camera), position and material, then
    :func:`shade`. ``K`` is the intrinsics of this (already supersampled) grid.
    """
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    verts = np.concatenate([m.vertices for m in meshes])
    faces = np.concatenate([m.faces + o for m, o in zip(meshes, offsets)])
    normals = np.concatenate([m.normals if m.normals is not None else vertex_normals(m.vertices, m.faces)
                              for m in meshes])
    ao = np.concatenate([ambient_occlusion(m.vertices, normalize(m.normals)) if occlusion and m.subsurface.any()
                         else np.ones(len(m.vertices)) for m in meshes])
    albedo = np.concatenate([m.albedo for m in meshes])
    specular = np.concatenate([m.specular for m in meshes])
    subsurface = np.concatenate([m.subsurface for m in meshes])
    # vertices behind the near plane get a dummy pixel and z = -1: rasterize drops their faces
    front = verts[:, 2] > 1.0
    screen = np.concatenate([np.asarray(project(np.where(front[:, None], verts, 1.0), K)),
                             np.where(front, verts[:, 2], -1.0)[:, None]], axis=1)
    raster = rasterize(screen, faces, height, width)
    covered = raster.face_id >= 0
    fv = faces[raster.face_id[covered]]  # (N, 3)
    b = raster.barycentrics[covered]  # (N, 3)

    def interp(values: np.ndarray) -> np.ndarray:
        return np.einsum("nk,nk...->n...", b, values[fv])

    position = interp(verts)
    normal = normalize(interp(normals))
    # two-sided: a normal pointing away from the camera (n . p > 0) is flipped
    normal *= np.where(np.einsum("nc,nc->n", normal, position) > 0, -1.0, 1.0)[:, None]
    color = np.zeros((height, width, 3))
    color[covered] = shade(normal, position, interp(albedo), interp(specular), interp(subsurface),
                              interp(ao), light)
    return color, covered, raster.depth


def downsample(image: np.ndarray, s: int) -> np.ndarray:
    """Box filter: mean over ``s x s`` blocks, ``(s H, s W, ...)`` -> ``(H, W, ...)``."""
    h, w = image.shape[0] // s, image.shape[1] // s
    return image.reshape(h, s, w, s, *image.shape[2:]).mean(axis=(1, 3))
