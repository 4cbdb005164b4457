"""A rendered test clip with exact per-frame ground truth: gestures, a turning wrist, a hand entering.

:func:`render_clip` animates the open hand model with the demo scene code
(:mod:`handpose.demo_data`, :mod:`handpose.scene`): a right hand, palm to the camera, runs through
a sequence of gestures (each held for ``hold`` frames, joint angles blended linearly over
``transition`` frames between them) while its wrist turns about the forearm
(``turn_deg sin(2 pi t / period)``); halfway through, a left hand slides in from the right edge
and holds its own gestures. Every frame keeps each hand's exact 2D and 3D keypoints, visibility,
track number and, while a gesture is held, its expected gesture and finger count.

Nothing here is written to the repository: tests and benches render the clip into temporary
folders (:func:`write_clip`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from handpose import demo_data as dd
from handpose import scene as sc
from handpose.camera import intrinsics, project

_E = ((0, 0, 0), (0, 0, 0), (0, 0, 0))
_C = dd.GESTURES["fist"][1]  # a curled finger
_THUMB_OUT = ((-20, 0, -20), (-5, 0, 0), (-5, 0, 0))
_THUMB_IN = ((30, 0, 10), (40, 0, 0), (30, 0, 0))
_PINKY_OUT = ((-5, 0, 15), (0, 0, 0), (0, 0, 0))
#: Gestures the demo set lacks, in the format of :data:`handpose.demo_data.GESTURES`.
EXTRA_GESTURES: dict[str, tuple[tuple[tuple[float, float, float], ...], ...]] = {
    "thumbs_up": (_THUMB_OUT, _C, _C, _C, _C),
    "call": (_THUMB_OUT, _C, _C, _C, _PINKY_OUT),
    "rock": (_THUMB_IN, _E, _C, _C, _PINKY_OUT),
    "four": (_THUMB_IN, ((0, 0, -10), (0, 0, 0), (0, 0, 0)), _E, ((0, 0, 5), (0, 0, 0), (0, 0, 0)), _PINKY_OUT),
    "ok": (((25, 0, 15), (20, 0, 0), (15, 0, 0)), ((35, 0, 0), (50, 0, 0), (20, 0, 0)), _E, _E, _PINKY_OUT),
}
#: Pose name (demo or extra) -> (expected :mod:`handpose.gestures` name, finger count), ``None``
#: where undefined: a pinch's index finger is half bent; a relaxed hand lies between open and curled
#: (MediaPipe bends straight fingers by as much as the relaxed pose does).
EXPECTED: dict[str, tuple[str | None, int | None]] = {
    "open": ("open_palm", 5), "fist": ("fist", 0), "point": ("point", 1), "count2": ("victory", 2),
    "count3": ("three", 3), "pinch": ("ok", None), "relaxed": (None, None), "thumbs_up": ("thumbs_up", 1),
    "call": ("call", 2), "rock": ("rock", 2), "four": ("four", 4), "ok": ("ok", 3),
}
#: The right hand's default gesture sequence, and the entering left hand's.
SEQUENCE: tuple[str, ...] = ("open", "fist", "point", "count2", "count3", "four", "thumbs_up", "call", "rock", "ok")
SECOND_SEQUENCE: tuple[str, ...] = ("open", "count2", "fist")


def pose_of(name: str) -> np.ndarray:
    """``(45,)`` radians of a demo (:data:`handpose.demo_data.GESTURES`) or extra gesture."""
    if name in EXTRA_GESTURES:
        return np.radians(np.asarray(EXTRA_GESTURES[name], dtype=np.float64).reshape(-1))
    return dd.gesture_pose(name)


@dataclass
class HandTruth:
    """One hand in one frame.

    Attributes:
        track: 0 for the first hand, 1 for the one entering.
        side: ``"right"`` or ``"left"``.
        keypoints_2d: ``(21, 2)`` px, ``project(K, keypoints_3d)``.
        keypoints_3d: ``(21, 3)`` mm, camera frame.
        visible: ``(21,)`` bool (inside the image, not hidden: :func:`handpose.demo_data.keypoint_visibility`).
        gesture: expected gesture while a pose is held, ``None`` in transitions.
        count: expected finger count, ``None`` in transitions or where undefined.
        held: a pose is held (the fingers do not move; only the wrist turns).
    """

    track: int
    side: str
    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray
    visible: np.ndarray
    gesture: str | None
    count: int | None
    held: bool = True


@dataclass
class Clip:
    """A rendered clip: ``frames (T, H, W, 3)`` uint8 RGB, ``fps``, ``K (3, 3)`` and ``truth``, one
    list of :class:`HandTruth` per frame."""

    frames: np.ndarray
    fps: float
    K: np.ndarray
    truth: list[list[HandTruth]]

    def __len__(self) -> int:
        return len(self.frames)


def _timeline(names: Sequence[str], hold: int, transition: int, length: int) -> list[tuple[np.ndarray, str | None]]:
    """Per frame, the pose and the held gesture name (``None`` while blending), ``length`` frames."""
    out: list[tuple[np.ndarray, str | None]] = []
    poses = [pose_of(n) for n in names]
    i = 0
    while len(out) < length:
        name, pose = names[i % len(names)], poses[i % len(names)]
        out += [(pose, name)] * hold
        following = poses[(i + 1) % len(names)]
        out += [((1 - w) * pose + w * following, None) for w in np.arange(1, transition + 1) / (transition + 1)]
        i += 1
    return out[:length]


def _rotate_about(vector: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rodrigues: ``v cos a + (k x v) sin a + k (k . v)(1 - cos a)``, ``k`` the unit axis."""
    k = sc.normalize(np.asarray(axis, float))
    v = np.asarray(vector, float)
    a = np.radians(degrees)
    return v * np.cos(a) + np.cross(k, v) * np.sin(a) + k * (k @ v) * (1 - np.cos(a))


