"""handpose.paths: the checkout, the weights folder and the caches, with their environment variables."""
from __future__ import annotations

from pathlib import Path

import pytest

from handpose import paths


def test_find_repo_root(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks" / "deep").mkdir(parents=True)
    assert paths.find_repo_root(tmp_path / "notebooks" / "deep") == tmp_path.resolve()
    assert paths.find_repo_root(Path(__file__).parent) == Path(__file__).resolve().parents[1]
    with pytest.raises(FileNotFoundError, match="no handpose checkout"):
        paths.find_repo_root(tmp_path.parent)


def test_repo_root_falls_back_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths, "_PACKAGE_DIR", tmp_path)
    assert paths.repo_root() == tmp_path
    monkeypatch.delenv(paths.WEIGHTS_DIR_ENV, raising=False)
    assert paths.find_weights_dir() == tmp_path / "weights"


def test_weights_dir_argument_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.WEIGHTS_DIR_ENV, str(tmp_path / "env"))
    assert paths.find_weights_dir(tmp_path / "given") == tmp_path / "given"
    assert paths.find_weights_dir() == tmp_path / "env"


def test_model_and_prediction_caches_are_distinct_under_one_root(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path))
    assert paths.cache_root() == tmp_path
    assert paths.model_cache_dir() == tmp_path / "handpose"
    assert paths.prediction_cache_dir() == tmp_path / "predictions"
    monkeypatch.delenv(paths.CACHE_DIR_ENV)
    checkout = Path(paths.__file__).resolve().parents[2]
    assert paths.model_cache_dir() == checkout / ".cache" / "handpose"  # where `make setup` puts the open hand
    assert paths.prediction_cache_dir() == checkout / ".cache" / "predictions"


def test_cache_outside_a_checkout_is_in_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paths.CACHE_DIR_ENV, raising=False)
    monkeypatch.setattr(paths, "_PACKAGE_DIR", tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.cache_root() == tmp_path / "home" / ".cache" / "handpose"
