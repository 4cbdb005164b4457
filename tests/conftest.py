"""Shared fixtures.

- ``fake_mano_arrays`` / ``fake_mano_dir``: random MANO-like models with the official keys, shapes
  and Python types (``shapedirs`` a chumpy ``Select`` over a ``Ch``, ``J_regressor`` a scipy
  sparse matrix), written as ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``; the left file has the
  official files' shapedirs bug (x component not mirrored). Deterministic (fixed seeds).
- ``open_hand_export``: the real open hand export, shipped in ``handpose/assets/``.
"""
from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

MANO_PARENTS = (0, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)


def make_fake_mano(seed: int) -> dict[str, np.ndarray]:
    """Plain numpy arrays of a random right hand with MANO's keys and shapes (metres)."""
    rng = np.random.default_rng(seed)
    v_template = rng.uniform(-0.05, 0.05, (778, 3))
    # each joint: a convex combination of 20 random vertices
    regressor = np.zeros((16, 778))
    for j in range(16):
        regressor[j, rng.choice(778, 20, replace=False)] = rng.dirichlet(np.ones(20))
    weights = rng.dirichlet(np.full(16, 0.3), size=778)
    components, _ = np.linalg.qr(rng.normal(size=(45, 45)))
    kintree = np.array([MANO_PARENTS, range(16)], dtype=np.int64)
    kintree[0, 0] = 2**32 - 1
    return {
        "v_template": v_template,
        "shapedirs": rng.normal(0, 0.003, (778, 3, 10)),
        "posedirs": rng.normal(0, 0.001, (778, 3, 135)),
        "J_regressor": regressor,
        "weights": weights,
        "f": rng.integers(0, 778, (1538, 3)).astype(np.uint32),
        "kintree_table": kintree,
        "hands_mean": rng.normal(0, 0.2, 45),
        "hands_components": components.T,
        "hands_coeffs": rng.normal(0, 1, (200, 45)) * np.linspace(1.0, 0.05, 45),
        "J": regressor @ v_template,
    }


def write_fake_mano_pickle(path: Path, arrays: dict[str, np.ndarray], protocol: int = 2) -> None:
    """Pickle ``arrays`` the way the official files are laid out: ``shapedirs`` as
    ``chumpy.reordering.Select(a=chumpy.ch.Ch(x), idxs, preferred_shape)`` over a wider array,
    ``J_regressor`` as ``scipy.sparse.csc_matrix``, the rest numpy. Dummy chumpy modules exist in
    ``sys.modules`` only while pickling."""

    class Ch:
        pass

    class Select:
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    Select.__module__, Select.__qualname__ = "chumpy.reordering", "Select"
    modules = {name: types.ModuleType(name) for name in ("chumpy", "chumpy.ch", "chumpy.reordering")}
    modules["chumpy.ch"].Ch = Ch
    modules["chumpy.reordering"].Select = Select

    shapedirs = arrays["shapedirs"]
    wide = np.concatenate([shapedirs, np.full_like(shapedirs, 7.0)], axis=-1)  # (778, 3, 20)
    source = Ch()
    source.__dict__.update(x=wide, _dirty_vars=set(), label="shapedirs")
    select = Select()
    select.__dict__.update(
        a=source,
        idxs=np.arange(wide.size).reshape(wide.shape)[..., :10].ravel(),
        preferred_shape=shapedirs.shape,
    )
    content = {key: value for key, value in arrays.items() if key != "shapedirs"}
    content.update(
        shapedirs=select,
        J_regressor=scipy.sparse.csc_matrix(arrays["J_regressor"]),
        bs_style="lbs",
        bs_type="lrotmin",
    )
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        path.write_bytes(pickle.dumps(content, protocol=protocol))
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@pytest.fixture(scope="session")
def fake_mano_arrays() -> dict[str, dict[str, np.ndarray]]:
    """``{"right": arrays, "left": arrays}`` of :func:`make_fake_mano`: the left hand mirrors the
    right one (x -> -x) except ``shapedirs``, copied unmirrored as in the official left file."""
    right = make_fake_mano(seed=0)
    left = dict(right)
    left["v_template"] = right["v_template"] * np.array([-1.0, 1.0, 1.0])
    left["J"] = right["J"] * np.array([-1.0, 1.0, 1.0])
    left["f"] = right["f"][:, [0, 2, 1]]
    left["shapedirs"] = right["shapedirs"].copy()  # the bug: x component not mirrored
    return {"right": right, "left": left}


@pytest.fixture(scope="session")
def fake_mano_dir(tmp_path_factory: pytest.TempPathFactory, fake_mano_arrays) -> Path:
    """A folder with fake ``MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl`` (see :func:`fake_mano_arrays`)."""
    folder = tmp_path_factory.mktemp("mano")
    write_fake_mano_pickle(folder / "MANO_RIGHT.pkl", fake_mano_arrays["right"])
    write_fake_mano_pickle(folder / "MANO_LEFT.pkl", fake_mano_arrays["left"])
    return folder


@pytest.fixture(scope="session")
def open_hand_export() -> Path:
    """Path of the open hand export shipped with the package."""
    from handpose.handmodel import open_hand_path

    path = open_hand_path()
    assert path.is_file(), f"{path} is missing: it ships with the repository (git checkout -- it)"
    return path


@pytest.fixture(scope="session")
def open_hands(open_hand_export) -> dict:
    """The open hand model of each side, ``{"right": model, "left": model}`` (stateless: shared)."""
    from handpose.handmodel import load_hand_model

    return {side: load_hand_model("open", side) for side in ("right", "left")}
