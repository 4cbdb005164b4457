"""MediaPipe's hand-landmark network run directly on regions of interest, without the palm detector.

MediaPipe Hands finds palms with a detector, then runs its landmark network on a square crop
around each palm, turned so that the fingers point up. The palm detector misses many hands
(touching pairs, small hands, hands on objects) that the landmark network finds when it is given
a good crop. This module runs that network (``hand_landmark_full.tflite``, shipped in the
``mediapipe`` wheel) on any :class:`Region` through a TFLite interpreter (``ai-edge-litert``):

* input ``(1, 224, 224, 3)`` float32 RGB in ``[0, 1]``: the region resampled upright;
* outputs: 21 x (x, y, z) landmarks in crop pixels (continuous, 0 = left edge of the crop),
  the hand-presence probability, the handedness probability (``P(MediaPipe label "Left")``,
  i.e. of the person's right hand in an ordinary, non-mirrored photo) and 21 x 3 world
  landmarks in metres in the crop's axes.

:func:`region_from_keypoints` is MediaPipe's own landmarks -> next crop rule (the tracking loop of
its video graphs), so ``landmarks -> re-crop -> landmarks`` refines a rough region and re-scores
it (:meth:`LandmarkNetwork.refine`). Candidate regions: beside a found hand
(:func:`pair_regions`, and the palm detector on a copy of the photo with the found hands painted
out, :func:`paint_out`), on a hand's box (:func:`box_region`) and a coarse cover of the photo for
large hands the palm detector misses (:func:`scan_regions`).

Coordinates are continuous photo pixels like :mod:`handpose.views` (the photo spans
``[0, W] x [0, H]``); the estimator converts to the package's pixel centres at its output.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from handpose import detect, views
from handpose.anatomy import anatomical_plausibility
from handpose.keypoints import BONES, FINGERS, MIDDLE_MCP, WRIST
from handpose.models import tflite
from handpose.views import View

#: Side of the landmark network's square input, pixels.
INPUT_SIZE = 224
#: Landmarks MediaPipe uses to place the next crop (wrist, thumb CMC-IP, finger MCPs and PIPs).
_ROI_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
#: MediaPipe's crop rule: side = 2 x the box of ``_ROI_LANDMARKS``, centre shifted 0.1 box
#: towards the fingers.
ROI_SCALE = 2.0
ROI_SHIFT = 0.1


@dataclass(frozen=True)
class Region:
    """A square region of the photo, turned so that a hand in it would point up.

    Attributes:
        center: ``(2,)`` continuous photo pixels.
        size: side in photo pixels.
        angle_deg: counter-clockwise turn (as displayed) applied to the photo to make the crop
            upright: a hand whose fingers point along ``d`` (image axes, y down) is upright for
            ``angle = atan2(d_x, -d_y)``.
    """

    center: np.ndarray
    size: float
    angle_deg: float = 0.0

    def __post_init__(self) -> None:
        center = np.asarray(self.center, dtype=np.float64)
        if center.shape != (2,) or not np.all(np.isfinite(center)):
            raise ValueError(f"center must be 2 finite pixels, got {self.center}")
        if not (np.isfinite(self.size) and self.size > 0):
            raise ValueError(f"size must be a positive number of pixels, got {self.size}")
        object.__setattr__(self, "center", center)

    def view(self, image: np.ndarray, out_size: int = INPUT_SIZE, name: str = "region") -> View:
        """The region resampled upright into an ``out_size`` square (outside the photo is black)."""
        return views.square_crop_view(image, self.center, self.size, out_size, self.angle_deg, name)

    def corners(self) -> np.ndarray:
        """``(4, 2)`` photo pixels of the crop's corners (top-left, top-right, bottom-right, bottom-left
        of the upright crop)."""
        theta = np.deg2rad(self.angle_deg)
        # Inverse of the view's rotation: crop axes -> photo axes.
        back = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * self.size / 2
        return self.center + unit @ back.T


def upright_angle(direction: np.ndarray) -> float:
    """Degrees turning ``direction`` (image axes, y down) to point up: ``atan2(d_x, -d_y)``."""
    d = np.asarray(direction, dtype=np.float64)
    return float(np.degrees(np.arctan2(d[0], -d[1])))


def region_from_keypoints(keypoints_2d: np.ndarray, scale: float = ROI_SCALE, shift: float = ROI_SHIFT) -> Region:
    """MediaPipe's next crop for a hand with ``(21, 2)`` continuous-pixel keypoints.

    The crop is turned so that wrist -> middle MCP points up; in those axes the box of the palm
    and lower finger landmarks, shifted by ``shift`` of its height towards the fingers, is grown to
    a square of ``scale`` x its longer side.
    """
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    if kp.shape != (21, 2):
        raise ValueError(f"keypoints_2d must be (21, 2), got {kp.shape}")
    angle = upright_angle(kp[MIDDLE_MCP] - kp[WRIST])
    theta = np.deg2rad(angle)
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])  # photo -> crop axes
    local = kp[list(_ROI_LANDMARKS)] @ rot.T
    lo, hi = local.min(0), local.max(0)
    center = (lo + hi) / 2 - [0.0, shift * (hi[1] - lo[1])]
    side = scale * max(float(np.max(hi - lo)), 1.0)
    return Region(center @ rot, side, angle)  # rot is orthonormal: crop -> photo is rot.T


@dataclass(frozen=True)
class RegionHand:
    """The landmark network's answer on one region.

    Attributes:
        region: the region it ran on.
        keypoints_2d: ``(21, 2)`` continuous photo pixels.
        depth: ``(21,)`` MediaPipe's relative depth, photo pixels (wrist 0, negative = nearer).
        keypoints_3d: ``(21, 3)`` world landmarks in mm, wrist at the origin, photo axes.
        presence: hand-presence probability in ``[0, 1]``.
        handedness: ``"left"`` or ``"right"``, the person's hand (see ``mirrored_input``).
        handedness_score: confidence of that label in ``[0.5, 1]``.
    """

    region: Region
    keypoints_2d: np.ndarray
    depth: np.ndarray
    keypoints_3d: np.ndarray
    presence: float
    handedness: str
    handedness_score: float


class LandmarkNetwork:
    """MediaPipe's full hand-landmark network on regions of interest (TFLite, CPU, one thread).

    Example:
        >>> net = LandmarkNetwork()  # doctest: +SKIP
        >>> hand = net.refine(image, Region(center=[320, 240], size=200))  # doctest: +SKIP
    """

    def __init__(self, model_path: str | Path | None = None, mirrored_input: bool = False,
                 num_threads: int = 1) -> None:
        path = Path(model_path) if model_path is not None else tflite.bundled_model("hand_landmark",
                                                                                   "hand_landmark_full.tflite")
        self.mirrored_input = mirrored_input
        self._interpreter, self._input, outputs = tflite.open_interpreter(path, INPUT_SIZE, num_threads)
        # Identity: landmarks (1, 63); Identity_1: presence; Identity_2: handedness; Identity_3: world (1, 63).
        self._outputs = [outputs[name] for name in ("Identity", "Identity_1", "Identity_2", "Identity_3")]
        self.calls = 0

    def run(self, image: np.ndarray, region: Region) -> RegionHand:
        """Landmarks, presence and handedness of the hand in ``region`` of an ``(H, W, 3)`` uint8 RGB photo."""
        view = region.view(image)
        self._interpreter.set_tensor(self._input, (view.image[None].astype(np.float32) / 255.0))
        self._interpreter.invoke()
        self.calls += 1
        landmarks, presence, right, world = (self._interpreter.get_tensor(i).reshape(-1) for i in self._outputs)
        landmarks = landmarks.reshape(21, 3).astype(np.float64)
        scale = region.size / INPUT_SIZE  # crop pixels -> photo pixels
        back = view.rotation_to_photo()
        world = world.reshape(21, 3).astype(np.float64) * 1000.0  # metres -> mm
        world = (world - world[WRIST]) @ back.T
        p_right = float(right[0])  # P(MediaPipe "Left") = P(person's right hand) unless mirrored
        label = "right" if p_right > 0.5 else "left"
        if self.mirrored_input:
            label = {"left": "right", "right": "left"}[label]
        return RegionHand(region=region, keypoints_2d=view.to_photo(landmarks[:, :2]),
                          depth=(landmarks[:, 2] - landmarks[WRIST, 2]) * scale, keypoints_3d=world,
                          presence=float(presence[0]), handedness=label,
                          handedness_score=max(p_right, 1.0 - p_right))

    def refine(self, image: np.ndarray, region: Region, steps: int = 2, min_presence: float = 0.5,
               max_drift: float = 0.15, exclude: np.ndarray | None = None) -> RegionHand | None:
        """``landmarks -> re-crop -> landmarks``, ``steps`` times after the first run.

        Returns the last answer, or None when it is not a new, stable hand: the first answer scores
        a presence below ``min_presence / 2`` or lands on a hand of ``exclude`` (``(N, 21, 2)``:
        mean keypoint distance below 0.3 of the box side, or the same wrist, within 0.25 of the
        box side, with boxes overlapping by IoU 0.3), at the first answer or the last, a re-crop
        scores below
        ``min_presence``, or the last re-crop moved the keypoints more than ``max_drift``.
        """
        hand = self.run(image, region)
        if hand.presence < min_presence / 2 or _lands_on(hand.keypoints_2d, exclude, 0.3):
            return None
        previous = hand.keypoints_2d
        for _ in range(steps):
            previous = hand.keypoints_2d
            hand = self.run(image, region_from_keypoints(hand.keypoints_2d))
            if hand.presence < min_presence:
                return None
        if detect.keypoint_distance(previous[None], hand.keypoints_2d[None])[0, 0] > max_drift:
            return None
        if _lands_on(hand.keypoints_2d, exclude, 0.3):
            return None
        return hand

    def close(self) -> None:
        """Release the interpreter."""
        self._interpreter = None


def _lands_on(keypoints_2d: np.ndarray, others: np.ndarray | None, max_distance: float) -> bool:
    """Whether a hand is one of ``others``: close keypoints, or the same wrist and overlapping
    boxes (the landmark network's mirrored reading of the same hand, thumb and pinky swapped)."""
    if others is None or len(others) == 0:
        return False
    others = np.asarray(others, dtype=np.float64).reshape(-1, 21, 2)
    if np.any(detect.keypoint_distance(keypoints_2d[None], others) < max_distance):
        return True
    size = np.maximum(np.ptp(others, axis=1).max(-1), np.ptp(keypoints_2d, axis=0).max())
    same_wrist = np.linalg.norm(others[:, WRIST] - keypoints_2d[WRIST], axis=-1) < 0.25 * size
    box = np.r_[keypoints_2d.min(0), keypoints_2d.max(0)]
    boxes = np.concatenate([others.min(1), others.max(1)], axis=1)
    return bool(np.any(same_wrist & (detect.box_iou(box, boxes)[0] > 0.3)))


def box_region(keypoints_2d: np.ndarray, scale: float = 2.0) -> Region:
    """An upright square of ``scale`` x the side of the keypoints' box, on the box's centre: a second
    start for a hand whose keypoints (and so :func:`region_from_keypoints`' turn) are unreliable."""
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] != 2:
        raise ValueError(f"keypoints_2d must be (N, 2), got {kp.shape}")
    lo, hi = kp.min(0), kp.max(0)
    return Region((lo + hi) / 2, scale * max(float(np.max(hi - lo)), 1.0), 0.0)


