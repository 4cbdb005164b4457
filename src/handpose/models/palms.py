"""MediaPipe's palm detector run directly on any square window of the photo, every anchor's score visible.

MediaPipe Hands finds palms with an SSD detector (``palm_detection_full.tflite``, shipped in the
``mediapipe`` wheel), then runs its landmark network on a crop around each palm. Its graph hides
the detector's scores below its threshold and costs a landmark run per palm. This module runs the
detector alone through a TFLite interpreter (``ai-edge-litert``), with the configuration of
MediaPipe's public graph ``palm_detection_cpu.pbtxt`` and ``palm_detection_detection_to_roi.pbtxt``:

* input ``(1, 192, 192, 3)`` float32 RGB in ``[0, 1]``: a square window of the photo (the whole
  photo letterboxed, a tile, a turned photo), resampled once with ``cv2.warpAffine``
  (:func:`letterbox_view`); outside the photo is black;
* outputs ``(1, 2016, 18)`` regressors and ``(1, 2016, 1)`` logits, one per SSD anchor
  (:func:`ssd_anchors`): box ``(dx, dy, w, h)`` then 7 keypoints ``(dx, dy)``, input pixels
  relative to the anchor centre (:func:`decode`); score ``sigmoid(clip(logit, +-100))``;
* weighted non-max suppression at IoU 0.3 (:func:`weighted_nms`);
* the hand's region (:func:`palm_region`): turned so that keypoint 0 (wrist) -> keypoint 2
  (middle-finger MCP) points up, shifted half the box height towards the fingers, a square of
  2.6 x the box's longer side: what :class:`handpose.models.regions.LandmarkNetwork` runs on.

Coordinates are continuous photo pixels like :mod:`handpose.views` and
:mod:`handpose.models.regions` (the photo spans ``[0, W] x [0, H]``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handpose import detect, views
from handpose.models import tflite
from handpose.models.regions import Region, upright_angle
from handpose.views import View

#: Side of the palm detector's square input, pixels.
INPUT_SIZE = 192
#: SSD anchor layers: feature-map strides (layers of equal stride share a feature map).
STRIDES = (8, 16, 16, 16)
#: Palm keypoints: 0 wrist centre, 2 middle-finger MCP (the hand's axis).
NUM_KEYPOINTS = 7
PALM_WRIST, PALM_MIDDLE_MCP = 0, 2
#: MediaPipe's palm -> hand region rule: side = 2.6 x the box's longer side, centre moved half the
#: box height towards the fingers.
REGION_SCALE = 2.6
REGION_SHIFT = 0.5
#: Logits are clipped to +-this before the sigmoid.
SCORE_CLIP = 100.0


def ssd_anchors(input_size: int = INPUT_SIZE, strides: tuple[int, ...] = STRIDES, offset: float = 0.5) -> np.ndarray:
    """``(N, 2)`` anchor centres in input pixels, in the detector's output order.

    MediaPipe's ``SsdAnchorsCalculator`` with one aspect ratio (1), the interpolated scale on and a
    fixed anchor size: every layer puts 2 anchors on each cell of its feature map
    (``ceil(input_size / stride)`` cells a side), layers of equal stride share one map, and anchors
    run row by row, cell by cell, the cell's anchors together. Centre of cell ``(i, j)``:
    ``((j + offset) stride', (i + offset) stride')`` with ``stride' = input_size / cells``. The
    box sizes are not needed (fixed size: widths and heights are regressed in input pixels).
    For the palm detector: 24 x 24 x 2 + 12 x 12 x 6 = 2016.
    """
    if input_size < 1 or not strides or min(strides) < 1:
        raise ValueError(f"input_size and strides must be positive, got {input_size}, {strides}")
    out = []
    layer = 0
    while layer < len(strides):
        same = 1
        while layer + same < len(strides) and strides[layer + same] == strides[layer]:
            same += 1
        cells = int(np.ceil(input_size / strides[layer]))
        step = input_size / cells
        ys, xs = np.meshgrid((np.arange(cells) + offset) * step, (np.arange(cells) + offset) * step, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, 2 * same, axis=0))
        layer += same
    return np.concatenate(out)


def decode(raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detector's raw outputs -> boxes, keypoints and scores in input pixels.

    Args:
        raw: ``(N, 18)`` regressors: box centre offset, width, height ``(dx, dy, w, h)``, then 7
            keypoint offsets ``(dx, dy)``, input pixels (offsets from the anchor centre).
        logits: ``(N,)`` or ``(N, 1)`` score logits.
        anchors: ``(N, 2)`` anchor centres, input pixels (:func:`ssd_anchors`).

    Returns:
        ``boxes`` ``(N, 4)`` ``[x1, y1, x2, y2]``, ``keypoints`` ``(N, 7, 2)``, input continuous
        pixels, and ``scores`` ``(N,)`` ``= sigmoid(clip(logit, -100, 100))``.
    """
    raw = np.asarray(raw, dtype=np.float64)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    anchors = np.asarray(anchors, dtype=np.float64)
    n = len(anchors)
    if raw.shape != (n, 4 + 2 * NUM_KEYPOINTS) or logits.shape != (n,) or anchors.shape != (n, 2):
        raise ValueError(f"expected raw (N, {4 + 2 * NUM_KEYPOINTS}), logits (N,) and anchors (N, 2), "
                         f"got {raw.shape}, {logits.shape}, {anchors.shape}")
    centre = raw[:, :2] + anchors
    half = raw[:, 2:4] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4:].reshape(n, NUM_KEYPOINTS, 2) + anchors[:, None, :]
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -SCORE_CLIP, SCORE_CLIP)))
    return boxes, keypoints, scores


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-max suppression.

    Best score first: the detections overlapping it by more than ``iou_threshold`` (itself
    included) are merged into one whose box and keypoints are their score-weighted mean and whose
    score is the best's; the rest go on.

    Args:
        boxes: ``(N, 4)`` ``[x1, y1, x2, y2]``; keypoints ``(N, K, 2)``; scores ``(N,)``.

    Returns:
        ``(M, 4)`` boxes, ``(M, K, 2)`` keypoints, ``(M,)`` scores, best first.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[2] != 2 or not len(boxes) == len(scores) == len(keypoints):
        raise ValueError(f"expected boxes (N, 4), keypoints (N, K, 2), scores (N,), "
                         f"got {boxes.shape}, {keypoints.shape}, {scores.shape}")
    order = np.argsort(-scores, kind="stable")
    out_boxes, out_keypoints, out_scores = [], [], []
    while len(order):
        merged = detect.box_iou(boxes[order[0]], boxes[order])[0] > iou_threshold
        merged[0] = True  # the best itself, even a degenerate box (IoU 0 with itself)
        group, order = order[merged], order[~merged]
        total = scores[group].sum()
        weights = scores[group] / total if total > 0 else np.full(len(group), 1.0 / len(group))
        out_boxes.append(weights @ boxes[group])
        out_keypoints.append(np.tensordot(weights, keypoints[group], axes=1))
        out_scores.append(scores[group[0]])
    k = keypoints.shape[1]
    return (np.array(out_boxes).reshape(-1, 4), np.array(out_keypoints).reshape(-1, k, 2),
            np.array(out_scores).reshape(-1))


