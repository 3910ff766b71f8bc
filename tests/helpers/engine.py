"""Helpers of the engine-build tests: small contract-shaped U-Net ONNX graphs built with
onnx.helper, a stand-in for the plugin op that ONNX Runtime can run, a built plan, and where
TensorRT-RTX's library and TensorRT's fetched headers are.

Layout of the converter's output: uint8 NHWC IMAGE -> /255 -> NCHW -> conv, pool,
conv, Resize (nearest, asymmetric, floor, x2) -> concat skip -> 1x1 conv -> sigmoid ->
NHWC PROB, and MASK = PROB > 0.5. Weights are seeded random numbers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tests.helpers import REPO_ROOT
from unetkit import pipelines, tensorrt
from unetkit.core import ModelInfo, default_profile
from unetkit.tensorrt import PLUGIN_OP

# Where TensorRT-RTX builds ahead of time in these tests: an RTX 40xx (it has no sm_90 target).
AOT_COMPUTE_CAPABILITY = "8.9"

NEAREST_KERAS = {
    "mode": "nearest",
    "coordinate_transformation_mode": "asymmetric",
    "nearest_mode": "floor",
}


def tiny_unet(
    channels: int = 1,
    resize_attrs: dict[str, str] | None = None,
    scales: tuple[float, float, float, float] = (1.0, 1.0, 2.0, 2.0),
    fixed_size: int | None = None,
    metadata: dict[str, str] | None = None,
    seed: int = 0,
) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    attrs = NEAREST_KERAS if resize_attrs is None else resize_attrs

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(np.float32), name)

    initializers = [
        numpy_helper.from_array(np.array(255.0, dtype=np.float32), "scale255"),
        weight("w1", 4, channels, 3, 3),
        weight("b1", 4),
        weight("w2", 8, 4, 3, 3),
        weight("b2", 8),
        weight("w3", 1, 12, 1, 1),
        weight("b3", 1),
        numpy_helper.from_array(np.array(scales, dtype=np.float32), "up_scales"),
        numpy_helper.from_array(np.array([], dtype=np.float32), "up_roi"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "threshold"),
        numpy_helper.from_array(np.array([3], dtype=np.int64), "last_axis"),
    ]
    nodes = [
        helper.make_node("Cast", ["IMAGE"], ["image_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["image_f", "scale255"], ["image_n"]),
        helper.make_node("Transpose", ["image_n"], ["x0"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x0", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["skip"]),
        helper.make_node("MaxPool", ["skip"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node(
            "Resize", ["r2", "up_roi", "up_scales"], ["up"], name="up1_resize", **attrs
        ),
        helper.make_node("Concat", ["up", "skip"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "w3", "b3"], ["c3"]),
        helper.make_node("Sigmoid", ["c3"], ["prob_nchw"]),
        helper.make_node("Transpose", ["prob_nchw"], ["PROB"], perm=[0, 2, 3, 1]),
        helper.make_node("Greater", ["PROB", "threshold"], ["mask_b"]),
        helper.make_node("Squeeze", ["mask_b", "last_axis"], ["mask_sq"]),
        helper.make_node("Cast", ["mask_sq"], ["MASK"], to=TensorProto.UINT8),
    ]
    h = w = fixed_size if fixed_size is not None else None
    hd, wd = (h, w) if h is not None else ("H", "W")
    graph = helper.make_graph(
        nodes,
        "tiny_unet",
        [helper.make_tensor_value_info("IMAGE", TensorProto.UINT8, ["N", hd, wd, channels])],
        [
            helper.make_tensor_value_info("PROB", TensorProto.FLOAT, ["N", hd, wd, 1]),
            helper.make_tensor_value_info("MASK", TensorProto.UINT8, ["N", hd, wd]),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    # what the converter writes (unetkit.keras2onnx); one 2x pooling: sizes 2, 4, 6, ...
    meta = {
        "unetkit.channels": str(channels),
        "unetkit.classes": "1",
        "unetkit.size_multiple": "2",
        "unetkit.size_multiple_h": "2",
        "unetkit.size_multiple_w": "2",
        "unetkit.min_height": "2",
        "unetkit.min_width": "2",
        "unetkit.threshold": "0.5",
        "unetkit.mean": json.dumps([0.0] * channels),
        "unetkit.std": json.dumps([255.0] * channels),
        "unetkit.source": "tests/engine_helpers.py",
    }
    if fixed_size is not None:
        meta["unetkit.fixed_height"] = meta["unetkit.fixed_width"] = str(fixed_size)
    meta.update(metadata or {})
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def installed_plan(
    version_dir: Path,
    plugin: Path | None = None,
    tensorrt_version: str = "10.13.3.9",
    gpu_name: str = "NVIDIA H100 80GB HBM3",
    compute_capability: str = "9.0",
) -> Path:
    """A model.plan (opaque bytes: nothing here reads it as TensorRT) with the build report
    build_engine.py would write beside it."""
    from unetkit.core import BatchShape, Profile, sha256_file
    from unetkit.tensorrt import BuildReport, report_path_for, write_report

    version_dir.mkdir(parents=True, exist_ok=True)
    plan = version_dir / "model.plan"
    plan.write_bytes(b"serialized engine bytes")
    profile = Profile(BatchShape(1, 16, 16), BatchShape(8, 256, 256), BatchShape(32, 512, 512))
    write_report(
        report_path_for(plan),
        BuildReport(
            tensorrt_version=tensorrt_version,
            gpu_name=gpu_name,
            compute_capability=compute_capability,
            precision="fp16",
            upsample="plugin" if plugin else "native",
            profile=profile.as_dict(),
            max_batch_size=32,
            onnx_sha256="0" * 64,
            plan_sha256=sha256_file(plan),
            built_at="2026-11-25T21:00:00+00:00",
            build_seconds=61.5,
            plugin_library=str(plugin) if plugin else None,
            plugin_sha256=sha256_file(plugin) if plugin else None,
        ),
    )
    return plan


def lower_plugin_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    graph = lowered.graph
    new_nodes = []
    for i, node in enumerate(graph.node):
        if node.op_type != PLUGIN_OP:
            new_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        sh, sw = attrs["scale_h"], attrs["scale_w"]
        x, y, p = node.input[0], node.output[0], f"lower{i}_"
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.array([3, 5], dtype=np.int64), p + "axes"),
                numpy_helper.from_array(np.array([1, 1, 1, sh, 1, sw], dtype=np.int64), p + "rep"),
                numpy_helper.from_array(np.array([1, 1, sh, sw], dtype=np.int64), p + "mul"),
            ]
        )
        new_nodes += [
            helper.make_node("Unsqueeze", [x, p + "axes"], [p + "x6"]),
            helper.make_node("Expand", [p + "x6", p + "rep"], [p + "big"]),
            helper.make_node("Shape", [x], [p + "shape"]),
            helper.make_node("Mul", [p + "shape", p + "mul"], [p + "target"]),
            helper.make_node("Reshape", [p + "big", p + "target"], [y]),
        ]
    del graph.node[:]
    graph.node.extend(new_nodes)
    del lowered.opset_import[:]
    lowered.opset_import.append(helper.make_opsetid("", 17))
    return lowered


def run(model: onnx.ModelProto, image: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["PROB", "MASK"], {"IMAGE": image})


def header_version(include: Path) -> tuple[int, ...]:
    """major, minor, patch from NvInferVersion.h (-1 where a part is missing)."""
    text = (include / "NvInferVersion.h").read_text()
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        match = re.search(rf"#define TRT_{part}_ENTERPRISE +(\d+)", text)
        parts.append(int(match.group(1)) if match else -1)
    return tuple(parts)


def tensorrt_headers(major: int = 11) -> Path | None:
    """TensorRT <major>.x headers, found as the Makefile finds them
    (plugins/find_trt_headers.sh): $TENSORRT_HEADERS, the `make trt-headers` cache, then
    shared/tensorrt/<major>.*/include beside the checkout or beside a folder above it."""
    found = subprocess.run(
        [str(REPO_ROOT / "plugins" / "find_trt_headers.sh"), str(major)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    return Path(found) if found else None


HEADERS_MISSING = (
    "TensorRT 11 headers absent: set TENSORRT_HEADERS, run `make trt-headers` (fills "
    "~/.cache/unetkit/tensorrt), or put them in shared/tensorrt/11.1/include beside the checkout"
)


def rtx_library() -> Path:
    """The TensorRT-RTX wheel's libtensorrt_rtx.so.1 (make venv installs it)."""
    spec = importlib.util.find_spec("tensorrt_rtx_libs")
    assert spec is not None and spec.submodule_search_locations, (
        "TensorRT-RTX is not installed: run `make venv` (extra trt-rtx)"
    )
    return Path(next(iter(spec.submodule_search_locations))) / "libtensorrt_rtx.so.1"


def run_python(code: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh Python process (its own plugin registry), from the repository root."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env=env,
    )


def export_example(directory: Path) -> Path:
    """The example Keras model exported by the kit's converter, as directory/model.onnx."""
    from unetkit.keras2onnx import export_onnx

    model, _ = export_onnx(REPO_ROOT / "example" / "unet_example.h5")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    onnx.save(model, str(path))
    return path


# The GPU an ahead-of-time TensorRT-RTX build targets in the tests.
AOT_TARGET = tensorrt.Gpu("NVIDIA GeForce RTX 4090", AOT_COMPUTE_CAPABILITY)


def prepare(
    trt: ModuleType,
    model: onnx.ModelProto,
    info: ModelInfo,
    precision: str,
    upsample: str = "native",
    timing_cache: bytes = b"",
) -> tensorrt.EngineBuild:
    network_model = pipelines.network_model(trt, model, precision, upsample)
    return tensorrt.prepare_build(
        trt,
        network_model.SerializeToString(),
        default_profile(info),
        info.channels,
        precision,
        AOT_TARGET,
        timing_cache,
    )
