"""Triton Inference Server: the real server from the nvidia-pytriton wheel (CPU route) and its
ONNX Runtime model's memory, the tritonserver command of the GPU container, the model's
configurations and its repository. The GPU container uses only standard-library modules."""

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
            "create_session",
            "measure_memory",
            "parse_bytes",
            "plan_limits",
            "plan_server_limits",
            "resident_bytes",
            "shared_limits",
        ],
        "gpu_command": ["tritonserver_command"],
        "int8": [
            "DEFAULT_SCHEME",
            "Gate",
            "Scheme",
            "check_int8",
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
            "quantization_report_path",
            "read_export_record",
            "version_dir",
            "write_export_record",
        ],
        "server": ["TritonServer", "free_ports", "pytriton_server_dir"],
        "supervisor": ["supervise"],
    },
)
