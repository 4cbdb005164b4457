"""Robustness sweeps: perturb photos step by step and measure detection and keypoint error.

Perturbations are pure functions of ``(H, W, 3)`` uint8 RGB images. Geometric ones are
views (:class:`~handpose.views.View`: mirror :func:`~handpose.views.flip_view`, rotation
:func:`~handpose.views.rotated_view`, hand size :func:`scale_hand`) whose ``matrix`` ``[A | t]``
maps photo pixels to the perturbed image's pixels exactly, so ground-truth keypoints follow with
:meth:`~handpose.views.View.centres_to_view`. Keypoints use the package's pixel convention (integer
pixel centres, :mod:`handpose.camera`); the views' matrices act on continuous coordinates.

:func:`robustness_sweep` runs any estimator (``predict(image) -> list[HandPrediction]``) over one
perturbation kind at several strengths and returns a :class:`SweepResult` table of detection
recall, precision, PCK@alpha and mean error / box size; :func:`handpose.figures.plot_sweep` draws it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from handpose.camera import centres_to_continuous
from handpose.io import check_image, encode_jpeg
from handpose.keypoints import NUM_KEYPOINTS
from handpose.metrics import box_size, evaluate_2d
from handpose.prediction import Predictor
from handpose.views import View, centred_view, rotated_view


# -- geometry ---------------------------------------------------------------------------------


def scale_hand(image: np.ndarray, keypoints_2d: np.ndarray, size_px: float) -> View:
    """Resize the photo so the hand's larger box side is ``size_px``, hand centred on a canvas of the
    photo's size (padded with black when shrinking, cropped when enlarging).

    ``p' = s (p - c) + (W, H) / 2`` (continuous coordinates, :func:`handpose.views.centred_view`)
    with ``s = size_px / side`` and ``c`` the centre of the box around ``keypoints_2d``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        keypoints_2d: ``(..., 21, 2)`` pixels of the hand(s) that set the scale (the largest hand
            sets it; the box around all of them is centred).
        size_px: target box side in pixels.
    """
    image = check_image(image)
    keypoints_2d = np.asarray(keypoints_2d, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    if not size_px > 0:
        raise ValueError(f"size_px must be positive, got {size_px}")
    side = float(np.nanmax(box_size(keypoints_2d)))
    if not side > 0:
        raise ValueError("the hand's box is empty: cannot scale it")
    h, w = image.shape[:2]
    flat = keypoints_2d.reshape(-1, 2)
    center = centres_to_continuous((np.nanmin(flat, axis=0) + np.nanmax(flat, axis=0)) / 2.0)
    return centred_view(image, center, size_px / side, (w, h), name=f"hand{size_px:g}px")


# -- occlusion and photometric perturbations ------------------------------------------------


def occlude(image: np.ndarray, box_xyxy: np.ndarray, fraction: float, seed: int = 0,
            color: tuple[int, int, int] = (128, 128, 128)) -> np.ndarray:
    """Paint one rectangle covering ``fraction`` of the pixel box ``box_xyxy``, at a random place.

    The rectangle's area is ``round(fraction * box area)`` pixels up to rounding of its sides; its
    aspect ratio is drawn in ``[1/2, 2]`` (clipped to the box) and its position uniformly inside
    the box, from ``numpy.random.default_rng(seed)``. Pixels outside the box are untouched.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        box_xyxy: ``(4,)`` ``[x1, y1, x2, y2]`` pixels (clipped to the photo, rounded outwards).
        fraction: covered fraction of the box in ``[0, 1]``.
        seed: random seed; equal seeds give equal patches.
        color: RGB fill.

    Returns:
        ``(H, W, 3)`` uint8 RGB copy.
    """
    image = check_image(image)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    h, w = image.shape[:2]
    x1, y1, x2, y2 = np.asarray(box_xyxy, dtype=np.float64).reshape(4)
    x1, y1 = int(np.clip(np.floor(x1), 0, w)), int(np.clip(np.floor(y1), 0, h))
    x2, y2 = int(np.clip(np.ceil(x2), 0, w)), int(np.clip(np.ceil(y2), 0, h))
    bw, bh = x2 - x1, y2 - y1
    out = image.copy()
    if fraction == 0.0 or bw <= 0 or bh <= 0:
        return out
    rng = np.random.default_rng(seed)
    area = fraction * bw * bh
    # Side lengths pw * ph = area with aspect pw / ph = r, then fitted inside the box.
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    pw = int(np.clip(round(np.sqrt(area * aspect)), 1, bw))
    ph = int(np.clip(round(area / pw), 1, bh))
    pw = int(np.clip(round(area / ph), 1, bw))
    px = x1 + int(rng.integers(0, bw - pw + 1))
    py = y1 + int(rng.integers(0, bh - ph + 1))
    out[py:py + ph, px:px + pw] = np.asarray(color, dtype=np.uint8)
    return out


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel ``2 ceil(3 sigma) + 1``); 0 = copy."""
    image = check_image(image)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return image.copy()
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(image, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def brightness(image: np.ndarray, gain: float) -> np.ndarray:
    """Exposure change ``I' = clip(gain * I)``: ``gain < 1`` darkens, ``> 1`` brightens (and saturates)."""
    image = check_image(image)
    if gain < 0:
        raise ValueError(f"gain must be >= 0, got {gain}")
    return np.clip(np.rint(gain * image.astype(np.float64)), 0, 255).astype(np.uint8)


def contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Contrast about the photo's mean grey level ``m``: ``I' = clip(m + factor (I - m))``; 0 = flat grey."""
    image = check_image(image)
    if factor < 0:
        raise ValueError(f"factor must be >= 0, got {factor}")
    pixels = image.astype(np.float64)
    mean = pixels.mean()
    return np.clip(np.rint(mean + factor * (pixels - mean)), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip at ``quality`` in ``[1, 100]`` (OpenCV's encoder, 4:2:0 chroma)."""
    data = encode_jpeg(check_image(image), quality)
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def desaturate(image: np.ndarray, saturation: float) -> np.ndarray:
    """Blend towards grey: ``I' = Y + saturation (I - Y)`` with ``Y`` the Rec. 601 luma; 0 = grey-scale, 1 = copy."""
    image = check_image(image)
    if not 0.0 <= saturation <= 1.0:
        raise ValueError(f"saturation must be in [0, 1], got {saturation}")
    pixels = image.astype(np.float64)
    # Y = 0.299 R + 0.587 G + 0.114 B
    luma = pixels @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.rint(luma[..., None] + saturation * (pixels - luma[..., None])), 0, 255).astype(np.uint8)


