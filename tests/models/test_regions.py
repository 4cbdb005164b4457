"""The hand-landmark network on regions: geometry, presence acceptance, refinement, pairs, verifier."""
import numpy as np
import pytest

from handpose.keypoints import MIDDLE_MCP, WRIST
from handpose.models import regions
from handpose.models.regions import LandmarkNetwork, Region, pair_regions, region_from_keypoints, upright_angle
from _synthetic import hand_silhouette


@pytest.fixture(scope="module")
def net():
    network = LandmarkNetwork()
    yield network
    network.close()


@pytest.fixture(scope="module")
def hand_image():
    return hand_silhouette(320)


@pytest.fixture(scope="module")
def reference(net, hand_image):
    h, w = hand_image.shape[:2]
    hand = net.refine(hand_image, Region([w / 2, h / 2], 0.9 * max(h, w)))
    assert hand is not None
    return hand


def test_upright_angle_known_values():
    assert upright_angle([0, -1]) == pytest.approx(0.0)
    assert upright_angle([1, 0]) == pytest.approx(90.0)
    assert upright_angle([-1, 0]) == pytest.approx(-90.0)
    assert abs(upright_angle([0, 1])) == pytest.approx(180.0)


@pytest.mark.parametrize("angle", [0.0, 30.0, -120.0])
def test_region_view_round_trip_and_corners(angle):
    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    region = Region([70.0, 50.0], 80.0, angle)
    view = region.view(image, out_size=64)
    points = np.array([[10.0, 20.0], [70.0, 50.0], [150.0, 110.0]])
    forward = points @ view.matrix[:, :2].T + view.matrix[:, 2]
    np.testing.assert_allclose(view.to_photo(forward), points, atol=1e-9)
    np.testing.assert_allclose(forward[1], [32.0, 32.0], atol=1e-9)  # the centre lands mid-crop
    corners = region.corners()
    np.testing.assert_allclose(corners @ view.matrix[:, :2].T + view.matrix[:, 2],
                               [[0, 0], [64, 0], [64, 64], [0, 64]], atol=1e-9)


def test_region_turns_a_hand_upright():
    # A region at angle a makes the direction that upright_angle gives a point up in the crop.
    region = Region([0.0, 0.0], 10.0, upright_angle([3.0, 1.0]))
    view = region.view(np.zeros((4, 4, 3), np.uint8), out_size=10)
    d = view.matrix[:, :2] @ np.array([3.0, 1.0])
    np.testing.assert_allclose(d / np.linalg.norm(d), [0.0, -1.0], atol=1e-12)


def test_region_validation():
    with pytest.raises(ValueError, match="size"):
        Region([0.0, 0.0], 0.0)
    with pytest.raises(ValueError, match="center"):
        Region([0.0, np.nan], 5.0)
    with pytest.raises(ValueError, match=r"\(21, 2\)"):
        region_from_keypoints(np.zeros((20, 2)))


def test_region_from_keypoints_follows_a_rotation(reference):
    kp = reference.keypoints_2d
    r0 = region_from_keypoints(kp)
    assert r0.size > np.ptp(kp, axis=0).max()  # holds the whole hand
    theta = np.deg2rad(40.0)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])  # turns points
    pivot = np.array([100.0, 80.0])
    r1 = region_from_keypoints((kp - pivot) @ rot.T + pivot)
    assert r1.size == pytest.approx(r0.size)
    np.testing.assert_allclose(r1.center, (r0.center - pivot) @ rot.T + pivot, atol=1e-9)
    # a point turning clockwise on screen (y down) needs a crop turned counter-clockwise by 40 deg more
    assert ((r1.angle_deg - r0.angle_deg - 40.0 + 180) % 360 - 180) == pytest.approx(0.0, abs=1e-9)


def test_presence_accepts_a_hand_and_rejects_a_blank(net, hand_image, reference):
    assert reference.presence > 0.9
    assert 50 < np.linalg.norm(reference.keypoints_3d[MIDDLE_MCP]) < 130  # mm
    np.testing.assert_allclose(reference.keypoints_3d[WRIST], 0.0, atol=1e-9)
    blank = np.full_like(hand_image, 128)
    assert net.run(blank, reference.region).presence < 0.1
    assert net.refine(blank, reference.region) is None
    assert net.refine(hand_image, reference.region, min_presence=0.999) is None  # the threshold decides


