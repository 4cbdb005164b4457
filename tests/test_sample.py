"""handpose.sample: the canonical 3D hand."""
from __future__ import annotations

import numpy as np
import pytest

from handpose.keypoints import BONES, FINGERS, INDEX, TIPS, WRIST
from handpose.sample import canonical_hand_keypoints, hand_in_front_of_camera


def test_shape_and_wrist_at_origin() -> None:
    hand = canonical_hand_keypoints()
    assert hand.shape == (21, 3) and hand.dtype == np.float64
    np.testing.assert_array_equal(hand[WRIST], 0.0)


def test_bone_lengths_are_those_of_an_adult_hand() -> None:
    hand = canonical_hand_keypoints()
    lengths = {(a, b): np.linalg.norm(hand[b] - hand[a]) for a, b in BONES}
    assert all(15.0 <= length <= 95.0 for length in lengths.values())
    assert lengths[(WRIST, INDEX["MIDDLE_MCP"])] == pytest.approx(90.0, abs=0.5)
    middle = FINGERS["middle"]
    np.testing.assert_allclose([lengths[(middle[k], middle[k + 1])] for k in range(3)], [45, 28, 21], atol=0.3)


def test_right_hand_palm_faces_the_camera_fingers_up() -> None:
    hand = canonical_hand_keypoints("right")
    assert np.all(hand[list(TIPS), 1] < -100)  # fingers up (y down in camera axes)
    assert hand[INDEX["THUMB_TIP"], 0] > 0 > hand[INDEX["PINKY_TIP"], 0]  # thumb on the image's right
    # Palm normal (wrist -> index MCP) x (wrist -> pinky MCP) points at the camera (-z) for a right
    # hand seen from the palm side.
    normal = np.cross(hand[INDEX["INDEX_MCP"]], hand[INDEX["PINKY_MCP"]])
    assert normal[2] < 0
    for chain in FINGERS.values():  # fingers flex towards the palm side, i.e. the camera
        assert hand[chain[-1], 2] < hand[chain[0], 2]


def test_left_hand_is_the_mirror_image() -> None:
    right, left = canonical_hand_keypoints("right"), canonical_hand_keypoints("left")
    np.testing.assert_array_equal(left, right * [-1, 1, 1])
    normal = np.cross(left[INDEX["INDEX_MCP"]], left[INDEX["PINKY_MCP"]])
    assert normal[2] > 0


def test_returns_a_fresh_array() -> None:
    canonical_hand_keypoints()[:] = 0
    assert np.abs(canonical_hand_keypoints()).max() > 100


def test_hand_in_front_of_camera() -> None:
    points = hand_in_front_of_camera(400.0, "left")
    np.testing.assert_allclose(0.5 * (points.min(0) + points.max(0)), [0, 0, 400], atol=1e-9)
    np.testing.assert_allclose(points - points[WRIST], canonical_hand_keypoints("left"))


@pytest.mark.parametrize("call", [
    lambda: canonical_hand_keypoints("both"),
    lambda: hand_in_front_of_camera(0.0),
    lambda: hand_in_front_of_camera(float("nan")),
])
def test_validation(call) -> None:
    with pytest.raises(ValueError):
        call()