# -- sweeps -----------------------------------------------------------------------------------

Perturb = Callable[[np.ndarray, np.ndarray, float, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Kind:
    """One perturbation kind of a sweep.

    Attributes:
        apply: ``(image, gt (M, 21, 2), level, seed) -> (image', gt')``.
        levels: default strengths, from mild to strong.
        axis: axis label (the level's meaning and unit).
        identity: the level that leaves the photo unchanged, if any.
        log: plot the levels on a log axis.
    """

    apply: Perturb
    levels: tuple[float, ...]
    axis: str
    identity: float | None = None
    log: bool = False


def _geometric(view: View, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return view.image, view.centres_to_view(gt)


def _occlude_hands(image: np.ndarray, gt: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    for k, hand in enumerate(gt):
        image = occlude(image, np.concatenate([np.nanmin(hand, 0), np.nanmax(hand, 0)]), fraction, seed=seed + k)
    return image, gt


#: The perturbation kinds by name.
KINDS: dict[str, Kind] = {
    "rotation": Kind(lambda im, gt, a, s: _geometric(rotated_view(check_image(im), float(a)), gt),
                     (0, 30, 60, 90, 135, 180), "in-plane rotation (degrees)", identity=0),
    "scale": Kind(lambda im, gt, px, s: _geometric(scale_hand(im, gt, px), gt), (16, 24, 32, 48, 96, 192),
                  "hand size (box side, pixels)", log=True),
    "occlusion": Kind(_occlude_hands, (0.0, 0.15, 0.3, 0.45, 0.6), "fraction of the hand box covered",
                      identity=0),
    "blur": Kind(lambda im, gt, sg, s: (blur(im, sg), gt), (0, 1, 2, 4, 8), "Gaussian blur sigma (pixels)",
                 identity=0),
    "brightness": Kind(lambda im, gt, g, s: (brightness(im, g), gt), (0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.5),
                       "exposure gain", identity=1, log=True),
    "contrast": Kind(lambda im, gt, f, s: (contrast(im, f), gt), (0.1, 0.2, 0.4, 0.7, 1.0), "contrast factor",
                     identity=1, log=True),
    "jpeg": Kind(lambda im, gt, q, s: (jpeg(im, int(q)), gt), (95, 50, 20, 10, 5, 2), "JPEG quality", log=True),
    "greyscale": Kind(lambda im, gt, sat, s: (desaturate(im, sat), gt), (1.0, 0.5, 0.0), "colour saturation",
                      identity=1),
}


def perturb(image: np.ndarray, gt_keypoints: np.ndarray, kind: str, level: float,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Apply one perturbation of :data:`KINDS` to a photo and its ground truth.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        gt_keypoints: ``(M, 21, 2)`` ground-truth pixels (NaN = not annotated).
        kind: a key of :data:`KINDS`.
        level: the perturbation strength, in the kind's unit.
        seed: seed of random perturbations (occlusion).

    Returns:
        ``(image', gt')``: the perturbed ``(H', W', 3)`` uint8 image and ``(M, 21, 2)`` keypoints in it.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown perturbation kind {kind!r}; choose one of {sorted(KINDS)}")
    gt_keypoints = np.asarray(gt_keypoints, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    return KINDS[kind].apply(check_image(image), gt_keypoints, float(level), seed)


@dataclass(frozen=True)
class SweepRow:
    """Scores at one perturbation level, pooled over the images.

    Attributes:
        level: perturbation strength.
        n_images, n_gt, n_pred: images, ground-truth hands and predicted hands.
        recall: matched GT hands / GT hands (the detection rate).
        precision: matched predicted hands / predicted hands (NaN without predictions).
        pck: PCK@alpha over visible GT joints, unmatched GT hands scoring 0.
        error: mean over matched hands of their mean end-point error / GT box side (NaN if none).
    """

    level: float
    n_images: int
    n_gt: int
    n_pred: int
    recall: float
    precision: float
    pck: float
    error: float


@dataclass(frozen=True)
class SweepResult:
    """One sweep: a kind, its axis label, a curve label (e.g. the model), one row per level and the
    PCK threshold ``alpha``."""

    kind: str
    axis: str
    label: str
    rows: tuple[SweepRow, ...]
    alpha: float = 0.2

    def as_rows(self) -> list[dict[str, Any]]:
        """Plain table: one dict per level with ``kind`` and ``label`` columns."""
        return [{"kind": self.kind, "label": self.label, **asdict(row)} for row in self.rows]

    def column(self, name: str) -> np.ndarray:
        """One column of :class:`SweepRow` as a float array over the levels."""
        return np.array([getattr(row, name) for row in self.rows], dtype=np.float64)

    def summary(self, threshold: float = 0.5) -> str:
        """One sentence: recall unperturbed (when the kind has an identity level among the levels),
        its lowest value and where, and the levels where it is below ``threshold``."""
        if not self.rows:
            return f"{self.kind}: no levels"
        levels, recall = self.column("level"), self.column("recall")
        if np.all(recall == recall[0]):
            return f"{self.kind}: detection {recall[0]:.0%} at every level ({self.axis} {levels[0]:g} to {levels[-1]:g})"
        identity = KINDS[self.kind].identity if self.kind in KINDS else None
        base = "".join(f"{r:.0%} unperturbed, " for lv, r in zip(levels, recall) if lv == identity)
        worst = int(np.nanargmin(recall)) if np.isfinite(recall).any() else 0
        failing = [f"{lv:g}" for lv, r in zip(levels, recall) if r < threshold]
        tail = f"below {threshold:.0%} at {', '.join(failing)}" if failing else f"never below {threshold:.0%}"
        return (f"{self.kind}: detection {base}lowest {recall[worst]:.0%} at {self.axis} = {levels[worst]:g}; "
                f"{tail}")


def robustness_sweep(images: Sequence[np.ndarray], gt_hands: Sequence[np.ndarray], predict: Predictor,
                     kind: str, levels: Sequence[float] | None = None, *, alpha: float = 0.2,
                     gt_visible: Sequence[np.ndarray] | None = None, seed: int = 0,
                     label: str = "") -> SweepResult:
    """Detection and keypoint accuracy of ``predict`` against the strength of one perturbation.

    Each image is perturbed at each level with its ground truth (:func:`perturb`), predicted, and
    scored by :func:`handpose.metrics.evaluate_2d` (one-to-one matching, PCK@alpha of the GT box
    side); counts are pooled over images per level.

    Args:
        images: photos, each ``(H, W, 3)`` uint8 RGB.
        gt_hands: per photo ``(M, 21, 2)`` ground-truth pixels (``M`` may be 0).
        predict: the estimator, ``image -> list[HandPrediction]``.
        kind: a key of :data:`KINDS`.
        levels: strengths (default: the kind's default levels).
        alpha: PCK threshold as a fraction of the GT box side.
        gt_visible: optional per photo ``(M, 21)`` bool, joints to score.
        seed: base seed of random perturbations (photo ``i`` uses ``seed + 1000 i``).
        label: curve label for plots (e.g. ``"mediapipe"``).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown perturbation kind {kind!r}; choose one of {sorted(KINDS)}")
    if len(images) != len(gt_hands):
        raise ValueError(f"{len(images)} images but {len(gt_hands)} ground-truth entries")
    if gt_visible is not None and len(gt_visible) != len(images):
        raise ValueError(f"{len(images)} images but {len(gt_visible)} visibility entries")
    levels = KINDS[kind].levels if levels is None else tuple(levels)
    gts = [np.asarray(g, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2) for g in gt_hands]
    rows = []
    for level in levels:
        preds, targets, visible = [], [], []
        for i, (image, gt) in enumerate(zip(images, gts)):
            perturbed, gt_level = perturb(image, gt, kind, level, seed=seed + 1000 * i)
            preds.append(np.array([hand.keypoints_2d for hand in predict(perturbed)]).reshape(-1, NUM_KEYPOINTS, 2))
            targets.append(gt_level)
            vis = np.all(np.isfinite(gt_level), axis=-1)
            visible.append(vis if gt_visible is None else vis & np.asarray(gt_visible[i], dtype=bool))
        rows.append(_score_level(float(level), preds, targets, visible, alpha))
    return SweepResult(kind, KINDS[kind].axis, label, tuple(rows), alpha)


def _score_level(level: float, preds: list[np.ndarray], gts: list[np.ndarray], visible: list[np.ndarray],
                 alpha: float) -> SweepRow:
    result = evaluate_2d(preds, gts, visible=visible, alpha=alpha)
    return SweepRow(level=level, n_images=len(gts), n_gt=result.n_gt, n_pred=result.n_pred, recall=result.recall,
                    precision=result.precision, pck=result.pck, error=result.mean_error)