def test_refine_from_a_rough_turned_region_converges(net, hand_image, reference):
    r = region_from_keypoints(reference.keypoints_2d)
    rough = Region(r.center + [0.15 * r.size, -0.1 * r.size], 1.3 * r.size, r.angle_deg + 120.0)
    hand = net.refine(hand_image, rough)
    assert hand is not None and hand.handedness == reference.handedness
    size = np.ptp(reference.keypoints_2d, axis=0).max()
    assert np.linalg.norm(hand.keypoints_2d - reference.keypoints_2d, axis=1).mean() < 0.03 * size
    # a hand already found is not found again
    assert net.refine(hand_image, rough, exclude=reference.keypoints_2d[None]) is None


def test_keypoints_follow_exact_upscaling(net, hand_image):
    # Nearest-neighbour x2 upscaling: continuous pixels scale exactly (x2 = 2 x); a half-pixel
    # convention slip would show as a 0.5 px offset.
    big = np.repeat(np.repeat(hand_image, 2, 0), 2, 1)
    region = Region([140.0, 170.0], 250.0, 20.0)
    small_hand = net.run(hand_image, region)
    big_hand = net.run(big, Region(2 * region.center, 2 * region.size, region.angle_deg))
    offset = (big_hand.keypoints_2d - 2 * small_hand.keypoints_2d).mean(0)
    assert np.all(np.abs(offset) < 0.25), offset


def test_mirrored_hand_flips_handedness(net, hand_image, reference):
    w = hand_image.shape[1]
    r = reference.region
    mirrored = net.run(np.ascontiguousarray(hand_image[:, ::-1]),
                       Region([w - r.center[0], r.center[1]], r.size, -r.angle_deg))
    assert mirrored.handedness != reference.handedness
    np.testing.assert_allclose(mirrored.keypoints_2d[:, 0], w - reference.keypoints_2d[:, 0],
                               atol=0.05 * np.ptp(reference.keypoints_2d, axis=0).max())


def _rotated_hand(angle_deg: float) -> np.ndarray:
    """The synthetic open hand (fingers up), turned so that ``upright_angle(middle MCP - wrist)`` is
    ``angle_deg``."""
    from _synthetic import HAND

    theta = np.deg2rad(angle_deg)
    # upright_angle(d) = atan2(d_x, -d_y): the "up" direction (0, -1) turned by +angle on screen.
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]]).T
    kp = (HAND - HAND[WRIST]) @ rot.T + [300.0, 300.0]
    assert upright_angle(kp[MIDDLE_MCP] - kp[WRIST]) == pytest.approx(angle_deg)
    return kp


@pytest.mark.parametrize("angle", [30.0, -120.0])
def test_pair_regions_known_offsets_and_turns(angle):
    # Known answers written out: image-axis neighbours at -a / a, hand-axis ones at a + 180.
    kp = _rotated_hand(angle)
    r = region_from_keypoints(kp)
    a, s = r.angle_deg, 0.3 * r.size
    t = np.deg2rad(a)
    up = np.array([np.sin(t), -np.cos(t)])  # the fingers' direction
    expected = [((0, 0), -a), ((0, 0), a + 180)]
    for k in (1, -1):
        expected += [((k * s, 0), -a), ((k * s, 0), a), ((2 * k * s, 0), -a)]
        expected += [((0, k * s), a), (tuple(k * s * up), a + 180)]
    pairs = pair_regions(kp, offset=0.3)
    assert len(pairs) == len(expected) == 12
    assert all(p.size == pytest.approx(r.size) for p in pairs)
    left = set(range(len(pairs)))
    for offset, turn in expected:  # one region each, same offset and turn (modulo 360 degrees)
        hits = [i for i in left if np.allclose(pairs[i].center - r.center, offset, atol=1e-6)
                and abs((pairs[i].angle_deg - turn + 180) % 360 - 180) < 1e-6]
        assert len(hits) == 1, (offset, turn)
        left.remove(hits[0])


