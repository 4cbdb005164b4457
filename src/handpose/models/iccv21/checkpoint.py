"""Building the ICCV 2021 network and loading the authors' checkpoints, strictly and safely.

Formats (ARCHITECTURE.md section 4):

* v1 ``model.pts``: a flat ``{name: tensor}`` state_dict.
* v2 ``snapshot_99.pth.tar``: ``{"epoch", "network": DataParallel state_dict, "optimizer"}``,
  every key prefixed with ``module.``.

Files are read with ``torch.load(weights_only=True)`` (a pickle that would run code is refused).
The release is detected from the keys; the key set, shapes and dtype kinds must equal the
network's exactly, otherwise one :class:`CheckpointError` lists the first offending keys.

Known-harmless differences are accepted and named (:attr:`CheckpointInfo.ignored`, a log line):
training state beside the weights (:data:`TRAINING_STATE_KEYS`: ``epoch``, ``optimizer``, ...),
a ``network`` / ``state_dict`` / ``model`` wrapper, and BatchNorm's ``num_batches_tracked``
counters (extra ones dropped, missing ones set to 0: they only matter when training with
``momentum=None``). Everything else (missing or unknown weights, shapes) is refused as before.
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from handpose.models.iccv21.mano_layers import Release, fill_mano_pair, has_mano_data
from handpose.models.iccv21.network import ICCV21Net
from handpose.paths import ICCV21_CHECKPOINT_FILES as CHECKPOINT_FILES  # file name per release
from handpose.paths import MANO_FILES

SOURCES = {
    "v2": "the Google Drive folder linked from the README of iscas3dv/Two-Hand-Shape-Pose_v2",
    "v1": "the Google Drive folder linked from the README of BaowenZ/Two-Hand-Shape-Pose",
    "mano": "https://mano.is.tue.mpg.de ('Models & Code', mano_v1_2/models/MANO_*.pkl)",
}
_SHOWN = 5
#: Top-level entries that hold training state, not weights: ignored (v2's snapshot has ``epoch``
#: and ``optimizer``; a v1 file saved with its optimizer would have them too).
TRAINING_STATE_KEYS = frozenset({
    "epoch", "optimizer", "scheduler", "lr_scheduler", "iteration", "step", "global_step", "amp", "scaler",
    "best_acc", "best_loss",
})
#: Top-level entries that wrap the state_dict (``network``: v2's ``train.py``).
STATE_DICT_WRAPPERS = ("network", "state_dict", "model")
#: BatchNorm's batch counter (an int64 scalar): unused in eval mode; absent from files saved by torch < 1.1.
BATCH_COUNTER = "num_batches_tracked"
#: Ignored entries that the release's official file has anyway (not worth a warning).
_OFFICIAL_EXTRAS: dict[str, frozenset[str]] = {"v2": frozenset({"epoch", "optimizer"}), "v1": frozenset()}
logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A file that is not an ICCV 2021 checkpoint of the expected layout (or was refused)."""


def _mano_data(mano_dir: str | os.PathLike) -> tuple[object, object]:
    from handpose.handmodel.mano import load_mano

    folder = Path(mano_dir)
    paths = {side: folder / name for side, name in MANO_FILES.items()}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(f"MANO file not found: {path} (from {SOURCES['mano']}; see weights/README.md)")
    return load_mano(paths["right"]), load_mano(paths["left"])


def build_iccv21(release: Release = "v2", mano_dir: str | os.PathLike | None = None) -> ICCV21Net:
    """The network with random weights, in eval mode.

    Args:
        release: ``"v2"`` or ``"v1"``.
        mano_dir: folder with ``MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl``; ``None`` leaves the MANO
            buffers zero-filled (real shapes; fill them with
            :func:`~handpose.models.iccv21.mano_layers.fill_mano_pair` before a forward pass).
    """
    net = ICCV21Net(release)
    if mano_dir is not None:
        fill_mano_pair(net.mesh_reg.mano_layer, *_mano_data(mano_dir))
    return net.eval()


def expected_entries(release: Release) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """``{name: (shape, dtype)}`` of the release's state_dict, in the network's order."""
    return dict(_expected_entries(release))


