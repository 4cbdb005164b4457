"""handpose.figures: the matplotlib figures of the notebooks (layout, inference rows, failure
gallery and breakdown, robustness sweeps)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from _fits import K, exact_fit, exact_hand  # noqa: E402
from _synthetic import HAND, blob_image, blob_predictor  # noqa: E402
from handpose.figures import (  # noqa: E402
    axes_grid,
    draw_skeleton_3d,
    failure_gallery,
    hands_box,
    image_grid,
    inference_figure,
    plot_breakdown,
    plot_sweep,
    plot_sweep_overview,
)
from handpose.pipeline import MeshedImage  # noqa: E402
from handpose.prediction import HandPrediction  # noqa: E402
from handpose.signals import analyse_image  # noqa: E402
from handpose.sweeps import SweepResult, robustness_sweep  # noqa: E402



# -- layout -------------------------------------------------------------------------------------
def test_image_grid_layout_and_titles():
    images = [np.zeros((10, 20, 3), np.uint8)] * 5
    fig = image_grid(images, [f"t{i}" for i in range(5)], ncols=2)
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:5]] == [f"t{i}" for i in range(5)]
    with pytest.raises(ValueError, match="titles"):
        image_grid(images, ["a"])
    with pytest.raises(ValueError):
        image_grid([])


def test_axes_grid_hides_the_unused_cells_of_the_last_row():
    fig, axes = axes_grid(5, 3, (2.0, 1.5), sharey=True)
    assert len(axes) == 5 and len(fig.axes) == 6
    assert [ax.axison for ax in fig.axes] == [True] * 5 + [False]
    assert tuple(fig.get_size_inches()) == (6.0, 3.0)
    plt.close(fig)
    with pytest.raises(ValueError, match="count"):
        axes_grid(0, 3, (1.0, 1.0))


# -- inference rows (notebook 03) ------------------------------------------------------------
def test_hands_box_is_a_square_around_the_hands_inside_the_photo():
    points = np.c_[np.linspace(100, 200, 21), np.linspace(50, 90, 21)]
    hand = HandPrediction(points, np.zeros((21, 3)), "right", 1.0)
    x1, y1, x2, y2 = hands_box([hand], 640, 480, margin=0.25)
    assert x2 - x1 == pytest.approx(y2 - y1) == pytest.approx(150.0)  # 100 px * (1 + 2 * 0.25)
    assert (x1 + x2) / 2 == pytest.approx(150.0)
    assert y1 == 0.0  # shifted down into the photo, not shrunk
    assert hands_box([], 640, 480) == (0.0, 0.0, 640.0, 480.0)


def test_inference_figure_rows_and_validation(open_hands):
    hand, pose, points = exact_hand(open_hands["right"], 4)
    fit = exact_fit(open_hands["right"], pose, points[0])
    image = np.full((480, 640, 3), 90, np.uint8)
    item = MeshedImage(Path("x.png"), image, K, [hand], [fit])
    fig = inference_figure(image, K, {"a": item, "b": ([hand], [fit])}, title="x")
    assert len(fig.axes) == 6 and fig.axes[1].name == "3d"
    assert fig.axes[0].get_title().startswith("a: 2D keypoints")
    plt.close(fig)
    with pytest.raises(ValueError, match="1 hands but 0 fits"):
        inference_figure(image, K, {"a": ([hand], [])})
    with pytest.raises(ValueError, match="at least one"):
        inference_figure(image, K, {})
    fig, ax = plt.subplots(subplot_kw={"projection": "3d"})
    draw_skeleton_3d(ax, points)
    assert len(ax.lines) == 20
    with pytest.raises(ValueError, match=r"\(21, 3\)"):
        draw_skeleton_3d(ax, points[:20])
    plt.close(fig)


# -- failure analysis and sweeps (notebook 05) ----------------------------------------------
def test_gallery_and_breakdown_figures() -> None:
    image = blob_image(HAND)
    hands = blob_predictor(image)
    rows = analyse_image("a.png", image, hands, blob_predictor, HAND[None] + 3.0)
    fig = failure_gallery({"a.png": image}, {"a.png": hands}, rows, {"a.png": HAND[None] + 3.0},
                          {"a.png": "view=palm"}, n=4)
    assert len([ax for ax in fig.axes if ax.images]) == 1
    assert "view=palm" in fig.axes[0].get_title()
    fig = plot_breakdown(rows, {"a.png": {"view": "palm", "lighting": "dim"}}, ["view", "lighting", "hands", "x"],
                         ncols=3)
    assert len(fig.axes) == 6 and len([ax for ax in fig.axes if ax.patches]) == 4


def test_plot_sweep_draws_one_curve_per_result() -> None:
    a = robustness_sweep([blob_image(HAND)], [HAND[None]], blob_predictor, "blur", (0, 1), label="a")
    b = SweepResult("blur", a.axis, "b", a.rows)
    fig = plot_sweep([a, b])
    assert len(fig.axes) == 3 and all(len(ax.lines) == 2 for ax in fig.axes)
    with pytest.raises(ValueError, match="share one kind"):
        plot_sweep([a, SweepResult("jpeg", "q", "c", a.rows)])


def test_sweep_overview_has_one_panel_per_kind() -> None:
    a = robustness_sweep([blob_image(HAND)], [HAND[None]], blob_predictor, "blur", (0, 1), label="a")
    b = robustness_sweep([blob_image(HAND)], [HAND[None]], blob_predictor, "jpeg", (95, 50), label="a")
    fig = plot_sweep_overview([a, b, SweepResult("blur", a.axis, "b", a.rows)], ncols=4)
    panels = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_title() for ax in panels] == ["blur", "jpeg"]
    assert len(panels[0].lines) == 4 and len(panels[1].lines) == 2  # recall + PCK per label
