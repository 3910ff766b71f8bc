#!/usr/bin/env python3
"""Segment images of any size with the U-Net served by Triton Inference Server, over gRPC.

    python client/segment.py samples/*.png                 # writes into ./out
    python client/segment.py -u myhost:8001 -b 4 --concurrency 2 photos/ --out-dir masks
    python client/segment.py mosaic.tif --tile 512 --overlap 0.25 --blend gaussian

For every image NAME.ext it writes the mask NAME.mask.png (NAME.mask.tif for TIFF inputs
and huge masks; 0 background, 255 foreground; class indices for multi-class models) and
NAME.overlay.png, the mask painted over the image (not for huge or multi-page images).

This folder stands alone (copy it; it needs tritonclient[grpc], numpy, Pillow, tifffile and
tqdm). segment.py is the command line and the scheduling; served_model.py the model on the
server; tiling.py and blending.py the tiles, around a predictor callable; pictures.py,
tiffpictures.py and intensity.py images in; imagefiles.py masks out. docs/client.md says
how it tiles, maps intensities and fails.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import blending
import imagefiles
import intensity
import numpy as np
import pictures
import served_model
import tiling
from tqdm import tqdm

# Exit codes. When several kinds of failure happen in one run, the largest code wins;
# the images that could be processed are processed either way.
EXIT_OK, EXIT_USAGE, EXIT_UNREADABLE, EXIT_REFUSED = 0, 2, 3, 4
EXIT_INFER_FAILED, EXIT_OUT_DIR, EXIT_MODEL_NOT_READY, EXIT_UNREACHABLE = 5, 6, 7, 8
EXIT_MEANINGS = {
    EXIT_OK: "every image was segmented",
    EXIT_USAGE: "bad command line, or a --tile the model cannot take (nothing is sent)",
    EXIT_UNREADABLE: "an input is missing, empty, not an image, truncated or corrupt",
    EXIT_REFUSED: "an image the model cannot take (pixel type, channels, intensities)",
    EXIT_INFER_FAILED: "the server failed, timed out, or stayed at capacity through --retries",
    EXIT_OUT_DIR: "the output folder cannot be written (nothing is sent)",
    EXIT_MODEL_NOT_READY: "the server is up but the model is missing or not ready",
    EXIT_UNREACHABLE: "no server answers at --url (after --retries)",
}
EXIT_CODES_HELP = (
    "exit codes:\n"
    + "".join(f"  {code}  {meaning}\n" for code, meaning in EXIT_MEANINGS.items())
    + "When several happen, the largest code is returned; the other images are still processed."
)
EXIT_CODES = {  # for each kind of ModelError
    served_model.REFUSED: EXIT_REFUSED,
    served_model.FAILED: EXIT_INFER_FAILED,
    served_model.NOT_READY: EXIT_MODEL_NOT_READY,
    served_model.UNREACHABLE: EXIT_UNREACHABLE,
}

DEFAULT_URL = "127.0.0.1:8001"  # the kit's default (unetkit.core.DEFAULT_GRPC_URL)
NO_THRESHOLD = (
    "note: the model's config publishes no threshold (a repository made before the client "
    "tiled): blended tiles are thresholded at 0.5, the kit's default; `make repository` "
    "publishes it"
)


class Failure(Exception):
    """One image or one run could not be processed: a one-line reason and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


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
        f"(default: the largest size the model takes up to {tiling.DEFAULT_TILE} and the server's "
        "max_image_side)",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        help=f"least overlap of neighbouring tiles, as a fraction of a tile (default: "
        f"{tiling.DEFAULT_OVERLAP}; 0 for models whose output is smaller than their input, which "
        "need none: their tiles join seamlessly)",
    )
    parser.add_argument(
        "--blend",
        choices=blending.BLENDS,
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
    intensity.add_arguments(parser)
    args = parser.parse_args(argv)
    args.rule = intensity.rule_from_arguments(parser, args)
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


# ---- the run -----------------------------------------------------------------------------


class Segmenter:
    """Sends every tile of every image, --batch-size tiles per request, with up to
    --concurrency requests in flight, and assembles the answers into mask files. Images
    are opened when their first tile's turn comes, in input order."""

    def __init__(
        self, predictor: tiling.Predictor, args: argparse.Namespace, spec: served_model.ModelSpec
    ) -> None:
        self.args, self.spec = args, spec
        self.batch_size = min(args.batch_size, spec.max_batch_size)
        threshold = spec.threshold if spec.threshold is not None else 0.5
        try:
            self.tiler = tiling.Tiler.for_model(
                spec.rules, spec.geometry, spec.max_side, spec.fixed_size, args.tile,
                args.overlap, args.blend, classes=spec.classes, threshold=threshold,
            )  # fmt: skip
        except ValueError as e:
            raise Failure(str(e), EXIT_USAGE) from e
        self.window = tiling.SlidingWindow(predictor, args.concurrency, pictures.Unreadable)
        self.scale = intensity.Scale.of(spec.input_type)
        self.head: tuple[tiling.TiledPage, int] | None = None
        self.tiles: Iterator[tuple[tiling.TiledPage, int]] = iter(())
        self.failures: list[Failure] = []
        self.finished = 0
        self.said_threshold = False
        self.open_jobs: dict[int, imagefiles.ImageJob] = {}  # by id(): to clean up on Ctrl-C
        tty = sys.stderr.isatty()  # a progress bar on a terminal only
        self.bar = tqdm(total=0, unit="tile", disable=not tty, dynamic_ncols=True, leave=False)

    def say(self, line: str, error: bool = False) -> None:
        tqdm.write(line, file=sys.stderr if error else sys.stdout)

    def fail(self, failure: Failure) -> None:
        self.failures.append(failure)
        self.say(f"error: {failure}", error=True)

    # -- images become tiles, in input order, opened only when their turn comes ------------

    def all_tiles(self, paths: list[Path]) -> Iterator[tuple[tiling.TiledPage, int]]:
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

    def open(self, path: Path) -> imagefiles.ImageJob:
        try:
            picture = pictures.open_picture(
                path, self.spec.channels, self.args.rule, self.scale, self.args.channel
            )
        except (pictures.Unreadable, pictures.Unsupported) as e:
            code = EXIT_UNREADABLE if isinstance(e, pictures.Unreadable) else EXIT_REFUSED
            raise Failure(str(e), code) from e
        try:
            job = imagefiles.ImageJob(path, picture, self.args.out_dir, self.spec.classes)
        except OSError as e:
            picture.close()
            raise Failure(f"{path}: {e}", EXIT_OUT_DIR) from e
        for note in job.notes:
            self.say(f"note: {path}: {note}")
        for warning in picture.warnings:
            self.say(f"warning: {path}: {warning}", error=True)
        self.open_jobs[id(job)] = job
        return job

    def start_page(self, job: imagefiles.ImageJob, index: int) -> tiling.TiledPage:
        picture, in_flight = job.picture, self.args.concurrency * self.batch_size
        read = functools.partial(picture.pixels, index)  # (rows, cols) -> the model's input
        page = self.tiler.page(picture.height, picture.width, read, in_flight, (job, index))
        blended = page.blend != "none" and self.spec.classes == 1
        if blended and self.spec.threshold is None and not self.said_threshold:
            self.said_threshold = True
            self.say(NO_THRESHOLD, error=True)
        job.tiles += page.plan.count
        job.tile_shape = page.plan.tile_shape
        self.bar.total += page.plan.count
        self.bar.refresh()
        return page

    def peek(self) -> tuple[tiling.TiledPage, int] | None:
        if self.head is None:
            self.head = next(self.tiles, None)
        return self.head

    def take_batch(self) -> tiling.Batch | None:
        """Up to --batch-size tiles of one size, in order, whose rows fit their page's band."""
        taken: list[tuple[tiling.TiledPage, int]] = []
        while len(taken) < self.batch_size and (head := self.peek()) is not None:
            page, tile = head
            if page.owner[0].failed:
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
        return tiling.Batch(taken, taken[0][0].output) if taken else None

    def submit(self, batch: tiling.Batch) -> None:
        """Send the batch; a tile whose pixels cannot be read fails its image, not the batch."""
        for page, error in self.window.submit(batch):
            self.fail_job(page.owner[0], Failure(str(error), EXIT_UNREADABLE))

    def run(self, paths: list[Path]) -> None:
        self.tiles = self.all_tiles(paths)
        try:
            self.loop()
        finally:  # Ctrl-C or a bug: leave no partial file behind
            self.window.close()
            for job in list(self.open_jobs.values()):
                job.abort()
            self.bar.close()

    def loop(self) -> None:
        while True:
            while self.window.in_flight < self.args.concurrency:
                batch = self.take_batch()
                if batch is None:
                    break
                self.submit(batch)
            if self.window.in_flight == 0:
                if self.peek() is not None:  # a band waits only for tiles in flight
                    raise RuntimeError("the next tile waits for rows no request will bring")
                return
            self.receive(*self.window.next_done())

    # -- answers become masks ----------------------------------------------------------------

    def receive(
        self, batch: tiling.Batch, outputs: np.ndarray | None, error: BaseException | None
    ) -> None:
        if error is not None:
            if not isinstance(error, served_model.ModelError):
                raise error
            shape = "x".join(map(str, batch.tiles[0][0].plan.tile_shape))
            hint = f" (tiles of {shape}, {len(batch.tiles)} per request)"
            for job in {id(p.owner[0]): p.owner[0] for p, _ in batch.tiles}.values():
                self.fail_job(job, Failure(f"{job.path}: {error}{hint}", EXIT_CODES[error.kind]))
            return
        assert outputs is not None
        for (page, tile), output in zip(batch.tiles, outputs, strict=True):
            if not page.owner[0].failed:
                self.add(page, tile, output)
        self.bar.update(len(batch.tiles))

    def add(self, page: tiling.TiledPage, tile: int, output: np.ndarray) -> None:
        job, index = page.owner
        try:
            if job.place(page, index, tile, output, self.spec.geometry is None):
                self.finish(job)
        except ValueError as e:  # an output of another size than the config says
            self.fail_job(job, Failure(f"{job.path}: {e}", EXIT_INFER_FAILED))
        except OSError as e:
            self.fail_job(job, self.out_failure(job, e))

    def out_failure(self, job: imagefiles.ImageJob, error: OSError) -> Failure:
        reason = error.strerror or error
        return Failure(f"{job.path}: cannot write into {self.args.out_dir}: {reason}", EXIT_OUT_DIR)

    def finish(self, job: imagefiles.ImageJob) -> None:
        try:
            line = job.finish()
        except OSError as e:
            self.fail_job(job, self.out_failure(job, e))
            return
        self.open_jobs.pop(id(job), None)
        self.finished += 1
        self.say(line)

    def fail_job(self, job: imagefiles.ImageJob, failure: Failure) -> None:
        if job.failed:
            return
        self.open_jobs.pop(id(job), None)
        job.abort()
        self.fail(failure)


def summary(count: int, segmenter: Segmenter, seconds: float) -> str:
    done, window = segmenter.finished, segmenter.window
    line = f"segmented {done}/{count} images in {seconds:.2f} s"
    if done:
        lat = np.array(window.seconds) * 1000
        line += (
            f" ({done / seconds:.1f} images/s, {window.tiles_sent / seconds:.1f} tiles/s); "
            f"latency per request p50 {np.percentile(lat, 50):.1f} ms, "
            f"p90 {np.percentile(lat, 90):.1f} ms, max {lat.max():.1f} ms"
        )
    if segmenter.failures:
        line += f"; {len(segmenter.failures)} failed (reasons above)"
    return line


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        imagefiles.check_writable(args.out_dir)
    except OSError as e:
        reason = f"{e.strerror or e}; choose another --out-dir"
        print(f"error: cannot write into {args.out_dir}: {reason}", file=sys.stderr)
        return EXIT_OUT_DIR
    try:
        with served_model.ServedModel(
            args.url, args.model, args.model_version, args.timeout, args.retries
        ) as model:
            model.wait_until_ready()
            spec = model.read_spec()
            segmenter = Segmenter(model.predict, args, spec)
            if args.batch_size > spec.max_batch_size:
                segmenter.say(
                    f"note: --batch-size {args.batch_size} lowered to the model's "
                    f"max_batch_size {spec.max_batch_size}",
                    error=True,
                )
            if args.verbose:
                segmenter.say(f"model {args.model!r}: {spec}; {segmenter.tiler}", error=True)
            paths, problems = imagefiles.list_images(args.inputs)
            for problem in problems:
                segmenter.fail(Failure(problem, EXIT_UNREADABLE))
            started = time.perf_counter()
            segmenter.run(paths)
            seconds = time.perf_counter() - started
    except served_model.ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CODES[e.kind]
    except Failure as failure:
        print(f"error: {failure}", file=sys.stderr)
        return failure.code
    print(summary(len(paths) + len(problems), segmenter, seconds))
    return max((f.code for f in segmenter.failures), default=EXIT_OK)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