def render_clip(width: int = 640, height: int = 480, fps: float = 30.0, hold: int = 8, transition: int = 4,
                sequence: Sequence[str] = SEQUENCE, second: Sequence[str] = SECOND_SEQUENCE,
                second_from: float | None = 0.5, turn_deg: float = 45.0, turn_period: float = 4.0,
                seed: int = 0, progress: bool = False) -> Clip:
    """Render the clip (module docstring); ``len(sequence) * (hold + transition)`` frames.

    Args:
        width, height: frame size, px.
        fps: frame rate (the wrist turns with time in seconds).
        hold, transition: frames per held gesture and per blend between two.
        sequence: pose names (:data:`EXPECTED` keys) of the first (right) hand.
        second: pose names of the left hand entering at ``second_from`` of the clip (``None``: none).
        turn_deg, turn_period: amplitude (degrees) and period (s) of the wrist's turn.
        seed: noise and lighting jitter.
        progress: tqdm progress bar.
    """
    from tqdm.auto import tqdm

    unknown = [n for n in (*sequence, *second) if n not in EXPECTED]
    if unknown:
        raise ValueError(f"unknown poses {unknown}; known: {', '.join(EXPECTED)}")
    if hold < 1 or transition < 0 or not sequence:
        raise ValueError(f"need hold >= 1, transition >= 0 and a sequence; got {hold}, {transition}, {sequence}")
    count = len(sequence) * (hold + transition)
    rng = np.random.default_rng(seed)
    factory = sc.HandFactory()
    K = intrinsics(dd.FOCAL * width / dd.WIDTH, (width - 1) / 2.0, (height - 1) / 2.0)
    light, gain, exposure = dd.scene_lighting("daylight", rng)
    background = dd.scene_background("plain:wall", height, width, rng) * gain
    shape = {"right": np.clip(0.6 * rng.standard_normal(4), -1.5, 1.5),
             "left": np.clip(0.6 * rng.standard_normal(4), -1.5, 1.5)}
    first = _timeline(list(sequence), hold, transition, count)
    start = count if second_from is None else int(round(second_from * count))
    later = _timeline(list(second), hold, transition, max(count - start, 0))
    slide = max(hold, 1)  # frames the second hand takes to slide in
    frames, truth = [], []
    for f in tqdm(range(count), desc="rendering clip", unit="frame", disable=not progress):
        t = f / fps
        forward = np.array([0.1, -1.0, 0.1])
        normal = _rotate_about(np.array([0.0, 0.0, -1.0]), forward, turn_deg * np.sin(2 * np.pi * t / turn_period))
        u = 0.4 if second_from is not None else 0.5
        specs = [(0, dd.HandSpec("right", "open", tuple(forward), tuple(normal), (u, 0.55, 450)), *first[f])]
        if f >= start:
            k = f - start
            enter = 1.25 - (1.25 - 0.74) * min(k / slide, 1.0)
            specs.append((1, dd.HandSpec("left", "open", (-0.15, -1.0, 0.1), (0.0, 0.0, -1.0), (enter, 0.5, 480)),
                          *later[k]))
        hands = [(track, factory.build(spec, "III", (40, 50, 70), shape[spec.side], pose, K, width, height), name)
                 for track, spec, pose, name in specs]
        color, covered, depth = sc.shade_meshes([h.mesh for _, h, _ in hands], K, height, width, light,
                                                occlusion=False)
        linear = np.where(covered[..., None], color, background)
        frames.append(sc.camera_finish(linear, rng, exposure=exposure, noise=0.006))
        row = []
        for track, hand, name in hands:
            visible = dd.keypoint_visibility(hand.keypoints, K, depth, np.minimum(hand.skin_depth, dd.MAX_SKIN_DEPTH_MM)
                                             + dd.VISIBILITY_MARGIN_MM)
            if visible.sum() < 5:  # not yet in view
                continue
            gesture, fingers = EXPECTED[name] if name is not None else (None, None)
            row.append(HandTruth(track, hand.side, np.asarray(project(hand.keypoints, K)), hand.keypoints, visible,
                                 gesture, fingers, name is not None))
        truth.append(row)
    return Clip(np.stack(frames), float(fps), K, truth)