def palm_region(box: np.ndarray, wrist: np.ndarray, middle_mcp: np.ndarray, scale: float = REGION_SCALE,
                shift: float = REGION_SHIFT) -> Region:
    """MediaPipe's hand region for a palm (``palm_detection_detection_to_roi.pbtxt``).

    Turned so that ``wrist -> middle_mcp`` points up; centre = box centre moved ``shift`` x the
    box height along that direction; side = ``scale`` x the box's longer side.

    Args:
        box: ``(4,)`` ``[x1, y1, x2, y2]`` of the palm, pixels of the window it was found in
            (already scaled to photo pixels: the region is in the same pixels).
        wrist, middle_mcp: ``(2,)`` palm keypoints 0 and 2, same pixels.
    """
    box = np.asarray(box, dtype=np.float64).reshape(4)
    axis = np.asarray(middle_mcp, dtype=np.float64) - np.asarray(wrist, dtype=np.float64)
    length = float(np.linalg.norm(axis))
    up = axis / length if length > 0 else np.array([0.0, -1.0])
    width, height = box[2] - box[0], box[3] - box[1]
    centre = (box[:2] + box[2:]) / 2.0 + shift * height * up
    return Region(centre, scale * max(width, height, 1e-6), upright_angle(up))


def letterbox_view(image: np.ndarray, box: np.ndarray | None = None, angle_deg: float = 0.0,
                   size: int = INPUT_SIZE, name: str = "palms") -> View:
    """The square of side ``max(w, h)`` centred on ``box`` (default: the whole photo), turned by
    ``angle_deg`` (counter-clockwise as displayed), resampled into ``size x size`` in one
    ``cv2.warpAffine``: MediaPipe's letterbox (keep aspect, pad equally, black outside the photo)
    for the whole photo; ``p_view = s R (p - c) + size / 2`` with ``s = size / max(w, h)``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        box: ``(4,)`` ``[x1, y1, x2, y2]`` continuous photo pixels.
    """
    h, w = image.shape[:2]
    box = np.array([0.0, 0.0, w, h]) if box is None else np.asarray(box, dtype=np.float64).reshape(4)
    side = float(max(box[2] - box[0], box[3] - box[1]))
    if not side > 0:
        raise ValueError(f"box must have a positive side, got {box}")
    return views.square_crop_view(image, (box[:2] + box[2:]) / 2.0, side, size, angle_deg, name)


