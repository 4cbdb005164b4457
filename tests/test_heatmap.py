"""handpose.heatmap: Gaussians, (soft-)argmax and the heatmap registration (the scale + translation
fit itself is tested in test_alignment.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from handpose.alignment import fit_scale_translation
from handpose.heatmap import ICCV21_SIGMA, argmax_2d, gaussian_heatmaps, register_heatmap, soft_argmax_2d

from test_alignment import random_problem  # noqa: E402  (tests/ is on sys.path)


# --------------------------------------------------------------------------- gaussians, argmax


def test_gaussian_heatmaps_known_values():
    h = gaussian_heatmaps(torch.tensor([[[3.0, 5.0]]]), height=8, width=10, sigma=2.0)
    assert h.shape == (1, 1, 8, 10)
    assert h[0, 0, 5, 3] == 1.0  # row = y, column = x
    # exp(-(dx^2 + dy^2) / (2 sigma^2)) at (x, y) = (4, 7): dx = 1, dy = 2
    torch.testing.assert_close(h[0, 0, 7, 4], torch.tensor(math.exp(-5 / 8)))
    assert 0.0 <= h.min() and h.max() <= 1.0
    # numpy in, numpy out
    hn = gaussian_heatmaps(np.array([[[3.0, 5.0]]]), 8, 10, sigma=2.0)
    assert isinstance(hn, np.ndarray)
    np.testing.assert_allclose(hn, h.double().numpy(), rtol=1e-6)


def test_argmax_recovers_integer_points():
    pts = torch.tensor([[[3.0, 5.0], [9.0, 0.0], [0.0, 7.0]], [[4.0, 4.0], [1.0, 2.0], [8.0, 6.0]]])
    out = argmax_2d(gaussian_heatmaps(pts, 8, 10, sigma=1.5))
    assert out.shape == (2, 3, 3)
    torch.testing.assert_close(out[..., :2], pts)
    torch.testing.assert_close(out[..., 2], torch.ones(2, 3))
    # the value is returned, and the first maximum in row-major order wins
    h = torch.zeros(1, 1, 3, 4)
    h[0, 0, 1, 2] = h[0, 0, 2, 0] = 0.5
    torch.testing.assert_close(argmax_2d(h), torch.tensor([[[2.0, 1.0, 0.5]]]))


def test_soft_argmax_sub_pixel_on_gaussian():
    pts = torch.tensor([[[20.3, 40.7], [31.5, 31.5], [10.25, 50.8]]], dtype=torch.float64)
    g = gaussian_heatmaps(pts, 64, 64, sigma=2.0)
    # logits log(g): softmax(log g) = g / sum g, whose mean is the Gaussian's centre
    uv = soft_argmax_2d(torch.log(g), beta=1.0)
    assert uv.shape == (1, 3, 2)
    torch.testing.assert_close(uv, pts, atol=1e-6, rtol=0)
    # the documented pitfall: softmax of [0, 1] values is pulled towards the grid centre
    assert (soft_argmax_2d(g, beta=1.0) - pts).abs().max() > 5.0
    # a large beta rounds to the integer argmax (away from ties: the 31.5 point is one)
    torch.testing.assert_close(soft_argmax_2d(g, beta=1e4)[:, [0, 2]], argmax_2d(g)[:, [0, 2], :2])
    torch.testing.assert_close(soft_argmax_2d(g, beta=1e4)[0, 1], pts[0, 1])


def test_soft_argmax_is_differentiable():
    logits = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h: soft_argmax_2d(h, beta=2.0), (logits,))


def test_heatmap_validation():
    with pytest.raises(ValueError, match="points"):
        gaussian_heatmaps(torch.zeros(1, 2, 3), 4, 4)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_heatmaps(torch.zeros(1, 2, 2), 4, 4, sigma=0.0)
    with pytest.raises(ValueError, match="height"):
        gaussian_heatmaps(torch.zeros(1, 2, 2), 0, 4)
    with pytest.raises(ValueError, match="heatmaps"):
        argmax_2d(torch.zeros(5))
    with pytest.raises(ValueError, match="beta"):
        soft_argmax_2d(torch.zeros(1, 1, 2, 2), beta=-1.0)


# --------------------------------------------------------------------------- register_heatmap


def test_register_heatmap_peaks_at_projected_joints():
    # Joints that land on integer output pixels: the union is 1 there.
    J = torch.tensor([[[0.0, 0.0, 5.0], [10.0, 0.0, 1.0], [0.0, 20.0, 2.0], [-10.0, 10.0, 0.0]]],
                     dtype=torch.float64)
    s, T = 0.8, torch.tensor([20.0, 12.0], dtype=torch.float64)
    uv = s * J[..., :2] + T
    xyc = torch.cat([uv, torch.ones(1, 4, 1, dtype=torch.float64)], dim=-1)
    h = register_heatmap(xyc, J, origin_size=64, output_size=32, sigma=1.0)
    assert h.shape == (1, 32, 32)
    assert 0.0 <= h.min() and h.max() <= 1.0
    p = uv[0] * 32 / 64  # (10, 6), (14, 6), (10, 14), (6, 10)
    for x, y in p.round().long().tolist():
        assert h[0, y, x] == 1.0
    # the four peaks are the four local maxima
    pooled = torch.nn.functional.max_pool2d(h[:, None], 3, stride=1, padding=1)[:, 0]
    peaks = torch.nonzero((h == pooled) & (h > 0.5))[:, 1:].flip(-1)  # (x, y)
    assert sorted(peaks.tolist()) == sorted(p.long().tolist())


def test_register_heatmap_is_the_union_of_gaussians():
    J, _, xyc = random_problem(9, batch=2, noise=1.5)
    h = register_heatmap(xyc, J, 64, 16, sigma=1.7)
    p = fit_scale_translation(xyc, J).apply(J) * 16 / 64
    g = gaussian_heatmaps(p, 16, 16, sigma=1.7)
    torch.testing.assert_close(h, 1 - torch.prod(1 - g, dim=1))
    # an independent elementwise union, and bounds
    union = torch.zeros_like(h)
    for j in range(J.shape[1]):
        union = union + g[:, j] - union * g[:, j]  # a or b = a + b - ab
    torch.testing.assert_close(h, union)
    assert (h >= g.amax(dim=1) - 1e-12).all() and (h <= 1).all()


def test_register_heatmap_iccv21_kernel():
    # exp(-d^2 / 3) on the integer grid, as generate_batch_heatmap of the ICCV 2021 code
    J, _, xyc = random_problem(10, batch=2, noise=1.0)
    xyc32, J32 = xyc.float(), J.float()
    h = register_heatmap(xyc32, J32, 64, 8, sigma=ICCV21_SIGMA, detach_fit=True)
    p = fit_scale_translation(xyc32, J32).apply(J32) * (8 / 64)
    grid = torch.arange(8, dtype=torch.float32)
    d2 = (p[..., 0, None, None] - grid) ** 2 + (p[..., 1, None, None] - grid[:, None]) ** 2
    ref = 1 - torch.prod(1 - torch.exp(-d2 / 3), dim=1)
    torch.testing.assert_close(h, ref)


def test_register_heatmap_detach_fit_gradients():
    J, _, xyc = random_problem(11, batch=2, joints=5, noise=1.0)
    fit = fit_scale_translation(xyc, J)
    weights = torch.rand(2, 12, 12, dtype=torch.float64)

    def loss(j, detach):
        return (register_heatmap(xyc, j, 64, 12, sigma=1.5, detach_fit=detach) * weights).sum()

    def loss_fixed(j):  # s, T constant: the gradient only flows through p = (s J + T) r
        p = fit.params.detach()[:, None, :1] * j[..., :2] + fit.params.detach()[:, None, 1:]
        g = gaussian_heatmaps(p * 12 / 64, 12, 12, sigma=1.5)
        return ((1 - torch.prod(1 - g, dim=1)) * weights).sum()

    grads = []
    for f in (lambda j: loss(j, True), loss_fixed, lambda j: loss(j, False)):
        j = J.clone().requires_grad_(True)
        f(j).backward()
        grads.append(j.grad)
    torch.testing.assert_close(grads[0], grads[1])
    assert (grads[0] - grads[2]).abs().max() > 1e-6  # the full fit also moves s, T
    j = J.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda j: register_heatmap(xyc, j, 64, 12, sigma=1.5), (j,))


def test_register_heatmap_validation():
    J, _, xyc = random_problem(12)
    with pytest.raises(ValueError, match="output_size"):
        register_heatmap(xyc, J, 64, 0)
    with pytest.raises(ValueError, match="origin_size"):
        register_heatmap(xyc, J, 64.0, 8)
    with pytest.raises(ValueError, match="sigma"):
        register_heatmap(xyc, J, 64, 8, sigma=-1.0)
