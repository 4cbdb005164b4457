"""Reading photos safely, checking image arrays, listing folders, writing outputs atomically, encoding JPEG.

:func:`load_image` is the one way photos enter the package: whatever the file (phone JPEG with an
EXIF rotation, PNG with transparency, 16-bit scan, CMYK print file, HEIC), it returns an RGB uint8
``(H, W, 3)`` array the right way up, or raises :class:`ImageError` naming the file and the reason.
Files are only ever opened for reading.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import uuid
import warnings
from io import BytesIO
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: File name extensions :func:`list_images` picks up (lower case). HEIC/HEIF need ``pillow-heif``.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
#: Pillow decoders :func:`load_image` may use when installed (others, e.g. EPS through Ghostscript,
#: are refused). JPEG includes multi-picture (MPO) phone photos.
IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "HEIF", "AVIF")
#: Refuse images with more pixels than this (about 11000 x 11000; phones take 12-50 MP photos).
MAX_PIXELS = 120_000_000
#: Downscale images whose longer side exceeds this many pixels (no model here needs more).
DOWNSCALE_ABOVE = 4096

_HEIF_SUFFIXES = frozenset({".heic", ".heif"})
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, MemoryError)
_EXIF_IFD = 0x8769  # the Exif sub-IFD of a photo's EXIF block
_FOCAL_LENGTH_35MM = 0xA405  # FocalLengthIn35mmFilm


class ImageError(ValueError):
    """A file that cannot be read as a photo; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageNotFoundError(ImageError, FileNotFoundError):
    """The photo does not exist (catchable as :class:`ImageError` or :class:`FileNotFoundError`)."""