def pair_regions(keypoints_2d: np.ndarray, offset: float = 0.3) -> list[Region]:
    """Where the other hand of a touching or interacting pair may be, beside or on a found hand.

    With ``r = region_from_keypoints(keypoints_2d)`` (about twice the hand's size, turned by
    ``a = r.angle_deg``) and ``s = offset * r.size`` (about one hand width), up to 12 regions of
    ``r``'s size, in this order:

    * on the hand, turned by ``-a`` (its mirror image: crossed hands) and ``a + 180`` (a hand
      facing it: clasped, interlocked);
    * ``s`` left and right (image axes) turned by ``-a`` and ``a`` (hands side by side), ``2 s``
      left and right turned by ``-a`` (touching at the fingertips);
    * ``s`` below and above turned by ``a`` (stacked hands) and ``s`` along the fingers, either way,
      turned by ``a + 180`` (fingers meeting fingers, or a hand held from below).

    A region within 0.05 of a side and 20 degrees of an earlier one is dropped (for an upright
    hand ``-a = a``; for a level one ``-a = a + 180``). The landmark network's re-crops correct the
    rest of the turn and the size.
    """
    r = region_from_keypoints(keypoints_2d)
    a = r.angle_deg
    theta = np.deg2rad(a)
    up = np.array([np.sin(theta), -np.cos(theta)])  # the crop's up (the fingers) in photo axes
    step = offset * r.size
    out = [Region(r.center, r.size, -a), Region(r.center, r.size, a + 180.0)]
    for sign in (1, -1):
        beside = r.center + [sign * step, 0.0]
        out += [Region(beside, r.size, -a), Region(beside, r.size, a),
                Region(r.center + [2 * sign * step, 0.0], r.size, -a)]
    for sign in (1, -1):
        out += [Region(r.center + [0.0, sign * step], r.size, a),
                Region(r.center + sign * step * up, r.size, a + 180.0)]
    kept: list[Region] = []
    for region in out:
        if not any(np.linalg.norm(region.center - other.center) < 0.05 * r.size
                   and abs((region.angle_deg - other.angle_deg + 180.0) % 360.0 - 180.0) < 20.0 for other in kept):
            kept.append(region)
    return kept


