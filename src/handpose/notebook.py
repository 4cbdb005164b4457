"""Helpers the notebooks call: ``HANDPOSE_MAX_IMAGES`` and saving figures.

Kept light (standard library only at import) so that a notebook's first cell stays fast. The
checkout's root and the weights folder are :mod:`handpose.paths`' (re-exported here for the
notebooks).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from handpose.paths import FIGURES_DIR_ENV, MAX_IMAGES_ENV, find_repo_root, find_weights_dir

__all__ = ["FIGURES_DIR_ENV", "MAX_IMAGES_ENV", "find_repo_root", "find_weights_dir", "max_images", "save_figure"]


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
    from handpose.io import atomic_open  # numpy and PIL: not at a notebook's first import

    path = Path(directory) / f"{stem}.png"
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return path
