"""The TensorRT route: the ONNX rewrites a plan needs (upsampling plugin, fp16 copy), the
engine build and its accuracy gate, the build report, and the check that a plan fits the
TensorRT and GPU of the container about to serve it (standard library only)."""

from unetkit.core import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "accuracy": [
            "MASK_AGREEMENT_REQUIRED",
            "PROB_TOLERANCE",
            "Outputs",
            "Runner",
            "batches",
            "compare",
            "describe",
            "onnxruntime_runner",
        ],
        "build_report": [
            "Accuracy",
            "BuildReport",
            "REBUILD_HINT",
            "gpu_model_note",
            "plan_mismatch",
            "read_report",
            "report_path_for",
            "write_report",
        ],
        "engine": [
            "PlanRunner",
            "build_plan",
            "has_fp16_builder_flag",
            "import_tensorrt",
            "load_plugin_library",
        ],
        "fp16_onnx": ["to_fp16"],
        "gpu_env": [
            "Gpu",
            "container_tensorrt_version",
            "parse_nvidia_smi",
            "query_gpu",
            "tensorrt_version_from_libraries",
        ],
        "plan_check": ["check_deployment"],
        "plugin_rewrite": [
            "PLUGIN_DOMAIN",
            "PLUGIN_OP",
            "Replaced",
            "RewriteResult",
            "rewrite_upsampling",
        ],
    },
)
