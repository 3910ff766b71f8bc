"""Build and check the TensorRT plan: `unetkit-build-engine` (the README and compose call it)."""

from unetkit.cli.build_engine import run

run()
