"""Training objectives of the course slides, each a small pure torch function returning a scalar.

Single-hand and mesh losses average over the valid elements (``visible`` masks are ``(B, J)``
bool or float weights). The two-hand losses of Zhang et al. (ICCV 2021, ``../shared/iccv21/
ARCHITECTURE.md`` §1.7 and §1.11) follow the released code: sums over hands, joints and
coordinates, mean over the batch; apply them to every refinement stage and add the results.
Keypoints are in the course order (:mod:`handpose.keypoints`). :func:`prediction_losses` evaluates
them on a real prediction and its fitted mesh.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from handpose.alignment import placed_keypoints
from handpose.camera import project
from handpose.handmodel import HandModel
from handpose.keypoints import BONES, MIDDLE_MCP, NUM_KEYPOINTS, WRIST
from handpose.prediction import HandPrediction

if TYPE_CHECKING:
    from handpose.fitting import FitResult

_EPS = 1e-8


def _check(x: torch.Tensor, ndim: int, tail: tuple[int | None, ...], name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim or any(t is not None and s != t for s, t in zip(x.shape[ndim - len(tail):], tail)):
        want = ", ".join("B" if i == 0 else "*" for i in range(ndim - len(tail)))
        want += "".join(f", {t if t is not None else '*'}" for t in tail)
        raise ValueError(f"{name} must be ({want}), got {tuple(x.shape)}")


def _same(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``sum(w v) / sum(w)`` over all elements of ``values`` ``(B, J)`` (plain mean without ``w``).

    Zero (with a gradient) when every weight is zero.
    """
    if weight is None:
        return values.mean()
    weight = torch.as_tensor(weight, dtype=values.dtype, device=values.device)
    if weight.shape != values.shape:
        raise ValueError(f"visible / weight must be {tuple(values.shape)}, got {tuple(weight.shape)}")
    return (weight * values).sum() / weight.sum().clamp_min(_EPS)


# -- 2D and 3D keypoints ------------------------------------------------------------------------


