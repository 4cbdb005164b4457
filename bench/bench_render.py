"""Rendering benchmark: a 640x480 overlay of two hands with the numpy z-buffer rasteriser.

Usage::

    .venv/bin/python bench/bench_render.py [--repeats 20] [--out overlay.png]

Uses the open hand model (1,609 vertices, 3,196 faces per hand) when its export exists, else two
ellipsoids of about the same size (1,602 vertices). The hands are about 250 px tall and overlap,
so the z-buffer decides between them. Prints the median and best milliseconds of
:func:`handpose.render.overlay` (2x2 supersampling) and of the bare :func:`rasterize` call.

Goal (issue 5): <= 30 ms per overlay.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from handpose.camera import project
from handpose.camera import default_intrinsics
from handpose.mesh import uv_sphere
from handpose.render import overlay, rasterize

GOAL_MS = 30.0


def two_hands() -> tuple[list[np.ndarray], list[np.ndarray], str]:
    try:
        import torch

        from handpose.handmodel import load_hand_model

        meshes = []
        for side, x, z in (("right", -30.0, 450.0), ("left", 30.0, 520.0)):
            model = load_hand_model("open", side)
            pose = ((lambda lo, hi: (lo + hi) / 3)(*model.pose_limits()))[None]
            orient = torch.tensor([[np.pi, 0.0, 0.0]])  # fingers up, back of the hand to the camera
            with torch.no_grad():
                out = model(pose=pose, global_orient=orient, transl=torch.tensor([[x, 80.0, z]]))
            meshes.append((out.vertices[0].double().numpy(), model.faces.numpy()))
        label = "open hand model"
    except (FileNotFoundError, ImportError, OSError) as error:
        print(f"open hand model unavailable ({error}); using ellipsoids")
        v, f = uv_sphere(41, 41)
        v = v * [45.0, 90.0, 20.0]  # a hand-sized ellipsoid
        meshes = [(v + [-40.0, 0.0, 450.0], f), (v + [30.0, 20.0, 500.0], f)]
        label = "ellipsoids"
    return [m[0] for m in meshes], [m[1] for m in meshes], label


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000.0 * (time.perf_counter() - start))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=None, help="write the overlay PNG here (e.g. under /tmp)")
    args = parser.parse_args(argv)
    vertices, faces, label = two_hands()
    K = default_intrinsics(640, 480)
    rng = np.random.default_rng(0)
    image = rng.integers(60, 120, (480, 640, 3), dtype=np.uint8)
    out, mask = overlay(image, vertices, faces, K)
    ms = timed(lambda: overlay(image, vertices, faces, K), args.repeats)
    screen = np.concatenate([np.c_[project(v, K), v[:, 2]] for v in vertices])
    offsets = np.cumsum([0] + [len(v) for v in vertices[:-1]])
    all_faces = np.concatenate([f + o for f, o in zip(faces, offsets)])
    raster_ms = timed(lambda: rasterize(screen, all_faces, 480, 640), args.repeats)
    print(f"{label}: {sum(map(len, vertices))} vertices, {sum(map(len, faces))} faces, "
          f"{(mask > 0).sum()} covered pixels of 640x480")
    verdict = "ok" if statistics.median(ms) <= GOAL_MS else "MISSED"
    print(f"  overlay (2x2 supersampled, shaded):  median {statistics.median(ms):6.1f} ms, best {min(ms):6.1f} ms "
          f"(goal <= {GOAL_MS:.0f} ms) {verdict}")
    print(f"  rasterize (1x, full frame, depth + ids + barycentrics): median {statistics.median(raster_ms):6.1f} ms")
    if args.out:
        from handpose.io import save_png_atomic

        save_png_atomic(args.out, out)
        print(f"  wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
