"""Label-free signals: exact TTA mapping, hand-computed spreads, angles, ratios and residuals."""
from __future__ import annotations

import numpy as np
import pytest

from handpose.keypoints import NUM_KEYPOINTS
from handpose.prediction import HandPrediction
from handpose.signals import (
    DEFAULT_AUGMENTATIONS,
    Augmentation,
    SIGNALS,
    analyse_image,
    breakdown,
    compute_signals,
    distinctive_tags,
    format_table,
    reprojection_residual,
    signal_correlations,
    signal_error_correlation,
    tta_disagreement,
    worst_rows,
)

from _synthetic import HAND, blob_image, blob_predictor, chirality, find_blobs, hand_from

SIDE = 118.0  # larger side of HAND's box


def test_fake_estimator_finds_the_blobs() -> None:
    points = find_blobs(blob_image(HAND))
    assert np.abs(points - HAND).max() < 0.01
    assert chirality(HAND) == "right" and chirality(find_blobs(blob_image(HAND)[:, ::-1])) == "left"


# -- test-time augmentation ---------------------------------------------------------------------


def test_tta_spread_is_zero_for_a_consistent_estimator() -> None:
    image = blob_image(HAND)
    hands = blob_predictor(image)
    tta = tta_disagreement(image, hands, blob_predictor)
    assert tta.found.all() and tta.handedness_agrees.all()  # the mirror's left hand was turned back
    assert tta.missing.tolist() == [0.0] and tta.handedness_flips.tolist() == [0.0]
    assert tta.keypoints.shape == (1, len(DEFAULT_AUGMENTATIONS) + 1, NUM_KEYPOINTS, 2)
    assert tta.joint_spread.max() * SIDE < 0.06  # in pixels
    assert tta.spread[0] < 5e-4


def test_tta_spread_hand_computed() -> None:
    # In the mirrored image the fake shifts every joint by +d in x: back in the photo that is -d,
    # so the two predictions are d apart and each is d/2 from their mean.
    d = 6.0

    def biased(image: np.ndarray) -> list[HandPrediction]:
        hands = blob_predictor(image)
        for hand in hands:
            if hand.handedness == "left":
                hand.keypoints_2d = hand.keypoints_2d + [d, 0.0]
        return hands

    image = blob_image(HAND)
    tta = tta_disagreement(image, blob_predictor(image), biased, [Augmentation("flip", flip=True)])
    np.testing.assert_allclose(tta.joint_spread, np.full((1, NUM_KEYPOINTS), (d / 2) / SIDE), atol=1e-4)


def test_tta_flags_handedness_flips_and_missing_hands() -> None:
    image = blob_image(HAND)
    hands = blob_predictor(image)

    def always_right(img: np.ndarray) -> list[HandPrediction]:
        return [hand_from(h.keypoints_2d, "right") for h in blob_predictor(img)]

    augs = [Augmentation("flip", flip=True), Augmentation("rot", angle_deg=10.0)]
    tta = tta_disagreement(image, hands, always_right, augs)
    assert tta.handedness_agrees.tolist() == [[False, True]]
    assert tta.handedness_flips.tolist() == [0.5]

    lost = tta_disagreement(image, hands, lambda img: [], augs)
    assert lost.missing.tolist() == [1.0] and not lost.found.any()
    assert np.isnan(lost.spread).all() and np.isnan(lost.handedness_flips).all()


