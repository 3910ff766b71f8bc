#!/usr/bin/env python3
"""Segment images with the U-Net served by Triton Inference Server, over gRPC.

    python client/segment.py samples/*.png                 # writes into ./out
    python client/segment.py -u myhost:8001 -b 4 --concurrency 2 photos/ --out-dir masks

For every image NAME.ext it writes NAME.mask.png (0 background, 255 foreground; class
indices for multi-class models) and NAME.overlay.png (the mask painted over the image).

This file stands alone: it needs only tritonclient[grpc], numpy and Pillow, so copy it
into your own project. What it does, in order:
  1. asks the server whether the model is ready, and reads its configuration: channels,
     fixed size if any, the size rule (config parameters `min_height` + k * `size_multiple_h`,
     likewise for widths), the largest
     side it accepts (`max_image_side`) and max_batch_size;
  2. reads each image, applies its EXIF orientation, converts it to the model's channels
     (16-bit to 8-bit by scaling, palette to colour, transparency composited over black);
  3. pads it by mirroring up to the next valid size (or resizes it to the fixed size),
     sends images of the same size in batches, and crops (or resizes) the mask back to
     the original size;
  4. writes both pictures to a temporary name and renames it, so a file that exists is
     always complete.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from PIL import Image, ImageOps, UnidentifiedImageError
from tritonclient.utils import InferenceServerException

# Exit codes. When several kinds of failure happen in one run, the largest code wins;
# the images that could be processed are processed either way.
EXIT_OK = 0
EXIT_USAGE = 2  # bad command line (argparse's own code)
EXIT_UNREADABLE = 3  # a file is missing, not an image, truncated or corrupt
EXIT_REFUSED = 4  # an image the model cannot take (mode, channels, size)
EXIT_INFER_FAILED = 5  # the server failed or timed out on a request
EXIT_OUT_DIR = 6  # the output folder cannot be written
EXIT_MODEL_NOT_READY = 7  # the server answers, but the model is missing or not ready
EXIT_UNREACHABLE = 8  # no server at --url, even after the retries

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK}  every image was segmented
  {EXIT_USAGE}  bad command line
  {EXIT_UNREADABLE}  an input is missing, not an image, truncated or corrupt
  {EXIT_REFUSED}  an image the model cannot take (unsupported mode, channels or size)
  {EXIT_INFER_FAILED}  the server failed or timed out on a request
  {EXIT_OUT_DIR}  the output folder cannot be written (nothing is sent)
  {EXIT_MODEL_NOT_READY}  the server is up but the model is missing or not ready
  {EXIT_UNREACHABLE}  no server answers at --url (after --retries)
When several happen, the largest code is returned; the other images are still processed.
"""

DEFAULT_URL = "127.0.0.1:8001"  # the kit's default (unetkit.core.DEFAULT_GRPC_URL)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
OUTPUT_SUFFIXES = (".mask.png", ".overlay.png")
OVERLAY_COLOURS = np.array(
    [[255, 0, 0], [0, 200, 0], [0, 90, 255], [255, 200, 0], [200, 0, 255], [0, 220, 220]],
    dtype=np.uint8,
)


class Failure(Exception):
    """One image or one run could not be processed: a one-line reason and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SizeRule:
    """Valid sizes along one axis: minimum + k * multiple (k >= 0). A copy of the kit's
    unetkit.core.SizeRule, so that this file stands alone; a test keeps the two equal."""

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

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an HxW image is sent at: the fixed size, or padded up to the rule."""
        if self.fixed_size is not None:
            return self.fixed_size
        return self.height_rule.next_valid(height), self.width_rule.next_valid(width)


@dataclass
class Item:
    """One input image on its way through the client."""

    path: Path
    picture: np.ndarray  # 8-bit, original size, channels as the model takes them
    sent: np.ndarray  # what goes to the server: padded or resized, HxWxC
    resized: bool  # False: padded at the bottom and right


@dataclass
class Batch:
    items: list[Item]
    attempts: int = 0
    started: float = field(default=0.0)


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
        "-b", "--batch-size", type=int, default=1, help="images per request (default: 1)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight at once (default: 1)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for one request (default: 60)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries, with exponential backoff, while the server is UNAVAILABLE (default: 3)",
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
    ):
        if value < low:
            parser.error(f"{flag} must be at least {low}, got {value}")
    if not args.timeout > 0:
        parser.error(f"--timeout must be positive, got {args.timeout}")
    return args


# ---- talking to the server ---------------------------------------------------------------


