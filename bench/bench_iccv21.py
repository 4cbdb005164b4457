"""Latency and memory of the ICCV 2021 two-hand network on CPU or CUDA (random weights, fake MANO).

Usage::

    python bench/bench_iccv21.py [--release v2] [--device auto|cpu|cuda] [--batches 1 8 32]
                                 [--repeats 3] [--threads N] [--end-to-end] [--photos 32]

Prints, per batch size, the median wall time of a forward pass (InterNet heatmaps + mesh
regressor + 3 cascades) after one warm-up (CUDA synchronised), per image and per second, and the
peak memory (process RSS; on CUDA also ``torch.cuda.max_memory_allocated``).

On CUDA the same batch is also run on the CPU, side by side: the CPU's time at batch 1 (the
baseline) and the largest difference between the two devices' outputs (heatmap keypoints and
final joints), with cuDNN's TF32 convolutions on (PyTorch's default) and off (float32 rounding).

``--end-to-end`` saves the random network as a v2 checkpoint in a temporary folder and times
:meth:`ICCV21Estimator.predict_batch` on ``--photos`` random 480 x 640 photos with one hand box
each (crop, forward, post-processing, evidence), for ``batch_size`` 1 and each of ``--batches``.

Goals (issue 17, on a data-centre GPU): about 44 ms per image at batch 1, under 2 ms at batch 32;
a 2-core CPU takes about 0.5-3 s per image. No files are read: MANO buffers are random arrays
with MANO's shapes.
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from handpose.models.iccv21 import ICCV21Estimator, build_iccv21, fill_mano_pair, resolve_device, save_iccv21
from handpose.models.iccv21.mano_layers import MANO_PARENTS

GOAL_S_PER_IMAGE = {1: 0.044, 32: 0.002}  # CUDA, issue 17


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


def peak_gpu_mb(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}" if device.type == "cuda" else "-"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def goal(batch: int, device: torch.device) -> str:
    return f"{GOAL_S_PER_IMAGE[batch] * 1000:.0f} ms" if device.type == "cuda" and batch in GOAL_S_PER_IMAGE else "-"


def bench_network(net: torch.nn.Module, device: torch.device, batches: list[int], repeats: int) -> None:
    print(f"{'batch':>5} {'median s':>9} {'ms/image':>9} {'goal':>6} {'images/s':>9} {'min s':>7} "
          f"{'peak RSS MB':>12} {'peak GPU MB':>12}")
    for batch in batches:
        image = torch.rand(batch, 3, 256, 256, generator=torch.Generator().manual_seed(batch)).to(device)
        with torch.inference_mode():
            times = timed(lambda: net(image), device, repeats)
        median = statistics.median(times)
        print(f"{batch:>5} {median:>9.3f} {1000 * median / batch:>9.1f} {goal(batch, device):>6} "
              f"{batch / median:>9.1f} {min(times):>7.3f} {peak_rss_mb():>12.0f} {peak_gpu_mb(device):>12}")


def compare_with_cpu(net: torch.nn.Module, device: torch.device, repeats: int) -> None:
    """CPU baseline at batch 1 and the CPU-vs-device output difference on a batch of 2, with cuDNN's
    TF32 convolutions as PyTorch sets them by default and with them off (full float32)."""
    image = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(7))
    default_tf32 = torch.backends.cudnn.allow_tf32
    on_device = {}
    with torch.inference_mode():
        for tf32 in (default_tf32, False):
            torch.backends.cudnn.allow_tf32 = tf32
            on_device[tf32] = net(image.to(device))
        torch.backends.cudnn.allow_tf32 = default_tf32
        net.cpu()
        cpu_times = timed(lambda: net(image[:1]), torch.device("cpu"), max(1, repeats // 2))
        on_cpu = net(image)
        net.to(device)
    print(f"CPU baseline (batch 1, {torch.get_num_threads()} threads): {statistics.median(cpu_times):.3f} s/image")
    for tf32, out in on_device.items():
        joints = max(float((getattr(out, s).joints[:, -1].cpu() - getattr(on_cpu, s).joints[:, -1]).abs().max())
                     for s in ("right", "left"))
        same_argmax = float((out.xyc[..., :2].cpu() == on_cpu.xyc[..., :2]).all(-1).float().mean())
        peak = float(((out.xyc[..., 2].cpu() - on_cpu.xyc[..., 2]).abs() / on_cpu.xyc[..., 2].abs().clamp_min(1e-6)).max())
        print(f"{device} (cuDNN TF32 {'on' if tf32 else 'off'}) vs CPU on 2 images: heatmap argmax equal for "
              f"{same_argmax:.1%} of the 84 keypoints, peak values within {peak:.1e} (relative), final joints "
              f"within {joints:.2e} mm")


def bench_end_to_end(net: torch.nn.Module, device: torch.device, batches: list[int], photos: int) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(photos)]
    boxes = [np.array([[200.0, 120.0, 440.0, 360.0]]) for _ in range(photos)]
    with tempfile.TemporaryDirectory() as folder:
        save_iccv21(net.cpu(), Path(folder) / "snapshot_99.pth.tar")
        net.to(device)
        print(f"\nend to end: ICCV21Estimator.predict_batch on {photos} photos 480 x 640 (crop, forward, "
              "post-processing)")
        print(f"{'batch_size':>10} {'total s':>8} {'ms/photo':>9} {'photos/s':>9}")
        for batch in [1, *[b for b in batches if b != 1]]:
            estimator = ICCV21Estimator(weights_dir=folder, device=str(device), batch_size=batch, keep_absent=True)
            estimator.predict_batch(images[:batch], boxes[:batch])  # warm-up
            sync(device)
            start = time.perf_counter()
            results = estimator.predict_batch(images, boxes)
            sync(device)
            total = time.perf_counter() - start
            assert len(results) == photos and all(len(hands) == 2 for hands in results)
            print(f"{batch:>10} {total:>8.2f} {1000 * total / photos:>9.1f} {photos / total:>9.1f}")
            del estimator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", choices=("v1", "v2"), default="v2")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    parser.add_argument("--batches", type=int, nargs="+", default=None,
                        help="batch sizes (default 1 8 on CPU, 1 8 32 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--end-to-end", action="store_true", help="also time ICCV21Estimator.predict_batch")
    parser.add_argument("--photos", type=int, default=32, help="photos for --end-to-end (default 32)")
    args = parser.parse_args()
    logging.getLogger("handpose.models.iccv21").setLevel(logging.ERROR)  # random weights fail the self-check
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    batches = args.batches or ([1, 8, 32] if device.type == "cuda" else [1, 8])

    torch.manual_seed(0)
    start = time.perf_counter()
    net = build_iccv21(args.release)
    fill_mano_pair(net.mesh_reg.mano_layer, fake_mano(1), fake_mano(2))
    net.to(device)
    build_s = time.perf_counter() - start
    params = sum(p.numel() for p in net.parameters())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPUs"
    print(f"ICCV21 {args.release} on {device} ({name}): {params / 1e6:.1f}M parameters, built in {build_s:.1f} s, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"after build: peak RSS {peak_rss_mb():.0f} MB")
    bench_network(net, device, batches, args.repeats)
    if device.type == "cuda":
        compare_with_cpu(net, device, args.repeats)
    if args.end_to_end:
        if args.release != "v2":
            parser.error("--end-to-end saves a v2 checkpoint: use --release v2")
        bench_end_to_end(net, device, batches, args.photos)


if __name__ == "__main__":
    main()
