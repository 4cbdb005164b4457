"""The 20 default demo images: rendered hands with full ground truth (``handpose demo-data``).

:func:`generate` renders the scenes of :data:`SCENES` with the open hand model
(:mod:`handpose.handmodel`), a forearm and sleeve, objects, lights and backgrounds
(:mod:`handpose.scene`), through a phone-like pinhole camera (4:3, ``f`` about the image width),
and writes ``<out>/<name>.jpg``, ``<out>/gt.json`` (the format of ``../shared/photos/gt.json``) and
``<out>/metadata.csv`` (columns :data:`handpose.groundtruth.METADATA_COLUMNS`). Everything is a pure function
of the seed: the scene list fixes the composition, the seed the jitter (pose, shape, light,
textures, noise).

Ground truth per hand: ``keypoints_3d_cam_mm`` (camera frame), ``keypoints_2d = project(K, X)``,
``K`` and ``visibility`` from the rendered depth buffer (:func:`keypoint_visibility`): a keypoint is
visible when it projects inside the image and no surface lies more than its skin depth in front of
it, so the other hand, an object or the hand's own fingers hide it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from handpose import scene as sc
from handpose.camera import intrinsics, project, supersampled_intrinsics
from handpose.groundtruth import gt_document, metadata_csv
from handpose.mesh import box_mesh, cylinder_mesh

#: Image size (4:3) and focal length of the demo camera, pixels.
WIDTH, HEIGHT = 800, 600
FOCAL = 0.95 * WIDTH
#: Samples per pixel side when rendering (anti-aliasing).
SUPERSAMPLE = 2
JPEG_QUALITY = 92
#: Slack (mm) of the depth test of a keypoint's visibility beyond its own skin thickness.
VISIBILITY_MARGIN_MM = 3.0
#: Deepest each keypoint can sit under the skin that faces the camera, mm: 35 for the wrist and
#: the thumb CMC (inside the wrist and the thenar muscle), 25 for finger joints. Deeper ray entries
#: come from fingers pressed into the palm (a fist), which hide the joint.
MAX_SKIN_DEPTH_MM = np.array([35.0, 35.0] + [25.0] * 19)

# ------------------------------------------------------------------------------------------------
# Gestures: (flexion, twist, abduction) degrees per joint, course order (thumb CMC, MCP, IP; index
# MCP, PIP, DIP; middle; ring; pinky), within the open hand's limits (handmodel.joint_ranges).
# ------------------------------------------------------------------------------------------------
_EXTENDED = ((0, 0, 0), (0, 0, 0), (0, 0, 0))
_CURLED = ((80, 0, 0), (95, 0, 0), (55, 0, 0))
GESTURES: dict[str, tuple[tuple[tuple[float, float, float], ...], ...]] = {
    "open": (((-20, 0, -20), (-5, 0, 0), (-5, 0, 0)), ((-5, 0, -10), (0, 0, 0), (0, 0, 0)),
             ((-5, 0, 0), (0, 0, 0), (0, 0, 0)), ((-5, 0, 8), (0, 0, 0), (0, 0, 0)),
             ((-5, 0, 15), (0, 0, 0), (0, 0, 0))),
    "relaxed": (((0, 0, 0), (5, 0, 0), (10, 0, 0)), ((10, 0, 0), (15, 0, 0), (10, 0, 0)),
                ((15, 0, 0), (20, 0, 0), (10, 0, 0)), ((20, 0, 0), (25, 0, 0), (15, 0, 0)),
                ((25, 0, 0), (30, 0, 0), (15, 0, 0))),
    "fist": (((30, 0, 10), (45, 0, 0), (40, 0, 0)), _CURLED, _CURLED, _CURLED, _CURLED),
    "point": (((30, 0, 10), (40, 0, 0), (30, 0, 0)), _EXTENDED, _CURLED, _CURLED, _CURLED),
    "count2": (((30, 0, 10), (40, 0, 0), (30, 0, 0)), ((0, 0, -10), (0, 0, 0), (0, 0, 0)),
               ((0, 0, 8), (0, 0, 0), (0, 0, 0)), _CURLED, _CURLED),
    "count3": (((-15, 0, -15), (0, 0, 0), (0, 0, 0)), ((0, 0, -8), (0, 0, 0), (0, 0, 0)),
               ((0, 0, 5), (0, 0, 0), (0, 0, 0)), _CURLED, _CURLED),
    "pinch": (((25, 0, 15), (20, 0, 0), (15, 0, 0)), ((35, 0, 0), (50, 0, 0), (20, 0, 0)),
              ((15, 0, 0), (20, 0, 0), (10, 0, 0)), ((20, 0, 0), (25, 0, 0), (15, 0, 0)),
              ((25, 0, 0), (30, 0, 0), (15, 0, 0))),
}
#: ``metadata.csv`` background tag of each background kind.
BACKGROUND_TAGS = {"plain": "plain", "wood": "textured", "fabric": "textured", "clutter": "cluttered",
                   "photo": "cluttered"}
#: ``metadata.csv`` gesture tag of each gesture.
GESTURE_TAGS = {"open": "open", "relaxed": "other", "fist": "fist", "point": "point",
                "count2": "count", "count3": "count", "pinch": "pinch"}


def gesture_pose(name: str, rng: np.random.Generator | None = None, jitter_deg: float = 4.0,
                 limits: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The ``(45,)`` pose (radians) of gesture ``name``, optionally jittered and clipped to ``limits``.

    Jitter: ``N(0, jitter_deg)`` on flexion, a third of it on twist and abduction.
    """
    if name not in GESTURES:
        raise ValueError(f"unknown gesture {name!r}; known: {', '.join(GESTURES)}")
    pose = np.radians(np.asarray(GESTURES[name], dtype=np.float64).reshape(-1))
    if rng is not None:
        scale = np.tile([1.0, 1 / 3, 1 / 3], 15) * np.radians(jitter_deg)
        pose = pose + scale * rng.standard_normal(45)
    if limits is not None:
        pose = np.clip(pose, limits[0], limits[1])
    return pose


