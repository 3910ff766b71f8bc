"""The kit's pipelines, between the commands (unetkit.cli, which parse flags and print) and
the concern packages they compose: making the Triton model repository from a Keras model,
and building the GPU plan. Each takes typed options, never a command line."""

from typing import TYPE_CHECKING

from unetkit.core import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "repository": ["EXAMPLE_MODEL", "SAMPLES", "Outcome", "export_options", "make_repository"],
        "plan_build": [
            "EXIT_ACCURACY",
            "REPO_ROOT",
            "PlanBuildOptions",
            "build_plan",
            "network_model",
        ],
    },
)

if TYPE_CHECKING:  # what editors and type checkers follow; the names load on first use
    from unetkit.pipelines.plan_build import (
        EXIT_ACCURACY,
        REPO_ROOT,
        PlanBuildOptions,
        build_plan,
        network_model,
    )
    from unetkit.pipelines.repository import (
        EXAMPLE_MODEL,
        SAMPLES,
        Outcome,
        export_options,
        make_repository,
    )
