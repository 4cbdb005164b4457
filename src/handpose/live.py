"""``handpose live``: a webcam (or a video file) in an OpenCV window, annotated as it plays.

The frame loop is :class:`handpose.video.FrameProcessor` and :func:`handpose.video.annotate`, plus
the frame rate in a corner. Keys (window focused): ``m`` meshes on/off, ``k`` skeleton on/off,
``s`` smoothing on/off, ``p`` save a snapshot PNG, ``q`` or Esc quit.

Without a display (no ``$DISPLAY`` on Linux, or OpenCV's window system failing) it says so and
writes the annotated frames to ``out`` (an MP4) instead.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from handpose import io
from handpose.video import DEFAULT_FPS, AtomicVideoWriter, FrameProcessor, annotate

WINDOW = "handpose live"
#: Key -> what it does (printed at start).
KEYS: dict[str, str] = {"m": "meshes on/off", "k": "skeleton on/off", "s": "smoothing on/off",
                        "p": "save a snapshot PNG", "q": "quit (or Esc)"}
#: Where ``--out`` goes when there is no display and none was given.
DEFAULT_OUT = Path("handpose_live.mp4")


def display_problem() -> str | None:
    """Why no OpenCV window can open here, or ``None`` when one can.

    On Linux without ``$DISPLAY``/``$WAYLAND_DISPLAY`` there is no display. Otherwise a window is
    opened and closed in a child process: OpenCV's Qt back end aborts the whole process (rather than
    raising) when it cannot reach the display.
    """
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display: $DISPLAY is not set (an SSH session, a container or CI)"
    probe = "import cv2; cv2.namedWindow('probe'); cv2.waitKey(1); cv2.destroyAllWindows()"
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "no display: opening an OpenCV window timed out"
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"no display: OpenCV cannot open a window ({reason})"
    return None


def open_source(camera: int | None = None, video: str | os.PathLike | None = None) -> tuple[cv2.VideoCapture, float]:
    """``(capture, fps)`` of camera number ``camera`` or of the file ``video``.

    Raises:
        VideoError: the file is missing, empty or undecodable.
        RuntimeError: the camera cannot be opened.
    """
    if video is not None:
        from handpose.video import _open, video_info

        video_info(video)  # a clear error for a missing, empty or corrupt file
        capture = _open(video)
    else:
        capture = cv2.VideoCapture(int(camera or 0))
        if not capture.isOpened():
            raise RuntimeError(f"camera {camera or 0} could not be opened (is it connected, or used by another "
                               "program?)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    return capture, fps if fps and fps > 0 else DEFAULT_FPS


@dataclass
class LiveState:
    """What is drawn, toggled by the keys; ``snapshots`` lists the PNGs saved."""

    meshes: bool = False
    skeleton: bool = True
    snapshots: list[Path] = field(default_factory=list)


@dataclass
class LiveResult:
    """What :func:`run_live` did: frames shown or written, the output video (if any), the
    snapshots saved, the mean processing rate (frames per second) and whether a window was used."""

    frames: int
    out: Path | None
    snapshots: list[Path]
    fps: float
    window: bool


def handle_key(key: int, state: LiveState, processor: FrameProcessor, frame: np.ndarray,
               snapshot_dir: Path) -> bool:
    """Apply one key press (``cv2.waitKey`` code); ``False`` to quit."""
    char = chr(key & 0xFF).lower() if key >= 0 else ""
    if char == "q" or key & 0xFF == 27:
        return False
    if char == "m":
        state.meshes = not state.meshes
        processor.meshes = state.meshes
    elif char == "k":
        state.skeleton = not state.skeleton
    elif char == "s":
        processor.smoothing = not processor.smoothing
    elif char == "p":
        path = snapshot_dir / f"handpose_snapshot_{len(state.snapshots) + 1:03d}.png"
        state.snapshots.append(io.save_png_atomic(path, frame))
        print(f"snapshot -> {path}", flush=True)
    return True


def run_live(camera: int | None = 0, video: str | os.PathLike | None = None, meshes: bool = False,
             out: str | os.PathLike | None = None, max_frames: int | None = None, window: bool | None = None,
             snapshot_dir: str | os.PathLike = ".", max_hands: int = 2) -> LiveResult:
    """Run the live view until ``q``, the end of the video, or ``max_frames``.

    Args:
        camera: camera number (ignored when ``video`` is given).
        video: a video file to play instead of a camera.
        meshes: start with the mesh overlay on.
        out: also write the annotated frames to this MP4 (always, when there is no display).
        max_frames: stop after this many frames (``None``: no limit).
        window: show a window (``None``: when :func:`display_problem` finds none).
        snapshot_dir: where ``p`` saves PNGs.
        max_hands: hands per frame.
    """
    use_window = window if window is not None else display_problem() is None
    if not use_window:
        if window is None:
            print(display_problem(), file=sys.stderr)
        out = Path(out) if out is not None else DEFAULT_OUT
        print(f"writing the annotated frames to {out} instead of a window", file=sys.stderr, flush=True)
    capture, source_fps = open_source(camera, video)
    state = LiveState(meshes=meshes)
    processor = FrameProcessor(meshes=meshes, max_hands=max_hands)
    writer = AtomicVideoWriter(out, source_fps) if out is not None else None
    frames, rate, start = 0, None, time.perf_counter()
    try:
        if use_window:
            cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)  # the frames' size (a resizable Qt window starts tiny)
            print("keys: " + ", ".join(f"{k} {what}" for k, what in KEYS.items()), flush=True)
        while max_frames is None or frames < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            tick = time.perf_counter()
            frame = np.ascontiguousarray(bgr[..., ::-1])
            t = frames / source_fps if video is not None else tick - start
            result = processor.process(frame, frames, t)
            shown = annotate(frame, result, skeleton=state.skeleton, meshes=state.meshes, fps=rate)
            # frame rate: exponential moving average of 1 / (processing time of a frame)
            now = 1.0 / max(time.perf_counter() - tick, 1e-6)
            rate = now if rate is None else 0.9 * rate + 0.1 * now
            if writer is not None:
                writer.write(shown)
            frames += 1
            if use_window:
                cv2.imshow(WINDOW, np.ascontiguousarray(shown[..., ::-1]))
                if not handle_key(cv2.waitKey(1), state, processor, shown, Path(snapshot_dir)):
                    break
    except KeyboardInterrupt:
        pass
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        capture.release()
        processor.close()
        if use_window:
            cv2.destroyAllWindows()
    written = writer.close() if writer is not None and writer.frames else None
    if writer is not None and not writer.frames:
        writer.abort()
    seconds = time.perf_counter() - start
    return LiveResult(frames, written, state.snapshots, frames / seconds if seconds > 0 else 0.0, use_window)