def heatmap_l2(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Heatmap regression loss ``sum_j w_j mean_{x,y} (H_j(x, y) - G_j(x, y))^2 / sum_j w_j``.

    Args:
        pred, target: ``(B, J, H, W)`` predicted and target (e.g. Gaussian) heatmaps.
        weight: optional ``(B, J)`` per-joint weight (0 for joints without a label).
    """
    _check(pred, 4, (None, None, None), "pred")
    _same(pred, target)
    return _weighted_mean((pred - target).square().mean(dim=(-2, -1)), weight)


def reprojection_l1(pred_2d: torch.Tensor, gt_2d: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
    """2D keypoint loss ``mean_j |u_j - u*_j| + |v_j - v*_j|`` over visible joints (pixels).

    Args:
        pred_2d: ``(B, J, 2)`` projected model keypoints.
        gt_2d: ``(B, J, 2)`` detected / annotated keypoints.
        visible: optional ``(B, J)`` weights.
    """
    _check(pred_2d, 3, (None, 2), "pred_2d")
    _same(pred_2d, gt_2d)
    return _weighted_mean((pred_2d - gt_2d).abs().sum(-1), visible)


def joint_l2(pred_3d: torch.Tensor, gt_3d: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
    """3D joint loss ``mean_j ||J_j - J*_j||^2`` over visible joints.

    Args:
        pred_3d, gt_3d: ``(B, J, 3)`` joints (e.g. root-relative millimetres).
        visible: optional ``(B, J)`` weights.
    """
    _check(pred_3d, 3, (None, 3), "pred_3d")
    _same(pred_3d, gt_3d)
    return _weighted_mean((pred_3d - gt_3d).square().sum(-1), visible)


def silhouette_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Mask loss between a soft rendered silhouette and a target mask, mean over pixels.

    ``"bce"``: ``-mean(m log p + (1 - m) log(1 - p))`` (logs clamped at -100 as in torch);
    ``"l1"``: ``mean |p - m|``.

    Args:
        pred: ``(B, H, W)`` silhouette probabilities in ``[0, 1]``.
        target: ``(B, H, W)`` mask in ``[0, 1]`` (usually 0 or 1).
        kind: ``"bce"`` or ``"l1"``.
    """
    _check(pred, 3, (None, None), "pred")
    _same(pred, target)
    if kind == "bce":
        return F.binary_cross_entropy(pred, target.to(pred.dtype))
    if kind == "l1":
        return (pred - target).abs().mean()
    raise ValueError(f"kind must be 'bce' or 'l1', got {kind!r}")


def pose_shape_regulariser(pose: torch.Tensor, betas: torch.Tensor, pose_weight: float = 1.0,
                           shape_weight: float = 1.0, skip_global: int = 0) -> torch.Tensor:
    """``mean_b (pose_weight ||theta_b[skip_global:]||^2 + shape_weight ||beta_b||^2)``.

    Args:
        pose: ``(B, ..., P)`` pose parameters (e.g. ``(B, 48)`` MANO axis-angle, or ``(B, 2, 48)``).
        betas: ``(B, ..., S)`` shape parameters.
        skip_global: leading pose entries left free per hand (3 = the global rotation).
    """
    for x, name in ((pose, "pose"), (betas, "betas")):
        if not isinstance(x, torch.Tensor) or x.ndim < 2:
            raise ValueError(f"{name} must be a tensor (B, ..., D)")
    if pose.shape[0] != betas.shape[0]:
        raise ValueError(f"pose and betas differ in batch size: {pose.shape[0]} vs {betas.shape[0]}")
    if not 0 <= skip_global <= pose.shape[-1]:
        raise ValueError(f"skip_global must be in 0..{pose.shape[-1]}, got {skip_global}")
    theta = pose[..., skip_global:].flatten(1).square().sum(-1)
    return (pose_weight * theta + shape_weight * betas.flatten(1).square().sum(-1)).mean()


# -- meshes -------------------------------------------------------------------------------------


def _check_mesh(verts: torch.Tensor, faces: torch.Tensor, name: str = "verts") -> None:
    _check(verts, 3, (None, 3), name)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"faces must be an integer (F, 3) tensor, got {tuple(faces.shape)} {faces.dtype}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise ValueError(f"faces index outside 0..{verts.shape[1] - 1}")


def mesh_edges(faces: torch.Tensor) -> torch.Tensor:
    """``(E, 2)`` unique undirected edges ``(i < k)`` of triangles ``(F, 3)``."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).long()
    return torch.unique(edges.sort(dim=1).values, dim=0)


def face_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(B, F, 3)`` unit normals ``n = (v1 - v0) x (v2 - v0) / ||.||`` (counter-clockwise = front)."""
    _check_mesh(verts, faces)
    v0, v1, v2 = (verts[:, faces[:, k].long()] for k in range(3))
    return F.normalize(torch.linalg.cross(v1 - v0, v2 - v0, dim=-1), dim=-1, eps=_EPS)


def vertex_l1(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``mean_v ||v - v*||_1`` over vertices ``(B, V, 3)``."""
    _check(pred, 3, (None, 3), "pred")
    _same(pred, gt)
    return (pred - gt).abs().sum(-1).mean()


def normal_consistency(pred: torch.Tensor, gt: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``mean_f (1 - cos(n_f, n*_f))`` between face normals of two meshes with the same faces.

    0 when every face points the same way (invariant to scale and translation), 2 for a face
    turned inside out.
    """
    _same(pred, gt)
    return (1.0 - (face_normals(pred, faces) * face_normals(gt, faces)).sum(-1)).mean()


def edge_length_loss(pred: torch.Tensor, gt: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``mean_e | ||v_i - v_k|| - ||v*_i - v*_k|| |`` over the unique edges ``(i, k)`` of ``faces``."""
    _check_mesh(pred, faces, "pred")
    _same(pred, gt)
    i, k = mesh_edges(faces).unbind(-1)
    length = (pred[:, i] - pred[:, k]).norm(dim=-1)
    return (length - (gt[:, i] - gt[:, k]).norm(dim=-1)).abs().mean()


def laplacian_smoothness(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Uniform Laplacian ``mean_i ||v_i - (1 / |N(i)|) sum_{k in N(i)} v_k||^2`` over vertices.

    ``N(i)`` are the mesh neighbours of ``i`` (vertices in no face count 0).

    Args:
        verts: ``(B, V, 3)``.
        faces: ``(F, 3)`` integer triangles.
    """
    _check_mesh(verts, faces)
    edges = mesh_edges(faces)
    both = torch.cat([edges, edges.flip(1)])  # each neighbour relation in both directions
    sums = torch.zeros_like(verts).index_add(1, both[:, 0], verts[:, both[:, 1]])
    degree = torch.zeros(verts.shape[1], dtype=verts.dtype, device=verts.device)
    degree = degree.index_add(0, both[:, 0], torch.ones(len(both), dtype=verts.dtype, device=verts.device))
    delta = verts - sums / degree.clamp_min(1.0)[None, :, None]
    return torch.where(degree[None, :] > 0, delta.square().sum(-1), 0.0).mean()


# -- two hands: Zhang et al., ICCV 2021 ---------------------------------------------------------


@dataclass(frozen=True)
class TwoHandWeights:
    """Weights of the two-hand objective as on the course slides (the released v2 code uses 0.1
    for the regulariser)."""

    offset: float = 1.0
    consistency: float = 0.01
    joint: float = 10.0
    bone: float = 100.0
    shape: float = 0.1
    regulariser: float = 0.05


def _check_hands(x: torch.Tensor, name: str) -> None:
    _check(x, 4, (2, NUM_KEYPOINTS, 3), name)


def _valid(visible: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """``(B, 2, 21)`` float validity."""
    if visible is None:
        return torch.ones(like.shape[:3], dtype=like.dtype, device=like.device)
    if tuple(visible.shape) != tuple(like.shape[:3]):
        raise ValueError(f"visible must be {tuple(like.shape[:3])}, got {tuple(visible.shape)}")
    return visible.to(like.dtype)


def hand_length(joints: torch.Tensor, ref: tuple[int, int] = (WRIST, MIDDLE_MCP)) -> torch.Tensor:
    """``(...)`` wrist -> middle MCP length ``||J_a - J_b||`` of joints ``(..., 21, 3)`` (at least 1e-8)."""
    a, b = ref
    return (joints[..., a, :] - joints[..., b, :]).norm(dim=-1).clamp_min(_EPS)


def normalise_hand(joints: torch.Tensor, length: torch.Tensor | None = None, root: int = MIDDLE_MCP) -> torch.Tensor:
    """``(J - J_root) / L``: root-relative joints ``(..., 21, 3)`` in units of the hand length ``L``
    (``(...)``, default :func:`hand_length` of ``joints``)."""
    length = hand_length(joints) if length is None else length
    return (joints - joints[..., root:root + 1, :]) / length[..., None, None]


def two_hand_trans(joints: torch.Tensor) -> torch.Tensor:
    """``(B, 4)`` relative transformation ``[s, Delta]`` of right and left hands ``(B, 2, 21, 3)``.

    ``s = log(L_left / L_right)`` and ``Delta = (root_left - root_right) / L_left``, so that
    ``left in the right frame = (left_norm + Delta) exp(s)`` (§1.7). Hand 0 is right, 1 is left.
    """
    _check_hands(joints, "joints")
    length = hand_length(joints)
    s = torch.log(length[:, 1] / length[:, 0])
    delta = (joints[:, 1, MIDDLE_MCP] - joints[:, 0, MIDDLE_MCP]) / length[:, 1, None]
    return torch.cat([s[:, None], delta], dim=-1)


def _offsets(right: torch.Tensor, left: torch.Tensor, trans: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-minus-right joint offsets ``(B, 21, 3)`` in the right and in the left normalised frame.

    Right frame: ``(l + Delta) e^s - r``; left frame: ``l - (r e^-s - Delta)``.
    """
    s, delta = trans[:, None, :1], trans[:, None, 1:]
    return (left + delta) * torch.exp(s) - right, left - (right * torch.exp(-s) - delta)


def joint_offset_loss(pred_joints: torch.Tensor, gt_joints: torch.Tensor, trans: torch.Tensor,
                      rest_joints: torch.Tensor | None = None, visible: torch.Tensor | None = None) -> torch.Tensor:
    """Inter-hand offsets in both normalised frames: ``sum over frames, joints, xyz of (o - o*)^2``, batch mean.

    Predicted hands are normalised by their own lengths (from ``rest_joints``) and placed with the
    predicted ``trans``; GT offsets come from the GT joints normalised in each hand's frame.

    Args:
        pred_joints, gt_joints: ``(B, 2, 21, 3)`` right then left hand (any unit).
        trans: ``(B, 4)`` predicted ``[s, Delta]`` (see :func:`two_hand_trans`).
        rest_joints: optional ``(B, 2, 21, 3)`` joints giving the predicted hand lengths (e.g. the
            T-pose); default ``pred_joints``.
        visible: optional ``(B, 2, 21)``; an offset counts when the joint is valid on both hands.
    """
    _check_hands(pred_joints, "pred_joints")
    _same(pred_joints, gt_joints)
    _check(trans, 2, (4,), "trans")
    rest = pred_joints if rest_joints is None else rest_joints
    _same(pred_joints, rest)
    pred = normalise_hand(pred_joints, hand_length(rest))
    offsets = _offsets(pred[:, 0], pred[:, 1], trans)
    length = hand_length(gt_joints)
    # GT in the right frame: (J - root_r) / L_r; in the left frame: (J - root_l) / L_l.
    gt_offsets = [(gt_joints[:, 1] - gt_joints[:, 0]) / length[:, h, None, None] for h in (0, 1)]
    valid = _valid(visible, pred_joints).prod(dim=1)[..., None]  # (B, 21, 1)
    total = sum((valid * (o - g).square()).sum() for o, g in zip(offsets, gt_offsets))
    return total / pred_joints.shape[0]


def shape_consistency_loss(betas: torch.Tensor) -> torch.Tensor:
    """``mean_b ||beta_right - beta_left||^2`` for betas ``(B, 2, S)`` (one person, two hands)."""
    _check(betas, 3, (2, None), "betas")
    return (betas[:, 0] - betas[:, 1]).square().sum(-1).mean()


def normalised_joint_loss(pred_joints: torch.Tensor, gt_joints: torch.Tensor,
                          rest_joints: torch.Tensor | None = None, visible: torch.Tensor | None = None) -> torch.Tensor:
    """``sum over hands, joints, xyz of |J_norm - J*_norm|``, batch mean, with :func:`normalise_hand`
    (root middle MCP, unit wrist -> middle MCP length; predicted lengths from ``rest_joints``).

    Args: as :func:`joint_offset_loss`.
    """
    _check_hands(pred_joints, "pred_joints")
    _same(pred_joints, gt_joints)
    rest = pred_joints if rest_joints is None else rest_joints
    _same(pred_joints, rest)
    diff = normalise_hand(pred_joints, hand_length(rest)) - normalise_hand(gt_joints)
    return (_valid(visible, pred_joints)[..., None] * diff.abs()).sum() / pred_joints.shape[0]


def bone_length_loss(rest_joints: torch.Tensor, gt_joints: torch.Tensor,
                     visible: torch.Tensor | None = None) -> torch.Tensor:
    """``sum over hands and bones of (l_b / L - l*_b / L*)^2``, batch mean: bone lengths of the
    predicted rest pose against the GT, each in units of its own wrist -> middle MCP length.

    Args:
        rest_joints: ``(B, 2, 21, 3)`` predicted joints, e.g. the T-pose (lengths do not depend on pose).
        gt_joints: ``(B, 2, 21, 3)`` GT joints.
        visible: optional ``(B, 2, 21)`` GT validity; a bone counts when both its ends are valid.
    """
    _check_hands(rest_joints, "rest_joints")
    _same(rest_joints, gt_joints)
    parent, child = (torch.tensor(idx, device=rest_joints.device) for idx in zip(*BONES))

    def bones(joints: torch.Tensor) -> torch.Tensor:  # (B, 2, 20)
        return (joints[..., child, :] - joints[..., parent, :]).norm(dim=-1) / hand_length(joints)[..., None]

    valid = _valid(visible, rest_joints)
    valid = valid[..., parent] * valid[..., child]
    return (valid * (bones(rest_joints) - bones(gt_joints)).square()).sum() / rest_joints.shape[0]


def shape_loss(betas: torch.Tensor, gt_betas: torch.Tensor) -> torch.Tensor:
    """``mean_b sum_hands ||beta - beta*||^2`` for betas ``(B, 2, S)``."""
    _check(betas, 3, (2, None), "betas")
    _same(betas, gt_betas)
    return (betas - gt_betas).square().flatten(1).sum(-1).mean()


def two_hand_loss(pred_joints: torch.Tensor, gt_joints: torch.Tensor, trans: torch.Tensor, betas: torch.Tensor,
                  pose: torch.Tensor, gt_betas: torch.Tensor | None = None, rest_joints: torch.Tensor | None = None,
                  visible: torch.Tensor | None = None, weights: TwoHandWeights = TwoHandWeights()
                  ) -> dict[str, torch.Tensor]:
    """The two-hand objective of Zhang et al. (ICCV 2021) for one refinement stage.

    Returns the unweighted terms ``offset`` (:func:`joint_offset_loss`), ``consistency``
    (:func:`shape_consistency_loss`), ``joint`` (:func:`normalised_joint_loss`), ``bone``
    (:func:`bone_length_loss` of ``rest_joints``), ``shape`` (:func:`shape_loss`, 0 without
    ``gt_betas``), ``regulariser`` (``mean_b sum beta^2 + 0.1 sum pose[3:]^2`` per hand) and
    ``total = sum_k weights.k * term_k``.

    Args:
        pred_joints: ``(B, 2, 21, 3)`` predicted joints, right then left, course order.
        gt_joints: ``(B, 2, 21, 3)`` GT joints in one camera frame.
        trans: ``(B, 4)`` predicted relative transformation ``[s, Delta]``.
        betas: ``(B, 2, 10)`` predicted shapes.  pose: ``(B, 2, 48)`` predicted MANO poses.
        gt_betas: optional ``(B, 2, 10)`` GT shapes.
        rest_joints: optional ``(B, 2, 21, 3)`` predicted T-pose joints (default ``pred_joints``).
        visible: optional ``(B, 2, 21)`` GT joint validity.
        weights: the term weights.
    """
    _check(pose, 3, (2, None), "pose")
    rest = pred_joints if rest_joints is None else rest_joints
    terms = {
        "offset": joint_offset_loss(pred_joints, gt_joints, trans, rest, visible),
        "consistency": shape_consistency_loss(betas),
        "joint": normalised_joint_loss(pred_joints, gt_joints, rest, visible),
        "bone": bone_length_loss(rest, gt_joints, visible),
        "shape": betas.new_zeros(()) if gt_betas is None else shape_loss(betas, gt_betas),
        "regulariser": pose_shape_regulariser(pose, betas, pose_weight=0.1, skip_global=3),
    }
    terms["total"] = sum(w * terms[name] for name, w in asdict(weights).items())
    return terms


# ---------------------------------------------------------------------------------------------
# The slides' losses on real predictions and their fits
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictionLosses:
    """The training losses of :mod:`handpose.losses` evaluated on one predicted hand and its fit.

    Attributes:
        bone_length: :func:`bone_length_loss` of the predicted 3D keypoints against
            the hand model's rest proportions (bone / wrist-to-middle-MCP length, squared, summed).
        joint_l2_mm2: :func:`joint_l2` between the fitted model's keypoints and
            the predicted 3D keypoints placed on them (:func:`handpose.alignment.placed_keypoints`), mm^2.
        reprojection_l1_px: :func:`reprojection_l1` between the fitted keypoints
            projected with ``K`` and the predicted 2D keypoints, pixels.
        regulariser: :func:`pose_shape_regulariser` of the fitted pose and shape.
        edge_length_mm: :func:`edge_length_loss` of the fitted mesh against the
            model's unposed mesh of the same shape (how much the skinning stretches edges), mm.
    """

    bone_length: float
    joint_l2_mm2: float
    reprojection_l1_px: float
    regulariser: float
    edge_length_mm: float


def prediction_losses(hand: HandPrediction, fit: "FitResult", K: np.ndarray, model: HandModel) -> PredictionLosses:
    """Score one predicted hand and its fit (``B = 1``) with the slides' losses (see
    :class:`PredictionLosses`); ``model`` is the hand model of the fit (same side)."""
    if len(fit) != 1:
        raise ValueError(f"fit must hold one hand, got {len(fit)}")
    if model.side != hand.handedness:
        raise ValueError(f"the model is a {model.side} hand but the prediction is a {hand.handedness} hand")
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        rest = model(shape=t(fit.shape) if model.num_shape else None)  # the model casts inputs
        rest_kp = model().keypoints[0].double()
    # bone_length_loss works on (B, 2, 21, 3) hand pairs: the hand in slot 0, slot 1 masked out.
    pair = lambda x: torch.stack([x, torch.zeros_like(x)])[None]  # noqa: E731
    visible = torch.tensor([[[1.0] * NUM_KEYPOINTS, [0.0] * NUM_KEYPOINTS]], dtype=torch.float64)
    bone = bone_length_loss(pair(rest_kp), pair(t(hand.keypoints_3d)), visible)
    fitted = t(fit.keypoints)
    joint = joint_l2(fitted, t(placed_keypoints(hand, fit))[None])
    reproj = reprojection_l1(t(project(fit.keypoints, np.asarray(K, dtype=np.float64))), t(hand.keypoints_2d)[None])
    reg = pose_shape_regulariser(t(fit.pose), t(fit.shape))
    edges = edge_length_loss(t(fit.vertices), rest.vertices.double(), torch.as_tensor(fit.faces))
    return PredictionLosses(float(bone), float(joint), float(reproj), float(reg), float(edges))
