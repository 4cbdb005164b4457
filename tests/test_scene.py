"""Tests of handpose.scene pieces that the demo set (tests/test_demo_data.py) exercises only as a whole."""
from __future__ import annotations

import numpy as np

from handpose import scene as sc
from handpose.camera import intrinsics
from handpose.mesh import box_mesh


def test_downsample_is_the_block_mean():
    image = np.arange(4 * 6, dtype=np.float64).reshape(4, 6)
    expected = [[np.mean([0, 1, 6, 7]), np.mean([2, 3, 8, 9]), np.mean([4, 5, 10, 11])],
                [np.mean([12, 13, 18, 19]), np.mean([14, 15, 20, 21]), np.mean([16, 17, 22, 23])]]
    np.testing.assert_array_equal(sc.downsample(image, 2), expected)
    rgb = np.repeat(image[..., None], 3, axis=2)
    np.testing.assert_array_equal(sc.downsample(rgb, 2)[..., 1], expected)


def test_shade_meshes_covers_the_projected_box_at_its_depth():
    # a 40 mm cube 400 mm in front of the camera, f = 100 px: its front face spans 100 * 40 / 380 px
    verts, faces, normals = box_mesh(np.array([0.0, 0.0, 400.0]), np.eye(3), np.array([40.0, 40.0, 40.0]))
    material = np.full((len(verts), 3), 0.5)
    mesh = sc.Mesh(verts, faces, material, np.zeros(len(verts)), np.zeros(len(verts)), normals)
    K = intrinsics(100.0, 31.5, 31.5)
    color, covered, depth = sc.shade_meshes([mesh], K, 64, 64, sc.Lighting((0.0, -0.5, -1.0), (1.0, 1.0, 1.0), (0.3, 0.3, 0.3), (0.1, 0.1, 0.1)),
                                         occlusion=False)
    half = 100.0 * 20.0 / 380.0  # 5.26 px
    rows, cols = np.nonzero(covered)
    assert rows.min() >= 31.5 - half - 0.5 and rows.max() <= 31.5 + half + 0.5
    assert cols.min() >= 31.5 - half - 0.5 and cols.max() <= 31.5 + half + 0.5
    np.testing.assert_allclose(depth[covered], 380.0)
    assert np.isinf(depth[~covered]).all() and np.all(color[covered] > 0) and np.all(color[~covered] == 0)
