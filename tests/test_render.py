"""Tests of handpose.render: rasteriser coverage, depth and occlusion, overlays, OBJ export."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from handpose.camera import project
from handpose.mesh import uv_sphere
from handpose.render import export_obj, mesh_overlay, overlay, rasterize, render_depth

from _fits import K, exact_fit, exact_hand

# fx = fy = 1000, principal point at the origin: a point (x, y, 1000) lands on pixel (x, y).
K_UNIT = np.array([[1000.0, 0.0, 0.0], [0.0, 1000.0, 0.0], [0.0, 0.0, 1.0]])


def _quad(x0: float, y0: float, x1: float, y1: float, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned rectangle at depth z, in K_UNIT pixel units (x, y scaled by z / 1000)."""
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) * z / 1000.0
    return np.c_[corners, np.full(4, z)], np.array([[0, 1, 2], [0, 2, 3]])


def test_single_triangle_coverage_matches_point_in_polygon():
    tri2d = np.array([[3.3, 2.7], [40.6, 9.2], [12.1, 33.8]])
    ras = rasterize(np.c_[tri2d, np.ones(3)], np.array([[0, 1, 2]]), 40, 50)
    cols, rows = np.meshgrid(np.arange(50), np.arange(40))
    centres = np.c_[cols.ravel(), rows.ravel()].astype(float)
    inside = MplPath(tri2d).contains_points(centres).reshape(40, 50)
    assert np.array_equal(ras.face_id >= 0, inside)
    assert inside.sum() > 300
    assert ras.face_id.dtype == np.int64 and set(np.unique(ras.face_id)) == {-1, 0}
    assert np.all(np.isinf(ras.depth[~inside])) and np.all(ras.barycentrics[~inside] == 0)


def test_planar_triangle_depth_and_barycentrics_are_exact():
    K = np.array([[500.0, 0.0, 32.0], [0.0, 480.0, 24.0], [0.0, 0.0, 1.0]])
    tri3d = np.array([[-40.0, -30.0, 400.0], [60.0, -10.0, 700.0], [-10.0, 50.0, 550.0]])
    screen = np.c_[project(tri3d, K), tri3d[:, 2]]
    ras = rasterize(screen, np.array([[0, 1, 2]]), 48, 64)
    rows, cols = np.nonzero(ras.face_id == 0)
    assert len(rows) > 200
    # Ray through pixel (u, v): X = z K^-1 [u, v, 1]; the plane n . X = n . X0 gives z.
    rays = np.c_[cols, rows, np.ones_like(cols)] @ np.linalg.inv(K).T
    normal = np.cross(tri3d[1] - tri3d[0], tri3d[2] - tri3d[0])
    z_ref = (normal @ tri3d[0]) / (rays @ normal)
    np.testing.assert_allclose(ras.depth[rows, cols], z_ref, rtol=1e-9)
    # Perspective-correct barycentrics interpolate the 3D point on the ray.
    points = ras.barycentrics[rows, cols] @ tri3d
    np.testing.assert_allclose(points, rays * z_ref[:, None], atol=1e-7)


def test_linear_depth_mode_interpolates_in_screen_space():
    screen = np.array([[2.0, 2.0, -5.0], [30.0, 4.0, 10.0], [6.0, 25.0, 3.0]])
    ras = rasterize(screen, np.array([[0, 1, 2]]), 32, 32, perspective_correct=False)
    rows, cols = np.nonzero(ras.face_id == 0)
    # depth is the affine function through the three vertices: solve [x y 1] c = z.
    coef = np.linalg.solve(np.c_[screen[:, :2], np.ones(3)], screen[:, 2])
    np.testing.assert_allclose(ras.depth[rows, cols], np.c_[cols, rows, np.ones_like(rows)] @ coef, atol=1e-9)
    np.testing.assert_allclose(ras.barycentrics[rows, cols] @ screen[:, :2], np.c_[cols, rows], atol=1e-9)


@pytest.mark.parametrize("near_first", [True, False])
def test_overlapping_triangles_nearest_wins_whatever_the_order(near_first):
    near = np.array([[0.0, 0.0, 2.0], [20.0, 0.0, 2.0], [0.0, 20.0, 2.0]])
    far = np.array([[5.0, 5.0, 9.0], [25.0, 5.0, 9.0], [5.0, 25.0, 9.0]])
    vertices = np.vstack([near, far] if near_first else [far, near])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    near_id = 0 if near_first else 1
    ras = rasterize(vertices, faces, 30, 30)
    assert ras.face_id[7, 7] == near_id and ras.depth[7, 7] == pytest.approx(2.0)
    assert ras.face_id[2, 2] == near_id  # near only
    assert ras.face_id[20, 8] == 1 - near_id and ras.depth[20, 8] == pytest.approx(9.0)  # far only


