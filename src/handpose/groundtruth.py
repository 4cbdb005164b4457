"""Ground-truth files of photo sets: ``gt.json`` / ``annotations.json`` and ``metadata.csv``, the
format documented here once, with their readers and writers.

``gt.json`` (the demo set, written by :func:`gt_document` from :mod:`handpose.demo_data`; the internal photo
set) and ``annotations.json`` (your photos, written by :class:`handpose.annotate.AnnotationStore`)
share one layout::

    {"keypoint_order": ["wrist", "thumb_cmc", ...],          # the 21 course names, lower case
     "conventions": {"keypoints_2d": "...", ...},             # free text, for people
     "images": [{"image": "01_palm_open.jpg", "width": W, "height": H,
                 "K": [[fx, s, cx], [0, fy, cy], [0, 0, 1]],  # optional, px
                 "hands": [{"handedness": "right" | "left" | null,
                            "keypoints_2d": [[u, v] x 21],    # px, course order
                            "keypoints_3d_cam_mm": [[x, y, z] x 21],   # optional, camera frame, mm
                            "visibility": [0 | 1 x 21] | null,      # null: all annotated
                            "joints_done": n}]}]}        # optional: a hand left after n clicks

Pixels follow the package's convention, integer pixel centres (:mod:`handpose.camera`): pixel
``(u, v)`` has its centre at ``(u, v)`` and the photo spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``,
in the frame of the stored image file (upright, EXIF rotation applied, full resolution: ``width``
and ``height`` say which). A joint with visibility 0 is not annotated (its coordinates are
ignored). Readers return NaN for those joints. ``joints_done`` marks a hand the click tool left
unfinished (joints ``n..20`` not reached), so that it can be resumed; complete hands omit it.

``metadata.csv`` holds per-photo scenario tags, one row per image, columns
:data:`METADATA_COLUMNS` (extra columns are kept).
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handpose.camera import resize_pixels
from handpose.keypoints import NAMES, NUM_KEYPOINTS

#: Columns of ``metadata.csv``: per-photo scenario tags of a photo set.
METADATA_COLUMNS: tuple[str, ...] = (
    "image", "view", "gesture", "hands", "occlusion", "background", "lighting", "skin_tone", "hard", "notes",
)


def check_handedness(handedness: str) -> str:
    """``handedness`` itself if it is ``"left"`` or ``"right"``, else a ``ValueError``."""
    if handedness not in ("left", "right"):
        raise ValueError(f"handedness must be 'left' or 'right', got {handedness!r}")
    return handedness


@dataclass(frozen=True)
class GroundTruth:
    """Ground-truth hands of one photo.

    Attributes:
        width, height: the image size the keypoints refer to.
        keypoints_2d: ``(M, 21, 2)`` pixels, NaN where not annotated.
        visibility: ``(M, 21)`` bool, annotated joints.
        handedness: ``M`` labels (``None`` where the file does not say).
    """

    width: int
    height: int
    keypoints_2d: np.ndarray
    visibility: np.ndarray
    handedness: tuple[str | None, ...]

    def resized(self, width: int, height: int) -> "GroundTruth":
        """The same hands on the photo resized to ``width x height`` (e.g. as loaded, downscaled):
        ``p' = (p + 0.5) * (width / W, height / H) - 0.5`` (:func:`handpose.camera.resize_pixels`)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"size must be positive, got {width} x {height}")
        moved = resize_pixels(self.keypoints_2d, width / self.width, height / self.height)
        return GroundTruth(int(width), int(height), moved, self.visibility, self.handedness)


def read_ground_truth(path: str | os.PathLike[str]) -> dict[str, GroundTruth]:
    """Read a ground-truth file (``gt.json``, ``annotations.json``, see the module docstring) into
    arrays, keyed by image name; pixels as in the file (integer pixel centres).

    A joint counts as annotated when its visibility is non-zero, or when visibility is missing /
    ``null`` (then every joint is annotated).
    """
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{path}: not a ground-truth file (no 'images' list)")
    out = {}
    for entry in data["images"]:
        points, visible, sides = [], [], []
        for hand in entry.get("hands", []):
            xy = np.asarray(hand["keypoints_2d"], dtype=np.float64)
            if xy.shape != (NUM_KEYPOINTS, 2):
                raise ValueError(f"{path}: {entry['image']}: keypoints_2d must be (21, 2), got {xy.shape}")
            vis = hand.get("visibility")
            vis = np.ones(NUM_KEYPOINTS, dtype=bool) if vis is None else np.asarray(vis, dtype=np.float64) > 0
            points.append(np.where(vis[:, None], xy, np.nan))
            visible.append(vis)
            side = hand.get("handedness")
            sides.append(None if side is None else check_handedness(side))
        out[entry["image"]] = GroundTruth(int(entry["width"]), int(entry["height"]),
                                          np.asarray(points, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2),
                                          np.asarray(visible, dtype=bool).reshape(-1, NUM_KEYPOINTS), tuple(sides))
    return out


def read_metadata_csv(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Scenario tags of a photo set: image name -> ``{column: value}``, in file order.

    The file needs every column of :data:`METADATA_COLUMNS` (extra columns are kept). Values are
    stripped strings (``""`` when blank); a UTF-8 byte-order mark (Excel) is accepted; rows with an
    empty ``image`` are skipped.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a missing column or a repeated image name (the message names file and column/row).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metadata file not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [column for column in METADATA_COLUMNS if column not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)} "
                             f"(expected {', '.join(METADATA_COLUMNS)})")
        reader.fieldnames = header
        rows: dict[str, dict[str, str]] = {}
        for raw in reader:
            row = {key: (value or "").strip() for key, value in raw.items() if key is not None}
            name = row["image"]
            if not name:
                continue
            if name in rows:
                raise ValueError(f"{path}, line {reader.line_num}: image {name!r} is listed twice")
            rows[name] = row
    return rows


def known_intrinsics(gt_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Intrinsics ``K (3, 3)`` per image name from a ground-truth file (``gt.json`` with a ``K`` per
    hand, as the demo set's); ``{}`` when the file does not exist. Images without a ``K`` are left out.

    Raises:
        ValueError: a ``K`` that is not a finite 3 x 3 matrix with positive focal lengths.
    """
    path = Path(gt_path)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    out = {}
    for entry in data.get("images", []):
        for hand in entry.get("hands", []):
            if hand.get("K") is None:
                continue
            K = np.asarray(hand["K"], dtype=np.float64)
            if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
                raise ValueError(f"{path}: {entry['image']}: K must be a finite 3 x 3 matrix, got {K.tolist()}")
            out[entry["image"]] = K
            break
    return out


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------
def gt_document(images: list[dict], conventions: dict[str, str]) -> dict:
    """The whole ``gt.json`` of a photo set: the course keypoint order, the ``conventions`` (free
    text, for people) and one entry per image (the layout above)."""
    return {"keypoint_order": [name.lower() for name in NAMES], "conventions": dict(conventions), "images": images}


def metadata_csv(rows: Sequence[dict[str, str]]) -> str:
    """CSV text with the columns :data:`METADATA_COLUMNS`, in that order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(METADATA_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        missing = set(METADATA_COLUMNS) - set(row)
        if missing:
            raise ValueError(f"metadata row for {row.get('image')!r} misses {sorted(missing)}")
        writer.writerow({k: row[k] for k in METADATA_COLUMNS})
    return buffer.getvalue()
