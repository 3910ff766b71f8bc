"""Masks out, for client/segment.py (copy the folder as a whole).

For every image NAME.ext: the mask NAME.mask.png (NAME.mask.tif for TIFF inputs and for
masks over 2^31 pixels; 0 background, 255 foreground; class indices for multi-class
models) and NAME.overlay.png, the mask painted over the image (skipped, with a note, above
2^24 pixels and for multi-page images).

Every file is written under a temporary name and renamed when complete, so a file that
exists is whole. A TIFF mask is streamed to disk as its rows come (tiled, deflate, BigTIFF
when over 4 GiB), from a writer thread that tifffile pulls the rows from.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
from pictures import Picture
from PIL import Image
from tiling import TiledPage

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
OUTPUT_SUFFIXES = (".mask.png", ".mask.tif", ".overlay.png")
# A mask of more pixels than a PNG reader commonly handles is written as TIFF.
PNG_MAX_PIXELS = 2**31
OVERLAY_MAX_PIXELS = 2**24  # 4096 x 4096: a picture to look at, not to analyse
TIFF_TILE = 256
# Classic TIFF stores 32-bit offsets; above this many bytes the mask becomes a BigTIFF.
CLASSIC_TIFF_MAX_BYTES = 2**32 - 2**25


# ---- writing -------------------------------------------------------------------------------


def temporary_beside(target: Path) -> Path:
    """A new hidden file in the target's folder, for writing before the rename."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(name)


def publish(tmp: Path, target: Path) -> None:
    os.chmod(tmp, 0o644)  # mkstemp makes 0600: others could not read the result
    os.replace(tmp, target)


