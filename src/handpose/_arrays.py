"""numpy / torch polymorphism of the geometry functions (private to :mod:`handpose.camera`,
:mod:`handpose.heatmap` and :mod:`handpose.alignment`): a function takes either array type and
returns results of the type of its main argument, computing in torch.
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def as_tensor(x: ArrayLike, name: str, last: int | None):
    """Main argument as a float tensor, and the function converting results back to its type."""
    if isinstance(x, torch.Tensor):
        v = x if x.is_floating_point() else x.to(torch.get_default_dtype())
        to_output = _identity
    else:
        a = np.asarray(x)
        v = torch.from_numpy(a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64))
        to_output = _to_numpy
    if v.ndim < 1 or (last is not None and v.shape[-1] != last):
        raise ValueError(f"{name} must be (..., {last or 'D'}), got shape {tuple(v.shape)}")
    return v, to_output


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().numpy()


def like(x: ArrayLike | float, ref: torch.Tensor) -> torch.Tensor:
    """``x`` as a tensor with the dtype and device of ``ref`` (differentiable for tensors)."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype=ref.dtype, device=ref.device)
    return torch.as_tensor(np.asarray(x), dtype=ref.dtype, device=ref.device)
