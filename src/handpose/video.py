"""Videos in, annotated videos and per-frame hands out (``handpose video``; the frame loop of ``live``).

Per frame (:class:`FrameProcessor`):

1. :func:`detect_hands`: the hands of the frame. With tracking, MediaPipe's own video mode
   (``static_image_mode=False``) seeds each frame's landmark search with the previous frame's
   hands and runs its palm detector only when hands are lost; without, every frame is searched
   from scratch.
2. :class:`handpose.tracking.HandTracker`: stable track ids, One-Euro smoothing.
3. :func:`handpose.gestures.classify`: fingers and gesture of each hand.
4. Optionally :func:`fit_meshes`: the hand model fitted to each hand (the one call to the fit).

:func:`process_video` writes ``DIR/<stem>_annotated.mp4`` (skeletons, optional meshes, track id,
handedness, finger count and gesture) and ``DIR/<stem>_hands.jsonl``: one JSON object per frame,
``{"frame": i, "time": seconds, "hands": [...]}``, each hand the ``HandPrediction`` JSON
(:meth:`handpose.prediction.HandPrediction.to_json`, smoothed keypoints) plus ``"track_id"``
(``null`` without tracking), ``"gesture"`` and ``"fingers"``. Both are written atomically; the
input is only read.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from handpose import io
from handpose.camera import default_intrinsics
from handpose.fitting import FitResult
from handpose.gestures import HandGesture, classify
from handpose.prediction import HandPrediction
from handpose.tracking import HandTracker, TrackedHand

#: Frame rate assumed when a file does not say.
DEFAULT_FPS = 30.0


class VideoError(ValueError):
    """A video that cannot be read; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """``frames`` (as the container says; may be approximate), ``fps``, ``width``, ``height`` (px)."""

    frames: int
    fps: float
    width: int
    height: int


def _open(path: str | os.PathLike) -> cv2.VideoCapture:
    path = Path(path)
    if not path.is_file():
        raise VideoError(path, "no such file")
    if path.stat().st_size == 0:
        raise VideoError(path, "the file is empty")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoError(path, "not a video OpenCV can decode (corrupt, truncated or an unknown format)")
    return capture


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate and frame count of a video file.

    Raises:
        VideoError: missing, empty or undecodable file, or no frame in it.
    """
    capture = _open(path)
    try:
        ok, frame = capture.read()
        if not ok or frame is None:
            raise VideoError(path, "no frame could be decoded (empty or corrupt video)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        return VideoInfo(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), fps if fps and fps > 0 else DEFAULT_FPS,
                         frame.shape[1], frame.shape[0])
    finally:
        capture.release()


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The frames of a video file, ``(H, W, 3)`` uint8 RGB, in order.

    Raises:
        VideoError: missing, empty or undecodable file, or no frame in it.
    """
    capture = _open(path)
    try:
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield np.ascontiguousarray(frame[..., ::-1])
        if count == 0:
            raise VideoError(path, "no frame could be decoded (empty or corrupt video)")
    finally:
        capture.release()


