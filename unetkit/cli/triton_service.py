"""Entry point of the compose `triton` service: check the plan, then exec tritonserver.

Runs with the Triton container's python3 and the standard library only. A plan built by
another TensorRT or on another GPU is reported in one line here, before Triton's own
"engine plan file is not compatible" error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from unetkit.core import MODEL_NAME, MODEL_VERSION, run_cli
from unetkit.tensorrt import (
    ImageTags,
    check_deployment,
    container_tensorrt_version,
    query_gpu,
    read_report,
    report_path_for,
)
from unetkit.triton import admin_key, tritonserver_command

MODEL_REPOSITORY = Path(os.environ.get("UNETKIT_MODEL_REPOSITORY", "/models"))
# docker-compose.yml sets it to the library the build service compiled for this tag.
PLUGIN_LIBRARY = (
    Path(os.environ["UNETKIT_PLUGIN_LIB"]) if os.environ.get("UNETKIT_PLUGIN_LIB") else None
)


def main(argv: list[str]) -> int:
    plan = MODEL_REPOSITORY / MODEL_NAME / MODEL_VERSION / "model.plan"
    # docker-compose.yml passes both .env tags, so a mismatch caused by two tags says so.
    tags = ImageTags(os.environ.get("TRT_TAG", ""), os.environ.get("TRITON_TAG", ""))
    notes = check_deployment(plan, PLUGIN_LIBRARY, container_tensorrt_version(), query_gpu(), tags)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    uses_plugin = read_report(report_path_for(plan)).upsample == "plugin"
    key, note = admin_key(dict(os.environ))
    if note:
        print(f"note: {note}", file=sys.stderr)
    command = (
        tritonserver_command(
            MODEL_REPOSITORY, [PLUGIN_LIBRARY] if uses_plugin and PLUGIN_LIBRARY else [], key
        )
        + argv
    )
    sys.stdout.flush()
    os.execvp(command[0], command)


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
