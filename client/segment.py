#!/usr/bin/env python3
"""Segment images of any size with the U-Net served by Triton Inference Server, over gRPC.

    python client/segment.py samples/*.png                 # writes into ./out
    python client/segment.py -u myhost:8001 -b 4 --concurrency 2 photos/ --out-dir masks
    python client/segment.py mosaic.tif --tile 512 --overlap 0.25 --blend gaussian

For every image NAME.ext it writes the mask, NAME.mask.png (NAME.mask.tif for TIFF inputs
and for masks over 2^31 pixels; 0 background, 255 foreground; class indices for
multi-class models), and NAME.overlay.png, the mask painted over the image (skipped, with
a note, above 2^24 pixels and for multi-page TIFFs).

This folder stands alone: segment.py, tiling.py (where tiles go, how they blend) and
imagefiles.py (images in, masks out) need only tritonclient[grpc], numpy, Pillow, tifffile
and tqdm, so copy it into your own project. What it does, in order:
  1. asks the server whether the model is ready, and reads its configuration: channels and
     classes, the size rule (heights `min_height` + k * `size_multiple_h`, likewise for
     widths), where the output lies on the input (`output_shrink_h/w`, `output_offset_h/w`:
     a 'valid' U-Net's output is smaller than its input), the MASK `threshold`, the largest
     side it accepts (`max_image_side`) and max_batch_size;
  2. opens each image (a TIFF memory-mapped or a page at a time) and plans its tiles: one
     when the image fits in --tile, else tiles of --tile overlapping by --overlap;
  3. cuts each tile's pixels, mirroring the image wherever a tile reaches outside it (the
     border a 'valid' network eats, the padding up to a size the model takes), and sends
     tiles in batches (-b) with several requests in flight (--concurrency);
  4. puts the answers together: a lone tile's MASK is cropped to the image; the PROB of
     overlapping tiles is blended (--blend) and then thresholded, or argmax'ed, as the
     model takes its MASK; rows are finished one band at a time and go to the mask file as
     they complete, so a huge image needs memory for a band, not for its PROB;
  5. writes every file to a temporary name and renames it, so a file that exists is whole.
"""

from __future__ import annotations

import argparse
import queue
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import imagefiles
import numpy as np
import tiling
import tritonclient.grpc as grpcclient
from PIL import Image
from tqdm import tqdm
from tritonclient.utils import InferenceServerException

# Exit codes. When several kinds of failure happen in one run, the largest code wins;
# the images that could be processed are processed either way.
EXIT_OK = 0
EXIT_USAGE = 2  # bad command line (argparse's own code), or a --tile the model cannot take
EXIT_UNREADABLE = 3  # a file is missing, empty, not an image, truncated or corrupt
EXIT_REFUSED = 4  # an image the model cannot take (pixel type, channels)
EXIT_INFER_FAILED = 5  # the server failed, timed out, or stayed at capacity through the retries
EXIT_OUT_DIR = 6  # the output folder cannot be written
EXIT_MODEL_NOT_READY = 7  # the server answers, but the model is missing or not ready
EXIT_UNREACHABLE = 8  # no server at --url, even after the retries

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK}  every image was segmented
  {EXIT_USAGE}  bad command line, or a --tile the model cannot take (nothing is sent)
  {EXIT_UNREADABLE}  an input is missing, empty, not an image, truncated or corrupt
  {EXIT_REFUSED}  an image the model cannot take (unsupported pixel type or channels)
  {EXIT_INFER_FAILED}  the server failed, timed out, or stayed at capacity through --retries
  {EXIT_OUT_DIR}  the output folder cannot be written (nothing is sent)
  {EXIT_MODEL_NOT_READY}  the server is up but the model is missing or not ready
  {EXIT_UNREACHABLE}  no server answers at --url (after --retries)