class AtomicVideoWriter:
    """An MP4 (``mp4v``) written to a hidden temporary file in the same folder and renamed onto
    ``path`` by :meth:`close`; :meth:`abort` (or an exception in a ``with`` block) removes it,
    leaving ``path`` as it was. Frames are ``(H, W, 3)`` uint8 RGB of one size."""

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.{uuid.uuid4().hex[:12]}.tmp{self.path.suffix or '.mp4'}")
        self.fps = float(fps)
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frames must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        size = (frame.shape[1], frame.shape[0])
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: OpenCV cannot write an mp4v video here")
            self._size = size
        elif size != self._size:
            raise ValueError(f"frame size {size} differs from the first frame's {self._size}")
        self._writer.write(np.ascontiguousarray(frame[..., ::-1]))
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and move it onto ``path``."""
        if self._writer is None:
            raise ValueError(f"{self.path}: no frame was written")
        self._writer.release()
        self._writer = None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "AtomicVideoWriter":
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is None and self._writer is not None:
            self.close()
        else:
            self.abort()


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float) -> Path:
    """Write ``(H, W, 3)`` uint8 RGB frames as an MP4 at ``fps``, atomically; returns ``path``."""
    with AtomicVideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


# -- detection, the one seam for region searches --------------------------------------------------

class HandDetector:
    """MediaPipe Hands for a stream of frames.

    With ``tracking``, :class:`~handpose.models.mediapipe.MediaPipeTracker` (video mode: MediaPipe
    crops each frame around the previous frame's landmarks and runs its palm detector only when a
    hand is lost). Without, the default estimator's ``full`` view on every frame (no rescue stages).

    Args:
        tracking: seed each frame with the previous one.
        max_hands: hands per frame.
        model_complexity: 0 (lite) or 1 (full) landmark network.
        mirrored_input: frames are mirrored selfies (webcam previews): keep MediaPipe's labels.
    """

    def __init__(self, tracking: bool = True, max_hands: int = 2, model_complexity: int = 1,
                 mirrored_input: bool = False) -> None:
        from handpose.models.mediapipe import MediaPipeEstimator, MediaPipeOptions, MediaPipeTracker

        self.tracking = tracking
        self.options = MediaPipeOptions(max_hands=max_hands, model_complexity=model_complexity, rescue=False,
                                        use_pose=False, tile_grids=(), fine_tile_side=0, use_regions=False,
                                        mirrored_input=mirrored_input)
        self.estimator = MediaPipeTracker(self.options) if tracking else MediaPipeEstimator(self.options)

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        self.estimator.close()

    def __enter__(self) -> "HandDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def detect_hands(detector: HandDetector, frame: np.ndarray, previous: list[TrackedHand]) -> list[HandPrediction]:
    """The hands in one ``(H, W, 3)`` uint8 RGB frame, given the previous frame's tracked hands.

    The single place where a frame is searched: a region-of-interest search seeded by
    ``previous`` (their boxes) plugs in here. Today MediaPipe's video mode keeps its own seeds.
    """
    return detector.estimator.predict(frame)


# -- meshes: the one call to the fit ---------------------------------------------------------------

def fit_meshes(hands: list[HandPrediction], K: np.ndarray, models: dict[str, Any],
               previous: dict[tuple[int, str], FitResult] | None = None,
               track_ids: list[int | None] | None = None,
               ) -> list[FitResult]:
    """The hand model fitted to each hand of a frame (``B = 1`` results, in order).

    The one place the video path calls the fit. A hand whose track had a fit in the last frame
    (same track id and side in ``previous``) is warm-started from it (``fit_hand(..., init=...)``:
    a few Levenberg-Marquardt steps, ~10 ms); the others are fitted from scratch, batched.

    Args:
        hands: the frame's (smoothed) predictions.
        K: ``(3, 3)`` intrinsics of the frame.
        models: ``{"right": HandModel, "left": HandModel}``.
        previous: last frame's fits by ``(track id, handedness)``.
        track_ids: each hand's track id (``None``: untracked).
    """
    from handpose.fitting import fit_hand, fit_images

    previous = previous or {}
    track_ids = track_ids if track_ids is not None else [None] * len(hands)
    fits: list[FitResult | None] = [None] * len(hands)
    fresh = []
    for k, (hand, tid) in enumerate(zip(hands, track_ids)):
        init = previous.get((tid, hand.handedness)) if tid is not None else None
        if init is None:
            fresh.append(k)
            continue
        fits[k] = fit_hand(models[hand.handedness], hand.keypoints_2d, hand.keypoints_3d, K, init=init)
    if fresh:
        for k, fit in zip(fresh, fit_images(models, [[hands[k] for k in fresh]], [K])[0]):
            fits[k] = fit
    return fits  # type: ignore[return-value]


# -- one frame ---------------------------------------------------------------------------------------

@dataclass
class FrameResult:
    """One processed frame.

    Attributes:
        index: frame number from 0.
        time: seconds from the start.
        hands: tracked hands (smoothed keypoints in ``hand``).
        gestures: per hand, its fingers and gesture (``None`` when it could not be classified).
        fits: per hand, its fitted mesh, when meshes are on.
    """

    index: int
    time: float
    hands: list[TrackedHand]
    gestures: list[HandGesture | None]
    fits: list[FitResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON line of this frame (module docstring)."""
        hands = []
        for tracked, gesture in zip(self.hands, self.gestures):
            entry = tracked.hand.to_json()
            entry["track_id"] = tracked.track_id
            entry.update(gesture.to_json() if gesture is not None else {"gesture": None, "fingers": None})
            hands.append(entry)
        return {"frame": self.index, "time": round(self.time, 4), "hands": hands}


def _gesture(keypoints_3d: np.ndarray) -> HandGesture | None:
    try:
        return classify(keypoints_3d)
    except ValueError:
        return None


class FrameProcessor:
    """Detection, tracking, smoothing, gestures and optional meshes, frame after frame.

    Args:
        tracking: seed each frame's search with the previous hands, and give track ids.
        smoothing: One-Euro smoothing of the keypoints (needs tracking).
        meshes: fit the open hand model to each hand.
        max_hands: hands per frame.
        model_complexity: MediaPipe landmark network, 0 or 1.
        mirrored_input: frames are mirrored selfies.
    """

    def __init__(self, tracking: bool = True, smoothing: bool = True, meshes: bool = False, max_hands: int = 2,
                 model_complexity: int = 1, mirrored_input: bool = False) -> None:
        if max_hands < 1:
            raise ValueError(f"max_hands must be >= 1, got {max_hands}")
        self.detector = HandDetector(tracking, max_hands, model_complexity, mirrored_input)
        self.tracker = HandTracker(smoothing=smoothing) if tracking else None
        self.meshes = meshes
        self._models: dict[str, Any] | None = None
        self._fits: dict[tuple[int, str], FitResult] = {}
        self._previous: list[TrackedHand] = []

    @property
    def smoothing(self) -> bool:
        return self.tracker is not None and self.tracker.smoothing

    @smoothing.setter
    def smoothing(self, value: bool) -> None:
        if self.tracker is not None:
            self.tracker.smoothing = bool(value)

    def models(self) -> dict[str, Any]:
        """The open hand model of each side (loaded on first use)."""
        if self._models is None:
            from handpose.handmodel import load_hand_model

            self._models = {side: load_hand_model("open", side) for side in ("right", "left")}
        return self._models

    def process(self, frame: np.ndarray, index: int, t: float) -> FrameResult:
        """One ``(H, W, 3)`` uint8 RGB frame at time ``t`` seconds."""
        found = detect_hands(self.detector, frame, self._previous)
        if self.tracker is not None:
            tracked = self.tracker.update(found, t)
        else:
            tracked = [TrackedHand(None, hand, hand) for hand in found]
        self._previous = tracked
        result = FrameResult(index, t, tracked, [_gesture(th.hand.keypoints_3d) for th in tracked])
        if self.meshes and tracked:
            K = default_intrinsics(frame.shape[1], frame.shape[0])
            ids = [th.track_id for th in tracked]
            result.fits = fit_meshes([th.hand for th in tracked], K, self.models(), self._fits, ids)
            self._fits = {(i, th.hand.handedness): fit for i, th, fit in zip(ids, tracked, result.fits)
                          if i is not None}
        return result

    def close(self) -> None:
        self.detector.close()


