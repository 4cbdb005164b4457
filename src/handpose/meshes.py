"""Meshes for detected hands: fit a hand model to the predictions of many photos in one batch
(:func:`handpose.fitting.fit_images`), overlay the meshes on the photos, compare models side by
side, and score predictions with the slides' training losses.

The step after :func:`handpose.pipeline.predict_folder`::

    results = pipeline.predict_folder("data/demo")
    meshed = mesh_images(results, "open", known_intrinsics("data/demo/gt.json"))
    meshed[0].overlay()                 # (H, W, 3) uint8 photo with the shaded meshes
    inference_figure(meshed[0].image, meshed[0].K, {"mediapipe": meshed[0]})

Fits are batched over all hands of all photos (per side), which is several times faster on a CPU
than photo by photo: each hand's parameters and loss are independent
(:func:`handpose.fitting.fit_hand`), so a batched fit equals the hands fitted one by one.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from handpose import io, losses
from handpose.alignment import placed_keypoints
from handpose.camera import project
from handpose.camera import default_intrinsics
from handpose.fitting import FitResult, fit_images
from handpose.handmodel import HandModel
from handpose.keypoints import BONE_COLORS, BONES, NUM_KEYPOINTS
from handpose.metrics import square_box
from handpose.prediction import HandPrediction

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from handpose.pipeline import ImageResult

#: Mesh colour (RGB 0-255) of each handedness in overlays.
SIDE_COLORS: dict[str, tuple[int, int, int]] = {"right": (80, 150, 255), "left": (110, 215, 110)}


# ---------------------------------------------------------------------------------------------
# Which model, which camera
# ---------------------------------------------------------------------------------------------
def mesh_model_kind(weights_dir: str | os.PathLike | None = None) -> str:
    """``"mano"`` when ``MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl`` are in the weights folder
    (:func:`handpose.paths.find_weights_dir`), else ``"open"`` (the open hand, always there)."""
    from handpose.paths import MANO_FILES as FILENAMES
    from handpose.paths import find_weights_dir

    folder = find_weights_dir(weights_dir)
    return "mano" if all((folder / name).is_file() for name in FILENAMES.values()) else "open"


def known_intrinsics(gt_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Intrinsics ``K (3, 3)`` per image name from a ground-truth file (``gt.json`` with a ``K`` per
    hand, as the demo set's); ``{}`` when the file does not exist. Images without a ``K`` are left out.

    Raises:
        ValueError: a ``K`` that is not a finite 3 x 3 matrix with positive focal lengths.
    """
    path = Path(gt_path)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    out = {}
    for entry in data.get("images", []):
        for hand in entry.get("hands", []):
            if hand.get("K") is None:
                continue
            K = np.asarray(hand["K"], dtype=np.float64)
            if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
                raise ValueError(f"{path}: {entry['image']}: K must be a finite 3 x 3 matrix, got {K.tolist()}")
            out[entry["image"]] = K
            break
    return out


def photo_intrinsics(path: str | os.PathLike, width: int, height: int) -> np.ndarray:
    """``K (3, 3)`` for a photo loaded at ``width x height``: from the 35 mm-equivalent focal length
    in its EXIF (:func:`handpose.io.exif_focal_35mm`, written by phones) when there is one, else
    :func:`handpose.camera.default_intrinsics`' guess."""
    return default_intrinsics(width, height, focal_35mm=io.exif_focal_35mm(path))


@dataclass
class MeshedImage:
    """One photo with its predicted hands and their fitted meshes.

    Attributes:
        path: the photo.
        image: ``(H, W, 3)`` uint8 RGB, as loaded by :func:`handpose.io.load_image`.
        K: ``(3, 3)`` intrinsics used for the fits.
        hands: the predictions.
        fits: one :class:`~handpose.fitting.FitResult` (``B = 1``) per hand, camera frame, mm.
    """

    path: Path
    image: np.ndarray
    K: np.ndarray
    hands: list[HandPrediction]
    fits: list[FitResult]

    @property
    def name(self) -> str:
        return self.path.name

    def overlay(self, alpha: float = 0.8) -> np.ndarray:
        """``(H, W, 3)`` uint8: the photo with every fitted mesh shaded over it (see :func:`mesh_overlay`)."""
        return mesh_overlay(self.image, self.fits, self.K, alpha=alpha)


