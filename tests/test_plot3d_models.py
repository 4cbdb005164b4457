"""Tests of the hand-model figures added to handpose.plot3d: sphere-mesh, skinning colours,
model comparison and slider figures."""
from __future__ import annotations

import numpy as np
import pytest

from handpose import plot3d
from handpose.keypoints import BONES, PALM_OUTLINE
from handpose.sample import canonical_hand_keypoints


def test_unit_sphere_is_closed_and_outward():
    vertices, faces = plot3d.uv_sphere(6, 10)
    np.testing.assert_allclose(np.linalg.norm(vertices, axis=1), 1.0)
    # closed surface: every edge is shared by exactly two triangles
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)
    # outward winding: positive signed volume, close to the sphere's 4/3 pi
    tri = vertices[faces]
    volume = np.einsum("fi,fi->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert 0.6 * 4 / 3 * np.pi < volume < 4 / 3 * np.pi


def test_frustum_rings_have_the_end_radii():
    a, b = np.array([0.0, 0.0, 0.0]), np.array([0.0, 10.0, 0.0])
    vertices, faces = plot3d._frustum(a, b, 3.0, 1.5, segments=8)
    assert vertices.shape == (16, 3) and faces.shape == (16, 3)
    radial = np.linalg.norm(vertices[:, [0, 2]], axis=1)
    np.testing.assert_allclose(radial[:8], 3.0)
    np.testing.assert_allclose(radial[8:], 1.5)
    np.testing.assert_allclose(vertices[8:, 1], 10.0)
    assert len(plot3d._frustum(a, a, 1.0, 1.0)[0]) == 0


def test_sphere_mesh_wraps_every_joint_sphere():
    points = canonical_hand_keypoints()
    radii = np.asarray(plot3d.SPHERE_RADII_MM)
    vertices, faces = plot3d.sphere_mesh(points)
    assert faces.min() >= 0 and faces.max() < len(vertices)
    # the spheres' poles lie on z: the mesh's z extent is exactly that of the spheres
    assert vertices[:, 2].min() == pytest.approx((points[:, 2] - radii).min())
    assert vertices[:, 2].max() == pytest.approx((points[:, 2] + radii).max())
    # each sphere's vertices are at its radius from its joint
    sphere = len(plot3d.uv_sphere()[0])
    for j in (0, 8, 20):
        block = vertices[j * sphere:(j + 1) * sphere]
        np.testing.assert_allclose(np.linalg.norm(block - points[j], axis=1), radii[j])
    assert len(vertices) == 21 * sphere + 2 * 12 * len(BONES) + len(PALM_OUTLINE) * sphere
    with pytest.raises(ValueError, match="21 positive"):
        plot3d.sphere_mesh(points, radii[:20])


def test_skinning_colors_blend_the_palette():
    palette = ["#ff0000", "rgb(0,0,255)"]
    weights = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    colors = plot3d.skinning_colors(weights, palette)
    np.testing.assert_array_equal(colors, [[255, 0, 0], [0, 0, 255], [128, 0, 128]])
    with pytest.raises(ValueError, match=r"\(V, K\)"):
        plot3d.skinning_colors(np.ones(3))


def test_colored_mesh_trace_sets_one_colour_per_vertex():
    vertices = np.eye(3)
    trace = plot3d.colored_mesh_trace(vertices, np.array([[0, 1, 2]]), np.array([[255, 0, 0]] * 3))
    assert list(trace.vertexcolor) == ["rgb(255,0,0)"] * 3 and trace.color is None
    with pytest.raises(ValueError, match="vertex_colors"):
        plot3d.colored_mesh_trace(vertices, np.array([[0, 1, 2]]), np.zeros((2, 3)))


def test_hand_models_figure_has_three_scenes():
    points = canonical_hand_keypoints()
    vertices, faces = plot3d.sphere_mesh(points)
    fig = plot3d.hand_models_figure(points, vertices, faces, title="t")
    assert {trace.scene for trace in fig.data} == {"scene", "scene2", "scene3"}
    assert [t.type for t in fig.data].count("mesh3d") == 2
    assert fig.layout.width == plot3d.WIDTH


def test_slider_figure_shows_one_group_per_step():
    points = canonical_hand_keypoints()
    groups = [plot3d.skeleton_traces(points * s, name=f"s{s}") for s in (1.0, 1.5, 2.0)]
    fig = plot3d.slider_figure(groups, ["1", "1.5", "2"], prefix="s = ", active=1)
    per_group = len(groups[0])
    assert [t.visible for t in fig.data] == [False] * per_group + [True] * per_group + [False] * per_group
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["1", "1.5", "2"]
    assert steps[2].args[0]["visible"] == [False] * 2 * per_group + [True] * per_group
    # fixed ranges cover every step (the largest hand), so the view does not jump
    x_range = fig.layout.scene.xaxis.range
    assert x_range[0] <= 2.0 * points[:, 0].min() and x_range[1] >= 2.0 * points[:, 0].max()
    with pytest.raises(ValueError, match="one label per group"):
        plot3d.slider_figure(groups, ["1"])
    with pytest.raises(ValueError, match="active"):
        plot3d.slider_figure(groups, ["1", "2", "3"], active=3)
