"""View geometry: exact view transforms (round trips, pixel permutations, OpenCV oracles), tiles."""
import cv2
import numpy as np
import pytest

from handpose import views

from _synthetic import HAND, blob_image, find_blobs, gaussian_blob, intensity_centroid


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rot90_view_maps_pixel_centres_exactly(image, k):
    view = views.rot90_view(image, k)
    h, w = image.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w]
    centres = np.stack([cols + 0.5, rows + 0.5], -1).reshape(-1, 2)
    mapped = centres @ view.matrix[:, :2].T + view.matrix[:, 2]
    j, i = np.floor(mapped).astype(int).T
    np.testing.assert_array_equal(view.image[i, j], image.reshape(-1, 3))
    np.testing.assert_allclose(view.to_photo(mapped), centres, atol=1e-9)


def test_rotation_to_photo_undoes_the_view_turn(image):
    view = views.rot90_view(image, 1)  # (x, y) -> (y, W - x): a vector (1, 0) becomes (0, -1)
    np.testing.assert_allclose(view.rotation_to_photo() @ np.array([0.0, -1.0, 2.0]), [1.0, 0.0, 2.0], atol=1e-12)


def test_square_crop_view_round_trip_and_sampling():
    image = np.zeros((100, 120, 3), np.uint8)
    image[40:60, 50:70] = 255  # a white square centred at (60, 50)
    view = views.square_crop_view(image, np.array([60.0, 50.0]), side=40.0, out_size=80, angle_deg=30.0)
    assert view.image.shape == (80, 80, 3)
    assert view.image[40, 40].min() == 255 and view.image[2, 2].max() == 0
    points = np.array([[10.0, 20.0], [60.0, 50.0], [119.0, 3.0]])
    forward = points @ view.matrix[:, :2].T + view.matrix[:, 2]
    np.testing.assert_allclose(view.to_photo(forward), points, atol=1e-9)
    np.testing.assert_allclose(forward[1], [40.0, 40.0], atol=1e-9)


def test_rotated_view_90_matches_rot90(image):
    np.testing.assert_allclose(views.rotated_view(image, 90.0).matrix, views.rot90_view(image, 1).matrix, atol=1e-9)


def test_tile_boxes_cover_with_overlap():
    boxes = views.tile_boxes(1000, 600, grid=2, overlap=0.25)
    assert boxes.shape == (4, 4)
    np.testing.assert_allclose(boxes[0], [0, 0, 571, 343])
    np.testing.assert_allclose(boxes[3, 2:], [1000, 600])
    with pytest.raises(ValueError):
        views.tile_boxes(10, 10, grid=0, overlap=0.1)


def test_tiles_of_side_cover_with_overlap():
    boxes = views.tiles_of_side(1280, 720, side=256, overlap=0.2)
    assert np.all(boxes[:, 2:] - boxes[:, :2] == 256)
    np.testing.assert_allclose(boxes.min(0)[:2], [0, 0])
    np.testing.assert_allclose(boxes.max(0)[2:], [1280, 720])
    xs = np.unique(boxes[:, 0])
    assert np.all(np.diff(xs) <= 256 * 0.8 + 0.5)  # neighbours share at least 20 % of a tile
    covered = np.zeros((720, 1280), bool)
    for x1, y1, x2, y2 in boxes.astype(int):
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    np.testing.assert_allclose(views.tiles_of_side(200, 100, side=256, overlap=0.2), [[0, 0, 200, 100]])
    with pytest.raises(ValueError, match="overlap"):
        views.tiles_of_side(100, 100, side=50, overlap=1.0)


def test_view_to_photo_inverts_a_general_similarity():
    theta = np.deg2rad(33.0)
    a = 1.7 * np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    view = views.View(np.zeros((2, 2, 3), np.uint8), np.concatenate([a, [[5.0], [-3.0]]], axis=1), "v")
    points = np.random.default_rng(4).uniform(-50, 50, (10, 2))
    np.testing.assert_allclose(view.to_photo(points @ a.T + [5.0, -3.0]), points, atol=1e-9)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_centres_to_photo_maps_pixel_indices_exactly(image, k):
    # In the pixel-centre convention, pixel (row i, column j) sits at (j, i) in its image.
    view = views.rot90_view(image, k)
    h, w = view.image.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w]
    mapped = view.centres_to_photo(np.stack([cols, rows], -1).reshape(-1, 2))
    j, i = np.round(mapped).astype(int).T
    np.testing.assert_allclose(mapped, np.stack([j, i], -1), atol=1e-9)
    np.testing.assert_array_equal(image[i, j], view.image.reshape(-1, 3))


