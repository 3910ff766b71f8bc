"""Images in, for client/segment.py (copy the folder as a whole).

A Picture is `pages` planes of height x width. Its raw values (any pixel type, one or more
samples per pixel) are mapped onto the model's input scale once per image (intensity.py
decides how, from the whole image) and converted to the model's channel count: grey and
colour as Pillow converts them, transparency composited over black. `--channel N` keeps one
channel of a multi-channel image.

TIFF and BigTIFF are read by tiffpictures.py, through tifffile. PNG, JPEG and the other
formats Pillow reads are decoded whole, upright per EXIF; palettes become colour; 16-bit
and 32-bit integer and float greys keep their values for the mapping.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import intensity
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

TIFF_SUFFIXES = (".tif", ".tiff")
TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
# Pillow refuses images over twice this many pixels as "decompression bombs" and warns
# above it; this client exists to read large images (a 20,000 x 20,000 PNG is 4e8), so it
# refuses above 2^31 pixels and does not warn.
Image.MAX_IMAGE_PIXELS = 2**30
warnings.simplefilter("ignore", Image.DecompressionBombWarning)
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # samples per pixel -> what they are
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, as Pillow converts RGB to L


class Unreadable(Exception):
    """The file is missing, empty, not an image, truncated or corrupt."""


class Unsupported(Exception):
    """An image the model cannot take (pixel type, channels, intensities)."""


class Picture:
    """An image opened for segmentation: `pages` planes of height x width, whose pixels
    come on the model's scale as [h, w, channels] for any rows and columns asked for."""

    def __init__(
        self, path: Path, pages: int, height: int, width: int, samples: int, is_tiff: bool
    ) -> None:
        self.path, self.pages, self.height, self.width = path, pages, height, width
        self.samples, self.is_tiff = samples, is_tiff
        self.alpha = samples in (2, 4)  # grey or RGB with transparency last
        self.channels = 1
        self.mapping: intensity.Mapping | None = None
        self.notes: list[str] = []  # what was done that the user should know
        self.warnings: list[str] = []  # what may be wrong, each naming a flag
        self.mask_shape: tuple[int, ...] = (pages,) if pages > 1 else ()  # before H, W
        self.mask_tags: dict = {}  # tifffile.imwrite keywords that carry the pixel size

    def raw(self, page: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The file's values at rows x cols of a page, [h, w, samples]."""
        raise NotImplementedError

    def sample(self) -> np.ndarray:
        """The values the image's statistics come from (transparency left out)."""
        raise NotImplementedError

    def declared_bits(self) -> int | None:
        """The bit depth the file declares for its integer values, if any."""
        return None

    def prepare(self, channels: int, rule: intensity.Rule, scale: intensity.Scale) -> None:
        """Decide the image's one mapping onto the model's scale; Unsupported when only a
        flag can say."""
        if channels not in (1, 3):
            raise Unsupported(
                f"{self.path}: the model takes {channels} channels; this client converts to "
                "1 or 3 only"
            )
        self.channels = channels
        values = self.sample()
        if self.alpha:
            values = values[..., :-1]
        try:
            self.mapping, self.warnings = intensity.choose(
                values, rule, scale, self.declared_bits()
            )
        except intensity.Undecidable as e:
            raise Unsupported(f"{self.path}: {e}") from e
        if not self.mapping.identity:
            self.notes.append(self.mapping.describe())

    def pixels(self, page: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The model's input at rows x cols of a page: [h, w, channels], on its scale."""
        assert self.mapping is not None, "prepare() first"
        return to_channels(self.mapping.apply(self.raw(page, rows, cols)), self.channels)

    def whole(self, page: int = 0) -> np.ndarray:
        return self.pixels(page, np.arange(self.height), np.arange(self.width))

    def close(self) -> None:
        """Let go of the file (a TIFF stays open while its tiles are cut)."""


def to_channels(block: np.ndarray, channels: int) -> np.ndarray:
    """[h, w, channels] of [h, w, samples] values on the model's scale: transparency
    composited over black (the zero a network pads with), grey and colour converted as
    Pillow converts them (8-bit values through Pillow itself)."""
    samples = block.shape[2]
    if block.dtype == np.uint8:
        image = Image.fromarray(block[:, :, 0] if samples == 1 else block, MODES[samples])
        if samples in (2, 4):
            base = Image.new("RGBA", image.size, (0, 0, 0, 255))
            flat = Image.alpha_composite(base, image.convert("RGBA")).convert("RGB")
            image = flat.convert("L") if samples == 2 else flat
        pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
        return pixels.reshape(pixels.shape[0], pixels.shape[1], channels)
    values = block.astype(np.float64)
    if samples in (2, 4):
        top = np.iinfo(block.dtype).max if block.dtype.kind in "ui" else 1.0
        values = values[:, :, :-1] * (values[:, :, -1:] / top)
    if values.shape[2] == 3 and channels == 1:
        values = values @ LUMA
    elif values.shape[2] == 1 and channels == 3:
        values = np.repeat(values, 3, axis=2)
    values = values.reshape(block.shape[0], block.shape[1], channels)
    if block.dtype.kind in "ui":
        values = np.round(values)
    return values.astype(block.dtype)


def pick_channel(path: Path, samples: int, channel: int | None) -> int | None:
    """Which sample of [h, w, samples] pixels to keep for `--channel`, None for all."""
    if channel is None:
        return None
    if channel >= samples:
        raise Unsupported(
            f"{path}: --channel {channel}, but the image has channels 0..{samples - 1}"
        )
    return channel


class DecodedPicture(Picture):
    """A PNG, JPEG, ... decoded whole by Pillow."""

    def __init__(self, path: Path, array: np.ndarray, channel: int | None) -> None:
        pick = pick_channel(path, array.shape[2], channel)
        if pick is not None:
            array = array[:, :, pick : pick + 1]
        super().__init__(path, 1, array.shape[0], array.shape[1], array.shape[2], False)
        self.array = array
        self.converted: np.ndarray | None = None

    def raw(self, page: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return self.array[np.ix_(rows, cols)]

    def sample(self) -> np.ndarray:
        step = max(1, -(-self.array.shape[0] * self.array.shape[1] // intensity.STATS_PIXELS))
        return self.array[::step]

    def pixels(self, page: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if self.converted is None:  # once, for the whole image: it is in memory anyway
            self.converted = super().pixels(0, np.arange(self.height), np.arange(self.width))
            self.array = np.empty((0, 0, self.samples), self.array.dtype)  # no longer needed
        return self.converted[np.ix_(rows, cols)]


def decoded_values(image: Image.Image) -> np.ndarray:
    """[H, W, samples] of a Pillow image: 16-bit, 32-bit and float grey keep their values;
    every other mode becomes 8-bit L, LA, RGB or RGBA."""
    if image.mode.startswith("I") or image.mode == "F":
        array = np.asarray(image)
        return array.reshape(*array.shape[:2], 1)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "PA":
        image = image.convert("RGBA")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode not in MODES.values():
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    array = np.asarray(image, dtype=np.uint8)
    return array.reshape(*array.shape[:2], -1)


def _load_pillow(path: Path, channel: int | None) -> DecodedPicture:
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except UnidentifiedImageError as e:
        raise Unreadable(f"{path}: not an image Pillow can read") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise Unreadable(f"{path}: unreadable image ({e})") from e
    return DecodedPicture(path, decoded_values(image), channel)


def open_picture(
    path: Path,
    channels: int,
    rule: intensity.Rule | None = None,
    scale: intensity.Scale | None = None,
    channel: int | None = None,
) -> Picture:
    """The image at `path`, prepared for a model of `channels` channels taking `scale`
    (default: uint8 0..255), its intensities mapped by `rule` (default: auto)."""
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError as e:
        raise Unreadable(f"{path}: cannot read ({e.strerror or e})") from e
    if not magic:
        raise Unreadable(f"{path}: empty file (0 bytes): copy or export the image again")
    if magic in TIFF_MAGIC or path.suffix.lower() in TIFF_SUFFIXES:
        import tiffpictures  # here: it builds on this module

        picture: Picture = tiffpictures.open_tiff(path, channels, channel)
    else:
        picture = _load_pillow(path, channel)
    try:
        picture.prepare(
            channels, rule or intensity.Rule(), scale or intensity.Scale.of("TYPE_UINT8")
        )
    except BaseException:
        picture.close()
        raise
    return picture
