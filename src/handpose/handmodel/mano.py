"""MANO: reading the official pickles safely, and a :class:`~handpose.handmodel.HandModel` on smplx.

The official ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (v1.2, licence-gated, never shipped) are
Python-2 pickles holding numpy arrays, a ``scipy.sparse`` joint regressor and chumpy expressions
(``shapedirs`` is a ``chumpy.reordering.Select`` over a ``chumpy.ch.Ch``). :func:`load_mano` reads
them WITHOUT chumpy and without running arbitrary code: a restricted unpickler admits only numpy's
array reconstruction, sparse matrices and the chumpy nodes MANO uses (evaluated to numpy here);
any other global (``os.system``, ``builtins.eval``, ...) raises :class:`ManoFileError` before it
is called. The result is cached once as a plain ``.npz`` keyed by the pickle's SHA-256.

Conventions of :class:`ManoHandModel` (same as the open hand, see :mod:`handpose.handmodel`):
millimetres, the wrist joint of the shaped rest hand at the origin (MANO's own frame otherwise:
axes of the template), ``pose`` the 15 finger joints' axis-angles relative to MANO's mean pose
(``flat_hand_mean=False``, no PCA), 10 ``betas``, 21 keypoints in the course order (16 joints +
the fingertip vertices 745, 317, 444, 556, 673).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handpose.handmodel.base import HandModel, HandModelOutput
from handpose.io import atomic_open
from handpose.keypoints import COURSE_FROM_MANO, MANO_TIP_VERTICES
from handpose.paths import MANO_FILES as FILENAMES
from handpose.paths import find_weights_dir, model_cache_dir

NUM_VERTICES = 778
NUM_FACES = 1538
NUM_JOINTS = 16
NUM_BETAS = 10
NUM_POSE = 45
#: Bump when the cached ``.npz`` layout changes.
NPZ_VERSION = 1
_MANO_SOURCE = (
    "register at https://mano.is.tue.mpg.de, download 'Models & Code' and copy "
    "mano_v1_2/models/MANO_*.pkl into weights/ (see weights/README.md)"
)


class ManoFileError(ValueError):
    """A MANO file is missing, unreadable, refused by the restricted unpickler or malformed."""


@dataclass(frozen=True)
class ManoData:
    """The arrays of one MANO pickle, as plain numpy (float64 unless stated).

    Attributes:
        v_template: ``(778, 3)`` template vertices, metres.
        shapedirs: ``(778, 3, 10)`` shape blend shapes.
        posedirs: ``(778, 3, 135)`` pose-corrective blend shapes.
        J_regressor: ``(16, 778)`` dense joint regressor.
        weights: ``(778, 16)`` skinning weights.
        faces: ``(1538, 3)`` int64 triangles.
        kintree_table: ``(2, 16)`` int64, row 0 the parents (root: 2**32 - 1), row 1 the joint ids.
        hands_mean: ``(45,)`` mean finger pose, axis-angle.
        hands_components: ``(45, 45)`` pose PCA basis, one component per row.
        hands_coeffs: ``(N, 45)`` PCA coefficients of MANO's training poses, or ``None`` if absent.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    faces: np.ndarray
    kintree_table: np.ndarray
    hands_mean: np.ndarray
    hands_components: np.ndarray
    hands_coeffs: np.ndarray | None = None


_SHAPES: dict[str, tuple[int, ...]] = {
    "v_template": (NUM_VERTICES, 3),
    "shapedirs": (NUM_VERTICES, 3, NUM_BETAS),
    "posedirs": (NUM_VERTICES, 3, 9 * (NUM_JOINTS - 1)),
    "J_regressor": (NUM_JOINTS, NUM_VERTICES),
    "weights": (NUM_VERTICES, NUM_JOINTS),
    "faces": (NUM_FACES, 3),
    "kintree_table": (2, NUM_JOINTS),
    "hands_mean": (NUM_POSE,),
    "hands_components": (NUM_POSE, NUM_POSE),
}


# ---------------------------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------------------------
class _Refused(pickle.UnpicklingError):
    """The pickle asks for something the restricted unpickler does not allow."""