def hand_notes(result: FrameResult) -> list[str]:
    """Per hand, the text drawn after its label: ``"#id 3 victory/two"``."""
    notes = []
    for tracked, gesture in zip(result.hands, result.gestures):
        prefix = f"#{tracked.track_id} " if tracked.track_id is not None else ""
        notes.append(prefix + (f"{gesture.count} {gesture.label}" if gesture is not None else "?"))
    return notes


def annotate(frame: np.ndarray, result: FrameResult, skeleton: bool = True, meshes: bool = True,
             fps: float | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB: the frame with meshes (when fitted and ``meshes``), skeletons,
    labels (track id, handedness, finger count, gesture) and, if given, the FPS in a corner."""
    from handpose.viz import draw_hands, draw_text

    out = np.asarray(frame)
    if meshes and result.fits:
        from handpose.render import mesh_overlay

        out = mesh_overlay(out, result.fits, default_intrinsics(out.shape[1], out.shape[0]))
    out = draw_hands(out, [th.hand for th in result.hands], notes=hand_notes(result), bones=skeleton)
    if fps is not None:
        out = draw_text(out, f"{fps:.1f} FPS", (8, 8))
    return out


# -- whole videos --------------------------------------------------------------------------------------

@dataclass
class VideoResult:
    """What :func:`process_video` did: the files written, frames processed, and the per-frame
    results (``frames``; kept when ``keep_results``), and the processing rate."""

    video: Path
    jsonl: Path
    frame_count: int
    seconds: float
    frames: list[FrameResult] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frame_count / self.seconds if self.seconds > 0 else float("nan")


def output_paths(video: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``(DIR/<stem>_annotated.mp4, DIR/<stem>_hands.jsonl)`` of an input video."""
    stem = Path(video).stem
    return Path(out_dir) / f"{stem}_annotated.mp4", Path(out_dir) / f"{stem}_hands.jsonl"


def process_video(video: str | os.PathLike, out_dir: str | os.PathLike, meshes: bool = False, tracking: bool = True,
                  smoothing: bool = True, max_hands: int = 2, model_complexity: int = 1, progress: bool = True,
                  keep_results: bool = False, processor: FrameProcessor | None = None) -> VideoResult:
    """Annotate a video: see the module docstring for what is written.

    Args:
        video: input file (only read).
        out_dir: output folder (created).
        meshes: fit and draw the open hand model.
        tracking, smoothing: see :class:`FrameProcessor`.
        max_hands, model_complexity: MediaPipe settings.
        progress: tqdm progress bar.
        keep_results: return every :class:`FrameResult` in ``VideoResult.frames``.
        processor: a ready :class:`FrameProcessor` (then the four settings above are ignored).

    Raises:
        VideoError: the video is missing, empty or undecodable.
    """
    from tqdm.auto import tqdm

    info = video_info(video)
    video_out, jsonl_out = output_paths(video, out_dir)  # never the input's name: "_annotated", ".jsonl"
    own = processor is None
    processor = processor or FrameProcessor(tracking, smoothing, meshes, max_hands, model_complexity)
    lines, kept = [], []
    start = time.perf_counter()
    count = 0
    try:
        with AtomicVideoWriter(video_out, info.fps) as writer:
            bar = tqdm(read_frames(video), total=info.frames or None, desc=f"hands ({Path(video).name})",
                       unit="frame", disable=not progress)
            for index, frame in enumerate(bar):
                result = processor.process(frame, index, index / info.fps)
                writer.write(annotate(frame, result))
                lines.append(json.dumps(result.to_json()))
                if keep_results:
                    kept.append(result)
                count += 1
    finally:
        if own:
            processor.close()
    seconds = time.perf_counter() - start
    io.write_atomic(jsonl_out, "\n".join(lines) + "\n")
    return VideoResult(video_out, jsonl_out, count, seconds, kept)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The frames of a ``<stem>_hands.jsonl`` file, as dicts."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
