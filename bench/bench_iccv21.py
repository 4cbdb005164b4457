"""CPU latency and peak memory of the ICCV 2021 two-hand network (random weights, fake MANO).

Usage: ``python bench/bench_iccv21.py [--release v2] [--batches 1 8] [--repeats 3] [--threads N]``

Prints, per batch size, the median wall time of a forward pass (InterNet heatmaps + mesh
regressor + 3 cascades) after one warm-up, and the process's peak resident memory (ru_maxrss).
No files are read: MANO buffers are filled with random arrays of MANO's shapes.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from types import SimpleNamespace

import numpy as np
import torch

from handpose.models.iccv21 import build_iccv21, fill_mano_pair
from handpose.models.iccv21.mano_layers import MANO_PARENTS


def fake_mano(seed: int) -> SimpleNamespace:
    """Random arrays with MANO's shapes (the network's cost does not depend on their values)."""
    rng = np.random.default_rng(seed)
    weights = rng.random((778, 16))
    regressor = rng.random((16, 778))
    return SimpleNamespace(
        v_template=rng.normal(0.0, 0.04, (778, 3)), shapedirs=rng.normal(0.0, 0.01, (778, 3, 10)),
        posedirs=rng.normal(0.0, 0.005, (778, 3, 135)), J_regressor=regressor / regressor.sum(1, keepdims=True),
        weights=weights / weights.sum(1, keepdims=True), faces=rng.integers(0, 778, (1538, 3)),
        kintree_table=np.array([[2**32 - 1, *MANO_PARENTS[1:]], list(range(16))]),
        hands_mean=rng.normal(0.0, 0.2, 45), hands_components=np.eye(45),
    )


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", choices=("v1", "v2"), default="v2")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    start = time.perf_counter()
    net = build_iccv21(args.release)
    fill_mano_pair(net.mesh_reg.mano_layer, fake_mano(1), fake_mano(2))
    build_s = time.perf_counter() - start
    params = sum(p.numel() for p in net.parameters())
    print(f"ICCV21 {args.release}: {params / 1e6:.1f}M parameters, built in {build_s:.1f} s, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"after build: peak RSS {peak_rss_mb():.0f} MB")
    print(f"{'batch':>5} {'median s':>9} {'s/image':>8} {'min s':>7} {'peak RSS MB':>12}")
    for batch in args.batches:
        image = torch.rand(batch, 3, 256, 256)
        times = []
        with torch.inference_mode():
            net(image)  # warm-up
            for _ in range(args.repeats):
                start = time.perf_counter()
                net(image)
                times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(f"{batch:>5} {median:>9.2f} {median / batch:>8.2f} {min(times):>7.2f} {peak_rss_mb():>12.0f}")


if __name__ == "__main__":
    main()
