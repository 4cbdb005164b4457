"""Gesture benchmark: finger counts and named gestures (:mod:`handpose.gestures`) on labelled hands.

Usage::

    .venv/bin/python bench/bench_gestures.py [--demo data/demo] [--photos ../shared/photos/mediapipe_gesture_hagrid]

1. **Demo set** (``data/demo``: ``gt.json`` + ``metadata.csv``, made by ``handpose demo-data``).
   Each hand's gesture is its scene's (:data:`handpose.demo_data.SCENES`), whose ``metadata.csv``
   tag is :data:`handpose.demo_data.GESTURE_TAGS`; the expected gesture name and finger count are
   :data:`handpose.demo_clip.EXPECTED` (none for a relaxed hand, no count for a pinch). Classified
   from (a) the exact 3D ground truth: the classifier alone, and (b) the default estimator's 3D
   keypoints (MediaPipe world landmarks), each matched to its true hand by 2D keypoints.
2. **Real photos** with known classes (HaGRID samples, the class is the file name's prefix),
   skipped cleanly when the folder is absent. Classes without a counterpart (``none``, ``mute``,
   ``dislike``...) are listed but not scored.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from handpose import groundtruth, io
from handpose.demo_clip import EXPECTED
from handpose.demo_data import GESTURE_TAGS, SCENES
from handpose.gestures import classify
from handpose.metrics import match_hands

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = ROOT.parent / "shared" / "photos" / "mediapipe_gesture_hagrid"
#: HaGRID class -> gesture name of :mod:`handpose.gestures`.
HAGRID: dict[str, str] = {
    "call": "call", "fist": "fist", "four": "four", "like": "thumbs_up", "ok": "ok", "one": "point",
    "palm": "open_palm", "stop": "open_palm", "stop_inverted": "open_palm", "peace": "victory",
    "peace_inverted": "victory", "two_up": "victory", "two_up_inverted": "victory", "rock": "rock",
    "three": "three", "three2": "three",
}


def demo_rows(demo: Path, estimator) -> list[dict]:
    """One row per true hand of the demo set: tag, expected and predicted gestures and counts."""
    gt = json.loads((demo / "gt.json").read_text())
    tags = groundtruth.read_metadata_csv(demo / "metadata.csv")
    scenes = {f"{s.name}.jpg": s for s in SCENES}
    rows = []
    for entry in gt["images"]:
        spec = scenes.get(entry["image"])
        if spec is None or len(spec.hands) != len(entry["hands"]):
            print(f"  skipped {entry['image']}: not a scene of this version of demo_data", file=sys.stderr)
            continue
        hands = estimator.predict(io.load_image(demo / entry["image"]))
        truth_2d = np.array([h["keypoints_2d"] for h in entry["hands"]])
        visible = np.array([h["visibility"] for h in entry["hands"]], bool)
        pred_2d = np.stack([h.keypoints_2d for h in hands]) if hands else np.zeros((0, 21, 2))
        matched = {g: p for p, g in match_hands(pred_2d, truth_2d, visible).pairs}
        for g, (hand_spec, truth) in enumerate(zip(spec.hands, entry["hands"])):
            gesture, count = EXPECTED[hand_spec.gesture]
            from_truth = classify(np.array(truth["keypoints_3d_cam_mm"]))
            from_model = classify(hands[matched[g]].keypoints_3d) if g in matched else None
            rows.append({"image": entry["image"], "tag": GESTURE_TAGS[hand_spec.gesture],
                         "csv_tags": tags.get(entry["image"], {}).get("gesture", ""), "pose": hand_spec.gesture,
                         "gesture": gesture, "count": count, "truth": from_truth, "model": from_model})
    return rows


def accuracy(pairs: list[tuple]) -> str:
    scored = [p for p in pairs if p[0] is not None]
    if not scored:
        return "  n/a"
    return f"{np.mean([a == b for a, b in scored]):5.2f} ({sum(a == b for a, b in scored)}/{len(scored)})"


def print_demo(rows: list[dict]) -> None:
    print(f"\nDemo set: {len(rows)} hands")
    for source in ("truth", "model"):
        name = {"truth": "exact 3D ground truth", "model": "estimator's 3D keypoints (missed hands wrong)"}[source]
        gestures = [(r["gesture"], r[source].gesture if r[source] else None) for r in rows]
        counts = [(r["count"], r[source].count if r[source] else None) for r in rows]
        print(f"  {name:<46} gesture {accuracy(gestures)}   fingers {accuracy(counts)}")
    print(f"\n  {'image':<24}{'pose':<9}{'expected':<16}{'from truth':<22}{'from estimator':<22}")
    for r in rows:
        show = lambda g: f"{g.gesture} ({g.count})" if g else "missed"  # noqa: E731
        expected = f"{r['gesture'] or '-'} ({'-' if r['count'] is None else r['count']})"
        print(f"  {r['image']:<24}{r['pose']:<9}{expected:<16}{show(r['truth']):<22}{show(r['model']):<22}")


def print_photos(folder: Path, estimator) -> None:
    photos = io.list_images(folder) if folder.is_dir() else []
    if not photos:
        print(f"\nReal photos: skipped ({folder} not found or empty)")
        return
    print(f"\nReal photos ({folder}): {len(photos)}")
    pairs = []
    for path in photos:
        label = path.stem.rsplit("_", 1)[0] if "_" in path.stem else path.stem
        hands = estimator.predict(io.load_image(path))
        got = classify(hands[0].keypoints_3d) if hands else None
        expected = HAGRID.get(label)
        if expected is not None:
            pairs.append((expected, got.gesture if got else None))
        shown = f"{got.gesture} ({got.count} fingers)" if got else "no hand found"
        print(f"  {path.name[:40]:<42}{label:<16}{expected or '(not scored)':<14}{shown}")
    print(f"  gesture accuracy on scored photos: {accuracy(pairs)}")
    print(f"  predicted: {dict(Counter(p[1] for p in pairs))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    args = parser.parse_args(argv)
    from handpose.models.mediapipe import MediaPipeEstimator

    print("Gestures from 3D keypoints (handpose.gestures); estimator: mediapipe (default options)")
    with MediaPipeEstimator() as estimator:
        if (args.demo / "gt.json").is_file():
            print_demo(demo_rows(args.demo, estimator))
        else:
            print(f"\nDemo set: skipped ({args.demo / 'gt.json'} not found: run `handpose demo-data`)")
        print_photos(args.photos, estimator)
    return 0


if __name__ == "__main__":
    sys.exit(main())
