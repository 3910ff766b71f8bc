"""Images in, for client/segment.py (copy the folder as a whole).

TIFF and BigTIFF go through tifffile: an uncompressed file is memory-mapped and a
compressed one decoded one page at a time, so a large TIFF costs little more than the tile
being cut from it. Every page (plane) of the file's first series is an image of its own.
PNG, JPEG and the other formats Pillow reads are decoded whole, upright per EXIF. Either
way pixels reach the model as 8 bits per channel: 16-bit values are divided by 257 (0..65535
to 0..255), palettes become colour, transparency is composited over black, and grey and
colour are converted to the model's channel count as Pillow converts them.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

TIFF_SUFFIXES = (".tif", ".tiff")
TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
# Pillow refuses images over twice this many pixels as "decompression bombs" and warns
# above it; this client exists to read large images (a 20,000 x 20,000 PNG is 4e8), so it
# refuses above 2^31 pixels and does not warn.
Image.MAX_IMAGE_PIXELS = 2**30
warnings.simplefilter("ignore", Image.DecompressionBombWarning)
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


class Unreadable(Exception):
    """The file is missing, empty, not an image, truncated or corrupt."""


class Unsupported(Exception):
    """An image the model cannot take (pixel type, channels)."""


# ---- pixels --------------------------------------------------------------------------------


def scale_16bit(pixels: np.ndarray) -> np.ndarray:
    """16-bit (0..65535) to 8-bit (0..255): divided by 257 and rounded."""
    return np.clip(np.round(pixels / 257.0), 0, 255).astype(np.uint8)


def to_8bit(image: Image.Image, path: Path) -> Image.Image:
    """Bring every common Pillow mode to L, LA, RGB or RGBA with 8 bits per channel."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return Image.fromarray(scale_16bit(np.asarray(image, dtype=np.float64)))
    if image.mode == "F":
        raise Unsupported(f"{path}: 32-bit float pixels: save the image as 8- or 16-bit")
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode == "PA":
        return image.convert("RGBA")
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return image
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite transparent pixels over black, the zero a network pads with."""
    if image.mode not in ("LA", "RGBA"):
        return image
    base = Image.new("RGBA", image.size, (0, 0, 0, 255))
    flat = Image.alpha_composite(base, image.convert("RGBA")).convert("RGB")
    return flat.convert("L") if image.mode == "LA" else flat


def to_channels(image: Image.Image, channels: int, path: Path) -> np.ndarray:
    """[H, W, channels] uint8 of an 8-bit L/LA/RGB/RGBA image, as the model takes it."""
    image = flatten_alpha(image)
    if channels not in (1, 3):
        raise Unsupported(
            f"{path}: the model takes {channels} channels; this client converts to 1 or 3 only"
        )
    pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return pixels.reshape(pixels.shape[0], pixels.shape[1], channels)


# ---- reading -------------------------------------------------------------------------------


class Picture:
    """An image opened for segmentation: `pages` planes of height x width, whose pixels
    come as [h, w, channels] uint8 for any rows and columns asked for."""

    def __init__(
        self, path: Path, pages: int, height: int, width: int, channels: int, is_tiff: bool
    ) -> None:
        self.path, self.pages, self.height, self.width = path, pages, height, width
        self.channels, self.is_tiff = channels, is_tiff

    def pixels(self, page: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def whole(self, page: int = 0) -> np.ndarray:
        return self.pixels(page, np.arange(self.height), np.arange(self.width))

    def close(self) -> None:
        """Let go of the file (a TIFF stays open while its tiles are cut)."""


class DecodedPicture(Picture):
    """A PNG, JPEG, ... decoded whole by Pillow."""

    def __init__(self, path: Path, array: np.ndarray) -> None:
        super().__init__(path, 1, array.shape[0], array.shape[1], array.shape[2], False)
        self.array = array

    def pixels(self, page: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return self.array[np.ix_(rows, cols)]


class TiffPicture(Picture):
    """The first series of a TIFF: a memory map of it, or its pages decoded one at a time."""

    def __init__(self, path: Path, tif: tifffile.TiffFile, channels: int) -> None:
        series = tif.series[0]
        first = series.pages[0]
        assert first is not None
        self.axes = first.axes  # YX, YXS (interleaved colour) or SYX (planar colour)
        shape = dict(zip(self.axes, first.shape, strict=True))
        super().__init__(path, len(series.pages), shape["Y"], shape["X"], channels, True)
        self.tif, self.series, self.page_shape = tif, series, first.shape
        self.memmap: np.ndarray | None = None
        if series.dataoffset is not None and not first.is_tiled and first.compression == 1:
            mapped = tifffile.memmap(path, mode="r")
            self.memmap = mapped.reshape(self.pages, *first.shape)
        self.cached: tuple[int, np.ndarray] | None = None

    def page(self, index: int) -> np.ndarray:
        """The page as [H, W] or [H, W, S], without copying a memory map."""
        if self.memmap is not None:
            data = self.memmap[index]
        else:
            if self.cached is None or self.cached[0] != index:
                self.cached = None  # free the previous page before decoding the next
                page = self.series.pages[index]
                assert page is not None
                try:
                    self.cached = (index, page.asarray())
                except Exception as e:  # codecs raise their own types on damaged data
                    raise Unreadable(
                        f"{self.path}: page {index + 1} cannot be decoded ({e})"
                    ) from e
            data = self.cached[1]
        return np.moveaxis(data, 0, -1) if self.axes == "SYX" else data

    def pixels(self, page: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        data = self.page(page)
        top, left = int(rows.min()), int(cols.min())
        block = np.asarray(data[top : int(rows.max()) + 1, left : int(cols.max()) + 1])
        block = block[np.ix_(rows - top, cols - left)]
        if block.dtype == np.uint16:
            block = scale_16bit(block)
        elif block.dtype == np.bool_:
            block = block.astype(np.uint8) * 255
        if block.ndim == 3 and block.shape[2] == 1:
            block = block[:, :, 0]
        return to_channels(Image.fromarray(block), self.channels, self.path)

    def close(self) -> None:
        self.memmap, self.cached = None, None
        self.tif.close()


def _open_tiff(path: Path, channels: int) -> TiffPicture:
    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, OSError, ValueError, struct.error) as e:
        raise Unreadable(f"{path}: not a TIFF that tifffile can read ({e})") from e
    try:
        _check_tiff(path, tif)
        return TiffPicture(path, tif, channels)
    except BaseException:
        tif.close()
        raise


def _check_tiff(path: Path, tif: tifffile.TiffFile) -> None:
    """Refuse what cannot be segmented before anything is sent: a file cut short, pixel
    types and layouts the client does not convert."""
    try:
        series = tif.series[0] if tif.series else None
        pages = list(series.pages) if series is not None else []
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as e:
        raise Unreadable(f"{path}: damaged TIFF ({e}): copy or export it again") from e
    if series is None or not pages or pages[0] is None:
        raise Unreadable(f"{path}: the TIFF holds no image")
    size = path.stat().st_size
    for page in pages:
        if page is None:
            raise Unreadable(f"{path}: damaged TIFF (a page cannot be read)")
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)]
        if not ends or max(ends) > size or min(page.databytecounts) == 0:
            raise Unreadable(
                f"{path}: truncated TIFF: its image data needs {max(ends, default=0)} bytes, "
                f"the file has {size}: copy or export it again"
            )
    first = pages[0]
    if first.dtype not in (np.uint8, np.uint16, np.bool_):
        raise Unsupported(
            f"{path}: {first.dtype} pixels: save the TIFF as 8- or 16-bit unsigned integers"
        )
    samples = dict(zip(first.axes, first.shape, strict=True)).get("S", 1)
    if first.axes not in ("YX", "YXS", "SYX") or samples not in _MODES:
        raise Unsupported(
            f"{path}: TIFF pages of shape {first.shape} ({first.axes}): this client takes "
            "grey, grey+alpha, RGB or RGBA planes"
        )


def _load_pillow(path: Path, channels: int) -> DecodedPicture:
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except UnidentifiedImageError as e:
        raise Unreadable(f"{path}: not an image Pillow can read") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise Unreadable(f"{path}: unreadable image ({e})") from e
    return DecodedPicture(path, to_channels(to_8bit(image, path), channels, path))


def open_picture(path: Path, channels: int) -> Picture:
    """The image at `path`, with pixels for a model of `channels` channels."""
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError as e:
        raise Unreadable(f"{path}: cannot read ({e.strerror or e})") from e
    if not magic:
        raise Unreadable(f"{path}: empty file (0 bytes): copy or export the image again")
    if channels not in (1, 3):
        raise Unsupported(
            f"{path}: the model takes {channels} channels; this client converts to 1 or 3 only"
        )
    if magic in TIFF_MAGIC or path.suffix.lower() in TIFF_SUFFIXES:
        return _open_tiff(path, channels)
    return _load_pillow(path, channels)
