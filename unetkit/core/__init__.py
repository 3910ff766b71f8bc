"""The small core every part of the kit builds on: the I/O contract and its size rule,
the model's stored description, the deployment's shape profile, sample images, one-line
errors and atomic writes."""

from typing import TYPE_CHECKING

from unetkit.core.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "exports": ["lazy_exports"],
        "contract": [
            "MODEL_NAME",
            "MODEL_VERSION",
            "INPUT_IMAGE",
            "OUTPUT_PROB",
            "OUTPUT_MASK",
            "DEFAULT_THRESHOLD",
            "INPUT_DTYPES",
            "DEFAULT_INPUT_DTYPE",
            "DEFAULT_HOST",
            "DEFAULT_HTTP_PORT",
            "DEFAULT_GRPC_PORT",
            "DEFAULT_METRICS_PORT",
            "DEFAULT_GRPC_URL",
            "PARAM_MULTIPLE_H",
            "PARAM_MULTIPLE_W",
            "PARAM_MIN_HEIGHT",
            "PARAM_MIN_WIDTH",
            "PARAM_SIZE_MULTIPLE",
            "PARAM_MAX_IMAGE_SIDE",
            "PARAM_THRESHOLD",
            "PARAM_INTRA_OP_THREADS",
            "PARAM_RUNTIME",
            "PARAM_PRECISION",
            "PARAM_MEMORY_BASE_BYTES",
            "PARAM_MEMORY_BUDGET",
            "PARAM_MEMORY_BYTES_PER_PIXEL",
            "MEMORY_BUDGET_ENV",
            "SERVER_DIR_ENV",
            "PARAM_OUTPUT_OFFSET_H",
            "PARAM_OUTPUT_OFFSET_W",
            "PARAM_OUTPUT_SHRINK_H",
            "PARAM_OUTPUT_SHRINK_W",
        ],
        "errors": ["UserError", "add_debug_flag", "run_cli"],
        "files": ["atomic_path", "sha256_file", "write_bytes_atomic", "write_text_atomic"],
        "size_rule": ["SizeRule", "rules_from_parameters"],
        "model_info": ["ModelInfo", "contract_info", "load_onnx", "read_model_info"],
        "profile": [
            "BatchShape",
            "Profile",
            "check_max_batch_size",
            "default_profile",
            "parse_shape",
            "validate_profile",
        ],
        "samples": ["Sample", "iou", "load_samples"],
    },
)

if TYPE_CHECKING:  # what editors and type checkers follow; the names load on first use
    from unetkit.core.contract import (
        DEFAULT_GRPC_PORT,
        DEFAULT_GRPC_URL,
        DEFAULT_HOST,
        DEFAULT_HTTP_PORT,
        DEFAULT_INPUT_DTYPE,
        DEFAULT_METRICS_PORT,
        DEFAULT_THRESHOLD,
        INPUT_DTYPES,
        INPUT_IMAGE,
        MEMORY_BUDGET_ENV,
        MODEL_NAME,
        MODEL_VERSION,
        OUTPUT_MASK,
        OUTPUT_PROB,
        PARAM_INTRA_OP_THREADS,
        PARAM_MAX_IMAGE_SIDE,
        PARAM_MEMORY_BASE_BYTES,
        PARAM_MEMORY_BUDGET,
        PARAM_MEMORY_BYTES_PER_PIXEL,
        PARAM_MIN_HEIGHT,
        PARAM_MIN_WIDTH,
        PARAM_MULTIPLE_H,
        PARAM_MULTIPLE_W,
        PARAM_OUTPUT_OFFSET_H,
        PARAM_OUTPUT_OFFSET_W,
        PARAM_OUTPUT_SHRINK_H,
        PARAM_OUTPUT_SHRINK_W,
        PARAM_PRECISION,
        PARAM_RUNTIME,
        PARAM_SIZE_MULTIPLE,
        PARAM_THRESHOLD,
        SERVER_DIR_ENV,
    )
    from unetkit.core.errors import (
        UserError,
        add_debug_flag,
        run_cli,
    )
    from unetkit.core.exports import (
        lazy_exports,
    )
    from unetkit.core.files import (
        atomic_path,
        sha256_file,
        write_bytes_atomic,
        write_text_atomic,
    )
    from unetkit.core.model_info import (
        ModelInfo,
        contract_info,
        load_onnx,
        read_model_info,
    )
    from unetkit.core.profile import (
        BatchShape,
        Profile,
        check_max_batch_size,
        default_profile,
        parse_shape,
        validate_profile,
    )
    from unetkit.core.samples import (
        Sample,
        iou,
        load_samples,
    )
    from unetkit.core.size_rule import (
        SizeRule,
        rules_from_parameters,
    )
