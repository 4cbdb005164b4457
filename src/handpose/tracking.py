"""Hands across video frames: stable track ids and One-Euro smoothing of their keypoints.

:class:`HandTracker` takes each frame's detected hands and returns them as :class:`TrackedHand`:

* **Ids.** Detections are matched to the live tracks by the Hungarian algorithm
  (``scipy.optimize.linear_sum_assignment``) on the cost

      c(track, hand) = mean_j |x_j - x'_j| / size(track) + handedness_penalty [sides differ]

  (``x`` the hand's 2D keypoints, ``x'`` the track's last ones, ``size`` the longer side of its
  box, px / px). Pairs costing more than ``max_cost`` are not matched: the hand starts a new track
  (ids count up from 0 and are never reused); a track unmatched for more than ``max_missed``
  frames ends.
* **Smoothing.** Each track filters its 2D (px) and 3D (mm) keypoints with a
  :class:`OneEuroFilter` (Casiez et al., CHI 2012): a low-pass filter whose cutoff rises with the
  speed, so that a still hand stops jittering and a fast one does not lag. Speeds are measured in
  hand sizes per second, so the same settings suit near and far hands.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from handpose.prediction import HandPrediction


class OneEuroFilter:
    """One-Euro filter of an array signal sampled at irregular times (every element separately).

    For a sample ``x`` at time ``t`` (``dt`` since the last one)::

        a(fc) = 1 / (1 + 1 / (2 pi fc dt))                  smoothing factor of cutoff fc (Hz)
        dx    = a(d_cutoff) (x - x_prev) / dt + (1 - a(d_cutoff)) dx_prev      speed, filtered
        fc    = min_cutoff + beta |dx| / scale                                  adaptive cutoff
        x_hat = a(fc) x + (1 - a(fc)) x_hat_prev

    Args:
        min_cutoff: cutoff at rest, Hz (lower: less jitter, more lag when slow).
        beta: how fast the cutoff rises with the speed, per (``scale`` units per second).
        d_cutoff: cutoff of the speed estimate, Hz.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"need min_cutoff > 0, d_cutoff > 0 and beta >= 0; got {min_cutoff}, {d_cutoff}, {beta}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t = 0.0

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        return 1.0 / (1.0 + 1.0 / (2.0 * np.pi * cutoff * dt))

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        """The filtered value of sample ``x`` (any shape, fixed) at time ``t`` seconds.

        ``scale``: the signal's natural size (e.g. the hand's size in px), dividing the speed.
        """
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        if dt <= 0:
            raise ValueError(f"time must increase: {t} after {self._t}")
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * (x - self._x) / dt + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx) / max(scale, 1e-9)
        a = self._alpha(cutoff, dt)
        self._x = a * x + (1.0 - a) * self._x
        self._t = float(t)
        return self._x.copy()


@dataclass
class TrackedHand:
    """One hand in one frame.

    Attributes:
        track_id: stable id across frames (``None`` when tracking is off).
        hand: the prediction with smoothed keypoints (the raw one when smoothing is off).
        raw: the detector's prediction as it came.
    """

    track_id: int | None
    hand: HandPrediction
    raw: HandPrediction


@dataclass
class _Track:
    track_id: int
    handedness: str
    keypoints_2d: np.ndarray
    size: float
    filter_2d: OneEuroFilter
    filter_3d: OneEuroFilter
    missed: int = 0
    votes: dict[str, float] = field(default_factory=dict)


def hand_size(keypoints_2d: np.ndarray) -> float:
    """Longer side of the keypoints' box, px (at least 1)."""
    return max(float(np.ptp(np.asarray(keypoints_2d), axis=0).max()), 1.0)


def match_cost(tracks_2d: list[np.ndarray], sizes: list[float], track_sides: list[str],
               hands: list[HandPrediction], handedness_penalty: float = 0.5) -> np.ndarray:
    """``(T, H)`` matching costs of tracks and detected hands (module docstring)."""
    cost = np.zeros((len(tracks_2d), len(hands)))
    for i, (points, size, side) in enumerate(zip(tracks_2d, sizes, track_sides)):
        for j, hand in enumerate(hands):
            distance = np.linalg.norm(hand.keypoints_2d - points, axis=1).mean() / size
            cost[i, j] = distance + handedness_penalty * (hand.handedness != side)
    return cost


