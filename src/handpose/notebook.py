"""Helpers the notebooks call: the checkout's root, ``HANDPOSE_MAX_IMAGES`` and saving figures.

Kept light (standard library only) so that a notebook's first cell stays fast.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

#: Environment variable bounding how many images a notebook loop takes (``make test`` sets 3).
MAX_IMAGES_ENV = "HANDPOSE_MAX_IMAGES"
#: Environment variable overriding where :func:`save_figure` writes (tests point it to a temp dir).
FIGURES_DIR_ENV = "HANDPOSE_FIGURES_DIR"
#: Environment variable naming the folder of licence-gated files (default ``<checkout>/weights``).
WEIGHTS_DIR_ENV = "HANDPOSE_WEIGHTS"


def find_repo_root(start: str | os.PathLike | None = None) -> Path:
    """The handpose checkout: the first folder at or above ``start`` holding ``pyproject.toml`` and
    ``notebooks/``.

    Without ``start``, the search begins at the working directory and, when that is not inside a
    checkout, at this package's own folder (an editable install lives in ``<checkout>/src``). The
    notebooks, the report, the CLI's ``weights/`` and the prediction cache all use this notion
    (:func:`handpose.pipeline.repo_root` is its non-raising form).

    Raises:
        FileNotFoundError: no checkout at or above the start folder(s).
    """
    starts = [Path(start)] if start else [Path.cwd(), Path(__file__).parent]
    for here in (path.resolve() for path in starts):
        for folder in (here, *here.parents):
            if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
                return folder
    where = " or ".join(str(path.resolve()) for path in starts)
    raise FileNotFoundError(f"no handpose checkout (pyproject.toml + notebooks/) at or above {where}")


def find_weights_dir(folder: str | os.PathLike | None = None) -> Path:
    """The folder of licence-gated files (ICCV21 checkpoint, MANO pickles): ``folder`` if given,
    else ``$HANDPOSE_WEIGHTS``, else ``<checkout>/weights`` (``./weights`` outside a checkout)."""
    if folder is not None:
        return Path(folder)
    if os.environ.get(WEIGHTS_DIR_ENV):
        return Path(os.environ[WEIGHTS_DIR_ENV])
    try:
        return find_repo_root() / "weights"
    except FileNotFoundError:
        return Path.cwd() / "weights"


def max_images(default: int | None = None) -> int | None:
    """``HANDPOSE_MAX_IMAGES`` as an int (how many images a notebook loop may take), else ``default``."""
    value = os.environ.get(MAX_IMAGES_ENV, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{MAX_IMAGES_ENV} must be a positive integer, got {value!r}")
    return int(value)


def save_figure(fig: Any, name: str, directory: str | os.PathLike | None = None, dpi: int = 150) -> Path:
    """Save a matplotlib figure as ``<directory>/<name>.png`` atomically and return the path.

    ``directory`` defaults to ``$HANDPOSE_FIGURES_DIR``, else the checkout's ``figures/`` (see
    :func:`find_repo_root`).
    """
    if not name or Path(name).name != name or name.startswith("."):
        raise ValueError(f"name must be a plain file name, got {name!r}")
    stem = name[:-4] if name.lower().endswith(".png") else name
    if directory is None:
        directory = os.environ.get(FIGURES_DIR_ENV) or find_repo_root() / "figures"
    folder = Path(directory)
    path = folder / f"{stem}.png"
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", facecolor="white")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