def test_tta_matches_two_hands_across_order_and_mirror() -> None:
    # A marker pixel in the top-left corner tells the fake whether the photo was mirrored; it then
    # lists the two hands in the opposite order, mirrored, with mirrored labels.
    image = np.zeros((200, 300, 3), np.uint8)
    image[0, 0] = 255
    right, left = HAND, HAND * [-1, 1] + [300, 0] - [40, 0]

    def fake(img: np.ndarray) -> list[HandPrediction]:
        if img[0, 0, 0] == 255:
            return [hand_from(right, "right"), hand_from(left, "left")]
        w = img.shape[1]
        mirror = np.array([-1.0, 1.0])
        # the mirror on pixel centres: u -> W - 1 - u
        return [hand_from(left * mirror + [w - 1, 0], "right"), hand_from(right * mirror + [w - 1, 0], "left")]

    hands = fake(image)
    tta = tta_disagreement(image, hands, fake, [Augmentation("flip", flip=True)])
    assert tta.found.all() and tta.handedness_agrees.all()
    np.testing.assert_allclose(tta.spread, [0.0, 0.0], atol=1e-12)


def test_reprojection_residual_hand_computed() -> None:
    # uv = s X + t + e with sum(e) = 0 and sum(X . e) = 0 keeps (s, t) the least-squares answer,
    # so the residuals are exactly |e_j|: e_j = c R90 (X_j - mean X) satisfies both.
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(NUM_KEYPOINTS, 3)) * 40.0
    centred = xyz[:, :2] - xyz[:, :2].mean(0)
    e = 0.05 * centred @ np.array([[0.0, -1.0], [1.0, 0.0]]).T
    uv = 1.7 * xyz[:, :2] + [320.0, 240.0] + e
    residual = reprojection_residual(uv[None], xyz[None])
    side = np.ptp(uv, axis=0).max()
    np.testing.assert_allclose(residual[0], np.linalg.norm(e, axis=1) / side, atol=1e-9)
    np.testing.assert_allclose(reprojection_residual((uv - e)[None], xyz[None]), 0.0, atol=1e-9)


def test_reprojection_validation() -> None:
    with pytest.raises(ValueError, match="keypoints_3d"):
        reprojection_residual(np.zeros((1, 21, 2)), np.zeros((2, 21, 3)))


# -- everything together, and the correlation ---------------------------------------------------


def test_compute_signals_on_a_consistent_estimator() -> None:
    image = blob_image(HAND)
    hands = blob_predictor(image)
    (signals,) = compute_signals(image, hands, blob_predictor)
    row = signals.as_row()
    assert row["score"] == pytest.approx(0.9)
    assert row["tta_spread"] < 5e-4 and row["tta_missing"] == 0.0 and row["handedness_flips"] == 0.0
    assert row["reprojection"] == pytest.approx(0.0, abs=1e-9)  # 3D = 2D - wrist, z = 0
    assert signals.tta_joint_spread.shape == (NUM_KEYPOINTS,)
    assert compute_signals(image, [], blob_predictor) == []


