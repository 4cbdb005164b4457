"""Detection benchmark: plain MediaPipe vs the project's detector on photos with ground truth.

Usage::

    .venv/bin/python bench/bench_detection.py [PHOTOS_DIR] [--overlays DIR] [--max-hands N]

``PHOTOS_DIR`` holds a ``gt.json`` (format of ``../shared/photos/gt.json``; default that folder,
skipped cleanly when absent). Prints, per method, detection recall and precision, PCK@0.2 (a joint
is correct when its error is below 0.2 x the larger side of the GT hand's tight box; a missed GT
hand scores 0 on all joints), PCK@0.2 on found hands, and the median / mean milliseconds per photo.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handpose.detect import check_image
from handpose.keypoints import WRIST
from handpose.models.mediapipe import MediaPipeEstimator, MediaPipeOptions
from handpose.prediction import HandPrediction

DEFAULT_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"
PSEUDO_GT = "pseudo_gt_mediapipe_prediction"
PCK_THRESHOLD = 0.2
#: A prediction matches a GT hand when its mean joint error is below this fraction of the GT box side.
MATCH_DISTANCE = 0.5
GOALS = {"recall": 0.90, "precision": 0.90, "pck": 0.80, "median_ms": 300.0}


@dataclass
class GTHand:
    keypoints_2d: np.ndarray  # (21, 2) pixels
    valid: np.ndarray  # (21,) bool, joints that are annotated

    @property
    def size(self) -> float:
        pts = self.keypoints_2d[self.valid]
        return float(np.ptp(pts, axis=0).max())


@dataclass
class Photo:
    paths: list[Path]
    hands: list[GTHand]
    pseudo: bool


@dataclass
class Score:
    gt_hands: int = 0
    predicted: int = 0
    matched: int = 0
    correct_joints: float = 0.0
    total_joints: float = 0.0
    correct_found: float = 0.0
    total_found: float = 0.0

    def add(self, other: "Score") -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class PlainMediaPipe:
    """``Hands(static_image_mode=True, max_num_hands=N, model_complexity=1)`` as is (labels swapped
    to the person's hand, like the project's detector)."""

    def __init__(self, max_hands: int) -> None:
        import mediapipe as mp

        self._hands = mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=max_hands, model_complexity=1)

    def predict(self, image: np.ndarray) -> list[HandPrediction]:
        image = check_image(image)
        h, w = image.shape[:2]
        result = self._hands.process(image)
        out = []
        for lm, world, handed in zip(result.multi_hand_landmarks or [], result.multi_hand_world_landmarks or [],
                                     result.multi_handedness or []):
            xyz = np.array([[p.x, p.y, p.z] for p in world.landmark]) * 1000.0
            label = handed.classification[0]
            out.append(HandPrediction(np.array([[p.x * w, p.y * h] for p in lm.landmark]), xyz - xyz[WRIST],
                                      "right" if label.label == "Left" else "left", label.score, source="plain"))
        return out

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
        hands = []
        for hand in entry["hands"]:
            kp = np.asarray(hand["keypoints_2d"], dtype=np.float64)
            vis = hand.get("visibility")
            valid = np.ones(len(kp), bool) if vis is None else np.asarray(vis) != 0
            hands.append(GTHand(kp, valid))
        photo = by_hash.setdefault(digest, Photo([], [], entry["gt_type"] == PSEUDO_GT))
        photo.paths.append(path)
        photo.hands.extend(hands)
    return list(by_hash.values())


def score_photo(gt: list[GTHand], predicted: list[HandPrediction]) -> Score:
    """Greedy one-to-one matching by mean joint error / GT box side, then PCK@0.2."""
    score = Score(gt_hands=len(gt), predicted=len(predicted))
    pairs = []
    for g, hand in enumerate(gt):
        for p, pred in enumerate(predicted):
            err = np.linalg.norm(pred.keypoints_2d - hand.keypoints_2d, axis=-1)[hand.valid]
            pairs.append((float(err.mean()) / hand.size, g, p, err))
    used_g, used_p = set(), set()
    for dist, g, p, err in sorted(pairs, key=lambda x: x[0]):
        if dist > MATCH_DISTANCE or g in used_g or p in used_p:
            continue
        used_g.add(g)
        used_p.add(p)
        correct = float((err < PCK_THRESHOLD * gt[g].size).sum())
        score.matched += 1
        score.correct_joints += correct
        score.correct_found += correct
        score.total_found += len(err)
    score.total_joints = float(sum(hand.valid.sum() for hand in gt))
    return score


def summarize(score: Score, times_ms: list[float]) -> dict[str, float]:
    return {
        "recall": score.matched / max(score.gt_hands, 1),
        "precision": score.matched / max(score.predicted, 1),
        "pck": score.correct_joints / max(score.total_joints, 1),
        "pck_found": score.correct_found / max(score.total_found, 1),
        "median_ms": statistics.median(times_ms) if times_ms else float("nan"),
        "mean_ms": statistics.fmean(times_ms) if times_ms else float("nan"),
    }


def run(method, photos: list[Photo], overlays: Path | None) -> tuple[dict, dict, list[tuple]]:
    from handpose.io import load_image

    main, pseudo = Score(), Score()
    main_ms, pseudo_ms = [], []
    per_photo = []
    for photo in photos:
        image = load_image(photo.paths[0])
        start = time.perf_counter()
        hands = method.predict(image)
        elapsed = (time.perf_counter() - start) * 1000.0
        s = score_photo(photo.hands, hands)
        (pseudo if photo.pseudo else main).add(s)
        (pseudo_ms if photo.pseudo else main_ms).append(elapsed)
        per_photo.append((photo.paths[0].name, s.matched, len(photo.hands), len(hands), round(elapsed)))
        if overlays is not None:
            from handpose.io import save_png_atomic
            from handpose.viz import draw_hands, draw_keypoints

            canvas = image
            for hand in photo.hands:
                canvas = draw_keypoints(canvas, np.where(hand.valid[:, None], hand.keypoints_2d, np.nan),
                                        color=(255, 255, 255), radius=2)
            canvas = draw_hands(canvas, hands)
            save_png_atomic(overlays / f"{photo.paths[0].parent.name}__{photo.paths[0].stem}.png", canvas)
    return summarize(main, main_ms), summarize(pseudo, pseudo_ms), per_photo


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
        main_s, pseudo_s, per_photo = run(method, photos, args.overlays and args.overlays / name)
        for label, s in (("GT", main_s), ("pseudo", pseudo_s)):
            print(f"{name:<10}{label:<8}{s['recall']:>8.3f}{s['precision']:>11.3f}{s['pck']:>9.3f}"
                  f"{s['pck_found']:>11.3f}{s['median_ms']:>11.0f}{s['mean_ms']:>9.0f}")
        if args.verbose:
            for name, matched, n_gt, n_pred, ms in per_photo:
                print(f"    {name:<40} matched {matched}/{n_gt}  predicted {n_pred}  {ms} ms")
        method.close()
    print("goals: " + ", ".join(f"{k} {'<' if k == 'median_ms' else '>='} {v:g}" for k, v in GOALS.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
