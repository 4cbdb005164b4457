"""Detection benchmark: plain MediaPipe vs the project's detector on photos with ground truth.

Usage::

    .venv/bin/python bench/bench_detection.py [PHOTOS_DIR] [--overlays DIR] [--max-hands N] [--no-composites]
        [--hard-only] [--set OPTION=VALUE ...]

``PHOTOS_DIR`` holds a ``gt.json`` (format of ``../shared/photos/gt.json``; default that folder,
skipped cleanly when absent). Prints, per method, detection recall and precision, PCK@0.2 (a joint
is correct when its error is below 0.2 x the larger side of the GT hand's tight box; a missed GT
hand scores 0 on all joints), PCK@0.2 on found hands, and the median / mean / 95th percentile
milliseconds per photo of a second pass (the first, untimed, initialises the models): the measure
of :func:`handpose.metrics.evaluate_2d` (one-to-one matching by mean joint error / GT box side, at
most 0.5).

Files with identical pixels (e.g. CMU Panoptic's ``_l`` / ``_r`` copies, one hand labelled in
each) are scored once with the union of their hands, so a correctly found second hand is not
counted as a false positive. Photos whose ``gt_type`` is ``pseudo_gt_mediapipe_prediction`` are
MediaPipe's own output: they are reported on a separate line, never in the main score.

Hard cases (issue 13), built at bench time in memory from the same photos and never saved:

* ``single``: every GT hand cut out (a square of 1.6 x its box, feathered edge), scaled so that
  its box side is 40, 60, 90, 130 or 200 px, pasted at a random place into a background;
* ``pair``: a GT hand and a mirrored GT hand (another person's other hand) of 120-160 px, the
  second pasted touching / overlapping the first (offset 0.45-0.7 of a hand side, random side);
* ``occluded``: a GT hand of 150-300 px (mirrored or not) with an object-like patch (a piece of
  another background, a flat rectangle or ellipse) pasted over 20-45 % of its box, along one side
  or as a blob; keypoints kept (recall of the hand);
* ``edge``: a GT hand of 250-450 px turned so that its fingers point inward (+-35 degrees) and
  pasted with its wrist 0-25 % of the hand beyond the bottom, left or right edge (egocentric
  hands; joints outside the photo are not scored, 15 labelled joints at least inside);
* hand-free photos: the backgrounds as they are and a close-up crop of each (640 x 480), scanned
  for false hands (false hands per photo, each listed).

* ``wide``: wide shots like sports frames and group photos: a background scaled to 1920 x 1080
  (cropped to 16:9) with 4 GT hands (mirrored or not) of 40-190 px pasted at random places apart
  from each other; recall per hand size (``wide <70px``, ``wide 70-120px``, ``wide >=120px``).

Hands are sized by their labelled joints (unlabelled ones may sit at (0, 0)).

The ``occluded``, ``edge`` and ``wide`` cases and the hand-free photos have their own random generators and
are reported apart (``--hard-only`` runs only them), so the ``single`` / ``pair`` figures stay
comparable across versions. ``--set OPTION=VALUE`` overrides an option of the project's detector
(``--set scan=False``: the detector without its region scan).

Backgrounds are the photos whose longer side is at least 600 px, with every hand (GT, plain
MediaPipe's and the project's predictions) painted out by OpenCV's inpainting (photos that are
mostly hands are skipped), scaled to a
1280 px longer side. GT keypoints are transformed with the pasted hand. Recall is reported per
hand size, per kind, per source folder; ``second`` is the recall of the hand pasted second.

A separate close-up set like the held-out interacting pairs (studio, grey, touching; issue 13),
reported apart with its own precision so that the figures above stay comparable:

* ``interacting``: two GT hands, the second mirrored (the person's other hand), each of 35-60 % of
  a 512 px image side (the second 0.85-1.15 x the first), the second turned by a random angle
  relative to the first and pasted over it, their centres 0.2-0.45 of a hand side apart (strong
  overlap); each hand is cut out by a mask drawn from its GT keypoints (palm outline and bones,
  feathered), not a disc, so the hand below shows wherever the hand above does not cover it. The
  background is plain grey, plain dark, or a blurred hand-free background; a third of the images
  are grey-scale. ``first`` is the partly covered hand, ``second`` the one on top.

Goals (issues 4, 13): dev photos recall >= 0.95, precision >= 0.95, PCK@0.2 >= 0.80; composites
recall >= 0.80 of 60 px hands and of second hands of touching pairs; median <= 250 ms and 95th
percentile <= 1000 ms per photo (2-core CPU); interacting close-ups: 4 of 6 hands (0.67) like the
held-out goal.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handpose.io import check_image
from handpose.keypoints import BONES, NUM_KEYPOINTS, PALM_OUTLINE
from handpose.metrics import Evaluation2D, evaluate_2d
from handpose.models.mediapipe import MediaPipeEstimator, MediaPipeOptions, open_graph, read_landmarks
from handpose.models.native_stderr import silenced_native_stderr
from handpose.prediction import HandPrediction

DEFAULT_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"
PSEUDO_GT = "pseudo_gt_mediapipe_prediction"
PCK_THRESHOLD = 0.2
#: A prediction matches a GT hand when its mean joint error is below this fraction of the GT box side.
MATCH_DISTANCE = 0.5
GOALS = {"recall": 0.95, "precision": 0.95, "pck": 0.80, "median_ms": 250.0, "p95_ms": 1000.0}
COMPOSITE_GOALS = {"single 60px": 0.80, "pair second": 0.80, "interacting": 0.67}
SINGLE_SIZES = (40, 60, 90, 130, 200)
#: Interacting close-ups: image side (px), hand side range (fraction of it), centre distance range
#: (fraction of a hand side), composites per source hand.
INTERACTING_SIDE = 512
INTERACTING_HAND = (0.35, 0.60)
INTERACTING_OFFSET = (0.20, 0.45)
INTERACTING_PER_HAND = 2


@dataclass
class Photo:
    """One picture (identical files merged) and its GT hands."""

    paths: list[Path]
    hands: list[np.ndarray]  # per GT hand, (21, 2) pixels
    visible: list[np.ndarray]  # per GT hand, (21,) bool, joints that are annotated
    pseudo: bool


class PlainMediaPipe:
    """``Hands(static_image_mode=True, max_num_hands=N, model_complexity=1)`` as is (labels swapped
    to the person's hand, like the project's detector)."""

    def __init__(self, max_hands: int) -> None:
        import mediapipe as mp

        self._hands = open_graph(lambda: mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=max_hands,
                                                                 model_complexity=1))

    def predict(self, image: np.ndarray) -> list[HandPrediction]:
        image = check_image(image)
        h, w = image.shape[:2]
        with silenced_native_stderr():  # MediaPipe's C++ log lines, as in the project's estimator
            result = self._hands.process(image)
        hands = read_landmarks(result, w, h)
        # Continuous pixels -> the package's pixel centres, like the project's estimator.
        return [HandPrediction(**{**hand._asdict(), "keypoints_2d": hand.keypoints_2d - 0.5}, source="plain")
                for hand in hands]

    def close(self) -> None:
        with silenced_native_stderr():
            self._hands.close()


def load_photos(folder: Path) -> list[Photo]:
    """Photos of ``gt.json``, identical files merged (union of their GT hands)."""
    gt = json.loads((folder / "gt.json").read_text())
    by_hash: dict[str, Photo] = {}
    for entry in gt["images"]:
        path = folder / entry["image"]
        if not path.is_file():
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        photo = by_hash.setdefault(digest, Photo([], [], [], entry["gt_type"] == PSEUDO_GT))
        photo.paths.append(path)
        for hand in entry["hands"]:
            kp = np.asarray(hand["keypoints_2d"], dtype=np.float64)
            vis = hand.get("visibility")
            photo.hands.append(kp)
            photo.visible.append(np.ones(len(kp), bool) if vis is None else np.asarray(vis) != 0)
    return list(by_hash.values())


def evaluate(photos: Sequence[Photo], predictions: Sequence[list[HandPrediction]]) -> Evaluation2D:
    """PCK@0.2 and detection rates of ``predictions`` (one list per photo) against the photos' GT."""
    gt = [np.array(photo.hands).reshape(-1, NUM_KEYPOINTS, 2) for photo in photos]
    visible = [np.array(photo.visible, bool).reshape(-1, NUM_KEYPOINTS) for photo in photos]
    return evaluate_2d(predictions, gt, alpha=PCK_THRESHOLD, visible=visible, max_distance=MATCH_DISTANCE)


