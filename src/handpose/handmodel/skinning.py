"""Linear blend skinning, smplx style (pure torch functions): Rodrigues, forward kinematics
batched per depth level of the bone tree, skinning, shape blend offsets."""
from __future__ import annotations

import functools

import torch


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues: ``(..., 3)`` axis-angle -> ``(..., 3, 3)`` rotation matrices.

    ``R = I + sin(t) K + (1 - cos(t)) K^2`` with ``t = |w|`` and ``K`` the cross-product matrix of
    ``w / t``; written with ``sin(t)/t`` and ``(1 - cos t)/t^2`` (Taylor near 0) so it is smooth at 0.
    """
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    theta = torch.sqrt(theta2.clamp_min(1e-12))
    small = theta2 < 1e-6
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*rotvec.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a * k + b * (k @ k)


@functools.lru_cache(maxsize=16)
def _depth_levels(parents: tuple[int, ...]) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """``(children, their parents)`` long index tensors per depth level below the roots, top-down
    (built once per tree: indexing with tensors avoids converting lists at every call)."""
    depth: list[int] = []
    for k, parent in enumerate(parents):
        if not -1 <= parent < k:
            raise ValueError(f"parents must list each parent before its children, got {parents}")
        depth.append(0 if parent < 0 else depth[parent] + 1)
    return tuple(
        (torch.tensor([k for k in range(len(parents)) if depth[k] == d]),
         torch.tensor([parents[k] for k in range(len(parents)) if depth[k] == d]))
        for d in range(1, max(depth) + 1)
    )


@functools.lru_cache(maxsize=16)
def _parent_index(parents: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(K,)`` parent of each joint (roots: themselves) and ``(K,)`` bool root mask."""
    return (torch.tensor([k if p < 0 else p for k, p in enumerate(parents)]),
            torch.tensor([p < 0 for p in parents]))


def rigid_transforms(
    rotations: torch.Tensor, joints: torch.Tensor, parents: tuple[int, ...]
) -> torch.Tensor:
    """Forward kinematics: per-bone world transforms relative to the rest pose.

    Args:
        rotations: ``(B, K, 3, 3)`` rotation of each bone about its head, in rest-pose world axes.
        joints: ``(B, K, 3)`` rest bone heads.
        parents: ``K`` parent indices, ``-1`` for the root, parents before children.
    Returns:
        ``(B, K, 4, 4)`` ``A_k`` with ``x_posed = A_k x_rest`` for points rigid with bone ``k``:
        ``G_k = G_parent [R_k | j_k - j_parent]`` and ``A_k = G_k [I | -j_k]``.
    """
    batch, count = joints.shape[:2]
    levels = _depth_levels(parents)  # validates the order
    parent, root = (t.to(joints.device) for t in _parent_index(parents))
    offsets = torch.where(root[:, None], joints, joints - joints[:, parent])
    local = torch.cat([rotations, offsets[..., None]], dim=-1)  # (B, K, 3, 4)
    bottom = local.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(batch, count, 1, 4)
    local = torch.cat([local, bottom], dim=-2)
    g = local  # roots: G_k = local_k; then one batched product per depth level of the tree
    for children, their_parents in levels:
        children, their_parents = children.to(joints.device), their_parents.to(joints.device)
        g = g.index_copy(1, children, g[:, their_parents] @ local[:, children])
    # A_k = G_k [I | -j_k]: translation t_k - R_k j_k
    moved = g[..., :3, 3] - (g[..., :3, :3] @ joints[..., None])[..., 0]
    return torch.cat([torch.cat([g[..., :3, :3], moved[..., None]], dim=-1), g[..., 3:, :]], dim=-2)


def apply_transforms(transforms: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``(B, K, 4, 4)`` transforms applied to ``(B, K, 3)`` points, one each: ``R p + t``."""
    return (transforms[..., :3, :3] @ points[..., None])[..., 0] + transforms[..., :3, 3]


def skin_vertices(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning: ``v' = sum_k w_vk A_k v``, blending the transforms first,
    ``(sum_k w_vk A_k) v``, as one ``(V, K) @ (B, K, 12)`` matrix product.

    Args:
        vertices: ``(B, V, 3)`` rest vertices.
        weights: ``(V, K)`` skinning weights, rows summing to 1.
        transforms: ``(B, K, 4, 4)`` from :func:`rigid_transforms`.
    Returns:
        ``(B, V, 3)``.
    """
    batch, count = transforms.shape[:2]
    blended = (weights @ transforms[..., :3, :].reshape(batch, count, 12)).view(batch, -1, 3, 4)
    return (blended[..., :3] * vertices[..., None, :]).sum(-1) + blended[..., 3]


def _shape_offsets(shapedirs: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """Shape blend ``D beta``: ``(N, 3, S)`` directions and ``(B, S)`` coefficients -> ``(B, N, 3)``,
    as one ``(B, S) @ (S, 3 N)`` matrix product."""
    count = shapedirs.shape[0]
    return (shape @ shapedirs.reshape(count * 3, -1).T).view(-1, count, 3)
