"""Plotly 3D figures of hands: keypoint skeletons, meshes, and figures that switch between hands.

Points are in the camera frame (x right, y down, z away from the camera, mm); the default view
looks down the optical axis with y pointing down, as in the photo. Figures have a fixed pixel size
so that printed pages crop nothing; :mod:`handpose.report` embeds plotly.js once per HTML file.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from handpose.alignment import placed_keypoints
from handpose.keypoints import BONE_COLORS, BONES, KEYPOINT_COLORS, NAMES, NUM_KEYPOINTS
from handpose.mesh import check_mesh, sphere_mesh
from handpose.render import SIDE_COLORS

if TYPE_CHECKING:
    from handpose.pipeline import MeshedImage

#: Fixed figure size in pixels (fits the width of an A4 page printed with 12 mm margins).
WIDTH, HEIGHT = 680, 520

#: Pixels from the figure's top edge to its title's centre line: below plotly's toolbar (the
#: "modebar", about 30 px high at the top right), so that a long title does not run under it.
TITLE_Y_PX = 44


def _title(text: str | None, height: int) -> dict:
    """A left-aligned title on a line of its own under the toolbar."""
    return dict(text=text, x=0.01, xanchor="left", y=1 - TITLE_Y_PX / height, yanchor="middle")


#: The default view: from slightly right of and above the photo's camera (eye on -z), y down.
CAMERA_VIEW = dict(up=dict(x=0, y=-1, z=0), eye=dict(x=0.8, y=-0.5, z=-2.4), center=dict(x=0, y=0, z=0))


def _rgb(color: tuple[int, int, int]) -> str:
    return f"rgb({color[0]},{color[1]},{color[2]})"


def _check_points(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"{name} must be (21, 3), got {points.shape}")
    return points


def skeleton_traces(
    keypoints_3d: np.ndarray,
    name: str = "hand",
    color: str | None = None,
    opacity: float = 1.0,
    marker_size: float = 4.0,
    line_width: float = 6.0,
) -> list[go.Scatter3d]:
    """The 20 bones (one line per finger colour) and the 21 joints of one hand.

    Args:
        keypoints_3d: ``(21, 3)`` mm, course order.
        name: legend name; hover text shows it with each joint's name.
        color: one CSS colour for the whole hand, or ``None`` for the per-finger colours.

    Returns:
        Scatter3d traces: one per bone colour group, then the joints.
    """
    points = _check_points(keypoints_3d, "keypoints_3d")
    traces: list[go.Scatter3d] = []
    # Bones of one colour go into one trace, separated by None gaps.
    groups: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
    for bone, bone_color in zip(BONES, BONE_COLORS):
        groups.setdefault(bone_color, []).append(bone)
    for bone_color, bones in groups.items():
        xyz: list[list[float | None]] = [[], [], []]
        for parent, child in bones:
            for axis in range(3):
                xyz[axis] += [points[parent, axis], points[child, axis], None]
        traces.append(go.Scatter3d(
            x=xyz[0], y=xyz[1], z=xyz[2], mode="lines", name=name, legendgroup=name, showlegend=False,
            line=dict(color=color or _rgb(bone_color), width=line_width), opacity=opacity,
            hoverinfo="skip",
        ))
    traces.append(go.Scatter3d(
        x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="markers", name=name, legendgroup=name,
        marker=dict(size=marker_size, color=color or [_rgb(c) for c in KEYPOINT_COLORS]),
        text=[f"{name}: {joint}" for joint in NAMES], hoverinfo="text", opacity=opacity,
    ))
    return traces


def mesh_trace(
    vertices: np.ndarray,
    faces: np.ndarray,
    name: str = "mesh",
    color: str = "rgb(222,184,160)",
    opacity: float = 1.0,
) -> go.Mesh3d:
    """One triangle mesh, flat-shaded with a head-on light.

    Args:
        vertices: ``(V, 3)`` mm.
        faces: ``(F, 3)`` integer indices into ``vertices``.
    """
    vertices, faces = check_mesh(vertices, faces)
    return go.Mesh3d(
        x=vertices[:, 0], y=vertices[:, 1], z=vertices[:, 2], i=faces[:, 0], j=faces[:, 1], k=faces[:, 2],
        name=name, color=color, opacity=opacity, flatshading=False, showlegend=True, hoverinfo="name",
        lighting=dict(ambient=0.45, diffuse=0.8, specular=0.15, roughness=0.8),
        lightposition=dict(x=0, y=-200, z=-1000),
    )


def scene_figure(
    traces: Sequence[go.BaseTraceType], title: str | None = None, width: int = WIDTH, height: int = HEIGHT
) -> go.Figure:
    """A fixed-size 3D figure of ``traces`` in the camera view, equal axis scales, axes in mm."""
    fig = go.Figure(data=list(traces))
    fig.update_layout(
        title=_title(title, height), width=width, height=height, autosize=False,
        margin=dict(l=0, r=0, t=TITLE_Y_PX + 26 if title else 34, b=0),
        legend=dict(x=0.01, y=0.99),
        scene=dict(
            aspectmode="data", camera=CAMERA_VIEW,
            xaxis_title="x (mm)", yaxis_title="y (mm)", zaxis_title="z (mm)",
        ),
    )
    return fig


def keypoints_figure(
    hands: np.ndarray | Sequence[np.ndarray],
    names: Sequence[str] | None = None,
    colors: Sequence[str | None] | None = None,
    title: str | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> go.Figure:
    """3D skeletons of one or more hands in one scene.

    Args:
        hands: ``(21, 3)`` or ``(N, 21, 3)`` mm.
        names: one legend name per hand (default ``hand 0``, ``hand 1``, ...).
        colors: one CSS colour per hand, ``None`` entries for the per-finger colours (default: the
            finger colours for a single hand, plotly's palette for several).
    """
    hands = np.asarray(hands, dtype=np.float64)
    if hands.ndim == 2:
        hands = hands[None]
    if hands.ndim != 3 or hands.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"hands must be (21, 3) or (N, 21, 3), got {hands.shape}")
    names = list(names) if names is not None else [f"hand {i}" for i in range(len(hands))]
    if colors is None:
        palette = plotly.colors.qualitative.Plotly
        colors = [None] if len(hands) == 1 else [palette[i % len(palette)] for i in range(len(hands))]
    if len(names) != len(hands) or len(colors) != len(hands):
        raise ValueError(f"got {len(names)} names and {len(colors)} colors for {len(hands)} hands")
    traces = [
        trace for hand, name, color in zip(hands, names, colors) for trace in skeleton_traces(hand, name, color)
    ]
    return scene_figure(traces, title, width, height)


def mesh_figure(
    vertices: np.ndarray,
    faces: np.ndarray,
    keypoints_3d: np.ndarray | None = None,
    title: str | None = None,
    opacity: float = 0.6,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> go.Figure:
    """A hand mesh, see-through, with its skeleton inside when ``keypoints_3d`` ``(21, 3)`` is given."""
    traces: list[go.BaseTraceType] = [mesh_trace(vertices, faces, opacity=opacity)]
    if keypoints_3d is not None:
        traces += skeleton_traces(keypoints_3d, name="keypoints")
    return scene_figure(traces, title, width, height)


def selector_figure(
    groups: Sequence[Sequence[go.BaseTraceType]],
    labels: Sequence[str],
    title: str | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> go.Figure:
    """One figure showing one group of traces at a time, chosen with a dropdown menu.

    Works in exported HTML without a kernel: the menu only toggles trace visibility.

    Args:
        groups: ``G`` lists of traces (e.g. one image's skeletons and mesh each).
        labels: ``G`` menu labels.
    """
    if len(groups) == 0 or len(groups) != len(labels):
        raise ValueError(f"need one label per group and at least one group, got {len(groups)} groups "
                         f"and {len(labels)} labels")
    traces = [trace for group in groups for trace in group]
    owner = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
    fig = scene_figure(traces, title, width, height)
    for trace, g in zip(fig.data, owner):
        trace.visible = bool(g == 0)
    buttons = [
        dict(label=label, method="update", args=[{"visible": (owner == g).tolist()}])
        for g, label in enumerate(labels)
    ]
    fig.update_layout(
        updatemenus=[dict(buttons=buttons, direction="down", x=0.99, xanchor="right", y=1.0, yanchor="top")],
        # Keep the camera when switching: the scene's uirevision does not change between groups.
        scene_uirevision="selector",
    )
    return fig


# ---------------------------------------------------------------------------------------------
# Hand models of the slides (skeleton, sphere-mesh, triangle mesh) and slider figures
# ---------------------------------------------------------------------------------------------
#: A view of a hand model in its own frame (fingers along +y, palm facing +z): from the palm side, y up.
MODEL_VIEW = dict(up=dict(x=0, y=1, z=0), eye=dict(x=0.5, y=0.3, z=1.9), center=dict(x=0, y=0, z=0))
#: Mesh lighting that keeps surfaces bright from any view (plotly's default light is often behind).
SOFT_LIGHT = dict(ambient=0.8, diffuse=0.4, specular=0.05, roughness=0.9)


def hand_models_figure(
    keypoints_3d: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    title: str | None = None,
    camera: dict = CAMERA_VIEW,
    width: int = WIDTH,
    height: int = 380,
) -> go.Figure:
    """One pose, three hand models side by side: skeleton | sphere-mesh | triangle mesh.

    Args:
        keypoints_3d: ``(21, 3)`` mm, the skeleton (and the sphere centres).
        vertices: ``(V, 3)`` mm and ``faces (F, 3)``: the triangle mesh in the same frame.
        camera: plotly scene camera of the three views (default: the photo's camera).
    """
    from plotly.subplots import make_subplots

    points = _check_points(keypoints_3d, "keypoints_3d")
    spheres = sphere_mesh(points)
    fig = make_subplots(rows=1, cols=3, specs=[[{"type": "scene"}] * 3], horizontal_spacing=0.01,
                        subplot_titles=("skeleton (21 joints, 20 bones)", "sphere-mesh (spheres + hulls)",
                                        f"triangle mesh ({len(vertices)} vertices)"))
    for trace in skeleton_traces(points, name="skeleton"):
        fig.add_trace(trace, row=1, col=1)
    fig.add_trace(mesh_trace(*spheres, name="sphere-mesh", color="rgb(230,170,140)").update(lighting=SOFT_LIGHT),
                  row=1, col=2)
    fig.add_trace(mesh_trace(vertices, faces, name="mesh").update(lighting=SOFT_LIGHT), row=1, col=3)
    # One box for the three scenes, around the largest model (the sphere-mesh's spheres and the skin
    # reach past the joints): the skeleton is drawn at the same scale and nothing is cut at a panel edge.
    scene = fixed_scene(np.concatenate([points, spheres[0], np.asarray(vertices, dtype=np.float64)]), camera,
                        pad=0.08)
    for axis in "xyz":
        scene[f"{axis}axis"]["visible"] = False
    fig.update_layout(title=_title(title, height), width=width, height=height, autosize=False, showlegend=False,
                      margin=dict(l=0, r=0, t=TITLE_Y_PX + 40 if title else 40, b=0), scene=scene, scene2=scene,
                      scene3=scene)
    return fig


def skinning_colors(weights: np.ndarray, palette: Sequence[str] | None = None) -> np.ndarray:
    """``(V, 3)`` uint8 vertex colours ``c_v = sum_k W_vk c_k``: each bone ``k`` a palette colour,
    blended by the skinning weights ``W (V, K)`` (rows summing to 1)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2:
        raise ValueError(f"weights must be (V, K), got {weights.shape}")
    palette = list(palette or plotly.colors.qualitative.Dark24)
    rgb = np.array([plotly.colors.hex_to_rgb(c) if c.startswith("#") else plotly.colors.unlabel_rgb(c)
                    for c in palette], dtype=np.float64)
    colors = rgb[np.arange(weights.shape[1]) % len(rgb)]
    return np.clip(np.rint(weights @ colors), 0, 255).astype(np.uint8)


def slider_figure(
    groups: Sequence[Sequence[go.BaseTraceType]],
    labels: Sequence[str],
    title: str | None = None,
    prefix: str = "",
    active: int = 0,
    camera: dict = CAMERA_VIEW,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> go.Figure:
    """One figure showing one group of traces at a time, chosen with a slider (precomputed
    frames, e.g. a pose or shape parameter). Works in exported HTML without a kernel.

    Args:
        groups: ``G`` lists of traces.
        labels: ``G`` slider labels.
        prefix: text before the current label (e.g. ``"curl = "``).
        active: the group shown first.
        camera: plotly scene camera (default: the photo's camera; :data:`MODEL_VIEW` for a model
            in its own frame).
    """
    if len(groups) == 0 or len(groups) != len(labels):
        raise ValueError(f"need one label per group and at least one group, got {len(groups)} groups "
                         f"and {len(labels)} labels")
    if not 0 <= active < len(groups):
        raise ValueError(f"active must be in 0..{len(groups) - 1}, got {active}")
    traces = [trace for group in groups for trace in group]
    owner = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
    fig = scene_figure(traces, title, width, height)
    for trace, g in zip(fig.data, owner):
        trace.visible = bool(g == active)
    # Fixed axis ranges over all groups, so that the view does not jump between steps.
    points = np.stack([np.concatenate([np.asarray([v for v in getattr(t, axis) if v is not None], dtype=float)
                                       for t in traces if getattr(t, axis) is not None]) for axis in "xyz"], -1)
    steps = [dict(label=label, method="update", args=[{"visible": (owner == g).tolist()}])
             for g, label in enumerate(labels)]
    fig.update_layout(
        # x and len leave room for the end labels, centred on the slider's ends.
        sliders=[dict(active=active, steps=steps, currentvalue=dict(prefix=prefix), pad=dict(t=10, b=10),
                      x=0.05, len=0.9)],
        scene=fixed_scene(points, camera),
        scene_uirevision="slider",
        margin=dict(b=60),
    )
    return fig


def scene_traces(item: "MeshedImage", opacity: float = 0.55) -> list:
    """Plotly traces of one photo's hands in the camera frame: each fitted mesh (see-through,
    coloured by side) with the predicted 3D keypoints placed on it (:func:`handpose.alignment.placed_keypoints`)."""
    traces = []
    for k, (hand, fit) in enumerate(zip(item.hands, item.fits)):
        label = f"{hand.handedness} {k}"
        color = "rgb({},{},{})".format(*SIDE_COLORS.get(hand.handedness, SIDE_COLORS["right"]))
        mesh = mesh_trace(fit.vertices[0], fit.faces, name=f"{label} mesh", color=color, opacity=opacity)
        traces.append(mesh.update(lighting=SOFT_LIGHT))
        traces += skeleton_traces(placed_keypoints(hand, fit), name=f"{label} keypoints")
    return traces


def fixed_scene(points: np.ndarray, camera: dict = CAMERA_VIEW, pad: float = 0.05) -> dict:
    """Scene layout with axis ranges fixed around ``points (N, 3)`` mm (each span padded by ``pad``
    of itself on both sides) and equal scales, so that the view does not follow the data when the
    traces change (slider steps, a widget's updates)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    low, high = np.nanmin(points, 0), np.nanmax(points, 0)
    margin = pad * (high - low)
    spans = (high - low) + 2 * margin
    return dict(aspectmode="manual", aspectratio=dict(zip("xyz", (spans / spans.max()).tolist())), camera=camera,
                **{f"{axis}axis": dict(range=[float(lo - m), float(hi + m)])
                   for axis, lo, hi, m in zip("xyz", low, high, margin)})


def colored_mesh_trace(vertices: np.ndarray, faces: np.ndarray, vertex_colors: np.ndarray, name: str = "mesh",
                       opacity: float = 1.0) -> go.Mesh3d:
    """:func:`mesh_trace` with one colour per vertex, ``vertex_colors (V, 3)`` uint8 RGB, interpolated
    over the triangles."""
    vertex_colors = np.asarray(vertex_colors)
    if vertex_colors.shape != (len(vertices), 3):
        raise ValueError(f"vertex_colors must be ({len(vertices)}, 3), got {vertex_colors.shape}")
    trace = mesh_trace(vertices, faces, name=name, opacity=opacity)
    trace.update(color=None, vertexcolor=[f"rgb({r},{g},{b})" for r, g, b in vertex_colors.astype(int)])
    return trace
