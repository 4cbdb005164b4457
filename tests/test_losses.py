"""Tests of handpose.losses: zero at the target, hand-computed values, finite gradients."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from _fits import K, exact_fit, exact_hand
from handpose import losses as L
from handpose.prediction import HandPrediction
from handpose.keypoints import BONES, MIDDLE_MCP, WRIST

TETRA_VERTS = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]],
                           dtype=torch.float64)
# outward-facing (counter-clockwise seen from outside) triangles of the tetrahedron above
TETRA_FACES = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])


@pytest.fixture(autouse=True)
def float64():
    """Exact arithmetic for the hand-computed values (restored afterwards for other test files)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def rotation(axis_angle: tuple[float, float, float]) -> torch.Tensor:
    """Rodrigues' formula, ``R = I + sin(t) K + (1 - cos(t)) K^2``."""
    w = torch.tensor(axis_angle)
    t = w.norm()
    k = w / t
    K = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return torch.eye(3) + torch.sin(t) * K + (1 - torch.cos(t)) * K @ K


def grid_mesh(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """A bumpy ``n x n`` vertex grid triangulated into ``2 (n - 1)^2`` faces."""
    ij = torch.cartesian_prod(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64))
    verts = torch.cat([ij, (torch.sin(ij[:, :1] * 1.3) * torch.cos(ij[:, 1:] * 0.7))], dim=1)
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            faces += [[a, d, b], [b, d, e]]
    return verts[None], torch.tensor(faces)


def assert_finite_gradient(loss: torch.Tensor, *inputs: torch.Tensor) -> None:
    grads = torch.autograd.grad(loss, inputs, allow_unused=False)
    assert all(torch.isfinite(g).all() for g in grads)


# -- keypoint losses ----------------------------------------------------------------------------


def test_heatmap_l2() -> None:
    target = torch.rand(2, 3, 8, 8)
    pred = target.clone().requires_grad_()
    assert L.heatmap_l2(pred, target) == 0.0
    assert L.heatmap_l2(torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8)) == 1.0
    off = target.clone()
    off[:, 1] += 0.5  # only joint 1 is wrong, by 0.5 everywhere: its mean square is 0.25
    weight = torch.ones(2, 3)
    assert L.heatmap_l2(off, target) == pytest.approx(0.25 / 3)
    weight[:, 1] = 0.0
    assert L.heatmap_l2(off, target, weight) == 0.0
    loss = L.heatmap_l2(pred + 0.1, target, weight)
    assert loss.item() == pytest.approx(0.01)
    assert_finite_gradient(loss, pred)
    with pytest.raises(ValueError, match="differ in shape"):
        L.heatmap_l2(pred, target[:, :2])
    with pytest.raises(ValueError, match="weight"):
        L.heatmap_l2(off, target, torch.ones(2))


def test_reprojection_l1_and_joint_l2() -> None:
    gt2 = torch.rand(1, 2, 2) * 100
    pred2 = gt2 + torch.tensor([[[3.0, -4.0], [0.0, 0.0]]])
    assert L.reprojection_l1(gt2, gt2) == 0.0
    assert L.reprojection_l1(pred2, gt2) == pytest.approx(3.5)  # (|3| + |-4| + 0) / 2 joints
    assert L.reprojection_l1(pred2, gt2, torch.tensor([[0.0, 1.0]])) == 0.0
    assert L.reprojection_l1(pred2, gt2, torch.zeros(1, 2)) == 0.0  # nothing visible: 0, not NaN

    gt3 = torch.randn(2, 21, 3)
    pred3 = (gt3 + torch.tensor([1.0, 2.0, 2.0])).requires_grad_()
    loss = L.joint_l2(pred3, gt3)
    assert loss.item() == pytest.approx(9.0)
    assert_finite_gradient(loss, pred3)
    with pytest.raises(ValueError, match=r"\(B, \*, 3\)"):
        L.joint_l2(gt2, gt2)


def test_silhouette_loss() -> None:
    mask = (torch.rand(2, 6, 6) > 0.5).double()
    assert L.silhouette_loss(mask, mask) == 0.0 and L.silhouette_loss(mask, mask, "l1") == 0.0
    half = torch.full_like(mask, 0.5, requires_grad=True)
    loss = L.silhouette_loss(half, mask)
    assert loss.item() == pytest.approx(math.log(2.0))  # -log(0.5) at every pixel
    assert L.silhouette_loss(half, mask, "l1").item() == pytest.approx(0.5)
    assert_finite_gradient(loss, half)
    with pytest.raises(ValueError, match="kind"):
        L.silhouette_loss(half, mask, "dice")