def save_png_atomic(pixels: np.ndarray, target: Path) -> None:
    tmp = temporary_beside(target)
    try:
        Image.fromarray(pixels).save(tmp, format="PNG")
        publish(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def overlay(picture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The picture (the model's input, [H, W, C]) as 8-bit RGB with each class painted over
    it (class 1 red)."""
    if picture.dtype == np.uint16:
        picture = np.round(picture / 257.0).astype(np.uint8)
    elif picture.dtype != np.uint8:  # float, 0..1
        picture = np.clip(np.round(picture * 255.0), 0, 255).astype(np.uint8)
    rgb = np.repeat(picture, 3, axis=2) if picture.shape[2] == 1 else picture.copy()
    # A band of rows at a time, only the labelled pixels: a large image's overlay costs its
    # RGB and little more.
    for top in range(0, len(rgb), 256):
        band, classes = rgb[top : top + 256], mask[top : top + 256]
        labelled = classes > 0
        colours = OVERLAY_COLOURS[(classes[labelled].astype(np.int64) - 1) % len(OVERLAY_COLOURS)]
        band[labelled] = ((band[labelled].astype(np.uint16) + colours) // 2).astype(np.uint8)
    return rgb


OVERLAY_COLOURS = np.array(
    [[255, 0, 0], [0, 200, 0], [0, 90, 255], [255, 200, 0], [200, 0, 255], [0, 220, 220]],
    dtype=np.uint8,
)


class PngMask:
    """A one-page mask held whole and written as PNG when complete."""

    def __init__(self, target: Path, height: int, width: int, scale: int) -> None:
        self.target, self.scale = target, scale
        self.mask = np.zeros((height, width), np.uint8)

    def add(self, page: int, top: int, rows: np.ndarray) -> None:
        self.mask[top : top + len(rows)] = rows

    def kept(self) -> np.ndarray:
        return self.mask

    def close(self) -> None:
        save_png_atomic(self.mask * np.uint8(self.scale), self.target)

    def abort(self) -> None:
        """Nothing was written yet."""


class TiffMask:
    """A mask of any number of pages, streamed into a TIFF as its rows come.

    Rows may arrive out of order between pages (the next page's tiles start before the
    last one's end); they are handed to the writer in file order. tifffile pulls them from
    a queue in its own thread, compresses them and writes them; the queue is short, so the
    rows waiting for the disk stay few.
    """

    _ABORT = object()

    def __init__(
        self,
        target: Path,
        shape: tuple[int, ...],
        scale: int,
        keep: bool,
        tags: dict | None = None,
    ) -> None:
        """shape: the mask's (..., H, W); tags: tifffile.imwrite keywords (the pixel size)."""
        self.target, self.shape, self.tags = target, shape, tags or {}
        self.height, self.width = shape[-2:]
        self.pages = int(np.prod(shape[:-2]))
        self.scale = np.uint8(scale)
        self.early: dict[tuple[int, int], np.ndarray] = {}  # (page, top) -> rows
        self.expected = (0, 0)  # the (page, top) the file needs next
        self.copy = np.zeros((self.height, self.width), np.uint8) if keep else None
        self.queue: queue.Queue[object] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.tmp = temporary_beside(target)
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()

    def _write(self) -> None:
        bigtiff = self.pages * self.height * self.width > CLASSIC_TIFF_MAX_BYTES
        tags = {k: v for k, v in self.tags.items() if not (bigtiff and k == "imagej")}
        try:
            tifffile.imwrite(
                self.tmp,
                data=self._tiles(),
                shape=self.shape,
                dtype=np.uint8,
                photometric="minisblack",
                tile=(TIFF_TILE, TIFF_TILE),
                compression="zlib",
                bigtiff=bigtiff,
                # one tile at a time: with workers, tifffile gathers up to 512 MiB of
                # tiles before compressing them
                maxworkers=1,
                **tags,
            )
        except BaseException as e:  # handed to the main thread by close()
            self.error = e

    def _tiles(self) -> Iterator[np.ndarray]:
        """The mask in tifffile's tile order: pages, then rows of tiles, left to right."""
        for _ in range(self.pages):
            carry = np.empty((0, self.width), np.uint8)
            for top in range(0, self.height, TIFF_TILE):
                needed = min(TIFF_TILE, self.height - top)
                while len(carry) < needed:
                    item = self.queue.get()
                    if item is self._ABORT:
                        raise RuntimeError("aborted")
                    carry = np.concatenate([carry, item])  # type: ignore[list-item]
                rows, carry = carry[:needed], carry[needed:]
                for left in range(0, self.width, TIFF_TILE):
                    yield rows[:, left : left + TIFF_TILE]

    def _put(self, item: object) -> None:
        while True:
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if not self.thread.is_alive():
                    return  # the writer failed; close() reports why

    def add(self, page: int, top: int, rows: np.ndarray) -> None:
        if self.copy is not None and page == 0:
            self.copy[top : top + len(rows)] = rows
        self.early[(page, top)] = rows * self.scale
        while self.expected in self.early:
            rows = self.early.pop(self.expected)
            self._put(rows)
            page, top = self.expected[0], self.expected[1] + len(rows)
            self.expected = (page + 1, 0) if top == self.height else (page, top)

    def kept(self) -> np.ndarray:
        assert self.copy is not None
        return self.copy

    def close(self) -> None:
        if self.expected != (self.pages, 0):
            raise ValueError(f"mask closed before its rows were all written: at {self.expected}")
        self.thread.join()
        if self.error is not None:
            self.tmp.unlink(missing_ok=True)
            if isinstance(self.error, OSError):
                raise self.error
            raise OSError(f"writing the TIFF failed: {self.error}") from self.error
        publish(self.tmp, self.target)

    def abort(self) -> None:
        if self.thread.is_alive():
            self._put(self._ABORT)
            self.thread.join()
        self.tmp.unlink(missing_ok=True)


def list_images(inputs: list[Path]) -> tuple[list[Path], list[str]]:
    """Expand folders (their image files, minus this client's own outputs), keep order;
    and a one-line problem for each entry that is neither an image file nor such a folder,
    and for each image whose name another one has (its outputs would overwrite theirs)."""
    paths: list[Path] = []
    problems: list[str] = []
    stems: dict[str, Path] = {}

    def take(path: Path) -> None:
        if path.stem in stems:
            problems.append(
                f"{path}: same name as {stems[path.stem]}, whose outputs it would "
                "overwrite: rename it or run it separately"
            )
        else:
            stems[path.stem] = path
            paths.append(path)

    for entry in inputs:
        if entry.is_dir():
            found = sorted(
                p
                for p in entry.iterdir()
                if p.is_file()
                and p.suffix.lower() in IMAGE_SUFFIXES
                and not p.name.endswith(OUTPUT_SUFFIXES)
            )
            if not found:
                problems.append(f"{entry}: folder holds no images")
            for path in found:
                take(path)
        elif entry.is_file():
            take(entry)
        else:
            problems.append(f"{entry}: no such file or folder")
    return paths, problems


def check_writable(out_dir: Path) -> None:
    """Make the output folder and prove a file can be created in it; OSError if not."""
    out_dir.mkdir(parents=True, exist_ok=True)
    temporary_beside(out_dir / "probe").unlink()


def resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A mask scaled to (H, W), nearest neighbour: for models whose output lies on
    another scale than their input."""
    resized = Image.fromarray(mask).resize((shape[1], shape[0]), Image.Resampling.NEAREST)
    return np.asarray(resized)


class ImageJob:
    """One input image on its way to its files: the mask, streamed in as rows are finished,
    and the overlay painted when the mask is complete. Creating it creates the mask's
    temporary file (OSError when the folder cannot take it); finish() renames it into
    place, abort() removes it. Either one lets go of the picture."""

    def __init__(self, source: Path, picture: Picture, out_dir: Path, classes: int) -> None:
        pages, height, width = picture.pages, picture.height, picture.width
        as_tiff = picture.is_tiff or pages * height * width > PNG_MAX_PIXELS
        self.path, self.picture = source, picture
        self.mask_path = out_dir / f"{source.stem}.mask.{'tif' if as_tiff else 'png'}"
        self.overlay_path = out_dir / f"{source.stem}.overlay.png"
        self.overlay = pages == 1 and height * width <= OVERLAY_MAX_PIXELS
        why = f"{pages} pages" if pages > 1 else f"over {OVERLAY_MAX_PIXELS} pixels"
        self.notes = list(picture.notes)  # what the user should know: the mapping, ...
        if not self.overlay:
            self.notes.append(f"no overlay ({why}); the mask is written in full")
        scale = 255 if classes == 1 else 1
        try:
            self.sink: PngMask | TiffMask = (
                TiffMask(
                    self.mask_path,
                    (*picture.mask_shape, height, width),
                    scale,
                    keep=self.overlay,
                    tags=picture.mask_tags,
                )
                if as_tiff
                else PngMask(self.mask_path, height, width, scale)
            )
        except OSError as e:
            raise OSError(f"cannot write {self.mask_path}: {e.strerror or e}") from e
        self.pages_left = pages
        self.started = time.perf_counter()
        self.tiles, self.tile_shape = 0, (0, 0)
        self.foreground = 0
        self.failed = False

    def place(
        self, page: TiledPage, index: int, tile: int, output: np.ndarray, rescale: bool
    ) -> bool:
        """Put the model's output for a tile of page `index` into its mask and write the
        rows it finishes; whether the whole image is done. A lone tile's 2-D output on
        another scale than the input is scaled back where `rescale` (the config does not
        place the output on the input); another size is a ValueError."""
        plan = page.plan
        expected = (plan.rows.out, plan.cols.out)
        if output.shape[:2] != expected:
            if not (rescale and plan.count == 1 and output.ndim == 2):
                raise ValueError(
                    f"the model answered {output.shape[0]}x{output.shape[1]} for a "
                    f"{plan.rows.tile}x{plan.cols.tile} tile, its config says "
                    f"{expected[0]}x{expected[1]}: export the model again with the kit"
                )
            output = resize_nearest(output, expected)
        page.assembler.add(tile, output)
        while (band := page.assembler.finished_rows()) is not None:
            top, rows = band
            self.sink.add(index, top, rows)
            self.foreground += int(np.count_nonzero(rows))
        if page.assembler.done:
            self.pages_left -= 1
        return self.pages_left == 0

    def finish(self) -> str:
        """Write the mask under its name, then the overlay; one line saying what was done."""
        try:
            self.sink.close()
            if self.overlay:
                picture = self.picture.whole(0)
                save_png_atomic(overlay(picture, self.sink.kept()), self.overlay_path)
        finally:
            self.picture.close()
        picture = self.picture
        pixels = picture.pages * picture.height * picture.width
        pages = f" x {picture.pages} pages" if picture.pages > 1 else ""
        tiles = (
            f"  {self.tiles} tiles of {self.tile_shape[0]}x{self.tile_shape[1]}"
            if self.tiles > picture.pages
            else ""
        )
        return (
            f"{self.path}  {picture.height}x{picture.width}{pages}"
            f"  {(time.perf_counter() - self.started) * 1000:7.1f} ms{tiles}"
            f"  foreground {100 * self.foreground / pixels:5.1f}%  -> {self.mask_path}"
        )

    def abort(self) -> None:
        """Leave no partial file behind."""
        self.failed = True
        self.sink.abort()
        self.picture.close()