def write_clip(clip: Clip, path: str | Path) -> Path:
    """Write the clip's frames as an MP4 (:func:`handpose.video.write_video`); returns ``path``."""
    from handpose.video import write_video

    return write_video(path, clip.frames, clip.fps)


# -- scoring a tracker on the clip ---------------------------------------------------------------

@dataclass
class ClipScores:
    """How well hands were tracked through a clip.

    Attributes:
        pck: ``(T,)`` per frame, the fraction of the visible true keypoints predicted within
            ``alpha`` times the true hand's box size (a missed hand's keypoints count as wrong).
        detected: fraction of the true hands (over all frames) matched by a prediction.
        id_switches: times a true hand's matched track id changed from its previous match.
        jitter: mean ``|x_{t+1} - 2 x_t + x_{t-1}|`` of the predicted keypoints, px/frame^2, over
            the triples of consecutive frames where the same true hand is matched and holds its
            pose (:attr:`HandTruth.held`: the fingers still, the wrist turning smoothly).
        truth_jitter: the same of the true keypoints on the same triples (the motion itself).
        error_jitter: the same of the error ``x - x_true``: the part of the jitter that is noise.
        gesture_accuracy: fraction of matched hands holding a defined gesture that are named right.
        count_accuracy: the same for finger counts.
        gestures: per matched hand with a defined gesture, ``(frame, true track, true gesture, predicted)``.
        counts: per matched hand with a defined count, ``(frame, true track, true count, predicted)``.
    """

    pck: np.ndarray
    detected: float
    id_switches: int
    jitter: float
    truth_jitter: float
    error_jitter: float
    gesture_accuracy: float
    count_accuracy: float
    gestures: list[tuple[int, int, str, str | None]]
    counts: list[tuple[int, int, int, int | None]]


def _acceleration(series: np.ndarray) -> np.ndarray:
    """``(N,)`` ``|x_{t+1} - 2 x_t + x_{t-1}|`` per keypoint of ``(3, 21, 2)`` triples ``(N, 3, 21, 2)``."""
    return np.linalg.norm(series[:, 2] - 2 * series[:, 1] + series[:, 0], axis=-1).reshape(-1)