@pytest.mark.parametrize(("angle", "count"), [(0.0, 10), (90.0, 9), (5.0, 10), (45.0, 12)])
def test_pair_regions_skip_repeats(angle, count):
    # Upright (a = -a): the two turns beside the hand are one; level (a = 90): -a = a + 180 on the
    # hand and along the fingers (which then lie left and right).
    pairs = pair_regions(_rotated_hand(angle))
    assert len(pairs) == count
    side = pairs[0].size
    for i, p in enumerate(pairs):
        for q in pairs[i + 1:]:
            assert (np.linalg.norm(p.center - q.center) >= 0.05 * side
                    or abs((p.angle_deg - q.angle_deg + 180) % 360 - 180) >= 20)


def test_pair_regions_in_hand_axes_turn_with_the_hand():
    # The a + 180 regions (a hand facing the found one, on it and along its fingers) turn with
    # the hand about the region centre; the image-axis neighbours stay left / right / above / below.
    r0 = region_from_keypoints(_rotated_hand(30.0))
    r1 = region_from_keypoints(_rotated_hand(120.0))
    facing = [[p.center - r.center for p in pair_regions(kp) if abs((p.angle_deg - r.angle_deg) % 360 - 180) < 1e-6]
              for kp, r in ((_rotated_hand(30.0), r0), (_rotated_hand(120.0), r1))]
    assert len(facing[0]) == len(facing[1]) == 3  # on the hand and along it, either way
    quarter = np.array([[0.0, -1.0], [1.0, 0.0]])  # the hand turned by 90 deg: (x, y) -> (-y, x)
    np.testing.assert_allclose(sorted(map(tuple, np.round(np.array(facing[0]) @ quarter.T, 6))),
                               sorted(map(tuple, np.round(np.array(facing[1]), 6))), atol=1e-6)
    beside = [p.center - r1.center for p in pair_regions(_rotated_hand(120.0)) if p.angle_deg == pytest.approx(r1.angle_deg)]
    np.testing.assert_allclose(sorted(map(tuple, np.round(beside, 6))),
                               sorted([(0.3 * r1.size, 0.0), (-0.3 * r1.size, 0.0), (0.0, 0.3 * r1.size), (0.0, -0.3 * r1.size)]),
                               atol=1e-6)


def test_pair_search_finds_the_touching_mirror_hand(net, hand_image, reference):
    # The mirrored copy of the hand placed touching it: the other hand of a pair.
    h, w = hand_image.shape[:2]
    shift = int(0.55 * np.ptp(reference.keypoints_2d[:, 0]))
    photo = np.full((h, w + shift + 40, 3), 255, np.uint8)
    photo[:, :w] = hand_image
    mirror = np.ascontiguousarray(hand_image[:, ::-1])
    right = photo[:, shift: shift + w]
    # paste the mirror's non-white pixels over the scene (hands overlap at the edge)
    on = mirror.min(-1) < 240
    right[on] = mirror[on]
    found = []
    for region in pair_regions(reference.keypoints_2d):
        hand = net.refine(photo, region, exclude=reference.keypoints_2d[None])
        if hand is not None and regions.plausibility_failures(hand) <= 0.25:
            found.append(hand)
    assert found, "the second hand of the pair was not found"
    assert all(hand.handedness != reference.handedness for hand in found)
    assert all(hand.keypoints_2d[:, 0].mean() > reference.keypoints_2d[:, 0].mean() for hand in found)


def test_verifier_rejects_a_scrambled_hand(reference):
    assert regions.plausibility_failures(reference) <= 0.1
    rng = np.random.default_rng(3)
    scrambled = regions.RegionHand(**{**reference.__dict__, "keypoints_3d": rng.normal(0, 30, (21, 3))})
    assert regions.plausibility_failures(scrambled) > 0.25


def test_a_mirrored_reading_of_the_same_hand_is_excluded(reference):
    # Same wrist, same place, thumb and pinky swapped: the landmark network's mirror reading.
    kp = reference.keypoints_2d
    axis = kp[MIDDLE_MCP] - kp[WRIST]
    axis = axis / np.linalg.norm(axis)
    rel = kp - kp[WRIST]
    mirrored = kp[WRIST] + 2 * (rel @ axis)[:, None] * axis - rel  # reflect across wrist -> middle MCP
    assert regions._lands_on(mirrored, kp[None], 0.3)
    assert not regions._lands_on(kp + [3 * np.ptp(kp[:, 0]), 0], kp[None], 0.3)  # a hand beside it