def test_pose_shape_regulariser() -> None:
    pose, betas = torch.ones(2, 48, requires_grad=True), torch.full((2, 10), 2.0)
    assert L.pose_shape_regulariser(torch.zeros(2, 48), torch.zeros(2, 10)) == 0.0
    assert L.pose_shape_regulariser(pose, betas).item() == pytest.approx(48 + 40)
    loss = L.pose_shape_regulariser(pose, betas, pose_weight=0.1, shape_weight=2.0, skip_global=3)
    assert loss.item() == pytest.approx(0.1 * 45 + 2.0 * 40)
    assert_finite_gradient(loss, pose)
    with pytest.raises(ValueError, match="skip_global"):
        L.pose_shape_regulariser(pose, betas, skip_global=49)


# -- mesh losses --------------------------------------------------------------------------------


def test_mesh_edges_and_face_normals() -> None:
    edges = L.mesh_edges(TETRA_FACES)
    assert edges.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    normals = L.face_normals(TETRA_VERTS[None], TETRA_FACES)[0]
    centroids = TETRA_VERTS[TETRA_FACES].mean(1)
    # outward: each normal points along its face centroid (the tetrahedron is centred at 0)
    torch.testing.assert_close(normals, -TETRA_VERTS[[3, 2, 1, 0]] / math.sqrt(3))
    assert ((normals * centroids).sum(-1) > 0).all()
    tri = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0]]])
    torch.testing.assert_close(L.face_normals(tri, torch.tensor([[0, 1, 2]])), torch.tensor([[[0.0, 0.0, 1.0]]]))
    with pytest.raises(ValueError, match="outside"):
        L.face_normals(tri, torch.tensor([[0, 1, 3]]))


def test_vertex_and_normal_losses() -> None:
    verts, faces = grid_mesh()
    moved = verts + torch.tensor([0.5, -1.0, 0.0])
    assert L.vertex_l1(moved, verts) == pytest.approx(1.5)
    assert L.normal_consistency(3.0 * verts + 7.0, verts, faces) == pytest.approx(0.0, abs=1e-12)
    # two separate triangles; swapping two corners of the second turns it inside out: 1 - cos = 2
    gt = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 0, 0], [6, 0, 1], [5, 2, 0]]])
    pred = gt[:, [0, 1, 2, 3, 5, 4]].clone().requires_grad_()
    loss = L.normal_consistency(pred, gt, torch.tensor([[0, 1, 2], [3, 4, 5]]))
    assert loss.item() == pytest.approx(2.0 / 2)
    assert_finite_gradient(loss, pred)


def test_edge_length_loss() -> None:
    verts, faces = grid_mesh()
    rigid = verts @ rotation((0.3, -0.8, 1.1)).T + 4.0
    assert L.edge_length_loss(rigid, verts, faces) == pytest.approx(0.0, abs=1e-12)
    edges = L.mesh_edges(faces)
    mean_length = (verts[0, edges[:, 0]] - verts[0, edges[:, 1]]).norm(dim=-1).mean()
    pred = (2.0 * verts).requires_grad_()
    loss = L.edge_length_loss(pred, verts, faces)
    assert loss.item() == pytest.approx(mean_length.item())  # every edge twice as long
    assert_finite_gradient(loss, pred)


def test_laplacian_smoothness() -> None:
    # tetrahedron: v_i - mean(others) = v_i + v_i / 3, squared norm (16 / 9) * 3 = 16 / 3
    assert L.laplacian_smoothness(TETRA_VERTS[None], TETRA_FACES) == pytest.approx(16 / 3)
    verts, faces = grid_mesh(5)
    # independent reference: dense uniform Laplacian I - D^-1 A
    adjacency = np.zeros((25, 25))
    for f in faces.tolist():
        for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            adjacency[a, b] = adjacency[b, a] = 1.0
    lap = np.eye(25) - adjacency / adjacency.sum(1, keepdims=True)
    expected = ((lap @ verts[0].numpy()) ** 2).sum(1).mean()
    assert L.laplacian_smoothness(verts, faces) == pytest.approx(expected)
    assert L.laplacian_smoothness(verts + 10.0, faces) == pytest.approx(expected)  # translation invariant
    flat = verts.clone()
    flat[..., 2] = 0.0
    interior = L.laplacian_smoothness(flat, faces)  # a flat regular grid only bends at its border
    pred = verts.clone().requires_grad_()
    assert_finite_gradient(L.laplacian_smoothness(pred, faces), pred)
    assert 0.0 < interior < expected


