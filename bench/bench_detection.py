"""Detection benchmark: plain MediaPipe vs the project's detector on photos with ground truth.

Usage::

    .venv/bin/python bench/bench_detection.py [PHOTOS_DIR] [--overlays DIR] [--max-hands N]

``PHOTOS_DIR`` holds a ``gt.json`` (format of ``../shared/photos/gt.json``; default that folder,
skipped cleanly when absent). Prints, per method, detection recall and precision, PCK@0.2 (a joint
is correct when its error is below 0.2 x the larger side of the GT hand's tight box; a missed GT
hand scores 0 on all joints), PCK@0.2 on found hands, and the median / mean milliseconds per photo:
the measure of :func:`handpose.metrics.evaluate_2d` (one-to-one matching by mean joint error / GT
box side, at most 0.5).

Files with identical pixels (e.g. CMU Panoptic's ``_l`` / ``_r`` copies, one hand labelled in
each) are scored once with the union of their hands, so a correctly found second hand is not
counted as a false positive. Photos whose ``gt_type`` is ``pseudo_gt_mediapipe_prediction`` are
MediaPipe's own output: they are reported on a separate line, never in the main score.

Goals (issue 4): recall >= 0.90, precision >= 0.90, PCK@0.2 >= 0.80, median < 300 ms per photo.
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

from handpose.detect import check_image
from handpose.keypoints import NUM_KEYPOINTS
from handpose.metrics import Evaluation2D, evaluate_2d
from handpose.models.mediapipe import MediaPipeEstimator, MediaPipeOptions, read_landmarks
from handpose.prediction import HandPrediction

DEFAULT_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"
PSEUDO_GT = "pseudo_gt_mediapipe_prediction"
PCK_THRESHOLD = 0.2
#: A prediction matches a GT hand when its mean joint error is below this fraction of the GT box side.
MATCH_DISTANCE = 0.5
GOALS = {"recall": 0.90, "precision": 0.90, "pck": 0.80, "median_ms": 300.0}


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

        self._hands = mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=max_hands, model_complexity=1)

    def predict(self, image: np.ndarray) -> list[HandPrediction]:
        image = check_image(image)
        h, w = image.shape[:2]
        hands = read_landmarks(self._hands.process(image), w, h)
        return [HandPrediction(**hand._asdict(), source="plain") for hand in hands]

    def close(self) -> None:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("photos", nargs="?", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--overlays", type=Path, default=None, help="write GT (white) + prediction overlays here")
    parser.add_argument("--max-hands", type=int, default=2)
    parser.add_argument("--verbose", action="store_true", help="per-photo lines")
    args = parser.parse_args(argv)
    if not (args.photos / "gt.json").is_file():
        print(f"skipped: no gt.json in {args.photos}")
        return 0
    photos = load_photos(args.photos)
    n_main = sum(not p.pseudo for p in photos)
    n_hands = sum(len(p.hands) for p in photos if not p.pseudo)
    print(f"{args.photos}: {n_main} photos with dataset GT ({n_hands} hands), "
          f"{len(photos) - n_main} with MediaPipe pseudo-GT (reported apart)")
    methods = [("plain", PlainMediaPipe(args.max_hands)),
               ("project", MediaPipeEstimator(MediaPipeOptions(max_hands=args.max_hands)))]
    print(f"{'method':<10}{'set':<8}{'recall':>8}{'precision':>11}{'PCK@0.2':>9}{'PCK found':>11}"
          f"{'median ms':>11}{'mean ms':>9}")
    for name, method in methods:
        method.predict(np.zeros((64, 64, 3), np.uint8))  # build the graphs outside the timings
        predictions, times_ms = run(method, photos, args.overlays and args.overlays / name)
        matched = {}
        for label, pseudo in (("GT", False), ("pseudo", True)):
            index = [i for i, photo in enumerate(photos) if photo.pseudo == pseudo]
            result = evaluate([photos[i] for i in index], [predictions[i] for i in index])
            matched.update((i, len(m.pairs)) for i, m in zip(index, result.matches))
            s = summarize(result, [times_ms[i] for i in index])
            print(f"{name:<10}{label:<8}{s['recall']:>8.3f}{s['precision']:>11.3f}{s['pck']:>9.3f}"
                  f"{s['pck_found']:>11.3f}{s['median_ms']:>11.0f}{s['mean_ms']:>9.0f}")
        if args.verbose:
            for i, photo in enumerate(photos):
                print(f"    {photo.paths[0].name:<40} matched {matched[i]}/{len(photo.hands)}  "
                      f"predicted {len(predictions[i])}  {round(times_ms[i])} ms")
        method.close()
    print("goals: " + ", ".join(f"{k} {'<' if k == 'median_ms' else '>='} {v:g}" for k, v in GOALS.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
