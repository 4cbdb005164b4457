"""handpose.alignment: scale + translation fits (2D registration, 3D placement), Umeyama, Kabsch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from _fits import exact_fit, exact_hand
from handpose.alignment import (
    Registration,
    align_scale_translation,
    fit_scale_translation,
    kabsch,
    placed_keypoints,
    scale_translation,
    umeyama,
)
from handpose.handmodel import load_hand_model


def random_problem(seed: int, batch: int = 3, joints: int = 21, noise: float = 0.0):
    """Joints (mm), true [s, tx, ty], confidences and detections uv = s J + T (+ noise)."""
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(batch, joints, 3, generator=g, dtype=torch.float64) * 40
    s = torch.rand(batch, generator=g, dtype=torch.float64) * 0.3 + 0.1
    T = torch.rand(batch, 2, generator=g, dtype=torch.float64) * 40 + 12
    c = torch.rand(batch, joints, generator=g, dtype=torch.float64) * 0.9 + 0.1
    uv = s[:, None, None] * J[..., :2] + T[:, None]
    uv = uv + noise * torch.randn(uv.shape, generator=g, dtype=torch.float64)
    return J, torch.cat([s[:, None], T], dim=1), torch.cat([uv, c[..., None]], dim=-1)


def lstsq_reference(xyc: np.ndarray, J: np.ndarray) -> np.ndarray:
    """Per-sample numpy least squares on confidence-weighted rows [Jx 1 0; Jy 0 1] (the slides)."""
    out = []
    for d, j in zip(xyc, J):
        c = d[:, 2]
        M = np.zeros((2 * len(j), 3))
        M[0::2, 0], M[0::2, 1] = j[:, 0], 1.0
        M[1::2, 0], M[1::2, 2] = j[:, 1], 1.0
        b = d[:, :2].reshape(-1)
        out.append(np.linalg.lstsq(np.repeat(c, 2)[:, None] * M, np.repeat(c, 2) * b, rcond=None)[0])
    return np.array(out)


# --------------------------------------------------------------------------- registration


def test_fit_recovers_exact_scale_translation():
    J, params, xyc = random_problem(0, batch=4)
    fit = fit_scale_translation(xyc, J)
    assert isinstance(fit, Registration)
    assert fit.params.shape == (4, 3) and fit.ok.dtype == torch.bool and fit.ok.all()
    torch.testing.assert_close(fit.params, params)
    torch.testing.assert_close(fit.scale, params[:, 0])
    torch.testing.assert_close(fit.apply(J), xyc[..., :2])


def test_fit_matches_numpy_lstsq_on_noisy_data():
    J, _, xyc = random_problem(1, batch=5, noise=2.0)
    fit = fit_scale_translation(xyc, J)
    np.testing.assert_allclose(fit.params.numpy(), lstsq_reference(xyc.numpy(), J.numpy()),
                               rtol=1e-9, atol=1e-9)
    # numpy in, numpy out; float32 close to the float64 answer
    fit_np = fit_scale_translation(xyc.numpy(), J.numpy())
    assert isinstance(fit_np.params, np.ndarray) and fit_np.ok.all()
    np.testing.assert_allclose(fit_np.params, fit.params.numpy())
    fit32 = fit_scale_translation(xyc.float(), J.float())
    torch.testing.assert_close(fit32.params.double(), fit.params, rtol=1e-4, atol=1e-3)


def test_fit_matches_normal_equations_of_the_iccv_net():
    # The network solves (M^T M)^-1 M^T b with rows weighted by c (ARCHITECTURE.md section 6).
    J, _, xyc = random_problem(2, batch=3, noise=1.0)
    B, n = J.shape[:2]
    M = torch.cat([J[..., :2, None], torch.eye(2, dtype=J.dtype).expand(B, n, 2, 2)], dim=-1)
    wM = (xyc[..., 2, None, None] * M).reshape(B, -1, 3)
    wb = (xyc[..., 2, None, None] * xyc[..., :2, None]).reshape(B, -1, 1)
    ref = (torch.inverse(wM.mT @ wM) @ wM.mT @ wb)[..., 0]
    torch.testing.assert_close(fit_scale_translation(xyc, J).params, ref)


def test_weights_matter():
    J, params, xyc = random_problem(3, batch=1)
    outlier = xyc.clone()
    outlier[0, 4, :2] += 15.0
    low, high = outlier.clone(), outlier.clone()
    low[0, 4, 2], high[0, 4, 2] = 0.05, 1.0
    err_low = (fit_scale_translation(low, J).params - params).abs().max()
    err_high = (fit_scale_translation(high, J).params - params).abs().max()
    assert err_high > 5 * err_low > 0
    # zero confidence is exactly the same as removing the joint
    zero = outlier.clone()
    zero[0, 4, 2] = 0.0
    keep = [j for j in range(21) if j != 4]
    torch.testing.assert_close(fit_scale_translation(zero, J).params,
                               fit_scale_translation(outlier[:, keep], J[:, keep]).params)
    torch.testing.assert_close(fit_scale_translation(zero, J).params, params)


def test_confidence_scale_does_not_change_the_fit():
    J, _, xyc = random_problem(4, noise=1.0)
    scaled = xyc.clone()
    scaled[..., 2] *= 1e-3
    torch.testing.assert_close(fit_scale_translation(scaled, J).params,
                               fit_scale_translation(xyc, J).params)


def test_degenerate_inputs_fall_back_without_nan():
    J, params, xyc = random_problem(5, batch=5, noise=0.5)
    xyc, J = xyc.clone(), J.clone()
    xyc[0, :, 2] = 0.0  # no confidence at all
    xyc[1, :, 2] = 1e-8  # near zero: sum c^2 = 2.1e-15 <= 1e-12
    J[2] = torch.tensor([5.0, -3.0, 7.0], dtype=J.dtype)  # all joints at one point
    xyc[3, 1:, 2] = 0.0  # a single joint with weight
    # sample 4: collinear but distinct joints are fine
    J[4, :, 1] = 2.0 * J[4, :, 0] + 1.0
    xyc[4, :, :2] = params[4, 0] * J[4, :, :2] + params[4, 1:]
    J.requires_grad_(True)
    xyc.requires_grad_(True)
    fit = fit_scale_translation(xyc, J)
    assert fit.ok.tolist() == [False, False, False, False, True]
    assert torch.isfinite(fit.params).all()
    torch.testing.assert_close(fit.params[4], params[4])
    # fallbacks: s = 0; T = plain mean of uv without data, the weighted centroid otherwise
    torch.testing.assert_close(fit.params[:4, 0], torch.zeros(4, dtype=J.dtype))
    torch.testing.assert_close(fit.params[0, 1:], xyc[0, :, :2].mean(0))
    torch.testing.assert_close(fit.params[1, 1:], xyc[1, :, :2].mean(0))
    w = xyc[2, :, 2] ** 2
    torch.testing.assert_close(fit.params[2, 1:], (w[:, None] * xyc[2, :, :2]).sum(0) / w.sum())
    torch.testing.assert_close(fit.params[3, 1:], xyc[3, 0, :2])
    fit.params.sum().backward()
    assert torch.isfinite(J.grad).all() and torch.isfinite(xyc.grad).all()


def test_fit_gradcheck_wrt_joints_and_detections():
    J, _, xyc = random_problem(6, batch=2, joints=6, noise=1.0)
    J.requires_grad_(True)
    xyc.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, j: fit_scale_translation(x, j).params, (xyc, J))


def test_detach_cuts_the_graph():
    J, _, xyc = random_problem(7, batch=2)
    J.requires_grad_(True)
    fit = fit_scale_translation(xyc, J)
    assert fit.params.requires_grad and not fit.detach().params.requires_grad
    torch.testing.assert_close(fit.detach().params, fit.params.detach())


def test_fit_validation():
    J, _, xyc = random_problem(8)
    with pytest.raises(ValueError, match="xyc"):
        fit_scale_translation(xyc[..., :2], J)
    with pytest.raises(ValueError, match="joints"):
        fit_scale_translation(xyc, J[:, :5])
    with pytest.raises(ValueError, match="joints"):
        fit_scale_translation(xyc, J[..., :1])




# --------------------------------------------------------------------------- 3D: placement, Umeyama, Kabsch
def test_scale_translation_known_answer_in_3d():
    src = torch.randn(2, 21, 3, dtype=torch.float64)
    tgt = 2.5 * src + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    s, t, ok = scale_translation(src, tgt, torch.ones(2, 21, dtype=torch.float64))
    np.testing.assert_allclose(s.numpy(), [2.5, 2.5])
    np.testing.assert_allclose(t.numpy(), [[1.0, -2.0, 3.0]] * 2, atol=1e-12)
    assert ok.all()
    # the same answer as the 2D registration on the x, y planes with weights c^2
    c = torch.rand(2, 21, dtype=torch.float64) + 0.1
    xyc = torch.cat([tgt[..., :2] + 0.3 * torch.randn(2, 21, 2, dtype=torch.float64), c[..., None]], -1)
    s2, t2, _ = scale_translation(src[..., :2], xyc[..., :2], c * c)
    torch.testing.assert_close(fit_scale_translation(xyc, src).params, torch.cat([s2[:, None], t2], -1))


def test_align_scale_translation_recovers_a_similarity_without_rotation():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(3, 21, 3))
    target = 2.5 * source + np.array([10.0, -4.0, 300.0])
    np.testing.assert_allclose(align_scale_translation(source, target), target, atol=1e-9)
    # rotated targets are not reachable: the result is the best scale + translation, not the target
    rotated = source[0] @ np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]).T
    assert not np.allclose(align_scale_translation(source[0], rotated), rotated)
    with pytest.raises(ValueError, match="source and target"):
        align_scale_translation(source, target[:, :, :2])


def test_kabsch_recovers_a_rotation():
    rng = np.random.default_rng(1)
    points = rng.normal(0, 40, (8, 3))
    R = Rotation.from_rotvec([0.3, -1.2, 0.7]).as_matrix()
    moved = points @ R.T + [5.0, -7.0, 2.0]
    np.testing.assert_allclose(kabsch(points, moved, np.ones(8)), R, atol=1e-12)


def test_umeyama_matches_scipy_and_ignores_zero_weight_points():
    rng = np.random.default_rng(4)
    x = rng.normal(0, 30, (2, 12, 3))
    R = Rotation.from_rotvec([[0.2, 1.0, -0.5], [2.0, -0.3, 0.1]]).as_matrix()
    y = 1.7 * np.einsum("nik,njk->nji", R, x) + np.array([[[4.0, 5.0, 6.0]], [[-1.0, 0.0, 2.0]]])
    w = np.ones((2, 12))
    w[:, 0] = 0.0
    y[:, 0] = np.nan  # ignored: weight 0
    sim = umeyama(x, y, w)
    np.testing.assert_allclose(sim.rotation, R, atol=1e-10)
    np.testing.assert_allclose(sim.scale, [1.7, 1.7])
    np.testing.assert_allclose(sim.translation, [[4.0, 5.0, 6.0], [-1.0, 0.0, 2.0]], atol=1e-9)
    # no weight at all: finite, scale 0
    assert umeyama(x, y, np.zeros((2, 12))).scale.tolist() == [0.0, 0.0]


def test_placed_keypoints_of_an_exact_fit(open_hand_export):
    model = load_hand_model("open", "right")
    hand, pose, points = exact_hand(model, 3)
    fit = exact_fit(model, pose, points[0])
    np.testing.assert_allclose(fit.keypoints[0], points, atol=1e-4)
    np.testing.assert_allclose(placed_keypoints(hand, fit), points, atol=1e-4)  # root-relative -> camera frame
