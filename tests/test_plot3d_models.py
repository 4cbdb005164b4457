"""Tests of the hand-model figures added to handpose.plot3d: sphere-mesh, skinning colours,
model comparison and slider figures."""
from __future__ import annotations

import numpy as np
import pytest

from handpose import plot3d
from handpose.sample import canonical_hand_keypoints


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
