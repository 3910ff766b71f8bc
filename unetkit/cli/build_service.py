"""Entry point of the compose `build` service, in NVIDIA's TensorRT container on the GPU host.

1. compile the plugin library (plugins/, CMake) for this GPU with this TensorRT, in
   plugins/build-trt<TRT_TAG>: the container's own build folder, never the host's;
2. convert the Keras model to ONNX (build/export_onnx.py);
3. build, check and install the TensorRT plan (build/build_engine.py), unless
   build_report.json says the installed plan was built from the same ONNX, TensorRT, GPU,
   plugin library and settings.

Plugin, plan and GPU therefore always match the Triton container of the same YY.MM tag.
Settings come from the environment (docker-compose.yml passes them through from .env):

  TRT_TAG               the TensorRT image's YY.MM tag (names the plugin build folder)

  UNETKIT_KERAS_MODEL   Keras .h5/.keras file, relative to the repository (the example model)
  UNETKIT_EXPORT_ARGS   extra build/export_onnx.py flags, e.g. "--mean 0 --std 255"
  UNETKIT_PRECISION     fp16 (default) or fp32
  UNETKIT_UPSAMPLE      plugin (default) or native
  UNETKIT_PROFILE_MIN, UNETKIT_PROFILE_OPT, UNETKIT_PROFILE_MAX   NxHxW, default from the model
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from unetkit.core import UserError, run_cli

REPO = Path(__file__).resolve().parents[2]
PLUGIN_LIBRARY_NAME = "libunetkit_plugins.so"
VERSION_DIR = Path("model_repository/unet/1")
TIMING_CACHES = Path("out/timing-caches")
DEFAULT_KERAS_MODEL = "example/unet_example.h5"
# NVIDIA's TensorRT image installs TensorRT as Debian packages: headers in
# /usr/include/<multiarch>, libraries in /usr/lib/<multiarch>. Only there is searched.
CONTAINER_TENSORRT_ROOT = "/usr"


def plugin_build_dir(environ: dict[str, str]) -> Path:
    """plugins/build-trt<TAG>: one CMake build folder per TensorRT image, never the host's
    plugins/build (its CMakeCache.txt names the host's paths, and root-owned files from the
    container would break later host builds)."""
    tag = environ.get("TRT_TAG", "").strip()
    if not re.fullmatch(r"[0-9]+\.[0-9]+", tag):
        raise UserError(
            f"TRT_TAG={tag!r}: set the TensorRT image's YY.MM tag in .env (docker compose "
            "passes it to the build service)"
        )
    return Path(f"plugins/build-trt{tag}")


def _choice(environ: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = environ.get(name, "").strip() or choices[0]
    if value not in choices:
        raise UserError(f"{name}={value!r}: use one of {', '.join(choices)} (in .env)")
    return value


def build_steps(environ: dict[str, str]) -> list[list[str]]:
    """The commands of one build, in order, run from the repository root."""
    python = sys.executable
    keras_model = environ.get("UNETKIT_KERAS_MODEL", "").strip() or DEFAULT_KERAS_MODEL
    precision = _choice(environ, "UNETKIT_PRECISION", ("fp16", "fp32"))
    upsample = _choice(environ, "UNETKIT_UPSAMPLE", ("plugin", "native"))
    onnx_path = VERSION_DIR / "model.onnx"
    plugin_build = plugin_build_dir(environ)

    steps = []
    if upsample == "plugin":
        steps += [
            [
                "cmake",
                "-S",
                "plugins",
                "-B",
                str(plugin_build),
                "-DCMAKE_BUILD_TYPE=Release",
                # the GPU this container sees: the one Triton serves on
                "-DCMAKE_CUDA_ARCHITECTURES=native",
                f"-DTENSORRT_ROOT={CONTAINER_TENSORRT_ROOT}",
            ],
            ["cmake", "--build", str(plugin_build), "--parallel"],
        ]
    export_args = shlex.split(environ.get("UNETKIT_EXPORT_ARGS", ""))
    steps.append([python, "build/export_onnx.py", keras_model, "-o", str(onnx_path), *export_args])
    engine = [
        python,
        "build/build_engine.py",
        str(onnx_path),
        "-o",
        str(VERSION_DIR / "model.plan"),
        "--precision",
        precision,
        "--upsample",
        upsample,
        "--timing-cache-dir",
        str(TIMING_CACHES),
        # `docker compose up` runs this on every start: keep a plan built from the same inputs
        "--if-changed",
    ]
    if upsample == "plugin":
        engine += ["--plugin-lib", str(plugin_build / PLUGIN_LIBRARY_NAME)]
    for flag in ("min", "opt", "max"):
        value = environ.get(f"UNETKIT_PROFILE_{flag.upper()}", "").strip()
        if value:
            engine += [f"--{flag}", value]
    steps.append(engine)
    return steps


def main(argv: list[str]) -> int:
    if argv:
        raise UserError("the build service takes no arguments: set UNETKIT_* in .env")
    for step in build_steps(dict(os.environ)):
        print("+ " + shlex.join(step), flush=True)
        code = subprocess.run(step, cwd=REPO).returncode
        if code:
            raise UserError(
                f"{Path(step[1]).name if step[0] == sys.executable else step[0]} "
                f"failed (exit {code}); the plan in {VERSION_DIR} is unchanged",
                code,
            )
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