@dataclass(frozen=True)
class Painted:
    """A photo with hands painted out (:func:`paint_out`).

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB, the painted copy.
        mask: ``(H, W)`` bool, the painted pixels.
    """

    image: np.ndarray
    mask: np.ndarray

    def covered_fraction(self, keypoints_2d: np.ndarray) -> float:
        """Fraction of ``(21, 2)`` continuous-pixel keypoints on painted pixels (outside the photo: not)."""
        px = np.round(np.asarray(keypoints_2d, dtype=np.float64) - 0.5).astype(np.int64)  # pixel centres
        h, w = self.mask.shape
        inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
        return float(np.sum(self.mask[px[inside, 1], px[inside, 0]]) / len(px))


def paint_out(image: np.ndarray, hands_2d: np.ndarray, width: float = 0.25) -> Painted:
    """A copy of an ``(H, W, 3)`` uint8 photo with hands painted out in one flat colour.

    Each hand of ``hands_2d`` (``(N, 21, 2)`` continuous photo pixels) is covered along its bones by
    lines ``width`` x its box side thick (about a finger's width, so the silhouette goes) and over
    its palm (the hull of the wrist, thumb CMC and finger MCPs), in the median colour of the photo's
    border (the backdrop of a close-up). The landmark network and the palm detector lock onto the
    clearest hand of a region: on the painted copy, a hand the painted one covered is the clearest
    left (the lower hand of an interacting pair). Inpainting from the surroundings was measured
    worse: it fills the silhouette with skin, which reads as a hand.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    hands = np.asarray(hands_2d, dtype=np.float64).reshape(-1, 21, 2)
    if not width > 0:
        raise ValueError(f"width must be a positive fraction of the hand's box side, got {width}")
    mask = np.zeros(image.shape[:2], np.uint8)
    for kp in hands:
        px = np.round(kp - 0.5).astype(np.int32)  # continuous -> pixel centres, OpenCV's convention
        thick = max(int(round(width * np.ptp(kp, axis=0).max())), 1)
        for a, b in BONES:
            cv2.line(mask, (int(px[a, 0]), int(px[a, 1])), (int(px[b, 0]), int(px[b, 1])), 255, thick)
        cv2.fillConvexPoly(mask, cv2.convexHull(px[[WRIST, 1, 5, 9, 13, 17]]), 255)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    out = image.copy()
    out[mask > 0] = np.round(np.median(border, axis=0)).astype(np.uint8)
    return Painted(out, mask > 0)


def scan_regions(width: float, height: float, sizes: tuple[float, ...] = (0.5, 0.9), step: float = 0.6,
                 margin: float = 0.15, found_boxes: np.ndarray | None = None, max_covered: float = 0.3,
                 turns: tuple[float, ...] = (0.0, 90.0, -90.0)) -> list[Region]:
    """A coarse cover of a ``width`` x ``height`` photo (continuous pixels) by regions where a large
    hand the palm detector missed may be: hands holding objects, entering from an edge, palm hidden.

    For every ``size`` (fraction of the photo's shorter side ``S``), square regions of side
    ``s = size S`` sit on a grid whose centres run evenly from ``s/2 - margin s`` to
    ``W - s/2 + margin s`` (and the same in y; a region may stick out of the photo by
    ``margin s``, so that a hand cut by an edge can fill it), at most ``step s`` apart: every point
    of the photo lies in a region and, between the outermost centres, within ``step s / 2`` of a
    centre along each axis, which the landmark network's re-crop corrects (measured on the dev
    photos' GT hands: a hand off-centre by 0.15 of the region is found about as often as a
    centred one, by 0.3 half as often). Turns: regions on the bottom, left or right edge of the
    grid are turned so that a hand entering from that edge points up (bottom 0, left 90, right -90,
    bottom corners +-45 degrees: egocentric hands come from the bottom and the sides, pointing
    inward); the others are turned by each of ``turns`` (degrees; by default upright and a quarter
    turn either way: raised hands, hands on objects pointing sideways). The landmark network
    tolerates about 45 degrees of turn.

    Regions a found hand explains are skipped: the region's centre lies in a box of
    ``found_boxes`` (``(N, 4)`` ``xyxy`` continuous pixels) or more than ``max_covered`` of its
    area does. Order: bottom edge, side edges, the rest; larger regions first within each.

    Returns:
        the regions, one call of the landmark network each.
    """
    if not (width > 0 and height > 0):
        raise ValueError(f"width and height must be positive pixels, got {width} x {height}")
    if not sizes or any(not 0.0 < size <= 2.0 for size in sizes):
        raise ValueError(f"sizes must be fractions of the shorter side in (0, 2], got {sizes}")
    if not 0.0 < step <= 1.0 or not 0.0 <= margin < 0.5:
        raise ValueError(f"step must be in (0, 1] and margin in [0, 0.5), got {step}, {margin}")
    if not turns:
        raise ValueError("turns must hold at least one angle (degrees)")
    boxes = np.zeros((0, 4)) if found_boxes is None else np.asarray(found_boxes, dtype=np.float64).reshape(-1, 4)
    shorter = min(width, height)
    ranked = []
    for size in sorted(sizes, reverse=True):
        side = size * shorter
        axes = []
        for extent in (width, height):
            lo, hi = side / 2 - margin * side, extent - side / 2 + margin * side
            n = 1 if hi <= lo else int(np.ceil((hi - lo) / (step * side) - 1e-9)) + 1
            axes.append(np.linspace(lo, hi, n) if n > 1 else np.array([extent / 2]))
        xs, ys = axes
        for j, y in enumerate(ys):
            for i, x in enumerate(xs):
                center = np.array([x, y])
                box = np.r_[center - side / 2, center + side / 2]
                if (np.any(detect.points_in_boxes(center, boxes))
                        or np.any(detect.box_overlap_fraction(box, boxes) > max_covered)):
                    continue
                # Inward direction from the grid edges the region is on (y down).
                inward = np.array([float(len(xs) > 1 and i == 0) - float(len(xs) > 1 and i == len(xs) - 1),
                                   -float(len(ys) > 1 and j == len(ys) - 1)])
                rank = 0 if inward[1] < 0 else 1 if inward[0] else 2
                for angle in [upright_angle(inward)] if np.any(inward) else turns:
                    ranked.append((rank, -side, Region(center, side, float(angle))))
    return [region for _, _, region in sorted(ranked, key=lambda item: item[:2])]


def palm_spread(keypoints_2d: np.ndarray) -> float:
    """Width over length of a hand's palm in the photo: ``|index MCP - pinky MCP| / |wrist - middle
    MCP|`` of ``(21, 2)`` pixels. About 0.5-1 for a palm or a back seen from the front; near 0 for a
    hand seen edge-on, and for a forearm or a stick read as one."""
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    if kp.shape != (21, 2):
        raise ValueError(f"keypoints_2d must be (21, 2), got {kp.shape}")
    width = np.linalg.norm(kp[FINGERS["index"][0]] - kp[FINGERS["pinky"][0]])
    return float(width / max(np.linalg.norm(kp[MIDDLE_MCP] - kp[WRIST]), 1e-9))


def plausibility_failures(hand: RegionHand) -> float:
    """Fraction of bones and joints of ``hand`` that fail :func:`handpose.anatomy.anatomical_plausibility`."""
    return float(anatomical_plausibility(hand.keypoints_3d[None], [hand.handedness]).score[0])