def test_box_region_is_an_upright_square_on_the_box():
    kp = np.array([[10.0, 20.0], [50.0, 30.0], [30.0, 80.0]] + [[30.0, 50.0]] * 18)
    region = regions.box_region(kp, scale=2.0)
    np.testing.assert_allclose(region.center, [30.0, 50.0])
    assert region.size == pytest.approx(120.0) and region.angle_deg == 0.0  # 2 x the longer side (60)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        regions.box_region(np.zeros((21, 3)))


def test_scan_regions_cover_the_photo_at_every_size():
    w, h, step = 640.0, 480.0, 0.6
    scan = regions.scan_regions(w, h, sizes=(0.4, 0.65), step=step, margin=0.15)
    for size in (0.4, 0.65):
        side = size * h
        centres = np.array([r.center for r in scan if r.size == pytest.approx(side)])
        assert len(centres) > 1
        # Every point of the photo lies in a region, and between the outermost centres within
        # step * side / 2 of a centre along each axis ...
        grid = np.stack(np.meshgrid(np.linspace(0, w, 41), np.linspace(0, h, 31)), -1).reshape(-1, 2)
        gap = np.abs(grid[:, None] - centres[None]).max(-1).min(1)
        assert gap.max() <= side / 2
        inner = np.all((grid >= centres.min(0)) & (grid <= centres.max(0)), axis=1)
        assert inner.sum() > len(grid) / 4 and gap[inner].max() <= step * side / 2 + 1e-6
        # ... and no region sticks out of the photo by more than the margin.
        assert centres.min() >= side / 2 - 0.15 * side - 1e-6
        assert np.all(centres.max(0) <= [w - side / 2 + 0.15 * side + 1e-6, h - side / 2 + 0.15 * side + 1e-6])


def test_scan_regions_turn_edge_regions_inward():
    w, h = 640.0, 480.0
    scan = regions.scan_regions(w, h, sizes=(0.4,), turns=(0.0,))
    centres = np.array([r.center for r in scan])
    lo, hi = centres.min(0), centres.max(0)
    for r in scan:
        left, right = r.center[0] == pytest.approx(lo[0]), r.center[0] == pytest.approx(hi[0])
        bottom = r.center[1] == pytest.approx(hi[1])
        expected = {(True, False, True): 45.0, (False, True, True): -45.0, (True, False, False): 90.0,
                    (False, True, False): -90.0}.get((left, right, bottom), 0.0)
        assert r.angle_deg == pytest.approx(expected), (r.center, r.angle_deg)
    # A hand entering from the left points right: the left regions turn that direction up.
    assert any(r.angle_deg == pytest.approx(upright_angle([1.0, 0.0])) for r in scan)
    # Bottom-edge regions come first (egocentric hands), then the side edges.
    assert scan[0].center[1] == pytest.approx(hi[1])
    ranks = [0 if r.center[1] == pytest.approx(hi[1]) else 1 if r.angle_deg else 2 for r in scan]
    assert ranks == sorted(ranks)
    # Regions away from the edges are tried at every turn asked for, the edge ones inward only.
    turned = regions.scan_regions(w, h, sizes=(0.4,), turns=(0.0, 90.0, -90.0))
    inner = [r for r in scan if r.angle_deg == 0.0 and r.center[1] != pytest.approx(hi[1])]
    assert len(turned) == len(scan) + 2 * len(inner)
    for r in inner:
        angles = sorted(t.angle_deg for t in turned if np.allclose(t.center, r.center))
        assert angles == [-90.0, 0.0, 90.0]


