"""Track ids and One-Euro smoothing, on synthetic keypoint streams with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from handpose.prediction import HandPrediction
from handpose.tracking import HandTracker, OneEuroFilter, hand_size


def hand_at(center, side: str = "right", size: float = 100.0, score: float = 0.9) -> HandPrediction:
    """A 21-keypoint hand: a fixed layout of ``size`` px around ``center``."""
    layout = np.random.default_rng(7).uniform(-0.5, 0.5, (21, 2))
    kp2 = np.asarray(center, float) + size * layout
    kp3 = np.c_[layout * 90.0, np.linspace(0, 10, 21)]
    return HandPrediction(kp2, kp3 - kp3[0], side, score)


def test_one_euro_known_answers():
    """First sample passes through; a constant stays constant; with beta = 0 it is the exponential
    filter x_hat = a x + (1 - a) x_hat_prev, a = 1 / (1 + 1 / (2 pi fc dt))."""
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    np.testing.assert_array_equal(f(np.array([3.0, 4.0]), 0.0), [3.0, 4.0])
    np.testing.assert_allclose(f(np.array([3.0, 4.0]), 0.1), [3.0, 4.0])
    a = 1.0 / (1.0 + 1.0 / (2 * np.pi * 1.0 * 0.1))
    np.testing.assert_allclose(f(np.array([13.0, 4.0]), 0.2), [3.0 + 10.0 * a, 4.0])
    with pytest.raises(ValueError, match="time must increase"):
        f(np.zeros(2), 0.2)
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0.0)


def test_one_euro_cuts_noise_and_follows_motion():
    """White noise on a still point: the filtered acceleration is less than half the raw one. A fast
    ramp (10 px per frame): once the speed estimate has settled, the filter lags by less than 1.5
    frames of motion."""
    rng = np.random.default_rng(0)
    t = np.arange(300) / 30.0
    raw = 100.0 + rng.normal(0.0, 2.0, (300, 21, 2))
    f = OneEuroFilter(min_cutoff=0.3, beta=3.0, d_cutoff=10.0)
    smooth = np.stack([f(x, ti, 100.0) for x, ti in zip(raw, t)])
    accel = lambda x: np.linalg.norm(np.diff(x, 2, axis=0), axis=-1).mean()  # noqa: E731
    assert accel(smooth) < 0.5 * accel(raw)
    ramp = 300.0 * t[:, None]  # 300 px/s = 3 hand sizes per second
    f = OneEuroFilter(min_cutoff=0.3, beta=3.0, d_cutoff=10.0)
    followed = np.stack([f(x, ti, 100.0) for x, ti in zip(ramp, t)])
    assert np.abs(followed[-30:] - ramp[-30:]).max() < 1.5 * 10.0


def test_ids_stay_with_their_hands_when_the_order_flips():
    """Two hands moving apart, given in alternating order: each keeps its id; a third hand far away
    gets a new id; a hand gone for longer than max_missed frames does not come back with its id."""
    tracker = HandTracker(smoothing=False, max_missed=2)
    ids = []
    for f in range(10):
        left, right = hand_at((200 - 5 * f, 200), "left"), hand_at((400 + 5 * f, 200), "right")
        hands = [left, right] if f % 2 else [right, left]
        out = tracker.update(hands, f / 30.0)
        ids.append({th.hand.handedness: th.track_id for th in out})
    assert all(d == ids[0] for d in ids) and sorted(ids[0].values()) == [0, 1]
    out = tracker.update([hand_at((200, 200), "left"), hand_at((400, 200), "right"), hand_at((600, 400))], 10 / 30)
    assert [th.track_id for th in out] == [ids[0]["left"], ids[0]["right"], 2]
    for f in range(11, 15):  # the left hand leaves for 4 frames > max_missed
        tracker.update([hand_at((400, 200), "right")], f / 30)
    back = tracker.update([hand_at((200, 200), "left"), hand_at((400, 200), "right")], 15 / 30)
    assert back[1].track_id == ids[0]["right"] and back[0].track_id == 3


def test_handedness_is_voted_and_penalised():
    """A one-frame handedness flip does not change the track's side; with two candidates at the same
    distance, the one of the track's side wins the match."""
    tracker = HandTracker(smoothing=False)
    for f in range(5):
        tracker.update([hand_at((300, 300), "right")], f / 30)
    out = tracker.update([hand_at((300, 300), "left", score=0.6)], 5 / 30)
    assert out[0].track_id == 0 and out[0].hand.handedness == "right" and out[0].raw.handedness == "left"
    tracker = HandTracker(smoothing=False)
    tracker.update([hand_at((300, 300), "right")], 0.0)
    out = tracker.update([hand_at((310, 300), "left"), hand_at((290, 300), "right")], 1 / 30)
    assert [th.track_id for th in out] == [1, 0]


def test_smoothing_changes_keypoints_and_keeps_the_box_consistent():
    rng = np.random.default_rng(1)
    tracker = HandTracker(smoothing=True)
    for f in range(5):
        hand = hand_at((300, 300) + rng.normal(0, 3, 2))
        out = tracker.update([hand], f / 30)[0]
    assert not np.allclose(out.hand.keypoints_2d, out.raw.keypoints_2d)
    np.testing.assert_allclose(out.hand.box_xyxy, np.r_[out.hand.keypoints_2d.min(0), out.hand.keypoints_2d.max(0)])
    assert hand_size(out.hand.keypoints_2d) == pytest.approx(100.0, rel=0.1)