def evaluate_clip(clip: Clip, tracked: Sequence[Sequence], alpha: float = 0.1) -> ClipScores:
    """Score per-frame tracked hands (:class:`handpose.tracking.TrackedHand` lists, one per frame)
    against the clip's truth: hands are matched per frame (:func:`handpose.metrics.match_hands`),
    gestures come from :func:`handpose.gestures.classify` of the tracked 3D keypoints."""
    from handpose.gestures import classify
    from handpose.metrics import box_size, match_hands

    if len(tracked) != len(clip):
        raise ValueError(f"{len(tracked)} frames of hands for a clip of {len(clip)} frames")
    pck, found, total = [], 0, 0
    last_id: dict[int, int | None] = {}
    switches = 0
    history: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    gestures, counts = [], []
    for f, (truth, hands) in enumerate(zip(clip.truth, tracked)):
        if not truth:
            pck.append(np.nan)
            continue
        gt = np.stack([h.keypoints_2d for h in truth])
        visible = np.stack([h.visible for h in truth])
        pred = np.stack([th.hand.keypoints_2d for th in hands]) if hands else np.zeros((0, 21, 2))
        matches = match_hands(pred, gt, visible)
        size = box_size(gt, visible)
        correct, seen = 0.0, float(visible.sum())
        total += len(truth)
        for p, g in matches.pairs:
            found += 1
            error = np.linalg.norm(pred[p] - gt[g], axis=-1)[visible[g]]
            correct += float((error < alpha * size[g]).sum())
            true_hand, th = truth[g], hands[p]
            if true_hand.track in last_id and th.track_id != last_id[true_hand.track]:
                switches += 1
            last_id[true_hand.track] = th.track_id
            if true_hand.held:
                history.setdefault(true_hand.track, []).append((f, pred[p], true_hand.keypoints_2d))
            if true_hand.gesture is not None or true_hand.count is not None:
                try:
                    got = classify(th.hand.keypoints_3d)
                    name, count = got.gesture, got.count
                except ValueError:
                    name, count = None, None
                if true_hand.gesture is not None:
                    gestures.append((f, true_hand.track, true_hand.gesture, name))
                if true_hand.count is not None:
                    counts.append((f, true_hand.track, true_hand.count, count))
        pck.append(correct / seen if seen else np.nan)
    triples_pred, triples_true = [], []
    for items in history.values():
        for a, b, c in zip(items, items[1:], items[2:]):
            if c[0] - a[0] == 2:
                triples_pred.append(np.stack([a[1], b[1], c[1]]))
                triples_true.append(np.stack([a[2], b[2], c[2]]))
    if triples_pred:
        tp, tt = np.stack(triples_pred), np.stack(triples_true)
        jitter, truth_jitter, error_jitter = (float(_acceleration(x).mean()) for x in (tp, tt, tp - tt))
    else:
        jitter = truth_jitter = error_jitter = float("nan")
    mean = lambda rows: float(np.mean([t == p for *_, t, p in rows])) if rows else float("nan")  # noqa: E731
    return ClipScores(np.asarray(pck), found / total if total else float("nan"), switches, jitter, truth_jitter,
                      error_jitter, mean(gestures), mean(counts), gestures, counts)


def acceleration_by_frame(clip: Clip, tracked: Sequence[Sequence], track: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per frame ``t``, the mean ``|x_{t+1} - 2 x_t + x_{t-1}|`` over the 21 keypoints (px/frame^2)
    of the tracked hand matched to true hand ``track`` and of the truth itself: ``(pred (T,), true (T,))``,
    NaN where the hand is not matched in all three frames."""
    from handpose.metrics import match_hands

    pred = np.full((len(clip), 21, 2), np.nan)
    true = np.full((len(clip), 21, 2), np.nan)
    for f, (truth, hands) in enumerate(zip(clip.truth, tracked)):
        rows = [g for g, h in enumerate(truth) if h.track == track]
        if not rows or not hands:
            continue
        g = rows[0]
        candidates = np.stack([th.hand.keypoints_2d for th in hands])
        pairs = match_hands(candidates, truth[g].keypoints_2d[None], truth[g].visible[None]).pairs
        if len(pairs):
            pred[f], true[f] = candidates[pairs[0, 0]], truth[g].keypoints_2d
    def accel(x: np.ndarray) -> np.ndarray:
        return np.r_[np.nan, np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1).mean(-1), np.nan]

    return accel(pred), accel(true)


def track_clip(clip: Clip, smoothing: Sequence[bool] = (False, True), max_hands: int = 2,
               progress: bool = False) -> tuple[dict[bool, list[list]], float]:
    """Run MediaPipe's tracking once over the clip's frames and re-track its raw detections with
    and without smoothing: ``({smoothing: per-frame TrackedHand lists}, detection seconds)``."""
    from tqdm.auto import tqdm

    from handpose.tracking import HandTracker
    from handpose.video import HandDetector, detect_hands

    raw, seconds = [], 0.0
    import time

    with HandDetector(tracking=True, max_hands=max_hands) as detector:
        previous: list = []
        for frame in tqdm(clip.frames, desc="tracking", unit="frame", disable=not progress):
            start = time.perf_counter()
            hands = detect_hands(detector, frame, previous)
            seconds += time.perf_counter() - start
            raw.append(hands)
    out = {}
    for smooth in smoothing:
        tracker = HandTracker(smoothing=smooth)
        out[smooth] = [tracker.update(hands, f / clip.fps) for f, hands in enumerate(raw)]
    return out, seconds