class HandTracker:
    """Track ids and smoothing over a sequence of frames (module docstring).

    Args:
        smoothing: filter the keypoints (else the tracked hands keep the raw ones).
        min_cutoff, beta, d_cutoff: :class:`OneEuroFilter` settings; ``beta`` is per hand size
            per second.
        max_cost: the most a match may cost (mean keypoint distance in hand sizes + penalty).
        max_missed: frames a track survives without a matching hand.
        handedness_penalty: added cost when the sides differ.
    """

    def __init__(self, smoothing: bool = True, min_cutoff: float = 0.3, beta: float = 3.0, d_cutoff: float = 10.0,
                 max_cost: float = 1.0, max_missed: int = 5, handedness_penalty: float = 0.5) -> None:
        if max_cost <= 0 or max_missed < 0:
            raise ValueError(f"need max_cost > 0 and max_missed >= 0, got {max_cost}, {max_missed}")
        OneEuroFilter(min_cutoff, beta, d_cutoff)  # validates the settings
        self.smoothing = smoothing
        self.filter_settings = (min_cutoff, beta, d_cutoff)
        self.max_cost, self.max_missed, self.handedness_penalty = max_cost, max_missed, handedness_penalty
        self.tracks: list[_Track] = []
        self._next_id = 0

    def _new_track(self, hand: HandPrediction) -> _Track:
        track = _Track(self._next_id, hand.handedness, hand.keypoints_2d, hand_size(hand.keypoints_2d),
                       OneEuroFilter(*self.filter_settings), OneEuroFilter(*self.filter_settings))
        self._next_id += 1
        self.tracks.append(track)
        return track

    def update(self, hands: list[HandPrediction], t: float) -> list[TrackedHand]:
        """The hands of the frame at time ``t`` seconds, with track ids (in the order given)."""
        from scipy.optimize import linear_sum_assignment

        assigned: list[_Track | None] = [None] * len(hands)
        if self.tracks and hands:
            cost = match_cost([tr.keypoints_2d for tr in self.tracks], [tr.size for tr in self.tracks],
                              [tr.handedness for tr in self.tracks], hands, self.handedness_penalty)
            for i, j in zip(*linear_sum_assignment(cost)):
                if cost[i, j] <= self.max_cost:
                    assigned[j] = self.tracks[i]
        matched = {id(tr) for tr in assigned if tr is not None}
        for track in self.tracks:
            track.missed = 0 if id(track) in matched else track.missed + 1
        self.tracks = [tr for tr in self.tracks if tr.missed <= self.max_missed]
        out = []
        for hand, track in zip(hands, assigned):
            track = track or self._new_track(hand)
            size = hand_size(hand.keypoints_2d)
            track.keypoints_2d, track.size = hand.keypoints_2d, size
            # handedness: the track keeps the side with the most confidence so far (no flicker)
            track.votes[hand.handedness] = track.votes.get(hand.handedness, 0.0) + hand.score
            track.handedness = max(track.votes, key=track.votes.get)
            # the filters run even when smoothing is off, so that switching it on mid-stream is seamless
            kp2 = track.filter_2d(hand.keypoints_2d, t, size)
            kp3 = track.filter_3d(hand.keypoints_3d, t, max(float(np.ptp(hand.keypoints_3d, axis=0).max()), 1e-6))
            if not self.smoothing:
                kp2, kp3 = hand.keypoints_2d, hand.keypoints_3d
            smoothed = dataclasses.replace(hand, keypoints_2d=kp2, keypoints_3d=kp3, handedness=track.handedness,
                                           box_xyxy=None, extras=dict(hand.extras))
            out.append(TrackedHand(track.track_id, smoothed, hand))
        return out
