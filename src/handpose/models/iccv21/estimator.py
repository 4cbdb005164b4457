"""The ICCV 2021 network behind the project's estimator interface (``list[HandPrediction]``).

Per photo: a 256 x 256 crop (the detected hands' box, square x1.25, or the whole photo padded as
the authors' demo), one forward pass, then per hand (the network always returns both):

* ``keypoints_3d``: final-stage MANO joints in the course order, mm, wrist at the origin;
  ``vertices`` (778, 3) with the same offset, ``faces`` (1538, 3).
* ``keypoints_2d``: the 3D joints registered to the heatmap argmax keypoints by the network's own
  least-squares scale + translation (:func:`handpose.heatmap.fit_scale_translation`), then
  64 grid -> 256 crop (x4, InterNet's convention) -> photo pixels.
* ``score``: mean heatmap peak / 255 (InterNet's training targets peak at 255), clipped to [0, 1].
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from handpose.heatmap import fit_scale_translation
from handpose.keypoints import MIDDLE_MCP, NUM_KEYPOINTS, WRIST
from handpose.models.iccv21.checkpoint import CHECKPOINT_FILES, SOURCES, load_iccv21
from handpose.models.iccv21.mano_layers import Release
from handpose.models.iccv21.network import HEATMAP_SIZE, ICCV21Net, ICCV21Output
from handpose.models.iccv21.preprocess import INPUT_SIZE, CropTransform, box_transform, crop_image, demo_transform, to_tensor
from handpose.prediction import HandPrediction
from handpose.paths import find_weights_dir

HEATMAP_PEAK = 255.0
_HANDS = (("right", 0), ("left", 1))


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
    out: ICCV21Output, faces: dict[str, np.ndarray], transform: CropTransform, index: int = 0, source: str = "iccv21"
) -> list[HandPrediction]:
    """Both hands of batch item ``index`` as :class:`HandPrediction` ``[right, left]``.

    Args:
        out: the network's output.
        faces: ``{"right": (1538, 3), "left": (1538, 3)}`` MANO triangles.
        transform: the photo -> crop transform used for this item.
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
        hands.append(HandPrediction(
            keypoints_2d=keypoints_2d,
            keypoints_3d=joints_mm - wrist,
            handedness=side,
            score=float(np.clip(peak.mean() / HEATMAP_PEAK, 0.0, 1.0)),
            source=source,
            vertices=stages.vertices[index, -1].detach().cpu().numpy().astype(np.float64) - wrist,
            faces=np.asarray(faces[side], dtype=np.int64),
            extras={
                "heatmap_keypoints_2d": argmax_2d,
                "heatmap_peaks": peak[course].astype(np.float64),
                "hand_type_prob": float(out.heatmap_output.hand_type[index, k]),
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
        weights_dir: folder with ``snapshot_99.pth.tar`` (v2) or ``model.pts`` (v1), and MANO's
            pickles if the checkpoint carries no MANO arrays; ``None``: ``$HANDPOSE_WEIGHTS`` or
            the repository's ``weights/``.
        release: ``"v2"``, ``"v1"`` or ``None`` (whichever checkpoint is there, v2 first).
        device: torch device.

    Raises:
        FileNotFoundError: a needed file is missing (the message names it and its source).
    """

    def __init__(self, weights_dir: str | os.PathLike | None = None, release: Release | None = None, device: str | torch.device = "cpu") -> None:
        folder = find_weights_dir(weights_dir)
        self.device = torch.device(device)
        self.model: ICCV21Net = load_iccv21(find_checkpoint(folder, release), mano_dir=folder, release=release).to(self.device)
        self.release: Release = self.model.release
        self.source = f"iccv21:{self.release}"
        self.faces = {
            side: self.model.mesh_reg.mano_layer[key].faces.cpu().numpy() for side, key in (("right", "r"), ("left", "l"))
        }
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
        """Both hands ``[right, left]`` of an ``(H, W, 3)`` uint8 RGB photo (see the module docstring)."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {getattr(image, 'shape', type(image))}")
        transform = self.crop_transform(image, boxes)
        batch = to_tensor(crop_image(image, transform)).to(self.device)
        with torch.inference_mode():
            out = self.model(batch)
        return hands_from_output(out, self.faces, transform, 0, self.source)