@functools.cache
def heif_available() -> bool:
    """Whether HEIC/HEIF photos can be read (``pillow-heif`` importable; registers its opener once)."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def _available_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(name for name in IMAGE_FORMATS if name in Image.OPEN)


def load_image(
    path: str | os.PathLike,
    max_pixels: int = MAX_PIXELS,
    downscale_above: int | None = DOWNSCALE_ABOVE,
) -> np.ndarray:
    """Read a photo as RGB uint8 ``(H, W, 3)``, upright, at most ``downscale_above`` px on its long side.

    Conversions: the EXIF orientation is applied (phone photos); grey, palette and CMYK become RGB;
    transparency (RGBA, LA, palette or PNG ``tRNS``) is composited on white, as the photo would look
    on a page; 16-bit grey is scaled to 8 bits (``round(v / 257)``, Pillow already reduces 16-bit
    colour to its high byte); float (``F``) images are read as ``[0, 1]`` and clipped. Multi-page
    files give their first page.

    Args:
        path: the file (JPEG, PNG, BMP, WebP, TIFF, AVIF; HEIC/HEIF with ``pip install pillow-heif``).
        max_pixels: refuse files whose header declares more pixels than this (checked before decoding).
        downscale_above: shrink (keeping the aspect ratio, Lanczos) so the longer side is at most this
            many pixels; JPEGs are decoded at a reduced scale when they can be. ``None`` keeps the size.

    Raises:
        ImageNotFoundError: the file does not exist (a :class:`FileNotFoundError` too).
        ImageError: empty, not an image, unsupported, corrupt or truncated, or larger than ``max_pixels``.
    """
    path = Path(path)
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if downscale_above is not None and downscale_above < 1:
        raise ValueError(f"downscale_above must be positive or None, got {downscale_above}")
    if not path.exists():
        raise ImageNotFoundError(path, "file not found")
    if path.is_dir():
        raise ImageError(path, "a folder, not a file")
    if not path.is_file():
        raise ImageError(path, "not a file")
    if path.stat().st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    heif = heif_available()
    try:
        with warnings.catch_warnings():
            # The pixel limit is checked below; Pillow's own bomb warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=_available_formats()) as img:
                width, height = img.size
                if width < 1 or height < 1:
                    raise ImageError(path, f"image header declares an empty size {width} x {height}")
                if width * height > max_pixels:
                    raise ImageError(path, f"image of {width} x {height} = {width * height / 1e6:.1f} MP is above "
                                           f"the limit of {max_pixels / 1e6:g} MP (max_pixels)")
                scale = 1.0 if downscale_above is None else min(1.0, downscale_above / max(width, height))
                if scale < 1.0:
                    # JPEG only: decode at the smallest 1/2^k scale still at least the target size.
                    img.draft(img.mode, (int(np.ceil(width * scale)), int(np.ceil(height * scale))))
                img.load()
                try:
                    img = ImageOps.exif_transpose(img)
                except _DECODE_ERRORS:  # an unreadable EXIF block: keep the stored orientation
                    pass
                rgb = _to_rgb(img)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(path, f"image is too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(path, _unidentified_reason(path, heif)) from None
    except _DECODE_ERRORS as exc:
        raise ImageError(path, f"corrupt or truncated image ({type(exc).__name__}: {exc})") from None
    if downscale_above is not None and max(rgb.shape[:2]) > downscale_above:
        rgb = _downscale(rgb, downscale_above)
    return rgb


def exif_focal_35mm(path: str | os.PathLike) -> float | None:
    """The 35 mm-equivalent focal length (mm) the camera wrote into the photo's EXIF block
    (``FocalLengthIn35mmFilm``, which phones fill in), or ``None`` when the file has none, or
    cannot be read. Only the header is read."""
    try:
        with Image.open(path, formats=_available_formats()) as img:
            value = img.getexif().get_ifd(_EXIF_IFD).get(_FOCAL_LENGTH_35MM)
        value = float(value)
    except (UnidentifiedImageError, TypeError, *_DECODE_ERRORS):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _unidentified_reason(path: Path, heif: bool) -> str:
    with open(path, "rb") as f:
        head = f.read(16)
    is_heif = path.suffix.lower() in _HEIF_SUFFIXES or (head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS)
    if is_heif and not heif:
        return "HEIC/HEIF photo, which needs the optional reader: pip install pillow-heif"
    return f"not a supported image (readable formats: {', '.join(IMAGE_FORMATS)})"


def _to_rgb(img: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a loaded Pillow image of any mode (see :func:`load_image`)."""
    if img.mode in _SIXTEEN_BIT_MODES:
        # 16-bit grey: v in [0, 65535] -> round(v * 255 / 65535) = round(v / 257).
        grey = np.clip(np.rint(np.asarray(img, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if img.mode == "F":
        grey = np.clip(np.rint(np.asarray(img, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if "transparency" in img.info or "A" in img.getbands() or img.mode in ("RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)
        # Composite on white: c' = c a + 255 (1 - a), with a = alpha / 255.
        alpha = rgba[..., 3:] / 255.0
        return np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.array(img.convert("RGB"), dtype=np.uint8)


def _downscale(rgb: np.ndarray, long_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))


def _natural_key(path: Path) -> list[tuple[int, int | str]]:
    """``img2`` before ``img10``, case-insensitive, folder by folder."""
    key: list[tuple[int, int | str]] = []
    for part in path.parts:
        key.extend((0, int(tok)) if tok.isdigit() else (1, tok.lower())
                   for tok in re.split(r"(\d+)", part) if tok)
        key.append((2, ""))
    return key


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Entries of ``folder`` named like images (by :data:`IMAGE_EXTENSIONS`, any case), in natural order.

    Hidden files and folders (name starting with ``.``) are skipped. With ``recursive`` the
    sub-folders are searched too and sorted by relative path. Entries named like an image that are
    not readable files are listed too, so that reading them reports the problem like any other bad
    photo (:func:`load_image` raises :class:`ImageError`): a folder (``x.jpg/``; with ``recursive``
    only a link to one, a real one is searched) and a broken link. Other special files (pipes, devices),
    which could block a reader, are skipped.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        NotADirectoryError: ``folder`` is a file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")

    def named_like_an_image(name: str) -> bool:
        return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS

    found = []
    for root, dirs, files in os.walk(folder):
        searched = [d for d in dirs if recursive and not d.startswith(".") and not Path(root, d).is_symlink()]
        # An image-named folder that is not searched is an entry to report.
        found.extend(Path(root, name) for name in dirs if named_like_an_image(name) and name not in searched)
        dirs[:] = searched
        for name in filter(named_like_an_image, files):
            path = Path(root, name)
            if path.is_file() or not path.exists():  # a file, or a broken link
                found.append(path)
    return sorted(found, key=lambda p: _natural_key(p.relative_to(folder)))


#: Layout of each accepted channel count for :func:`check_image` (``None``: no channel axis).
_LAYOUTS = {None: "(H, W) grey", 1: "(H, W, 1) grey", 3: "(H, W, 3) RGB", 4: "(H, W, 4) RGBA"}


def check_image(image: np.ndarray, channels: tuple[int | None, ...] = (3,)) -> np.ndarray:
    """Validate a non-empty uint8 image and return it C-contiguous (otherwise unchanged).

    ``channels``: the accepted channel counts, among ``None`` (``(H, W)``, no channel axis), 1, 3
    (RGB, the default) and 4 (RGBA). Raises ``TypeError`` for a non-array, else ``ValueError``
    naming the expected layouts, the dtype or the empty side.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    count = image.shape[2] if image.ndim == 3 else None
    if image.ndim not in (2, 3) or count not in channels:
        layouts = [_LAYOUTS[c] for c in channels]
        expected = layouts[0] if len(layouts) == 1 else ", ".join(layouts[:-1]) + " or " + layouts[-1]
        raise ValueError(f"image must be {expected}, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if min(image.shape[:2]) < 1:
        raise ValueError(f"image is empty: shape {image.shape}")
    return np.ascontiguousarray(image)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open ``path`` for writing in binary so that readers see the old file or the whole new one.

    Yields a binary file object on a hidden temporary file in the same folder (created if needed);
    on a clean exit it is flushed to disk and renamed over ``path`` (``os.replace``, atomic on one
    file system); on any error it is removed and ``path`` is left as it was. For writers that want
    a file object (``np.savez``, ``fig.savefig(f, format="png")``); :func:`write_atomic` for bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        if path.exists():  # a replaced file keeps its mode (the rename would carry the temporary's)
            os.fchmod(fd, path.stat().st_mode & 0o7777)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (``str`` as UTF-8) to ``path`` with :func:`atomic_open`. Returns ``path``."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes or str, got {type(data).__name__}")
    with atomic_open(path) as f:
        f.write(data)
    return Path(path)


def save_png_atomic(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Save a uint8 image ``(H, W)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA as PNG with :func:`write_atomic`."""
    image = check_image(np.asarray(image), channels=(None, 3, 4))
    buffer = BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return write_atomic(path, buffer.getvalue())


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an ``(H, W, 3)`` uint8 RGB image at ``quality`` in ``[1, 100]`` (OpenCV's
    libjpeg, 4:2:0 chroma, deterministic)."""
    import cv2  # only the writers of JPEG files need OpenCV here

    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV failed to encode the image as JPEG")
    return data.tobytes()


def __getattr__(name: str):
    """``METADATA_COLUMNS`` and ``read_metadata_csv`` moved to :mod:`handpose.groundtruth`; the old
    names still resolve here (lazily: groundtruth imports camera, hence torch)."""
    if name in ("METADATA_COLUMNS", "read_metadata_csv"):
        from handpose import groundtruth

        return getattr(groundtruth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
