"""Photo or folder in, hand predictions (+ overlays, ``predictions.json``) out, with a cache; then
fitted hand meshes.

* :func:`predict_image` runs one estimator on one photo.
* :func:`predict_folder` runs it on many photos with a progress bar. A photo that cannot be read
  or processed is logged, recorded with its error and skipped; the batch never aborts.
  Results are cached per photo under ``cache_dir`` (default
  :func:`handpose.paths.prediction_cache_dir`), keyed by the SHA-256 of the file's bytes, the
  model name and a hash of its options, so a changed file or changed options are recomputed and re-running is fast.

* :func:`mesh_images` fits hand meshes to the hands found (batched over all photos,
  :func:`handpose.fitting.fit_images`), :func:`write_meshes` writes them (PNG overlays + OBJ).

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handpose import io
from handpose.models import Estimator, available_models, default_options, get_estimator
from handpose.paths import prediction_cache_dir
from handpose.prediction import HandPrediction

if TYPE_CHECKING:
    from handpose.fitting import FitResult
    from handpose.handmodel import HandModel

logger = logging.getLogger(__name__)

#: Bump when the cached JSON's meaning or an estimator's output changes, to ignore older entries.
#: (Option values, the defaults included, are part of the key already: :func:`cache_key`.)
CACHE_VERSION = 2
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
    """``sha256(bytes) + model + options`` -> file name stem of the cache entry. ``options=None``
    stands for the registered model's default options, whose values enter the key, so that a
    changed default does not serve stale predictions."""
    if options is None and model in available_models():
        options = default_options(model)
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


def _read_one(path: Path, model_name: str, options: Any, cache: Path | None
              ) -> tuple[ImageResult, np.ndarray, Path | None]:
    """Read a photo and look it up in the cache: ``(result, image, cache entry)``; ``result.cached``
    (with its hands) on a hit."""
    data = path.read_bytes()
    image = io.load_image(path)
    result = ImageResult(path, width=int(image.shape[1]), height=int(image.shape[0]))
    entry = cache / f"{cache_key(data, model_name, options)}.json" if cache is not None else None
    if entry is not None and entry.is_file():
        try:
            result.hands = [HandPrediction.from_json(h) for h in json.loads(entry.read_text())["hands"]]
            result.cached = True
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable cache entry %s", entry)
    return result, image, entry


def _predict_many(estimator: Estimator, images: list[np.ndarray]) -> list[list[HandPrediction] | Exception]:
    """Hands per photo, or the exception that photo raised: one ``predict_batch`` call when the
    estimator has one (photo by photo if it fails, to find the bad one), else ``predict`` each."""
    batched = getattr(estimator, "predict_batch", None)
    if batched is not None and len(images) > 1:
        try:
            return list(batched(images))
        except Exception as exc:  # noqa: BLE001 - retried one by one below
            logger.info("batch of %d photos failed (%s: %s); retrying one by one", len(images), type(exc).__name__, exc)
    found: list[list[HandPrediction] | Exception] = []
    for image in images:
        try:
            found.append(estimator.predict(image))
        except Exception as exc:  # noqa: BLE001 - one bad photo must not abort the batch
            found.append(exc)
    return found


def _predict_pending(estimator: Estimator, pending: list[tuple[ImageResult, np.ndarray, Path | None]]) -> None:
    """Fill each ``(result, image, cache entry)``'s hands (or error) and write its cache entry."""
    for (result, _, entry), found in zip(pending, _predict_many(estimator, [image for _, image, _ in pending])):
        if isinstance(found, Exception):
            logger.error("skipping %s: %s: %s", result.image, type(found).__name__, found)
            result.error = f"{type(found).__name__}: {found}"
            continue
        result.hands = found
        if entry is not None:
            entry.parent.mkdir(parents=True, exist_ok=True)
            io.write_atomic(entry, json.dumps({"image": str(result.image), "hands": [h.to_json() for h in result.hands]}))


