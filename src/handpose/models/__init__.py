"""Hand estimators behind one interface, chosen by name.

Every estimator has ``predict(image) -> list[HandPrediction]`` for an ``(H, W, 3)`` uint8 RGB
image, and ``close()``. Modules are imported lazily, on first use of their name, so that
``import handpose`` stays fast and a model whose licence-gated files are absent costs nothing
until it is asked for (its constructor then raises ``FileNotFoundError`` naming the file).

Built in: ``"mediapipe"`` (default, :class:`handpose.models.mediapipe.MediaPipeEstimator`) and
``"iccv21"`` (``handpose.models.iccv21.ICCV21Estimator``, needs ``weights/``).
"""
from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np

from handpose.prediction import HandPrediction


class Estimator(Protocol):
    """What the pipeline needs from a model. A registered class also names its options dataclass
    as ``options_type`` (built with no arguments: the defaults), so that cache keys see the
    defaults' values (:func:`default_options`)."""

    def predict(self, image: np.ndarray) -> list[HandPrediction]:
        """Hands in one ``(H, W, 3)`` uint8 RGB image."""

    def close(self) -> None:
        """Release resources."""


#: name -> ``"module:Class"``; the class is built as ``Class()`` or ``Class(options)``.
_REGISTRY: dict[str, str] = {
    "mediapipe": "handpose.models.mediapipe:MediaPipeEstimator",
    "iccv21": "handpose.models.iccv21:ICCV21Estimator",
}


def available_models() -> list[str]:
    """Registered model names (their files may still be missing: see ``handpose doctor``)."""
    return sorted(_REGISTRY)


def estimator_class(name: str) -> type:
    """The estimator class registered under ``name`` (imports its module)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    module_name, class_name = _REGISTRY[name].split(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ImportError(f"model {name!r}: {module_name} has no {class_name}") from None


def default_options(name: str) -> Any:
    """The default options dataclass of the registered model ``name`` (``None`` if it has none)."""
    options_type = getattr(estimator_class(name), "options_type", None)
    return options_type() if options_type is not None else None


def get_estimator(name: str = "mediapipe", options: Any = None) -> Estimator:
    """A new estimator by name, with ``options`` (its options dataclass, or ``None`` for defaults).

    Raises:
        ValueError: unknown name.
        FileNotFoundError: the model needs a file that is not there (the message names it).
    """
    cls = estimator_class(name)
    return cls() if options is None else cls(options)
