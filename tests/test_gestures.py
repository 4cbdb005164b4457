"""Fingers and gestures from 3D keypoints posed by the open hand model, under any view."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from handpose import gestures
from handpose.demo_clip import EXPECTED, pose_of

torch = pytest.importorskip("torch")



def posed(model, name: str, rng: np.random.Generator | None = None, jitter_deg: float = 4.0) -> np.ndarray:
    """``(21, 3)`` mm keypoints of pose ``name``, jittered like the demo set, within the limits."""
    pose = pose_of(name)
    if rng is not None:
        pose = pose + np.tile([1.0, 1 / 3, 1 / 3], 15) * np.radians(jitter_deg) * rng.standard_normal(45)
    lower, upper = (x.numpy().astype(np.float64) for x in model.pose_limits())
    with torch.no_grad():
        out = model(pose=torch.as_tensor(np.clip(pose, lower, upper), dtype=torch.float32)[None], with_vertices=False)
    return out.keypoints[0].double().numpy()


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n != "relaxed"))
def test_every_pose_is_named_under_random_views(open_hands, name):
    """Each pose, jittered, on either hand, turned by a random rotation, scaled and moved, gets its
    expected gesture and finger count; mirroring a right hand counts the same as the left model."""
    expected, count = EXPECTED[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    for trial in range(12):
        side = ("right", "left")[trial % 2]
        keypoints = posed(open_hands[side], name, rng)
        turned = Rotation.random(random_state=rng.integers(1 << 31)).apply(keypoints) * rng.uniform(0.001, 3.0)
        turned += rng.normal(0.0, 500.0, 3)
        result = gestures.classify(turned)
        assert result.gesture == expected, (name, side, result)
        if count is not None:
            assert result.count == count, (name, side, result)
        mirrored = gestures.classify(keypoints * np.array([-1.0, 1.0, 1.0]))
        assert mirrored == gestures.classify(keypoints)


def test_view_does_not_change_the_features(open_hands):
    """Curls and the pinch ratio are the same, to 1e-6, for a palm seen from the front, edge-on and
    from behind (rotations of 0, 90 and 180 degrees about the forearm) and for the mirror image."""
    keypoints = posed(open_hands["right"], "count3")
    reference = gestures.classify(keypoints)
    for degrees in (90.0, 180.0, 37.0):
        view = Rotation.from_euler("y", degrees, degrees=True).apply(keypoints)
        for points in (view, view * np.array([1.0, 1.0, -1.0])):
            got = gestures.classify(points)
            np.testing.assert_allclose(got.curl_deg, reference.curl_deg, atol=1e-6)
            assert got.pinch_ratio == pytest.approx(reference.pinch_ratio, abs=1e-9)
            assert (got.extended, got.gesture, got.count) == (reference.extended, reference.gesture, reference.count)


def test_straight_and_folded_fingers_known_angles():
    """A hand drawn by hand: a straight finger's curl is only the angle between the wrist's ray to its
    knuckle and the finger (atan(|x| / 4)); one folded by 90 degrees at two joints adds 180; the
    straight thumb has none; the count follows."""
    k = np.zeros((21, 3))
    for f, x in enumerate((-2.0, -1.0, 0.0, 1.0, 2.0)):
        base = np.array([x, 4.0, 0.0])
        k[1 + 4 * f: 5 + 4 * f] = base + np.outer(np.arange(4), [0.0, 1.0, 0.0])
    k[1:5] = np.array([[-1.0, 1.0, 0.0], [-2.0, 2.0, 0.0], [-3.0, 3.0, 0.0], [-4.0, 4.0, 0.0]])
    # pinky: MCP (2, 4), PIP straight up, then folded back and down
    k[17:21] = [[2.0, 4.0, 0.0], [2.0, 5.0, 0.0], [2.0, 5.0, 1.0], [2.0, 4.0, 1.0]]
    curls = gestures.finger_curls(k)
    np.testing.assert_allclose(curls[1:4], np.degrees(np.arctan([1 / 4, 0.0, 1 / 4])), atol=1e-9)
    assert curls[4] == pytest.approx(np.degrees(np.arctan(2 / 4)) + 180.0)
    assert curls[0] == pytest.approx(0.0, abs=1e-9)
    result = gestures.classify(k)
    assert result.extended == (True, True, True, True, False) and result.count == 4
    assert result.gesture == "other"  # thumb out and pinky curled is none of the named gestures


def test_json_and_labels(open_hands):
    result = gestures.classify(posed(open_hands["right"], "count2"))
    assert result.to_json() == {"gesture": "victory", "fingers": 2}
    assert result.label == "victory/two"
    assert gestures.gesture_fields(np.full((21, 3), np.nan)) == {"gesture": None, "fingers": None}
    assert [g.gesture for g in gestures.classify_many(np.stack([posed(open_hands["left"], n) for n in ("fist", "open")]))] \
        == ["fist", "open_palm"]


@pytest.mark.parametrize("bad, message", [
    (np.zeros((20, 3)), "21, 3"),
    (np.full((21, 3), np.nan), "NaN"),
    (np.zeros((21, 3)), "degenerate"),
])
def test_bad_input_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        gestures.classify(bad)