def test_scan_regions_skip_what_a_found_hand_explains():
    w, h = 640.0, 480.0
    every = regions.scan_regions(w, h)
    box = np.array([[200.0, 150.0, 400.0, 350.0]])
    scan = regions.scan_regions(w, h, found_boxes=box, max_covered=0.3)
    assert 0 < len(scan) < len(every)
    for r in scan:
        assert not np.all((box[0, :2] <= r.center) & (r.center <= box[0, 2:]))
        assert _covered(r, box[0]) <= 0.3 + 1e-9
    # Every skipped region is one the box explains.
    kept = {(round(r.center[0], 6), round(r.center[1], 6), round(r.size, 6)) for r in scan}
    skipped = [r for r in every if (round(r.center[0], 6), round(r.center[1], 6), round(r.size, 6)) not in kept]
    assert skipped and all(_covered(r, box[0]) > 0.3 or np.all((box[0, :2] <= r.center) & (r.center <= box[0, 2:]))
                           for r in skipped)


def _covered(region, box):
    """Fraction of an upright region's square inside ``box`` (``xyxy``)."""
    corners = np.r_[region.center - region.size / 2, region.center + region.size / 2]
    lo, hi = np.maximum(corners[:2], box[:2]), np.minimum(corners[2:], box[2:])
    return np.prod(np.clip(hi - lo, 0, None)) / region.size ** 2


def test_scan_regions_validation():
    with pytest.raises(ValueError, match="width and height"):
        regions.scan_regions(0, 100)
    with pytest.raises(ValueError, match="sizes"):
        regions.scan_regions(100, 100, sizes=(0.0,))
    with pytest.raises(ValueError, match="step"):
        regions.scan_regions(100, 100, step=0.0)
    with pytest.raises(ValueError, match="turns"):
        regions.scan_regions(100, 100, turns=())


def test_palm_spread_known_values_and_invariance(reference):
    kp = np.zeros((21, 2))
    kp[9], kp[5], kp[17] = [0.0, -10.0], [-4.0, -10.0], [4.0, -7.0]
    assert regions.palm_spread(kp) == pytest.approx(np.hypot(8.0, 3.0) / 10.0)
    edge_on = kp.copy()
    edge_on[17] = edge_on[5]
    assert regions.palm_spread(edge_on) == pytest.approx(0.0)
    # Scale and in-plane rotation leave it unchanged.
    theta = np.deg2rad(70.0)
    turn = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    hand = reference.keypoints_2d
    assert regions.palm_spread(3.0 * hand @ turn.T + 5.0) == pytest.approx(regions.palm_spread(hand))
    assert regions.palm_spread(hand) > 0.3  # the drawn hand's palm faces the camera
    with pytest.raises(ValueError, match="21, 2"):
        regions.palm_spread(np.zeros((5, 2)))


def test_paint_out_covers_the_hand_in_the_backdrop_colour(net, hand_image, reference):
    # The drawn hand on its backdrop: painted out, the network finds no hand there any more, every
    # painted pixel has the border's colour, the rest of the photo is unchanged, and the hand's own
    # keypoints lie on the painted pixels (a shifted copy of them does not).
    h, w = hand_image.shape[:2]
    painted = regions.paint_out(hand_image, reference.keypoints_2d[None])
    border = np.round(np.median(np.concatenate([hand_image[0], hand_image[-1], hand_image[:, 0], hand_image[:, -1]]),
                                axis=0))
    assert painted.mask.shape == (h, w) and 0.05 < painted.mask.mean() < 0.6
    np.testing.assert_array_equal(painted.image[painted.mask], np.broadcast_to(border, (painted.mask.sum(), 3)))
    np.testing.assert_array_equal(painted.image[~painted.mask], hand_image[~painted.mask])
    assert painted.covered_fraction(reference.keypoints_2d) == 1.0
    assert painted.covered_fraction(reference.keypoints_2d + [10 * w, 0]) == 0.0  # outside the photo: not covered
    assert net.run(painted.image, Region([w / 2, h / 2], 0.9 * max(h, w))).presence < 0.25
    assert net.run(hand_image, Region([w / 2, h / 2], 0.9 * max(h, w))).presence > 0.9
    assert not np.shares_memory(painted.image, hand_image)


def test_paint_out_validation(hand_image, reference):
    with pytest.raises(ValueError, match="uint8"):
        regions.paint_out(hand_image.astype(np.float32), reference.keypoints_2d[None])
    with pytest.raises(ValueError, match="width"):
        regions.paint_out(hand_image, reference.keypoints_2d[None], width=0.0)
