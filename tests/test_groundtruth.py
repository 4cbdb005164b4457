"""handpose.groundtruth: gt.json / annotations.json and metadata.csv readers (format in the module)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from handpose import io
from handpose.groundtruth import (
    METADATA_COLUMNS,
    check_handedness,
    known_intrinsics,
    read_ground_truth,
    read_metadata_csv,
)
from handpose.keypoints import NAMES, NUM_KEYPOINTS


def test_reads_a_gt_json_in_pixel_centres_with_unknown_joints_as_nan(tmp_path: Path) -> None:
    points = np.arange(2 * NUM_KEYPOINTS, dtype=float).reshape(NUM_KEYPOINTS, 2)
    points[0] = -0.5  # the photo's corner
    visibility = [1] * NUM_KEYPOINTS
    visibility[3] = 0
    doc = {"keypoint_order": [n.lower() for n in NAMES], "conventions": {},
           "images": [{"image": "a.jpg", "width": 64, "height": 48,
                       "hands": [{"handedness": "left", "keypoints_2d": points.tolist(), "visibility": visibility},
                                 {"handedness": None, "keypoints_2d": points.tolist(), "visibility": None}]},
                      {"image": "b.jpg", "width": 10, "height": 10, "hands": []}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc))
    truth = read_ground_truth(path)
    a = truth["a.jpg"]
    assert (a.width, a.height, a.handedness) == (64, 48, ("left", None))
    np.testing.assert_array_equal(a.keypoints_2d[0, 0], [-0.5, -0.5])  # no conversion: the file is in centres
    assert np.isnan(a.keypoints_2d[0, 3]).all() and not a.visibility[0, 3] and a.visibility[1].all()
    assert truth["b.jpg"].keypoints_2d.shape == (0, NUM_KEYPOINTS, 2)
    half = a.resized(32, 24)
    np.testing.assert_allclose(half.keypoints_2d[0, 0], [-0.5, -0.5])  # the photo's corner stays its corner
    np.testing.assert_allclose(half.keypoints_2d[0, 1], (points[1] + 0.5) / 2 - 0.5)


def test_bad_ground_truth_files_say_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"hands": []}))
    with pytest.raises(ValueError, match="no 'images' list"):
        read_ground_truth(path)
    path.write_text(json.dumps({"images": [{"image": "a.jpg", "width": 1, "height": 1,
                                            "hands": [{"keypoints_2d": [[0, 0]] * 20}]}]}))
    with pytest.raises(ValueError, match=r"a\.jpg: keypoints_2d must be \(21, 2\)"):
        read_ground_truth(path)
    with pytest.raises(ValueError, match="handedness"):
        check_handedness("both")


def test_the_old_io_names_still_resolve() -> None:
    assert io.read_metadata_csv is read_metadata_csv and io.METADATA_COLUMNS is METADATA_COLUMNS
    with pytest.raises(AttributeError):
        io.no_such_name


def test_read_metadata_csv(tmp_path: Path) -> None:
    path = tmp_path / "metadata.csv"
    path.write_text("\ufeff" + ",".join(METADATA_COLUMNS) + ",extra\n"
                    "IMG_0001.jpg,palm,open,1,none,plain,daylight,medium,0,,x\n"
                    "\n"
                    "IMG_0002.jpg, side ,pinch,2,object,cluttered,indoor,light,1,\"hands cross, twice\",\n",
                    encoding="utf-8")
    rows = read_metadata_csv(path)
    assert list(rows) == ["IMG_0001.jpg", "IMG_0002.jpg"]
    assert rows["IMG_0001.jpg"]["view"] == "palm" and rows["IMG_0001.jpg"]["notes"] == ""
    assert rows["IMG_0002.jpg"]["view"] == "side" and rows["IMG_0002.jpg"]["notes"] == "hands cross, twice"
    assert rows["IMG_0001.jpg"]["extra"] == "x" and set(METADATA_COLUMNS) <= set(rows["IMG_0002.jpg"])


def test_read_metadata_csv_errors(tmp_path: Path) -> None:
    path = tmp_path / "metadata.csv"
    path.write_text(",".join(c for c in METADATA_COLUMNS if c != "lighting") + "\n")
    with pytest.raises(ValueError, match="metadata.csv: missing column.*lighting"):
        read_metadata_csv(path)
    path.write_text(",".join(METADATA_COLUMNS) + "\n" + "a.jpg" + "," * 9 + "\n" + "a.jpg" + "," * 9 + "\n")
    with pytest.raises(ValueError, match="line 3: image 'a.jpg' is listed twice"):
        read_metadata_csv(path)
    with pytest.raises(FileNotFoundError):
        read_metadata_csv(tmp_path / "none.csv")


# -- intrinsics of the photos ---------------------------------------------------------------
def test_known_intrinsics_reads_first_K_and_validates(tmp_path: Path):
    K = np.array([[700.0, 0.0, 319.5], [0.0, 700.0, 239.5], [0.0, 0.0, 1.0]])
    K2 = [[500.0, 0, 10], [0, 500.0, 20], [0, 0, 1]]
    gt = {"images": [{"image": "a.jpg", "hands": [{"K": K.tolist()}, {"K": K2}]},
                     {"image": "b.jpg", "hands": []},
                     {"image": "c.jpg", "hands": [{"handedness": "left"}, {"K": K2}]}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    found = known_intrinsics(tmp_path / "gt.json")
    assert sorted(found) == ["a.jpg", "c.jpg"]
    np.testing.assert_array_equal(found["a.jpg"], K)
    np.testing.assert_array_equal(found["c.jpg"], K2)
    assert known_intrinsics(tmp_path / "missing.json") == {}
    gt["images"][0]["hands"][0]["K"] = [[0.0, 0, 0], [0, 1, 0], [0, 0, 1]]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    with pytest.raises(ValueError, match="a.jpg"):
        known_intrinsics(tmp_path / "gt.json")


# -- writers: round trips through the readers -------------------------------------------------
def test_gt_document_round_trip(tmp_path: Path):
    from handpose.groundtruth import gt_document

    uv = np.arange(42, dtype=np.float64).reshape(21, 2)
    entry = {"image": "a.jpg", "width": 64, "height": 48,
             "hands": [{"handedness": "left", "keypoints_2d": uv.tolist(), "visibility": [1] * 20 + [0]}]}
    doc = gt_document([entry], {"keypoints_2d": "px"})
    assert doc["keypoint_order"][0] == "wrist" and len(doc["keypoint_order"]) == NUM_KEYPOINTS
    (tmp_path / "gt.json").write_text(json.dumps(doc))
    truth = read_ground_truth(tmp_path / "gt.json")["a.jpg"]
    np.testing.assert_array_equal(truth.keypoints_2d[0, :20], uv[:20])
    assert np.isnan(truth.keypoints_2d[0, 20]).all()


def test_metadata_csv_round_trip_and_missing_columns(tmp_path: Path):
    from handpose.groundtruth import metadata_csv

    row = {c: f"{c}-value" for c in METADATA_COLUMNS} | {"image": "a.jpg", "notes": "commas, quoted"}
    io.write_atomic(tmp_path / "metadata.csv", metadata_csv([row]))
    assert read_metadata_csv(tmp_path / "metadata.csv") == {"a.jpg": row}
    with pytest.raises(ValueError, match="misses"):
        metadata_csv([{"image": "b.jpg"}])