class _Node:
    """Stand-in for an object the pickle builds (a chumpy node or a sparse matrix): keeps its state."""

    kind = ""
    state: dict[str, Any]

    def __new__(cls, *args: Any) -> "_Node":  # NEWOBJ calls __new__ only; REDUCE calls cls(*args)
        if args:
            raise _Refused(f"{cls.kind} takes no constructor arguments")
        node = super().__new__(cls)
        node.state = {}
        return node

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise _Refused(f"{self.kind}: unexpected state {type(state).__name__}")
        self.state = state


class _Ch(_Node):
    kind = "chumpy.ch.Ch"


class _Select(_Node):
    kind = "chumpy.reordering.Select"


class _Sparse(_Node):
    kind = "scipy.sparse matrix"
    fmt = ""  # "csc" or "csr"


def _make_sparse(fmt: str) -> type[_Sparse]:
    return type(f"_Sparse_{fmt}", (_Sparse,), {"kind": f"scipy.sparse.{fmt}_matrix", "fmt": fmt})


_SPARSE_CLASSES = {f"{fmt}_matrix": _make_sparse(fmt) for fmt in ("csc", "csr")}
_STANDINS = (_Ch, _Select, *_SPARSE_CLASSES.values())


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copyreg._reconstructor`` limited to our stand-ins (pickle protocols 0 and 1)."""
    if cls not in _STANDINS or base is not object or state is not None:
        raise _Refused("copyreg._reconstructor is only allowed for array stand-ins")
    return cls()


def _encode_latin1(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as Python 3 uses it to pickle bytes (protocol < 3), latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise _Refused(f"_codecs.encode is only allowed with latin1, got {encoding!r}")
    return text.encode("latin1")


def _numpy_global(name: str) -> Any:
    from numpy.core import multiarray

    allowed = {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar}
    return allowed.get(name)


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits numpy arrays, dtypes and scalars, csc/csr matrices, chumpy ``Ch``/``Select`` nodes,
    the builtins ``object``/``set``/``frozenset`` and latin-1 ``_codecs.encode`` (Python 3's
    protocol-2 bytes); refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        found: Any = None
        if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            found = _numpy_global(name)
        elif module == "numpy" and name in ("ndarray", "dtype"):
            found = getattr(np, name)
        elif module.startswith("scipy.sparse") and name in _SPARSE_CLASSES:
            found = _SPARSE_CLASSES[name]
        elif module == "chumpy.ch" and name == "Ch":
            found = _Ch
        elif module == "chumpy.reordering" and name == "Select":
            found = _Select
        elif module in ("copy_reg", "copyreg") and name == "_reconstructor":
            found = _reconstructor
        elif module == "_codecs" and name == "encode":
            found = _encode_latin1
        elif module in ("builtins", "__builtin__") and name in ("object", "set", "frozenset"):
            found = {"object": object, "set": set, "frozenset": frozenset}[name]
        if found is None:
            raise _Refused(f"forbidden class {module}.{name}")
        return found


def _evaluate(value: Any, key: str) -> Any:
    """Turn stand-ins into numpy arrays: ``Ch`` -> its ``x``; ``Select`` -> ``a.ravel()[idxs]``."""
    if isinstance(value, _Ch):
        for name in ("x", "r"):
            if name in value.state:
                return np.asarray(_evaluate(value.state[name], key))
        raise ManoFileError(f"{key}: chumpy Ch node without an 'x' array")
    if isinstance(value, _Select):
        try:
            source = np.asarray(_evaluate(value.state["a"], key))
            idxs = np.asarray(value.state["idxs"], dtype=np.int64)
            shape = tuple(value.state.get("preferred_shape") or idxs.shape)
        except KeyError as err:
            raise ManoFileError(f"{key}: chumpy Select node without {err}") from None
        # chumpy's Select.compute_r: a.r.ravel()[idxs].reshape(preferred_shape)
        return source.ravel()[idxs].reshape(shape)
    if isinstance(value, _Sparse):
        return _densify(value, key)
    return value


def _densify(matrix: _Sparse, key: str) -> np.ndarray:
    """Dense ``(rows, cols)`` array of a pickled csc/csr matrix, from its data/indices/indptr."""
    state = matrix.state
    try:
        shape = tuple(int(n) for n in state.get("_shape", state.get("shape")))
        data = np.asarray(state["data"], dtype=np.float64)
        indices = np.asarray(state["indices"], dtype=np.int64)
        indptr = np.asarray(state["indptr"], dtype=np.int64)
    except (KeyError, TypeError) as err:
        raise ManoFileError(f"{key}: malformed sparse matrix ({err})") from None
    compressed_axis = 1 if matrix.fmt == "csc" else 0  # csc compresses columns, csr rows
    if len(shape) != 2 or len(indptr) != shape[compressed_axis] + 1 or indptr[-1] != len(data):
        raise ManoFileError(f"{key}: inconsistent sparse matrix of shape {shape}")
    outer = np.repeat(np.arange(shape[compressed_axis]), np.diff(indptr))
    rows, cols = (indices, outer) if matrix.fmt == "csc" else (outer, indices)
    dense = np.zeros(shape, dtype=np.float64)
    np.add.at(dense, (rows, cols), data)  # duplicates add up, as in scipy
    return dense


def read_mano_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """All entries of an official MANO pickle, chumpy and sparse values turned into numpy.

    Raises:
        ManoFileError: the file is missing, not a pickle, or references a forbidden class.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ManoFileError(f"cannot read MANO file {path}: {err}. To get it: {_MANO_SOURCE}") from None
    return _read_pickle_bytes(raw, path)


