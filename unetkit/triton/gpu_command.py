"""The tritonserver command line of the compose `triton` service (GPU, TensorRT plan).

Standard library only: it runs in the Triton container.
"""

from __future__ import annotations

from pathlib import Path

from unetkit.triton.access import access_flags

# Inside its container Triton listens on every interface of the container's own network;
# which host addresses reach it is decided by the `ports:` of docker-compose.yml
# (127.0.0.1 unless UNETKIT_BIND says otherwise).
CONTAINER_ADDRESS = "0.0.0.0"


def tritonserver_command(
    model_repository: Path, plugin_libraries: list[Path], key: str
) -> list[str]:
    command = [
        "tritonserver",
        f"--model-repository={model_repository}",
        *access_flags(key),
        f"--http-address={CONTAINER_ADDRESS}",
        f"--grpc-address={CONTAINER_ADDRESS}",
        f"--metrics-address={CONTAINER_ADDRESS}",
    ]
    if plugin_libraries:
        # Triton dlopens each library; the kit's registers its plugin creators on load.
        command.append(
            "--backend-config=tensorrt,plugins=" + ";".join(str(p) for p in plugin_libraries)
        )
    return command
