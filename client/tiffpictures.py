"""TIFF images in, for client/segment.py (copy the folder as a whole), through tifffile.

An uncompressed file is memory-mapped and a compressed one decoded one page at a time, so
a large TIFF costs little more than the tile being cut from it. The file's first series
is read with tifffile's own metadata readers: an ImageJ hyperstack or an OME-TIFF says
which of its planes are channels, Z slices and time points. Every plane other than a
channel is an image of its own (Z stacks and time series page by page); the channels are
one pixel's samples (as many as the model takes), or `--channel N` keeps one.

What the file declares about its values (OME SignificantBits, SMaxSampleValue,
MaxSampleValue, BitsPerSample) tells intensity.py its bit depth. Its pixel size (the
resolution tags, the ImageJ unit and spacing, the OME physical sizes) goes into the mask.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import intensity
import numpy as np
import tifffile
from pictures import MODES, Picture, Unreadable, Unsupported, pick_channel

RESOLUTION_TAGS = (282, 283, 296)  # XResolution, YResolution, ResolutionUnit
CENTIMETRES = {"nm": 1e-7, "µm": 1e-4, "um": 1e-4, "mm": 0.1, "cm": 1.0, "m": 100.0}


def ome_pixels(tif: tifffile.TiffFile) -> dict:
    """The OME-XML Pixels element of the first image, as tifffile.xml2dict reads it."""
    if not tif.is_ome or not tif.ome_metadata:
        return {}
    image = tifffile.xml2dict(tif.ome_metadata).get("OME", {}).get("Image", {})
    image = image[0] if isinstance(image, list) else image
    return image.get("Pixels", {}) or {}


def plane_axes(series: tifffile.TiffPageSeries, first: tifffile.TiffPage) -> tuple[str, tuple]:
    """The axes of the series outside one page (e.g. "ZC" of "ZCYX") and their sizes; "Q"
    and the page count when the series does not say."""
    axes, shape = series.axes, tuple(series.shape)
    outer = len(axes) - len(first.axes)
    if outer >= 0 and axes.endswith(first.axes) and math.prod(shape[:outer]) == len(series.pages):
        return axes[:outer], shape[:outer]
    return "Q", (len(series.pages),)


class TiffPicture(Picture):
    """The first series of a TIFF: a memory map of it, or its pages decoded one at a time."""

    def __init__(
        self, path: Path, tif: tifffile.TiffFile, channels: int, channel: int | None
    ) -> None:
        series = tif.series[0]
        first = series.pages[0]
        assert first is not None
        self.path, self.tif, self.series, self.first = path, tif, series, first
        self.page_axes = first.axes  # YX, YXS (interleaved colour) or SYX (planar colour)
        sizes = dict(zip(first.axes, first.shape, strict=True))
        axes, shape = plane_axes(series, first)
        self.planes, (kept_axes, kept_shape) = self.choose_planes(
            axes, shape, channels, channel, sizes.get("S", 1)
        )
        samples = len(self.planes[0]) if len(self.planes[0]) > 1 else sizes.get("S", 1)
        # --channel picks channel planes above, else one of each page's samples
        planar = "C" in axes and shape[axes.index("C")] > 1
        self.pick = None if planar else pick_channel(path, samples, channel)
        super().__init__(
            path,
            len(self.planes),
            sizes["Y"],
            sizes["X"],
            1 if self.pick is not None else samples,
            True,
        )
        self.memmap: np.ndarray | None = None
        if series.dataoffset is not None and not first.is_tiled and first.compression == 1:
            mapped = tifffile.memmap(path, mode="r")
            self.memmap = mapped.reshape(len(series.pages), *first.shape)
        self.cache: dict[int, np.ndarray] = {}
        known = set(kept_axes) <= set("TZ")  # time points and slices, as ImageJ and OME say
        if known:
            self.mask_shape = kept_shape
        self.mask_tags = mask_tags(tif, first, kept_axes if known else None)

    def choose_planes(
        self, axes: str, shape: tuple, channels: int, channel: int | None, samples: int
    ) -> tuple[list[tuple[int, ...]], tuple[str, tuple]]:
        """The file pages of each image (one, or the channels of one pixel), and the axes
        and sizes the images span (the mask's, before Y and X)."""
        numbers = np.arange(math.prod(shape)).reshape(shape)
        if "C" not in axes:
            return [(int(n),) for n in numbers.ravel()], (axes, shape)
        c = axes.index("C")
        count = shape[c]
        kept = (axes.replace("C", ""), shape[:c] + shape[c + 1 :])
        if count == 1:
            return [(int(n),) for n in numbers.ravel()], kept
        if channel is not None:
            if channel >= count:
                raise Unsupported(
                    f"{self.path}: --channel {channel}, but the image has channels "
                    f"{self.channel_list(count)}"
                )
            return [(int(n),) for n in np.take(numbers, channel, axis=c).ravel()], kept
        if count == channels and samples == 1:
            moved = np.moveaxis(numbers, c, -1).reshape(-1, count)
            return [tuple(int(n) for n in row) for row in moved], kept
        raise Unsupported(
            f"{self.path}: {count} channels ({self.channel_list(count)}) and the model takes "
            f"{channels}: choose one with --channel N"
        )

    def channel_list(self, count: int) -> str:
        names = ome_pixels(self.tif).get("Channel", [])
        names = names if isinstance(names, list) else [names]
        labels = [str(n.get("Name", "")) if isinstance(n, dict) else "" for n in names]
        labels += [""] * (count - len(labels))
        return ", ".join(f"{i} {label}".strip() for i, label in enumerate(labels[:count]))

    def plane(self, number: int) -> np.ndarray:
        """File page `number` as [H, W] or [H, W, S], without copying a memory map."""
        if self.memmap is not None:
            data = self.memmap[number]
        else:
            if number not in self.cache:
                if len(self.cache) >= len(self.planes[0]):
                    self.cache.clear()  # free the previous image's pages before decoding
                page = self.series.pages[number]
                assert page is not None
                try:
                    self.cache[number] = page.asarray()
                except Exception as e:  # codecs raise their own types on damaged data
                    raise Unreadable(
                        f"{self.path}: page {number + 1} cannot be decoded ({e})"
                    ) from e
            data = self.cache[number]
        return np.moveaxis(data, 0, -1) if self.page_axes == "SYX" else data

    def planes_of(self, page: int, rows: slice | np.ndarray, cols: slice) -> np.ndarray:
        """[h, w, samples] of the page's planes at rows (a slice, or the span of indices)."""
        blocks = [np.asarray(self.plane(n)[rows, cols]) for n in self.planes[page]]
        block = blocks[0] if len(blocks) == 1 else np.stack(blocks, axis=-1)
        block = block.reshape(*block.shape[:2], -1)
        return block[:, :, self.pick : self.pick + 1] if self.pick is not None else block

    def raw(self, page: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        top, left = int(rows.min()), int(cols.min())
        span = (slice(top, int(rows.max()) + 1), slice(left, int(cols.max()) + 1))
        return self.planes_of(page, *span)[np.ix_(rows - top, cols - left)]

    def sample(self) -> np.ndarray:
        pages, rows = intensity.even_rows(self.height, self.width, self.pages)
        return np.concatenate([self.planes_of(p, rows, slice(None)) for p in pages])

    def declared_bits(self) -> int | None:
        dtype = np.dtype(self.first.dtype)
        if dtype.kind not in "ui" or dtype.itemsize == 1:
            return None
        significant = ome_pixels(self.tif).get("SignificantBits")
        maxima = [2 ** int(significant) - 1 if significant else None]
        for code in (340, 281):  # SMaxSampleValue, MaxSampleValue
            value = self.first.tags.valueof(code)
            maxima.append(int(np.max(value)) if value is not None else None)
        bits = int(self.first.bitspersample)
        return intensity.declared_bits(bits, 8 * dtype.itemsize, *maxima)

    def close(self) -> None:
        self.memmap, self.cache = None, {}
        self.tif.close()


def mask_tags(tif: tifffile.TiffFile, first: tifffile.TiffPage, axes: str | None) -> dict:
    """tifffile.imwrite keywords that give the mask the input's pixel size: its resolution
    tags, and the ImageJ unit and spacing or the OME physical sizes where `axes` (the
    mask's, before Y and X: T and Z only) allow."""
    x, y, unit = (first.tags.valueof(code) for code in RESOLUTION_TAGS)
    tags: dict = {}
    if x is not None and y is not None:
        tags = {"resolution": (x, y), "resolutionunit": unit if unit is not None else 2}
    if tif.is_imagej and axes is not None:
        found = tif.imagej_metadata or {}
        kept = {k: found[k] for k in ("unit", "spacing", "finterval") if k in found}
        return {**tags, "imagej": True, "metadata": {"axes": axes + "YX", **kept}}
    pixels = ome_pixels(tif)
    if pixels and axes is not None:
        keys = [f"PhysicalSize{a}{u}" for a in "XYZ" for u in ("", "Unit")]
        kept = {k: pixels[k] for k in keys if k in pixels}
        size_x, size_y = kept.get("PhysicalSizeX"), kept.get("PhysicalSizeY")
        to_cm = CENTIMETRES.get(str(kept.get("PhysicalSizeXUnit", "µm")))
        if size_x and size_y and to_cm and int(tags.get("resolutionunit", 1)) == 1:
            tags = {"resolution": (1 / (size_x * to_cm), 1 / (size_y * to_cm))}
            tags["resolutionunit"] = "CENTIMETER"
        return {**tags, "ome": True, "metadata": {"axes": axes + "YX", **kept}}
    return tags


def open_tiff(path: Path, channels: int, channel: int | None) -> TiffPicture:
    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, OSError, ValueError, struct.error) as e:
        raise Unreadable(f"{path}: not a TIFF that tifffile can read ({e})") from e
    try:
        check_tiff(path, tif)
        return TiffPicture(path, tif, channels, channel)
    except BaseException:
        tif.close()
        raise


def check_tiff(path: Path, tif: tifffile.TiffFile) -> None:
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
    if np.dtype(first.dtype).kind not in "biuf":
        raise Unsupported(
            f"{path}: {first.dtype} pixels: this client reads integer and float images"
        )
    samples = dict(zip(first.axes, first.shape, strict=True)).get("S", 1)
    if first.axes not in ("YX", "YXS", "SYX") or samples not in MODES:
        raise Unsupported(
            f"{path}: TIFF pages of shape {first.shape} ({first.axes}): this client takes "
            "grey, grey+alpha, RGB or RGBA planes"
        )