@functools.lru_cache(maxsize=2)
def _expected_entries(release: Release) -> tuple[tuple[str, tuple[tuple[int, ...], torch.dtype]], ...]:
    with torch.device("meta"):  # no memory, no initialisation
        net = ICCV21Net(release)
    return tuple((name, (tuple(t.shape), t.dtype)) for name, t in net.state_dict().items())


def _first(names: list[str]) -> str:
    more = f", ... ({len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`validate_checkpoint` found in a checkpoint file.

    Attributes:
        path: the file.
        release: ``"v1"`` or ``"v2"``.
        entries: number of state_dict entries (the release's count once valid).
        ignored: harmless entries left out (training state, extra ``num_batches_tracked``).
        filled: missing ``num_batches_tracked`` counters set to 0.
        has_mano: the file carries MANO's arrays (the official ones do); else the MANO pickles
            are needed beside it.
    """

    path: Path
    release: Release
    entries: int
    ignored: tuple[str, ...] = ()
    filled: tuple[str, ...] = ()
    has_mano: bool = True


def _read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Tensor], list[str]]:
    """``(flat state_dict, ignored top-level keys)`` of a checkpoint file (see :func:`read_state_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # refused globals, pickle or zip corruption: many exception types
        raise CheckpointError(
            f"{path}: not a loadable checkpoint: torch.load(weights_only=True) refused or failed "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    ignored: list[str] = []
    if isinstance(obj, dict):
        ignored = [str(k) for k in obj if k in TRAINING_STATE_KEYS]
        obj = {k: v for k, v in obj.items() if k not in TRAINING_STATE_KEYS}
        wrapper = next((k for k in STATE_DICT_WRAPPERS if isinstance(obj.get(k), dict)), None)
        if wrapper is not None and len(obj) == 1:
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: expected a state_dict (dict of tensors), got {type(obj).__name__}")
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if not_tensors:
        raise CheckpointError(f"{path}: entries that are not named tensors: {_first(not_tensors)}")
    # DataParallel: "module.<name>"; v2's demo strips the first dotted component
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj, ignored


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The flat state_dict of a v1 or v2 checkpoint file (``network`` unwrapped, ``module.`` stripped,
    :data:`TRAINING_STATE_KEYS` left out).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable, refused by ``weights_only``, or not a dict of tensors.
    """
    return _read_checkpoint(path)[0]


def reconcile_batch_counters(state: dict[str, Tensor], release: Release) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """``state`` without extra ``*.num_batches_tracked`` entries and with missing ones set to 0.

    Returns:
        ``(state, dropped, filled)``: the new dict and the names dropped / filled.
    """
    expected = expected_entries(release)
    dropped = [k for k in state if k not in expected and k.rsplit(".", 1)[-1] == BATCH_COUNTER and state[k].numel() == 1]
    filled = [k for k in expected if k not in state and k.rsplit(".", 1)[-1] == BATCH_COUNTER]
    state = {k: v for k, v in state.items() if k not in dropped}
    state.update({k: torch.zeros((), dtype=torch.int64) for k in filled})
    return state, dropped, filled


def _checked_state(path: str | os.PathLike, release: Release | None) -> tuple[dict[str, Tensor], CheckpointInfo]:
    """The checkpoint's state_dict, harmless differences reconciled and checked, and what was found."""
    state, ignored = _read_checkpoint(path)
    release = release or detect_release(state)
    if release not in CHECKPOINT_FILES:
        raise ValueError(f"release must be 'v1' or 'v2', got {release!r}")
    state, dropped, filled = reconcile_batch_counters(state, release)
    check_state_dict(state, release, origin=str(path))
    faces = [v for k, v in state.items() if k.startswith("mesh_reg.mano_layer.") and k.endswith(("th_faces", "faces_tensor"))]
    info = CheckpointInfo(Path(path), release, len(state), tuple(ignored + dropped), tuple(filled),
                          has_mano=bool(faces) and all(bool(f.any()) for f in faces))
    return state, info


def validate_checkpoint(path: str | os.PathLike, release: Release | None = None) -> CheckpointInfo:
    """Check a checkpoint file without building the network (``handpose doctor``).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: refused, unreadable, or keys / shapes differ from the release's.
    """
    return _checked_state(path, release)[1]


def detect_release(state: dict[str, Tensor]) -> Release:
    """The release whose key set overlaps ``state``'s most (v1 and v2 differ by ~90 keys)."""
    overlap = {release: len(state.keys() & expected_entries(release).keys()) for release in ("v2", "v1")}
    return max(overlap, key=overlap.__getitem__)


def check_state_dict(state: dict[str, Tensor], release: Release, origin: str = "checkpoint") -> None:
    """Raise one :class:`CheckpointError` unless ``state`` has exactly the release's keys, shapes
    and dtype kinds (floating vs integer)."""
    expected = expected_entries(release)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {list(state[k].shape)} (expected {list(shape)})"
        for k, (shape, _) in expected.items()
        if k in state and tuple(state[k].shape) != shape
    ]
    wrong += [
        f"{k} dtype {state[k].dtype} (expected {dtype})"
        for k, (_, dtype) in expected.items()
        if k in state and state[k].dtype.is_floating_point != dtype.is_floating_point
    ]
    problems = [
        f"{len(items)} {label}: {_first(items)}"
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong entries", wrong))
        if items
    ]
    if problems:
        raise CheckpointError(f"{origin} does not match the ICCV21 {release} network: " + "; ".join(problems))


def load_iccv21(
    path: str | os.PathLike,
    mano_dir: str | os.PathLike | None = None,
    release: Release | None = None,
) -> ICCV21Net:
    """Load an official checkpoint (either release) into :class:`ICCV21Net`, strictly, in eval mode.

    Args:
        path: ``model.pts`` (v1) or ``snapshot_99.pth.tar`` (v2).
        mano_dir: folder with MANO's pickles; only read when the checkpoint's MANO buffers are
            empty (the official checkpoints carry MANO's arrays, which are then used as is).
        release: ``"v1"`` / ``"v2"`` to insist on one; ``None`` detects it from the keys.

    Raises:
        FileNotFoundError: the checkpoint, or MANO files it needs, are missing.
        CheckpointError: refused, unreadable, or keys / shapes differ from the release's
            (known-harmless extras are ignored and logged, see the module docstring).
    """
    state, info = _checked_state(path, release)
    release = info.release
    notes = [f"ignored {len(info.ignored)} harmless entries: {_first(list(info.ignored))}"] if info.ignored else []
    if info.filled:
        notes.append(f"set {len(info.filled)} missing BatchNorm counters to 0: {_first(list(info.filled))}")
    if notes:  # a warning unless only what the official file has anyway (v2's epoch and optimizer)
        unusual = set(info.ignored) - _OFFICIAL_EXTRAS[release] or info.filled
        (logger.warning if unusual else logger.info)("%s: %s", path, "; ".join(notes))
    expected = expected_entries(release)
    state = {k: v.to(expected[k][1]) for k, v in state.items()}
    with torch.device("meta"):
        net = ICCV21Net(release)
    net.load_state_dict(state, strict=True, assign=True)
    if not has_mano_data(net.mesh_reg.mano_layer):
        if mano_dir is None:
            raise FileNotFoundError(
                f"{path} carries no MANO arrays: pass mano_dir, a folder with {MANO_FILES['right']} and "
                f"{MANO_FILES['left']} (from {SOURCES['mano']}; see weights/README.md)"
            )
        fill_mano_pair(net.mesh_reg.mano_layer, *_mano_data(mano_dir))
    return net.eval()


def save_iccv21(net: ICCV21Net, path: str | os.PathLike) -> None:
    """Write ``net`` in its release's own checkpoint format (v1 flat; v2 ``{"epoch", "network"}`` with
    ``module.`` keys), e.g. to make test checkpoints."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    if net.release == "v1":
        torch.save(state, path)
    else:
        torch.save({"epoch": 99, "network": {f"module.{k}": v for k, v in state.items()}}, path)
