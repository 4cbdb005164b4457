"""The default estimator: MediaPipe Hands (bundled in the ``mediapipe`` 0.10.21 wheel), made robust.

Plain ``Hands(static_image_mode=True)`` runs a palm detector on the whole photo, letterboxed to
192 x 192, then a landmark network on each palm's crop. It misses small hands (full-body shots),
grey or low-contrast photos and unusual in-plane rotations. :class:`MediaPipeEstimator` runs it on
several *views* of the photo (:mod:`handpose.views`), cheapest first, and stops as soon as it has
enough confident hands:

1. ``full``: the photo as is. Done when it has ``max_hands`` hands, or confident large hands.
2. ``palms`` (``use_regions``, ``low_palms``): MediaPipe's palm detector run directly
   (:mod:`handpose.models.palms`, every anchor's score visible) on the whole photo; the palms
   scoring ``low_palm_confidence`` or more that no found hand explains (their box centre in its
   box, or their hand region centred within a quarter of its region's side) go to the region
   verifier, best ``low_palms`` first: hands whose palm is partly hidden (interacting pairs,
   hands on objects) score below MediaPipe's 0.5.
3. ``rescue`` (``use_regions``, only when nothing was found): the palm detector on the photo
   turned by 90 / 270 / 180 degrees (photos shorter than ``tile_min_side``: larger ones go to
   the tile stage) and on a contrast-enhanced copy of grey photos, at
   ``rescue_detection_confidence``, each palm's region through the region verifier; the first
   hand ends this stage.
4. ``pair`` (``use_regions``): the hand-landmark network run directly on up to 12 regions beside
   and on every found hand (:func:`handpose.models.regions.pair_regions`: its neighbours left,
   right, above and below, its mirror image on it, and a hand facing it, on it and along its
   fingers): the other hand of a touching or interacting pair, which the palm detector often
   misses; a hand found there must not overlap a found hand by ``pair_max_iou`` (a re-reading of
   it). When these regions find no partner, the hand a found one covers (the lower hand of an
   interacting pair, which the network reads as the upper one): the palm detector in a window
   around each found hand on a copy of the photo with the found hands painted out
   (:func:`handpose.models.regions.paint_out`), its palms verified on that copy
   (``pair_paint``; ``"landmarks:pair-painted"``). Repeated after every later stage for the
   hands found since.
5. ``person`` (when hands are missing or small): MediaPipe Pose (bundled, model complexity 1)
   finds a person; a region around each wrist not already explained by a found hand, sized from
   the forearm and shoulders and turned so that the forearm points up, goes to the landmark
   network (:func:`wrist_regions`). Pose finds one person per image, so on photos of
   ``tile_min_side`` or more, while the found hands and that person's wrists leave hands to find,
   every other person of the selfie-segmentation mask (bundled landscape model; connected
   components the first pose does not hold, ``max_people`` largest) gets its own Pose run on its
   crop, and its wrists the same regions (``"landmarks:person-left2"``: the second other person).
6. ``tiles`` (``use_regions``, when hands are still missing or small, photos of ``tile_min_side``
   or more): the palm detector on overlapping square windows, each resampled straight from the
   photo into its 192 x 192 input by one ``cv2.warpAffine``, so that small hands fill more of the
   input: first windows of ``coarse_tile_side`` pixels (and ``grid x grid`` tiles when
   ``tile_grids`` is set), then, while no hand at all is found, of ``fine_tile_side`` pixels. At
   a low palm score (``fine_tile_confidence``), palms that no found hand explains, one per place
   (NMS across windows), best ``low_palms`` first. A palm small in its window is looked at again
   (zoom): the detector on a window of ``palm_zoom`` x its side around it, which turns it right
   more often; the zoomed and the first palm's regions both go to the region verifier.
7. ``scan`` (``use_regions`` and ``scan``; last): while fewer than two hands are found and none of
   them is small (a wide shot, which the tiles handle), the landmark network on a coarse cover of the photo
   (:func:`handpose.models.regions.scan_regions`): large hands the palm detector misses, holding
   objects, partly covered or entering from an edge (egocentric photos). Squares of
   ``scan_sizes`` of the shorter side (with a hand found, that hand's region size only: the other
   hand of a person is about as large), ``scan_step`` apart, at ``scan_turns``, or turned inward
   on the bottom and side edges; regions a found hand explains are skipped; a region is dropped
   after one network run when its presence is below ``min_presence / 2``, else verified like
   every region hand, and must also be sure or show a wide palm (``scan_min_spread``). 46 regions
   on a 640 x 480 photo without hands, 60 on a 1280 x 720 one, fewer beside a found hand: one
   network run each (3-9 ms) unless its presence is high enough to verify.

Palm-detector candidates (stages 2, 3 and 6) are region hands that must score a presence of
``palm_min_presence`` on every re-crop (low palm scores need a surer landmark network); a palm
scoring ``min_detection_confidence`` or more, as sure as the ``full`` view's, skips the anatomy
check, as in MediaPipe's own graph (the network's 3D reading of a fist often fails it); and a
new one that lies on a found hand (mean keypoint distance below ``reread_distance`` of the box
side and boxes overlapping by IoU 0.3: a second, wrong reading of that hand) is dropped. The
MediaPipe graph runs on the ``full`` view only; :mod:`handpose.models.palms` replaced its runs on
rescue views and tiles: one 192 x 192 detector call per window instead of a graph run with a
landmark run per palm, and every anchor's score to choose candidates from (on the 1280 px
composites of ``bench/bench_detection.py``: about 15 detector calls instead of about 30 graph
runs, a median of 179 instead of 468 ms per photo in one run on the shared 2-core CPU, and more
small and paired hands found at a higher precision).

Every ``full``-view hand is re-scored by the landmark network on its re-crop and dropped below
``min_presence``; a hand mostly inside the box of one 1.5 times larger, or less than half as
large as a hand whose centre is within 0.75 of its side (``finger_ratio``, ``finger_distance``),
is dropped (fingers read as a small hand). Region hands (stages 2-7) pass a verifier: every
re-crop scores a hand presence of at least ``min_presence``, the last re-crop moves the keypoints
less than ``max_drift``, the first answer is not a hand already found, and the bones and joint
angles are a hand's (:func:`handpose.anatomy.anatomical_plausibility`, at most
``max_plausibility`` failing).

More than two hands: ``max_hands`` is 4 by default, so group photos and two people's hands are
kept; callers that need one pair (the two-hand network) take the best two.

All candidates are mapped back to the photo, filtered (keypoint-layout sanity, score) and merged
(:func:`handpose.detect.suppress_duplicates`); the best ``max_hands`` are returned.

Conventions:
    * ``keypoints_2d`` in photo pixels with integer pixel centres (the package's convention): the
      views work in continuous pixels (:mod:`handpose.views`) and the output is converted once,
      ``u = x - 0.5`` (``u = x_norm W - 0.5`` for MediaPipe's normalised landmarks).
    * ``keypoints_3d`` are MediaPipe's world landmarks in millimetres, wrist at the origin, axes
      aligned with the photo's (x right, y down, z away from the camera); landmarks found in a
      turned view are turned back.
    * ``handedness``: MediaPipe labels hands as if the image were a mirrored selfie. For ordinary
      photos its ``"Left"`` is the person's right hand, so labels are swapped
      (``MediaPipeOptions.mirrored_input=True`` keeps them for selfie-camera images).
    * ``score``: MediaPipe's handedness confidence (the only per-hand score its Solutions API
      exposes) for palm-detector hands, the hand-presence probability for region hands, in
      ``[0, 1]``.
    * ``source``: ``"mediapipe:full"`` (the graph), or ``"landmarks:<stage>"``, e.g.
      ``"landmarks:palms"``, ``"landmarks:rot90"``, ``"landmarks:tile384-3"``, ``"landmarks:pair"``,
      ``"landmarks:pair-painted"``, ``"landmarks:person-left"``, ``"landmarks:scan"``.

Only models shipped in the wheel are used (palm detection full, hand landmark lite/full, pose
landmark full, selfie segmentation landscape), the landmark network through ``ai-edge-litert``'s
TFLite interpreter: nothing is downloaded. MediaPipe graphs are built in
:meth:`MediaPipeEstimator._hands`, :meth:`MediaPipeEstimator._pose` and
:meth:`MediaPipeEstimator._segmentation` only, each in a silenced-stderr block.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from handpose import detect, views
from handpose.io import check_image
from handpose.keypoints import WRIST
from handpose.models import palms, regions
from handpose.models.native_stderr import silenced_native_stderr
from handpose.prediction import HandPrediction
from handpose.views import View

# MediaPipe Pose landmark indices (person's left / right).
_POSE_WRIST = {"left": 15, "right": 16}
_POSE_PINKY = {"left": 17, "right": 18}
_POSE_INDEX = {"left": 19, "right": 20}
_POSE_SHOULDERS = (11, 12)
_POSE_ELBOW = {"left": 13, "right": 14}


def wrist_regions(pose: np.ndarray, found: list[HandPrediction], min_visibility: float
                  ) -> list[tuple[regions.Region, str]]:
    """Regions around one person's pose wrists that no found hand explains, turned along the forearm.

    Args:
        pose: ``(33, 3)`` MediaPipe Pose landmarks, continuous photo pixels and visibility.
        found: hands found so far; a wrist region whose centre lies in one's box is skipped.
        min_visibility: wrists less visible are skipped.

    Returns:
        ``(region, "person-left" | "person-right")`` per searched wrist.
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (33, 3):
        raise ValueError(f"pose must be (33, 3) MediaPipe Pose landmarks (x, y, visibility), got {pose.shape}")
    shoulder = np.linalg.norm(pose[_POSE_SHOULDERS[0], :2] - pose[_POSE_SHOULDERS[1], :2])
    out = []
    for side in ("left", "right"):
        wrist = pose[_POSE_WRIST[side]]
        if wrist[2] < min_visibility:
            continue
        knuckles = (pose[_POSE_PINKY[side], :2] + pose[_POSE_INDEX[side], :2]) / 2.0
        forearm = wrist[:2] - pose[_POSE_ELBOW[side], :2]
        # Hand centre a little past the wrist towards the knuckles; region side from the larger
        # of the hand (wrist->knuckles), forearm and shoulder scales, so it holds the whole hand.
        center = wrist[:2] + 0.7 * (knuckles - wrist[:2])
        side_px = max(4.0 * np.linalg.norm(knuckles - wrist[:2]), 0.9 * np.linalg.norm(forearm),
                      0.7 * shoulder, 32.0)
        if found and np.any(detect.points_in_boxes(center, np.stack([hand.box_xyxy for hand in found]))):
            continue
        # Turned so the forearm (or wrist -> knuckles) points up: the landmark network's pose.
        direction = knuckles - wrist[:2] if np.linalg.norm(knuckles - wrist[:2]) > 1 else forearm
        angle = regions.upright_angle(direction) if np.linalg.norm(direction) > 1 else 0.0
        out.append((regions.Region(center, side_px, angle), f"person-{side}"))
    return out