def test_signal_error_correlation_hand_computed() -> None:
    # Spearman without ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1)); here d = (-1, 1, -1, 1, 0).
    assert signal_error_correlation([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(1 - 6 * 4 / (5 * 24))
    assert signal_error_correlation([1, 2, 3, 4, 5, np.nan], [2, 1, 4, 3, 5, 9]) == pytest.approx(0.8)
    assert signal_error_correlation([3, 2, 1], [0.1, 0.2, 0.9]) == pytest.approx(-1.0)
    assert np.isnan(signal_error_correlation([1, 1, 1, 1], [1, 2, 3, 4]))
    assert np.isnan(signal_error_correlation([1, 2], [1, 2]))
    with pytest.raises(ValueError, match="differ in length"):
        signal_error_correlation([1, 2, 3], [1, 2])


# -- notebook tables ----------------------------------------------------------------------------


def test_analyse_image_rows_with_ground_truth() -> None:
    image = blob_image(HAND)
    hands = blob_predictor(image)
    shifted = HAND + [0.1 * SIDE, 0.0]  # the prediction is 0.1 box sides off the GT
    far = HAND + [1000.0, 0.0]  # a GT hand nobody found
    visible = np.ones((2, NUM_KEYPOINTS), bool)
    rows = analyse_image("a.png", image, hands, blob_predictor, np.stack([shifted, far]), visible, ["right", "left"])
    assert len(rows) == 2
    found, missed = rows
    assert found["detected"] and found["gt"] == 0 and found["handedness_ok"] is True
    assert found["error"] == pytest.approx(0.1) and found["pck"] == 1.0
    assert found["score"] == pytest.approx(0.9) and found["box_px"] == pytest.approx(SIDE)
    assert not missed["detected"] and missed["gt"] == 1 and missed["pck"] == 0.0 and missed["hand"] == -1
    assert np.isnan(missed["tta_spread"]) and missed["handedness"] == "left"

    without_gt = analyse_image("a.png", image, hands, blob_predictor)
    assert len(without_gt) == 1 and "error" not in without_gt[0]


def test_correlations_worst_rows_breakdown_and_table() -> None:
    rows = [{"image": f"{k}.png", "hand": 0, "detected": True, "gt": 0, "error": 0.1 * k, "pck": 1.0 - 0.2 * k,
             **{name: float(k) for name in SIGNALS}} for k in range(5)]
    rows[0]["score"] = 1.0  # high score on the best hand...
    for k in range(1, 5):
        rows[k]["score"] = 1.0 - 0.1 * k  # ...falling as the error grows
    rows.append({"image": "5.png", "hand": -1, "detected": False, "gt": 0, "error": np.nan, "pck": 0.0,
                 **{name: np.nan for name in SIGNALS}})
    rho = signal_correlations(rows)
    assert rho["tta_spread"] == pytest.approx(1.0) and rho["score"] == pytest.approx(1.0)  # score negated
    assert [r["image"] for r in worst_rows(rows, 3)] == ["5.png", "4.png", "3.png"]

    metadata = {"0.png": {"view": "palm"}, "1.png": {"view": "palm"}, "2.png": {"view": "side"},
                "5.png": {"view": "side"}}
    table = {t["value"]: t for t in breakdown(rows, metadata, "view")}
    assert set(table) == {"palm", "side", "?"}
    assert table["palm"]["n"] == 2 and table["palm"]["pck"] == pytest.approx(0.9)
    assert table["side"]["recall"] == 0.5 and table["side"]["error"] == pytest.approx(0.2)
    text = format_table(rows[:2], ["image", "error", "handedness"])
    assert text.splitlines()[2].split() == ["0.png", "0.000"] and len(text.splitlines()) == 4


def test_distinctive_tags_name_what_differs_from_the_majority() -> None:
    metadata = {"a": {"view": "palm", "lighting": "indoor"}, "b": {"view": "palm", "lighting": "dim"},
                "c": {"view": "side", "lighting": "indoor"}, "d": {"view": "palm", "lighting": ""}}
    tags = distinctive_tags(metadata, ["view", "lighting"])
    assert tags == {"a": "", "b": "lighting=dim", "c": "view=side", "d": ""}


def test_html_table_has_one_row_per_hand_and_scrolls() -> None:
    from html.parser import HTMLParser

    from handpose.signals import html_table

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []

        def handle_starttag(self, tag, attrs) -> None:
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.rows[-1].append("")

        def handle_data(self, data) -> None:
            if self.rows and self.rows[-1]:
                self.rows[-1][-1] += data

    rows = [{"image": "a<b>.png", "hand": 0, "score": 0.91234, "error": float("nan"), "handedness_ok": True},
            {"image": "c.png", "hand": 1, "score": 0.5, "error": 0.25, "handedness_ok": None}]
    page = html_table(rows, ["image", "hand", "score", "error", "handedness_ok"])
    parser = Cells()
    parser.feed(page)
    assert parser.rows == [["image", "hand", "score", "error", "handedness_ok"],
                           ["a<b>.png", "0", "0.912", "nan", "True"], ["c.png", "1", "0.500", "0.250", ""]]
    assert "overflow-x:auto" in page and "<b>" not in page  # scrolls sideways; names are escaped
