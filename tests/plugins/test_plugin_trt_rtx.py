"""libunetkit_plugins.so in a real TensorRT-family builder: TensorRT-RTX, no GPU.

Built against TensorRT 11 headers (TensorRT-RTX's plugin ABI) and linked to the venv's
libtensorrt_rtx.so.1. Each load happens in a fresh process, so every test sees an empty
plugin registry: registration both ways (dlopen as Triton does, through the kit's loader;
IPluginRegistry.load_library as trtexec --dynamicPlugins does), and the plugin route of the
example model parsed and built in fp32 and fp16, with every build-time plugin method called
by the builder. Skipped with one line where the headers are absent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from tests.helpers import REPO_ROOT
from tests.helpers.engine import AOT_COMPUTE_CAPABILITY, export_example, run_python
from tests.plugins.cmake import PluginBuild
from unetkit import tensorrt
from unetkit.core import sha256_file

pytestmark = pytest.mark.trt_rtx

TOOL = REPO_ROOT / "build" / "build_engine.py"
PLUGIN = "UnetkitUpsampleNearest"

REGISTRATION = """
import sys
from pathlib import Path

from unetkit import tensorrt

mode, library = sys.argv[1], Path(sys.argv[2])
trt = tensorrt.import_tensorrt("tensorrt_rtx")
registry = trt.get_plugin_registry()


def ours():
    return sum(1 for creator in registry.all_creators if creator.name == "UnetkitUpsampleNearest")


print("before", ours())
if mode in ("dlopen", "both"):
    tensorrt.load_plugin_library(trt, library)  # what Triton does: dlopen, self-registration
if mode in ("load_library", "both"):
    assert registry.load_library(str(library)) is not None  # through getCreators
print("after", ours())
creator = registry.get_creator("UnetkitUpsampleNearest", "1", "")
print("fields", " ".join(sorted(field.name for field in creator.field_names)))
"""

PLUGIN_ROUTE = """
import json
import sys
from pathlib import Path

from unetkit import tensorrt
from unetkit import pipelines
from unetkit.core import contract_info, default_profile, load_onnx

onnx_path, library, precision, capability = sys.argv[1:]
trt = tensorrt.import_tensorrt("tensorrt_rtx")
tensorrt.load_plugin_library(trt, Path(library))
model = load_onnx(Path(onnx_path))
info = contract_info(model)
network_model = pipelines.network_model(trt, model, precision, "plugin")
setup = tensorrt.prepare_build(
    trt,
    network_model.SerializeToString(),
    default_profile(info),
    info.channels,
    precision,
    tensorrt.Gpu("RTX", capability),
)
plugins = []
for i in range(setup.network.num_layers):
    layer = setup.network.get_layer(i)
    if layer.type == trt.LayerType.PLUGIN_V3:
        layer.__class__ = trt.IPluginV3Layer
        core = layer.plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
        plugins.append(
            [core.plugin_name, core.plugin_version, core.plugin_namespace,
             str(layer.get_input(0).dtype), str(layer.get_output(0).dtype)]
        )
built = tensorrt.build_serialized(setup)
print(json.dumps({
    "plugins": plugins,
    "resize": len([i for i in range(setup.network.num_layers)
                   if setup.network.get_layer(i).type == trt.LayerType.RESIZE]),
    "plan_bytes": len(built.plan),
    "plugin_in_plan": built.plan.count(b"UnetkitUpsampleNearest"),
}))
"""


@pytest.fixture(scope="module")
def example_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_example(tmp_path_factory.mktemp("example"))


@pytest.mark.parametrize("mode", ["dlopen", "load_library", "both"])
def test_the_plugin_registers_exactly_once_each_way(plugin_build: PluginBuild, mode: str):
    result = run_python(REGISTRATION, mode, str(plugin_build.plugin))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["before 0", "after 1", "fields scale_h scale_w"]


def test_a_library_without_the_plugin_is_refused_in_one_line(plugin_build: PluginBuild):
    plugin_build.plugin  # noqa: B018 (skips where the headers are absent)
    kernels = plugin_build.directory / "libunetkit_kernels.so"
    result = run_python(REGISTRATION, "dlopen", str(kernels))
    assert result.returncode != 0
    assert f"registered no {PLUGIN} version 1 plugin with TensorRT-RTX" in result.stderr


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_the_plugin_route_parses_and_builds(plugin_build, example_onnx, precision):
    result = run_python(
        PLUGIN_ROUTE, str(example_onnx), str(plugin_build.plugin), precision, AOT_COMPUTE_CAPABILITY
    )
    assert result.returncode == 0, result.stdout + result.stderr
    built = json.loads(result.stdout.splitlines()[-1])
    dtype = "DataType.HALF" if precision == "fp16" else "DataType.FLOAT"
    assert built["plugins"] == [[PLUGIN, "1", "", dtype, dtype]] * 4
    assert built["resize"] == 0
    assert built["plan_bytes"] > 2**20
    assert built["plugin_in_plan"] > 0  # the plan names the plugin it needs at load time


def build_engine_cli(onnx_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(TOOL),
            str(onnx_path),
            "-o",
            str(onnx_path.with_name("model.plan")),
            "--tensorrt-module",
            "tensorrt_rtx",
            "--compute-capability",
            AOT_COMPUTE_CAPABILITY,
            "--skip-check",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_build_engine_builds_the_compose_default_fp16_plugin_plan(
    plugin_build, example_onnx, tmp_path
):
    onnx_path = tmp_path / "unet" / "1" / "model.onnx"
    onnx_path.parent.mkdir(parents=True)
    onnx_path.write_bytes(example_onnx.read_bytes())
    library = plugin_build.plugin
    result = build_engine_cli(
        onnx_path, "--precision", "fp16", "--upsample", "plugin", "--plugin-lib", str(library)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "plugin rewrite: 4 Resize node(s) -> UnetkitUpsampleNearest" in result.stdout
    assert "upsampling: 0 resize, 4 plugin layer(s)" in result.stdout
    report = tensorrt.read_report(onnx_path.with_name("build_report.json"))
    assert (report.upsample, report.plugin_sha256) == ("plugin", sha256_file(library))


def test_a_plugin_that_refuses_its_attributes_gets_no_plugin_lib_hint(
    plugin_build, example_onnx, tmp_path
):
    model = tensorrt.rewrite_upsampling(onnx.load(str(example_onnx))).model
    node = next(n for n in model.graph.node if n.op_type == PLUGIN)
    next(a for a in node.attribute if a.name == "scale_h").i = 0
    onnx_path = tmp_path / "unet" / "1" / "model.onnx"
    onnx_path.parent.mkdir(parents=True)
    onnx.save(model, str(onnx_path))

    result = build_engine_cli(onnx_path, "--plugin-lib", str(plugin_build.plugin))

    assert result.returncode == 2
    # the plugin says why through TensorRT's logger
    assert "attribute scale_h = 0 is out of range" in result.stdout + result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "Could not create the plugin" in error
    assert error.endswith("(the plugin refused the node's attributes: its log line above says why)")
    assert "--plugin-lib" not in error
    assert not onnx_path.with_name("model.plan").exists()