class Landmarks(NamedTuple):
    """One hand of a MediaPipe ``Hands.process`` result, in the processed image.

    Attributes:
        keypoints_2d: ``(21, 2)`` pixels of the processed image.
        keypoints_3d: ``(21, 3)`` world landmarks in mm, wrist at the origin.
        handedness: ``"left"`` or ``"right"``, the person's hand (see ``mirrored_input``).
        score: MediaPipe's handedness confidence in ``[0, 1]``.
    """

    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray
    handedness: str
    score: float


def read_landmarks(result: Any, width: int, height: int, mirrored_input: bool = False) -> list[Landmarks]:
    """The hands of a MediaPipe ``Hands.process`` result, in MediaPipe's order.

    ``uv = (x W, y H)`` from the normalised landmarks; ``xyz = 1000 (world - world_wrist)`` mm.
    MediaPipe labels hands as in a mirrored selfie, so its ``"Left"`` is the person's right hand
    unless ``mirrored_input``.
    """
    hands = []
    for landmarks, world, handed in zip(result.multi_hand_landmarks or [], result.multi_hand_world_landmarks or [],
                                        result.multi_handedness or []):
        label = handed.classification[0]
        uv = np.array([[p.x * width, p.y * height] for p in landmarks.landmark])
        xyz = np.array([[p.x, p.y, p.z] for p in world.landmark]) * 1000.0  # metres -> mm
        mp_label = label.label.lower()
        handedness = mp_label if mirrored_input else {"left": "right", "right": "left"}[mp_label]
        hands.append(Landmarks(uv, xyz - xyz[WRIST], handedness, label.score))
    return hands


