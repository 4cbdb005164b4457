"""The ICCV 2021 network behind the project's estimator interface (``list[HandPrediction]``).

Per photo: a 256 x 256 crop (the detected hands' box, square x1.25, or the whole photo padded as
the authors' demo), one forward pass, then per hand (the network always returns both):

* ``keypoints_3d``: final-stage MANO joints in the course order, mm, wrist at the origin;
  ``vertices`` (778, 3) with the same offset, ``faces`` (1538, 3).
* ``keypoints_2d``: the 3D joints registered to the heatmap argmax keypoints by the network's own
  least-squares scale + translation (:func:`handpose.heatmap.fit_scale_translation`), then
  64 grid -> 256 crop (x4, InterNet's convention) -> photo pixels.
* ``score``: mean heatmap peak / 255 (InterNet's training targets peak at 255), clipped to [0, 1].

The network always returns both hands; :class:`ICCV21Estimator` keeps a hand only when the
network's own evidence says it is there (hand-type probability and heatmap peaks, see
:mod:`.evidence`), and warns when a kept hand fails the registration self-check. Photos are run
``batch_size`` at a time (:meth:`ICCV21Estimator.predict_batch`), on ``device`` (``"auto"``: CUDA
when available).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from handpose.alignment import fit_scale_translation
from handpose.keypoints import MIDDLE_MCP, NUM_KEYPOINTS, WRIST
from handpose.models.iccv21.checkpoint import CHECKPOINT_FILES, SOURCES, load_iccv21
from handpose.models.iccv21.evidence import MIN_HAND_TYPE_PROB, MIN_PEAK_SCORE, hand_evidence, self_check_message
from handpose.models.iccv21.mano_layers import Release
from handpose.models.iccv21.network import HEATMAP_SIZE, ICCV21Net, ICCV21Output
from handpose.models.iccv21.preprocess import INPUT_SIZE, CropTransform, box_transform, crop_image, demo_transform, to_tensor
from handpose.prediction import HandPrediction
from handpose.paths import find_weights_dir

_HANDS = (("right", 0), ("left", 1))
DEVICES = ("auto", "cpu", "cuda")
logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as given.

    Raises:
        ValueError: an unknown device, or CUDA asked for where torch has none (a CPU build of
            torch, or no GPU visible).
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}") from err
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available (torch {torch.__version__}); "
                             "use --device cpu or auto")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return resolved


@dataclass(frozen=True)
class ICCV21Options:
    """Options of :class:`ICCV21Estimator` (all of them part of the prediction cache's key).

    Attributes:
        weights_dir: folder with the checkpoint (and MANO's pickles if it carries no MANO
            arrays); ``None``: ``$HANDPOSE_WEIGHTS`` or the repository's ``weights/``.
        release: ``"v2"``, ``"v1"`` or ``None`` (whichever checkpoint is there, v2 first).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        batch_size: photos per forward pass in :meth:`ICCV21Estimator.predict_batch` (>= 1).
        min_hand_type_prob: a hand is kept when InterNet's hand-type probability is at least this
            (:data:`.evidence.MIN_HAND_TYPE_PROB`) ...
        min_peak_score: ... and its mean heatmap peak / 255 at least this (:data:`.evidence.MIN_PEAK_SCORE`).
        keep_absent: return both hands anyway (``extras["present"]`` says which are there).
    """

    weights_dir: str | None = None
    release: Release | None = None
    device: str = "auto"
    batch_size: int = 8
    min_hand_type_prob: float = MIN_HAND_TYPE_PROB
    min_peak_score: float = MIN_PEAK_SCORE
    keep_absent: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        for name in ("min_hand_type_prob", "min_peak_score"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.release not in (None, "v1", "v2"):
            raise ValueError(f"release must be 'v1', 'v2' or None, got {self.release!r}")


def find_checkpoint(weights_dir: str | os.PathLike, release: Release | None = None) -> Path:
    """The checkpoint file in ``weights_dir`` (v2 preferred when ``release`` is ``None``).

    Raises:
        FileNotFoundError: naming the expected file(s) and where they come from.
    """
    folder = Path(weights_dir)
    releases: tuple[Release, ...] = ("v2", "v1") if release is None else (release,)
    for rel in releases:
        if rel not in CHECKPOINT_FILES:
            raise ValueError(f"release must be 'v1' or 'v2', got {rel!r}")
        path = folder / CHECKPOINT_FILES[rel]
        if path.is_file():
            return path
    wanted = " or ".join(f"{CHECKPOINT_FILES[r]} (release {r}, from {SOURCES[r]})" for r in releases)
    raise FileNotFoundError(f"ICCV21 checkpoint not found in {folder}: expected {wanted}; see weights/README.md")


def place_left_hand(right_joints: np.ndarray, left_joints: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """The left hand's joints in the right hand's frame, mm (the authors' demo, in mm).

    With ``n(X) = (X - X_mcp) / |X_mcp - X_wrist|`` (course order, middle MCP root):
    ``n_R(left) = (n_L(left) + d) exp(s)`` for ``trans = [s, d]``, so
    ``left = L_R (n_L(left) + d) exp(s) + R_mcp``.

    Args:
        right_joints, left_joints: ``(21, 3)`` course order, mm, any origin each.
        trans: ``(4,)`` ``[s, dx, dy, dz]``.
    """
    right_len = np.linalg.norm(right_joints[MIDDLE_MCP] - right_joints[WRIST])
    left_len = np.linalg.norm(left_joints[MIDDLE_MCP] - left_joints[WRIST])
    left_norm = (left_joints - left_joints[MIDDLE_MCP]) / left_len
    return right_len * (left_norm + trans[1:]) * np.exp(trans[0]) + right_joints[MIDDLE_MCP]


def hands_from_output(
    out: ICCV21Output, faces: dict[str, np.ndarray], transform: CropTransform, index: int = 0, source: str = "iccv21",
    min_hand_type_prob: float = MIN_HAND_TYPE_PROB, min_peak_score: float = MIN_PEAK_SCORE,
) -> list[HandPrediction]:
    """Both hands of batch item ``index`` as :class:`HandPrediction` ``[right, left]``.

    Args:
        out: the network's output.
        faces: ``{"right": (1538, 3), "left": (1538, 3)}`` MANO triangles.
        transform: the photo -> crop transform used for this item.
        min_hand_type_prob, min_peak_score: presence thresholds (:func:`.evidence.hand_evidence`).

    Each hand's ``extras``: ``heatmap_keypoints_2d`` (21, 2) px, ``heatmap_peaks`` (21,),
    ``hand_type_prob``, ``evidence`` (:class:`.evidence.HandEvidence`), ``present`` (bool),
    ``trans`` (4,), and for the left hand ``keypoints_3d_from_right_wrist`` (21, 3) mm (which
    means something only when both hands are present).
    """
    course = list(out.course_from_native)
    grid_to_crop = INPUT_SIZE / HEATMAP_SIZE
    joints_course: dict[str, np.ndarray] = {}
    hands = []
    for side, k in _HANDS:
        stages = out.right if side == "right" else out.left
        joints = stages.joints[index : index + 1, -1]  # (1, 21, 3) native order
        xyc = out.xyc[index : index + 1, k * NUM_KEYPOINTS : (k + 1) * NUM_KEYPOINTS]  # (1, 21, 3)
        # uv = s J_xy + t, least squares weighted by the peak values (the network's registration)
        uv_grid = fit_scale_translation(xyc, joints).apply(joints)  # (1, 21, 2)
        keypoints_2d = transform.to_image(uv_grid[0].detach().cpu().numpy() * grid_to_crop)[course]
        argmax_2d = transform.to_image(xyc[0, :, :2].cpu().numpy() * grid_to_crop)[course]
        joints_mm = joints[0].detach().cpu().numpy().astype(np.float64)[course]
        wrist = joints_mm[WRIST].copy()
        joints_course[side] = joints_mm
        peak = xyc[0, :, 2].cpu().numpy()
        hand_type_prob = float(out.heatmap_output.hand_type[index, k])
        evidence = hand_evidence(xyc[0].cpu().numpy(), joints_mm, course, hand_type_prob,
                                 min_hand_type_prob, min_peak_score)
        hands.append(HandPrediction(
            keypoints_2d=keypoints_2d,
            keypoints_3d=joints_mm - wrist,
            handedness=side,
            score=evidence.peak_score,
            source=source,
            vertices=stages.vertices[index, -1].detach().cpu().numpy().astype(np.float64) - wrist,
            faces=np.asarray(faces[side], dtype=np.int64),
            extras={
                "heatmap_keypoints_2d": argmax_2d,
                "heatmap_peaks": peak[course].astype(np.float64),
                "hand_type_prob": hand_type_prob,
                "evidence": evidence,
                "present": evidence.present,
            },
        ))
    trans = out.trans[index].detach().cpu().numpy().astype(np.float64)
    left_in_right = place_left_hand(joints_course["right"], joints_course["left"], trans)
    hands[1].extras["keypoints_3d_from_right_wrist"] = left_in_right - joints_course["right"][WRIST]
    for hand in hands:
        hand.extras["trans"] = trans
    return hands


@dataclass
class _Detector:
    """The default estimator, used only for its boxes (created on first use)."""

    estimator: object | None = None

    def boxes(self, image: np.ndarray) -> np.ndarray | None:
        try:
            from handpose.models.mediapipe import MediaPipeEstimator
        except ImportError:
            return None
        if self.estimator is None:
            self.estimator = MediaPipeEstimator()
        hands = sorted(self.estimator.predict(image), key=lambda h: -h.score)[:2]  # the network sees two hands
        return np.stack([h.box_xyxy for h in hands]) if hands else None

    def close(self) -> None:
        if self.estimator is not None:
            self.estimator.close()
            self.estimator = None


class ICCV21Estimator:
    """The ICCV 2021 two-hand network on photos.

    Args:
        options: :class:`ICCV21Options` (``None``: the defaults).
        **overrides: fields of :class:`ICCV21Options` to replace, e.g. ``weights_dir=..., device="cpu"``.

    Attributes:
        hands_checked, self_check_failures: present hands run through the registration self-check
            so far, and how many failed it (the first failure is logged as a warning with its
            numbers, the later ones at INFO level).

    Raises:
        FileNotFoundError: a needed file is missing (the message names it and its source).
        CheckpointError: the checkpoint is refused or does not match the release (names the file).
        ValueError: bad options, or CUDA asked for where there is none.
    """

    name = "iccv21"
    options_type = ICCV21Options

    def __init__(self, options: ICCV21Options | None = None, **overrides: object) -> None:
        if options is not None and not isinstance(options, ICCV21Options):
            raise TypeError(f"options must be ICCV21Options, got {type(options).__name__}")
        self.options = dataclasses.replace(options or ICCV21Options(), **overrides)
        self.device = resolve_device(self.options.device)
        folder = find_weights_dir(self.options.weights_dir)
        release = self.options.release
        self.model: ICCV21Net = load_iccv21(find_checkpoint(folder, release), mano_dir=folder, release=release).to(self.device)
        self.release: Release = self.model.release
        self.source = f"iccv21:{self.release}"
        self.faces = {
            side: self.model.mesh_reg.mano_layer[key].faces.cpu().numpy() for side, key in (("right", "r"), ("left", "l"))
        }
        self.hands_checked = 0
        self.self_check_failures = 0
        self._detector = _Detector()

    def __enter__(self) -> "ICCV21Estimator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the default detector (if it was started)."""
        self._detector.close()

    def crop_transform(self, image: np.ndarray, boxes: np.ndarray | None = None) -> CropTransform:
        """The box crop around ``boxes`` ``(N, 4)`` xyxy; if ``None``, the default estimator's
        hands; if none are found (or it is unavailable), the whole photo as the authors' demo."""
        if boxes is None:
            boxes = self._detector.boxes(image)
        if boxes is None or len(boxes) == 0:
            return demo_transform(*image.shape[:2])
        return box_transform(boxes)

    def predict(self, image: np.ndarray, boxes: np.ndarray | None = None) -> list[HandPrediction]:
        """The hands ``[right, left]`` that are there in an ``(H, W, 3)`` uint8 RGB photo (see the
        module docstring)."""
        return self.predict_batch([image], None if boxes is None else [boxes])[0]

    def predict_batch(
        self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray | None] | None = None
    ) -> list[list[HandPrediction]]:
        """:meth:`predict` for several photos, ``options.batch_size`` crops per forward pass.

        Args:
            images: ``(H, W, 3)`` uint8 RGB photos (any sizes).
            boxes: per photo ``(N, 4)`` xyxy hand boxes or ``None`` (see :meth:`crop_transform`).

        Returns:
            One list of hands per photo, in order.
        """
        images = list(images)
        for i, image in enumerate(images):
            if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"image {i} must be an (H, W, 3) uint8 RGB array, got {getattr(image, 'shape', type(image))}")
        boxes = [None] * len(images) if boxes is None else list(boxes)
        if len(boxes) != len(images):
            raise ValueError(f"got {len(boxes)} box arrays for {len(images)} images")
        transforms = [self.crop_transform(image, box) for image, box in zip(images, boxes)]
        results: list[list[HandPrediction]] = []
        size = self.options.batch_size
        for start in range(0, len(images), size):
            chunk = range(start, min(start + size, len(images)))
            batch = to_tensor(np.stack([crop_image(images[i], transforms[i]) for i in chunk])).to(self.device)
            with torch.inference_mode():
                out = self.model(batch)
            for index, i in enumerate(chunk):
                hands = hands_from_output(out, self.faces, transforms[i], index, self.source,
                                          self.options.min_hand_type_prob, self.options.min_peak_score)
                results.append(self._decide(hands))
        return results

    def _decide(self, hands: list[HandPrediction]) -> list[HandPrediction]:
        """Drop absent hands (unless ``keep_absent``); self-check the present ones."""
        for hand in hands:
            evidence = hand.extras["evidence"]
            if not evidence.present:
                continue
            self.hands_checked += 1
            if not evidence.self_check_ok:
                self.self_check_failures += 1
                log = logger.warning if self.self_check_failures == 1 else logger.info
                log("%s (%d of %d hands so far)", self_check_message(hand.handedness, evidence),
                    self.self_check_failures, self.hands_checked)
        return hands if self.options.keep_absent else [hand for hand in hands if hand.extras["present"]]
