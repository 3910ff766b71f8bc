"""The TensorRT route: the ONNX rewrites a plan needs (upsampling plugin, fp16 copy), the
engine build (on NVIDIA's TensorRT, or TensorRT-RTX ahead of time) and its accuracy gate, the
build report, and the check that a plan fits the TensorRT and GPU of the container about to
serve it (standard library only)."""

from typing import TYPE_CHECKING

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
            "BuildInputs",
            "BuildReport",
            "ImageTags",
            "REBUILD_HINT",
            "SERVING_BUILDER",
            "gpu_model_note",
            "plan_mismatch",
            "read_report",
            "rebuild_reason",
            "report_path_for",
            "write_report",
        ],
        "engine": ["PlanRunner"],
        "builder": [
            "BuiltPlan",
            "EngineBuild",
            "build_serialized",
            "check_input_dtype",
            "compute_capability_target",
            "configure_precision",
            "configure_target",
            "prepare_build",
            "upsampling_layers",
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
        "plugin_library": [
            "load_plugin_library",
            "plugin_registered",
            "rtx_plugin_layers_possible",
        ],
        "plugin_rewrite": [
            "PLUGIN_DOMAIN",
            "PLUGIN_OP",
            "Replaced",
            "RewriteResult",
            "rewrite_upsampling",
        ],
        "timing_cache": [
            "attach_timing_cache",
            "serialized_timing_cache",
            "timing_cache_path",
        ],
        "trt_module": [
            "MODULE_ENV",
            "TENSORRT_MODULES",
            "builder_name",
            "has_fp16_builder_flag",
            "import_tensorrt",
            "is_tensorrt_rtx",
            "tensorrt_module_name",
        ],
    },
)

if TYPE_CHECKING:  # what editors and type checkers follow; the names load on first use
    from unetkit.tensorrt.accuracy import (
        MASK_AGREEMENT_REQUIRED,
        PROB_TOLERANCE,
        Outputs,
        Runner,
        batches,
        compare,
        describe,
        onnxruntime_runner,
    )
    from unetkit.tensorrt.build_report import (
        REBUILD_HINT,
        SERVING_BUILDER,
        Accuracy,
        BuildInputs,
        BuildReport,
        ImageTags,
        gpu_model_note,
        plan_mismatch,
        read_report,
        rebuild_reason,
        report_path_for,
        write_report,
    )
    from unetkit.tensorrt.builder import (
        BuiltPlan,
        EngineBuild,
        build_serialized,
        check_input_dtype,
        compute_capability_target,
        configure_precision,
        configure_target,
        prepare_build,
        upsampling_layers,
    )
    from unetkit.tensorrt.engine import (
        PlanRunner,
    )
    from unetkit.tensorrt.fp16_onnx import (
        to_fp16,
    )
    from unetkit.tensorrt.gpu_env import (
        Gpu,
        container_tensorrt_version,
        parse_nvidia_smi,
        query_gpu,
        tensorrt_version_from_libraries,
    )
    from unetkit.tensorrt.plan_check import (
        check_deployment,
    )
    from unetkit.tensorrt.plugin_library import (
        load_plugin_library,
        plugin_registered,
        rtx_plugin_layers_possible,
    )
    from unetkit.tensorrt.plugin_rewrite import (
        PLUGIN_DOMAIN,
        PLUGIN_OP,
        Replaced,
        RewriteResult,
        rewrite_upsampling,
    )
    from unetkit.tensorrt.timing_cache import (
        attach_timing_cache,
        serialized_timing_cache,
        timing_cache_path,
    )
    from unetkit.tensorrt.trt_module import (
        MODULE_ENV,
        TENSORRT_MODULES,
        builder_name,
        has_fp16_builder_flag,
        import_tensorrt,
        is_tensorrt_rtx,
        tensorrt_module_name,
    )
