"""Read a Keras model file into a neutral graph of layers: no TensorFlow, no Keras.

Two formats are understood:
- legacy HDF5 written by tf.keras 2.x or Keras 3 `model.save("x.h5")`: the architecture
  is the JSON attribute `model_config`, weights live under `model_weights/<layer>/` in the
  order given by each group's `weight_names` attribute;
- the Keras 3 `.keras` zip (also written by tf-keras 2.x): `config.json` plus
  `model.weights.h5`, whose weights live under `layers/<key>/vars/<i>` (Keras 3 also writes
  the layer name as an attribute of `vars`).

A functional model used as a layer (a Keras Applications backbone called on a tensor) is
flattened into the outer graph: its weights live in the file under the nested model's group
(legacy HDF5: `model_weights/<nested>/<inner layer>/...`; .keras:
`layers/<nested key>/layers/<inner key>/vars/<i>`), and its input and output tensors are
replaced by the tensors the outer model connects to it.

Weights stay in the file until an emitter asks for them, so a large model is never held
twice in memory. Every problem with the file is raised as UserError.
"""

from unetkit.keras2onnx.keras_file.architecture import ARGUMENTS, CONSTANT_VALUE, FIRST_ARGUMENT
from unetkit.keras2onnx.keras_file.graph import (
    FILE_ERRORS,
    InputSlot,
    KerasGraph,
    KerasLayer,
    KerasModel,
    TensorRef,
    Weight,
)
from unetkit.keras2onnx.keras_file.reader import open_keras_model

__all__ = [
    "ARGUMENTS",
    "CONSTANT_VALUE",
    "FILE_ERRORS",
    "FIRST_ARGUMENT",
    "InputSlot",
    "KerasGraph",
    "KerasLayer",
    "KerasModel",
    "TensorRef",
    "Weight",
    "open_keras_model",
]