@dataclass(frozen=True)
class MediaPipeOptions:
    """All knobs of :class:`MediaPipeEstimator`.

    Attributes:
        max_hands: hands kept per photo (best scores first).
        model_complexity: hand landmark network, 0 (lite) or 1 (full); both are in the wheel.
        min_detection_confidence: palm-detector threshold of the ``full`` view.
        rescue_detection_confidence: palm-score threshold of the rescue views.
        min_score: hands of the ``full`` view scoring below are dropped.
        confident_score: a hand at least this confident, and large, needs no search for others.
        small_hand_fraction: a hand whose box side is below this fraction of the photo's longer
            side is *small*: small hands suggest more small hands the full view missed.
        rescue: run the rescue stage (rotations, contrast) when nothing is found (``use_regions``).
        rotations: quarter-turn angles in degrees tried by the rescue stage, in order.
        use_pose: run the person-guided stage.
        pose_min_visibility: a pose wrist below this visibility is not searched.
        max_people: people beyond the whole photo's pose searched (largest selfie-segmentation
            components first, one Pose run each; 0 disables it), on photos of ``tile_min_side``
            or more while the found hands and wrists leave hands to find.
        person_min_fraction: segmentation components smaller than this fraction of the photo are
            not people.
        tile_grids: grid sizes of grid tiles added to the tile stage's first pass (``(2,)`` = 2 x 2
            tiles); none by default (on the composites they found no hand the palm windows
            missed, for 4 more detector calls).
        tile_overlap: overlap between neighbouring grid tiles, fraction of a tile.
        tile_min_side: photos whose longer side is shorter are not tiled.
        coarse_tile_side: side of the tile stage's first windows, pixels (0: none), at most 0.6 of
            the photo's longer side (2 x 2 windows on photos of ``tile_min_side`` to 850 px: on the
            demo set's 800 x 600 photo of two fists they find the second, as the 2 x 2 grid of the
            MediaPipe graph did) and at least a quarter of it (a 4032 px photo gets 20 windows of
            1008 px, not 80), at 20 % overlap: 6 detector calls on a 1280 x 853 photo, where hands
            of 90 px or more and touching pairs of 120-160 px fill a good part of the input.
        fine_tile_side: side of the second pass's windows (0: none), run only while no hand is
            found: 12 calls on 1280 x 853, for 40-60 px hands (composites, the palm detector's
            recall on 60 px hands at a palm score of 0.2: 84 % in 384 px windows, 63 % in 512 px).
        fine_tile_max: photos needing more windows of a side than this get none of that side.
        fine_tile_confidence: palm-score threshold of the tile stage's windows; low, because every
            palm goes through the region verifier.
        low_palms: palm candidates per stage sent to the region verifier (best first; 0 disables
            the ``palms`` stage).
        low_palm_confidence: palm-score threshold of the ``palms`` stage (whole photo).
        palm_threads: threads of the palm detector's interpreter (2 on the 2-core CPU: 4.7 ms per
            call instead of 8.5 ms when idle, the same under full load; composites at load ~1:
            median 166 ms per photo with 2, 194 ms with 1).
        palm_zoom: side of the zoom window, in palm box sides (about 2.5 hand sides).
        palm_min_presence: hand presence every re-crop of a palm-detector candidate must score.
        reread_distance: a palm-detector hand closer than this mean keypoint distance (fraction of
            the box side) to a found hand, with boxes overlapping by IoU 0.3 or more, is a second
            reading of that hand (touching pairs on the composites: 0.43 or more) and dropped.
        finger_ratio: a hand whose box side is at most ``1 / finger_ratio`` of another hand's,
            with its keypoint centre within ``finger_distance`` of that hand's box side from the
            other's, is that hand's fingers read as a small hand
            (:func:`handpose.detect.beside_larger`) and dropped; 0 disables the rule. Detection
            bench: such a reading stuck out of the larger hand's box (so
            :func:`~handpose.detect.nested_in_larger` kept it) at 0.46 of its side and 1/3 of its
            size; true hands half as large or less lay 1.2 sides or more away (wide shots); the
            rule took composites' precision from 0.991 to 1.0, the other sets unchanged.
        finger_distance: see ``finger_ratio``.
        duplicate_distance: two hands closer than this mean keypoint distance (fraction of the box
            side) are the same hand.
        duplicate_iou: two hands whose boxes overlap more are the same hand.
        min_hand_side_px: hands with a smaller 2D box are rejected.
        min_inside_fraction: hands with fewer keypoints inside the photo are rejected.
        mirrored_input: the photos are mirrored selfies (keep MediaPipe's labels as they are).
        use_regions: run the landmark network directly on candidate regions (pair search beside
            every found hand, person wrists, the scan), see :mod:`handpose.models.regions`.
        min_presence: a region hand is accepted when every re-crop scores at least this
            hand-presence probability; a palm-detector hand when its re-crop does.
        max_plausibility: a region hand is rejected when more than this fraction of its bones and
            joints fails :func:`handpose.anatomy.anatomical_plausibility`.
        sure_presence: a region hand whose last re-crop scores at least this presence is sure:
            its bones and joints may fail up to ``max_plausibility_sure`` (the network's 3D reading
            of a foreshortened or partly hidden hand fails more checks; composites: the second
            hand of touching pairs 74 % -> 79 % found, precision kept).
        max_plausibility_sure: the plausibility limit of sure region hands.
        pair_offset: the pair search looks this many region sides (about one hand width; a region
            is about twice the hand) and twice as many away from a found hand
            (:func:`handpose.models.regions.pair_regions`).
        pair_max_iou: a pair hand whose box overlaps a found hand's by this IoU or more is a
            re-reading of that hand (turned or mirrored), not its partner (composites: the
            partners found overlap by IoU 0.4 at most, the re-readings by about 0.6, under
            ``duplicate_iou``).
        pair_paint: when the pair regions find no partner, look for the hand a found hand covers
            on a copy of the photo with the found hands painted out
            (:func:`handpose.models.regions.paint_out`; :meth:`MediaPipeEstimator._painted_pair_search`):
            the palm detector in a window around each anchor, its palms through the region
            verifier on the painted copy. Interacting composites of the detection bench: recall
            0.54 -> 0.62, the covered hand 12 -> 15 of 38, precision kept (0.98); one detector
            call and a few network runs per searched photo (dev photos, interleaved in one run on
            the shared 2-core CPU: median 155 instead of 130 ms).
        pair_paint_width: painted line width, fraction of the found hand's box side (0.25: the
            fingers' silhouette goes; interacting composites: 0.2 and 0.32 found 1 and 3 fewer
            hands).
        pair_paint_window: side of the palm detector's window, in anchor box sides, on its centre.
        pair_paint_confidence: palm-score threshold in that window (low: the covered hand's palm
            is partly hidden; the verifier decides).
        pair_paint_palms: palms per anchor sent to the verifier, best first.
        pair_paint_max_covered: a painted-pair hand with more than this fraction of its keypoints
            on painted pixels is dropped (they were guessed, not seen; the covered hands found had
            at most 0.52, a false one 0.67).
        pair_paint_min_hand: found hands whose box side is below this fraction of the photo's
            longer side get no painted search (wide shots: the false hands it found beside 50 px
            hands of a 900 px dev photo and of the 1280 px composites; interacting close-ups,
            InterHand2.6M's 512 px frames included, have larger hands).
        region_steps: re-crops (landmarks -> region -> landmarks) of a region hand.
        max_drift: a region hand whose last re-crop moved its keypoints more than this (mean
            distance / box side) is unstable and rejected.
        scan: run the region scan (``use_regions``): while fewer than two hands are found and no
            found hand is small (a wide shot, which the tiles handle), the landmark network on a
            coarse cover of the photo (:func:`handpose.models.regions.scan_regions`), for large
            hands the palm detector misses (holding objects, entering from an edge, palm hidden).
        scan_sizes: region sides of the scan, fractions of the photo's shorter side, when no hand
            is found (with one found, see ``scan_found_scales``). A hand is found from regions of
            about 1.5-2 times its box: 0.5 and 0.9 reach hands of about 0.25-0.6 of the shorter
            side (hard cases of the detection bench, upright ``scan_turns``: (0.4, 0.65) found 23
            of 38 covered and 36 of 38 edge hands with 47 regions on a 1280 x 720 photo,
            (0.5, 0.9) 25 and 36 with 32).
        scan_step: the scan's grid spacing, fraction of the region side.
        scan_found_scales: with a hand found, the scan's region sides are these multiples of
            that hand's region (:func:`~handpose.models.regions.region_from_keypoints`), clipped to
            0.25-1.0 of the shorter side, instead of ``scan_sizes``.
        scan_margin: scan regions may stick out of the photo by this fraction of their side (a
            hand cut by the edge, wrist outside, fills the region it would have whole).
        scan_max_covered: scan regions covered more than this by a found hand's box are skipped.
        scan_turns: turns (degrees) of the scan's regions away from the photo's edges (those on
            the bottom and side edges are turned inward). Hard cases of the detection bench:
            upright only found 25 of 38 covered hands, with quarter turns either way 29, in 30 and
            50 network runs on a 1280 px hand-free photo; a half turn more added nothing.
        scan_min_spread: a scan hand below ``sure_presence`` whose palm is narrower than this
            (:func:`handpose.models.regions.palm_spread`, width over length) is rejected: a forearm
            read as a hand seen edge-on (dev photos: a forearm at 0.18; scan hands that were
            hands 0.42-1.07).
    """

    max_hands: int = 4
    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    rescue_detection_confidence: float = 0.2
    min_score: float = 0.5
    confident_score: float = 0.9
    small_hand_fraction: float = 0.2
    rescue: bool = True
    rotations: tuple[int, ...] = (90, 270, 180)
    use_pose: bool = True
    pose_min_visibility: float = 0.3
    max_people: int = 4
    person_min_fraction: float = 0.01
    tile_grids: tuple[int, ...] = ()
    tile_overlap: float = 0.25
    tile_min_side: int = 480
    coarse_tile_side: int = 512
    fine_tile_side: int = 384
    fine_tile_max: int = 64
    fine_tile_confidence: float = 0.05
    low_palms: int = 8
    low_palm_confidence: float = 0.2
    palm_threads: int = 2
    palm_zoom: float = 4.0
    palm_min_presence: float = 0.7
    reread_distance: float = 0.4
    finger_ratio: float = 2.0
    finger_distance: float = 0.75
    duplicate_distance: float = 0.25
    duplicate_iou: float = 0.6
    min_hand_side_px: float = 8.0
    min_inside_fraction: float = 0.5
    mirrored_input: bool = False
    use_regions: bool = True
    min_presence: float = 0.5
    max_plausibility: float = 0.35
    sure_presence: float = 0.95
    max_plausibility_sure: float = 0.5
    pair_offset: float = 0.3
    pair_max_iou: float = 0.5
    pair_paint: bool = True
    pair_paint_width: float = 0.25
    pair_paint_window: float = 2.5
    pair_paint_confidence: float = 0.1
    pair_paint_palms: int = 3
    pair_paint_max_covered: float = 0.6
    pair_paint_min_hand: float = 0.1
    region_steps: int = 2
    max_drift: float = 0.15
    scan: bool = True
    scan_sizes: tuple[float, ...] = (0.5, 0.9)
    scan_step: float = 0.6
    scan_margin: float = 0.15
    scan_found_scales: tuple[float, ...] = (1.0,)
    scan_max_covered: float = 0.3
    scan_min_spread: float = 0.3
    scan_turns: tuple[float, ...] = (0.0, 90.0, -90.0)

    def __post_init__(self) -> None:
        if self.max_people < 0:
            raise ValueError(f"max_people must be >= 0 (0 disables the other people's search), got {self.max_people}")
        if self.max_hands < 1:
            raise ValueError(f"max_hands must be >= 1, got {self.max_hands}")
        if self.model_complexity not in (0, 1):
            raise ValueError(f"model_complexity must be 0 or 1 (bundled models), got {self.model_complexity}")
        for name in ("min_detection_confidence", "rescue_detection_confidence", "min_score", "low_palm_confidence",
                     "palm_min_presence", "reread_distance", "confident_score", "small_hand_fraction",
                     "pose_min_visibility", "min_inside_fraction",
                     "min_presence", "max_plausibility", "fine_tile_confidence", "person_min_fraction",
                     "sure_presence", "max_plausibility_sure", "pair_max_iou", "pair_paint_confidence",
                     "pair_paint_max_covered", "pair_paint_min_hand"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if any(angle % 90 for angle in self.rotations):
            raise ValueError(f"rotations must be multiples of 90 degrees, got {self.rotations}")
        if any(grid < 2 for grid in self.tile_grids):
            raise ValueError(f"tile_grids must be >= 2, got {self.tile_grids}")
        if not 0.0 <= self.tile_overlap < 1.0:
            raise ValueError(f"tile_overlap must be in [0, 1), got {self.tile_overlap}")
        if self.low_palms < 0 or self.palm_threads < 1 or not self.palm_zoom > 0:
            raise ValueError(f"low_palms must be >= 0, palm_threads >= 1 and palm_zoom > 0, "
                             f"got {self.low_palms}, {self.palm_threads}, {self.palm_zoom}")
        for name in ("coarse_tile_side", "fine_tile_side"):
            if getattr(self, name) and getattr(self, name) < 64:
                raise ValueError(f"{name} must be 0 (off) or >= 64 pixels, got {getattr(self, name)}")
        if self.region_steps < 1:
            raise ValueError(f"region_steps must be >= 1 (re-crop and re-score), got {self.region_steps}")
        if not (self.pair_paint_width > 0 and self.pair_paint_window > 0 and self.pair_paint_palms >= 0):
            raise ValueError(f"pair_paint_width and pair_paint_window must be positive and pair_paint_palms >= 0, "
                             f"got {self.pair_paint_width}, {self.pair_paint_window}, {self.pair_paint_palms}")
        if not (self.finger_ratio == 0 or self.finger_ratio > 1) or self.finger_distance < 0:
            raise ValueError(f"finger_ratio must be 0 (off) or > 1 and finger_distance >= 0, "
                             f"got {self.finger_ratio}, {self.finger_distance}")
        if not (self.pair_offset > 0 and self.max_drift > 0):
            raise ValueError(f"pair_offset and max_drift must be positive, got {self.pair_offset}, {self.max_drift}")
        if not self.scan_turns:
            raise ValueError("scan_turns must hold at least one angle in degrees, e.g. (0.0,)")
        if not self.scan_found_scales or any(not k > 0 for k in self.scan_found_scales):
            raise ValueError(f"scan_found_scales must be positive multiples, got {self.scan_found_scales}")
        if not self.scan_sizes or any(not 0.0 < size <= 2.0 for size in self.scan_sizes):
            raise ValueError(f"scan_sizes must be fractions of the shorter side in (0, 2], got {self.scan_sizes}")
        if not (0.0 < self.scan_step <= 1.0 and 0.0 <= self.scan_margin < 0.5 and 0.0 <= self.scan_max_covered <= 1.0
                and self.scan_min_spread >= 0.0):
            raise ValueError(f"scan_step must be in (0, 1], scan_margin in [0, 0.5), scan_max_covered in [0, 1] and "
                             f"scan_min_spread >= 0, got {self.scan_step}, {self.scan_margin}, "
                             f"{self.scan_max_covered}, {self.scan_min_spread}")


def open_graph(factory: Callable[[], Any]) -> Any:
    """The MediaPipe solution graph ``factory()`` returns, run once on a blank image, both with
    native stderr silenced.

    A graph opens its calculators, and their TFLite interpreters log as they start ("Created
    TensorFlow Lite XNNPACK delegate"), on scheduler threads after construction returns; the first
    ``process`` waits for them. Running it here keeps those lines inside the silenced block instead
    of racing past it.
    """
    with silenced_native_stderr():
        graph = factory()
        graph.process(np.zeros((64, 64, 3), np.uint8))
    return graph


def to_pixel_centres(hand: HandPrediction) -> HandPrediction:
    """``hand`` from the continuous pixels MediaPipe and the views work in to the package's pixel
    centres (:mod:`handpose.camera`): ``u = x - 0.5``, keypoints and box."""
    return dataclasses.replace(hand, keypoints_2d=hand.keypoints_2d - 0.5, box_xyxy=hand.box_xyxy - 0.5)


class MediaPipeEstimator:
    """Robust multi-view MediaPipe hand estimator; see the module docstring.

    MediaPipe graphs are created on first use and reused across calls (creating one takes
    about 0.1-0.5 s). Use as a context manager or call :meth:`close`.

    Example:
        >>> with MediaPipeEstimator(MediaPipeOptions(max_hands=2)) as estimator:  # doctest: +SKIP
        ...     hands = estimator.predict(image)
    """

    name = "mediapipe"
    options_type = MediaPipeOptions

    def __init__(self, options: MediaPipeOptions | None = None) -> None:
        self.options = options or MediaPipeOptions()
        self._graphs: dict[tuple, Any] = {}

    def __enter__(self) -> "MediaPipeEstimator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        with silenced_native_stderr():
            for graph in self._graphs.values():
                graph.close()
        self._graphs.clear()

    # -- graphs -------------------------------------------------------------------------------

    def _hands(self, max_hands: int, confidence: float) -> Any:
        key = ("hands", max_hands, confidence)
        if key not in self._graphs:
            import mediapipe as mp

            self._graphs[key] = open_graph(lambda: mp.solutions.hands.Hands(
                static_image_mode=True, max_num_hands=max_hands, model_complexity=self.options.model_complexity,
                min_detection_confidence=confidence, min_tracking_confidence=0.5))
        return self._graphs[key]

    def _pose(self) -> Any:
        key = ("pose",)
        if key not in self._graphs:
            import mediapipe as mp

            # model_complexity=1 is the pose model shipped in the wheel (0 and 2 would be downloaded).
            self._graphs[key] = open_graph(lambda: mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                                                          min_detection_confidence=0.5))
        return self._graphs[key]

    # -- one view -----------------------------------------------------------------------------

    def _run_view(self, view: View, max_hands: int, confidence: float, min_score: float) -> list[HandPrediction]:
        """Hands found by MediaPipe's Hands graph in one view, mapped back to the photo."""
        if min(view.image.shape[:2]) < 8:
            return []
        graph = self._hands(max_hands, confidence)
        with silenced_native_stderr():
            result = graph.process(view.image)
        h, w = view.image.shape[:2]
        back = view.rotation_to_photo()
        return [HandPrediction(keypoints_2d=view.to_photo(hand.keypoints_2d), keypoints_3d=hand.keypoints_3d @ back.T,
                               handedness=hand.handedness, score=hand.score, source=f"mediapipe:{view.name}")
                for hand in read_landmarks(result, w, h, self.options.mirrored_input) if hand.score >= min_score]

    # -- stages -------------------------------------------------------------------------------

    def _network(self) -> regions.LandmarkNetwork:
        key = ("landmarks",)
        if key not in self._graphs:
            self._graphs[key] = regions.LandmarkNetwork(mirrored_input=self.options.mirrored_input)
        return self._graphs[key]

    def _palm_detector(self) -> palms.PalmDetector:
        key = ("palms",)
        if key not in self._graphs:
            self._graphs[key] = palms.PalmDetector(num_threads=self.options.palm_threads)
        return self._graphs[key]

    def _segmentation(self) -> Any:
        key = ("selfie_segmentation",)
        if key not in self._graphs:
            import mediapipe as mp

            # model_selection=1: the landscape model (256 x 144), bundled in the wheel.
            self._graphs[key] = open_graph(lambda: mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1))
        return self._graphs[key]

    def _pose_in(self, view: View) -> np.ndarray | None:
        """``(33, 3)``: MediaPipe Pose's landmarks of the one person it finds in ``view``, photo
        continuous pixels and visibility, or None."""
        h, w = view.image.shape[:2]
        with silenced_native_stderr():
            result = self._pose().process(view.image)
        if not result.pose_landmarks:
            return None
        pose = np.array([[p.x * w, p.y * h, p.visibility] for p in result.pose_landmarks.landmark])
        return np.c_[view.to_photo(pose[:, :2]), pose[:, 2]]

    def _people(self, image: np.ndarray, first: np.ndarray | None) -> list[np.ndarray]:
        """Poses of the people ``first`` (the whole photo's pose) does not cover: each connected
        person of the selfie-segmentation mask whose box holds none of ``first``'s visible
        landmarks, cropped square-ish and given to MediaPipe Pose (one person per run)."""
        o = self.options
        with silenced_native_stderr():
            mask = self._segmentation().process(image).segmentation_mask
        boxes = detect.mask_boxes(np.asarray(mask) > 0.5, o.person_min_fraction)
        if first is not None:
            seen = first[first[:, 2] >= o.pose_min_visibility, :2]
            boxes = boxes[~np.any(detect.points_in_boxes(seen, boxes), axis=0)]
        people = []
        for i, box in enumerate(boxes[: o.max_people]):
            x1, y1, x2, y2 = np.round(box)
            if min(x2 - x1, y2 - y1) < 32:
                continue
            pose = self._pose_in(views.crop_view(image, np.array([x1, y1, x2, y2]), f"person{i}"))
            if pose is not None:
                people.append(pose)
        return people

    def _person_regions(self, image: np.ndarray, found: list[HandPrediction]) -> list[tuple[regions.Region, str]]:
        """Regions around the pose wrists that no found hand explains, turned along the forearm.

        MediaPipe Pose on the whole photo first (one person); on photos of ``tile_min_side`` or
        more, while the found hands and these wrists leave hands to find, also on every other
        person of the selfie-segmentation mask (:meth:`_people`).
        """
        first = self._pose_in(views.identity_view(image))
        out = [] if first is None else wrist_regions(first, found, self.options.pose_min_visibility)
        if (self.options.max_people and max(image.shape[:2]) >= self.options.tile_min_side
                and len(found) + len(out) < self.options.max_hands):
            for k, pose in enumerate(self._people(image, first)):
                out += [(region, f"{tag}{k + 1}")
                        for region, tag in wrist_regions(pose, found, self.options.pose_min_visibility)]
        return out

    def _pair_regions(self, hand: HandPrediction, width: int, height: int
                      ) -> list[tuple[regions.Region, str]]:
        """Regions beside and on a found hand (the other hand of a pair), centres inside the photo."""
        return [(region, "pair") for region in regions.pair_regions(hand.keypoints_2d, self.options.pair_offset)
                if 0 <= region.center[0] <= width and 0 <= region.center[1] <= height]

    def _painted_pair_search(self, image: np.ndarray, anchors: list[HandPrediction], found: list[HandPrediction]
                             ) -> tuple[list[HandPrediction], int]:
        """The hand an anchor covers: the palm detector on a copy of the photo with every found hand
        painted out (:func:`~handpose.models.regions.paint_out`), in a window of ``pair_paint_window``
        x the anchor's box side on it; its best ``pair_paint_palms`` palms scoring
        ``pair_paint_confidence`` or more go to the region verifier on the painted copy
        (``"landmarks:pair-painted"``); a hand with more than ``pair_paint_max_covered`` of its
        keypoints on painted pixels (guessed, not seen) is dropped. Anchors smaller than
        ``pair_paint_min_hand`` of the photo's longer side are skipped. Returns the hands and the
        network and detector calls."""
        o = self.options
        sides = [float(np.max(anchor.box_xyxy[2:] - anchor.box_xyxy[:2])) for anchor in anchors]
        # Small hands are a wide shot's: the tiles' business.
        searched = [(anchor, side) for anchor, side in zip(anchors, sides)
                    if side >= o.pair_paint_min_hand * max(image.shape[:2])]
        if not searched:
            return found, 0
        painted = regions.paint_out(image, np.stack([hand.keypoints_2d for hand in found]), o.pair_paint_width)
        detector, calls, network_calls = self._palm_detector(), self._palm_detector().calls, 0
        for anchor, side in searched:
            if len(found) >= o.max_hands:
                break
            middle = (anchor.box_xyxy[:2] + anchor.box_xyxy[2:]) / 2
            palms_found = detector.detect(painted.image, np.r_[middle - o.pair_paint_window * side / 2,
                                                               middle + o.pair_paint_window * side / 2],
                                          min_score=o.pair_paint_confidence, name="pair-painted")
            found, n = self._search_regions(
                painted.image, [(palm.region, "pair-painted") for palm in palms_found[: o.pair_paint_palms]],
                found, o.max_hands, max_iou=o.pair_max_iou,
                accept=lambda hand: painted.covered_fraction(hand.keypoints_2d) <= o.pair_paint_max_covered)
            network_calls += n
        return found, detector.calls - calls + network_calls

    def _search_regions(self, image: np.ndarray, candidates: list[tuple[regions.Region, str]],
                        found: list[HandPrediction], stop_at: int, *, max_iou: float = 1.0,
                        accept: Callable[[regions.RegionHand], bool] | None = None,
                        min_presence: float | None = None, max_plausibility: float | None = None,
                        rereads: list[HandPrediction] | None = None) -> tuple[list[HandPrediction], int]:
        """The landmark network on candidate regions; verified new hands merged into ``found``.

        Verifier: every re-crop scores ``min_presence`` (the option's unless given), the last re-crop
        is stable (``max_drift``), the hand is not one already found, its bones and joint angles are a
        hand's (``max_plausibility``; ``max_plausibility_sure`` at ``sure_presence`` or more; both
        replaced by ``max_plausibility`` when given), its box overlaps no found hand's by ``max_iou``
        or more (IoU), ``accept(hand)`` when given, it is not a second reading of a hand of
        ``rereads`` (mean keypoint distance below ``reread_distance`` of the box side and boxes
        overlapping by IoU 0.3), and :meth:`_merge`'s layout checks and duplicate suppression.
        """
        o = self.options
        h, w = image.shape[:2]
        net = self._network()
        calls = net.calls
        for region, tag in candidates:
            if len(found) >= stop_at:
                break
            exclude = np.stack([hand.keypoints_2d for hand in found]) if found else None
            presence = o.min_presence if min_presence is None else min_presence
            hand = net.refine(image, region, o.region_steps, presence, o.max_drift, exclude)
            if hand is None:
                continue
            # A sure, stable hand whose 3D reading is off (foreshortened, partly hidden) may fail more.
            limit = o.max_plausibility_sure if hand.presence >= o.sure_presence else o.max_plausibility
            limit = limit if max_plausibility is None else max_plausibility
            if regions.plausibility_failures(hand) > limit or (accept is not None and not accept(hand)):
                continue
            box = np.r_[hand.keypoints_2d.min(0), hand.keypoints_2d.max(0)]
            if found and np.any(detect.box_iou(box, np.stack([other.box_xyxy for other in found]))[0] >= max_iou):
                continue
            if rereads:
                close = detect.keypoint_distance(hand.keypoints_2d[None], np.stack([old.keypoints_2d for old in rereads]))
                overlap = detect.box_iou(box, np.stack([old.box_xyxy for old in rereads]))
                if np.any((close[0] < o.reread_distance) & (overlap[0] > 0.3)):
                    continue
            new = HandPrediction(keypoints_2d=hand.keypoints_2d, keypoints_3d=hand.keypoints_3d,
                                 handedness=hand.handedness, score=hand.presence, source=f"landmarks:{tag}")
            found = self._merge(found + [new], w, h)
        return found, net.calls - calls

    def _wide_or_sure(self, hand: regions.RegionHand) -> bool:
        """A scan hand, which nothing but the landmark network vouches for, is sure
        (``sure_presence``) or shows a palm at least ``scan_min_spread`` wide, not edge-on (a
        forearm is read as an edge-on hand)."""
        return (hand.presence >= self.options.sure_presence
                or regions.palm_spread(hand.keypoints_2d) >= self.options.scan_min_spread)

    def _tile_windows(self, width: int, height: int) -> list[list[tuple[np.ndarray, float, str]]]:
        """The tile stage's passes of ``(box, 0, name)`` windows: ``grid x grid`` tiles and squares of
        ``coarse_tile_side`` (at most 0.6 of the photo's longer side, at least a quarter of it: 2 x 2
        windows on photos of 480-850 px, at most 5 x 4 on large ones), then, on photos at least twice
        as large, squares of ``fine_tile_side``; squares at 20 % overlap, at most ``fine_tile_max``
        of them."""
        o = self.options
        passes = [[(box, 0.0, f"tile{grid}x{grid}-{i}") for grid in o.tile_grids
                   for i, box in enumerate(views.tile_boxes(width, height, grid, o.tile_overlap))], []]
        longer = max(width, height)
        # Coarse windows: coarse_tile_side, at most 0.6 of a smaller photo (2 x 2 windows on 480-850 px
        # photos), at least a quarter of a larger one.
        coarse = round(max(min(o.coarse_tile_side, 0.6 * longer), longer / 4)) if o.coarse_tile_side else 0
        for windows, side, least in zip(passes, (coarse, o.fine_tile_side), (coarse / 0.6, 2 * o.fine_tile_side)):
            if side and longer >= least:
                boxes = views.tiles_of_side(width, height, side, 0.2)
                if len(boxes) <= o.fine_tile_max:
                    windows += [(box, 0.0, f"tile{side}-{i}") for i, box in enumerate(boxes)]
        return [windows for windows in passes if windows]

    def _palm_candidates(self, image: np.ndarray, windows: list[tuple[np.ndarray | None, float, str]],
                         found: list[HandPrediction], confidence: float) -> list[tuple[regions.Region, str, float]]:
        """Start regions for the region verifier from the palms scoring ``confidence`` or more in
        ``windows`` (``(box, or None for the whole photo; turn in degrees; name)``, see
        :func:`handpose.models.palms.letterbox_view`).

        Palms a found hand explains are skipped (box centre in its box, or hand region centred within
        a quarter of the side of the hand's own region, :func:`~handpose.models.regions.region_from_keypoints`);
        one per place (best score first, box IoU 0.3 across windows), best ``low_palms``. A palm that
        is small in its window is looked at again, zoomed in: the detector on a window of
        ``palm_zoom`` x its side, where it turns the hand right more often; both regions are returned
        (the zoomed one first), since neither alone is reliable.

        Returns:
            ``(region, window name, palm score)`` per start.
        """
        o = self.options
        detector = self._palm_detector()
        h, w = image.shape[:2]
        candidates, window_side = [], {}
        for box, angle, name in windows:
            window_side[name] = max(w, h) if box is None else float(np.max(box[2:] - box[:2]))
            candidates += detector.detect(image, box, angle, min_score=confidence, name=name)
        boxes = np.array([hand.box_xyxy for hand in found]).reshape(-1, 4)
        known = [regions.region_from_keypoints(hand.keypoints_2d) for hand in found]
        kept: list[palms.Palm] = []
        for palm in sorted(candidates, key=lambda p: -p.score):
            explained = (np.any(detect.points_in_boxes(palm.center, boxes))
                         or any(np.linalg.norm(palm.region.center - r.center) < 0.25 * r.size for r in known))
            if not explained and all(detect.box_iou(palm.box, other.box)[0, 0] <= 0.3 for other in kept):
                kept.append(palm)
        out = []
        for palm in kept[: o.low_palms]:
            side = o.palm_zoom * float(np.max(palm.box[2:] - palm.box[:2]))
            if side <= 0.75 * window_side[palm.view]:  # zooming in magnifies it
                zoomed = [z for z in detector.detect(image, np.r_[palm.center - side / 2, palm.center + side / 2],
                                                     min_score=confidence, name=palm.view)
                          if detect.box_iou(z.box, palm.box)[0, 0] > 0.1]
                if zoomed:
                    out.append((max(zoomed, key=lambda z: z.score).region, palm.view, palm.score))
            out.append((palm.region, palm.view, palm.score))
        return out

    # -- public -------------------------------------------------------------------------------

    def _merge(self, hands: list[HandPrediction], width: int, height: int) -> list[HandPrediction]:
        o = self.options
        hands = [hand for hand in hands if detect.layout_is_plausible(
            hand.keypoints_2d, hand.keypoints_3d, width, height, o.min_hand_side_px, o.min_inside_fraction)]
        if not hands:
            return []
        nested = detect.nested_in_larger(np.stack([hand.box_xyxy for hand in hands]))
        if o.finger_ratio:
            nested |= detect.beside_larger(np.stack([hand.keypoints_2d for hand in hands]), o.finger_ratio,
                                           o.finger_distance)
        hands = [hand for hand, inner in zip(hands, nested) if not inner]
        keep = detect.suppress_duplicates(np.stack([hand.keypoints_2d for hand in hands]),
                                          np.array([hand.score for hand in hands]),
                                          o.duplicate_distance, o.duplicate_iou)
        return [hands[i] for i in keep]

    def _verified(self, image: np.ndarray, hands: list[HandPrediction]) -> list[HandPrediction]:
        """Palm-detector hands whose re-crop (MediaPipe's landmarks -> region rule) the landmark
        network scores at least ``min_presence``; the presence is kept in ``extras["presence"]``.
        Rejects, e.g., food or patterned objects the palm detector took for a hand."""
        if not self.options.use_regions:
            return hands
        for hand in hands:
            hand.extras["presence"] = self._network().run(
                image, regions.region_from_keypoints(hand.keypoints_2d)).presence
        return [hand for hand in hands if hand.extras["presence"] >= self.options.min_presence]

    def _needs_more(self, hands: list[HandPrediction], longer_side: int) -> bool:
        """More hands may be hiding: fewer than ``max_hands`` and some found hand is small or unsure
        (or none was found)."""
        o = self.options
        if len(hands) >= o.max_hands:
            return False
        if not hands:
            return True
        return any(hand.score < o.confident_score or self._is_small(hand, longer_side) for hand in hands)

    def _is_small(self, hand: HandPrediction, longer_side: int) -> bool:
        """The hand's box side is below ``small_hand_fraction`` of the photo's longer side (a wide shot's hand)."""
        return bool(np.ptp(hand.keypoints_2d, axis=0).max() < self.options.small_hand_fraction * longer_side)

    def predict(self, image: np.ndarray) -> list[HandPrediction]:
        """Hands in one photo, best score first.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.

        Returns:
            Up to ``options.max_hands`` :class:`~handpose.prediction.HandPrediction`, each with
            ``extras["views"]`` the number of views and network runs on this photo, and for
            ``full``-view hands ``extras["presence"]`` (the landmark network's re-score).
        """
        image = check_image(image)
        o = self.options
        h, w = image.shape[:2]
        longer = max(h, w)
        found = self._merge(self._verified(image, self._run_view(
            views.identity_view(image), o.max_hands, o.min_detection_confidence, o.min_score)), w, h)
        views_run = 1 + len(found) * o.use_regions

        def palm_search(windows: list[tuple[np.ndarray | None, float, str]], confidence: float, stop_at: int,
                        pixels: np.ndarray = image) -> None:
            nonlocal found, views_run
            before, detector_calls = found, self._palm_detector().calls  # a second reading of these is no new hand
            candidates = self._palm_candidates(pixels, windows, found, confidence)
            # A palm as sure as the full view's (min_detection_confidence) is MediaPipe's own
            # acceptance, as in its graph: no anatomy check (the network's 3D reading of a fist, say,
            # often fails it); lower palms need the whole verifier.
            sure = [(region, tag) for region, tag, score in candidates if score >= o.min_detection_confidence]
            found, calls = self._search_regions(pixels, sure, found, stop_at, min_presence=o.palm_min_presence,
                                                max_plausibility=1.0, rereads=before)
            views_run += calls
            unsure = [(region, tag) for region, tag, score in candidates if score < o.min_detection_confidence]
            found, calls = self._search_regions(pixels, unsure, found, stop_at, min_presence=o.palm_min_presence,
                                                rereads=before)
            views_run += self._palm_detector().calls - detector_calls + calls

        if o.use_regions and o.low_palms and len(found) < o.max_hands:
            palm_search([(None, 0.0, "palms")], o.low_palm_confidence, o.max_hands)
        if o.rescue and o.use_regions and not found:
            if longer < o.tile_min_side:  # turned views; the tile stage searches large photos
                palm_search([(None, float(a), f"rot{a}") for a in o.rotations], o.rescue_detection_confidence, 1)
            if not found and detect.is_greyscale(image):
                palm_search([(None, 0.0, "contrast")], o.rescue_detection_confidence, 1, detect.enhance_contrast(image))
        searched_pairs: set[int] = set()

        def pair_search() -> None:
            nonlocal found, views_run
            if not o.use_regions or len(found) >= o.max_hands:
                return
            anchors = [hand for hand in found if id(hand) not in searched_pairs]
            searched_pairs.update(id(hand) for hand in found)
            candidates = [item for anchor in anchors for item in self._pair_regions(anchor, w, h)]
            before = len(found)
            found, calls = self._search_regions(image, candidates, found, o.max_hands, max_iou=o.pair_max_iou)
            views_run += calls
            if o.pair_paint and anchors and len(found) == before and len(found) < o.max_hands:
                found, calls = self._painted_pair_search(image, anchors, found)
                views_run += calls

        pair_search()
        if o.use_pose and o.use_regions and self._needs_more(found, longer):
            found, calls = self._search_regions(image, self._person_regions(image, found), found, o.max_hands)
            views_run += 1 + calls
            pair_search()
        if o.use_regions and longer >= o.tile_min_side and self._needs_more(found, longer):
            for windows in self._tile_windows(w, h):  # coarse, then fine while no hand is found
                palm_search(windows, o.fine_tile_confidence, o.max_hands)
                if found:
                    break
            pair_search()
        # The scan: fewer than two hands (one person's), none small (a wide shot, which the tiles handle).
        if (o.scan and o.use_regions and len(found) < min(2, o.max_hands)
                and not any(self._is_small(hand, longer) for hand in found)):
            boxes = np.array([hand.box_xyxy for hand in found]).reshape(-1, 4)
            # With a hand found, the other hand of the same person is about as large: its region size only.
            own = regions.region_from_keypoints(found[0].keypoints_2d).size / min(w, h) if found else 0.0
            sizes = tuple(float(np.clip(k * own, 0.25, 1.0)) for k in o.scan_found_scales) if found else o.scan_sizes
            scan = regions.scan_regions(w, h, sizes, o.scan_step, o.scan_margin, boxes, o.scan_max_covered,
                                        o.scan_turns)
            found, calls = self._search_regions(image, [(region, "scan") for region in scan], found,
                                                min(2, o.max_hands), accept=self._wide_or_sure)
            views_run += calls
            pair_search()
        # Continuous pixels (photo spans [0, W]) -> the package's pixel centres: u = x - 0.5.
        out = []
        for hand in found[: o.max_hands]:
            hand = to_pixel_centres(hand)
            hand.extras["views"] = views_run
            out.append(hand)
        return out