# ------------------------------------------------------------------------------------------------
# Scene descriptions
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HandSpec:
    """One hand in a scene (camera frame, mm).

    Attributes:
        side: ``"right"`` or ``"left"``.
        gesture: key of :data:`GESTURES`.
        forward: ``(3,)`` direction wrist -> middle knuckle.
        normal: ``(3,)`` direction the palm faces (made orthogonal to ``forward``).
        at: ``(u, v, z)``: the palm centre (midway between the wrist and the middle knuckle) is
            placed at depth ``z`` mm on the ray through the image point ``(u W, v H)``.
        bend: wrist flexion relative to the forearm, degrees (positive: hand bent towards the palm).
        sleeve_at: forearm length before the sleeve starts, mm.
    """

    side: str
    gesture: str
    forward: tuple[float, float, float]
    normal: tuple[float, float, float]
    at: tuple[float, float, float]
    bend: float = 0.0
    sleeve_at: float = 160.0


@dataclass(frozen=True)
class ObjectSpec:
    """An occluding object: a ``"box"`` (phone, book) or a ``"cylinder"`` (mug, bottle).

    Attributes:
        kind: ``"box"`` or ``"cylinder"``.
        center: ``(3,)`` mm, camera frame.
        size: box ``(3,)`` edge lengths, cylinder ``(radius, height, 0)``, mm.
        tilt: rotation about the camera z axis, degrees.
        color: sRGB 0-255.
    """

    kind: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    tilt: float
    color: tuple[int, int, int]


@dataclass(frozen=True)
class SceneSpec:
    """One demo image: its hands, surroundings and tags (the ``metadata.csv`` row)."""

    name: str
    view: str
    hands: tuple[HandSpec, ...]
    background: str
    lighting: str
    skin: str
    objects: tuple[ObjectSpec, ...] = ()
    occlusion: str = "none"
    blur: float = 0.0
    noise: float = 0.004
    shadow: float = 0.0
    hard: bool = False
    notes: str = ""

    def metadata(self) -> dict[str, str]:
        """The ``metadata.csv`` row of this scene (``image`` filled in by the caller)."""
        tags = {GESTURE_TAGS[h.gesture] for h in self.hands}
        return {"view": self.view, "gesture": "+".join(sorted(tags)), "hands": str(len(self.hands)),
                "occlusion": self.occlusion, "background": BACKGROUND_TAGS[self.background.split(":")[0]],
                "lighting": self.lighting, "skin_tone": sc.SKIN_TONES[self.skin][2],
                "hard": str(int(self.hard)), "notes": self.notes}