When several happen, the largest code is returned; the other images are still processed.
"""

DEFAULT_URL = "127.0.0.1:8001"  # the kit's default (unetkit.core.DEFAULT_GRPC_URL)
# The default --tile: big enough that the overlap costs little, small enough that a
# server's activations stay modest (a U-Net keeps hundreds of bytes per pixel).
DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 0.25  # MONAI's sliding_window_inference default
OVERLAY_MAX_PIXELS = 2**24  # 4096 x 4096: a picture to look at, not to analyse
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
OUTPUT_SUFFIXES = (".mask.png", ".mask.tif", ".overlay.png")
MASK = "MASK"
PROB = "PROB"


class Failure(Exception):
    """One image or one run could not be processed: a one-line reason and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ---- what the model takes (copies of the kit's own; tests/client/test_parity.py) -------------


@dataclass(frozen=True)
class SizeRule:
    """Valid sizes along one axis: minimum + k * multiple (k >= 0). A copy of the kit's
    unetkit.core.SizeRule, so that this folder stands alone; a test keeps the two equal."""

    multiple: int
    minimum: int

    def next_valid(self, size: int) -> int:
        if size <= self.minimum:
            return self.minimum
        return self.minimum + -(-(size - self.minimum) // self.multiple) * self.multiple


def rules_from_parameters(parameters: dict[str, str]) -> tuple[SizeRule, SizeRule]:
    """The (height, width) rules of the model's config parameters; configs of the kit's
    first release publish only `size_multiple`."""
    multiple = int(parameters.get("size_multiple") or 1)
    return (
        SizeRule(
            int(parameters.get("size_multiple_h") or multiple),
            int(parameters.get("min_height") or multiple),
        ),
        SizeRule(
            int(parameters.get("size_multiple_w") or multiple),
            int(parameters.get("min_width") or multiple),
        ),
    )


def geometry_from_parameters(parameters: dict[str, str]) -> tuple[int, int, int, int] | None:
    """(shrink_h, shrink_w, offset_h, offset_w) of the output on the input, or None when the
    config does not say (an output on another scale, or a config older than the field)."""
    keys = ("output_shrink_h", "output_shrink_w", "output_offset_h", "output_offset_w")
    if not all(parameters.get(key) for key in keys):
        return None
    shrink_h, shrink_w, offset_h, offset_w = (int(parameters[key]) for key in keys)
    return shrink_h, shrink_w, offset_h, offset_w


def threshold_from_parameters(parameters: dict[str, str]) -> float | None:
    """MASK's threshold on PROB (one-class models), None when the config does not say."""
    text = parameters.get("threshold")
    return float(text) if text else None


@dataclass(frozen=True)
class ModelSpec:
    """What the client learns from the server about the model."""

    channels: int
    classes: int
    max_batch_size: int
    fixed_size: tuple[int, int] | None
    height_rule: SizeRule
    width_rule: SizeRule
    max_side: int | None
    geometry: tuple[int, int, int, int] | None
    threshold: float | None

    @property
    def rules(self) -> tuple[SizeRule, SizeRule]:
        """The sizes the model takes; a model exported with a fixed size takes only that."""
        if self.fixed_size is not None:
            height, width = self.fixed_size
            return SizeRule(height, height), SizeRule(width, width)
        return self.height_rule, self.width_rule

    @property
    def shrinks(self) -> bool:
        """Whether the output is smaller than the input (a 'valid' U-Net)."""
        return self.geometry is not None and max(self.geometry[:2]) > 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="segment.py",
        description=__doc__.split("\n\n")[0],
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders of images")
    parser.add_argument(
        "-u", "--url", default=DEFAULT_URL, help=f"Triton gRPC address (default: {DEFAULT_URL})"
    )
    parser.add_argument("-m", "--model", default="unet", help="model name (default: unet)")
    parser.add_argument(
        "-x", "--model-version", default="", help="model version (default: the server's choice)"
    )
    parser.add_argument(
        "-b", "--batch-size", type=int, default=1, help="tiles per request (default: 1)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight at once (default: 1)"
    )
    parser.add_argument(
        "--tile",
        type=int,
        help="largest input tile, in pixels per side; images that do not fit are tiled "
        f"(default: the largest size the model takes up to {DEFAULT_TILE} and the server's "
        "max_image_side)",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        help=f"least overlap of neighbouring tiles, as a fraction of a tile (default: "
        f"{DEFAULT_OVERLAP}; 0 for models whose output is smaller than their input, which "
        "need none: their tiles join seamlessly)",
    )
    parser.add_argument(
        "--blend",
        choices=tiling.BLENDS,
        help="how overlapping tiles combine: weights of a Gaussian (sigma 1/8 of the tile) or "
        "falling linearly to the tile's edges, applied to PROB before the mask is taken; or "
        "none: each pixel from the tile whose centre is nearest, MASK only (default: "
        "gaussian; none for models whose output is smaller than their input)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for one request (default: 60)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries, with exponential backoff, while the server is UNAVAILABLE or at "
        "capacity (default: 3)",
    )
    parser.add_argument(
        "-o", "--out-dir", type=Path, default=Path("out"), help="output folder (default: ./out)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="say more about each step")
    args = parser.parse_args(argv)
    for flag, value, low in (
        ("--batch-size", args.batch_size, 1),
        ("--concurrency", args.concurrency, 1),
        ("--retries", args.retries, 0),
        ("--tile", args.tile, 1),
    ):
        if value is not None and value < low:
            parser.error(f"{flag} must be at least {low}, got {value}")
    if not args.timeout > 0:
        parser.error(f"--timeout must be positive, got {args.timeout}")
    if args.overlap is not None and not 0 <= args.overlap < 1:
        parser.error(f"--overlap is a fraction of a tile, 0 <= overlap < 1, got {args.overlap}")
    return args


# ---- talking to the server ---------------------------------------------------------------


# What a busy server answers: UNAVAILABLE from Triton's bounded queue ("Exceeds maximum
# queue size", "Request timeout expired") and from the kit's CPU model ("server at
# capacity"), RESOURCE_EXHAUSTED from servers that say it that way. Both are retried.
RETRIED = ("StatusCode.UNAVAILABLE", "StatusCode.RESOURCE_EXHAUSTED")


def is_unavailable(error: InferenceServerException) -> bool:
    return error.status() in RETRIED


def is_busy(error: InferenceServerException) -> bool:
    """The server answered, but is at capacity (not: nothing listens at --url)."""
    message = error.message() or ""
    return error.status() == "StatusCode.RESOURCE_EXHAUSTED" or any(
        reason in message
        for reason in ("maximum queue size", "Request timeout expired", "at capacity")
    )


def backoff_seconds(attempt: int) -> float:
    return min(0.5 * 2**attempt, 8.0)


def wait_for_model(client: grpcclient.InferenceServerClient, args: argparse.Namespace) -> None:
    """Return once the model is ready, retrying while the server starts; Failure otherwise."""
    for attempt in range(args.retries + 1):
        last = attempt == args.retries
        try:
            client.is_server_live(client_timeout=args.timeout)
        except InferenceServerException as e:
            if last:
                raise Failure(
                    f"no Triton server answers at {args.url} ({e.status() or e}, tried "
                    f"{args.retries + 1} times): start one with `make serve`, or point --url "
                    "at yours",
                    EXIT_UNREACHABLE,
                ) from e
            time.sleep(backoff_seconds(attempt))
            continue
        try:
            if client.is_model_ready(args.model, args.model_version, client_timeout=args.timeout):
                return
        except InferenceServerException as e:
            if last:
                raise Failure(
                    f"cannot ask for model {args.model!r}: {e}", EXIT_MODEL_NOT_READY
                ) from e
        if last:
            version = f" version {args.model_version}" if args.model_version else ""
            raise Failure(
                f"model {args.model!r}{version} is not ready on {args.url}: check the name "
                "(-m, -x) and the server log (a model that failed to load)",
                EXIT_MODEL_NOT_READY,
            )
        time.sleep(backoff_seconds(attempt))


def read_model_spec(
    client: grpcclient.InferenceServerClient, args: argparse.Namespace
) -> ModelSpec:
    config = client.get_model_config(
        args.model, args.model_version, as_json=True, client_timeout=args.timeout
    )["config"]
    inputs = config.get("input", [])
    outputs = {o["name"]: o for o in config.get("output", [])}
    if len(inputs) != 1 or inputs[0].get("data_type") != "TYPE_UINT8" or MASK not in outputs:
        raise Failure(
            f"model {args.model!r} does not take one UINT8 image and give a MASK: "
            "is it the kit's U-Net?",
            EXIT_MODEL_NOT_READY,
        )
    dims = [int(d) for d in inputs[0]["dims"]]
    if int(config.get("max_batch_size", 0)) < 1 or len(dims) != 3 or dims[2] < 1:
        raise Failure(
            f"model {args.model!r} input dims {dims} are not [H, W, C] with batching",
            EXIT_MODEL_NOT_READY,
        )
    parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
    prob_dims = [int(d) for d in outputs.get(PROB, {}).get("dims", [1])]
    height, width = dims[0], dims[1]
    try:
        height_rule, width_rule = rules_from_parameters(parameters)
        geometry = geometry_from_parameters(parameters)
        threshold = threshold_from_parameters(parameters)
        max_side = int(parameters["max_image_side"]) if parameters.get("max_image_side") else None
    except ValueError as e:
        raise Failure(
            f"model {args.model!r} has config parameters that are not numbers ({e})",
            EXIT_MODEL_NOT_READY,
        ) from e
    return ModelSpec(
        channels=dims[2],
        classes=max(prob_dims[-1], 1),
        max_batch_size=int(config["max_batch_size"]),
        fixed_size=(height, width) if height > 0 and width > 0 else None,
        height_rule=height_rule,
        width_rule=width_rule,
        max_side=max_side,
        geometry=geometry,
        threshold=threshold,
    )


def choose_tile(spec: ModelSpec, wanted: int | None) -> tuple[int, int]:
    """The input tile (H, W): per axis, the largest size the model takes that is at most
    --tile, by default at most DEFAULT_TILE and the server's max_image_side."""
    if spec.fixed_size is not None:
        return spec.fixed_size
    if wanted is not None and spec.max_side is not None and wanted > spec.max_side:
        raise Failure(
            f"--tile {wanted} is larger than the server takes (max_image_side "
            f"{spec.max_side}): choose at most {spec.max_side}",
            EXIT_USAGE,
        )
    limit = wanted if wanted is not None else min(DEFAULT_TILE, spec.max_side or DEFAULT_TILE)
    sizes = [tiling.largest_valid(r.multiple, r.minimum, limit) for r in spec.rules]
    if sizes[0] is None or sizes[1] is None:
        smallest = max(r.minimum for r in spec.rules)
        raise Failure(
            f"tiles of at most {limit} pixels are smaller than the model takes "
            f"({spec.rules[0].minimum}x{spec.rules[1].minimum} at least): "
            f"{'choose --tile' if wanted else 'pass --tile'} {smallest} or more",
            EXIT_USAGE,
        )
    return sizes[0], sizes[1]


# ---- images in, masks out ----------------------------------------------------------------


def list_images(inputs: list[Path]) -> tuple[list[Path], list[Failure]]:
    """Expand folders (their image files, minus this client's own outputs), keep order."""
    paths: list[Path] = []
    problems: list[Failure] = []
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
                problems.append(Failure(f"{entry}: folder holds no images", EXIT_UNREADABLE))
            paths.extend(found)
        elif entry.is_file():
            paths.append(entry)
        else:
            problems.append(Failure(f"{entry}: no such file or folder", EXIT_UNREADABLE))
    return paths, problems


def check_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = imagefiles.temporary_beside(out_dir / "probe")
        probe.unlink()
    except OSError as e:
        raise Failure(
            f"cannot write into {out_dir}: {e.strerror or e}; choose another --out-dir",
            EXIT_OUT_DIR,
        ) from e


def open_picture(path: Path, channels: int) -> imagefiles.Picture:
    try:
        return imagefiles.open_picture(path, channels)
    except imagefiles.Unreadable as e:
        raise Failure(str(e), EXIT_UNREADABLE) from e
    except imagefiles.Unsupported as e:
        raise Failure(str(e), EXIT_REFUSED) from e


def resize_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    resized = Image.fromarray(mask).resize((shape[1], shape[0]), Image.Resampling.NEAREST)
    return np.asarray(resized)


# ---- the run -----------------------------------------------------------------------------


@dataclass
class Job:
    """One input image on its way through the client."""

    path: Path
    picture: imagefiles.Picture
    sink: imagefiles.PngMask | imagefiles.TiffMask
    mask_path: Path
    overlay: bool
    pages_left: int
    started: float = field(default_factory=time.perf_counter)
    tiles: int = 0
    tile_shape: tuple[int, int] = (0, 0)
    foreground: int = 0
    failed: bool = False


@dataclass
class Page:
    """One page (plane) of an image: its tiles and the mask they are assembled into."""

    job: Job
    index: int
    plan: tiling.Plan
    assembler: tiling.Assembler
    output: str  # what is asked of the server for its tiles: MASK or PROB

    def pixels(self, tile: int) -> np.ndarray:
        """The tile's input pixels, mirrored from the image where it reaches outside."""
        row, col = self.plan.position(tile)
        rows = self.plan.rows.input_indices(row)
        cols = self.plan.cols.input_indices(col)
        try:
            return self.job.picture.pixels(self.index, rows, cols)
        except imagefiles.Unreadable as e:
            raise Failure(str(e), EXIT_UNREADABLE) from e


@dataclass
class Batch:
    tiles: list[tuple[Page, int]]
    output: str
    attempts: int = 0
    started: float = 0.0


class Segmenter:
    """Sends every tile of every image, --batch-size tiles per request, with up to
    --concurrency requests in flight; retries UNAVAILABLE requests; assembles the answers."""

    def __init__(
        self, client: grpcclient.InferenceServerClient, args: argparse.Namespace, spec: ModelSpec
    ) -> None:
        self.client, self.args, self.spec = client, args, spec
        self.batch_size = min(args.batch_size, spec.max_batch_size)
        self.tile = choose_tile(spec, args.tile)
        self.blend = args.blend or ("none" if spec.shrinks else "gaussian")
        overlap = args.overlap
        self.overlap = (
            overlap if overlap is not None else (0.0 if spec.shrinks else DEFAULT_OVERLAP)
        )
        self.done: queue.Queue[tuple[Batch, object, InferenceServerException | None]] = (
            queue.Queue()
        )
        self.in_flight = 0
        self.head: tuple[Page, int] | None = None
        self.tiles: Iterator[tuple[Page, int]] = iter(())
        self.latencies_ms: list[float] = []
        self.failures: list[Failure] = []
        self.finished = 0
        self.tiles_sent = 0
        self.said_threshold = False
        self.open_jobs: dict[int, Job] = {}  # by id(): what to clean up on Ctrl-C
        self.bar: tqdm | None = None  # on a terminal, from the first image on

    def say(self, line: str, error: bool = False) -> None:
        tqdm.write(line, file=sys.stderr if error else sys.stdout)

    def fail(self, failure: Failure) -> None:
        self.failures.append(failure)
        self.say(f"error: {failure}", error=True)

    # -- images become tiles, in input order, opened only when their turn comes ------------

    def all_tiles(self, paths: list[Path]) -> Iterator[tuple[Page, int]]:
        for path in paths:
            try:
                job = self.open(path)
            except Failure as failure:
                self.fail(failure)
                continue
            for index in range(job.picture.pages):
                if job.failed:
                    break
                page = self.start_page(job, index)
                for tile in range(page.plan.count):
                    yield page, tile

    def open(self, path: Path) -> Job:
        picture = open_picture(path, self.spec.channels)
        pages, height, width = picture.pages, picture.height, picture.width
        as_tiff = picture.is_tiff or pages * height * width > imagefiles.PNG_MAX_PIXELS
        mask_path = self.args.out_dir / f"{path.stem}.mask.{'tif' if as_tiff else 'png'}"
        overlay = pages == 1 and height * width <= OVERLAY_MAX_PIXELS
        if not overlay:
            why = f"{pages} pages" if pages > 1 else f"over {OVERLAY_MAX_PIXELS} pixels"
            self.say(f"note: {path}: no overlay ({why}); the mask is written in full")
        scale = 255 if self.spec.classes == 1 else 1
        try:
            if as_tiff:
                sink: imagefiles.PngMask | imagefiles.TiffMask = imagefiles.TiffMask(
                    mask_path, pages, height, width, scale, keep=overlay
                )
            else:
                sink = imagefiles.PngMask(mask_path, height, width, scale)
        except OSError as e:
            picture.close()
            raise Failure(
                f"{path}: cannot write {mask_path}: {e.strerror or e}", EXIT_OUT_DIR
            ) from e
        job = Job(path, picture, sink, mask_path, overlay, pages)
        self.open_jobs[id(job)] = job
        return job

    def start_page(self, job: Job, index: int) -> Page:
        picture, spec = job.picture, self.spec
        rules = tuple((r.multiple, r.minimum) for r in spec.rules)
        plan = tiling.plan_image(
            picture.height,
            picture.width,
            rules,  # type: ignore[arg-type]
            self.tile,
            spec.geometry or (0, 0, 0, 0),
            self.overlap,
        )
        lone = plan.count == 1
        blend = "none" if lone else self.blend
        if (
            blend != "none"
            and spec.classes == 1
            and spec.threshold is None
            and not self.said_threshold
        ):
            self.said_threshold = True
            self.say(
                "note: the model's config publishes no threshold (a repository made before "
                "the client tiled): blended tiles are thresholded at 0.5, the kit's default; "
                "`make repository` publishes it",
                error=True,
            )
        in_flight_tiles = self.args.concurrency * self.batch_size
        window = -(-in_flight_tiles // plan.cols.count) + 1
        assembler = tiling.Assembler(
            plan, blend, spec.classes, spec.threshold if spec.threshold is not None else 0.5, window
        )
        job.tiles += plan.count
        job.tile_shape = plan.tile_shape
        if self.bar is None:
            self.bar = tqdm(
                total=plan.count,
                unit="tile",
                disable=not sys.stderr.isatty(),
                dynamic_ncols=True,
                leave=False,
            )
        else:
            self.bar.total += plan.count
            self.bar.refresh()
        return Page(job, index, plan, assembler, MASK if blend == "none" else PROB)

    def peek(self) -> tuple[Page, int] | None:
        if self.head is None:
            self.head = next(self.tiles, None)
        return self.head

    def take_batch(self) -> Batch | None:
        """Up to --batch-size tiles of one size, in order, whose rows fit their page's band."""
        taken: list[tuple[Page, int]] = []
        while len(taken) < self.batch_size and (head := self.peek()) is not None:
            page, tile = head
            if page.job.failed:
                self.head = None
                continue
            if taken:
                first = taken[0][0]
                if (page.plan.tile_shape, page.output) != (first.plan.tile_shape, first.output):
                    break
            if not page.assembler.admits(tile):
                break
            taken.append(head)
            self.head = None
        return Batch(taken, taken[0][0].output) if taken else None

    def submit(self, batch: Batch) -> None:
        """Send the batch; a tile whose pixels cannot be read fails its image, not the batch."""
        read = {}
        for page, tile in batch.tiles:
            if not page.job.failed:
                try:
                    read[id(page), tile] = page.pixels(tile)
                except Failure as failure:
                    self.fail_job(page.job, failure)
        batch.tiles = [(page, tile) for page, tile in batch.tiles if not page.job.failed]
        if not batch.tiles:
            return
        pixels = np.stack([read[id(page), tile] for page, tile in batch.tiles])
        image = grpcclient.InferInput("IMAGE", list(pixels.shape), "UINT8")
        image.set_data_from_numpy(pixels)
        batch.started = time.perf_counter()
        self.client.async_infer(
            self.args.model,
            [image],
            callback=lambda result, error: self.done.put((batch, result, error)),
            model_version=self.args.model_version,
            outputs=[grpcclient.InferRequestedOutput(batch.output)],
            client_timeout=self.args.timeout,
        )
        self.in_flight += 1
        self.tiles_sent += len(batch.tiles)

    def run(self, paths: list[Path]) -> None:
        self.tiles = self.all_tiles(paths)
        try:
            self.loop()
        finally:  # Ctrl-C or a bug: leave no partial file behind
            for job in list(self.open_jobs.values()):
                job.sink.abort()
                job.picture.close()
            if self.bar is not None:
                self.bar.close()

    def loop(self) -> None:
        while True:
            while self.in_flight < self.args.concurrency:
                batch = self.take_batch()
                if batch is None:
                    break
                self.submit(batch)
            if self.in_flight == 0:
                if self.peek() is not None:  # a band waits only for tiles in flight
                    raise RuntimeError("the next tile waits for rows no request will bring")
                return
            batch, result, error = self.done.get()
            self.in_flight -= 1
            if error is not None and is_unavailable(error) and batch.attempts < self.args.retries:
                time.sleep(backoff_seconds(batch.attempts))
                batch.attempts += 1
                self.submit(batch)
                continue
            self.receive(batch, result, error)

    # -- answers become masks ----------------------------------------------------------------

    def receive(self, batch: Batch, result: object, error: InferenceServerException | None) -> None:
        jobs = {id(page.job): page.job for page, _ in batch.tiles}.values()
        if error is not None:
            code = {
                "StatusCode.INVALID_ARGUMENT": EXIT_REFUSED,
                "StatusCode.UNAVAILABLE": EXIT_INFER_FAILED if is_busy(error) else EXIT_UNREACHABLE,
            }.get(error.status() or "", EXIT_INFER_FAILED)
            shape = "x".join(map(str, batch.tiles[0][0].plan.tile_shape))
            hint = f" (tiles of {shape}, {len(batch.tiles)} per request)"
            for job in jobs:
                self.fail_job(job, Failure(f"{job.path}: {error}{hint}", code))
            return
        self.latencies_ms.append((time.perf_counter() - batch.started) * 1000)
        outputs = result.as_numpy(batch.output)  # type: ignore[attr-defined]
        for (page, tile), output in zip(batch.tiles, outputs, strict=True):
            if not page.job.failed:
                self.add(page, tile, output)
        if self.bar is not None:
            self.bar.update(len(batch.tiles))

    def add(self, page: Page, tile: int, output: np.ndarray) -> None:
        job, plan = page.job, page.plan
        expected = (plan.rows.out, plan.cols.out)
        if output.shape[:2] != expected:
            if self.spec.geometry is None and plan.count == 1 and output.ndim == 2:
                # A config that does not place the output on the input (an output on
                # another scale): the mask is scaled back, as this client always did.
                output = resize_nearest(output, expected)
            else:
                self.fail_job(
                    job,
                    Failure(
                        f"{job.path}: the model answered {output.shape[0]}x{output.shape[1]} "
                        f"for a {plan.rows.tile}x{plan.cols.tile} tile, its config says "
                        f"{expected[0]}x{expected[1]}: export the model again with the kit",
                        EXIT_INFER_FAILED,
                    ),
                )
                return
        page.assembler.add(tile, output)
        try:
            while (band := page.assembler.finished_rows()) is not None:
                top, rows = band
                job.sink.add(page.index, top, rows)
                job.foreground += int(np.count_nonzero(rows))
        except OSError as e:
            self.fail_job(job, self.out_failure(job, e))
            return
        if page.assembler.done:
            job.pages_left -= 1
            if job.pages_left == 0:
                self.finish(job)

    def out_failure(self, job: Job, error: OSError) -> Failure:
        return Failure(
            f"{job.path}: cannot write into {self.args.out_dir}: {error.strerror or error}",
            EXIT_OUT_DIR,
        )

    def finish(self, job: Job) -> None:
        try:
            job.sink.close()
            if job.overlay:
                picture = job.picture.whole(0)
                target = self.args.out_dir / f"{job.path.stem}.overlay.png"
                imagefiles.save_png_atomic(imagefiles.overlay(picture, job.sink.kept()), target)
        except OSError as e:
            self.fail_job(job, self.out_failure(job, e))
            return
        finally:
            job.picture.close()
        self.open_jobs.pop(id(job), None)
        self.finished += 1
        picture = job.picture
        pixels = picture.pages * picture.height * picture.width
        pages = f" x {picture.pages} pages" if picture.pages > 1 else ""
        tiles = (
            f"  {job.tiles} tiles of {job.tile_shape[0]}x{job.tile_shape[1]}"
            if job.tiles > picture.pages
            else ""
        )
        self.say(
            f"{job.path}  {picture.height}x{picture.width}{pages}"
            f"  {(time.perf_counter() - job.started) * 1000:7.1f} ms{tiles}"
            f"  foreground {100 * job.foreground / pixels:5.1f}%  -> {job.mask_path}"
        )

    def fail_job(self, job: Job, failure: Failure) -> None:
        if job.failed:
            return
        job.failed = True
        self.open_jobs.pop(id(job), None)
        job.sink.abort()
        job.picture.close()
        self.fail(failure)


def summary(count: int, segmenter: Segmenter, seconds: float) -> str:
    done = segmenter.finished
    line = f"segmented {done}/{count} images in {seconds:.2f} s"
    if done:
        lat = np.array(segmenter.latencies_ms)
        line += (
            f" ({done / seconds:.1f} images/s, {segmenter.tiles_sent / seconds:.1f} tiles/s); "
            f"latency per request p50 {np.percentile(lat, 50):.1f} ms, "
            f"p90 {np.percentile(lat, 90):.1f} ms, max {lat.max():.1f} ms"
        )
    if segmenter.failures:
        line += f"; {len(segmenter.failures)} failed (reasons above)"
    return line


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        check_out_dir(args.out_dir)
        client = grpcclient.InferenceServerClient(args.url)
    except Failure as failure:
        print(f"error: {failure}", file=sys.stderr)
        return failure.code
    except InferenceServerException as e:
        print(f"error: cannot use --url {args.url}: {e}", file=sys.stderr)
        return EXIT_UNREACHABLE
    with client:
        try:
            wait_for_model(client, args)
            spec = read_model_spec(client, args)
            segmenter = Segmenter(client, args, spec)
        except Failure as failure:
            print(f"error: {failure}", file=sys.stderr)
            return failure.code
        if args.batch_size > spec.max_batch_size:
            print(
                f"note: --batch-size {args.batch_size} lowered to the model's max_batch_size "
                f"{spec.max_batch_size}",
                file=sys.stderr,
            )
        if args.verbose:
            print(
                f"model {args.model!r} at {args.url}: {spec}; tiles up to "
                f"{segmenter.tile[0]}x{segmenter.tile[1]}, overlap {segmenter.overlap}, "
                f"blend {segmenter.blend}",
                file=sys.stderr,
            )
        paths, problems = list_images(args.inputs)
        for problem in problems:
            segmenter.fail(problem)
        unique: list[Path] = []
        stems: dict[str, Path] = {}
        for path in paths:
            if path.stem in stems:
                segmenter.fail(
                    Failure(
                        f"{path}: same name as {stems[path.stem]}, whose outputs it would "
                        "overwrite: rename it or run it separately",
                        EXIT_UNREADABLE,
                    )
                )
                continue
            stems[path.stem] = path
            unique.append(path)
        started = time.perf_counter()
        segmenter.run(unique)
        seconds = time.perf_counter() - started
    print(summary(len(paths) + len(problems), segmenter, seconds))
    return max((f.code for f in segmenter.failures), default=EXIT_OK)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