# -- two hands ----------------------------------------------------------------------------------


def two_hands(batch: int = 2, seed: int = 0) -> torch.Tensor:
    """``(B, 2, 21, 3)`` right and left hands of different sizes, in mm, at different places."""
    g = torch.Generator().manual_seed(seed)
    hands = torch.randn(batch, 2, 21, 3, generator=g) * 30.0
    hands[:, 1] = hands[:, 1] * 0.8 + torch.tensor([120.0, -20.0, 40.0])
    return hands


def test_two_hand_trans_known_value() -> None:
    hands = torch.zeros(1, 2, 21, 3)
    hands[0, 0, WRIST] = torch.tensor([0.0, -1.0, 0.0])  # right: root at 0, length 1
    hands[0, 1, MIDDLE_MCP] = torch.tensor([2.0, 0.0, 0.0])
    hands[0, 1, WRIST] = torch.tensor([2.0, -2.0, 0.0])  # left: root at (2, 0, 0), length 2
    torch.testing.assert_close(L.two_hand_trans(hands), torch.tensor([[math.log(2.0), 1.0, 0.0, 0.0]]))


def test_normalise_hand() -> None:
    hands = two_hands()
    n = L.normalise_hand(hands)
    torch.testing.assert_close(n[..., MIDDLE_MCP, :], torch.zeros(2, 2, 3))
    torch.testing.assert_close((n[..., WRIST, :] - n[..., MIDDLE_MCP, :]).norm(dim=-1), torch.ones(2, 2))
    torch.testing.assert_close(L.normalise_hand(3.0 * hands + 5.0), n)


def test_two_hand_loss_is_zero_at_the_target() -> None:
    gt = two_hands()
    betas = torch.randn(2, 1, 10).expand(2, 2, 10).clone()
    out = L.two_hand_loss(gt.clone(), gt, L.two_hand_trans(gt), betas, torch.zeros(2, 2, 48) + torch.tensor(
        [1.0, 2.0, 3.0] + [0.0] * 45), gt_betas=betas)
    for name in ("offset", "consistency", "joint", "bone", "shape", "regulariser"):
        expected = (betas ** 2).sum() / 2 if name == "regulariser" else 0.0  # the global rotation is free
        assert out[name].item() == pytest.approx(float(expected), abs=1e-9), name
    # scale and translation of the predicted hands change nothing: everything is normalised
    scaled = two_hands() * 1.7 + 3.0
    assert L.joint_offset_loss(scaled, gt, L.two_hand_trans(gt)) == pytest.approx(0.0, abs=1e-9)
    assert L.normalised_joint_loss(scaled, gt) == pytest.approx(0.0, abs=1e-9)


def test_joint_offset_loss_known_value() -> None:
    gt = two_hands(batch=1)
    trans = L.two_hand_trans(gt)
    moved = trans + torch.tensor([[0.0, 0.1, 0.0, 0.0]])  # Delta off by 0.1 along x
    # right frame: every offset moves by 0.1 e^s; left frame: by 0.1 -> 21 * 0.01 (e^2s + 1)
    s = trans[0, 0]
    assert L.joint_offset_loss(gt, gt, moved).item() == pytest.approx(21 * 0.01 * (math.exp(2 * s) + 1))
    visible = torch.ones(1, 2, 21, dtype=torch.bool)
    visible[0, 1, 5:10] = False  # 5 left joints invalid: their offsets do not count
    assert L.joint_offset_loss(gt, gt, moved, visible=visible).item() == pytest.approx(
        16 * 0.01 * (math.exp(2 * s) + 1))


