"""Video benchmark: tracking, smoothing, gestures and frame rate on the rendered clip (issue 14).

Usage::

    .venv/bin/python bench/bench_video.py [--mesh-frames 20] [--keep DIR]

Renders :func:`handpose.demo_clip.render_clip` (640 x 480, 30 fps, ten gestures, a turning wrist,
a second hand entering halfway; exact truth per frame) into a temporary folder (``--keep`` keeps
the clip and the annotated video there), then prints, against the goals:

* accuracy, with and without One-Euro smoothing: per-frame PCK@0.1 (mean), hands found, track-id
  switches, jitter on held poses (mean frame-to-frame keypoint acceleration, px/frame^2), gesture
  and finger-count accuracy. Goals: smoothing at least halves the jitter and costs at most 0.02 PCK.
* frames per second at 640 x 480 on the one-hand part of the clip, side by side: every frame
  searched from scratch (the photo path's ``full`` view, the baseline), MediaPipe's tracking, and
  tracking with the mesh overlay (open hand fit + render). Each includes gestures and drawing, not
  decoding. Goals: >= 25 FPS tracking one hand, >= 15 FPS with meshes.
* the whole ``handpose video`` run (decode, two hands, drawing, encode) for reference.

Timings depend on the machine's load: the figures of a shared 2-core machine are noisy.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from handpose.demo_clip import evaluate_clip, render_clip, track_clip, write_clip
from handpose.video import FrameProcessor, annotate, process_video

GOALS = {"jitter_ratio": 0.5, "pck_cost": 0.02, "fps_tracking": 25.0, "fps_meshes": 15.0}


def frame_rate(frames: np.ndarray, fps: float, **settings) -> float:
    """Frames per second of :class:`FrameProcessor` (``settings``) + :func:`annotate` over ``frames``
    (the first frame, which builds the graphs and models, is not timed)."""
    processor = FrameProcessor(max_hands=1, **settings)
    try:
        processor.process(frames[0], 0, 0.0)
        start = time.perf_counter()
        for i, frame in enumerate(frames[1:], start=1):
            annotate(frame, processor.process(frame, i, i / fps))
        return (len(frames) - 1) / (time.perf_counter() - start)
    finally:
        processor.close()


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mesh-frames", type=int, default=20, help="frames timed with meshes (slow; default 20)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the clip and the annotated video here")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    clip = render_clip(progress=True)
    print(f"clip: {len(clip)} frames, {clip.frames.shape[2]} x {clip.frames.shape[1]}, {clip.fps:g} fps, "
          f"rendered in {time.perf_counter() - start:.1f} s")

    runs, seconds = track_clip(clip)
    raw, smooth = evaluate_clip(clip, runs[False]), evaluate_clip(clip, runs[True])
    print("\nAccuracy on the clip (exact truth)            raw     smoothed")
    print(f"  PCK@0.1, mean over frames                 {np.nanmean(raw.pck):7.3f}  {np.nanmean(smooth.pck):7.3f}")
    print(f"  hands found                               {raw.detected:7.3f}  {smooth.detected:7.3f}")
    print(f"  track-id switches                         {raw.id_switches:7d}  {smooth.id_switches:7d}")
    print(f"  jitter on held poses, px/frame^2          {raw.jitter:7.3f}  {smooth.jitter:7.3f}"
          f"   (the true motion's own: {raw.truth_jitter:.3f})")
    print(f"  gesture accuracy                          {raw.gesture_accuracy:7.3f}  {smooth.gesture_accuracy:7.3f}")
    print(f"  finger-count accuracy                     {raw.count_accuracy:7.3f}  {smooth.count_accuracy:7.3f}")
    ratio = smooth.jitter / raw.jitter
    cost = np.nanmean(raw.pck) - np.nanmean(smooth.pck)
    print(f"  smoothing: jitter x {ratio:.2f} (goal <= {GOALS['jitter_ratio']}: "
          f"{verdict(ratio <= GOALS['jitter_ratio'])}), PCK cost {cost:+.3f} (goal <= {GOALS['pck_cost']}: "
          f"{verdict(cost <= GOALS['pck_cost'])})")
    print(f"  MediaPipe tracking alone: {len(clip) / seconds:.1f} frames/s over the whole clip (up to two hands)")

    one_hand = clip.frames[: next(i for i, row in enumerate(clip.truth) if len(row) > 1)]
    print(f"\nFrames per second, 640 x 480, one hand ({len(one_hand)} frames; gestures and drawing included)")
    baseline = frame_rate(one_hand, clip.fps, tracking=False, smoothing=False)
    tracking = frame_rate(one_hand, clip.fps)
    meshes = frame_rate(one_hand[: args.mesh_frames + 1], clip.fps, meshes=True)
    print(f"  every frame from scratch (baseline)       {baseline:7.1f}")
    print(f"  tracking + smoothing                      {tracking:7.1f}   goal >= {GOALS['fps_tracking']:g}: "
          f"{verdict(tracking >= GOALS['fps_tracking'])}")
    print(f"  tracking + mesh overlay                   {meshes:7.1f}   goal >= {GOALS['fps_meshes']:g}: "
          f"{verdict(meshes >= GOALS['fps_meshes'])} ({args.mesh_frames} frames)")

    folder = Path(tempfile.mkdtemp(prefix="handpose_bench_video_"))
    try:
        video = write_clip(clip, folder / "clip.mp4")
        result = process_video(video, folder / "out", progress=False)
        print(f"\nhandpose video on the clip (decode, two hands, drawing, encode): {result.fps:.1f} frames/s")
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in (video, result.video, result.jsonl):
                shutil.copy2(path, args.keep / path.name)
            print(f"kept the clip and its outputs in {args.keep}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("\n(timings from a shared, loaded 2-core machine are noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
