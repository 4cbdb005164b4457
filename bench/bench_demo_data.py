"""Demo set figures: generation time, and how many of its hands the default estimator finds.

    python bench/bench_demo_data.py [--demo data/demo] [--regenerate]

A GT hand is found when a predicted hand matches it (greedy, one-to-one, by mean 2D keypoint
distance below half the larger side of the GT hand's keypoint box). Also prints PCK@0.2 on the
visible keypoints of found hands and the handedness agreement. Goal: >= 90 % of the hands found.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from handpose import io
from handpose.demo_data import generate
from handpose.pipeline import predict_image


def match_hands(gt_hands: list[dict], predictions: list) -> list[tuple[int, int]]:
    """Greedy one-to-one ``(gt index, prediction index)`` pairs by mean keypoint distance."""
    pairs = []
    for g, hand in enumerate(gt_hands):
        kp = np.asarray(hand["keypoints_2d"])
        size = (kp.max(0) - kp.min(0)).max()
        for p, pred in enumerate(predictions):
            d = np.linalg.norm(pred.keypoints_2d - kp, axis=1).mean()
            if d < 0.5 * size:
                pairs.append((d, g, p, size))
    used_g, used_p, out = set(), set(), []
    for d, g, p, size in sorted(pairs):
        if g not in used_g and p not in used_p:
            used_g.add(g)
            used_p.add(p)
            out.append((g, p))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("data/demo"))
    parser.add_argument("--regenerate", action="store_true", help="render into a temporary folder first")
    args = parser.parse_args()
    folder = args.demo
    if args.regenerate:
        folder = Path(tempfile.mkdtemp(prefix="demo_data_"))
        result = generate(folder)
        print(f"generation: {len(result.paths)} images in {result.seconds:.1f} s (goal < 60 s)")
    gt = json.loads((folder / "gt.json").read_text())
    found = total = handed = 0
    correct = visible = 0
    t0 = time.perf_counter()
    for entry in gt["images"]:
        image = io.load_image(folder / entry["image"])
        preds = predict_image(image)
        pairs = match_hands(entry["hands"], preds)
        total += len(entry["hands"])
        found += len(pairs)
        for g, p in pairs:
            hand = entry["hands"][g]
            kp, vis = np.asarray(hand["keypoints_2d"]), np.asarray(hand["visibility"], bool)
            size = (kp.max(0) - kp.min(0)).max()
            err = np.linalg.norm(preds[p].keypoints_2d - kp, axis=1)
            correct += int((err[vis] < 0.2 * size).sum())
            visible += int(vis.sum())
            handed += preds[p].handedness == hand["handedness"]
        missed = sorted(set(range(len(entry["hands"]))) - {g for g, _ in pairs})
        print(f"  {entry['image']:28s} {len(pairs)}/{len(entry['hands'])} found, {len(preds)} predicted"
              + (f", missed {[entry['hands'][g]['handedness'] for g in missed]}" if missed else ""))
    seconds = time.perf_counter() - t0
    print(f"found {found}/{total} hands = {100 * found / total:.1f} % (goal >= 90 %)")
    print(f"PCK@0.2 on visible keypoints of found hands: {100 * correct / max(visible, 1):.1f} %")
    print(f"handedness correct: {handed}/{found}")
    print(f"estimator time: {seconds:.1f} s for {len(gt['images'])} images")


if __name__ == "__main__":
    main()
