"""Photo or folder in, hand predictions (+ overlays, ``predictions.json``) out, with a cache.

* :func:`predict_image` runs one estimator on one photo.
* :func:`predict_folder` runs it on many photos with a progress bar. A photo that cannot be read
  or processed is logged, recorded with its error and skipped; the batch never aborts.
  Results are cached per photo under ``cache_dir`` (default
  :func:`handpose.paths.prediction_cache_dir`), keyed by the SHA-256 of the file's bytes, the
  model name and a hash of its options, so a changed file or changed options are recomputed and re-running is fast.

``predictions.json`` is a public interface: a list of ``{"image", "width", "height", "hands":
[HandPrediction.to_json()...]}``, plus ``"error"`` for photos that failed. Each hand also has
``"gesture"`` and ``"fingers"`` (:func:`handpose.gestures.gesture_fields`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from handpose import io
from handpose.models import Estimator, get_estimator
from handpose.paths import prediction_cache_dir
from handpose.prediction import HandPrediction

logger = logging.getLogger(__name__)

#: Bump when the cached JSON's meaning changes, to ignore older entries.
CACHE_VERSION = 1
PathLike = str | os.PathLike


@dataclass
class ImageResult:
    """What :func:`predict_folder` did with one photo.

    Attributes:
        image: the photo's path as given (or found in a folder).
        width, height: photo size in pixels (``None`` when it could not be read).
        hands: predictions, best score first.
        error: why the photo was skipped, else ``None``.
        overlay: the overlay PNG written for it, if any.
        cached: the hands came from the cache.
    """

    image: Path
    width: int | None = None
    height: int | None = None
    hands: list[HandPrediction] = field(default_factory=list)
    error: str | None = None
    overlay: Path | None = None
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        """The ``predictions.json`` entry of this photo."""
        from handpose.gestures import gesture_fields

        entry: dict[str, Any] = {"image": str(self.image), "width": self.width, "height": self.height,
                                 "hands": [{**hand.to_json(), **gesture_fields(hand.keypoints_3d)}
                                           for hand in self.hands]}
        if self.error is not None:
            entry["error"] = self.error
        return entry


def options_digest(options: Any) -> str:
    """Stable short hash of an options dataclass (``"default"`` for ``None``)."""
    if options is None:
        return "default"
    data = dataclasses.asdict(options) if dataclasses.is_dataclass(options) else options
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_key(image_bytes: bytes, model: str, options: Any) -> str:
    """``sha256(bytes) + model + options`` -> file name stem of the cache entry."""
    content = hashlib.sha256(image_bytes).hexdigest()
    return hashlib.sha256(f"{CACHE_VERSION}|{content}|{model}|{options_digest(options)}".encode()).hexdigest()


_ESTIMATORS: dict[tuple[str, str], Estimator] = {}


def _estimator(model: str | Estimator, options: Any) -> Estimator:
    """A shared estimator per (name, options), so MediaPipe graphs are built once per process."""
    if not isinstance(model, str):
        return model
    key = (model, options_digest(options))
    if key not in _ESTIMATORS:
        _ESTIMATORS[key] = get_estimator(model, options)
    return _ESTIMATORS[key]


def _model_name(model: str | Estimator) -> str:
    return model if isinstance(model, str) else getattr(model, "name", type(model).__name__)


def predict_image(image_or_path: np.ndarray | PathLike, model: str | Estimator = "mediapipe",
                  options: Any = None) -> list[HandPrediction]:
    """Hands in one photo (not cached).

    Args:
        image_or_path: ``(H, W, 3)`` uint8 RGB, or a path read with :func:`handpose.io.load_image`.
        model: registered name (``"mediapipe"``, ``"iccv21"``) or an estimator instance.
        options: the model's options dataclass, ``None`` for its defaults (ignored for instances).
    """
    image = image_or_path if isinstance(image_or_path, np.ndarray) else io.load_image(image_or_path)
    return _estimator(model, options).predict(image)


def expand_inputs(inputs: PathLike | Iterable[PathLike]) -> list[Path]:
    """Photo paths from a file, a folder (its images, see :func:`handpose.io.list_images`) or a
    list of both, in order, without duplicates.

    Raises:
        FileNotFoundError: an input does not exist.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    paths: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            paths.extend(io.list_images(item))
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"no such file or folder: {item}")
    return list(dict.fromkeys(paths))


def output_names(paths: Sequence[Path]) -> list[str]:
    """``<stem>.png`` per photo, made unique with ``_2``, ``_3``... when stems repeat (the names of
    its overlays and meshes in an output folder)."""
    names, seen = [], {}
    for path in paths:
        stem = path.stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}.png" if seen[stem] == 1 else f"{stem}_{seen[stem]}.png")
    return names


