"""Triton Inference Server: the real server from the nvidia-pytriton wheel (CPU route), its
engines (OpenVINO, ONNX Runtime), which of them serves and their memory, the tritonserver
command of the GPU container, the model's configurations and its repository. The GPU
container uses only standard-library modules."""

from typing import TYPE_CHECKING

from unetkit.core import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "access": [
            "ADMIN_KEY_ENV",
            "ADMIN_KEY_FILE_ENV",
            "ADMIN_KEY_HEADER",
            "access_flags",
            "admin_key",
        ],
        "cpu_runtime": [
            "IdleTrim",
            "Limits",
            "MemoryModel",
            "RunLock",
            "ServerMemory",
            "available_bytes",
            "measure_memory",
            "parse_bytes",
            "plan_limits",
            "plan_server_limits",
            "resident_bytes",
            "shared_limits",
        ],
        "engines": [
            "BF16",
            "FP32",
            "INT8",
            "ONNXRUNTIME",
            "OPENVINO",
            "RUNTIMES",
            "Engine",
            "EngineSpec",
            "check_runtime",
            "create_session",
            "native_bf16",
            "open_engine",
            "openvino_config",
            "openvino_problem",
        ],
        "engine_choice": [
            "AUTO",
            "PRECISIONS",
            "REFERENCE",
            "Candidate",
            "EngineChoice",
            "choose_engine",
            "timing_inputs",
        ],
        "gpu_command": ["tritonserver_command"],
        "int8": [
            "DEFAULT_SCHEME",
            "Gate",
            "Scheme",
            "check_against_fp32",
            "network_input",
            "quantize",
            "split",
        ],
        "model_config": [
            "CPU_INSTANCES",
            "CPU_MAX_BATCH_SIZE",
            "CPU_MAX_QUEUE_SIZE",
            "CPU_QUEUE_TIMEOUT_S",
            "MAX_IMAGE_SIDE",
            "instance_count",
            "read_max_batch_size",
            "render_cpu_config",
            "render_plan_config",
        ],
        "processes": ["Member", "child_pids", "group_members", "stub_pids"],
        "repository": [
            "ExportRecord",
            "backend_code_path",
            "cpu_config_path",
            "model_dir",
            "onnx_path",
            "runtime_report_path",
            "read_export_record",
            "read_served_engine",
            "version_dir",
            "write_export_record",
        ],
        "server": ["TritonServer", "free_ports", "pytriton_server_dir"],
        "supervisor": ["supervise"],
    },
)

if TYPE_CHECKING:  # what editors and type checkers follow; the names load on first use
    from unetkit.triton.access import (
        ADMIN_KEY_ENV,
        ADMIN_KEY_FILE_ENV,
        ADMIN_KEY_HEADER,
        access_flags,
        admin_key,
    )
    from unetkit.triton.cpu_runtime import (
        IdleTrim,
        Limits,
        MemoryModel,
        RunLock,
        ServerMemory,
        available_bytes,
        measure_memory,
        parse_bytes,
        plan_limits,
        plan_server_limits,
        resident_bytes,
        shared_limits,
    )
    from unetkit.triton.engine_choice import (
        AUTO,
        PRECISIONS,
        REFERENCE,
        Candidate,
        EngineChoice,
        choose_engine,
        timing_inputs,
    )
    from unetkit.triton.engines import (
        BF16,
        FP32,
        INT8,
        ONNXRUNTIME,
        OPENVINO,
        RUNTIMES,
        Engine,
        EngineSpec,
        check_runtime,
        create_session,
        native_bf16,
        open_engine,
        openvino_config,
        openvino_problem,
    )
    from unetkit.triton.gpu_command import (
        tritonserver_command,
    )
    from unetkit.triton.int8 import (
        DEFAULT_SCHEME,
        Gate,
        Scheme,
        check_against_fp32,
        network_input,
        quantize,
        split,
    )
    from unetkit.triton.model_config import (
        CPU_INSTANCES,
        CPU_MAX_BATCH_SIZE,
        CPU_MAX_QUEUE_SIZE,
        CPU_QUEUE_TIMEOUT_S,
        MAX_IMAGE_SIDE,
        instance_count,
        read_max_batch_size,
        render_cpu_config,
        render_plan_config,
    )
    from unetkit.triton.processes import (
        Member,
        child_pids,
        group_members,
        stub_pids,
    )
    from unetkit.triton.repository import (
        ExportRecord,
        backend_code_path,
        cpu_config_path,
        model_dir,
        onnx_path,
        read_export_record,
        read_served_engine,
        runtime_report_path,
        version_dir,
        write_export_record,
    )
    from unetkit.triton.server import (
        TritonServer,
        free_ports,
        pytriton_server_dir,
    )
    from unetkit.triton.supervisor import (
        supervise,
    )
