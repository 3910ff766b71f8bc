"""Would model.plan load here (or there)? `unetkit-check-plan`, kept here for the README."""

from unetkit.cli.check_plan import run

run()