# Directions in the camera frame (x right, y down, z forward).
_UP, _DOWN, _LEFT, _RIGHT = (0, -1, 0), (0, 1, 0), (-1, 0, 0), (1, 0, 0)
_TO_CAM, _AWAY = (0, 0, -1), (0, 0, 1)

SCENES: tuple[SceneSpec, ...] = (
    SceneSpec("01_palm_open", "palm",
              (HandSpec("right", "open", (0.05, -1, 0.1), _TO_CAM, (0.5, 0.52, 480)),),
              "plain:wall", "daylight", "II", notes="reference: open palm facing the camera"),
    SceneSpec("02_back_open", "back",
              (HandSpec("left", "open", (-0.1, -1, 0.05), _AWAY, (0.45, 0.5, 450)),),
              "fabric:blue", "indoor", "IV"),
    SceneSpec("03_palm_fist", "palm",
              (HandSpec("right", "fist", (0.15, -1, 0.3), _TO_CAM, (0.55, 0.45, 380)),),
              "wood", "daylight", "III"),
    SceneSpec("04_side_point", "side",
              (HandSpec("right", "point", (1, -0.15, 0.1), (0, 0.3, -1), (0.42, 0.5, 400), bend=-10),),
              "clutter:room", "indoor", "I", notes="index finger points to the right"),
    SceneSpec("05_back_count2", "back",
              (HandSpec("right", "count2", (0, -1, 0.1), _AWAY, (0.52, 0.5, 430)),),
              "plain:grey", "indoor", "VI", notes="V sign seen from the back"),
    SceneSpec("06_palm_count3", "palm",
              (HandSpec("left", "count3", (-0.15, -1, 0.1), _TO_CAM, (0.72, 0.55, 380)),),
              "photo:grace_hopper.jpg", "daylight", "V", notes="thumb, index and middle up"),
    SceneSpec("07_side_pinch", "side",
              (HandSpec("right", "pinch", (0.7, -0.7, 0.1), (-0.4, -0.2, -1), (0.45, 0.5, 380)),),
              "wood", "indoor", "II", shadow=0.3, notes="thumb and index tips touch"),
    SceneSpec("08_topdown_open", "top-down",
              (HandSpec("right", "relaxed", (0.1, -1, 0.1), _AWAY, (0.5, 0.5, 380), bend=10),),
              "wood", "indoor", "III", shadow=0.55, notes="hand resting on a table, seen from above"),
    SceneSpec("09_ego_relaxed", "egocentric",
              (HandSpec("right", "relaxed", (-0.2, -0.7, 0.7), (0, 0.7, 0.7), (0.55, 0.55, 330), sleeve_at=120),),
              "fabric:beige", "indoor", "IV", shadow=0.3, notes="own hand seen from the eyes, forearm from the bottom"),
    SceneSpec("10_ego_point", "egocentric",
              (HandSpec("right", "point", (-0.3, -0.6, 0.75), (0.1, 0.75, 0.6), (0.5, 0.55, 330), sleeve_at=110),),
              "clutter:desk", "indoor", "I", shadow=0.3),
    SceneSpec("11_two_open", "palm",
              (HandSpec("right", "open", (0.2, -1, 0.1), _TO_CAM, (0.33, 0.5, 500)),
               HandSpec("left", "open", (-0.2, -1, 0.1), _TO_CAM, (0.67, 0.5, 500))),
              "plain:wall", "daylight", "III", notes="two hands side by side"),
    SceneSpec("12_two_interacting", "palm",
              (HandSpec("right", "pinch", (0.7, -0.7, 0.1), (-0.2, 0, -1), (0.38, 0.55, 430)),
               HandSpec("left", "relaxed", (-0.7, -0.7, 0.2), (0.2, 0, -1), (0.64, 0.55, 450))),
              "clutter:room", "indoor", "II", occlusion="other-hand",
              notes="hands reach towards each other, fingers overlap"),
    SceneSpec("13_two_fist_count", "back",
              (HandSpec("left", "fist", (0, -1, 0.2), _AWAY, (0.32, 0.55, 460)),
               HandSpec("right", "count3", (0, -1, 0.1), _AWAY, (0.68, 0.5, 480))),
              "fabric:green", "dim", "V"),
    SceneSpec("14_far_small", "palm",
              (HandSpec("right", "open", (0.1, -1, 0.05), _TO_CAM, (0.62, 0.4, 1600)),),
              "clutter:room", "daylight", "III", notes="small hand far away (~90 px)"),
    SceneSpec("15_object_mug", "side",
              (HandSpec("right", "relaxed", (0.3, -1, 0.2), (-0.6, 0, -1), (0.5, 0.5, 420)),),
              "wood", "indoor", "IV",
              objects=(ObjectSpec("cylinder", (25, 70, 350), (40, 100, 0), 0, (200, 60, 50)),),
              occlusion="object", notes="a mug in front of the palm"),
    SceneSpec("16_object_phone", "back",
              (HandSpec("left", "count2", (0, -1, 0.1), _AWAY, (0.5, 0.5, 430)),),
              "plain:grey", "daylight", "I",
              objects=(ObjectSpec("box", (-45, 80, 360), (70, 145, 8), 20, (30, 30, 35)),),
              occlusion="object", notes="a phone hides the thumb side"),
    SceneSpec("17_border_cut", "palm",
              (HandSpec("right", "open", (0.5, -1, 0.1), _TO_CAM, (0.9, 0.4, 400)),),
              "fabric:red", "indoor", "II", occlusion="border", notes="fingers cut by the right border"),
    SceneSpec("18_backlit_hard", "palm",
              (HandSpec("left", "open", (0.1, -1, 0.1), _TO_CAM, (0.5, 0.5, 430)),),
              "plain:bright", "backlit", "VI", hard=True, notes="dark hand against a bright window"),
    SceneSpec("19_blur_fist_hard", "side",
              (HandSpec("right", "fist", (0.5, -1, 0.4), (-1, 0, -0.4), (0.5, 0.5, 370)),),
              "clutter:desk", "dim", "III", blur=2.5, noise=0.02, hard=True,
              notes="side fist, defocused and noisy in dim light"),
    SceneSpec("20_crossed_hard", "back",
              (HandSpec("right", "open", (0.5, -1, 0.1), _AWAY, (0.43, 0.52, 440)),
               HandSpec("left", "open", (-0.5, -1, 0.1), _AWAY, (0.57, 0.52, 410))),
              "fabric:beige", "indoor", "II", occlusion="other-hand", hard=True,
              notes="crossed hands, one over the other"),
)

