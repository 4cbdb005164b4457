"""Detection post-processing: IoU, duplicate merging, layout sanity, person boxes."""
import numpy as np
import pytest

from handpose import detect


def test_box_iou_known_values():
    a = np.array([[0, 0, 2, 2]])
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    np.testing.assert_allclose(detect.box_iou(a, b), [[1 / 7, 1.0, 0.0]])


def test_suppress_duplicates_keeps_overlapping_distinct_hands():
    rng = np.random.default_rng(1)
    hand = rng.uniform(0, 100, (21, 2))
    other = rng.uniform(0, 100, (21, 2))  # same box region, different keypoints
    near_copy = hand + 2.0
    kept = detect.suppress_duplicates(np.stack([hand, other, near_copy]), np.array([0.8, 0.7, 0.9]),
                                      max_distance=0.25, max_iou=1.01)
    assert kept.tolist() == [2, 1]


def test_layout_sanity_rejects_tiny_and_non_hand_sizes():
    kp2 = np.random.default_rng(2).uniform(0, 50, (21, 2))
    kp3 = np.zeros((21, 3))
    kp3[9] = [0, -80, 0]
    assert detect.layout_is_plausible(kp2, kp3, 100, 100, min_side_px=8, min_inside=0.5)
    assert not detect.layout_is_plausible(kp2 * 0.1, kp3, 100, 100, min_side_px=8, min_inside=0.5)
    assert not detect.layout_is_plausible(kp2, kp3 * 5, 100, 100, min_side_px=8, min_inside=0.5)
    assert not detect.layout_is_plausible(kp2 + 200, kp3, 100, 100, min_side_px=8, min_inside=0.5)


def test_greyscale_and_contrast():
    grey = np.repeat(np.linspace(60, 120, 64 * 64).reshape(64, 64, 1), 3, axis=2).astype(np.uint8)
    assert detect.is_greyscale(grey)
    colour = grey.copy()
    colour[..., 0] = 255
    assert not detect.is_greyscale(colour)
    enhanced = detect.enhance_contrast(grey)
    assert enhanced.shape == grey.shape and np.ptp(enhanced) > np.ptp(grey)


def test_box_overlap_fraction_known_values():
    np.testing.assert_allclose(detect.box_overlap_fraction([0, 0, 2, 2], [[1, 1, 3, 3], [0, 0, 4, 4], [5, 5, 6, 6]]),
                               [0.25, 1.0, 0.0])


def test_nested_in_larger_flags_small_hands_inside_big_ones():
    boxes = np.array([[0, 0, 100, 100], [10, 10, 40, 40], [90, 90, 120, 120], [0, 0, 90, 90], [300, 0, 320, 20]])
    # inside the big box and 3x smaller; mostly outside; inside but nearly as large; alone
    np.testing.assert_array_equal(detect.nested_in_larger(boxes), [False, True, False, False, False])


def test_beside_larger_flags_small_hands_on_a_larger_hands_fingers():
    unit = np.stack([np.linspace(0, 1, 21), np.linspace(0, 1, 21) ** 2], axis=1)  # a (21, 2) layout, box side 1
    big = 100 * unit  # centre (50, ~32)
    on_fingers = 40 * unit + [85, -10]  # 0.4 of its size, centre 0.63 of its side away, box mostly outside
    far = 40 * unit + [160, 0]  # as small, 1.32 sides away
    nearly = 60 * unit + [60, 0]  # close, but more than half its size
    flags = detect.beside_larger(np.stack([big, on_fingers, far, nearly]))
    np.testing.assert_array_equal(flags, [False, True, False, False])
    assert not detect.nested_in_larger(np.stack([np.r_[k.min(0), k.max(0)] for k in (big, on_fingers)]))[1]
    np.testing.assert_array_equal(detect.beside_larger(np.stack([big, on_fingers]), distance=0.2), [False, False])


def test_mask_boxes_known_components():
    mask = np.zeros((100, 200), bool)
    mask[10:50, 20:40] = True  # 800 px, 40 tall
    mask[60:90, 120:190] = True  # 2100 px, 70 wide: the largest, first
    mask[0:2, 198:200] = True  # 4 px: below 1 % of the image
    boxes = detect.mask_boxes(mask, min_fraction=0.01, margin=0.1)
    np.testing.assert_allclose(boxes, [[113, 53, 197, 97], [16, 6, 44, 54]])
    np.testing.assert_allclose(detect.mask_boxes(mask, 0.01, margin=1.0)[0], [50, 0, 200, 100])  # clipped
    assert detect.mask_boxes(np.zeros((5, 5)), 0.01).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        detect.mask_boxes(np.zeros((5, 5, 3)))


def test_points_in_boxes_known_values_edges_included():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 8]])
    points = np.array([[0, 0], [10, 10], [6, 7], [15, 9], [-1, 5]])
    np.testing.assert_array_equal(detect.points_in_boxes(points, boxes),
                                  [[True, False], [True, False], [True, True], [False, False], [False, False]])
    assert detect.points_in_boxes(np.array([3.0, 3.0]), np.zeros((0, 4))).shape == (1, 0)