def summarize(result: Evaluation2D, times_ms: list[float]) -> dict[str, float]:
    return {
        "recall": result.recall,
        "precision": result.precision,
        "pck": result.pck,
        "pck_found": result.pck_found,
        "median_ms": statistics.median(times_ms) if times_ms else float("nan"),
        "mean_ms": statistics.fmean(times_ms) if times_ms else float("nan"),
        "p95_ms": float(np.percentile(times_ms, 95)) if times_ms else float("nan"),
    }


def run(method, photos: list[Photo], overlays: Path | None) -> tuple[list[list[HandPrediction]], list[float]]:
    """Predictions and milliseconds per photo (overlays of GT and predictions written on request)."""
    from handpose.io import load_image

    predictions, times_ms = [], []
    for photo in photos:
        image = load_image(photo.paths[0])
        start = time.perf_counter()
        hands = method.predict(image)
        times_ms.append((time.perf_counter() - start) * 1000.0)
        predictions.append(hands)
        if overlays is not None:
            from handpose.io import save_png_atomic
            from handpose.viz import draw_hands, draw_keypoints

            canvas = image
            for keypoints, visible in zip(photo.hands, photo.visible):
                canvas = draw_keypoints(canvas, np.where(visible[:, None], keypoints, np.nan),
                                        color=(255, 255, 255), radius=2)
            canvas = draw_hands(canvas, hands)
            save_png_atomic(overlays / f"{photo.paths[0].parent.name}__{photo.paths[0].stem}.png", canvas)
    return predictions, times_ms


