"""Tests of handpose.prediction: validation and the predictions.json round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from handpose.prediction import HandPrediction

JSON_KEYS = {"keypoints_2d", "keypoints_3d", "handedness", "score", "box_xyxy", "source"}


def make_hand(**overrides: object) -> HandPrediction:
    rng = np.random.default_rng(3)
    args = dict(keypoints_2d=rng.uniform(10, 200, (21, 2)), keypoints_3d=rng.normal(0, 40, (21, 3)),
                handedness="right", score=np.float32(0.875), source="test:fake")
    return HandPrediction(**(args | overrides))


def test_defaults_and_types() -> None:
    hand = make_hand(keypoints_2d=np.arange(42, dtype=np.int32).reshape(21, 2))
    assert hand.keypoints_2d.dtype == np.float64 and hand.keypoints_3d.dtype == np.float64
    np.testing.assert_array_equal(hand.box_xyxy, [0, 1, 40, 41])  # tight box of the 2D keypoints
    assert type(hand.score) is float and hand.score == 0.875
    assert hand.vertices is None and hand.faces is None and hand.extras == {}
    assert make_hand(box_xyxy=[[1, 2], [3, 4]]).box_xyxy.shape == (4,)


@pytest.mark.parametrize("field, value, message", [
    ("keypoints_2d", np.zeros((21, 3)), r"keypoints_2d must be \(21, 2\)"),
    ("keypoints_2d", np.zeros((20, 2)), r"keypoints_2d must be \(21, 2\)"),
    ("keypoints_3d", np.zeros((21, 2)), r"keypoints_3d must be \(21, 3\)"),
    ("handedness", "Left", "handedness must be 'left' or 'right'"),
])
def test_validation(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_hand(**{field: value})


def test_json_round_trip() -> None:
    hand = make_hand(extras={"internal": 1}, vertices=np.zeros((5, 3)))
    data = hand.to_json()
    assert set(data) == JSON_KEYS  # predictions.json is a public interface
    back = HandPrediction.from_json(json.loads(json.dumps(data)))  # plain JSON types only
    np.testing.assert_allclose(back.keypoints_2d, hand.keypoints_2d, atol=5e-4)
    np.testing.assert_allclose(back.keypoints_3d, hand.keypoints_3d, atol=5e-4)
    np.testing.assert_allclose(back.box_xyxy, hand.box_xyxy, atol=5e-3)
    assert (back.handedness, back.score, back.source) == ("right", 0.875, "test:fake")
    assert back.vertices is None and back.extras == {}  # meshes and extras are not serialised
    assert back.to_json() == data  # stable once rounded


def test_from_json_without_box_or_source() -> None:
    data = make_hand().to_json()
    del data["source"]
    data["box_xyxy"] = None
    back = HandPrediction.from_json(data)
    assert back.source == ""
    np.testing.assert_allclose(back.box_xyxy, [*back.keypoints_2d.min(0), *back.keypoints_2d.max(0)])
    with pytest.raises(ValueError, match="handedness"):
        HandPrediction.from_json(data | {"handedness": "both"})