class MediaPipeTracker:
    """MediaPipe Hands in video mode, for consecutive frames: the graph crops each frame around the
    previous frame's landmarks and runs its palm detector only when a hand is lost (MediaPipe's own
    tracking; no rescue stages or region search). Outputs are in pixel centres like
    :class:`MediaPipeEstimator`'s.

    Uses ``options``' ``max_hands``, ``model_complexity``, ``min_detection_confidence``,
    ``min_score`` and ``mirrored_input``.
    """

    name = "mediapipe:track"

    def __init__(self, options: MediaPipeOptions | None = None) -> None:
        self.options = options or MediaPipeOptions()
        self._graph: Any = None

    def __enter__(self) -> "MediaPipeTracker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the MediaPipe graph."""
        if self._graph is not None:
            with silenced_native_stderr():
                self._graph.close()
            self._graph = None

    def predict(self, frame: np.ndarray) -> list[HandPrediction]:
        """Hands in the next ``(H, W, 3)`` uint8 RGB frame, in MediaPipe's order."""
        frame = check_image(frame)
        o = self.options
        if self._graph is None:
            import mediapipe as mp

            self._graph = open_graph(lambda: mp.solutions.hands.Hands(
                static_image_mode=False, max_num_hands=o.max_hands, model_complexity=o.model_complexity,
                min_detection_confidence=o.min_detection_confidence, min_tracking_confidence=0.5))
        with silenced_native_stderr():
            result = self._graph.process(frame)
        h, w = frame.shape[:2]
        hands = [HandPrediction(hand.keypoints_2d, hand.keypoints_3d, hand.handedness, hand.score, source=self.name)
                 for hand in read_landmarks(result, w, h, o.mirrored_input) if hand.score >= o.min_score]
        return [to_pixel_centres(hand) for hand in hands[:o.max_hands]]
