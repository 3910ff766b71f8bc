"""Entry point of the compose `triton` service: check the plan, then exec tritonserver.

Runs with the Triton container's python3 and the standard library only. A plan built by
another TensorRT or on another GPU is reported in one line here, before Triton's own
"engine plan file is not compatible" error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from unetkit.build_report import read_report, report_path_for
from unetkit.errors import run_cli
from unetkit.gpu_env import container_tensorrt_version, query_gpu
from unetkit.plan_check import check_deployment
from unetkit.triton_command import tritonserver_command
from unetkit.triton_server import admin_key

MODEL_REPOSITORY = Path(os.environ.get("UNETKIT_MODEL_REPOSITORY", "/models"))
PLUGIN_LIBRARY = Path(
    os.environ.get("UNETKIT_PLUGIN_LIB", "/opt/unetkit/plugins/build/libunetkit_plugins.so")
)


def main(argv: list[str]) -> int:
    plan = MODEL_REPOSITORY / "unet" / "1" / "model.plan"
    for note in check_deployment(plan, PLUGIN_LIBRARY, container_tensorrt_version(), query_gpu()):
        print(f"note: {note}", file=sys.stderr)
    uses_plugin = read_report(report_path_for(plan)).upsample == "plugin"
    key, note = admin_key(dict(os.environ))
    if note:
        print(f"note: {note}", file=sys.stderr)
    command = (
        tritonserver_command(MODEL_REPOSITORY, [PLUGIN_LIBRARY] if uses_plugin else [], key) + argv
    )
    sys.stdout.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    run_cli(main)
