"""handpose.plot3d: skeleton and mesh traces, fixed-size scenes, the selector menu."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from pathlib import Path

from _fits import K, exact_fit, exact_hand
from handpose import plot3d
from handpose.pipeline import MeshedImage
from handpose.keypoints import BONES, NAMES
from handpose.sample import canonical_hand_keypoints

HAND = canonical_hand_keypoints()


def segments(traces: list[go.Scatter3d]) -> set[tuple[int, int]]:
    """The (parent, child) keypoint pairs drawn by the line traces, read back from coordinates."""
    found = set()
    for trace in traces:
        if trace.mode != "lines":
            continue
        xyz = np.array([trace.x, trace.y, trace.z], dtype=object).T
        for start in range(0, len(xyz), 3):
            a, b = (np.flatnonzero(np.all(np.isclose(HAND, np.array(xyz[start + k], float)), axis=1))[0]
                    for k in (0, 1))
            assert xyz[start + 2].tolist() == [None, None, None]
            found.add((int(a), int(b)))
    return found


def test_skeleton_traces_draw_every_bone_once_and_every_joint() -> None:
    traces = plot3d.skeleton_traces(HAND, name="gt")
    lines = [t for t in traces if t.mode == "lines"]
    assert len(lines) == 5  # one per finger colour
    assert segments(traces) == set(BONES)
    assert sum(len(t.x) // 3 for t in lines) == len(BONES)
    joints = traces[-1]
    assert joints.mode == "markers"
    np.testing.assert_array_equal(np.array([joints.x, joints.y, joints.z]).T, HAND)
    assert list(joints.text) == [f"gt: {name}" for name in NAMES]


def test_skeleton_single_colour() -> None:
    traces = plot3d.skeleton_traces(HAND, color="black")
    assert {t.line.color for t in traces if t.mode == "lines"} == {"black"}
    assert traces[-1].marker.color == "black"


def test_mesh_trace() -> None:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    faces = np.array([[0, 1, 2], [0, 1, 3]])
    trace = plot3d.mesh_trace(vertices, faces, opacity=0.5)
    assert list(trace.i) == [0, 0] and list(trace.j) == [1, 1] and list(trace.k) == [2, 3]
    assert trace.opacity == 0.5
    with pytest.raises(ValueError, match="outside"):
        plot3d.mesh_trace(vertices, faces + 2)
    with pytest.raises(ValueError, match="integer"):
        plot3d.mesh_trace(vertices, faces.astype(float))
    with pytest.raises(ValueError, match="vertices"):
        plot3d.mesh_trace(vertices[:, :2], faces)


def test_keypoints_figure_is_fixed_size_in_the_camera_view() -> None:
    fig = plot3d.keypoints_figure(np.stack([HAND, HAND + 10]), names=["a", "b"], title="t")
    assert (fig.layout.width, fig.layout.height, fig.layout.autosize) == (plot3d.WIDTH, plot3d.HEIGHT, False)
    assert fig.layout.scene.aspectmode == "data"
    assert fig.layout.scene.camera.up.y == -1  # image convention: y down
    assert len(fig.data) == 12
    colours = {t.line.color for t in fig.data if t.mode == "lines"}
    assert len(colours) == 2  # one colour per hand
    single = plot3d.keypoints_figure(HAND)
    assert len({t.line.color for t in single.data if t.mode == "lines"}) == 5  # finger colours


def test_keypoints_figure_validation() -> None:
    with pytest.raises(ValueError, match="hands must be"):
        plot3d.keypoints_figure(HAND[:20])
    with pytest.raises(ValueError, match="names"):
        plot3d.keypoints_figure(HAND, names=["a", "b"])


def test_mesh_figure_with_skeleton() -> None:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    fig = plot3d.mesh_figure(vertices, np.array([[0, 1, 2]]), keypoints_3d=HAND)
    assert isinstance(fig.data[0], go.Mesh3d) and len(fig.data) == 7


def test_selector_figure_toggles_one_group_at_a_time() -> None:
    groups = [plot3d.skeleton_traces(HAND, "a"), [plot3d.mesh_trace(HAND[:3], np.array([[0, 1, 2]]))],
              plot3d.skeleton_traces(HAND * 2, "c")]
    fig = plot3d.selector_figure(groups, ["A", "B", "C"])
    owner = [0] * 6 + [1] + [2] * 6
    assert [t.visible for t in fig.data] == [g == 0 for g in owner]
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["A", "B", "C"]
    for g, button in enumerate(buttons):
        assert button.method == "update"
        assert button.args[0]["visible"] == [o == g for o in owner]
    with pytest.raises(ValueError, match="one label per group"):
        plot3d.selector_figure(groups, ["A"])
    with pytest.raises(ValueError, match="one label per group"):
        plot3d.selector_figure([], [])



def test_scene_traces_one_mesh_and_skeleton_per_hand(open_hands):
    hand, pose, points = exact_hand(open_hands["right"], 5)
    fit = exact_fit(open_hands["right"], pose, points[0])
    item = MeshedImage(Path("x.png"), np.zeros((480, 640, 3), np.uint8), K, [hand, hand], [fit, fit])
    traces = plot3d.scene_traces(item)
    assert [t.type for t in traces].count("mesh3d") == 2
    assert traces[0].name == "right 0 mesh"
