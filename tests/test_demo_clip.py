"""The rendered clip: exact per-frame truth, the entering hand, the scoring of a tracker."""
from __future__ import annotations

import numpy as np
import pytest

from handpose.camera import project
from handpose.demo_clip import (EXPECTED, EXTRA_GESTURES, Clip, HandTruth, acceleration_by_frame, evaluate_clip,
                                pose_of, render_clip)
from handpose.prediction import HandPrediction
from handpose.tracking import TrackedHand


@pytest.fixture(scope="module")
def clip(open_hand_export) -> Clip:
    return render_clip(240, 180, fps=30.0, hold=3, transition=2, sequence=("open", "fist"), second=("count2",),
                       second_from=0.5)


def test_truth_is_exact_and_complete(clip):
    """10 frames; the truth's 2D keypoints are the projection of its 3D ones; the left hand is there
    from the second half only (once in view) with track 1; held frames carry the expected gesture,
    blends none."""
    assert clip.frames.shape == (10, 180, 240, 3) and clip.frames.dtype == np.uint8
    for f, row in enumerate(clip.truth):
        for hand in row:
            np.testing.assert_allclose(hand.keypoints_2d, np.asarray(project(hand.keypoints_3d, clip.K)), atol=1e-9)
            assert hand.visible.sum() >= 5
        assert [h.track for h in row if h.side == "right"] == [0]
        assert all(h.track == 1 and f >= 5 for h in row if h.side == "left")
    right = [next(h for h in row if h.track == 0) for row in clip.truth]
    assert [(h.gesture, h.count) for h in right[:5]] == [("open_palm", 5)] * 3 + [(None, None)] * 2
    assert [h.held for h in right[:5]] == [True] * 3 + [False] * 2
    assert any(h.track == 1 for row in clip.truth for h in row)


def test_every_expected_pose_exists():
    for name in EXPECTED:
        assert pose_of(name).shape == (45,)
    assert set(EXTRA_GESTURES) <= set(EXPECTED)
    with pytest.raises(ValueError, match="unknown poses"):
        render_clip(sequence=("wave",))


def test_scores_of_the_truth_itself_and_of_a_lagging_copy(clip):
    """Feeding the truth back scores PCK 1, no switch, the truth's own jitter; a copy of the truth
    shifted by 2 px on alternate frames has 4 px/frame^2 more acceleration, and a swapped id is one
    switch."""
    def as_tracked(shift: float = 0.0, swap_at: int | None = None) -> list[list[TrackedHand]]:
        out = []
        for f, row in enumerate(clip.truth):
            hands = []
            for h in row:
                keypoints_3d = h.keypoints_3d - h.keypoints_3d[0]
                hand = HandPrediction(h.keypoints_2d + (shift if f % 2 else 0.0), keypoints_3d, h.side, 1.0)
                track = h.track if swap_at is None or f < swap_at or h.track else 7
                hands.append(TrackedHand(track, hand, hand))
            out.append(hands)
        return out

    exact = evaluate_clip(clip, as_tracked())
    assert np.nanmin(exact.pck) == 1.0 and exact.detected == 1.0 and exact.id_switches == 0
    assert exact.jitter == pytest.approx(exact.truth_jitter) and exact.error_jitter == pytest.approx(0.0)
    assert exact.gesture_accuracy == 1.0 and exact.count_accuracy == 1.0
    shaky = evaluate_clip(clip, as_tracked(shift=2.0, swap_at=4))
    assert shaky.error_jitter == pytest.approx(2 * 2.0 * np.sqrt(2))  # |(2, 2) - 2 (0, 0) + (2, 2)|, or twice
    assert shaky.id_switches == 1
    with pytest.raises(ValueError, match="frames"):
        evaluate_clip(clip, as_tracked()[:-1])


def test_truth_type_defaults():
    truth = HandTruth(0, "right", np.zeros((21, 2)), np.zeros((21, 3)), np.ones(21, bool), None, None)
    assert truth.held


def test_acceleration_by_frame_of_the_truth(clip):
    """The truth fed back has the truth's acceleration; frames at the ends are NaN."""
    tracked = [[TrackedHand(h.track, HandPrediction(h.keypoints_2d, h.keypoints_3d - h.keypoints_3d[0], h.side, 1.0),
                            None) for h in row] for row in clip.truth]
    pred, true = acceleration_by_frame(clip, tracked, track=0)
    assert pred.shape == true.shape == (len(clip),)
    assert np.isnan(pred[0]) and np.isnan(pred[-1])
    np.testing.assert_allclose(pred[1:-1], true[1:-1])
    assert np.all(true[1:-1] >= 0)
