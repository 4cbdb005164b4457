"""Registration benchmark: batched closed-form ``fit_scale_translation`` vs a per-sample lstsq loop.

Usage::

    .venv/bin/python bench/bench_registration.py [--batch 4096] [--repeats 20] [--threads 1]

Prints the median time of :func:`handpose.alignment.fit_scale_translation` (torch float32, as in the
ICCV 2021 network) at B = 1 and B = ``--batch`` with J = 21, the median time of a Python loop of
``numpy.linalg.lstsq`` on the confidence-weighted rows ``[Jx 1 0; Jy 0 1]`` at B = ``--batch``, the
speed-up, and the largest parameter difference between the two.

Goal: the batched fit is >= 50x faster than the loop at B = 4096.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch

from handpose.alignment import fit_scale_translation

NUM_JOINTS = 21
GOAL_SPEEDUP = 50.0


def make_problem(batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random joints ``(B, 21, 3)`` mm and noisy detections ``xyc`` ``(B, 21, 3)`` on a 64 grid."""
    rng = np.random.default_rng(seed)
    joints = rng.normal(size=(batch, NUM_JOINTS, 3)) * 40.0
    s = rng.uniform(0.1, 0.4, (batch, 1, 1))
    T = rng.uniform(12.0, 52.0, (batch, 1, 2))
    uv = s * joints[..., :2] + T + rng.normal(size=(batch, NUM_JOINTS, 2))
    c = rng.uniform(0.1, 1.0, (batch, NUM_JOINTS, 1))
    return np.concatenate([uv, c], axis=-1), joints


def lstsq_loop(xyc: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """``(B, 3)`` [s, tx, ty] by one weighted ``numpy.linalg.lstsq`` per sample."""
    out = np.empty((len(xyc), 3))
    for b in range(len(xyc)):
        c = np.repeat(xyc[b, :, 2], 2)
        M = np.zeros((2 * NUM_JOINTS, 3))
        M[0::2, 0], M[0::2, 1] = joints[b, :, 0], 1.0
        M[1::2, 0], M[1::2, 2] = joints[b, :, 1], 1.0
        out[b] = np.linalg.lstsq(c[:, None] * M, c * xyc[b, :, :2].reshape(-1), rcond=None)[0]
    return out


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    xyc, joints = make_problem(args.batch)
    xyc_t, joints_t = torch.from_numpy(xyc).float(), torch.from_numpy(joints).float()

    with torch.no_grad():
        t_one = median_seconds(lambda: fit_scale_translation(xyc_t[:1], joints_t[:1]), args.repeats)
        t_batch = median_seconds(lambda: fit_scale_translation(xyc_t, joints_t), args.repeats)
        params = fit_scale_translation(xyc_t, joints_t).params.double().numpy()
    t_loop = median_seconds(lambda: lstsq_loop(xyc, joints), max(1, args.repeats // 10))
    reference = lstsq_loop(xyc, joints)

    speedup = t_loop / t_batch
    print(f"fit_scale_translation  B=1     J={NUM_JOINTS}: {t_one * 1e6:9.1f} us")
    print(f"fit_scale_translation  B={args.batch:<5d} J={NUM_JOINTS}: {t_batch * 1e3:9.3f} ms"
          f"  ({t_batch / args.batch * 1e9:.0f} ns/sample, torch float32, {args.threads} thread)")
    print(f"numpy.linalg.lstsq loop B={args.batch:<5d} J={NUM_JOINTS}: {t_loop * 1e3:9.3f} ms"
          f"  ({t_loop / args.batch * 1e6:.1f} us/sample, float64)")
    print(f"max |params - lstsq|: {np.abs(params - reference).max():.2e} (float32 vs float64)")
    verdict = "PASS" if speedup >= GOAL_SPEEDUP else "MISS"
    print(f"speed-up at B={args.batch}: {speedup:.0f}x  goal >= {GOAL_SPEEDUP:.0f}x  {verdict}")


if __name__ == "__main__":
    main()
