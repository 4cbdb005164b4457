"""The handpose command: predict writes predictions.json + overlays; doctor reports models and weights."""
import json
import os
import pickle
import re
import shutil
import subprocess
import sys

import cv2
import pytest
import torch

from handpose import cli, models
from _synthetic import hand_silhouette


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "hand.png"), hand_silhouette(256)[..., ::-1])
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


def test_predict_writes_json_and_overlays(photos, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["predict", str(photos), "--out", str(out), "--no-cache", "--max-hands", "1"])
    assert code == 0
    data = {entry["image"].rsplit("/", 1)[-1]: entry for entry in json.loads((out / "predictions.json").read_text())}
    assert len(data["hand.png"]["hands"]) == 1 and "error" not in data["hand.png"]
    assert data["broken.jpg"]["hands"] == [] and data["broken.jpg"]["error"]
    assert cv2.imread(str(out / "overlays" / "hand.png")).shape == (256, 256, 3)
    captured = capsys.readouterr()
    assert "2 photos, 1 hands, 1 failed" in captured.out and "broken.jpg" in captured.err


#: Lines MediaPipe's C++ graphs write to fd 2 when nothing silences them (absl/glog prefix I/W/E/F + date).
NATIVE_LOG = re.compile(r"XNNPACK|Feedback manager|NORM_RECT|absl::InitializeLog|^[IWEF]\d{4} ", re.MULTILINE)


