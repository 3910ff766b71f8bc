"""Before Triton loads model.plan: is it the plan the report describes, built by this
container's TensorRT on this GPU, with this plugin library? One line if not.

Standard library only: it runs in the Triton container.
"""

from __future__ import annotations

from pathlib import Path

from unetkit.core import UserError, sha256_file
from unetkit.tensorrt.build_report import (
    REBUILD_HINT,
    ImageTags,
    gpu_model_note,
    plan_mismatch,
    read_report,
    report_path_for,
)
from unetkit.tensorrt.gpu_env import Gpu


def check_deployment(
    plan: Path,
    plugin_library: Path | None,
    tensorrt_version: str,
    gpu: Gpu,
    image_tags: ImageTags | None = None,
) -> list[str]:
    """Raise UserError naming the first problem; return notes that do not stop Triton.
    `image_tags`: the compose images' tags, when known, for the hint of a TensorRT mismatch."""
    if not plan.is_file():
        raise UserError(f"{plan}: no TensorRT plan: build it with `docker compose run --rm build`")
    report = read_report(report_path_for(plan))
    if sha256_file(plan) != report.plan_sha256:
        raise UserError(f"{plan} is not the plan its build report describes: {REBUILD_HINT}")
    mismatch = plan_mismatch(report, tensorrt_version, gpu.name, gpu.compute_capability, image_tags)
    if mismatch:
        raise UserError(mismatch)
    if report.upsample == "plugin":
        if plugin_library is None:
            raise UserError(
                "the plan uses the UnetkitUpsampleNearest plugin: say where its library is "
                "(UNETKIT_PLUGIN_LIB, or --plugin-lib)"
            )
        if not plugin_library.is_file():
            raise UserError(
                f"the plan uses the UnetkitUpsampleNearest plugin but {plugin_library} "
                f"is missing: {REBUILD_HINT}"
            )
        if sha256_file(plugin_library) != report.plugin_sha256:
            raise UserError(
                f"{plugin_library} changed since the plan was built with it: {REBUILD_HINT}"
            )
    note = gpu_model_note(report, gpu.name)
    return [note] if note else []
