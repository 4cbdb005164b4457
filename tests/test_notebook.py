"""handpose.notebook: HANDPOSE_MAX_IMAGES, atomic figure saving (the checkout root: test_paths)."""
from __future__ import annotations

import struct
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from handpose import notebook  # noqa: E402


def png_size_and_dpi(path: Path) -> tuple[int, int, float]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    at = data.index(b"pHYs")
    x_per_metre, _, unit = struct.unpack(">IIB", data[at + 4:at + 13])
    assert unit == 1
    return width, height, x_per_metre * 0.0254


def test_max_images(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(notebook.MAX_IMAGES_ENV, raising=False)
    assert notebook.max_images() is None and notebook.max_images(20) == 20
    monkeypatch.setenv(notebook.MAX_IMAGES_ENV, " 3 ")
    assert notebook.max_images(20) == 3
    for bad in ("0", "-1", "three", "2.5"):
        monkeypatch.setenv(notebook.MAX_IMAGES_ENV, bad)
        with pytest.raises(ValueError, match=notebook.MAX_IMAGES_ENV):
            notebook.max_images()


def test_save_figure_writes_a_150_dpi_png_atomically(tmp_path: Path) -> None:
    fig = plt.figure(figsize=(2, 1))
    fig.add_artist(plt.Line2D([0, 1], [0, 1]))
    path = notebook.save_figure(fig, "line", tmp_path)
    plt.close(fig)
    assert path == tmp_path / "line.png"
    assert [p.name for p in tmp_path.iterdir()] == ["line.png"]  # no temporary file left
    width, height, dpi = png_size_and_dpi(path)
    assert round(dpi) == 150
    # 2 x 1 inches at 150 dpi, plus the tight box's 0.1 inch padding on each side.
    assert abs(width - 330) <= 3 and abs(height - 180) <= 3


def test_save_figure_directory_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(notebook.FIGURES_DIR_ENV, str(tmp_path / "figs"))
    fig = plt.figure(figsize=(1, 1))
    assert notebook.save_figure(fig, "a.png") == tmp_path / "figs" / "a.png"
    plt.close(fig)


def test_save_figure_keeps_the_old_file_when_saving_fails(tmp_path: Path) -> None:
    class Broken:
        def savefig(self, *args, **kwargs):
            raise RuntimeError("disk full")

    (tmp_path / "a.png").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        notebook.save_figure(Broken(), "a", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    assert (tmp_path / "a.png").read_bytes() == b"old"


@pytest.mark.parametrize("name", ["", "../a", "sub/a", ".hidden"])
def test_save_figure_rejects_paths(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        notebook.save_figure(plt.figure(), name, tmp_path)
