"""model_repository/unet/config.pbtxt: the GPU deployment of the example model.

Parsed with Triton's own ModelConfig protobuf, so a misspelt field fails here rather than
at server start on a GPU host.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from tests.helpers import REPO_ROOT
from unetkit.core import (
    BatchShape,
    ModelInfo,
    Profile,
    SizeRule,
    UserError,
    default_profile,
    read_model_info,
)
from unetkit.triton import (
    CPU_INSTANCES,
    EngineSpec,
    MemoryModel,
    instance_count,
    onnx_path,
    read_max_batch_size,
    render_cpu_config,
    render_plan_config,
)

GPU_CONFIG = REPO_ROOT / "model_repository" / "unet" / "config.pbtxt"
CPU_CONFIG = REPO_ROOT / "model_repository" / "unet" / "configs" / "cpu.pbtxt"


def parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def example_info(serving_repository: Path):
    return read_model_info(onnx_path(serving_repository))


def test_committed_config_is_the_renderers_output_for_the_example_model(example_info):
    assert GPU_CONFIG.read_text() == render_plan_config(example_info, default_profile(example_info))


def test_gpu_config_has_the_cpu_configs_name_inputs_and_outputs():
    gpu, cpu = parse(GPU_CONFIG.read_text()), parse(CPU_CONFIG.read_text())
    assert gpu.name == cpu.name == "unet"
    assert list(gpu.input) == list(cpu.input)
    assert list(gpu.output) == list(cpu.output)
    assert gpu.platform == "tensorrt_plan"


def test_gpu_config_runs_on_the_gpu_with_batching_and_graphs_inside_the_profile():
    config = parse(GPU_CONFIG.read_text())
    assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    assert config.max_batch_size == read_max_batch_size(GPU_CONFIG) == 32
    batching = config.dynamic_batching
    assert list(batching.preferred_batch_size) == [8, 32]
    assert 0 < batching.max_queue_delay_microseconds <= 1000
    cuda = config.optimization.cuda
    assert cuda.graphs
    for spec in cuda.graph_spec:
        assert list(spec.input["IMAGE"].dim) == [256, 256, 1]
    # every small batch and both preferred batches replay a graph of exactly their size
    assert [spec.batch_size for spec in cuda.graph_spec] == [1, 2, 3, 4, 5, 6, 7, 8, 32]
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params == {
        "size_multiple_h": "16",
        "min_height": "16",
        "size_multiple_w": "16",
        "min_width": "16",
        "size_multiple": "16",
        "output_shrink_h": "0",
        "output_shrink_w": "0",
        "output_offset_h": "0",
        "output_offset_w": "0",
        "threshold": "0.5",
        "max_image_side": "512",
    }


def test_config_follows_a_users_profile_and_fixed_size():
    rule = SizeRule(16, 16)
    fixed = ModelInfo(
        1, 1, rule, rule, (320, 480), (0, 0, 0, 0), 0.5, (0.0,), (255.0,), "user model"
    )
    p = Profile(BatchShape(1, 320, 480), BatchShape(4, 320, 480), BatchShape(16, 320, 480))
    config = parse(render_plan_config(fixed, p))
    assert config.max_batch_size == 16
    assert list(config.input[0].dims) == [320, 480, 1]
    assert list(config.output[1].dims) == [320, 480]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 16]
    assert [s.batch_size for s in config.optimization.cuda.graph_spec] == [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        16,
    ]


# Triton's TensorRT backend runs a graph's whole batch for any batch from its
# graph_lower_bound up: a graph may cover smaller batches only while padding stays <= 25%.
MAX_GRAPH_PADDING = 1.25


@pytest.mark.parametrize(
    "profile",
    [
        None,  # the committed config
        Profile(BatchShape(1, 256, 256), BatchShape(8, 256, 256), BatchShape(32, 256, 256)),
        Profile(BatchShape(1, 64, 64), BatchShape(16, 128, 128), BatchShape(64, 512, 512)),
        Profile(BatchShape(1, 64, 64), BatchShape(1, 64, 64), BatchShape(1, 64, 64)),
        Profile(BatchShape(1, 32, 32), BatchShape(3, 32, 32), BatchShape(5, 32, 32)),
    ],
)
def test_no_cuda_graph_pads_a_batch_by_more_than_a_quarter(profile: Profile | None):
    if profile is None:
        text = GPU_CONFIG.read_text()
    else:
        rule = SizeRule(16, 16)
        info = ModelInfo(1, 1, rule, rule, None, (0, 0, 0, 0), 0.5, (0.0,), (255.0,), "user model")
        text = render_plan_config(info, profile)
    config = parse(text)
    specs = config.optimization.cuda.graph_spec
    assert specs, "no CUDA graphs rendered"
    for spec in specs:
        lower = (
            spec.graph_lower_bound.batch_size
            if spec.HasField("graph_lower_bound")
            else spec.batch_size
        )
        assert 1 <= lower <= spec.batch_size <= config.max_batch_size
        assert spec.batch_size <= MAX_GRAPH_PADDING * lower, (
            f"graph of batch {spec.batch_size} replays batches down to {lower}: "
            f"{spec.batch_size / lower:.2f}x their work"
        )
    # the comment says what each graph covers
    assert text.count("only, ") == len(specs) and ": no padding" in text


def test_read_max_batch_size_refuses_a_config_without_one(tmp_path):
    config = tmp_path / "config.pbtxt"
    config.write_text('name: "unet"\n')
    with pytest.raises(UserError, match="no max_batch_size"):
        read_max_batch_size(config)
    with pytest.raises(UserError, match=r"no config\.pbtxt"):
        read_max_batch_size(tmp_path / "missing.pbtxt")


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.123456789])
def test_both_configs_publish_the_mask_threshold_exactly(threshold: float):
    """A client that blends PROB across tiles takes its mask with the model's threshold."""
    rule = SizeRule(16, 16)
    info = ModelInfo(1, 1, rule, rule, None, (0, 0, 0, 0), threshold, (0.0,), (255.0,), "m")
    for text in (
        render_plan_config(info, default_profile(info)),
        render_cpu_config(info, MemoryModel(1, 1), EngineSpec("openvino", "int8")),
    ):
        params = {k: v.string_value for k, v in parse(text).parameters.items()}
        assert float(params["threshold"]) == threshold


def test_instance_count_reads_the_configs_as_triton_gives_them() -> None:
    """model.py and the bench read the count from Triton's JSON form of the config."""
    cpu = json_format.MessageToDict(parse(CPU_CONFIG.read_text()), preserving_proto_field_name=True)
    assert instance_count(cpu) == CPU_INSTANCES == 2
    assert instance_count({"instance_group": [{"count": 2}, {"count": 3}]}) == 5
    assert instance_count({"instance_group": [{"kind": "KIND_CPU"}]}) == 1  # count defaults to 1
    assert instance_count({}) == 1
