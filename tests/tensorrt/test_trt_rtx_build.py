"""The kit's engine build on a real TensorRT-family builder: TensorRT-RTX, ahead of time, with
no GPU (`make check-trt-rtx`).

The example model is exported, then parsed and built through the functions build_engine.py
uses, with the module and the target GPU passed in (the build's seam), never mocked. What
runs: the ONNX parser, the network TensorRT makes of it (layers, types, profile), the builder
configuration (TF32, target, timing cache) and the build into a serialized plan. What cannot
run here: the plan itself (TensorRT-RTX's runtime needs an RTX GPU).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import onnx
import pytest

from tests.helpers import REPO_ROOT
from tests.helpers.engine import AOT_COMPUTE_CAPABILITY, export_example, prepare
from unetkit import tensorrt
from unetkit.core import (
    ModelInfo,
    Profile,
    UserError,
    contract_info,
    default_profile,
    load_onnx,
    sha256_file,
)

pytestmark = pytest.mark.trt_rtx

TOOL = REPO_ROOT / "build" / "build_engine.py"
UPSAMPLINGS = 4  # the example U-Net's UpSampling2D layers


@pytest.fixture(scope="module")
def trt() -> ModuleType:
    return tensorrt.import_tensorrt("tensorrt_rtx")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, onnx.ModelProto, ModelInfo]:
    path = export_example(tmp_path_factory.mktemp("example"))
    model = load_onnx(path)
    return path, model, contract_info(model)


def layers_of_type(trt: ModuleType, network: Any, layer_type: Any) -> list[Any]:
    return [
        network.get_layer(i)
        for i in range(network.num_layers)
        if network.get_layer(i).type == layer_type
    ]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_example_model_parses_into_the_network_the_kit_expects(trt, example, precision):
    _, model, info = example
    setup = prepare(trt, model, info, precision)
    network = setup.network

    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    outputs = {t.name: t for t in (network.get_output(i) for i in range(network.num_outputs))}
    assert [(t.name, t.dtype, tuple(t.shape)) for t in inputs] == [
        ("IMAGE", trt.DataType.UINT8, (-1, -1, -1, info.channels))
    ]
    assert outputs["PROB"].dtype == trt.DataType.FLOAT
    assert outputs["MASK"].dtype == trt.DataType.UINT8

    resizes = layers_of_type(trt, network, trt.LayerType.RESIZE)
    assert len(resizes) == UPSAMPLINGS
    assert layers_of_type(trt, network, trt.LayerType.PLUGIN_V3) == []
    compute = trt.DataType.HALF if precision == "fp16" else trt.DataType.FLOAT
    for layer in resizes:
        assert layer.get_input(0).dtype == compute
        layer.__class__ = trt.IResizeLayer  # the Python binding's downcast
        assert layer.resize_mode == trt.InterpolationMode.NEAREST
        assert layer.coordinate_transformation == trt.ResizeCoordinateTransformation.ASYMMETRIC
        assert layer.nearest_rounding == trt.ResizeRoundMode.FLOOR
        assert list(layer.scales) == [1.0, 1.0, 2.0, 2.0]
    assert tensorrt.upsampling_layers(trt, network) == {"resize": UPSAMPLINGS}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_example_model_builds_with_the_kits_profile_precision_and_target(trt, example, precision):
    _, model, info = example
    profile = default_profile(info)
    setup = prepare(trt, model, info, precision)
    config = setup.config

    assert config.num_optimization_profiles == 1
    assert [tuple(shape) for shape in setup.optimization_profile.get_shape("IMAGE")] == [
        profile.min.image_shape(info.channels),
        profile.opt.image_shape(info.channels),
        profile.max.image_shape(info.channels),
    ]
    # TF32 is on by default (a fresh configuration says so); fp32 builds clear it.
    assert setup.builder.create_builder_config().get_flag(trt.BuilderFlag.TF32)
    assert config.get_flag(trt.BuilderFlag.TF32) == (precision != "fp32")
    assert config.num_compute_capabilities == 1
    assert config.get_compute_capability(0) == trt.ComputeCapability.SM89

    built = tensorrt.build_serialized(setup)
    assert len(built.plan) > 2**20  # the example's weights alone are 7.8 MB (fp32)
    assert built.timing_cache


def test_a_target_the_builder_cannot_compile_for_is_one_line(trt, example):
    _, model, info = example
    with pytest.raises(UserError, match=r"cannot build for compute capability 9\.0 \(SM90\)"):
        tensorrt.prepare_build(
            trt,
            model.SerializeToString(),
            default_profile(info),
            info.channels,
            "fp32",
            tensorrt.Gpu("NVIDIA H100", "9.0"),
        )


class RefusingConfig:
    """The real IBuilderConfig, except that it refuses timing caches built from saved bytes
    and reports no cache afterwards: what TensorRT does with a cache from another GPU or
    version. TensorRT-RTX cannot be made to refuse one (its cache calls are no-ops)."""

    def __init__(self, config: Any) -> None:
        self._config = config
        self._from_saved: set[int] = set()

    def create_timing_cache(self, data: bytes) -> Any:
        cache = self._config.create_timing_cache(data)
        if data:
            self._from_saved.add(id(cache))
        return cache

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        if id(cache) in self._from_saved:
            return False
        return self._config.set_timing_cache(cache, ignore_mismatch)

    def get_timing_cache(self) -> None:
        return None


def test_a_refused_timing_cache_falls_back_to_a_fresh_one(trt):
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        config = builder.create_builder_config()
        saved = bytes(config.create_timing_cache(b"").serialize())

    refusing = RefusingConfig(config)
    note = tensorrt.attach_timing_cache(refusing, saved)
    assert note is not None and "starting a fresh timing cache" in note
    assert tensorrt.serialized_timing_cache(refusing) is None  # nothing to save, no crash

    # The real TensorRT-RTX configuration accepts it and hands a cache back.
    assert tensorrt.attach_timing_cache(config, saved) is None
    assert tensorrt.serialized_timing_cache(config)


def build_engine_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=300
    )


def aot_build(onnx_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return build_engine_cli(
        str(onnx_path),
        "-o",
        str(onnx_path.with_name("model.plan")),
        "--tensorrt-module",
        "tensorrt_rtx",
        "--compute-capability",
        AOT_COMPUTE_CAPABILITY,
        "--skip-check",
        *extra,
    )


@pytest.fixture
def repository(tmp_path: Path, example) -> Path:
    version = tmp_path / "unet" / "1"
    version.mkdir(parents=True)
    (version / "model.onnx").write_bytes(example[0].read_bytes())
    return version


def test_build_engine_writes_plan_report_and_config_ahead_of_time(trt, repository, tmp_path):
    caches = tmp_path / "timing-caches"
    result = aot_build(
        repository / "model.onnx", "--precision", "fp16", "--timing-cache-dir", str(caches)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"network: 76 layers; upsampling: {UPSAMPLINGS} resize, 0 plugin" in result.stdout

    plan = repository / "model.plan"
    report = tensorrt.read_report(tensorrt.report_path_for(plan))
    assert (report.builder, report.tensorrt_version) == ("TensorRT-RTX", trt.__version__)
    assert (report.compute_capability, report.precision, report.upsample) == (
        AOT_COMPUTE_CAPABILITY,
        "fp16",
        "native",
    )
    assert report.accuracy is None and report.plan_sha256 == sha256_file(plan)
    config = (repository.parent / "config.pbtxt").read_text()
    assert "max_batch_size: 32" in config
    # One timing cache per builder version and architecture.
    assert [p.name for p in caches.iterdir()] == [f"TensorRT-RTX-{trt.__version__}-sm89.cache"]

    # Triton's TensorRT backend cannot load a TensorRT-RTX plan: the entry point says so.
    mismatch = tensorrt.plan_mismatch(report, "10.13.3.9", "NVIDIA GeForce RTX 4090", "8.9")
    assert mismatch is not None and "plan built with TensorRT-RTX" in mismatch


def test_if_changed_keeps_a_plan_built_from_the_same_inputs(repository):
    plan = repository / "model.plan"
    first = aot_build(repository / "model.onnx", "--if-changed")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "building: no plan with a build report yet" in first.stdout
    stamp = plan.stat().st_mtime_ns, plan.stat().st_ino

    again = aot_build(repository / "model.onnx", "--if-changed")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "is up to date" in again.stdout and "network:" not in again.stdout
    assert (plan.stat().st_mtime_ns, plan.stat().st_ino) == stamp

    changed = aot_build(repository / "model.onnx", "--if-changed", "--precision", "fp16")
    assert "building: precision changed: fp32 -> fp16" in changed.stdout, changed.stderr

    model = onnx.load(str(repository / "model.onnx"))
    model.doc_string = "another export"
    onnx.save(model, str(repository / "model.onnx"))
    rebuilt = aot_build(repository / "model.onnx", "--if-changed", "--precision", "fp16")
    assert "building: ONNX model (sha256) changed" in rebuilt.stdout, rebuilt.stderr

    other_gpu = aot_build(
        repository / "model.onnx", "--if-changed", "--precision", "fp16", "--gpu-name", "RTX A6000"
    )
    assert "building: GPU changed:" in other_gpu.stdout, other_gpu.stderr


def test_ahead_of_time_needs_skip_check_and_writes_nothing_without(repository):
    result = build_engine_cli(
        str(repository / "model.onnx"),
        "-o",
        str(repository / "model.plan"),
        "--tensorrt-module",
        "tensorrt_rtx",
        "--compute-capability",
        "8.9",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: an ahead-of-time build (--compute-capability) cannot run the engine here: add "
        "--skip-check (the plan then goes unchecked), or build on the GPU that serves it"
    ]
    assert sorted(p.name for p in repository.iterdir()) == ["model.onnx"]


def test_an_onnx_with_plugin_nodes_and_no_plugin_library_gets_the_hint(repository):
    rewritten = tensorrt.rewrite_upsampling(onnx.load(str(repository / "model.onnx"))).model
    onnx.save(rewritten, str(repository / "model.onnx"))
    result = aot_build(repository / "model.onnx")
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: TensorRT-RTX's ONNX parser refused the model: ")
    assert "Plugin not found" in error
    assert error.endswith("(pass --plugin-lib with the kit's plugin library)")
    assert not (repository / "model.plan").exists()


def test_profile_in_report_is_the_profile_built(repository):
    result = aot_build(repository / "model.onnx", "--max", "16x384x384", "--opt", "4x128x128")
    assert result.returncode == 0, result.stderr
    report = json.loads((repository / "build_report.json").read_text())
    assert Profile.from_dict(report["profile"]).max.height == 384
    assert report["max_batch_size"] == 16
