"""The kit's layer converters, one module per layer family; importing this registers them."""

from unetkit.keras2onnx.layers import (  # noqa: F401  (imported for their registrations)
    activations,
    attention,
    convolution,
    core,
    einsum,
    embedding,
    lambdas,
    merge,
    normalization,
    operations,
    patches,
    pooling,
    preprocessing,
    regularization,
    reshaping,
    swin,
    tf_functions,
    upsampling,
)
