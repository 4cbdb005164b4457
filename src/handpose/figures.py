"""The matplotlib figures the notebooks draw: layout grids, the inference rows (2D keypoints | 3D
keypoints | fitted mesh), the failure gallery and breakdown of notebook 05, the robustness sweeps.

Figure builders take plain arrays and the dataclasses of the analysis modules
(:mod:`handpose.signals` rows, :class:`handpose.sweeps.SweepResult`) and return a
``matplotlib.figure.Figure``; the analysis modules compute and never draw. matplotlib is imported
when a figure is built.
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from handpose.alignment import placed_keypoints
from handpose.keypoints import BONE_COLORS, BONES, NUM_KEYPOINTS
from handpose.metrics import square_box
from handpose.prediction import HandPrediction
from handpose.render import mesh_overlay
from handpose.signals import breakdown, worst_rows
from handpose.sweeps import KINDS, SweepResult
from handpose.viz import draw_hands, draw_keypoints

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------
def axes_grid(count: int, ncols: int, cell_inches: tuple[float, float], **subplots_kw: Any
              ) -> tuple["Figure", list["Axes"]]:
    """A figure with ``count`` axes in rows of at most ``ncols`` (row-major), the unused cells of the
    last row hidden. ``cell_inches`` is one cell's ``(width, height)``; ``subplots_kw`` goes to
    ``plt.subplots`` (e.g. ``sharey=True``)."""
    import matplotlib.pyplot as plt

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    ncols = min(ncols, count)
    nrows = -(-count // ncols)
    width, height = cell_inches
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **subplots_kw)
    for ax in axes.ravel()[count:]:
        ax.axis("off")
    return fig, list(axes.ravel()[:count])


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, ncols: int = 4,
               cell_inches: float = 3.0) -> "Figure":
    """A matplotlib figure showing ``images`` (each ``(H, W, 3)`` uint8) in a grid, axes off.

    Args:
        images: the images, row-major.
        titles: optional one title per image.
        ncols: columns (fewer when there are fewer images).
        cell_inches: width of one cell in inches.
    """
    if len(images) == 0:
        raise ValueError("image_grid needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(images)} images but {len(titles)} titles")
    fig, axes = axes_grid(len(images), ncols, (cell_inches, cell_inches))
    for i, (ax, image) in enumerate(zip(axes, images)):
        ax.axis("off")
        ax.imshow(image)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Inference: 2D keypoints | 3D keypoints | fitted mesh (notebook 03)
# ---------------------------------------------------------------------------------------------
def hands_box(hands: Sequence[HandPrediction], width: int, height: int, margin: float = 0.3,
              min_side: float = 96.0) -> tuple[float, float, float, float]:
    """:func:`handpose.metrics.square_box` around all hands' 2D keypoints (the whole photo without hands)."""
    points = np.concatenate([h.keypoints_2d for h in hands]) if hands else np.empty((0, 2))
    return square_box(points, width, height, margin, min_side)


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


def inference_figure(image: np.ndarray, K: np.ndarray, models: Mapping[str, Any],
                     title: str | None = None, crop: bool = True, row_inches: float = 3.2) -> "Figure":
    """One row per model: 2D keypoints on the photo | 3D keypoints | fitted mesh on the photo.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        K: ``(3, 3)`` intrinsics of the fits.
        models: model name -> a :class:`handpose.pipeline.MeshedImage` (anything with ``hands`` and
            ``fits``) or ``(hands, fits)`` for this photo.
        title: figure title.
        crop: zoom the photo panels on the hands (:func:`hands_box` of all models' hands).
        row_inches: height of one row.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not models:
        raise ValueError("models must name at least one model")
    rows = {name: (m.hands, m.fits) if hasattr(m, "fits") else tuple(m) for name, m in models.items()}
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
# Failure analysis (notebook 05)
# ---------------------------------------------------------------------------------------------
def failure_gallery(images: Mapping[str, np.ndarray], hands: Mapping[str, Sequence[HandPrediction]],
                    rows: Sequence[Mapping[str, Any]], gt_keypoints: Mapping[str, np.ndarray] | None = None,
                    captions: Mapping[str, str] | None = None, n: int = 6, key: str = "error",
                    ncols: int = 3) -> "Figure":
    """The worst ``n`` rows (:func:`worst_rows`) as crops around the hand: the ground truth in white
    under the prediction in finger colours, titled with the photo, the predicted side and score,
    ``key`` (and PCK) and the photo's caption (e.g. its metadata tags)."""
    picked = worst_rows(rows, n, key)
    if not picked:
        raise ValueError("no rows to show")
    crops, titles = [], []
    for row in picked:
        name = row["image"]
        image = images[name]
        predicted = list(hands.get(name, []))
        gt = None if gt_keypoints is None or row.get("gt", -1) < 0 else np.asarray(gt_keypoints[name])[row["gt"]]
        focus = [predicted[row["hand"]].keypoints_2d] if row["hand"] >= 0 else []
        if gt is not None:
            focus.append(gt)
        overlay = image if gt is None else draw_keypoints(image, gt, color=(255, 255, 255), bones=True)
        overlay = draw_hands(overlay, predicted, label=False)
        crops.append(_crop_around(overlay, np.concatenate(focus)) if focus else overlay)
        if not row["detected"]:
            what = "missed"
        elif np.isfinite(row.get(key, np.nan)):
            what = f"{row['handedness']} {row['score']:.2f}: {key} {row[key]:.2f}"
            what += f", PCK {row['pck']:.2f}" if key != "pck" and np.isfinite(row.get("pck", np.nan)) else ""
        else:
            what = f"{row['handedness']} {row['score']:.2f}: no GT match"
        caption = textwrap.fill((captions or {}).get(name, ""), width=40, break_on_hyphens=False)
        titles.append("\n".join(filter(None, [name, what, caption])))
    return image_grid(crops, titles, ncols=ncols)


