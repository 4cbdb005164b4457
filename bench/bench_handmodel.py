"""Hand model speed: forward (and forward + backward on the keypoints) of the open hand, per batch.

Run: ``.venv/bin/python bench/bench_handmodel.py``. Prints milliseconds per call and per hand, with
the mesh and keypoints only (``with_vertices=False``, as in the fitting loop).
"""
from __future__ import annotations

import time

import torch

from handpose.handmodel import load_hand_model, open_hand_path


def timed(fn, repeat: int = 20) -> float:
    """Median milliseconds of ``fn()`` over ``repeat`` calls after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def main() -> None:
    start = time.perf_counter()
    model = load_hand_model("open", "right")
    print(f"open hand: export {open_hand_path().stat().st_size / 1024:.0f} KB, "
          f"loaded in {1000 * (time.perf_counter() - start):.0f} ms, torch threads {torch.get_num_threads()}")
    for batch in (1, 16, 64):
        pose = torch.zeros(batch, model.num_pose, requires_grad=True)
        for with_vertices in (True, False):
            forward = timed(lambda: model(pose, with_vertices=with_vertices))

            def step() -> None:
                model(pose, with_vertices=with_vertices).keypoints.square().sum().backward()

            backward = timed(step)
            label = "mesh + keypoints" if with_vertices else "keypoints only  "
            print(f"  B={batch:3d} {label}: forward {forward:6.2f} ms ({forward / batch:.3f} ms/hand), "
                  f"forward+backward {backward:6.2f} ms ({backward / batch:.3f} ms/hand)")


if __name__ == "__main__":
    main()