def mesh_images(
    results: Sequence["ImageResult"],
    model_or_kind: str | HandModel | Mapping[str, HandModel] = "open",
    intrinsics: Mapping[str, np.ndarray] | None = None,
    **fit_options,
) -> list[MeshedImage]:
    """Fit meshes to the hands of :func:`handpose.pipeline.predict_folder` results (photos that
    failed are skipped).

    Args:
        results: the pipeline's results.
        model_or_kind: see :func:`handpose.fitting.fit_images`.
        intrinsics: ``K`` per photo file name (e.g. :func:`known_intrinsics`); photos not in it
            get :func:`photo_intrinsics` (their EXIF focal length, else a default).
        **fit_options: passed to :func:`handpose.fitting.fit_images` (``threads``) and
            :func:`handpose.fitting.fit_hand`.
    """
    intrinsics = intrinsics or {}
    done = [r for r in results if r.error is None]
    images = [io.load_image(r.image) for r in done]
    Ks = []
    for r, image in zip(done, images):
        height, width = image.shape[:2]
        K = intrinsics.get(r.image.name)
        if K is not None and r.width is not None and (r.width, r.height) != (width, height):
            raise ValueError(f"{r.image.name}: K is for {r.width} x {r.height} but the photo loads as {width} x {height}")
        Ks.append(photo_intrinsics(r.image, width, height) if K is None else np.asarray(K, dtype=np.float64))
    fits = fit_images(model_or_kind, [r.hands for r in done], Ks, **fit_options)
    return [MeshedImage(r.image, image, K, list(r.hands), f) for r, image, K, f in zip(done, images, Ks, fits)]


# ---------------------------------------------------------------------------------------------
# Overlays and placement
# ---------------------------------------------------------------------------------------------
def write_meshes(meshed: Sequence[MeshedImage], out_dir: str | os.PathLike, names: Sequence[str]) -> list[Path]:
    """Write each photo's fitted meshes: ``out_dir/<name>`` (PNG, the meshes over the photo) and per
    hand ``out_dir/<stem>_hand<i>_<side>.obj`` (camera frame, mm), all atomically.

    Args:
        meshed: from :func:`mesh_images`.
        out_dir: the folder (created if needed).
        names: one ``<stem>.png`` per photo (e.g. :func:`handpose.pipeline.output_names`).
    Returns:
        The paths written, in order.
    """
    from handpose.render import export_obj

    if len(names) != len(meshed):
        raise ValueError(f"got {len(meshed)} photos but {len(names)} names")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for item, name in zip(meshed, names):
        written.append(io.save_png_atomic(out / name, item.overlay()))
        stem = Path(name).stem
        for i, fit in enumerate(item.fits, start=1):
            written.append(export_obj(out / f"{stem}_hand{i}_{fit.side}.obj", fit.vertices[0], fit.faces))
    return written


def mesh_overlay(image: np.ndarray, fits: Sequence[FitResult], K: np.ndarray, alpha: float = 0.8) -> np.ndarray:
    """``(H, W, 3)`` uint8: the fitted meshes (camera frame) drawn over the photo with one z-buffer,
    coloured by handedness (:data:`SIDE_COLORS`)."""
    if not fits:
        return np.asarray(image).copy()
    vertices = [v for fit in fits for v in fit.vertices]
    colors = [SIDE_COLORS.get(fit.side, SIDE_COLORS["right"]) for fit in fits for _ in fit.vertices]
    from handpose.render import overlay

    return overlay(image, vertices, [fit.faces for fit in fits for _ in fit.vertices], K, colors=colors,
                   alpha=alpha)[0]


def hands_box(hands: Sequence[HandPrediction], width: int, height: int, margin: float = 0.3,
              min_side: float = 96.0) -> tuple[float, float, float, float]:
    """:func:`handpose.metrics.square_box` around all hands' 2D keypoints (the whole photo without hands)."""
    points = np.concatenate([h.keypoints_2d for h in hands]) if hands else np.empty((0, 2))
    return square_box(points, width, height, margin, min_side)