def test_predict_prints_no_native_mediapipe_logs(photos, tmp_path):
    """In a fresh process, where MediaPipe logs its graph set-up and first inference to fd 2."""
    result = subprocess.run([sys.executable, "-m", "handpose.cli", "predict", str(photos / "hand.png"), "--out",
                             str(tmp_path / "out"), "--no-cache", "--max-hands", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "1 photos, 1 hands" in result.stdout
    assert not NATIVE_LOG.search(result.stdout + result.stderr), result.stderr


def test_predict_unknown_model_and_missing_weights(photos, tmp_path, monkeypatch, capsys):
    assert cli.main(["predict", str(photos), "--out", str(tmp_path / "o"), "--model", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err

    class NeedsWeights:
        def __init__(self, options=None):
            raise FileNotFoundError("weights/snapshot_99.pth.tar not found")

    monkeypatch.setitem(models._REGISTRY, "gated", f"{__name__}:NeedsWeights")
    monkeypatch.setattr(sys.modules[__name__], "NeedsWeights", NeedsWeights, raising=False)
    assert cli.main(["predict", str(photos), "--out", str(tmp_path / "o"), "--model", "gated", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "snapshot_99.pth.tar" in err and "weights/README.md" in err


def test_doctor_reports_versions_models_and_weights(tmp_path, capsys):
    assert cli.main(["doctor", "--weights", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for text in ("python", "torch", "numpy", "mediapipe", "opencv"):
        assert text in out
    assert "hands     found" in out and "pose      found" in out
    assert "MANO_RIGHT.pkl      missing" in out and "MANO_LEFT.pkl       missing" in out
    assert "snapshot_99.pth.tar missing: release v2" in out and "weights/README.md" in out
    assert "status: ok" in out


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_doctor_opens_and_checks_each_file(tmp_path, fake_mano_dir, capsys):
    marker = tmp_path / "pwned"
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"v_template": _Evil(marker)}, protocol=2))
    shutil.copy(fake_mano_dir / "MANO_LEFT.pkl", tmp_path / "MANO_LEFT.pkl")
    (tmp_path / "model.pts").write_bytes(b"not a checkpoint")
    torch.save({"epoch": 1, "network": {"module.layer.weight": torch.zeros(2)}}, tmp_path / "snapshot_99.pth.tar")
    assert cli.main(["doctor", "--weights", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert not marker.exists()
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and ".p" in line.split()[0]}
    assert "INVALID" in lines["MANO_RIGHT.pkl"] and "forbidden class" in lines["MANO_RIGHT.pkl"]
    assert "valid: restricted unpickling, MANO keys and shapes checked" in lines["MANO_LEFT.pkl"]
    assert "shapedirs bug" not in lines["MANO_LEFT.pkl"]  # only said when the right file is valid too
    assert "INVALID" in lines["model.pts"] and "weights_only=True" in lines["model.pts"]
    assert "INVALID" in lines["snapshot_99.pth.tar"] and "missing keys" in lines["snapshot_99.pth.tar"]
    assert "unexpected keys: layer.weight" in lines["snapshot_99.pth.tar"]
    assert "`--model iccv21` is unavailable" in out and "MANO meshes are unavailable" in out
    assert "replace or remove the INVALID files: snapshot_99.pth.tar, model.pts, MANO_RIGHT.pkl" in out
    assert "are INVALID" in out.splitlines()[-1]


def test_doctor_reports_valid_mano_files_and_the_left_hand_bug(tmp_path, fake_mano_dir, capsys):
    assert cli.main(["doctor", "--weights", str(fake_mano_dir)]) == 0
    out = capsys.readouterr().out
    assert "MANO_RIGHT.pkl      valid" in out
    assert "MANO_LEFT.pkl       valid" in out and "left shapedirs bug (fixed when loaded)" in out
    assert "MANO meshes are unavailable" not in out


def test_predict_refused_checkpoint_stops_once(photos, tmp_path, monkeypatch, capsys):
    weights = tmp_path / "weights"
    weights.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"network": {"module.a": torch.zeros(1)}, "x": _Evil(marker)}, weights / "snapshot_99.pth.tar")
    monkeypatch.setenv("HANDPOSE_WEIGHTS", str(weights))
    (photos / "second.png").write_bytes((photos / "hand.png").read_bytes())
    code = cli.main(["predict", str(photos), "--out", str(tmp_path / "out"), "--model", "iccv21", "--no-cache",
                     "--device", "cpu"])
    assert code == 2 and not marker.exists()
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(weights / "snapshot_99.pth.tar") in errors[0] and "weights_only" in errors[0]
    assert "failed:" not in err and "handpose doctor" in err
    assert not (tmp_path / "out" / "predictions.json").exists()


def test_predict_device_and_batch_size_are_checked(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = str(tmp_path / "out")
    assert cli.main(["predict", str(photos), "--out", out, "--model", "iccv21", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert cli.main(["predict", str(photos), "--out", out, "--model", "iccv21", "--device", "tpu"]) == 2
    assert "auto, cpu, cuda" in capsys.readouterr().err
    assert cli.main(["predict", str(photos), "--out", out, "--model", "iccv21", "--batch-size", "0"]) == 2
    assert "batch_size must be an integer >= 1" in capsys.readouterr().err


def test_doctor_reports_a_missing_open_hand_model(tmp_path, monkeypatch, capsys):
    from handpose import handmodel

    monkeypatch.setattr(handmodel, "open_hand_path", lambda: tmp_path / "open_hand_v1.npz")
    assert cli.main(["doctor", "--weights", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Open hand model  MISSING" in out and "setup_assets --rebuild" in out


def test_doctor_uses_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDPOSE_WEIGHTS", str(tmp_path))
    assert cli.find_weights_dir() == tmp_path


def test_entry_point_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "handpose.cli", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "predict" in result.stdout and "doctor" in result.stdout


def test_predict_writes_fitted_meshes(photos, tmp_path, capsys, open_hand_export):
    out = tmp_path / "out"
    code = cli.main(["predict", str(photos), "--out", str(out), "--no-cache", "--max-hands", "1", "--meshes", "open"])
    assert code == 0
    drawn = cv2.imread(str(out / "meshes" / "hand.png"))
    assert drawn.shape == (256, 256, 3)
    assert (drawn != cv2.imread(str(photos / "hand.png"))).any(axis=-1).sum() > 500  # a mesh over the hand
    (obj,) = sorted((out / "meshes").glob("hand_hand1_*.obj"))
    lines = obj.read_text().splitlines()
    assert sum(line.startswith("v ") for line in lines) == 1609 and sum(line.startswith("f ") for line in lines) == 3196
    assert "1 meshes ->" in capsys.readouterr().out


def test_predict_meshes_without_mano_files_says_what_is_missing(photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HANDPOSE_WEIGHTS", str(tmp_path / "empty"))
    code = cli.main(["predict", str(photos), "--out", str(tmp_path / "out"), "--no-cache", "--max-hands", "1",
                     "--meshes", "mano"])
    assert code == 2
    err = capsys.readouterr().err
    assert "MANO file not found" in err and "weights/README.md" in err