@dataclass
class Composite:
    """A hard case made in memory: image, GT hands ``(N, 21, 2)`` and labels per GT hand."""

    image: np.ndarray
    hands: np.ndarray
    visible: np.ndarray
    labels: list[dict[str, str]]


def _cutout(image: np.ndarray, keypoints: np.ndarray, visible: np.ndarray, angle_deg: float = 0.0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Square patch of 1.6 x the hand's box around a GT hand (black outside the photo), turned by
    ``angle_deg`` (counter-clockwise as displayed), and its keypoints."""
    from handpose.views import square_crop_view

    pts = keypoints[visible]
    center = (pts.min(0) + pts.max(0)) / 2 + 0.5  # pixel centres -> continuous
    side = 1.6 * max(float(np.ptp(pts, axis=0).max()), 8.0)
    out = int(round(side))
    view = square_crop_view(image, center, side, out, angle_deg)
    return view.image, (keypoints + 0.5) @ view.matrix[:, :2].T + view.matrix[:, 2] - 0.5


def _paste(canvas: np.ndarray, patch: np.ndarray, keypoints: np.ndarray, visible: np.ndarray, hand_px: float,
           top_left: np.ndarray, mirror: bool) -> np.ndarray:
    """Paste ``patch`` (scaled so that the box side of the hand's ``visible`` keypoints is ``hand_px``;
    unlabelled ones may sit anywhere, e.g. at (0, 0)) with a feathered round mask; returns the
    keypoints in canvas pixels."""
    import cv2

    if mirror:
        patch = np.ascontiguousarray(patch[:, ::-1])
        keypoints = keypoints * [-1, 1] + [patch.shape[1] - 1, 0]
    scale = hand_px / max(float(np.ptp(keypoints[visible], axis=0).max()), 1.0)
    size = max(int(round(patch.shape[0] * scale)), 4)
    scale = size / patch.shape[0]
    small = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(xx - (size - 1) / 2, yy - (size - 1) / 2) / (size / 2)
    alpha = np.clip((1.0 - r) / 0.25, 0.0, 1.0)[..., None]  # opaque inside 0.75 of the radius
    x0, y0 = (int(v) for v in top_left)
    h, w = canvas.shape[:2]
    x1, y1, x2, y2 = max(x0, 0), max(y0, 0), min(x0 + size, w), min(y0 + size, h)
    region = canvas[y1:y2, x1:x2].astype(np.float64)
    piece = small[y1 - y0:y2 - y0, x1 - x0:x2 - x0].astype(np.float64)
    a = alpha[y1 - y0:y2 - y0, x1 - x0:x2 - x0]
    canvas[y1:y2, x1:x2] = np.round(a * piece + (1 - a) * region).astype(np.uint8)
    return (keypoints + 0.5) * scale - 0.5 + [x0, y0]


def hand_free_backgrounds(photos: list[Photo], methods: Sequence, min_side: int = 600) -> list[np.ndarray]:
    """Large photos with every GT or predicted hand painted out, scaled to a 1280 px longer side."""
    import cv2

    from handpose.io import load_image

    out = []
    for photo in photos:
        image = load_image(photo.paths[0])
        if max(image.shape[:2]) < min_side:
            continue
        boxes = [np.r_[hand.min(0), hand.max(0)] for hand in photo.hands]
        for method in methods:
            boxes += [hand.box_xyxy for hand in method.predict(image)]
        mask = np.zeros(image.shape[:2], np.uint8)
        for x1, y1, x2, y2 in boxes:
            m = 0.35 * max(x2 - x1, y2 - y1)  # fingers beyond the keypoints, the forearm's start
            cv2.rectangle(mask, (int(x1 - m), int(y1 - m)), (int(x2 + m), int(y2 + m)), 255, -1)
        if mask.mean() > 0.35 * 255:  # mostly hands: nothing left to paint them out with
            continue
        clean = cv2.inpaint(image, mask, 5, cv2.INPAINT_TELEA)
        scale = 1280 / max(image.shape[:2])
        out.append(cv2.resize(clean, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                              interpolation=cv2.INTER_LINEAR))
    return out


def make_composites(photos: list[Photo], backgrounds: list[np.ndarray], seed: int = 0) -> list[Composite]:
    """The ``single`` and ``pair`` hard cases (see the module docstring), reproducible from ``seed``."""
    from handpose.io import load_image

    rng = np.random.default_rng(seed)
    sources = []
    for photo in photos:
        if photo.pseudo:
            continue
        image = load_image(photo.paths[0])
        for hand, vis in zip(photo.hands, photo.visible):
            patch, kp = _cutout(image, hand, vis)
            sources.append((patch, kp, vis, photo.paths[0].parent.name))
    out = []
    for patch, kp, vis, folder in sources:
        for size in SINGLE_SIZES:
            canvas = backgrounds[rng.integers(len(backgrounds))].copy()
            h, w = canvas.shape[:2]
            side = 1.6 * size
            top_left = rng.uniform([0, 0], [w - side, h - side])
            hand = _paste(canvas, patch, kp, vis, size, top_left, mirror=False)
            out.append(Composite(canvas, hand[None], vis[None],
                                 [{"kind": "single", "size": f"{size}px", "folder": folder}]))
    for i, (patch, kp, vis, folder) in enumerate(sources):
        j = (i + 1 + rng.integers(len(sources) - 1)) % len(sources)
        patch2, kp2, vis2, folder2 = sources[j]
        canvas = backgrounds[rng.integers(len(backgrounds))].copy()
        h, w = canvas.shape[:2]
        size = rng.uniform(120, 160)
        top_left = rng.uniform([0.25 * w, 0.2 * h], [0.6 * w, 0.6 * h])
        first = _paste(canvas, patch, kp, vis, size, top_left, mirror=False)
        offset = rng.uniform(0.45, 0.7) * size * rng.choice([-1, 1])
        second = _paste(canvas, patch2, kp2, vis2, size, top_left + [offset, rng.uniform(-0.3, 0.3) * size], mirror=True)
        out.append(Composite(canvas, np.stack([first, second]), np.stack([vis, vis2]),
                             [{"kind": "pair first", "size": "pair", "folder": folder},
                              {"kind": "pair second", "size": "pair", "folder": folder2}]))
    return out


def _hand_alpha(keypoints: np.ndarray, visible: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` float alpha in ``[0, 1]`` of a hand drawn from its GT keypoints: the palm outline
    filled and every bone between visible joints as a stroke of 0.12 x the hand's box side, grown by
    a quarter stroke and feathered over half a stroke (fingers are wider than their bones)."""
    import cv2

    side = max(float(np.ptp(keypoints[visible], axis=0).max()), 8.0)
    width = max(int(round(0.12 * side)), 2)
    mask = np.zeros(shape, np.uint8)
    palm = [j for j in PALM_OUTLINE if visible[j]]
    if len(palm) >= 3:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(keypoints[palm]).astype(np.int32)), 255)
    for a, b in BONES:
        if visible[a] and visible[b]:
            cv2.line(mask, tuple(int(v) for v in np.round(keypoints[a])), tuple(int(v) for v in np.round(keypoints[b])),
                     255, width, cv2.LINE_AA)
    grow = max(width // 4, 1)
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    feather = max(width // 2, 1) * 2 + 1
    return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (feather, feather), 0)


def _paste_hand(canvas: np.ndarray, patch: np.ndarray, keypoints: np.ndarray, visible: np.ndarray, hand_px: float,
                center: np.ndarray, angle_deg: float, mirror: bool) -> np.ndarray:
    """Paste the hand of ``patch`` cut out by :func:`_hand_alpha`, mirrored (optional), turned by
    ``angle_deg`` (counter-clockwise as displayed), scaled so that its box side is ``hand_px`` and
    its box centre lands on ``center``; returns its keypoints in canvas pixels (pixel centres, the
    convention OpenCV's ``warpAffine`` uses too)."""
    import cv2

    flip = np.array([[-1.0, 0.0, patch.shape[1] - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if mirror else np.eye(3)
    kp = keypoints @ flip[:2, :2].T + flip[:2, 2]
    box = kp[visible]
    scale = hand_px / max(float(np.ptp(box, axis=0).max()), 1.0)
    theta = np.deg2rad(angle_deg)
    turn = scale * np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])  # y down
    mid = (box.min(0) + box.max(0)) / 2
    affine = np.eye(3)
    affine[:2, :2] = turn
    affine[:2, 2] = np.asarray(center) - turn @ mid
    affine = affine @ flip
    h, w = canvas.shape[:2]
    warped = cv2.warpAffine(patch, affine[:2], (w, h), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = keypoints @ affine[:2, :2].T + affine[:2, 2]
    alpha = _hand_alpha(out, visible, (h, w))[..., None]
    canvas[:] = np.round(alpha * warped + (1 - alpha) * canvas).astype(np.uint8)
    return out


def _plain_background(rng: np.random.Generator, shape: tuple[int, int], dark: bool) -> np.ndarray:
    """A studio-like backdrop: one grey (or dark) level with a soft vertical gradient and sensor noise."""
    h, w = shape
    level = rng.uniform(15, 50) if dark else rng.uniform(90, 170)
    tint = rng.uniform(-8, 8, 3)
    ramp = np.linspace(-1, 1, h)[:, None, None] * rng.uniform(-15, 15)
    image = level + tint + ramp + rng.normal(0, 3, (h, w, 3))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _gt_sources(photos: list[Photo]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    """``(photo, keypoints, visible, folder)`` of every dataset-GT hand."""
    from handpose.io import load_image

    out = []
    for photo in photos:
        if photo.pseudo:
            continue
        image = load_image(photo.paths[0])
        out += [(image, hand, vis, photo.paths[0].parent.name) for hand, vis in zip(photo.hands, photo.visible)]
    return out


def _occlude(canvas: np.ndarray, box: np.ndarray, backgrounds: list[np.ndarray], rng: np.random.Generator) -> None:
    """Paste an object-like patch (a piece of another background, a flat rectangle or ellipse) over
    20-45 % of ``box`` (``xyxy`` pixels) of ``canvas``, in place, from one of the box's sides."""
    import cv2

    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    fraction = rng.uniform(0.2, 0.45)
    # A band of the box along one side (an object held in front of the palm or the fingers), or a
    # centred blob; its area is ``fraction`` of the box.
    if rng.random() < 0.7:
        side = rng.integers(4)
        t = fraction
        ox1, oy1, ox2, oy2 = [(x1, y1, x1 + t * bw, y2), (x2 - t * bw, y1, x2, y2),
                              (x1, y1, x2, y1 + t * bh), (x1, y2 - t * bh, x2, y2)][side]
    else:
        r = np.sqrt(fraction)
        cx, cy = rng.uniform(x1 + r * bw / 2, x2 - r * bw / 2), rng.uniform(y1 + r * bh / 2, y2 - r * bh / 2)
        ox1, oy1, ox2, oy2 = cx - r * bw / 2, cy - r * bh / 2, cx + r * bw / 2, cy + r * bh / 2
    h, w = canvas.shape[:2]
    ox1, oy1 = int(np.clip(round(ox1), 0, w - 1)), int(np.clip(round(oy1), 0, h - 1))
    ox2, oy2 = int(np.clip(round(ox2), ox1 + 1, w)), int(np.clip(round(oy2), oy1 + 1, h))
    ph, pw = oy2 - oy1, ox2 - ox1
    kind = rng.integers(3)
    if kind == 0:  # a piece of another photo
        other = backgrounds[rng.integers(len(backgrounds))]
        y0, x0 = rng.integers(0, other.shape[0] - ph + 1), rng.integers(0, other.shape[1] - pw + 1)
        patch = other[y0:y0 + ph, x0:x0 + pw]
        mask = np.ones((ph, pw), bool)
    else:  # a flat-coloured rectangle or ellipse (with a little shading)
        colour = rng.integers(0, 256, 3)
        shade = np.linspace(0.8, 1.1, pw)[None, :, None]
        patch = np.clip(colour * shade * np.ones((ph, 1, 1)), 0, 255).astype(np.uint8)
        mask = np.ones((ph, pw), bool)
        if kind == 2:
            ellipse = np.zeros((ph, pw), np.uint8)
            cv2.ellipse(ellipse, (pw // 2, ph // 2), (max(pw // 2, 1), max(ph // 2, 1)), 0, 0, 360, 1, -1)
            mask = ellipse.astype(bool)
    region = canvas[oy1:oy2, ox1:ox2]
    region[mask] = patch[mask]


def _finger_direction(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Wrist (or the labelled palm joints' mean) -> the labelled finger joints' mean, pixels."""
    palm = visible & np.isin(np.arange(NUM_KEYPOINTS), [0, 1, 5, 9, 13, 17])
    fingers = visible & (np.arange(NUM_KEYPOINTS) >= 6)
    start = keypoints[0] if visible[0] else keypoints[palm].mean(0)
    return keypoints[fingers].mean(0) - start


def make_hard_composites(photos: list[Photo], backgrounds: list[np.ndarray], per_hand: int = 2, seed: int = 1
                         ) -> list[Composite]:
    """The ``occluded`` and ``edge`` hard cases (see the module docstring), ``per_hand`` each per GT hand,
    reproducible from ``seed`` (their own generator: the ``single`` / ``pair`` cases are unchanged)."""
    from handpose.models.regions import upright_angle

    rng = np.random.default_rng(seed)
    out = []
    sources = _gt_sources(photos) * per_hand
    for image, kp, vis, folder in sources:
        patch, pkp = _cutout(image, kp, vis)
        canvas = backgrounds[rng.integers(len(backgrounds))].copy()
        h, w = canvas.shape[:2]
        size = rng.uniform(150, 300)
        top_left = rng.uniform([0, 0], [w - 1.6 * size, h - 1.6 * size])
        hand = _paste(canvas, patch, pkp, vis, size, top_left, mirror=bool(rng.integers(2)))
        pts = hand[vis]
        _occlude(canvas, np.r_[pts.min(0), pts.max(0)], backgrounds, rng)
        out.append(Composite(canvas, hand[None], vis[None], [{"kind": "occluded", "size": "", "folder": folder}]))
    for image, kp, vis, folder in sources:
        background = backgrounds[rng.integers(len(backgrounds))]
        h, w = background.shape[:2]
        for _ in range(20):  # until 15 labelled joints lie inside (fingers curled back leave fewer)
            canvas = background.copy()
            edge = ("bottom", "left", "right")[rng.integers(3)]
            inward = {"bottom": np.array([0.0, -1.0]), "left": np.array([1.0, 0.0]),
                      "right": np.array([-1.0, 0.0])}[edge]
            # Fingers (wrist -> middle MCP) turned to point inward, give or take 35 degrees.
            size = rng.uniform(250, 450)
            mirror = bool(rng.integers(2))  # _paste mirrors after the turn: aim at the mirrored direction
            angle = upright_angle(_finger_direction(kp, vis)) \
                - upright_angle(inward * [-1, 1] if mirror else inward) + rng.uniform(-35, 35)
            patch, pkp = _cutout(image, kp, vis, angle)
            # Paste at the origin, then shift so that the hand's back end (its labelled joint furthest
            # from the fingers' side: the wrist, mostly) lies 0-25 % of the hand beyond the edge.
            probe = _paste(np.zeros_like(canvas), patch, pkp, vis, size, np.zeros(2), mirror)
            back = probe[vis][np.argmin(probe[vis] @ inward)]
            beyond = rng.uniform(0.0, 0.25) * size
            if edge == "bottom":
                shift = np.array([rng.uniform(0.15, 0.85) * w, h - 0.5 + beyond]) - back
            else:
                x = -0.5 - beyond if edge == "left" else w - 0.5 + beyond
                shift = np.array([x, rng.uniform(0.35, 0.95) * h]) - back
            hand = _paste(canvas, patch, pkp, vis, size, np.round(shift), mirror)
            inside = (hand[:, 0] >= -0.5) & (hand[:, 0] <= w - 0.5) & (hand[:, 1] >= -0.5) & (hand[:, 1] <= h - 0.5)
            if np.sum(vis & inside) >= min(15, vis.sum() - 2):
                break
        out.append(Composite(canvas, hand[None], (vis & inside)[None],
                             [{"kind": "edge", "size": "", "folder": folder}]))
    return out


def make_wide(photos: list[Photo], backgrounds: list[np.ndarray], hands_per_shot: int = 4, seed: int = 3
              ) -> list[Composite]:
    """The ``wide`` shots (see the module docstring), one per GT hand (which is pasted with
    ``hands_per_shot - 1`` others), reproducible from ``seed``."""
    import cv2

    rng = np.random.default_rng(seed)
    sources = [(*_cutout(image, kp, vis), vis, folder) for image, kp, vis, folder in _gt_sources(photos)]
    out = []
    for i in range(len(sources)):
        bg = backgrounds[rng.integers(len(backgrounds))]
        h, w = bg.shape[:2]
        ch = min(h, round(w * 9 / 16))
        cw = round(ch * 16 / 9)
        y0 = rng.integers(0, h - ch + 1)
        canvas = cv2.resize(bg[y0:y0 + ch, :cw], (1920, 1080), interpolation=cv2.INTER_LINEAR)
        picks = [i] + [int(j) for j in rng.choice([j for j in range(len(sources)) if j != i], hands_per_shot - 1,
                                                   replace=False)]
        hands, visible, labels, placed = [], [], [], []
        for j in picks:
            patch, kp, vis, folder = sources[j]
            size = rng.uniform(40, 190)
            for _ in range(50):  # a place apart from the hands already pasted
                top_left = rng.uniform([0, 0], [1920 - 1.6 * size, 1080 - 1.6 * size])
                centre = top_left + 0.8 * size
                if all(np.linalg.norm(centre - c) > 0.9 * (size + r) for c, r in placed):
                    break
            placed.append((centre, size))
            hands.append(_paste(canvas, patch, kp, vis, size, top_left, mirror=bool(rng.integers(2))))
            visible.append(vis)
            bucket = "<70px" if size < 70 else "70-120px" if size < 120 else ">=120px"
            labels.append({"kind": f"wide {bucket}", "size": "", "folder": folder})
        out.append(Composite(canvas, np.stack(hands), np.stack(visible), labels))
    return out


def negatives(backgrounds: list[np.ndarray], seed: int = 2) -> list[np.ndarray]:
    """Hand-free photos: every background as is, and a random crop of each (half its sides)
    resampled to 640 x 480, a close-up of the same scene."""
    import cv2

    rng = np.random.default_rng(seed)
    out = list(backgrounds)
    for image in backgrounds:
        h, w = image.shape[:2]
        ch, cw = h // 2, min(w // 2, h * 2 // 3)
        y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        out.append(cv2.resize(image[y0:y0 + ch, x0:x0 + cw], (640, 480), interpolation=cv2.INTER_LINEAR))
    return out


def make_interacting(photos: list[Photo], backgrounds: list[np.ndarray], seed: int = 1) -> list[Composite]:
    """The ``interacting`` close-ups (see the module docstring), reproducible from ``seed``; an rng of
    their own, so the other composites stay the same."""
    import cv2

    rng = np.random.default_rng(seed)
    sources = [(*_cutout(image, kp, vis), vis, folder) for image, kp, vis, folder in _gt_sources(photos)]
    out = []
    for i, (patch, kp, vis, folder) in enumerate(sources):
        for _ in range(INTERACTING_PER_HAND):
            j = (i + 1 + rng.integers(len(sources) - 1)) % len(sources)
            patch2, kp2, vis2, folder2 = sources[j]
            h, w = INTERACTING_SIDE, int(rng.choice([INTERACTING_SIDE, 3 * INTERACTING_SIDE // 4]))
            kind = str(rng.choice(["grey", "dark", "blurred"]))
            if kind == "blurred":
                bg = backgrounds[rng.integers(len(backgrounds))]
                y0, x0 = rng.integers(0, bg.shape[0] - h + 1), rng.integers(0, bg.shape[1] - w + 1)
                canvas = cv2.GaussianBlur(bg[y0:y0 + h, x0:x0 + w], (0, 0), 12.0)
            else:
                canvas = _plain_background(rng, (h, w), kind == "dark")
            size = rng.uniform(*INTERACTING_HAND) * INTERACTING_SIDE
            size2 = size * rng.uniform(0.85, 1.15)
            direction = rng.normal(size=2)
            step = rng.uniform(*INTERACTING_OFFSET) * size * direction / np.linalg.norm(direction)
            middle = np.array([w, h]) / 2 + rng.uniform(-0.08, 0.08, 2) * INTERACTING_SIDE
            angle = rng.uniform(-45, 45)
            first = _paste_hand(canvas, patch, kp, vis, size, middle - step / 2, angle, mirror=False)
            second = _paste_hand(canvas, patch2, kp2, vis2, size2, middle + step / 2,
                                 angle + rng.uniform(-180, 180), mirror=True)
            if rng.random() < 1 / 3:
                canvas = np.repeat(cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
                kind += " grey-scale"
            out.append(Composite(canvas, np.stack([first, second]), np.stack([vis, vis2]),
                                 [{"kind": "interacting first", "size": "interacting", "folder": folder,
                                   "background": kind},
                                  {"kind": "interacting second", "size": "interacting", "folder": folder2,
                                   "background": kind}]))
    return out


def composite_report(name: str, composites: list[Composite], predictions: list[list[HandPrediction]],
                     times_ms: list[float]) -> dict[str, float]:
    """Recall per category (kind, size, folder) and overall precision of one method; printed."""
    from handpose.metrics import match_hands

    found: dict[str, list[bool]] = {}
    n_pred = n_matched = 0
    for comp, hands in zip(composites, predictions):
        pred = np.array([hand.keypoints_2d for hand in hands]).reshape(-1, NUM_KEYPOINTS, 2)
        m = match_hands(pred, comp.hands, comp.visible, max_distance=MATCH_DISTANCE)
        n_pred += len(pred)
        n_matched += len(m.pairs)
        for k, label in enumerate(comp.labels):
            hit = bool(k in m.pairs[:, 1])
            keys = [f"{label['kind']} {label['size']}" if label["kind"] == "single" else label["kind"],
                    label["kind"].split()[0], f"folder {label['folder']}"]
            keys += [f"{label['kind'].split()[0]} on {label['background']}"] if "background" in label else []
            for key in dict.fromkeys(keys):
                found.setdefault(key, []).append(hit)
    rates = {key: float(np.mean(v)) for key, v in found.items()}
    rates["precision"] = n_matched / n_pred if n_pred else float("nan")
    print(f"  {name}: {len(composites)} composites, median {statistics.median(times_ms):.0f} ms, "
          f"p95 {np.percentile(times_ms, 95):.0f} ms per photo; precision {rates['precision']:.3f}")
    for key in sorted(found):
        goal = COMPOSITE_GOALS.get(key)
        mark = "" if goal is None else f"   goal >= {goal:.2f} {'ok' if rates[key] >= goal else 'MISSED'}"
        print(f"    {key:<34} recall {rates[key]:.3f}  ({sum(found[key])}/{len(found[key])}){mark}")
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("photos", nargs="?", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--overlays", type=Path, default=None, help="write GT (white) + prediction overlays here")
    parser.add_argument("--max-hands", type=int, default=MediaPipeOptions().max_hands)
    parser.add_argument("--no-composites", action="store_true", help="skip the hard-case composites")
    parser.add_argument("--hard-only", action="store_true",
                        help="of the composites, only the occluded / edge cases and the hand-free photos")
    parser.add_argument("--verbose", action="store_true", help="per-photo lines")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="override a MediaPipeOptions field of the project's detector (Python literal), "
                             "e.g. --set scan=False; repeatable")
    args = parser.parse_args(argv)
    try:
        options = MediaPipeOptions(max_hands=args.max_hands, **overrides(args.set))
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    if not (args.photos / "gt.json").is_file():
        print(f"skipped: no gt.json in {args.photos}")
        return 0
    photos = load_photos(args.photos)
    n_main = sum(not p.pseudo for p in photos)
    n_hands = sum(len(p.hands) for p in photos if not p.pseudo)
    print(f"{args.photos}: {n_main} photos with dataset GT ({n_hands} hands), "
          f"{len(photos) - n_main} with MediaPipe pseudo-GT (reported apart)")
    methods = [("plain", PlainMediaPipe(args.max_hands)),
               ("project", MediaPipeEstimator(options))]
    print(f"{'method':<10}{'set':<8}{'recall':>8}{'precision':>11}{'PCK@0.2':>9}{'PCK found':>11}"
          f"{'median ms':>11}{'mean ms':>9}{'p95 ms':>8}")
    for name, method in methods:
        # An untimed first pass: graphs, networks and their CPU delegates initialise on first use
        # (MediaPipe's pose landmark network, say, on the first photo with a person: 1-3 s).
        run(method, photos, None)
        predictions, times_ms = run(method, photos, args.overlays and args.overlays / name)
        matched = {}
        for label, pseudo in (("GT", False), ("pseudo", True)):
            index = [i for i, photo in enumerate(photos) if photo.pseudo == pseudo]
            result = evaluate([photos[i] for i in index], [predictions[i] for i in index])
            matched.update((i, len(m.pairs)) for i, m in zip(index, result.matches))
            s = summarize(result, [times_ms[i] for i in index])
            print(f"{name:<10}{label:<8}{s['recall']:>8.3f}{s['precision']:>11.3f}{s['pck']:>9.3f}"
                  f"{s['pck_found']:>11.3f}{s['median_ms']:>11.0f}{s['mean_ms']:>9.0f}{s['p95_ms']:>8.0f}")
        if args.verbose:
            for i, photo in enumerate(photos):
                print(f"    {photo.paths[0].name:<40} matched {matched[i]}/{len(photo.hands)}  "
                      f"predicted {len(predictions[i])}  {round(times_ms[i])} ms")
    print("goals (GT set, project): " + ", ".join(f"{k} {'<=' if k.endswith('_ms') else '>='} {v:g}"
                                                   for k, v in GOALS.items()))
    backgrounds = [] if args.no_composites else hand_free_backgrounds(photos, [method for _, method in methods])
    if not args.no_composites and not backgrounds:
        print("composites skipped: no photo of 600 px or more that is not mostly hands")
    if backgrounds:
        sets = [] if args.hard_only else [("composites", make_composites(photos, backgrounds)),
                                          ("interacting", make_interacting(photos, backgrounds))]
        sets += [("hard", make_hard_composites(photos, backgrounds)), ("wide", make_wide(photos, backgrounds))]
        for title, composites in sets:
            print(f"{title} (in memory, never saved): {len(composites)} from {len(backgrounds)} hand-free backgrounds")
            for name, method in methods:
                predictions, times_ms = timed(method, [comp.image for comp in composites])
                composite_report(name, composites, predictions, times_ms)
                if args.overlays is not None:
                    from handpose.io import save_png_atomic
                    from handpose.viz import draw_hands, draw_keypoints

                    for k, (comp, hands) in enumerate(zip(composites, predictions)):
                        if k % 5 == 1 or comp.labels[0]["kind"] != "single":
                            canvas = comp.image
                            for kp, visible in zip(comp.hands, comp.visible):
                                canvas = draw_keypoints(canvas, np.where(visible[:, None], kp, np.nan),
                                                        color=(255, 255, 255), radius=2)
                            save_png_atomic(args.overlays / f"{title}-{name}" / f"{k:03d}.png",
                                            draw_hands(canvas, hands))
        empty = negatives(backgrounds)
        print(f"hand-free photos (in memory, never saved): {len(empty)} (backgrounds and close-up crops of them)")
        for name, method in methods:
            false, times_ms = timed(method, empty)
            counts = [len(hands) for hands in false]
            print(f"  {name}: {sum(counts)} false hands on {sum(c > 0 for c in counts)} of {len(empty)} "
                  f"photos ({sum(counts) / len(empty):.2f} per photo), median {statistics.median(times_ms):.0f} ms"
                  + "".join(f"\n      photo {k}: {hand.source} score {hand.score:.2f} box {np.round(hand.box_xyxy)}"
                            for k, hands in enumerate(false) for hand in hands))
            if args.overlays is not None:
                from handpose.io import save_png_atomic
                from handpose.viz import draw_hands

                for k, (image, hands) in enumerate(zip(empty, false)):
                    if hands:
                        save_png_atomic(args.overlays / f"negatives-{name}" / f"{k:03d}.png", draw_hands(image, hands))
    for _, method in methods:
        method.close()
    return 0


def overrides(settings: list[str]) -> dict[str, object]:
    """``{"scan": False}`` from ``["scan=False"]`` (values are Python literals)."""
    import ast
    import dataclasses

    out = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep:
            raise ValueError(f"--set {setting!r}: expected OPTION=VALUE, e.g. scan=False")
        key = key.strip()
        if key not in {field.name for field in dataclasses.fields(MediaPipeOptions)}:
            raise ValueError(f"--set {setting!r}: MediaPipeOptions has no option {key!r}")
        try:
            out[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise ValueError(f"--set {setting!r}: the value must be a Python literal, e.g. False, 0.5, (0.5, 0.9)") from None
    return out


def timed(method, images: list[np.ndarray]) -> tuple[list[list[HandPrediction]], list[float]]:
    """``method``'s predictions on ``images`` and milliseconds per image."""
    predictions, times_ms = [], []
    for image in images:
        start = time.perf_counter()
        predictions.append(method.predict(image))
        times_ms.append((time.perf_counter() - start) * 1000.0)
    return predictions, times_ms


if __name__ == "__main__":
    sys.exit(main())