def test_interpenetrating_triangles_resolve_per_pixel():
    # Two crossing faces (depth rising left to right vs falling): no face order is right everywhere.
    rising = np.array([[0.0, 0.0, 1.0], [30.0, 0.0, 4.0], [0.0, 30.0, 1.0]])
    falling = np.array([[0.0, 0.0, 4.0], [30.0, 0.0, 1.0], [0.0, 30.0, 4.0]])
    ras = rasterize(np.vstack([rising, falling]), np.array([[0, 1, 2], [3, 4, 5]]), 30, 30,
                    perspective_correct=False)
    assert ras.face_id[5, 3] == 0 and ras.face_id[5, 20] == 1
    assert ras.depth[5, 3] < 2.5 and ras.depth[5, 20] < 2.5


def test_faces_behind_the_camera_are_clipped():
    K = np.array([[100.0, 0.0, 20.0], [0.0, 100.0, 20.0], [0.0, 0.0, 1.0]])
    front = np.array([[-5.0, -5.0, 100.0], [5.0, -5.0, 100.0], [0.0, 5.0, 100.0]])
    crossing = np.array([[-5.0, -5.0, 50.0], [5.0, -5.0, -50.0], [0.0, 5.0, 50.0]])
    out, mask = overlay(np.zeros((40, 40, 3), np.uint8), [crossing, front], np.array([[0, 1, 2]]), K,
                        light_dir=(0, 0, -1), alpha=1.0, colors=[(255, 0, 0), (0, 0, 255)])
    assert np.all(np.isfinite(mask)) and mask.max() == 1.0
    assert np.all(out[mask == 1.0] == [0, 0, 255])  # only the front face is drawn
    only_behind, mask_behind = overlay(np.zeros((40, 40, 3), np.uint8), -front, np.array([[0, 1, 2]]), K)
    assert mask_behind.max() == 0.0 and only_behind.max() == 0
    depth = render_depth(crossing, np.array([[0, 1, 2]]), K, 40, 40)
    assert np.all(np.isinf(depth))


def test_overlay_coverage_is_antialiased_area():
    vertices, faces = _quad(10.1, 5.1, 30.6, 20.6, 500.0)
    image = np.full((30, 40, 3), 7, np.uint8)
    out, mask = overlay(image, [vertices], faces, K_UNIT, colors=[(200, 100, 50)], alpha=1.0,
                        light_dir=(0, 0, -1), supersample=2)
    assert out.dtype == np.uint8 and out.shape == image.shape and mask.dtype == np.float32
    # Samples sit at c +- 0.25: 41 of them in x (10.25 .. 30.25), 31 in y; area 20.5 x 15.5.
    assert mask.sum() == pytest.approx(20.5 * 15.5)
    assert mask[10, 20] == 1.0 and mask[10, 10] == 0.5 and mask[5, 10] == 0.25
    assert np.array_equal(out[10, 20], [200, 100, 50])  # facing the light: unshaded base colour
    assert np.array_equal(out[mask == 0], image[mask == 0])
    # Edge pixels blend: 0.5 of the colour over the background.
    np.testing.assert_allclose(out[10, 10], np.rint(0.5 * np.array([200, 100, 50]) + 0.5 * 7), atol=1)
    _, aliased = overlay(image, [vertices], faces, K_UNIT, supersample=1)
    assert set(np.unique(aliased)) == {0.0, 1.0}


def test_overlay_lambert_shading_known_answer():
    # c = base (ambient + (1 - ambient) |n . l|): a quad facing the camera (n = -z), light at 60 deg.
    vertices, faces = _quad(4, 4, 28, 28, 200.0)
    light = (np.sin(np.pi / 3), 0.0, -np.cos(np.pi / 3))
    out, mask = overlay(np.zeros((32, 32, 3), np.uint8), vertices, faces, K_UNIT, colors=[(200, 100, 40)],
                        alpha=0.5, ambient=0.2, light_dir=light)
    expected = 0.5 * np.array([200, 100, 40]) * (0.2 + 0.8 * 0.5)
    assert mask[16, 16] == 1.0
    np.testing.assert_allclose(out[16, 16], np.rint(expected), atol=1)


@pytest.mark.parametrize("near_first", [True, False])
def test_overlay_occlusion_between_meshes(near_first):
    near = _quad(5, 5, 25, 25, 300.0)
    far = _quad(15, 15, 35, 35, 600.0)
    meshes = [near, far] if near_first else [far, near]
    colors = [(255, 0, 0), (0, 0, 255)] if near_first else [(0, 0, 255), (255, 0, 0)]
    out, _ = overlay(np.zeros((40, 40, 3), np.uint8), [m[0] for m in meshes], [m[1] for m in meshes],
                     K_UNIT, colors=colors, alpha=1.0, light_dir=(0, 0, -1))
    assert np.array_equal(out[20, 20], [255, 0, 0])  # overlap: the near (red) quad
    assert np.array_equal(out[30, 30], [0, 0, 255])  # far only