@dataclass(frozen=True)
class Palm:
    """One palm the detector found, in photo continuous pixels.

    Attributes:
        score: detector score in ``[0, 1]``.
        box: ``(4,)`` ``[x1, y1, x2, y2]``, the photo's axis-aligned box of the palm box's corners.
        keypoints: ``(7, 2)`` palm keypoints (0 wrist, 2 middle-finger MCP).
        region: the hand's region for the landmark network (:func:`palm_region`).
        view: name of the window it was found in.
    """

    score: float
    box: np.ndarray
    keypoints: np.ndarray
    region: Region
    view: str = "palms"

    @property
    def center(self) -> np.ndarray:
        """``(2,)`` centre of :attr:`box`."""
        return (self.box[:2] + self.box[2:]) / 2.0


def to_photo(view: View, boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> list[Palm]:
    """Palms found in ``view`` (input pixels: ``(M, 4)`` boxes, ``(M, 7, 2)`` keypoints, ``(M,)``
    scores) mapped back to the photo, each with its hand region."""
    scale = float(np.sqrt(abs(np.linalg.det(view.matrix[:, :2]))))  # view pixels per photo pixel
    palms = []
    for box, kp, score in zip(boxes, keypoints, scores):
        corners = view.to_photo(np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]]))
        kp_photo = view.to_photo(kp)
        centre = view.to_photo((box[:2] + box[2:]) / 2.0)
        half = (box[2:] - box[:2]) / (2.0 * scale)  # the box in the view's axes, photo pixels
        region = palm_region(np.r_[centre - half, centre + half], kp_photo[PALM_WRIST], kp_photo[PALM_MIDDLE_MCP])
        palms.append(Palm(float(score), np.r_[corners.min(0), corners.max(0)], kp_photo, region, view.name))
    return palms


class PalmDetector:
    """MediaPipe's full palm detector on square windows of a photo (TFLite, CPU).

    Example:
        >>> detector = PalmDetector()  # doctest: +SKIP
        >>> palms = detector.detect(image, min_score=0.5)  # doctest: +SKIP
        >>> hand = LandmarkNetwork().run(image, palms[0].region)  # doctest: +SKIP
    """

    def __init__(self, model_path: str | Path | None = None, num_threads: int = 1) -> None:
        path = Path(model_path) if model_path is not None else tflite.bundled_model("palm_detection",
                                                                                   "palm_detection_full.tflite")
        self._interpreter, self._input, outputs = tflite.open_interpreter(path, INPUT_SIZE, num_threads)
        # Identity: regressors (1, 2016, 18); Identity_1: logits (1, 2016, 1).
        self._raw, self._logits = outputs["Identity"], outputs["Identity_1"]
        self._anchors = ssd_anchors()
        self._buffer = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32)
        self.calls = 0

    def raw(self, view: View) -> tuple[np.ndarray, np.ndarray]:
        """``(2016, 18)`` regressors and ``(2016,)`` logits on a ``(192, 192, 3)`` uint8 view."""
        if view.image.shape != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"the view must be ({INPUT_SIZE}, {INPUT_SIZE}, 3), got {view.image.shape}")
        np.multiply(view.image, np.float32(1.0 / 255.0), out=self._buffer[0])
        self._interpreter.set_tensor(self._input, self._buffer)
        self._interpreter.invoke()
        self.calls += 1
        return (self._interpreter.get_tensor(self._raw).reshape(len(self._anchors), -1),
                self._interpreter.get_tensor(self._logits).reshape(-1))

    def detect_view(self, view: View, min_score: float = 0.5, iou_threshold: float = 0.3,
                    max_palms: int | None = None) -> list[Palm]:
        """Palms scoring at least ``min_score`` in a letterboxed view (:func:`letterbox_view`), best
        first, after weighted NMS (at most ``max_palms``), in photo pixels."""
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        raw, logits = self.raw(view)
        # sigmoid(l) >= p  <=>  l >= log(p / (1 - p)): decode only the anchors above the threshold.
        threshold = -np.inf if min_score <= 0 else (np.inf if min_score >= 1 else np.log(min_score / (1 - min_score)))
        keep = np.flatnonzero(logits >= threshold)
        if not len(keep):
            return []
        boxes, keypoints, scores = weighted_nms(*decode(raw[keep], logits[keep], self._anchors[keep]), iou_threshold)
        return to_photo(view, boxes[:max_palms], keypoints[:max_palms], scores[:max_palms])

    def detect(self, image: np.ndarray, box: np.ndarray | None = None, angle_deg: float = 0.0,
               min_score: float = 0.5, iou_threshold: float = 0.3, max_palms: int | None = None,
               name: str = "palms") -> list[Palm]:
        """Palms in the window ``box`` of an ``(H, W, 3)`` uint8 RGB photo (default: all of it),
        turned by ``angle_deg``; see :func:`letterbox_view` and :meth:`detect_view`."""
        return self.detect_view(letterbox_view(image, box, angle_deg, name=name), min_score, iou_threshold,
                                max_palms)

    def close(self) -> None:
        """Release the interpreter."""
        self._interpreter = None
