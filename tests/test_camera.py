"""handpose.camera against OpenCV, closed forms and round trips."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from handpose.camera import (
    centres_to_continuous,
    check_intrinsics,
    continuous_to_centres,
    default_intrinsics,
    from_homogeneous,
    intrinsics,
    perspective_to_weak,
    project,
    projection_matrix,
    resize_pixels,
    rotation_from_2d,
    supersampled_intrinsics,
    to_homogeneous,
    translation_from_2d,
    translation_from_size,
    unproject,
    weak_perspective,
    weak_to_perspective,
    WeakCamera,
)

from _synthetic import gaussian_blob, intensity_centroid


def random_camera(rng: np.random.Generator):
    """A random (K, rvec, R, t) with fx != fy and an off-centre principal point."""
    Km = intrinsics(rng.uniform(400, 900), rng.uniform(200, 400), rng.uniform(100, 300),
                    fy=rng.uniform(400, 900))
    rvec = rng.normal(size=3) * 0.5
    R = cv2.Rodrigues(rvec)[0]
    t = rng.normal(size=3) * 20 + [0.0, 0.0, 600.0]
    return Km, rvec, R, t


def points_in_front(rng: np.random.Generator, n: int, R: np.ndarray, t: np.ndarray):
    """World points whose camera depth is in [400, 800] mm."""
    cam = np.column_stack([rng.uniform(-150, 150, (n, 2)), rng.uniform(400, 800, n)])
    return (cam - t) @ R  # X = R^T (x_cam - t)


def cv2_project(X, Km, rvec, t):
    return cv2.projectPoints(X, rvec, t, Km, None)[0][:, 0]


def test_intrinsics_layout():
    m = intrinsics(500.0, 320.0, 240.0, fy=450.0)
    np.testing.assert_array_equal(m, [[500, 0, 320], [0, 450, 240], [0, 0, 1]])
    np.testing.assert_array_equal(intrinsics(3.0, 1.0, 2.0), [[3, 0, 1], [0, 3, 2], [0, 0, 1]])
    with pytest.raises(ValueError, match="focal"):
        intrinsics(-1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="focal"):
        intrinsics(1.0, 0.0, 0.0, fy=0.0)


def test_project_matches_opencv_numpy():
    rng = np.random.default_rng(0)
    for _ in range(5):
        Km, rvec, R, t = random_camera(rng)
        X = points_in_front(rng, 50, R, t)
        uv = project(X, Km, R, t)
        assert isinstance(uv, np.ndarray) and uv.shape == (50, 2)
        np.testing.assert_allclose(uv, cv2_project(X, Km, rvec, t), atol=1e-9)


def test_project_matches_opencv_torch_batched_cameras():
    rng = np.random.default_rng(1)
    cams = [random_camera(rng) for _ in range(3)]
    X = np.stack([points_in_front(rng, 21, R, t) for _, _, R, t in cams])  # (3, 21, 3)
    Ks, Rs, ts = (torch.from_numpy(np.stack([c[i] for c in cams])) for i in (0, 2, 3))
    uv = project(torch.from_numpy(X), Ks, Rs, ts)
    assert isinstance(uv, torch.Tensor) and uv.shape == (3, 21, 2)
    for b, (Km, rvec, _, t) in enumerate(cams):
        np.testing.assert_allclose(uv[b].numpy(), cv2_project(X[b], Km, rvec, t), atol=1e-9)


def test_project_leading_batch_shapes_and_single_point():
    rng = np.random.default_rng(2)
    Km, _, R, t = random_camera(rng)
    X = points_in_front(rng, 24, R, t)
    flat = project(X, Km, R, t)
    np.testing.assert_allclose(project(X.reshape(2, 3, 4, 3), Km, R, t), flat.reshape(2, 3, 4, 2))
    np.testing.assert_allclose(project(X[5], Km, R, t), flat[5])
    # one (3,) point under a batch of two cameras -> (2, 2)
    Ks = np.stack([Km, intrinsics(100.0, 0.0, 0.0)])
    out = project(X[5], Ks, R, t)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out[0], flat[5])


def test_project_keeps_dtype_and_type():
    Km = intrinsics(100.0, 10.0, 20.0)
    X32 = np.array([[1.0, 2.0, 5.0]], dtype=np.float32)
    assert project(X32, Km).dtype == np.float32
    assert project(torch.tensor([[1.0, 2.0, 5.0]]), Km).dtype == torch.float32
    np.testing.assert_allclose(project(np.array([[1, 2, 5]]), Km), [[30.0, 60.0]])


def test_project_known_answer_catches_sign_and_axis_errors():
    # u = fx x / z + cx, v = fy y / z + cy with all four constants distinct.
    Km = intrinsics(100.0, 10.0, 20.0, fy=200.0)
    uv = project(np.array([[1.0, -2.0, 4.0]]), Km)
    np.testing.assert_allclose(uv, [[100 * 1 / 4 + 10, 200 * -2 / 4 + 20]])
    # x_cam = R X + t (not R^T X, not R (X + t))
    R = cv2.Rodrigues(np.array([0.0, 0.0, np.pi / 2]))[0]  # x -> y
    uv = project(np.array([[1.0, 0.0, 0.0]]), Km, R, np.array([0.0, 0.0, 2.0]))
    np.testing.assert_allclose(uv, [[10.0, 200 * 1 / 2 + 20]], atol=1e-12)


def test_check_intrinsics_known_answers():
    K = intrinsics(500.0, 320.0, 240.0, fy=480.0)
    np.testing.assert_array_equal(check_intrinsics(K), K)
    assert check_intrinsics(np.stack([K, K])).shape == (2, 3, 3)  # batches pass
    skewed = np.array(K, dtype=np.float64)
    skewed[0, 1] = 2.0  # skew is allowed
    check_intrinsics(skewed)
    with pytest.raises(ValueError, match="transposed"):
        check_intrinsics(np.asarray(K).T)
    with pytest.raises(ValueError, match="focal"):
        check_intrinsics(np.diag([0.0, 480.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        check_intrinsics(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        check_intrinsics(np.eye(4))


def test_transposed_or_malformed_K_is_rejected():
    Km = intrinsics(100.0, 10.0, 20.0)
    X = np.array([[0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="transposed"):
        project(X, Km.T)
    with pytest.raises(ValueError, match="K must be"):
        project(X, Km[:2])
    with pytest.raises(ValueError, match="transposed"):
        unproject(np.zeros((1, 2)), 1.0, Km.T)
    Km[1, 0] = 1.0  # the u-v entry that the pinhole ignores
    with pytest.raises(ValueError, match="upper triangular"):
        project(X, Km)


@pytest.mark.parametrize(
    "points, R, t, match",
    [
        (np.zeros((4, 2)), None, None, "points"),
        (np.zeros((4, 3)), np.eye(2), None, "R must"),
        (np.zeros((4, 3)), None, np.zeros(4), "t must"),
        (np.zeros((2, 4, 3)), np.stack([np.eye(3)] * 3), None, "broadcast"),
    ],
)
def test_project_validation(points, R, t, match):
    with pytest.raises(ValueError, match=match):
        project(points, intrinsics(1.0, 0.0, 0.0), R, t)


def test_points_behind_camera_are_nan_with_zero_gradient():
    Km = torch.from_numpy(intrinsics(100.0, 10.0, 20.0))
    X = torch.tensor([[1.0, 2.0, 5.0], [1.0, 2.0, 0.0], [1.0, 2.0, -5.0]], dtype=torch.float64,
                     requires_grad=True)
    uv = project(X, Km)
    assert torch.isfinite(uv[0]).all() and torch.isnan(uv[1:]).all()
    uv[0].sum().backward()
    assert torch.isfinite(X.grad).all() and (X.grad[1:] == 0).all()


def test_project_gradcheck():
    rng = np.random.default_rng(3)
    Km, _, R, t = random_camera(rng)
    X = points_in_front(rng, 5, R, t)
    free = Km[[0, 0, 0, 1, 1], [0, 1, 2, 1, 2]]  # fx, skew, cx, fy, cy
    args = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (X, free, R, t)]

    def f(X, free, R, t):  # K = [[fx, skew, cx], [0, fy, cy], [0, 0, 1]]
        zero, one = free.new_zeros(()), free.new_ones(())
        Km = torch.stack([free[0], free[1], free[2], zero, free[3], free[4], zero, zero, one])
        return project(X, Km.reshape(3, 3), R, t)

    assert torch.autograd.gradcheck(f, args)


def test_unproject_project_round_trip():
    rng = np.random.default_rng(4)
    Ks = torch.from_numpy(np.stack([random_camera(rng)[0] for _ in range(2)]))
    Ks[1, 0, 1] = 3.0  # skew
    uv = torch.from_numpy(rng.uniform(0, 640, (2, 10, 2)))
    depth = torch.from_numpy(rng.uniform(100, 900, (2, 10)))
    X = unproject(uv, depth, Ks)
    assert X.shape == (2, 10, 3)
    torch.testing.assert_close(X[..., 2], depth)
    torch.testing.assert_close(project(X, Ks), uv)
    # and the other way, numpy, a single point
    Km, _, _, _ = random_camera(rng)
    x = np.array([12.0, -30.0, 450.0])
    np.testing.assert_allclose(unproject(project(x, Km), x[2], Km), x)


def test_homogeneous_round_trip():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 7, 3))
    h = to_homogeneous(x)
    assert h.shape == (4, 7, 4)
    np.testing.assert_array_equal(h[..., 3], 1.0)
    np.testing.assert_allclose(from_homogeneous(h), x)
    np.testing.assert_allclose(from_homogeneous(2.5 * h), x)  # scale invariance
    t = torch.tensor([[2.0, 4.0, 2.0]])
    torch.testing.assert_close(from_homogeneous(t), torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError):
        from_homogeneous(np.ones(1))


def test_projection_matrix_equals_K_R_t():
    rng = np.random.default_rng(6)
    Km, _, R, t = random_camera(rng)
    Km[0, 1] = 2.0  # skew is part of P as well
    P = projection_matrix(Km, R, t)
    assert P.shape == (3, 4)
    np.testing.assert_allclose(P, Km @ np.column_stack([R, t]))
    X = points_in_front(rng, 30, R, t)
    np.testing.assert_allclose(from_homogeneous(to_homogeneous(X) @ P.T), project(X, Km, R, t))
    # batched: one P per camera
    Ps = projection_matrix(torch.from_numpy(np.stack([Km, Km])), torch.from_numpy(R),
                           torch.from_numpy(np.stack([t, 2 * t])))
    assert Ps.shape == (2, 3, 4)
    np.testing.assert_allclose(Ps[1].numpy(), Km @ np.column_stack([R, 2 * t]))


def test_weak_perspective_known_answer_and_shapes():
    X = np.array([[[1.0, 2.0, 7.0], [-1.0, 0.0, 3.0]]] * 2)  # (2, 2, 3)
    uv = weak_perspective(X, np.array([2.0, 3.0]), np.array([[10.0, 20.0], [0.0, 0.0]]))
    np.testing.assert_allclose(uv, [[[12, 24], [8, 20]], [[3, 6], [-3, 0]]])
    np.testing.assert_allclose(weak_perspective(X[0, 0, :2], 2.0, np.array([1.0, 1.0])), [3, 5])
    with pytest.raises(ValueError, match="t must"):
        weak_perspective(X, 1.0, np.zeros(3))


def test_weak_perspective_conversion_round_trips():
    rng = np.random.default_rng(7)
    f, cx, cy = 600.0, 320.0, 240.0
    s = rng.uniform(0.5, 3.0, 5)
    t = rng.uniform(0, 640, (5, 2))
    transl = weak_to_perspective(s, t, f, cx, cy)
    assert transl.shape == (5, 3)
    np.testing.assert_allclose(transl[:, 2], f / s)
    back = perspective_to_weak(transl, f, cx, cy)
    assert isinstance(back, WeakCamera)
    np.testing.assert_allclose(back.s, s)
    np.testing.assert_allclose(back.t, t)
    T = torch.tensor([[10.0, -20.0, 500.0]], dtype=torch.float64)
    ws, wt = perspective_to_weak(T, f, cx, cy)
    torch.testing.assert_close(weak_to_perspective(ws, wt, f, cx, cy), T)


def test_weak_perspective_equals_perspective_for_planar_points():
    rng = np.random.default_rng(8)
    f, cx, cy = 600.0, 320.0, 240.0
    X = np.column_stack([rng.normal(size=(21, 2)) * 40, np.zeros(21)])  # root-relative, z = 0
    s, t = 1.3, np.array([300.0, 200.0])
    T = weak_to_perspective(s, t, f, cx, cy)
    np.testing.assert_allclose(project(X + T, intrinsics(f, cx, cy)), weak_perspective(X, s, t))


def test_weak_perspective_approaches_perspective_for_far_objects():
    rng = np.random.default_rng(9)
    f, cx, cy = 600.0, 320.0, 240.0
    X = rng.normal(size=(21, 3)) * 40  # a hand-sized point cloud with depth relief
    errors = []
    for tz in (500.0, 5000.0, 50000.0):
        T = np.array([30.0, -20.0, tz])
        cam = perspective_to_weak(T, f, cx, cy)
        persp = project(X + T, intrinsics(f, cx, cy))
        weak = weak_perspective(X, cam.s, cam.t)
        # error relative to the projected size of the object
        errors.append(np.abs(persp - weak).max() / (cam.s * np.ptp(X[:, :2])))
    assert errors[0] > 1e-2  # perspective effects are visible at arm's length
    assert errors[1] < errors[0] / 5 and errors[2] < errors[1] / 5
    assert errors[2] < 2e-3


def test_weak_conversion_validation():
    with pytest.raises(ValueError, match="s must be > 0"):
        weak_to_perspective(np.array([1.0, 0.0]), np.zeros((2, 2)), 500.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="in front"):
        perspective_to_weak(np.array([0.0, 0.0, -1.0]), 500.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="focal"):
        perspective_to_weak(np.array([0.0, 0.0, 1.0]), 0.0, 0.0, 0.0)


# -- pixel convention ---------------------------------------------------------------------------


def test_continuous_and_centre_coordinates_round_trip_and_keep_the_type():
    uv = np.array([[0.0, 0.0], [639.0, 479.0]])
    np.testing.assert_allclose(continuous_to_centres(np.array([[0.5, 0.5], [640.0, 480.0]])), [[0, 0], [639.5, 479.5]])
    np.testing.assert_allclose(continuous_to_centres(centres_to_continuous(uv)), uv)
    assert torch.is_tensor(centres_to_continuous(torch.zeros(2)))


@pytest.mark.parametrize("scale", [2.0, 0.5, 3.0])
def test_resize_pixels_follows_opencv_resize(scale):
    p = np.array([41.3, 22.8])
    image = gaussian_blob(p, (60, 80), sigma=4.0)
    size = (round(80 * scale), round(60 * scale))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    moved = resize_pixels(p, size[0] / 80, size[1] / 60)
    np.testing.assert_allclose(intensity_centroid(resized), moved, atol=0.03)
    assert abs((p * scale - moved)[0]) > 0.2  # scaling the centres themselves would be off
    torch.testing.assert_close(resize_pixels(torch.tensor(p), 2.0, 2.0), torch.tensor(p * 2 + 0.5))


def test_supersampled_intrinsics_keep_the_image_centre_and_the_rays():
    K = intrinsics(500.0, 319.5, 239.5)  # the centre of a 640 x 480 image
    K3 = supersampled_intrinsics(K, 3)
    np.testing.assert_allclose(K3, [[1500.0, 0, 959.5], [0, 1500.0, 719.5], [0, 0, 1]])  # of 1920 x 1440
    X = np.array([[10.0, -20.0, 300.0], [-50.0, 40.0, 800.0]])
    np.testing.assert_allclose(project(X, K3), resize_pixels(project(X, K), 3, 3))


# --- uncalibrated photos and rigid pose from 2D (moved from fitting) ------------------------
K640 = default_intrinsics(640, 480)


def test_translation_from_2d_recovers_a_rigid_motion():
    rng = np.random.default_rng(1)
    moved = rng.normal(0, 40, (8, 3))
    t = np.array([30.0, -20.0, 450.0])
    uv = project(moved + t, K640)
    np.testing.assert_allclose(translation_from_2d(moved, uv, K640, np.ones(8)), t, atol=1e-8)


def test_default_intrinsics():
    k = default_intrinsics(640, 480)
    np.testing.assert_allclose(k, [[768, 0, 319.5], [0, 768, 239.5], [0, 0, 1]])
    # 35 mm equivalent: a 43.27 mm focal length spans the diagonal.
    assert default_intrinsics(300, 400, focal_35mm=43.27)[0, 0] == pytest.approx(500.0)
    with pytest.raises(ValueError):
        default_intrinsics(0, 480)


def test_translation_from_2d_uses_the_skew():
    rng = np.random.default_rng(3)
    points = rng.normal(0, 40, (8, 3))
    skewed = K640.copy()
    skewed[0, 1] = 40.0
    t = np.array([30.0, -20.0, 450.0])
    uv = project(points + t, skewed)
    np.testing.assert_allclose(translation_from_2d(points, uv, skewed, np.ones(8)), t, atol=1e-8)


def test_translation_from_size_known_answer():
    # a fronto-parallel square: its 2D size is exactly f size / z, its 2D centroid the projection
    points = np.array([[-30.0, -30, 5], [30, -30, 5], [30, 30, 5], [-30, 30, 5]])
    t = np.array([40.0, -25.0, 600.0])
    uv = project(points + t, K640)
    np.testing.assert_allclose(translation_from_size(points, uv, K640, np.ones(4)), t, atol=1e-9)


def test_rotation_from_2d_recovers_the_rotation_and_falls_back_to_identity():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(5)
    points = rng.normal(0, 40, (8, 3))
    R = Rotation.from_rotvec([0.4, -0.3, 0.2]).as_matrix()
    uv = project(points @ R.T + [10.0, -5.0, 500.0], K640)
    np.testing.assert_allclose(rotation_from_2d(points, uv, K640, np.ones(8)), R, atol=1e-6)
    same_pixel = np.full((8, 2), 100.0)
    R0 = rotation_from_2d(points, same_pixel, K640, np.ones(8))
    assert R0.shape == (3, 3) and np.all(np.isfinite(R0))
