"""Where things live: the checkout, the licence-gated weights, the caches, and their environment
variables, in one place.

Standard library only (imported by the notebooks' first cell and by every layer).

=========================  ===========================================================================
environment variable       meaning
=========================  ===========================================================================
``HANDPOSE_WEIGHTS``       folder of licence-gated files (default ``<checkout>/weights``)
``HANDPOSE_CACHE``         cache root (default ``<checkout>/.cache``, ``~/.cache/handpose`` outside
                           a checkout); derived models go to ``<root>/handpose``, cached
                           predictions to ``<root>/predictions``
``HANDPOSE_MAX_IMAGES``    how many images a notebook loop takes (``make test`` sets 3)
``HANDPOSE_FIGURES_DIR``   where :func:`handpose.notebook.save_figure` writes (default ``<checkout>/figures``)
=========================  ===========================================================================
"""
from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_DIR_ENV = "HANDPOSE_WEIGHTS"
CACHE_DIR_ENV = "HANDPOSE_CACHE"
MAX_IMAGES_ENV = "HANDPOSE_MAX_IMAGES"
FIGURES_DIR_ENV = "HANDPOSE_FIGURES_DIR"

#: Sub-folders of the cache root: files derived at set-up (open hand export, MANO ``.npz``) and
#: the per-photo prediction JSONs of :mod:`handpose.pipeline`.
MODEL_CACHE = "handpose"
PREDICTION_CACHE = "predictions"

#: File names of the licence-gated files in the weights folder, as their authors distribute them:
#: the MANO pickles per side and the ICCV 2021 two-hand checkpoint per release.
MANO_FILES: dict[str, str] = {"right": "MANO_RIGHT.pkl", "left": "MANO_LEFT.pkl"}
ICCV21_CHECKPOINT_FILES: dict[str, str] = {"v2": "snapshot_99.pth.tar", "v1": "model.pts"}

_PACKAGE_DIR = Path(__file__).resolve().parent


def find_repo_root(start: str | os.PathLike | None = None) -> Path:
    """The handpose checkout: the first folder at or above ``start`` holding ``pyproject.toml`` and
    ``notebooks/``.

    Without ``start``, the search begins at the working directory and, when that is not inside a
    checkout, at this package's own folder (an editable install lives in ``<checkout>/src``).

    Raises:
        FileNotFoundError: no checkout at or above the start folder(s).
    """
    starts = [Path(start)] if start else [Path.cwd(), _PACKAGE_DIR]
    for here in (path.resolve() for path in starts):
        for folder in (here, *here.parents):
            if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
                return folder
    where = " or ".join(str(path.resolve()) for path in starts)
    raise FileNotFoundError(f"no handpose checkout (pyproject.toml + notebooks/) at or above {where}")


def repo_root() -> Path:
    """:func:`find_repo_root`, or the working directory when there is none (package installed from
    a wheel and run outside a checkout)."""
    try:
        return find_repo_root()
    except FileNotFoundError:
        return Path.cwd()


def find_weights_dir(folder: str | os.PathLike | None = None) -> Path:
    """The folder of licence-gated files (ICCV21 checkpoint, MANO pickles): ``folder`` if given,
    else ``$HANDPOSE_WEIGHTS``, else ``<checkout>/weights`` (``./weights`` outside a checkout)."""
    if folder is not None:
        return Path(folder)
    if os.environ.get(WEIGHTS_DIR_ENV):
        return Path(os.environ[WEIGHTS_DIR_ENV])
    return repo_root() / "weights"


def cache_root() -> Path:
    """``$HANDPOSE_CACHE``, else ``<checkout>/.cache`` for the checkout holding this package (a
    source or editable install), else ``~/.cache/handpose``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    try:
        return find_repo_root(_PACKAGE_DIR) / ".cache"
    except FileNotFoundError:
        return Path.home() / ".cache" / "handpose"


def model_cache_dir() -> Path:
    """Files the project derives at set-up (open hand export, MANO ``.npz``): ``<cache root>/handpose``."""
    return cache_root() / MODEL_CACHE


def prediction_cache_dir() -> Path:
    """Per-photo prediction JSONs of :mod:`handpose.pipeline`: ``<cache root>/predictions``."""
    return cache_root() / PREDICTION_CACHE