def _predict_one(path: Path, estimator: Estimator | None, model_name: str, options: Any, cache: Path | None,
                 make_estimator) -> tuple[ImageResult, np.ndarray]:
    data = path.read_bytes()
    image = io.load_image(path)
    result = ImageResult(path, width=int(image.shape[1]), height=int(image.shape[0]))
    entry = cache / f"{cache_key(data, model_name, options)}.json" if cache is not None else None
    if entry is not None and entry.is_file():
        try:
            result.hands = [HandPrediction.from_json(h) for h in json.loads(entry.read_text())["hands"]]
            result.cached = True
            return result, image
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable cache entry %s", entry)
    result.hands = (estimator or make_estimator()).predict(image)
    if entry is not None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        io.write_atomic(entry, json.dumps({"image": str(path), "hands": [h.to_json() for h in result.hands]}))
    return result, image


def predict_folder(folder_or_paths: PathLike | Iterable[PathLike], out_dir: PathLike | None = None,
                   model: str | Estimator = "mediapipe", options: Any = None, cache_dir: PathLike | None = None,
                   use_cache: bool = True, overlays: bool = True, progress: bool = True) -> list[ImageResult]:
    """Predict hands on many photos; write ``out_dir/predictions.json`` and ``out_dir/overlays/``.

    Args:
        folder_or_paths: a folder, a photo, or a list of both (see :func:`expand_inputs`).
        out_dir: where to write outputs (atomically); ``None`` writes nothing.
        model: registered name or estimator instance.
        options: the model's options dataclass (part of the cache key).
        cache_dir: cache folder (default :func:`handpose.paths.prediction_cache_dir`).
        use_cache: read and write the cache.
        overlays: write ``overlays/<stem>.png`` (skeleton, handedness, score) per photo.
        progress: show a tqdm progress bar.

    Returns:
        One :class:`ImageResult` per photo, in input order; failed photos have ``error`` set.

    Raises:
        FileNotFoundError: an input does not exist, or the model's files are missing.
    """
    from tqdm.auto import tqdm

    paths = expand_inputs(folder_or_paths)
    model_name = _model_name(model)
    cache = Path(cache_dir) if cache_dir is not None else prediction_cache_dir()
    cache = cache if use_cache else None
    out = Path(out_dir) if out_dir is not None else None
    # Built lazily: a fully cached run never loads the model (a missing weight file still raises).
    estimator: list[Estimator] = [] if isinstance(model, str) else [model]

    def make_estimator() -> Estimator:
        if not estimator:
            estimator.append(_estimator(model, options))
        return estimator[0]

    results = []
    names = output_names(paths)
    for path, name in zip(tqdm(paths, desc=f"hands ({model_name})", unit="photo", disable=not progress), names):
        try:
            result, image = _predict_one(path, estimator[0] if estimator else None, model_name, options, cache,
                                         make_estimator)
        except FileNotFoundError as exc:
            if not path.is_file():
                results.append(ImageResult(path, error=f"{type(exc).__name__}: {exc}"))
                logger.error("skipping %s: %s", path, exc)
                continue
            raise  # a missing model file: no photo can be processed
        except Exception as exc:  # noqa: BLE001 - one bad photo must not abort the batch
            logger.error("skipping %s: %s: %s", path, type(exc).__name__, exc)
            results.append(ImageResult(path, error=f"{type(exc).__name__}: {exc}"))
            continue
        if out is not None and overlays:
            from handpose.viz import draw_hands, gesture_notes

            result.overlay = out / "overlays" / name
            result.overlay.parent.mkdir(parents=True, exist_ok=True)
            io.save_png_atomic(result.overlay, draw_hands(image, result.hands, notes=gesture_notes(result.hands)))
        results.append(result)
    if out is not None:
        write_predictions(out / "predictions.json", results)
    return results


def write_predictions(path: PathLike, results: Sequence[ImageResult]) -> None:
    """Write ``predictions.json`` (see the module docstring) atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    io.write_atomic(Path(path), json.dumps([r.to_json() for r in results], indent=1))


def read_predictions(path: PathLike) -> list[ImageResult]:
    """Inverse of :func:`write_predictions`."""
    return [ImageResult(Path(e["image"]), e.get("width"), e.get("height"),
                        [HandPrediction.from_json(h) for h in e["hands"]], e.get("error"))
            for e in json.loads(Path(path).read_text())]