def _crop_around(image: np.ndarray, points: np.ndarray, margin: float = 0.35, min_side: int = 64) -> np.ndarray:
    """The pixels of :func:`handpose.metrics.square_box` around the finite ``points``."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = square_box(points, w, h, margin, min_side)
    x1, y1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
    x2, y2 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
    return image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]


def plot_breakdown(rows: Sequence[Mapping[str, Any]], metadata: Mapping[str, Mapping[str, str]],
                   columns: Sequence[str], ncols: int = 3) -> "Figure":
    """One bar chart per metadata column (``ncols`` per row): mean PCK (bars) and detection recall
    (dots) per value, labelled ``value (number of GT hands)``."""
    if not columns:
        raise ValueError("columns must not be empty")
    fig, axes = axes_grid(len(columns), max(1, ncols), (3.4, 3.0), sharey=True)
    for ax, column in zip(axes, columns):
        table = breakdown(rows, metadata, column)
        x = np.arange(len(table))
        ax.bar(x, [t["pck"] for t in table], color="tab:blue", alpha=0.8, label="PCK@0.2")
        ax.plot(x, [t["recall"] for t in table], "o", color="tab:orange", label="recall")
        ax.set_xticks(x, [f"{t['value']} ({t['n']})" for t in table], fontsize=8, rotation=35, ha="right")
        ax.set_title(column, fontsize=10)
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8,
               bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------
# Robustness sweeps (notebook 05)
# ---------------------------------------------------------------------------------------------
def plot_sweep(results: SweepResult | Sequence[SweepResult]) -> "Figure":
    """Detection recall, PCK and mean error / box against the perturbation strength.

    Several results of the same kind (e.g. two models) are drawn as separate curves.
    """
    import matplotlib.pyplot as plt

    results = [results] if isinstance(results, SweepResult) else list(results)
    if not results:
        raise ValueError("plot_sweep needs at least one SweepResult")
    if len({r.kind for r in results}) != 1:
        raise ValueError(f"all results must share one kind, got {sorted({r.kind for r in results})}")
    kind = KINDS.get(results[0].kind)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    panels = (("recall", "detection recall", (0, 1.05)), ("pck", f"PCK@{results[0].alpha:g}", (0, 1.05)),
              ("error", "mean error / box side (found hands)", None))
    for ax, (column, title, ylim) in zip(axes, panels):
        for result in results:
            ax.plot(result.column("level"), result.column(column), marker="o", label=result.label or None)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(results[0].axis, fontsize=9)
        if kind is not None and kind.log:
            ax.set_xscale("log")
            levels = results[0].column("level")
            ax.set_xticks(levels, [f"{v:g}" for v in levels])
            ax.minorticks_off()
        ax.set_ylim(*(ylim if ylim is not None else (0, None)))
        ax.grid(alpha=0.3)
    if any(r.label for r in results):
        axes[0].legend(fontsize=8)
    first = results[0].rows[0] if results[0].rows else None
    counts = f" ({first.n_images} photos, {first.n_gt} hands)" if first is not None else ""
    fig.suptitle(f"robustness: {results[0].kind}{counts}", fontsize=11)
    fig.tight_layout()
    return fig


def plot_sweep_overview(results: Sequence[SweepResult], ncols: int = 4) -> "Figure":
    """All kinds in one figure: one panel per kind with detection recall (solid) and PCK (dashed)
    against the strength, one colour per curve label (e.g. per model)."""
    kinds = list(dict.fromkeys(r.kind for r in results))
    if not kinds:
        raise ValueError("plot_sweep_overview needs at least one SweepResult")
    labels = list(dict.fromkeys(r.label for r in results))
    colors = {label: f"C{i}" for i, label in enumerate(labels)}
    fig, axes = axes_grid(len(kinds), max(1, ncols), (3.2, 2.7), sharey=True)
    for ax, kind in zip(axes, kinds):
        for result in (r for r in results if r.kind == kind):
            levels = result.column("level")
            name = f"{result.label} " if len(labels) > 1 else ""
            ax.plot(levels, result.column("recall"), "o-", color=colors[result.label], label=f"{name}recall")
            ax.plot(levels, result.column("pck"), "s--", color=colors[result.label], alpha=0.7,
                    label=f"{name}PCK@{result.alpha:g}")
        if kind in KINDS and KINDS[kind].log:
            ax.set_xscale("log")
            ax.set_xticks(levels, [f"{v:g}" for v in levels])
            ax.minorticks_off()
        ax.set_title(kind, fontsize=10)
        ax.set_xlabel(next(r.axis for r in results if r.kind == kind), fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2 * len(labels), fontsize=8,
               bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig


__all__ = [
    "axes_grid",
    "draw_skeleton_3d",
    "failure_gallery",
    "hands_box",
    "image_grid",
    "inference_figure",
    "plot_breakdown",
    "plot_sweep",
    "plot_sweep_overview",
]
