"""2D overlays: colours per finger, skipped NaN joints, labels, grids, the drawn test hand."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from handpose.keypoints import FINGER_COLORS, FINGERS, NUM_KEYPOINTS
from handpose.prediction import HandPrediction
from handpose.viz import draw_hands, draw_keypoints, draw_text, gesture_notes

from _synthetic import hand_silhouette


def fan_hand() -> np.ndarray:
    """(21, 2) keypoints: wrist at (100, 180), five straight fingers fanning upwards."""
    kp = np.zeros((NUM_KEYPOINTS, 2))
    kp[0] = [100, 180]
    for f, chain in enumerate(FINGERS.values()):
        angle = np.deg2rad(-60 + 30 * f)
        for j, idx in enumerate(chain):
            r = 40 + 30 * j
            kp[idx] = [100 + r * np.sin(angle), 180 - r * np.cos(angle)]
    return kp


def test_bones_take_their_finger_colour():
    image = np.zeros((200, 200, 3), np.uint8)
    kp = fan_hand()
    out = draw_keypoints(image, kp, thickness=3, radius=2)
    assert image.max() == 0, "input modified"
    for name, chain in FINGERS.items():
        mid = np.round((kp[chain[1]] + kp[chain[2]]) / 2).astype(int)  # middle of a finger bone
        np.testing.assert_allclose(out[mid[1], mid[0]], FINGER_COLORS[name], atol=2)


def test_single_colour_and_nan_joints_are_skipped():
    kp = fan_hand()
    kp[8] = np.nan  # index tip not annotated
    out = draw_keypoints(np.zeros((200, 200, 3), np.uint8), kp, color=(255, 255, 255), thickness=2)
    drawn = out.max(-1) > 0
    colours = out[drawn]
    # anti-aliased white on black: every drawn pixel is grey (or the black dot outline)
    assert np.all(colours.max(-1) - colours.min(-1) <= 1)
    # nothing drawn beyond the index DIP towards where the tip would have been
    end = np.round(kp[7] + (kp[7] - kp[6]) * 0.8).astype(int)
    assert not drawn[end[1], end[0]]
    with pytest.raises(ValueError, match=r"\(21, 2\)"):
        draw_keypoints(out, kp[:20])


def test_draw_hands_labels_handedness_and_score():
    hand = HandPrediction(fan_hand(), np.zeros((21, 3)), "left", 0.93)
    image = np.full((200, 200, 3), 30, np.uint8)
    out = draw_hands(image, [hand])
    x1, y1 = np.clip(hand.box_xyxy[:2], 0, None).astype(int)  # the label is kept inside the image
    label = out[max(y1 - 20, 0):y1, x1:x1 + 60]
    assert (label > 180).all(-1).any() and (label == 0).all(-1).any(), "no label (white on black) above the box"
    assert (out != image).any(-1).sum() > 500
    np.testing.assert_array_equal(draw_hands(image, []), image)
    with pytest.raises(ValueError):
        draw_hands(image.astype(np.float32), [hand])


def test_notes_lengthen_the_label_and_bones_can_be_left_out():
    """A note widens the label's black box; ``bones=False`` draws the label only; notes must match
    the hands; ``gesture_notes`` counts the fan's fingers (3D: the fan laid flat) or says ``?``."""
    kp3 = np.c_[fan_hand() - fan_hand()[0], np.zeros(21)]
    hand = HandPrediction(fan_hand(), kp3, "left", 0.93)
    image = np.full((200, 300, 3), 30, np.uint8)
    black = lambda out: int((out == 0).all(-1).sum())  # noqa: E731
    assert black(draw_hands(image, [hand], notes=["5 open palm"])) > black(draw_hands(image, [hand])) + 100
    label_only = draw_hands(image, [hand], bones=False)
    assert (label_only != image).any(-1).sum() < (draw_hands(image, [hand]) != image).any(-1).sum() / 2
    with pytest.raises(ValueError, match="notes"):
        draw_hands(image, [hand], notes=[])
    assert gesture_notes([hand]) == ["5 open palm"]
    assert gesture_notes([HandPrediction(fan_hand(), np.zeros((21, 3)), "left", 0.9)]) == ["?"]
    boxed = draw_text(image, "12.3 FPS", (5, 5))
    assert (boxed[5:20, 5:40] == 0).all(-1).any() and (boxed[5:20, 5:40] > 180).all(-1).any()


def test_hand_silhouette_is_skin_on_background():
    image = hand_silhouette(256)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    palm = image[int(250 / 384 * 256), 128].astype(int)
    np.testing.assert_allclose(palm, [224, 172, 140], atol=3)
    assert image[0, 0, 2] > image[0, 0, 0]  # bluish background corner
    with pytest.raises(ValueError):
        hand_silhouette(16)