def predict_folder(folder_or_paths: PathLike | Iterable[PathLike], out_dir: PathLike | None = None,
                   model: str | Estimator = "mediapipe", options: Any = None, cache_dir: PathLike | None = None,
                   use_cache: bool = True, overlays: bool = True, progress: bool = True,
                   batch_size: int = 1) -> list[ImageResult]:
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
        batch_size: photos read and predicted together (one ``predict_batch`` call when the
            estimator has it, e.g. the ICCV21 network; photo by photo otherwise).

    Returns:
        One :class:`ImageResult` per photo, in input order; failed photos have ``error`` set.

    Raises:
        FileNotFoundError: an input does not exist, or the model's files are missing.
        Exception: whatever the estimator's constructor raises (e.g. a refused checkpoint), once:
            no photo can be processed without the model.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    paths = expand_inputs(folder_or_paths)
    model_name = _model_name(model)
    cache = Path(cache_dir) if cache_dir is not None else prediction_cache_dir()
    cache = cache if use_cache else None
    out = Path(out_dir) if out_dir is not None else None
    # Built lazily: a fully cached run never loads the model. Outside the per-photo error handling:
    # a missing or refused model file stops the run once instead of failing every photo.
    estimator: Estimator | None = None if isinstance(model, str) else model

    results = []
    names = output_names(paths)
    with tqdm(total=len(paths), desc=f"hands ({model_name})", unit="photo", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            chunk: list[tuple[ImageResult, np.ndarray | None, Path | None]] = []
            for path in paths[start:start + batch_size]:
                try:
                    chunk.append(_read_one(path, model_name, options, cache))
                except Exception as exc:  # noqa: BLE001 - one bad photo must not abort the batch
                    logger.error("skipping %s: %s: %s", path, type(exc).__name__, exc)
                    chunk.append((ImageResult(path, error=f"{type(exc).__name__}: {exc}"), None, None))
            pending = [item for item in chunk if item[1] is not None and not item[0].cached]
            if pending:
                if estimator is None:
                    estimator = _estimator(model, options)
                _predict_pending(estimator, pending)
            for (result, image, _), name in zip(chunk, names[start:start + batch_size]):
                if out is not None and overlays and result.error is None:
                    from handpose.viz import draw_hands, gesture_notes

                    result.overlay = out / "overlays" / name
                    result.overlay.parent.mkdir(parents=True, exist_ok=True)
                    io.save_png_atomic(result.overlay, draw_hands(image, result.hands, notes=gesture_notes(result.hands)))
                results.append(result)
            bar.update(len(chunk))
    if out is not None:
        write_predictions(out / "predictions.json", results)
    return results


# ---------------------------------------------------------------------------------------------
# Photos -> fitted meshes (the step after predict_folder)
# ---------------------------------------------------------------------------------------------
@dataclass
class MeshedImage:
    """One photo with its predicted hands and their fitted meshes.

    Attributes:
        path: the photo.
        image: ``(H, W, 3)`` uint8 RGB, as loaded by :func:`handpose.io.load_image`.
        K: ``(3, 3)`` intrinsics used for the fits.
        hands: the predictions.
        fits: one :class:`~handpose.fitting.FitResult` (``B = 1``) per hand, camera frame, mm.
    """

    path: Path
    image: np.ndarray
    K: np.ndarray
    hands: list[HandPrediction]
    fits: list["FitResult"]

    @property
    def name(self) -> str:
        return self.path.name

    def overlay(self, alpha: float = 0.8) -> np.ndarray:
        """``(H, W, 3)`` uint8: the photo with every fitted mesh shaded over it (see
        :func:`handpose.render.mesh_overlay`)."""
        from handpose.render import mesh_overlay

        return mesh_overlay(self.image, self.fits, self.K, alpha=alpha)


def mesh_images(
    results: Sequence[ImageResult],
    model_or_kind: "str | HandModel | Mapping[str, HandModel]" = "open",
    intrinsics: Mapping[str, np.ndarray] | None = None,
    **fit_options,
) -> list[MeshedImage]:
    """Fit meshes to the hands of :func:`handpose.pipeline.predict_folder` results (photos that
    failed are skipped).

    Args:
        results: the pipeline's results.
        model_or_kind: see :func:`handpose.fitting.fit_images`.
        intrinsics: ``K`` per photo file name (e.g. :func:`handpose.groundtruth.known_intrinsics`);
            photos not in it get :func:`handpose.camera.default_intrinsics` with their EXIF focal
            length (:func:`handpose.io.exif_focal_35mm`) when they have one.
        **fit_options: passed to :func:`handpose.fitting.fit_images` (``threads``) and
            :func:`handpose.fitting.fit_hand`.
    """
    from handpose.camera import default_intrinsics  # torch: imported only when meshes are fitted
    from handpose.fitting import fit_images

    intrinsics = intrinsics or {}
    done = [r for r in results if r.error is None]
    images = [io.load_image(r.image) for r in done]
    Ks = []
    for r, image in zip(done, images):
        height, width = image.shape[:2]
        K = intrinsics.get(r.image.name)
        if K is not None and r.width is not None and (r.width, r.height) != (width, height):
            raise ValueError(f"{r.image.name}: K is for {r.width} x {r.height} but the photo loads as {width} x {height}")
        Ks.append(default_intrinsics(width, height, io.exif_focal_35mm(r.image)) if K is None else np.asarray(K, dtype=np.float64))
    fits = fit_images(model_or_kind, [r.hands for r in done], Ks, **fit_options)
    return [MeshedImage(r.image, image, K, list(r.hands), f) for r, image, K, f in zip(done, images, Ks, fits)]


def write_meshes(meshed: Sequence[MeshedImage], out_dir: str | os.PathLike, names: Sequence[str]) -> list[Path]:
    """Write each photo's fitted meshes: ``out_dir/<name>`` (PNG, the meshes over the photo) and per
    hand ``out_dir/<stem>_hand<i>_<side>.obj`` (camera frame, mm), all atomically.

    Args:
        meshed: from :func:`mesh_images`.
        out_dir: the folder (created if needed).
        names: one ``<stem>.png`` per photo (e.g. :func:`handpose.pipeline.output_names`).
    Returns:
        The paths written, in order.
    """
    from handpose.render import export_obj

    if len(names) != len(meshed):
        raise ValueError(f"got {len(meshed)} photos but {len(names)} names")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for item, name in zip(meshed, names):
        written.append(io.save_png_atomic(out / name, item.overlay()))
        stem = Path(name).stem
        for i, fit in enumerate(item.fits, start=1):
            written.append(export_obj(out / f"{stem}_hand{i}_{fit.side}.obj", fit.vertices[0], fit.faces))
    return written


def write_predictions(path: PathLike, results: Sequence[ImageResult]) -> None:
    """Write ``predictions.json`` (see the module docstring) atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    io.write_atomic(Path(path), json.dumps([r.to_json() for r in results], indent=1))


def read_predictions(path: PathLike) -> list[ImageResult]:
    """Inverse of :func:`write_predictions`."""
    return [ImageResult(Path(e["image"]), e.get("width"), e.get("height"),
                        [HandPrediction.from_json(h) for h in e["hands"]], e.get("error"))
            for e in json.loads(Path(path).read_text())]