# -- mirror, turn and zoom about the centre (test-time augmentations, rotation perturbations) ------


@pytest.mark.parametrize("make", [
    lambda im: views.flip_view(im),
    lambda im: views.rotated_view(im, 37.0),
    lambda im: views.rotated_view(im, -90.0),
    lambda im: views.rotated_view(im, 20.0, mirror=True),
    lambda im: views.rotated_view(im, 0.0, scale=0.8),
    lambda im: views.rotated_view(im, -15.0, scale=1.1, mirror=True),
    lambda im: views.centred_view(im, np.array([100.0, 110.0]), 1.1, (260, 280), angle_deg=12.0),
], ids=["flip", "rot37", "rot-90", "flip+rot20", "scale0.8", "all", "centred"])
def test_views_move_the_image_and_pixel_centres_together(make) -> None:
    view = make(blob_image(HAND))
    expected = view.centres_to_view(HAND)
    assert np.abs(find_blobs(view.image) - expected).max() < 0.06
    np.testing.assert_allclose(view.centres_to_photo(expected), HAND, atol=1e-9)


def test_pure_mirror_is_an_exact_pixel_permutation(image) -> None:
    view = views.rotated_view(image, 0.0, mirror=True, name="m")
    np.testing.assert_array_equal(view.image, cv2.flip(image, 1))
    assert view.name == "m"
    np.testing.assert_array_equal(view.matrix, views.flip_view(image).matrix)


def test_rotated_view_canvas_holds_the_whole_photo() -> None:
    view = views.rotated_view(np.full((100, 200, 3), 255, np.uint8), 90.0, scale=0.5)
    assert view.image.shape[:2] == (100, 50)
    assert view.image[2:-2, 2:-2].min() == 255
    with pytest.raises(ValueError, match="positive"):
        views.rotated_view(np.zeros((4, 4, 3), np.uint8), 10.0, scale=0.0)


def test_rotation_round_trip() -> None:
    image = blob_image(HAND)
    there = views.rotated_view(image, 25.0)
    back = views.rotated_view(there.image, -25.0)
    h, w = image.shape[:2]
    offset = (np.array(back.image.shape[1::-1]) - [w, h]) / 2.0  # the canvas grew on each side
    np.testing.assert_allclose(back.centres_to_view(there.centres_to_view(HAND)), HAND + offset, atol=1e-9)
    assert np.abs(find_blobs(back.image) - (HAND + offset)).max() < 0.1


def test_rotation_matches_opencv() -> None:
    # OpenCV's rotation about the centre, in pixel-centre coordinates, shifted to the new canvas.
    image = np.zeros((60, 100, 3), np.uint8)
    view = views.rotated_view(image, 30.0)
    reference = cv2.getRotationMatrix2D((49.5, 29.5), 30.0, 1.0)
    h2, w2 = view.image.shape[:2]
    reference[:, 2] += [(w2 - 100) / 2.0, (h2 - 60) / 2.0]
    pixel_centres = np.array([[0.0, 0.0], [99.0, 59.0], [10.0, 40.0]])
    np.testing.assert_allclose(view.centres_to_view(pixel_centres),
                               pixel_centres @ reference[:, :2].T + reference[:, 2], atol=1e-9)


def test_centres_to_view_validation(image) -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        views.identity_view(image).centres_to_view(np.zeros((3, 3)))


def test_affine_on_centres_is_what_opencv_warps_with():
    w, h = 40, 30
    flip = np.array([[-1.0, 0.0, w], [0.0, 1.0, 0.0]])  # x -> W - x on continuous coordinates
    np.testing.assert_allclose(views.affine_on_centres(flip), [[-1, 0, w - 1], [0, 1, 0]])
    image = np.random.default_rng(0).integers(0, 255, (h, w), dtype=np.uint8)
    np.testing.assert_array_equal(cv2.warpAffine(image, views.affine_on_centres(flip), (w, h)), cv2.flip(image, 1))
    # a turn and zoom: a blob at centre p lands at the centre-convention image of p
    theta = np.deg2rad(25.0)
    a = 1.3 * np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    matrix = np.concatenate([a, [[12.0], [-4.0]]], axis=1)
    p = np.array([30.3, 27.6])
    warped = cv2.warpAffine(gaussian_blob(p, (60, 60)), views.affine_on_centres(matrix), (90, 90), flags=cv2.INTER_LINEAR)
    expected = a @ (p + 0.5) + matrix[:, 2] - 0.5  # through continuous coordinates and back
    np.testing.assert_allclose(intensity_centroid(warped), expected, atol=0.02)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        views.affine_on_centres(np.eye(3))