def scene_traces(item: MeshedImage, opacity: float = 0.55) -> list:
    """Plotly traces of one photo's hands in the camera frame: each fitted mesh (see-through,
    coloured by side) with the predicted 3D keypoints placed on it (:func:`placed_keypoints`)."""
    from handpose.plot3d import SOFT_LIGHT, mesh_trace, skeleton_traces

    traces = []
    for k, (hand, fit) in enumerate(zip(item.hands, item.fits)):
        label = f"{hand.handedness} {k}"
        color = "rgb({},{},{})".format(*SIDE_COLORS.get(hand.handedness, SIDE_COLORS["right"]))
        mesh = mesh_trace(fit.vertices[0], fit.faces, name=f"{label} mesh", color=color, opacity=opacity)
        traces.append(mesh.update(lighting=SOFT_LIGHT))
        traces += skeleton_traces(placed_keypoints(hand, fit), name=f"{label} keypoints")
    return traces


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib, for the static report)
# ---------------------------------------------------------------------------------------------
def draw_skeleton_3d(ax: "Axes", keypoints_3d: np.ndarray, linewidth: float = 2.0, marker_size: float = 8.0) -> None:
    """Draw one hand's bones and joints ``(21, 3)`` (camera frame, mm) on a matplotlib 3D axis.

    Plotted as ``(x, z, -y)``: x to the right, depth into the page, up as in the photo.
    """
    points = np.asarray(keypoints_3d, dtype=np.float64)
    if points.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints_3d must be (21, 3), got {points.shape}")
    x, y, z = points[:, 0], points[:, 2], -points[:, 1]
    for (parent, child), color in zip(BONES, BONE_COLORS):
        ax.plot([x[parent], x[child]], [y[parent], y[child]], [z[parent], z[child]],
                color=np.array(color) / 255, linewidth=linewidth)
    ax.scatter(x, y, z, s=marker_size, c="k", depthshade=False)


def _set_equal_3d(ax: "Axes", points: np.ndarray) -> None:
    """Equal scales on all three axes around ``points (N, 3)`` (already in plot coordinates)."""
    centre = (points.min(0) + points.max(0)) / 2
    half = max(float((points.max(0) - points.min(0)).max()) / 2, 1.0) * 1.05
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1))


