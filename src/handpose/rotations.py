"""Directions and the rotations built from them (numpy): unit vectors, and right-handed
orthonormal frames by Gram-Schmidt with a guard against parallel or zero-length directions.

The package's other rotation helpers: :func:`handpose.handmodel.skinning.axis_angle_to_matrix`
(Rodrigues, torch) and, for the ICCV 2021 layers only, its smplx-faithful copy
:func:`handpose.models.iccv21.mano_layers.axis_angle_to_matrix_smplx`.
"""
from __future__ import annotations

import numpy as np

def normalize(v: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """``v / |v|`` along the last axis ``(..., 3)`` (zero vectors stay zero)."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, eps)


#: Smallest sine of the angle between the two directions of :func:`frame_from_directions`.
MIN_SINE = 1e-6


def frame_from_directions(y: np.ndarray, z_hint: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotations whose columns are the axes ``x, y, z`` of a right-handed frame.

    ``y`` is the unit vector along ``y``; ``z`` is ``z_hint`` made orthogonal to it (Gram-Schmidt,
    ``z = normalize(h - (h . y) y)``); ``x = y x z``. Keeps the float dtype of the inputs (float32
    stays float32; integers become float64).

    Args:
        y: ``(..., 3)`` primary directions (any length > 0).
        z_hint: ``(..., 3)`` secondary directions, broadcastable with ``y``, not parallel to it.
    Raises:
        ValueError: a shape is not ``(..., 3)``, a direction is zero or not finite, or the two are
            parallel (sine of their angle below :data:`MIN_SINE`): the frame would be arbitrary.
    """
    y, hint = np.asarray(y), np.asarray(z_hint)
    if y.shape[-1:] != (3,) or hint.shape[-1:] != (3,):
        raise ValueError(f"directions must have shape (..., 3), got {y.shape} and {hint.shape}")
    dtype = np.result_type(y, hint, np.float32)
    y, hint = np.broadcast_arrays(y.astype(dtype), hint.astype(dtype))
    y_len, hint_len = np.linalg.norm(y, axis=-1), np.linalg.norm(hint, axis=-1)
    if not (np.all(np.isfinite(y_len)) and np.all(np.isfinite(hint_len))):
        raise ValueError("directions must be finite")
    if np.any(y_len == 0) or np.any(hint_len == 0):
        raise ValueError("directions must not be zero vectors")
    y = y / y_len[..., None]
    z = hint - (hint * y).sum(-1, keepdims=True) * y
    z_len = np.linalg.norm(z, axis=-1)
    bad = z_len < MIN_SINE * hint_len
    if np.any(bad):
        where = f" (at {np.argwhere(bad)[0].tolist()})" if bad.ndim else ""
        raise ValueError(f"the two directions are parallel{where}: no unique frame")
    z = z / z_len[..., None]
    return np.stack([np.cross(y, z), y, z], axis=-1)
