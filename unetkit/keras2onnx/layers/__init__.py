"""The kit's layer converters, one module per layer family; importing this registers them."""

from unetkit.keras2onnx.layers import (  # noqa: F401  (imported for their registrations)
    activations,
    attention,
    convolution,
    core,
    lambdas,
    merge,
    normalization,
    operations,
    pooling,
    preprocessing,
    regularization,
    reshaping,
    tf_functions,
    upsampling,
)