def test_normalised_joint_and_bone_losses_known_values() -> None:
    gt = two_hands(batch=1)
    length = L.hand_length(gt)[0, 0]
    pred = gt.clone()
    pred[0, 0, 8, 0] += 0.1 * length  # right index tip off by 0.1 hand lengths along x
    assert L.normalised_joint_loss(pred, gt).item() == pytest.approx(0.1)

    rest = gt.clone()
    parent, tip = BONES[-1]  # (19, 20): pinky DIP -> TIP
    direction = (gt[0, 1, tip] - gt[0, 1, parent]) / (gt[0, 1, tip] - gt[0, 1, parent]).norm()
    rest[0, 1, tip] += direction * 0.2 * L.hand_length(gt)[0, 1]  # left pinky 0.2 lengths longer
    assert L.bone_length_loss(rest, gt).item() == pytest.approx(0.04)
    visible = torch.ones(1, 2, 21, dtype=torch.bool)
    visible[0, 1, tip] = False
    assert L.bone_length_loss(rest, gt, visible).item() == pytest.approx(0.0, abs=1e-12)


def test_shape_terms_known_values() -> None:
    betas = torch.zeros(1, 2, 10)
    betas[:, 0] = 1.0
    assert L.shape_consistency_loss(betas).item() == 10.0
    assert L.shape_loss(betas, betas + 0.5).item() == pytest.approx(20 * 0.25)


def test_two_hand_loss_weights_and_gradients() -> None:
    gt = two_hands()
    pred = (two_hands(seed=1) * 0.5).requires_grad_()
    rest = (two_hands(seed=2)).requires_grad_()
    trans = torch.randn(2, 4, requires_grad=True)
    betas = torch.randn(2, 2, 10, requires_grad=True)
    pose = torch.randn(2, 2, 48, requires_grad=True)
    visible = torch.rand(2, 2, 21) > 0.2
    out = L.two_hand_loss(pred, gt, trans, betas, pose, gt_betas=torch.zeros(2, 2, 10), rest_joints=rest,
                          visible=visible)
    w = L.TwoHandWeights()
    assert (w.offset, w.consistency, w.joint, w.bone, w.shape, w.regulariser) == (1.0, 0.01, 10.0, 100.0, 0.1, 0.05)
    expected = sum(getattr(w, k) * out[k] for k in ("offset", "consistency", "joint", "bone", "shape", "regulariser"))
    torch.testing.assert_close(out["total"], expected)
    assert out["regulariser"].item() == pytest.approx(
        ((betas ** 2).sum() + 0.1 * (pose[..., 3:] ** 2).sum()).item() / 2)
    assert all(out[k] > 0 for k in out)
    assert_finite_gradient(out["total"], pred, rest, trans, betas, pose)
    only_joint = L.two_hand_loss(pred, gt, trans, betas, pose, weights=L.TwoHandWeights(0, 0, 1, 0, 0, 0))
    torch.testing.assert_close(only_joint["total"], only_joint["joint"])
    assert only_joint["shape"] == 0.0


def test_two_hand_validation() -> None:
    gt = two_hands()
    with pytest.raises(ValueError, match=r"\(B, 2, 21, 3\)"):
        L.joint_offset_loss(gt[:, 0], gt[:, 0], torch.zeros(2, 4))
    with pytest.raises(ValueError, match="trans"):
        L.joint_offset_loss(gt, gt, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="visible"):
        L.normalised_joint_loss(gt, gt, visible=torch.ones(2, 21))
    with pytest.raises(ValueError, match="betas"):
        L.shape_consistency_loss(torch.zeros(2, 10))



# -- the slides' losses on a prediction and its fit ------------------------------------------
def test_prediction_losses_of_an_exact_fit(open_hands):
    model = open_hands["right"]
    hand, pose, points = exact_hand(model, 6)
    fit = exact_fit(model, pose, points[0])
    scores = L.prediction_losses(hand, fit, K, model)
    assert scores.bone_length == pytest.approx(0.0, abs=1e-8)  # bone lengths do not depend on the pose
    assert scores.joint_l2_mm2 == pytest.approx(0.0, abs=1e-6)
    assert scores.reprojection_l1_px == pytest.approx(0.0, abs=1e-3)
    assert scores.regulariser == pytest.approx(float((pose**2).sum()), rel=1e-6)
    assert scores.edge_length_mm > 0.0  # skinning stretches some edges of a posed hand
    # a hand with longer fingers breaks the model's proportions
    longer = hand.keypoints_3d.copy()
    longer[[8, 12, 16, 20]] *= 1.3
    stretched = HandPrediction(hand.keypoints_2d, longer, "right", 1.0)
    assert L.prediction_losses(stretched, fit, K, model).bone_length > 0.01
    with pytest.raises(ValueError, match="left hand"):
        L.prediction_losses(hand, fit, K, open_hands["left"])
