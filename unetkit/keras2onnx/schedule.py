"""The layers of a Keras model in the order they can run, and a way to run that order.

Every layer call becomes a `Call` of the layer's converter (`Op`) once all of its inputs
are computed. Running the schedule with a function per call computes anything that flows
through the network: shapes (the size search), or ONNX tensor names (the emitter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from unetkit.core import UserError
from unetkit.keras2onnx.keras_file import KerasModel, TensorRef
from unetkit.keras2onnx.layers.base import Op, Shape

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One call of a layer in dependency order."""

    op: Op
    inputs: list[TensorRef]
    output: TensorRef


@dataclass(frozen=True)
class Schedule:
    """Every layer call in dependency order, from the model's input to its output."""

    calls: list[Call]
    source: TensorRef
    output: TensorRef

    def run(self, first: T, apply: Callable[[Op, list[T]], T]) -> dict[TensorRef, T]:
        """`apply` each call to the values of its inputs, `first` being the input's."""
        values = {self.source: first}
        for call in self.calls:
            values[call.output] = apply(call.op, [values[r] for r in call.inputs])
        return values

    def shapes(self, shape: Shape) -> dict[TensorRef, Shape]:
        """The shape of every tensor when the input has `shape` (raises ShapeMismatch)."""
        return self.run(shape, lambda op, shapes: op.output_shape(shapes))

    def producers(self) -> dict[TensorRef, Call]:
        return {call.output: call for call in self.calls}


def schedule(model: KerasModel, ops: dict[str, Op]) -> Schedule:
    """Order every layer call of `model` so that its inputs come first."""
    pending: list[tuple[str, int, list[TensorRef]]] = [
        (layer.name, index, refs)
        for layer in model.layers
        if layer.name in ops
        for index, refs in enumerate(layer.calls)
    ]
    ready = set(model.inputs)
    order: list[Call] = []
    while pending:
        runnable = [p for p in pending if all(r in ready for r in p[2])]
        if not runnable:
            name, _, refs = pending[0]
            missing = next(r for r in refs if r not in ready)
            raise UserError(
                f"layer {name!r} reads {missing.layer!r} (call {missing.node}), which the model "
                "never computes; the model config is damaged"
            )
        for name, index, refs in runnable:
            if not refs:
                raise UserError(f"layer {name!r} has a call without inputs")
            order.append(Call(ops[name], refs, TensorRef(name, index, 0)))
            ready.add(TensorRef(name, index, 0))
        pending = [p for p in pending if p not in runnable]
    output = model.outputs[0]
    if output not in {call.output for call in order}:
        raise UserError(f"the model's output {output.layer!r} is not computed by any layer")
    return Schedule(order, model.inputs[0], output)