def is_unavailable(error: InferenceServerException) -> bool:
    return error.status() == "StatusCode.UNAVAILABLE"


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
    if len(inputs) != 1 or inputs[0].get("data_type") != "TYPE_UINT8" or "MASK" not in outputs:
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
    prob_dims = [int(d) for d in outputs.get("PROB", {}).get("dims", [1])]
    height, width = dims[0], dims[1]
    try:
        height_rule, width_rule = rules_from_parameters(parameters)
    except ValueError as e:
        raise Failure(
            f"model {args.model!r} has size parameters that are not integers ({e})",
            EXIT_MODEL_NOT_READY,
        ) from e
    return ModelSpec(
        channels=dims[2],
        classes=max(prob_dims[-1], 1),
        max_batch_size=int(config["max_batch_size"]),
        fixed_size=(height, width) if height > 0 and width > 0 else None,
        height_rule=height_rule,
        width_rule=width_rule,
        max_side=int(parameters["max_image_side"]) if parameters.get("max_image_side") else None,
    )


# ---- images in ---------------------------------------------------------------------------


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


def to_8bit(image: Image.Image, path: Path) -> Image.Image:
    """Bring every common mode to L, LA, RGB or RGBA with 8 bits per channel."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey: scale 0..65535 to 0..255.
        pixels = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(np.round(pixels / 257.0), 0, 255).astype(np.uint8))
    if image.mode == "F":
        raise Failure(f"{path}: 32-bit float pixels: save the image as 8- or 16-bit", EXIT_REFUSED)
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


def load_picture(path: Path, channels: int) -> np.ndarray:
    """HxWxC uint8 pixels as the model takes them, upright per EXIF; Failure if impossible."""
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except UnidentifiedImageError as e:
        raise Failure(f"{path}: not an image Pillow can read", EXIT_UNREADABLE) from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise Failure(f"{path}: unreadable image ({e})", EXIT_UNREADABLE) from e
    image = flatten_alpha(to_8bit(image, path))
    if channels == 1:
        image = image.convert("L")
    elif channels == 3:
        image = image.convert("RGB")
    else:
        raise Failure(
            f"{path}: the model takes {channels} channels; this client converts to 1 or 3 only",
            EXIT_REFUSED,
        )
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels.reshape(pixels.shape[0], pixels.shape[1], channels)


def prepare(path: Path, spec: ModelSpec) -> Item:
    picture = load_picture(path, spec.channels)
    height, width = picture.shape[:2]
    if spec.max_side is not None and max(height, width) > spec.max_side and not spec.fixed_size:
        raise Failure(
            f"{path}: {height}x{width} is larger than the server takes (max side "
            f"{spec.max_side}): downscale or tile the image",
            EXIT_REFUSED,
        )
    target_h, target_w = spec.network_size(height, width)
    if spec.fixed_size is not None:
        sent = np.asarray(
            Image.fromarray(picture.squeeze(2) if spec.channels == 1 else picture).resize(
                (target_w, target_h), Image.Resampling.BILINEAR
            )
        ).reshape(target_h, target_w, spec.channels)
    else:
        pad = ((0, target_h - height), (0, target_w - width), (0, 0))
        sent = np.pad(picture, pad, mode="symmetric")
    return Item(path, picture, np.ascontiguousarray(sent), spec.fixed_size is not None)


# ---- masks out ---------------------------------------------------------------------------


def mask_to_original(mask: np.ndarray, item: Item) -> np.ndarray:
    """Undo what prepare() did: crop the padding, or resize back from the fixed size."""
    height, width = item.picture.shape[:2]
    if not item.resized and mask.shape[0] >= height and mask.shape[1] >= width:
        return mask[:height, :width]
    return np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST))


def overlay(picture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = np.repeat(picture, 3, axis=2) if picture.shape[2] == 1 else picture.copy()
    labelled = mask > 0
    colours = OVERLAY_COLOURS[(mask.astype(np.int64) - 1) % len(OVERLAY_COLOURS)]
    blended = (0.5 * rgb + 0.5 * colours).astype(np.uint8)
    rgb[labelled] = blended[labelled]
    return rgb


def save_png_atomic(pixels: np.ndarray, target: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600: others could not read the result
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_outputs(item: Item, mask: np.ndarray, spec: ModelSpec, out_dir: Path) -> Path:
    mask = mask_to_original(mask, item)
    visible = (mask * 255).astype(np.uint8) if spec.classes == 1 else mask
    stem = item.path.stem
    try:
        save_png_atomic(visible, out_dir / f"{stem}.mask.png")
        save_png_atomic(overlay(item.picture, mask), out_dir / f"{stem}.overlay.png")
    except OSError as e:
        raise Failure(
            f"{item.path}: cannot write into {out_dir}: {e.strerror or e}", EXIT_OUT_DIR
        ) from e
    return out_dir / f"{stem}.mask.png"


def check_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise Failure(
            f"cannot write into {out_dir}: {e.strerror or e}; choose another --out-dir",
            EXIT_OUT_DIR,
        ) from e


# ---- the run -----------------------------------------------------------------------------


def make_batches(items: list[Item], batch_size: int) -> list[Batch]:
    """Images of the same size, in input order, up to batch_size per request."""
    by_size: dict[tuple[int, ...], list[Item]] = {}
    for item in items:
        by_size.setdefault(item.sent.shape, []).append(item)
    return [
        Batch(group[i : i + batch_size])
        for group in by_size.values()
        for i in range(0, len(group), batch_size)
    ]


class Runner:
    """Keeps up to --concurrency async requests in flight and retries UNAVAILABLE ones."""

    def __init__(
        self, client: grpcclient.InferenceServerClient, args: argparse.Namespace, spec: ModelSpec
    ) -> None:
        self.client, self.args, self.spec = client, args, spec
        self.done: queue.Queue[tuple[Batch, object, InferenceServerException | None]] = (
            queue.Queue()
        )
        self.latencies_ms: list[float] = []
        self.failures: list[Failure] = []

    def submit(self, batch: Batch) -> None:
        pixels = np.stack([item.sent for item in batch.items])
        image = grpcclient.InferInput("IMAGE", list(pixels.shape), "UINT8")
        image.set_data_from_numpy(pixels)
        batch.started = time.perf_counter()
        self.client.async_infer(
            self.args.model,
            [image],
            callback=lambda result, error: self.done.put((batch, result, error)),
            model_version=self.args.model_version,
            outputs=[grpcclient.InferRequestedOutput("MASK")],
            client_timeout=self.args.timeout,
        )

    def run(self, batches: list[Batch]) -> None:
        pending = deque(batches)
        in_flight = 0
        while pending or in_flight:
            while pending and in_flight < self.args.concurrency:
                self.submit(pending.popleft())
                in_flight += 1
            batch, result, error = self.done.get()
            in_flight -= 1
            if error is not None and is_unavailable(error) and batch.attempts < self.args.retries:
                time.sleep(backoff_seconds(batch.attempts))
                batch.attempts += 1
                pending.appendleft(batch)
                continue
            self.finish(batch, result, error)

    def finish(self, batch: Batch, result: object, error: InferenceServerException | None) -> None:
        elapsed_ms = (time.perf_counter() - batch.started) * 1000
        if error is not None:
            code = {
                "StatusCode.INVALID_ARGUMENT": EXIT_REFUSED,
                "StatusCode.UNAVAILABLE": EXIT_UNREACHABLE,
            }.get(error.status() or "", EXIT_INFER_FAILED)
            for item in batch.items:
                self.fail(Failure(f"{item.path}: {error}", code))
            return
        masks = result.as_numpy("MASK")  # type: ignore[attr-defined]
        for item, mask in zip(batch.items, masks, strict=True):
            try:
                written = write_outputs(item, mask, self.spec, self.args.out_dir)
            except Failure as failure:
                self.fail(failure)
                continue
            self.latencies_ms.append(elapsed_ms)
            height, width = item.picture.shape[:2]
            foreground = float(np.mean(mask > 0)) * 100
            print(
                f"{item.path}  {height}x{width}  {elapsed_ms:7.1f} ms"
                f"{f' (batch of {len(batch.items)})' if len(batch.items) > 1 else ''}"
                f"  foreground {foreground:5.1f}%  -> {written}",
                flush=True,
            )

    def fail(self, failure: Failure) -> None:
        self.failures.append(failure)
        print(f"error: {failure}", file=sys.stderr, flush=True)


def summary(count: int, runner: Runner, seconds: float, failed: int) -> str:
    done = len(runner.latencies_ms)
    line = f"segmented {done}/{count} images in {seconds:.2f} s"
    if done:
        lat = np.array(runner.latencies_ms)
        line += (
            f" ({done / seconds:.1f} images/s); latency per request "
            f"p50 {np.percentile(lat, 50):.1f} ms, p90 {np.percentile(lat, 90):.1f} ms, "
            f"max {lat.max():.1f} ms"
        )
    if failed:
        line += f"; {failed} failed (reasons above)"
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
            print(f"model {args.model!r} at {args.url}: {spec}", file=sys.stderr)
        runner = Runner(client, args, spec)
        paths, problems = list_images(args.inputs)
        for problem in problems:
            runner.fail(problem)
        items: list[Item] = []
        stems: dict[str, Path] = {}
        for path in paths:
            if path.stem in stems:
                runner.fail(
                    Failure(
                        f"{path}: same name as {stems[path.stem]}, whose outputs it would "
                        "overwrite: rename it or run it separately",
                        EXIT_UNREADABLE,
                    )
                )
                continue
            try:
                items.append(prepare(path, spec))
                stems[path.stem] = path
            except Failure as failure:
                runner.fail(failure)
        started = time.perf_counter()
        runner.run(make_batches(items, min(args.batch_size, spec.max_batch_size)))
        seconds = time.perf_counter() - started
    print(summary(len(paths) + len(problems), runner, seconds, len(runner.failures)))
    return max((f.code for f in runner.failures), default=EXIT_OK)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
