"""Geometry of the multi-view detector: exact view transforms, tiles, IoU, duplicate merging."""
import numpy as np
import pytest

from handpose import detect


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rot90_view_maps_pixel_centres_exactly(image, k):
    view = detect.rot90_view(image, k)
    h, w = image.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w]
    centres = np.stack([cols + 0.5, rows + 0.5], -1).reshape(-1, 2)
    mapped = centres @ view.matrix[:, :2].T + view.matrix[:, 2]
    j, i = np.floor(mapped).astype(int).T
    np.testing.assert_array_equal(view.image[i, j], image.reshape(-1, 3))
    np.testing.assert_allclose(view.to_photo(mapped), centres, atol=1e-9)


def test_rotation_to_photo_undoes_the_view_turn(image):
    view = detect.rot90_view(image, 1)  # (x, y) -> (y, W - x): a vector (1, 0) becomes (0, -1)
    np.testing.assert_allclose(view.rotation_to_photo() @ np.array([0.0, -1.0, 2.0]), [1.0, 0.0, 2.0], atol=1e-12)


def test_square_crop_view_round_trip_and_sampling():
    image = np.zeros((100, 120, 3), np.uint8)
    image[40:60, 50:70] = 255  # a white square centred at (60, 50)
    view = detect.square_crop_view(image, np.array([60.0, 50.0]), side=40.0, out_size=80, angle_deg=30.0)
    assert view.image.shape == (80, 80, 3)
    assert view.image[40, 40].min() == 255 and view.image[2, 2].max() == 0
    points = np.array([[10.0, 20.0], [60.0, 50.0], [119.0, 3.0]])
    forward = points @ view.matrix[:, :2].T + view.matrix[:, 2]
    np.testing.assert_allclose(view.to_photo(forward), points, atol=1e-9)
    np.testing.assert_allclose(forward[1], [40.0, 40.0], atol=1e-9)


def test_rotated_view_90_matches_rot90(image):
    np.testing.assert_allclose(detect.rotated_view(image, 90.0).matrix, detect.rot90_view(image, 1).matrix, atol=1e-9)


def test_tile_boxes_cover_with_overlap():
    boxes = detect.tile_boxes(1000, 600, grid=2, overlap=0.25)
    assert boxes.shape == (4, 4)
    np.testing.assert_allclose(boxes[0], [0, 0, 571, 343])
    np.testing.assert_allclose(boxes[3, 2:], [1000, 600])
    with pytest.raises(ValueError):
        detect.tile_boxes(10, 10, grid=0, overlap=0.1)


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


def test_tiles_of_side_cover_with_overlap():
    boxes = detect.tiles_of_side(1280, 720, side=256, overlap=0.2)
    assert np.all(boxes[:, 2:] - boxes[:, :2] == 256)
    np.testing.assert_allclose(boxes.min(0)[:2], [0, 0])
    np.testing.assert_allclose(boxes.max(0)[2:], [1280, 720])
    xs = np.unique(boxes[:, 0])
    assert np.all(np.diff(xs) <= 256 * 0.8 + 0.5)  # neighbours share at least 20 % of a tile
    covered = np.zeros((720, 1280), bool)
    for x1, y1, x2, y2 in boxes.astype(int):
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    np.testing.assert_allclose(detect.tiles_of_side(200, 100, side=256, overlap=0.2), [[0, 0, 200, 100]])
    with pytest.raises(ValueError, match="overlap"):
        detect.tiles_of_side(100, 100, side=50, overlap=1.0)


def test_view_to_photo_inverts_a_general_similarity():
    theta = np.deg2rad(33.0)
    a = 1.7 * np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    view = detect.View(np.zeros((2, 2, 3), np.uint8), np.concatenate([a, [[5.0], [-3.0]]], axis=1), "v")
    points = np.random.default_rng(4).uniform(-50, 50, (10, 2))
    np.testing.assert_allclose(view.to_photo(points @ a.T + [5.0, -3.0]), points, atol=1e-9)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_centres_to_photo_maps_pixel_indices_exactly(image, k):
    # In the pixel-centre convention, pixel (row i, column j) sits at (j, i) in its image.
    view = detect.rot90_view(image, k)
    h, w = view.image.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w]
    mapped = view.centres_to_photo(np.stack([cols, rows], -1).reshape(-1, 2))
    j, i = np.round(mapped).astype(int).T
    np.testing.assert_allclose(mapped, np.stack([j, i], -1), atol=1e-9)
    np.testing.assert_array_equal(image[i, j], view.image.reshape(-1, 3))


def test_touches_cut_edge_only_for_edges_inside_the_photo():
    image = np.zeros((100, 200, 3), np.uint8)
    tile = detect.crop_view(image, np.array([0, 0, 120, 60]), "tile")  # inner edges: right, bottom
    hand = np.random.default_rng(5).uniform(20, 40, (21, 2))
    assert not detect.touches_cut_edge(hand, tile, 200, 100, margin=2.0)
    assert detect.touches_cut_edge(hand + [119 - hand[:, 0].max(), 0], tile, 200, 100, margin=2.0)  # inner edge
    assert not detect.touches_cut_edge(hand - [hand[:, 0].min() - 0.5, 0], tile, 200, 100, margin=2.0)  # photo edge
    full = detect.identity_view(image)
    assert not detect.touches_cut_edge(hand * [4.9, 2.4], full, 200, 100, margin=2.0)


def test_box_overlap_fraction_known_values():
    np.testing.assert_allclose(detect.box_overlap_fraction([0, 0, 2, 2], [[1, 1, 3, 3], [0, 0, 4, 4], [5, 5, 6, 6]]),
                               [0.25, 1.0, 0.0])


def test_nested_in_larger_flags_small_hands_inside_big_ones():
    boxes = np.array([[0, 0, 100, 100], [10, 10, 40, 40], [90, 90, 120, 120], [0, 0, 90, 90], [300, 0, 320, 20]])
    # inside the big box and 3x smaller; mostly outside; inside but nearly as large; alone
    np.testing.assert_array_equal(detect.nested_in_larger(boxes), [False, True, False, False, False])


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