# ------------------------------------------------------------------------------------------------
# Lights and backgrounds by tag
# ------------------------------------------------------------------------------------------------
#: lighting tag -> (key direction, key colour, sky, ground, background gain, exposure)
_LIGHTS: dict[str, tuple[tuple[float, ...], ...]] = {
    "daylight": ((-0.4, -0.6, -0.7), (0.85, 0.84, 0.82), (0.30, 0.32, 0.36), (0.14, 0.13, 0.12), (1.0,), (1.0,)),
    "indoor": ((0.5, -0.7, -0.5), (0.85, 0.72, 0.55), (0.26, 0.24, 0.22), (0.12, 0.10, 0.08), (0.9,), (1.05,)),
    "dim": ((-0.6, -0.5, -0.6), (0.30, 0.26, 0.22), (0.10, 0.10, 0.11), (0.05, 0.05, 0.05), (0.35,), (2.2,)),
    "backlit": ((0.2, -0.5, 1.0), (1.2, 1.15, 1.1), (0.12, 0.13, 0.15), (0.06, 0.06, 0.06), (2.5,), (1.0,)),
}
_COLORS = {"wall": (236, 230, 218), "grey": (150, 152, 155), "bright": (250, 250, 248), "blue": (60, 85, 140),
           "beige": (200, 180, 150), "green": (70, 110, 80), "red": (150, 45, 50), "room": (215, 205, 190),
           "desk": (150, 105, 70)}


