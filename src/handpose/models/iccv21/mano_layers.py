"""The two MANO layers of the ICCV 2021 network, one per release, with their exact state_dict names.

Both compute the same linear blend skinning (LBS) of MANO with the authors' settings: no PCA
(48 axis-angle values), ``flat_hand_mean=False`` (the predicted 45 finger values are added to
MANO's ``hands_mean``), 10 betas, output in millimetres. They differ in their buffers and outputs:

* :class:`ManoLayerV1` (release v1, manopth-style buffers ``th_*``): joints reordered to the course
  order, centred at joint 9 (middle MCP); the *left* middle fingertip is vertex 445 (an upstream
  manopth quirk), 444 for the right hand and for the rest-pose joints.
* :class:`ManoLayerV2` (release v2, smplx 0.1.28 ``MANO`` parameters and buffers plus ``beta2J`` and
  ``template_J``): joints in MANO's native order, not centred, the ``transl`` parameter added.

MANO arrays are not shipped: layers are created zero-filled (real shapes) and filled from a
checkpoint or from MANO's pickles with :func:`fill_mano_pair`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from handpose.handmodel.mano import NUM_BETAS, NUM_FACES, NUM_JOINTS, NUM_VERTICES
from handpose.keypoints import COURSE_FROM_MANO, MANO_TIP_VERTICES

Release = Literal["v1", "v2"]

#: Length of the full pose these layers take: global orientation + 15 finger joints, axis-angle
#: (``handpose.handmodel.mano.NUM_POSE`` = 45 is the finger pose alone).
NUM_FULL_POSE = 3 * NUM_JOINTS
#: MANO's kinematic tree in its native joint order (0 wrist; index, middle, pinky, ring, thumb).
MANO_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
#: Release v1's left-hand fingertips (upstream manopth uses 445 for the left middle tip).
V1_LEFT_TIP_VERTICES: tuple[int, ...] = (745, 317, 445, 556, 673)
#: smplx 0.1.28's ``VERTEX_IDS["mano"]``: stored in v2's ``extra_joints_idxs``, unused by forward.
SMPLX_MANO_TIP_VERTICES: tuple[int, ...] = (744, 320, 443, 554, 671)
#: Release v1 centres its output on this joint (course order: middle MCP).
V1_CENTER_JOINT = 9
M_TO_MM = 1000.0


class ManoArrays(Protocol):
    """What the layers need from a MANO pickle (``handpose.handmodel.mano.ManoData`` provides it)."""

    v_template: np.ndarray  # (778, 3) m
    shapedirs: np.ndarray  # (778, 3, 10)
    posedirs: np.ndarray  # (778, 3, 135)
    J_regressor: np.ndarray  # (16, 778)
    weights: np.ndarray  # (778, 16)
    faces: np.ndarray  # (1538, 3)
    kintree_table: np.ndarray  # (2, 16)
    hands_mean: np.ndarray  # (45,)
    hands_components: np.ndarray  # (45, 45)


@dataclass
class ManoOutput:
    """One MANO evaluation, in the release's conventions.

    Attributes:
        vertices: ``(B, 778, 3)`` mm.
        joints: ``(B, 21, 3)`` mm; v1: course order centred at the middle MCP; v2: MANO native
            order (16 skeleton joints then 5 tips), ``transl`` added, not centred.
        rest_joints: v1 ``(B, 21, 3)`` rest-pose joints (course order, not centred);
            v2 ``(B, 16, 3)`` rest-pose skeleton from ``template_J + beta2J @ betas``; mm.
    """

    vertices: Tensor
    joints: Tensor
    rest_joints: Tensor


def axis_angle_to_matrix_smplx(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula as smplx and manopth write it, ``(N, 3)`` axis-angle -> ``(N, 3, 3)``.

    Kept for numerical faithfulness to the authors' layers; the package's own (Taylor branch near
    0, no epsilon bias) is :func:`handpose.handmodel.skinning.axis_angle_to_matrix`.

    ``R = I + sin(t) K + (1 - cos(t)) K^2`` with ``t = |r + 1e-8|`` and ``K`` the cross-product
    matrix of ``r / t`` (the epsilon placement of smplx and manopth, so zero maps to ``I``).
    """
    if axis_angle.ndim != 2 or axis_angle.shape[1] != 3:
        raise ValueError(f"axis_angle must be (N, 3), got {tuple(axis_angle.shape)}")
    angle = torch.linalg.vector_norm(axis_angle + 1e-8, dim=1, keepdim=True)  # (N, 1)
    x, y, z = (axis_angle / angle).unbind(1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(-1, 3, 3)
    sin, cos = torch.sin(angle)[:, :, None], torch.cos(angle)[:, :, None]
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + sin * k + (1.0 - cos) * (k @ k)


def linear_blend_skinning(
    betas: Tensor,
    full_pose: Tensor,
    v_template: Tensor,
    shapedirs: Tensor,
    posedirs: Tensor,
    j_regressor: Tensor,
    parents: tuple[int, ...],
    weights: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """MANO / SMPL skinning.

    Args:
        betas: ``(B, 10)``.
        full_pose: ``(B, 16 * 3)`` axis-angle, root first.
        v_template: ``(V, 3)``; shapedirs ``(V, 3, 10)``; posedirs ``(135, V * 3)`` (smplx layout).
        j_regressor: ``(16, V)``; parents: the kinematic tree (root ``-1``); weights ``(V, 16)``.

    Returns:
        ``(vertices (B, V, 3), joints (B, 16, 3), rest_vertices (B, V, 3))`` in the input's units;
        ``joints`` are the posed skeleton (kinematic chain), ``rest_vertices`` the shaped template.
    """
    batch = betas.shape[0]
    # v_shaped = T + S beta ; J = R v_shaped
    v_shaped = v_template + torch.einsum("bl,vkl->bvk", betas, shapedirs)
    joints = torch.einsum("jv,bvk->bjk", j_regressor, v_shaped)
    rot = axis_angle_to_matrix_smplx(full_pose.reshape(-1, 3)).view(batch, -1, 3, 3)  # (B, 16, 3, 3)
    # v_posed = v_shaped + P vec(R_1..15 - I)
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    pose_feature = (rot[:, 1:] - eye).reshape(batch, -1)
    v_posed = v_shaped + (pose_feature @ posedirs).view(batch, -1, 3)
    # G_k = G_parent(k) [R_k | J_k - J_parent(k)] ; A_k = G_k [I | -J_k]
    rel = joints.clone()
    rel[:, 1:] = joints[:, 1:] - joints[:, list(parents[1:])]
    local = torch.cat([rot, rel[..., None]], dim=3)  # (B, 16, 3, 4)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=rot.dtype, device=rot.device).expand(batch, NUM_JOINTS, 1, 4)
    local = torch.cat([local, bottom], dim=2)  # (B, 16, 4, 4)
    chain = [local[:, 0]]
    for k in range(1, len(parents)):
        chain.append(chain[parents[k]] @ local[:, k])
    world = torch.stack(chain, dim=1)
    posed_joints = world[:, :, :3, 3]
    offset = world[:, :, :3, :3] @ joints[..., None]  # R_k J_k
    skin = world.clone()
    skin[:, :, :3, 3] = posed_joints - offset[..., 0]
    # v = sum_k w_vk A_k [v_posed; 1]
    blended = torch.einsum("vk,bkij->bvij", weights, skin)  # (B, V, 4, 4)
    vertices = (blended[:, :, :3, :3] @ v_posed[..., None])[..., 0] + blended[:, :, :3, 3]
    return vertices, posed_joints, v_shaped


def _check_params(pose: Tensor, betas: Tensor) -> None:
    if pose.ndim != 2 or pose.shape[1] != NUM_FULL_POSE:
        raise ValueError(f"pose must be (B, {NUM_FULL_POSE}) axis-angle, got {tuple(pose.shape)}")
    if betas.shape != (pose.shape[0], NUM_BETAS):
        raise ValueError(f"betas must be ({pose.shape[0]}, {NUM_BETAS}), got {tuple(betas.shape)}")


def _as_tensor(array: np.ndarray, shape: tuple[int, ...], name: str, dtype: torch.dtype) -> Tensor:
    array = np.asarray(array)
    if array.shape != shape:
        raise ValueError(f"MANO array {name} must be {shape}, got {array.shape}")
    return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype)


def _check_tree(data: ManoArrays) -> None:
    parents = np.asarray(data.kintree_table)[0, 1:]
    if parents.shape != (NUM_JOINTS - 1,) or tuple(int(p) for p in parents) != MANO_PARENTS[1:]:
        raise ValueError(f"MANO kintree_table does not match MANO's hand tree {MANO_PARENTS}")


class ManoLayerV1(nn.Module):
    """Release v1's MANO layer (manopth-style buffers, ``mesh_reg.mano_layer.{r,l}.th_*``)."""

    def __init__(self, side: Literal["right", "left"]) -> None:
        super().__init__()
        if side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        self.side = side
        self.tips = MANO_TIP_VERTICES if side == "right" else V1_LEFT_TIP_VERTICES
        self.register_buffer("th_betas", torch.zeros(1, NUM_BETAS))
        self.register_buffer("th_shapedirs", torch.zeros(NUM_VERTICES, 3, NUM_BETAS))
        self.register_buffer("th_posedirs", torch.zeros(NUM_VERTICES, 3, 135))
        self.register_buffer("th_v_template", torch.zeros(1, NUM_VERTICES, 3))
        self.register_buffer("th_J_regressor", torch.zeros(NUM_JOINTS, NUM_VERTICES))
        self.register_buffer("th_weights", torch.zeros(NUM_VERTICES, NUM_JOINTS))
        self.register_buffer("th_faces", torch.zeros(NUM_FACES, 3, dtype=torch.long))
        self.register_buffer("th_hands_mean", torch.zeros(1, 45))
        self.register_buffer("th_selected_comps", torch.zeros(45, 45))

    @property
    def faces(self) -> Tensor:
        """``(1538, 3)`` int64 triangles."""
        return self.th_faces

    @property
    def shapedirs(self) -> Tensor:
        """``(778, 3, 10)`` shape blend shapes (the left-hand fix applies to its x rows)."""
        return self.th_shapedirs

    @torch.no_grad()
    def fill_(self, data: ManoArrays) -> None:
        """Copy MANO's arrays in (manopth: ``betas`` zero, all 45 PCA components kept)."""
        _check_tree(data)
        self.th_shapedirs.copy_(_as_tensor(data.shapedirs, (NUM_VERTICES, 3, NUM_BETAS), "shapedirs", torch.float32))
        self.th_posedirs.copy_(_as_tensor(data.posedirs, (NUM_VERTICES, 3, 135), "posedirs", torch.float32))
        self.th_v_template.copy_(_as_tensor(data.v_template, (NUM_VERTICES, 3), "v_template", torch.float32)[None])
        self.th_J_regressor.copy_(_as_tensor(data.J_regressor, (NUM_JOINTS, NUM_VERTICES), "J_regressor", torch.float32))
        self.th_weights.copy_(_as_tensor(data.weights, (NUM_VERTICES, NUM_JOINTS), "weights", torch.float32))
        self.th_faces.copy_(_as_tensor(data.faces, (NUM_FACES, 3), "faces", torch.long))
        self.th_hands_mean.copy_(_as_tensor(data.hands_mean, (45,), "hands_mean", torch.float32)[None])
        self.th_selected_comps.copy_(_as_tensor(data.hands_components, (45, 45), "hands_components", torch.float32))
        self.th_betas.zero_()

    def forward(self, pose: Tensor, betas: Tensor) -> ManoOutput:
        """``pose (B, 48)`` axis-angle (global 3 + 45 relative to ``hands_mean``), ``betas (B, 10)``."""
        _check_params(pose, betas)
        # full pose = [r, hands_mean + theta]   (flat_hand_mean=False)
        full_pose = torch.cat([pose[:, :3], pose[:, 3:] + self.th_hands_mean], dim=1)
        posedirs = self.th_posedirs.reshape(-1, 135).t()  # (778, 3, 135) -> (135, 2334)
        vertices, joints16, rest = linear_blend_skinning(
            betas, full_pose, self.th_v_template[0], self.th_shapedirs, posedirs,
            self.th_J_regressor, MANO_PARENTS, self.th_weights,
        )
        joints = torch.cat([joints16, vertices[:, list(self.tips)]], dim=1)[:, list(COURSE_FROM_MANO)]
        rest_joints16 = torch.einsum("jv,bvk->bjk", self.th_J_regressor, rest)
        rest_joints = torch.cat([rest_joints16, rest[:, list(MANO_TIP_VERTICES)]], dim=1)[:, list(COURSE_FROM_MANO)]
        center = joints[:, V1_CENTER_JOINT : V1_CENTER_JOINT + 1]
        return ManoOutput(
            vertices=(vertices - center) * M_TO_MM,
            joints=(joints - center) * M_TO_MM,
            rest_joints=rest_joints * M_TO_MM,
        )


class _VertexJointSelector(nn.Module):
    """Holds smplx's ``extra_joints_idxs`` buffer (part of v2's state_dict, unused by v2's forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("extra_joints_idxs", torch.tensor(SMPLX_MANO_TIP_VERTICES, dtype=torch.long))


class ManoLayerV2(nn.Module):
    """Release v2's MANO layer: smplx 0.1.28 ``MANO(use_pca=False)`` plus ``beta2J`` / ``template_J``."""

    def __init__(self, side: Literal["right", "left"]) -> None:
        super().__init__()
        if side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        self.side = side
        self.betas = nn.Parameter(torch.zeros(1, NUM_BETAS))
        self.global_orient = nn.Parameter(torch.zeros(1, 3))
        self.body_pose = nn.Parameter(torch.zeros(1, 3))
        self.transl = nn.Parameter(torch.zeros(1, 3))
        self.hand_pose = nn.Parameter(torch.zeros(1, 45))
        self.register_buffer("shapedirs", torch.zeros(NUM_VERTICES, 3, NUM_BETAS))
        self.register_buffer("faces_tensor", torch.zeros(NUM_FACES, 3, dtype=torch.long))
        self.register_buffer("v_template", torch.zeros(NUM_VERTICES, 3))
        self.register_buffer("J_regressor", torch.zeros(NUM_JOINTS, NUM_VERTICES))
        self.register_buffer("posedirs", torch.zeros(135, NUM_VERTICES * 3))
        self.register_buffer("parents", torch.tensor(MANO_PARENTS, dtype=torch.long))
        self.register_buffer("lbs_weights", torch.zeros(NUM_VERTICES, NUM_JOINTS))
        self.register_buffer("hand_mean", torch.zeros(45))
        self.register_buffer("pose_mean", torch.zeros(NUM_FULL_POSE))
        self.register_buffer("beta2J", torch.zeros(NUM_JOINTS, 3, NUM_BETAS))
        self.register_buffer("template_J", torch.zeros(NUM_JOINTS, 3))
        self.vertex_joint_selector = _VertexJointSelector()

    @property
    def faces(self) -> Tensor:
        """``(1538, 3)`` int64 triangles."""
        return self.faces_tensor

    @torch.no_grad()
    def fill_(self, data: ManoArrays) -> None:
        """Copy MANO's arrays in as ``smplx.create(..., "mano", use_pca=False)`` does.

        ``beta2J`` and ``template_J`` are refreshed by :meth:`refresh_rest_joints_`, after any
        shapedirs fix.
        """
        _check_tree(data)
        self.shapedirs.copy_(_as_tensor(data.shapedirs, (NUM_VERTICES, 3, NUM_BETAS), "shapedirs", torch.float32))
        self.faces_tensor.copy_(_as_tensor(data.faces, (NUM_FACES, 3), "faces", torch.long))
        self.v_template.copy_(_as_tensor(data.v_template, (NUM_VERTICES, 3), "v_template", torch.float32))
        self.J_regressor.copy_(_as_tensor(data.J_regressor, (NUM_JOINTS, NUM_VERTICES), "J_regressor", torch.float32))
        posedirs = _as_tensor(data.posedirs, (NUM_VERTICES, 3, 135), "posedirs", torch.float32)
        self.posedirs.copy_(posedirs.reshape(-1, 135).t())
        self.parents.copy_(torch.tensor(MANO_PARENTS, dtype=torch.long))
        self.lbs_weights.copy_(_as_tensor(data.weights, (NUM_VERTICES, NUM_JOINTS), "weights", torch.float32))
        self.hand_mean.copy_(_as_tensor(data.hands_mean, (45,), "hands_mean", torch.float32))
        self.pose_mean.copy_(torch.cat([torch.zeros(3), self.hand_mean]))
        for param in (self.betas, self.global_orient, self.body_pose, self.transl, self.hand_pose):
            param.zero_()
        self.refresh_rest_joints_()

    @torch.no_grad()
    def refresh_rest_joints_(self) -> None:
        """``template_J = R T`` ``(16, 3)`` and ``beta2J = R S`` ``(16, 3, 10)`` (metres)."""
        self.template_J.copy_(self.J_regressor @ self.v_template)
        self.beta2J.copy_(torch.einsum("jv,vkl->jkl", self.J_regressor, self.shapedirs))

    def forward(self, pose: Tensor, betas: Tensor) -> ManoOutput:
        """``pose (B, 48)`` axis-angle (global 3 + 45 relative to ``hand_mean``), ``betas (B, 10)``."""
        _check_params(pose, betas)
        # smplx: full_pose = [global_orient, hand_pose] + pose_mean
        full_pose = pose + self.pose_mean
        parents = tuple(int(p) for p in self.parents.tolist())
        vertices, joints16, _ = linear_blend_skinning(
            betas, full_pose, self.v_template, self.shapedirs, self.posedirs,
            self.J_regressor, parents, self.lbs_weights,
        )
        joints = torch.cat([joints16, vertices[:, list(MANO_TIP_VERTICES)]], dim=1)
        # T-pose skeleton: J_rest = template_J + beta2J beta
        rest_joints = self.template_J + torch.einsum("jkl,bl->bjk", self.beta2J, betas)
        return ManoOutput(
            vertices=(vertices + self.transl[:, None]) * M_TO_MM,
            joints=(joints + self.transl[:, None]) * M_TO_MM,
            rest_joints=rest_joints * M_TO_MM,
        )



def make_mano_pair(release: Release) -> nn.ModuleDict:
    """Zero-filled ``{"r": right, "l": left}`` layers of ``release`` (state_dict ``mano_layer.{r,l}``)."""
    layer = {"v1": ManoLayerV1, "v2": ManoLayerV2}[release]
    return nn.ModuleDict({"r": layer("right"), "l": layer("left")})


@torch.no_grad()
def fill_mano_pair(pair: nn.ModuleDict, right: ManoArrays, left: ManoArrays) -> None:
    """Fill both layers from MANO's pickles and apply the authors' left-hand shapedirs fix.

    MANO's released left model has the x rows of ``shapedirs`` equal to the right model's (smplx
    issue #48); the authors negate them: v1 always, v2 only when the two nearly coincide
    (``sum |S_l[:, 0] - S_r[:, 0]| < 1``).
    """
    pair["r"].fill_(right)
    pair["l"].fill_(left)
    left_dirs, right_dirs = pair["l"].shapedirs, pair["r"].shapedirs
    if isinstance(pair["l"], ManoLayerV1) or (left_dirs[:, 0] - right_dirs[:, 0]).abs().sum() < 1:
        left_dirs[:, 0] *= -1
    if isinstance(pair["l"], ManoLayerV2):
        pair["r"].refresh_rest_joints_()
        pair["l"].refresh_rest_joints_()


def has_mano_data(pair: nn.ModuleDict) -> bool:
    """Whether both layers carry a (non-zero) MANO template."""
    return all(bool(layer.faces.any()) for layer in pair.values())
