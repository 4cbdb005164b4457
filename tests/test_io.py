"""Tests of handpose.io: formats, EXIF, conversions, refusals, listing, atomic writes, metadata."""
from __future__ import annotations

import hashlib
import os
import struct
import time
import zlib
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from handpose import io as hio
from handpose.io import (
    ImageError,
    ImageNotFoundError,
    atomic_open,
    encode_jpeg,
    list_images,
    load_image,
    save_png_atomic,
    write_atomic,
)


def quadrants(height: int = 32, width: int = 64) -> np.ndarray:
    """Four solid colours, so any flip or turn is visible."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = (220, 30, 30)
    image[: height // 2, width // 2:] = (30, 220, 30)
    image[height // 2:, : width // 2] = (30, 30, 220)
    image[height // 2:, width // 2:] = (230, 230, 40)
    return image


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares ``width x height`` but holds no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


# -- formats and conversions --------------------------------------------------------------------


@pytest.mark.parametrize("suffix, options", [(".png", {}), (".bmp", {}), (".tif", {}),
                                             (".webp", {"lossless": True})])
def test_lossless_formats_round_trip(tmp_path: Path, suffix: str, options: dict) -> None:
    image = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(image).save(path, **options)
    out = load_image(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, image)


def _jpeg_with_focal(path: Path, focal_35mm: int | None, shape: tuple[int, int] = (48, 64)) -> Path:
    exif = Image.Exif()
    if focal_35mm is not None:
        exif.get_ifd(0x8769)[0xA405] = focal_35mm  # FocalLengthIn35mmFilm in the Exif sub-IFD
    Image.fromarray(np.full((*shape, 3), 128, np.uint8)).save(path, exif=exif.tobytes())
    return path


def test_exif_focal_length_35mm(tmp_path: Path) -> None:
    assert hio.exif_focal_35mm(_jpeg_with_focal(tmp_path / "phone.jpg", 26)) == 26.0
    assert hio.exif_focal_35mm(_jpeg_with_focal(tmp_path / "none.jpg", None)) is None
    assert hio.exif_focal_35mm(_jpeg_with_focal(tmp_path / "zero.jpg", 0)) is None
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    assert hio.exif_focal_35mm(tmp_path / "broken.jpg") is None
    assert hio.exif_focal_35mm(tmp_path / "gone.jpg") is None


def test_exif_orientation_6_turns_the_photo_clockwise(tmp_path: Path) -> None:
    stored = quadrants()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned, show the stored pixels turned 90 deg clockwise
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, quality=95, subsampling=0, exif=exif.tobytes())
    before = digest(path)

    out = load_image(path)
    assert out.shape == (64, 32, 3)
    expected = np.rot90(stored, k=-1)  # numpy: k=-1 is clockwise
    assert np.abs(out.astype(int) - expected).mean() < 5.0
    assert np.abs(out.astype(int) - np.rot90(stored, k=1)).mean() > 50.0
    assert digest(path) == before  # never modified


def test_grey_and_palette_become_rgb(tmp_path: Path) -> None:
    grey = np.array([[0, 17, 255]], np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    np.testing.assert_array_equal(load_image(tmp_path / "grey.png"), np.repeat(grey[..., None], 3, -1))

    palette = Image.new("P", (3, 1))
    palette.putpalette([10, 20, 30, 200, 100, 0, 0, 0, 0] + [0] * 759)
    palette.putdata([0, 1, 2])
    palette.save(tmp_path / "palette.png", transparency=2)  # index 2 is transparent
    np.testing.assert_array_equal(load_image(tmp_path / "palette.png")[0],
                                  [[10, 20, 30], [200, 100, 0], [255, 255, 255]])


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.array([[[200, 100, 50, 128], [1, 2, 3, 255], [9, 9, 9, 0]]], np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    # c' = (c a + 255 (255 - a)) / 255: 200 -> 57985 / 255 = 227.4, 100 -> 177.2, 50 -> 152.1
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png")[0],
                                  [[227, 177, 152], [1, 2, 3], [255, 255, 255]])

    la = np.array([[[100, 255], [0, 0]]], np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(load_image(tmp_path / "la.png")[0], [[100] * 3, [255] * 3])


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 65535, 1000, 32768]], np.uint16)
    assert cv2.imwrite(str(tmp_path / "deep.png"), values)
    # round(v / 257): 1000 -> 3.89 -> 4, 32768 -> 127.5 -> 128
    np.testing.assert_array_equal(load_image(tmp_path / "deep.png")[0, :, 0], [0, 1, 255, 4, 128])


def test_cmyk_is_converted(tmp_path: Path) -> None:
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255]]], np.uint8)
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "print.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "print.tif")[0],
                                  [[255, 255, 255], [0, 255, 255], [0, 0, 0]])


# -- size limits --------------------------------------------------------------------------------


def test_large_photos_are_downscaled_keeping_the_aspect(tmp_path: Path) -> None:
    x = np.linspace(0, 255, 2000)
    ramp = np.repeat(np.broadcast_to(x, (1000, 2000))[..., None], 3, -1).astype(np.uint8)
    Image.fromarray(ramp).save(tmp_path / "big.jpg", quality=95)
    Image.fromarray(ramp).save(tmp_path / "big.png")
    reference = cv2.resize(ramp, (300, 150), interpolation=cv2.INTER_AREA).astype(int)
    for name in ("big.jpg", "big.png"):
        out = load_image(tmp_path / name, downscale_above=300)
        assert out.shape == (150, 300, 3)
        assert np.abs(out.astype(int) - reference).max() <= 3
    assert load_image(tmp_path / "big.png", downscale_above=None).shape == (1000, 2000, 3)


def test_decompression_bombs_are_refused_without_decoding(tmp_path: Path) -> None:
    png_header_only(tmp_path / "bomb.png", 100_000, 100_000)  # 10^10 px: Pillow's own guard
    png_header_only(tmp_path / "big.png", 12_000, 12_000)  # 144 MP: above MAX_PIXELS
    start = time.perf_counter()
    with pytest.raises(ImageError, match="bomb.png.*too large"):
        load_image(tmp_path / "bomb.png")
    with pytest.raises(ImageError, match=r"big.png: image of 12000 x 12000 = 144\.0 MP is above the limit of 120 MP"):
        load_image(tmp_path / "big.png")
    assert time.perf_counter() - start < 1.0


def test_max_pixels_is_applied(tmp_path: Path) -> None:
    Image.fromarray(quadrants()).save(tmp_path / "small.png")
    with pytest.raises(ImageError, match="max_pixels"):
        load_image(tmp_path / "small.png", max_pixels=1000)


# -- refusals -----------------------------------------------------------------------------------


def test_truncated_jpeg(tmp_path: Path) -> None:
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    path = tmp_path / "cut.jpg"
    path.write_bytes(data.tobytes()[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.jpg.*truncated"):
        load_image(path)


@pytest.mark.parametrize("name, content, reason", [
    ("empty.jpg", b"", "empty file"),
    ("notes.jpg", b"these are my notes, not a photo\n" * 10, "not a supported image"),
    ("vector.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not a supported image"),
])
def test_non_images_are_refused(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match=f"{name}: {reason}") as info:
        load_image(path)
    assert info.value.path == path and isinstance(info.value, ValueError)
    assert path.read_bytes() == content


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError, match="nope.jpg: file not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)


def test_heic_without_the_reader_says_what_to_install(tmp_path: Path) -> None:
    if hio.heif_available():
        pytest.skip("pillow-heif is installed")
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    with pytest.raises(ImageError, match="pip install pillow-heif"):
        load_image(path)


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(tmp_path / "x.png", max_pixels=0)
    with pytest.raises(ValueError, match="downscale_above"):
        load_image(tmp_path / "x.png", downscale_above=0)


# -- listing ------------------------------------------------------------------------------------


def test_list_images_order_and_filtering(tmp_path: Path) -> None:
    for name in ("img10.jpg", "img2.JPG", "img1.png", "b.webp", ".hidden.jpg", "notes.txt", "a.heic",
                 "sub/img3.jpeg", ".git/x.jpg", "sub/.cache/y.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    names = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert names == ["a.heic", "b.webp", "img1.png", "img2.JPG", "img10.jpg"]
    names = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)]
    assert names == ["a.heic", "b.webp", "img1.png", "img2.JPG", "img10.jpg", "sub/img3.jpeg"]
    assert list_images(tmp_path / "sub") == [tmp_path / "sub" / "img3.jpeg"]


def test_list_images_reports_entries_named_like_images_that_are_not_files(tmp_path: Path) -> None:
    """A folder or a broken link named like a photo is listed, and reading it names the problem."""
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.jpg").mkdir()
    (tmp_path / "b.jpg" / "inner.png").write_bytes(b"x")
    (tmp_path / "c.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "d.png").symlink_to(tmp_path / "b.jpg")  # a link to a folder
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "e.jpg")  # a pipe: reading it would block, so it is skipped
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.jpg", "b.jpg", "c.png", "d.png"]
    with pytest.raises(ImageError, match=r"b\.jpg: a folder, not a file"):
        load_image(tmp_path / "b.jpg")
    with pytest.raises(ImageNotFoundError, match=r"c\.png: file not found"):
        load_image(tmp_path / "c.png")
    # Searched recursively, b.jpg/ is a sub-folder like any other; links are not followed.
    names = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)]
    assert names == ["a.jpg", "b.jpg/inner.png", "c.png", "d.png"]


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        list_images(tmp_path / "missing")
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        list_images(tmp_path / "f.png")


# -- atomic writes ------------------------------------------------------------------------------


def test_write_atomic_writes_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "out" / "result.json"
    assert write_atomic(path, "{\"é\": 1}") == path
    assert path.read_bytes() == "{\"é\": 1}".encode()
    write_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert os.listdir(path.parent) == ["result.json"]
    with pytest.raises(TypeError):
        write_atomic(path, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_write_atomic_never_leaves_a_half_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               failing: str) -> None:
    path = tmp_path / "result.json"
    path.write_text("old")

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(hio.os, failing, fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new content " * 1000)
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["result.json"]


def test_atomic_open_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "arrays.npz"
    with atomic_open(path) as f:  # the folder is created; np.savez writes to the file object
        np.savez(f, a=np.arange(3))
    with np.load(path) as npz:
        np.testing.assert_array_equal(npz["a"], [0, 1, 2])
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_open(path) as f:
            f.write(b"half a file")
            raise RuntimeError("writer failed")
    with np.load(path) as npz:
        np.testing.assert_array_equal(npz["a"], [0, 1, 2])
    assert [p.name for p in path.parent.iterdir()] == ["arrays.npz"]  # no temporary file left


def test_save_png_atomic_round_trip(tmp_path: Path) -> None:
    image = quadrants()
    path = save_png_atomic(tmp_path / "overlay.png", image)
    np.testing.assert_array_equal(load_image(path), image)
    assert os.listdir(tmp_path) == ["overlay.png"]
    with pytest.raises(ValueError, match="uint8"):
        save_png_atomic(tmp_path / "x.png", image.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        save_png_atomic(tmp_path / "x.png", image[..., :2])


# -- metadata.csv -------------------------------------------------------------------------------


def test_encode_jpeg_round_trip_keeps_colours_and_is_deterministic() -> None:
    image = quadrants()
    data = encode_jpeg(image, 95)
    assert data[:2] == b"\xff\xd8" and data == encode_jpeg(image, 95)
    decoded = np.asarray(Image.open(BytesIO(data)).convert("RGB")).astype(int)
    assert np.median(np.abs(decoded - image)) <= 1 and np.abs(decoded - image).mean() < 8.0  # a channel swap: ~100
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(image, 0)



def test_check_image_accepts_the_asked_layouts_only():
    rgb = np.zeros((4, 5, 3), np.uint8)[:, ::-1]  # a strided view comes back C-contiguous, equal
    out = hio.check_image(rgb)
    assert out.flags.c_contiguous and np.array_equal(out, rgb)
    grey = np.zeros((4, 5), np.uint8)
    assert hio.check_image(grey, channels=(None, 3)) is grey
    with pytest.raises(TypeError, match="numpy array"):
        hio.check_image([[0, 0, 0]])
    with pytest.raises(ValueError, match=r"must be \(H, W, 3\) RGB, got shape \(4, 5\)"):
        hio.check_image(grey)
    with pytest.raises(ValueError, match=r"\(H, W\) grey, \(H, W, 3\) RGB or \(H, W, 4\) RGBA"):
        hio.check_image(np.zeros((4, 5, 2), np.uint8), channels=(None, 3, 4))
    with pytest.raises(ValueError, match="uint8, got float32"):
        hio.check_image(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="empty"):
        hio.check_image(np.zeros((0, 5, 3), np.uint8))