def inference_figure(image: np.ndarray, K: np.ndarray, models: Mapping[str, MeshedImage | tuple],
                     title: str | None = None, crop: bool = True, row_inches: float = 3.2) -> "Figure":
    """One row per model: 2D keypoints on the photo | 3D keypoints | fitted mesh on the photo.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        K: ``(3, 3)`` intrinsics of the fits.
        models: model name -> :class:`MeshedImage` or ``(hands, fits)`` for this photo.
        title: figure title.
        crop: zoom the photo panels on the hands (:func:`hands_box` of all models' hands).
        row_inches: height of one row.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from handpose.viz import draw_hands

    if not models:
        raise ValueError("models must name at least one model")
    rows = {name: (m.hands, m.fits) if isinstance(m, MeshedImage) else tuple(m) for name, m in models.items()}
    for name, (hands, fits) in rows.items():
        if len(hands) != len(fits):
            raise ValueError(f"{name}: {len(hands)} hands but {len(fits)} fits")
    height, width = image.shape[:2]
    box = hands_box([h for hands, _ in rows.values() for h in hands], width, height) if crop else (0, 0, width, height)
    fig = plt.figure(figsize=(3 * row_inches * 1.05, row_inches * len(rows)))
    for r, (name, (hands, fits)) in enumerate(rows.items()):
        ax2d = fig.add_subplot(len(rows), 3, 3 * r + 1)
        ax3d = fig.add_subplot(len(rows), 3, 3 * r + 2, projection="3d")
        axm = fig.add_subplot(len(rows), 3, 3 * r + 3)
        ax2d.imshow(draw_hands(image, hands))
        axm.imshow(mesh_overlay(image, fits, K))
        for ax in (ax2d, axm):
            ax.set_xlim(box[0] - 0.5, box[2] - 0.5)
            ax.set_ylim(box[3] - 0.5, box[1] - 0.5)
            ax.axis("off")
        placed = [placed_keypoints(h, f) for h, f in zip(hands, fits)]
        for points in placed:
            draw_skeleton_3d(ax3d, points)
        if placed:
            stacked = np.concatenate(placed)
            _set_equal_3d(ax3d, np.stack([stacked[:, 0], stacked[:, 2], -stacked[:, 1]], -1))
        ax3d.view_init(elev=15, azim=-75)
        ax3d.tick_params(labelsize=6, pad=0)
        # Few ticks: seen almost end-on, the depth axis is short and its numbers would overlap.
        for axis, bins in ((ax3d.xaxis, 4), (ax3d.yaxis, 2), (ax3d.zaxis, 4)):
            axis.set_major_locator(MaxNLocator(bins))
        ax3d.set_xlabel("x (mm)", fontsize=7, labelpad=-4)
        ax3d.set_ylabel("z (mm)", fontsize=7, labelpad=-4)
        ax3d.set_zlabel("-y (mm)", fontsize=7, labelpad=-4)
        residual = np.nanmean([np.nanmean(f.residual_2d_px) for f in fits]) if fits else np.nan
        ax2d.set_title(f"{name}: 2D keypoints ({len(hands)} hand{'s' * (len(hands) != 1)})", fontsize=9)
        ax3d.set_title(f"{name}: 3D keypoints", fontsize=9)
        axm.set_title(f"{name}: fitted mesh" + (f" ({residual:.1f} px)" if fits else " (no hand)"), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# The slides' losses on real predictions
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictionLosses:
    """The training losses of :mod:`handpose.losses` evaluated on one predicted hand and its fit.

    Attributes:
        bone_length: :func:`~handpose.losses.bone_length_loss` of the predicted 3D keypoints against
            the hand model's rest proportions (bone / wrist-to-middle-MCP length, squared, summed).
        joint_l2_mm2: :func:`~handpose.losses.joint_l2` between the fitted model's keypoints and
            the predicted 3D keypoints placed on them (:func:`placed_keypoints`), mm^2.
        reprojection_l1_px: :func:`~handpose.losses.reprojection_l1` between the fitted keypoints
            projected with ``K`` and the predicted 2D keypoints, pixels.
        regulariser: :func:`~handpose.losses.pose_shape_regulariser` of the fitted pose and shape.
        edge_length_mm: :func:`~handpose.losses.edge_length_loss` of the fitted mesh against the
            model's unposed mesh of the same shape (how much the skinning stretches edges), mm.
    """

    bone_length: float
    joint_l2_mm2: float
    reprojection_l1_px: float
    regulariser: float
    edge_length_mm: float


def prediction_losses(hand: HandPrediction, fit: FitResult, K: np.ndarray, model: HandModel) -> PredictionLosses:
    """Score one predicted hand and its fit (``B = 1``) with the slides' losses (see
    :class:`PredictionLosses`); ``model`` is the hand model of the fit (same side)."""
    if len(fit) != 1:
        raise ValueError(f"fit must hold one hand, got {len(fit)}")
    if model.side != hand.handedness:
        raise ValueError(f"the model is a {model.side} hand but the prediction is a {hand.handedness} hand")
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        rest = model(shape=t(fit.shape) if model.num_shape else None)  # the model casts inputs
        rest_kp = model().keypoints[0].double()
    # bone_length_loss works on (B, 2, 21, 3) hand pairs: the hand in slot 0, slot 1 masked out.
    pair = lambda x: torch.stack([x, torch.zeros_like(x)])[None]  # noqa: E731
    visible = torch.tensor([[[1.0] * NUM_KEYPOINTS, [0.0] * NUM_KEYPOINTS]], dtype=torch.float64)
    bone = losses.bone_length_loss(pair(rest_kp), pair(t(hand.keypoints_3d)), visible)
    fitted = t(fit.keypoints)
    joint = losses.joint_l2(fitted, t(placed_keypoints(hand, fit))[None])
    reproj = losses.reprojection_l1(t(project(fit.keypoints, np.asarray(K, dtype=np.float64))), t(hand.keypoints_2d)[None])
    reg = losses.pose_shape_regulariser(t(fit.pose), t(fit.shape))
    edges = losses.edge_length_loss(t(fit.vertices), rest.vertices.double(), torch.as_tensor(fit.faces))
    return PredictionLosses(float(bone), float(joint), float(reproj), float(reg), float(edges))


# ---------------------------------------------------------------------------------------------
# Posing a model (numpy in, numpy out)
# ---------------------------------------------------------------------------------------------
@dataclass
class PosedHand:
    """Output of :func:`pose_model`.

    Attributes:
        vertices: ``(N, V, 3)`` mm.
        keypoints: ``(N, 21, 3)`` mm, course order.
        joints: ``(N, K, 3)`` mm, the model's own skeleton joints (open hand: the 20 bone heads).
        faces: ``(F, 3)``.
    """

    vertices: np.ndarray
    keypoints: np.ndarray
    joints: np.ndarray
    faces: np.ndarray


def pose_model(model: HandModel, pose: np.ndarray | None = None, shape: np.ndarray | None = None,
               global_orient: np.ndarray | None = None) -> PosedHand:
    """Evaluate ``model`` on ``N`` poses / shapes given as numpy arrays (torch stays inside).

    Args:
        pose: ``(N, num_pose)`` or ``(num_pose,)``; ``None``: rest pose.
        shape: ``(N, num_shape)`` or ``(num_shape,)``; ``None``: mean shape.
        global_orient: ``(N, 3)`` or ``(3,)`` axis-angle; ``None``: identity.
    """
    given = {"pose": pose, "shape": shape, "global_orient": global_orient}
    widths = {"pose": model.num_pose, "shape": model.num_shape, "global_orient": 3}
    tensors = {}
    for name, value in given.items():
        if value is None:
            continue
        value = np.asarray(value, dtype=np.float64)
        value = value[None] if value.ndim == 1 else value
        if value.ndim != 2 or value.shape[1] != widths[name]:
            raise ValueError(f"{name} must be (N, {widths[name]}) or ({widths[name]},), got {value.shape}")
        tensors[name] = torch.as_tensor(value)  # the model casts inputs to its dtype
    sizes = {len(v) for v in tensors.values()}
    if len(sizes) > 1:
        # broadcast single rows to the common batch
        n = max(sizes)
        if any(len(v) not in (1, n) for v in tensors.values()):
            raise ValueError(f"inputs disagree on N: {sorted(sizes)}")
        tensors = {k: v.expand(n, -1) for k, v in tensors.items()}
    with torch.no_grad():
        out = model(**tensors)
    joints = out.joints if out.joints is not None else out.keypoints
    return PosedHand(out.vertices.double().numpy(), out.keypoints.double().numpy(), joints.double().numpy(),
                     model.faces.numpy().copy())


def skinning_weights(model: HandModel) -> np.ndarray:
    """``(V, K)`` linear blend skinning weights ``W`` of a hand model (rows sum to 1): the open
    hand's per-bone weights, or MANO's ``lbs_weights``."""
    weights = getattr(model, "weights", None)
    if not torch.is_tensor(weights):
        weights = getattr(getattr(model, "layer", None), "lbs_weights", None)
    if not torch.is_tensor(weights):
        raise ValueError(f"{type(model).__name__} exposes no skinning weights")
    return weights.detach().double().numpy().copy()


__all__ = [
    "MeshedImage",
    "PosedHand",
    "PredictionLosses",
    "SIDE_COLORS",
    "draw_skeleton_3d",
    "hands_box",
    "inference_figure",
    "known_intrinsics",
    "mesh_images",
    "mesh_model_kind",
    "mesh_overlay",
    "pose_model",
    "scene_traces",
    "prediction_losses",
    "skinning_weights",
]