def _read_pickle_bytes(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except _Refused as err:
        raise ManoFileError(f"{path}: refused by the restricted unpickler: {err}") from None
    except Exception as err:  # truncated or corrupt data surfaces as many exception types
        raise ManoFileError(f"{path}: not a readable MANO pickle ({type(err).__name__}: {err})") from None
    if not isinstance(obj, dict):
        raise ManoFileError(f"{path}: expected a dict of arrays, got {type(obj).__name__}")
    return {str(key): _evaluate(value, f"{path.name}:{key}") for key, value in obj.items()}


def _mano_data_from_entries(entries: dict[str, Any], path: Path) -> ManoData:
    renamed = {"faces": "f"}
    arrays: dict[str, np.ndarray | None] = {}
    for field in fields(ManoData):
        key = renamed.get(field.name, field.name)
        if key not in entries:
            if field.name == "hands_coeffs":
                arrays[field.name] = None
                continue
            raise ManoFileError(f"{path}: missing entry {key!r}; is this an official MANO pickle?")
        integer = field.name in ("faces", "kintree_table")
        try:
            arrays[field.name] = np.asarray(entries[key], dtype=np.int64 if integer else np.float64)
        except (TypeError, ValueError) as err:
            raise ManoFileError(f"{path}: {key} is not a numeric array ({type(entries[key]).__name__}: {err})") from None
    for name, shape in _SHAPES.items():
        if arrays[name].shape != shape:
            raise ManoFileError(f"{path}: {name} has shape {arrays[name].shape}, expected {shape}")
    coeffs = arrays["hands_coeffs"]
    if coeffs is not None and (coeffs.ndim != 2 or coeffs.shape[1] != NUM_POSE):
        raise ManoFileError(f"{path}: hands_coeffs has shape {coeffs.shape}, expected (N, 45)")
    not_finite = [name for name, value in arrays.items() if value is not None and not np.isfinite(value).all()]
    if not_finite:
        raise ManoFileError(f"{path}: non-finite values in {', '.join(not_finite)}")
    faces = arrays["faces"]
    if faces.min() < 0 or faces.max() >= NUM_VERTICES:
        raise ManoFileError(f"{path}: faces index vertices {faces.min()}..{faces.max()}, expected 0..{NUM_VERTICES - 1}")
    return ManoData(**arrays)


def load_mano(path: str | os.PathLike, use_cache: bool = True) -> ManoData:
    """Read one official MANO pickle safely (no chumpy, no arbitrary classes).

    The first call converts it to ``<cache>/mano/<name>-<sha256[:16]>.npz`` (written atomically,
    ``np.load(allow_pickle=False)`` afterwards); later calls read that. The left-hand shapedirs
    fix is NOT applied here (it needs both files): see :func:`load_mano_side`.

    Raises:
        ManoFileError: missing, refused, or wrong keys/shapes.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ManoFileError(f"cannot read MANO file {path}: {err}. To get it: {_MANO_SOURCE}") from None
    cached = model_cache_dir() / "mano" / f"{path.stem}-{hashlib.sha256(raw).hexdigest()[:16]}.npz"
    if use_cache and cached.is_file():
        with np.load(cached, allow_pickle=False) as npz:
            if int(npz["npz_version"]) == NPZ_VERSION:
                return ManoData(**{
                    f.name: (npz[f.name] if f.name in npz.files else None) for f in fields(ManoData)
                })
    data = _mano_data_from_entries(_read_pickle_bytes(raw, path), path)
    if use_cache:
        _save_npz_atomic(cached, data)
    return data


def _save_npz_atomic(target: Path, data: ManoData) -> None:
    arrays = {f.name: getattr(data, f.name) for f in fields(ManoData)}
    arrays = {name: value for name, value in arrays.items() if value is not None}
    with atomic_open(target) as handle:
        np.savez(handle, npz_version=np.int64(NPZ_VERSION), **arrays)


def left_shapedirs_bug(left: ManoData, right: ManoData) -> bool:
    """Whether the left file has MANO's known bug: its shapedirs x-component is the right hand's,
    unmirrored. Test used by smplx users and IntagHand: ``sum |left[:, 0] - right[:, 0]| < 1``."""
    return float(np.abs(left.shapedirs[:, 0, :] - right.shapedirs[:, 0, :]).sum()) < 1.0


def fix_left_shapedirs(left: ManoData) -> ManoData:
    """The left hand with ``shapedirs[:, 0, :] *= -1`` (mirrored x component)."""
    shapedirs = left.shapedirs.copy()
    shapedirs[:, 0, :] *= -1.0
    return ManoData(**{**{f.name: getattr(left, f.name) for f in fields(ManoData)},
                       "shapedirs": shapedirs})


def load_mano_side(side: str, mano_dir: str | os.PathLike | None = None) -> ManoData:
    """The MANO arrays of one hand from ``mano_dir`` (see :func:`handpose.paths.find_weights_dir`),
    left-hand bug fixed when detected against ``MANO_RIGHT.pkl`` (warns if the right file is absent)."""
    if side not in FILENAMES:
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    folder = find_weights_dir(mano_dir)
    path = folder / FILENAMES[side]
    if not path.is_file():
        raise ManoFileError(f"MANO file not found: {path}. To get it: {_MANO_SOURCE}")
    data = load_mano(path)
    if side == "left":
        right_path = folder / FILENAMES["right"]
        if right_path.is_file():
            if left_shapedirs_bug(data, load_mano(right_path)):
                data = fix_left_shapedirs(data)
        else:
            warnings.warn(f"{right_path} not found: cannot check MANO_LEFT's shapedirs bug; "
                          "left-hand shapes may be wrong", stacklevel=2)
    return data


# ---------------------------------------------------------------------------------------------
# The layer
# ---------------------------------------------------------------------------------------------
def smplx_mano(data: ManoData, side: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """``smplx.MANO`` built from ``data`` (no PCA, ``flat_hand_mean=False``, 10 betas, no
    parameters of its own). smplx is only given numpy arrays, never a pickle."""
    from smplx import MANO
    from smplx.utils import Struct

    struct = Struct(
        v_template=data.v_template, shapedirs=data.shapedirs, posedirs=data.posedirs,
        J_regressor=data.J_regressor, weights=data.weights, f=data.faces,
        kintree_table=data.kintree_table, hands_mean=data.hands_mean,
        hands_components=data.hands_components,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning about 10 betas
        return MANO(
            model_path="", data_struct=struct, is_rhand=side == "right", use_pca=False,
            flat_hand_mean=False, num_betas=NUM_BETAS, dtype=dtype, create_global_orient=False,
            create_hand_pose=False, create_betas=False, create_transl=False,
        )


def _pose_statistics(data: ManoData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pose limits and the prior's whitening, from MANO's training poses when the file has them.

    Returns ``(lower, upper, whiten)``: ``(45,)`` limits of the pose relative to the mean, and
    ``(45, 45)`` ``W`` such that ``pose @ W`` has unit variance per PCA component.
    """
    margin = 0.15  # rad beyond the observed range
    if data.hands_coeffs is None:
        half = np.full(NUM_POSE, np.pi / 2)
        return -half, half, np.eye(NUM_POSE) / 0.5  # isotropic: 0.5 rad per component
    # pose = coeffs @ components  =>  coeffs = pose @ pinv(components)
    poses = data.hands_coeffs @ data.hands_components
    lower = np.minimum(poses.min(0), 0.0) - margin
    upper = np.maximum(poses.max(0), 0.0) + margin
    sigma = np.maximum(data.hands_coeffs.std(0), 1e-3)
    whiten = np.linalg.pinv(data.hands_components) / sigma[None, :]
    return lower, upper, whiten


class ManoHandModel(HandModel):
    """MANO (right or left) behind the :class:`~handpose.handmodel.HandModel` interface.

    ``pose`` ``(B, 45)``: the 15 finger joints' axis-angles (MANO joint order, MANO's
    world-aligned axes) relative to ``hands_mean``; ``shape`` ``(B, 10)`` betas. Output in mm with
    the wrist joint at the origin (before ``global_orient`` about the wrist and ``transl``).
    """

    kind = "mano"

    def __init__(self, data: ManoData, side: str) -> None:
        super().__init__()
        if side not in FILENAMES:
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        self.side = side
        self.num_pose = NUM_POSE
        self.num_shape = NUM_BETAS
        self.layer = smplx_mano(data, side)
        self.register_buffer("faces", torch.as_tensor(data.faces, dtype=torch.long), persistent=False)
        self.register_buffer("tip_vertices", torch.tensor(MANO_TIP_VERTICES), persistent=False)
        self.register_buffer("course_from_mano", torch.tensor(COURSE_FROM_MANO), persistent=False)
        lower, upper, whiten = _pose_statistics(data)
        for name, value in (("pose_lower", lower), ("pose_upper", upper), ("pose_whiten", whiten)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32), persistent=False)

    def forward(
        self,
        pose: torch.Tensor | None = None,
        shape: torch.Tensor | None = None,
        global_orient: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
        with_vertices: bool = True,
    ) -> HandModelOutput:
        """See :meth:`HandModel.forward`; the fingertip keypoints are vertices, so smplx skins the
        whole mesh either way and ``with_vertices=False`` only leaves ``vertices`` out."""
        pose, shape, global_orient, transl = self.batch_inputs(pose, shape, global_orient, transl)
        out = self.layer(betas=shape, global_orient=global_orient, hand_pose=pose)
        wrist = out.joints[:, :1]  # joint 0 stays at the shaped rest wrist: R0 rotates about it
        # mm = 1000 * (m - wrist) + transl
        vertices = 1000.0 * (out.vertices - wrist) + transl[:, None]
        joints = 1000.0 * (out.joints - wrist) + transl[:, None]
        mano21 = torch.cat([joints, vertices[:, self.tip_vertices]], dim=1)
        return HandModelOutput(
            vertices=vertices if with_vertices else None,
            keypoints=mano21[:, self.course_from_mano],
            joints=joints,
        )

    def pose_limits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(45,)`` lower/upper per component: the range of MANO's training poses (relative to
        the mean) widened by 0.15 rad, or +-pi/2 when the file has no ``hands_coeffs``."""
        return self.pose_lower, self.pose_upper

    def pose_prior(self, pose: torch.Tensor) -> torch.Tensor:
        """``(B,)`` mean squared whitened PCA coefficient: ``mean_k (c_k / sigma_k)^2`` with
        ``c = pose @ pinv(hands_components)``; 0 at the mean pose, about 1 for a typical pose."""
        pose = self.check_pose(pose)
        return ((pose @ self.pose_whiten) ** 2).mean(dim=-1)


def load_mano_model(side: str = "right", mano_dir: str | os.PathLike | None = None) -> ManoHandModel:
    """:class:`ManoHandModel` of ``side`` from the pickles in ``mano_dir``
    (see :func:`handpose.paths.find_weights_dir`)."""
    return ManoHandModel(load_mano_side(side, mano_dir), side)
