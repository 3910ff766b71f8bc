"""Convert a Keras U-Net to ONNX: `unetkit-export`, kept here for the README and compose."""

from unetkit.cli.export import run

run()
