"""Fill model_repository/ from a Keras model: `unetkit-make-repository` (make repository)."""

from unetkit.cli.make_repository import run

run()