def scene_lighting(tag: str, rng: np.random.Generator) -> tuple[sc.Lighting, float, float]:
    """``(Lighting, background gain, exposure)`` of a lighting tag, the key direction jittered."""
    if tag not in _LIGHTS:
        raise ValueError(f"unknown lighting {tag!r}; known: {', '.join(_LIGHTS)}")
    direction, key, sky, ground, (gain,), (exposure,) = _LIGHTS[tag]
    direction = tuple(sc.normalize(np.asarray(direction) + 0.15 * rng.standard_normal(3)))
    return sc.Lighting(direction, key, sky, ground), gain, exposure


def scene_background(tag: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Linear RGB ``(H, W, 3)`` background of a tag ``kind[:variant]`` (see :data:`SCENES`)."""
    kind, _, variant = tag.partition(":")
    color = sc.srgb_to_linear(np.asarray(_COLORS.get(variant, (160, 120, 80))) / 255.0)
    if kind == "plain":
        return sc.gradient_background(height, width, color * 1.05, color * 0.8, rng)
    if kind == "wood":
        return sc.wood_background(height, width, color, rng)
    if kind == "fabric":
        return sc.fabric_background(height, width, color, rng)
    if kind == "clutter":
        base = (sc.wood_background(height, width, color, rng) if variant == "desk"
                else sc.gradient_background(height, width, color, color * 0.75, rng))
        return sc.clutter_background(height, width, base, rng)
    if kind == "photo":
        return sc.sample_photo_background(variant, height, width, rng)
    raise ValueError(f"unknown background {tag!r}")


# ------------------------------------------------------------------------------------------------
# Rendering, visibility, ground truth
# ------------------------------------------------------------------------------------------------
def keypoint_visibility(points: np.ndarray, K: np.ndarray, depth: np.ndarray,
                        tolerance: np.ndarray | float) -> np.ndarray:
    """Visibility ``(N,)`` bool of camera-frame points ``(N, 3)`` mm against a depth buffer ``(H, W)``.

    A point is visible when it is in front of the camera, its projection ``u = K X / Z`` rounds to a
    pixel inside the image, and the rendered depth there is at most ``tolerance`` (scalar or
    ``(N,)``, mm) in front of it: ``Z - depth[v, u] <= tolerance``. Joints sit inside the skin, so
    the tolerance is the skin depth plus a margin.
    """
    points = np.asarray(points, dtype=np.float64)
    depth = np.asarray(depth)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {points.shape}")
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {depth.shape}")
    tolerance = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), points.shape[:1])
    height, width = depth.shape
    z = points[:, 2]
    uv = np.asarray(project(np.where(z[:, None] > 0, points, 1.0), K))
    col, row = np.rint(uv[:, 0]), np.rint(uv[:, 1])
    inside = (z > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    seen = np.full(len(points), np.inf)
    seen[inside] = depth[row[inside].astype(int), col[inside].astype(int)]
    return inside & (z - seen <= tolerance)


@dataclass
class RenderedScene:
    """One rendered demo image and its ground truth.

    Attributes:
        image: ``(H, W, 3)`` uint8 sRGB.
        K: ``(3, 3)`` intrinsics.
        hands: the posed hands (keypoints in the camera frame).
        visibility: per hand ``(21,)`` bool.
        depth: ``(s H, s W)`` rendered depth (mm) at the supersampled resolution, ``inf`` if empty.
        K_depth: ``(3, 3)`` intrinsics of ``depth``.
        spec: the scene.
    """

    image: np.ndarray
    K: np.ndarray
    hands: list[sc.PosedHand]
    visibility: list[np.ndarray]
    depth: np.ndarray
    K_depth: np.ndarray
    spec: SceneSpec


def _object_mesh(obj: ObjectSpec) -> sc.Mesh:
    c, t = np.cos(np.radians(obj.tilt)), np.sin(np.radians(obj.tilt))
    rotation = np.array([[c, -t, 0.0], [t, c, 0.0], [0.0, 0.0, 1.0]])
    if obj.kind == "box":
        verts, faces, normals = box_mesh(np.asarray(obj.center, float), rotation, np.asarray(obj.size, float))
    elif obj.kind == "cylinder":
        verts, faces, normals = cylinder_mesh(np.asarray(obj.center, float), rotation, obj.size[0], obj.size[1])
    else:
        raise ValueError(f"unknown object kind {obj.kind!r}")
    albedo = np.broadcast_to(sc.srgb_to_linear(np.asarray(obj.color) / 255.0), verts.shape)
    return sc.Mesh(verts, faces, albedo, np.full(len(verts), 0.25), np.zeros(len(verts)), normals)


_SLEEVES = ((40, 50, 70), (120, 120, 125), (170, 40, 40), (30, 30, 30), (90, 110, 60), (200, 200, 205),
            (60, 90, 150))


def render_scene(spec: SceneSpec, seed: int = 0, index: int = 0, factory: sc.HandFactory | None = None,
                 width: int = WIDTH, height: int = HEIGHT) -> RenderedScene:
    """Render one scene; the jitter comes from ``numpy.random.default_rng([seed, index])``."""
    import cv2

    rng = np.random.default_rng([seed, index])
    factory = factory or sc.HandFactory()
    K = intrinsics(FOCAL * width / WIDTH, (width - 1) / 2.0, (height - 1) / 2.0)
    s = SUPERSAMPLE
    Ks = supersampled_intrinsics(K, s)
    light, gain, exposure = scene_lighting(spec.lighting, rng)
    hands = []
    for hand in spec.hands:
        limits = tuple(x.numpy().astype(np.float64) for x in factory.models[hand.side].pose_limits())
        pose = gesture_pose(hand.gesture, rng, limits=limits)
        shape = np.clip(0.6 * rng.standard_normal(4), -1.5, 1.5)
        sleeve = _SLEEVES[rng.integers(len(_SLEEVES))]
        hands.append(factory.build(hand, spec.skin, sleeve, shape, pose, K, width, height))
    meshes = [h.mesh for h in hands] + [_object_mesh(o) for o in spec.objects]
    color, covered, depth = sc.shade_meshes(meshes, Ks, s * height, s * width, light)

    background = scene_background(spec.background, height, width, rng) * gain
    sharp = spec.background.startswith(("wood", "fabric", "plain"))
    if not sharp:  # depth of field: the room behind the hand is out of focus
        background = cv2.GaussianBlur(background.astype(np.float32), (0, 0), 1.8).astype(np.float64)
    coverage = sc.downsample(covered.astype(np.float64), s)
    if spec.shadow > 0:
        l = np.asarray(light.direction)
        shift = np.float32([[1, 0, -60 * l[0]], [0, 1, -60 * l[1] + 25]])
        cast = cv2.warpAffine(coverage.astype(np.float32), shift, (width, height))
        cast = cv2.GaussianBlur(cast, (0, 0), 12)
        background = background * (1.0 - spec.shadow * cast[..., None])
    linear = sc.downsample(color, s) + (1.0 - coverage[..., None]) * background
    image = sc.camera_finish(linear, rng, exposure=exposure, blur=spec.blur, noise=spec.noise)
    visibility = [keypoint_visibility(h.keypoints, Ks, depth, np.minimum(h.skin_depth, MAX_SKIN_DEPTH_MM)
                                     + VISIBILITY_MARGIN_MM)
                  for h in hands]
    return RenderedScene(image, K, hands, visibility, depth, Ks, spec)


def scene_gt(rendered: RenderedScene, image_name: str) -> dict:
    """The ``gt.json`` entry of a rendered scene (format of ``../shared/photos/gt.json``)."""
    height, width = rendered.image.shape[:2]
    hands = []
    for hand, visible in zip(rendered.hands, rendered.visibility):
        uv = np.asarray(project(hand.keypoints, rendered.K))
        hands.append({
            "handedness": hand.side,
            "keypoints_2d": np.round(uv, 4).tolist(),
            "visibility": visible.astype(int).tolist(),
            "keypoints_3d_cam_mm": np.round(hand.keypoints, 4).tolist(),
            "K": np.round(rendered.K, 6).tolist(),
        })
    return {"image": image_name, "width": int(width), "height": int(height),
            "source": "handpose demo-data (rendered open hand model)", "gt_type": "rendered_exact_3d",
            "hands": hands}


# ------------------------------------------------------------------------------------------------
# The data set on disk
# ------------------------------------------------------------------------------------------------
def image_name(spec: SceneSpec) -> str:
    """File name of a scene's image."""
    return f"{spec.name}.jpg"


def select_scenes(only: Sequence[str | int] | None = None, count: int | None = None) -> list[int]:
    """Indices into :data:`SCENES`: those in ``only`` (names, name prefixes like ``"07"``, or
    0-based ``int`` indices), else the first ``count`` (all when ``None``)."""
    if only:
        names = [s.name for s in SCENES]
        picked = []
        for item in only:
            if isinstance(item, (int, np.integer)):
                index = int(item)
                if not 0 <= index < len(SCENES):
                    raise ValueError(f"scene index {index} is outside 0..{len(SCENES) - 1}")
            else:
                matches = [i for i, n in enumerate(names) if n == item or n.startswith(f"{item}_")]
                if len(matches) != 1:
                    raise ValueError(f"no single scene named {item!r}; scenes: {', '.join(names)}")
                index = matches[0]
            picked.append(index)
        return sorted(set(picked))
    if count is not None and count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return list(range(len(SCENES) if count is None else min(count, len(SCENES))))


@dataclass
class GenerationResult:
    """What :func:`generate` wrote: ``gt`` (the ``gt.json`` content), ``metadata`` rows,
    ``paths`` of the images and ``seconds`` taken."""

    gt: dict
    metadata: list[dict[str, str]]
    paths: list[Path]
    seconds: float


#: The ``conventions`` of the demo set's ``gt.json`` (free text, for people).
GT_CONVENTIONS: dict[str, str] = {
    "keypoints_2d": "pixel coords (x right, y down) in the stored image file, MediaPipe order; "
                    "pixel centres at integer coordinates",
    "keypoints_3d_cam_mm": "camera-space 3D in millimetres (x right, y down, z forward), consistent "
                           "with K so that uv = K X / Z",
    "K": "3x3 intrinsics for the stored image",
    "visibility": "1 = the keypoint projects inside the image and no surface (other hand, object, "
                  "own fingers) lies in front of the skin around it, from the rendered depth buffer",
    "gt_type": "rendered_exact_3d = rendered from the open hand model: exact 2D and 3D",
}


def generate(out_dir: str | Path = "data/demo", seed: int = 0, only: Sequence[str | int] | None = None,
             count: int | None = None, progress: bool = False) -> GenerationResult:
    """Render the demo scenes into ``out_dir``: ``<name>.jpg``, ``gt.json`` and ``metadata.csv``.

    Each scene's jitter depends only on ``(seed, scene index)``, so a subset (``only``: names or
    ``int`` indices; ``count``: the first N) renders exactly as in the full set. ``gt.json`` and
    ``metadata.csv`` list the scenes rendered in this call. All files are written atomically.
    """
    from handpose import io

    start = time.perf_counter()
    indices = select_scenes(only, count)
    out = Path(out_dir)
    factory = sc.HandFactory()
    images, rows, paths = [], [], []
    for index in indices:
        spec = SCENES[index]
        rendered = render_scene(spec, seed, index, factory)
        name = image_name(spec)
        paths.append(io.write_atomic(out / name, io.encode_jpeg(rendered.image, JPEG_QUALITY)))
        images.append(scene_gt(rendered, name))
        rows.append({"image": name, **spec.metadata()})
        if progress:
            print(f"  {name}: {len(spec.hands)} hand(s), {sum(int(v.sum()) for v in rendered.visibility)} "
                  f"visible keypoints", flush=True)
    gt = gt_document(images, GT_CONVENTIONS)
    io.write_atomic(out / "gt.json", json.dumps(gt, indent=1))
    io.write_atomic(out / "metadata.csv", metadata_csv(rows))
    return GenerationResult(gt, rows, paths, time.perf_counter() - start)