def test_overlay_of_closed_mesh_covers_like_two_sided_rasterisation():
    # Back-face culling must not change what a solid mesh covers.
    vertices, faces = uv_sphere(16, 24)
    vertices = vertices * [40.0, 60.0, 30.0] + [5.0, -3.0, 400.0]
    K = np.array([[600.0, 0.0, 64.0], [0.0, 600.0, 48.0], [0.0, 0.0, 1.0]])
    _, mask = overlay(np.zeros((96, 128, 3), np.uint8), [vertices], faces, K, supersample=1)
    ras = rasterize(np.c_[project(vertices, K), vertices[:, 2]], faces, 96, 128)
    assert np.array_equal(mask == 1.0, ras.face_id >= 0)
    np.testing.assert_allclose(render_depth([vertices], faces, K, 96, 128), ras.depth)


def test_overlay_image_handling():
    vertices, faces = _quad(2, 2, 12, 12, 100.0)
    gray = np.full((16, 16), 40, np.uint8)
    out, mask = overlay(gray, vertices, faces, K_UNIT)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert np.array_equal(out[mask == 0], np.full(((mask == 0).sum(), 3), 40))
    rgba = np.dstack([np.full((16, 16, 3), 40, np.uint8), np.zeros((16, 16), np.uint8)])
    assert np.array_equal(overlay(rgba, vertices, faces, K_UNIT)[0], out)
    with pytest.raises(ValueError, match="uint8"):
        overlay(gray.astype(np.float32), vertices, faces, K_UNIT)
    with pytest.raises(ValueError, match="K"):
        overlay(gray, vertices, faces, np.eye(4))
    with pytest.raises(ValueError, match="faces index"):
        overlay(gray, vertices, faces + 10, K_UNIT)
    with pytest.raises(ValueError, match="colors"):
        overlay(gray, vertices, faces, K_UNIT, colors=[(1, 2)])
    nothing, empty = overlay(gray, [], [], K_UNIT)
    assert np.array_equal(nothing, np.repeat(gray[..., None], 3, axis=2))
    assert empty.max() == 0


def test_rasterize_validation():
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        rasterize(np.zeros((3, 2)), np.array([[0, 1, 2]]), 4, 4)
    with pytest.raises(ValueError, match="integer"):
        rasterize(np.zeros((3, 3)), np.array([[0.0, 1.0, 2.0]]), 4, 4)
    with pytest.raises(ValueError, match="positive"):
        rasterize(np.zeros((3, 3)), np.array([[0, 1, 2]]), 0, 4)
    empty = rasterize(np.zeros((0, 3)), np.zeros((0, 3), np.int64), 3, 5)
    assert empty.depth.shape == (3, 5) and empty.barycentrics.shape == (3, 5, 3)


def test_export_obj_round_trip(tmp_path):
    vertices, faces = uv_sphere(6, 8)
    vertices = vertices * 12.345678
    path = tmp_path / "hand.obj"
    path.write_text("old content\n")
    assert export_obj(path, vertices, faces) == path
    v_back, f_back = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "v":
            v_back.append([float(p) for p in parts[1:]])
        elif parts and parts[0] == "f":
            f_back.append([int(p) - 1 for p in parts[1:]])
    np.testing.assert_allclose(np.array(v_back), vertices, atol=1e-6)
    assert np.array_equal(np.array(f_back), faces)
    assert [p.name for p in tmp_path.iterdir()] == ["hand.obj"]  # no temporary file left
    with pytest.raises(ValueError):
        export_obj(tmp_path / "bad.obj", vertices, faces + len(vertices))
    assert not (tmp_path / "bad.obj").exists()



# -- fitted hands over photos ---------------------------------------------------------------
def test_mesh_overlay_of_an_exact_fit(open_hands):
    hand, pose, points = exact_hand(open_hands["right"], 3)
    fit = exact_fit(open_hands["right"], pose, points[0])
    image = np.zeros((480, 640, 3), np.uint8)
    out = mesh_overlay(image, [fit], K, alpha=1.0)
    covered = out.sum(-1) > 0
    u, v = np.rint(hand.keypoints_2d[9]).astype(int)  # middle MCP: inside the palm
    assert covered[v, u]
    colour = out[covered].mean(0)
    assert colour[2] > colour[0]  # right hands are blue (SIDE_COLORS)
    assert not covered[0, 0]
