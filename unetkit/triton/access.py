"""Who may use Triton's admin APIs: the flags every server of the kit runs with, CPU or GPU.

Standard library only: the GPU route runs it in the Triton container.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from unetkit.core import UserError

# Triton's admin surfaces: loading/unloading models, shared-memory registration, tracing
# and log settings. They answer only to requests carrying the admin key.
RESTRICTED_GRPC_PROTOCOLS = "model-repository,shared-memory,trace,logging"
RESTRICTED_HTTP_APIS = "model-repository,shared-memory,trace,logging"
ADMIN_KEY_HEADER = "unetkit-admin-key"
ADMIN_KEY_ENV = "UNETKIT_ADMIN_KEY"
# A file holding the key (a mounted Kubernetes Secret): secrets as files stay out of the
# environment, which logs and child processes see.
ADMIN_KEY_FILE_ENV = "UNETKIT_ADMIN_KEY_FILE"


def admin_key(environ: dict[str, str]) -> tuple[str, str | None]:
    """The key for Triton's restricted APIs, and a note when none was given: from
    UNETKIT_ADMIN_KEY, else from the file UNETKIT_ADMIN_KEY_FILE names."""
    key = environ.get(ADMIN_KEY_ENV, "").strip()
    if key:
        return key, None
    key_file = environ.get(ADMIN_KEY_FILE_ENV, "").strip()
    if key_file:
        try:
            key = Path(key_file).read_text().strip()
        except OSError as e:
            raise UserError(
                f"{ADMIN_KEY_FILE_ENV}={key_file}: cannot read the admin key ({e.strerror}); "
                "mount the Secret there or unset the variable"
            ) from e
        if not key:
            raise UserError(
                f"{ADMIN_KEY_FILE_ENV}={key_file}: the file is empty; put the key in it"
            )
        return key, None
    # Without a configured key, a random one: the admin surfaces stay closed to everyone.
    return secrets.token_urlsafe(32), (
        f"{ADMIN_KEY_ENV} is not set: the restricted APIs ({RESTRICTED_GRPC_PROTOCOLS}) "
        "are locked with a random key nobody knows"
    )


def access_flags(key: str) -> list[str]:
    """What every server of the kit runs with, CPU or GPU: models fixed at start-up,
    ready only when the model is, and the admin surfaces behind `key`."""
    restricted = f":{ADMIN_KEY_HEADER}={key}"
    return [
        "--model-control-mode=none",
        "--exit-on-error=true",
        "--strict-readiness=true",
        f"--grpc-restricted-protocol={RESTRICTED_GRPC_PROTOCOLS}{restricted}",
        f"--http-restricted-api={RESTRICTED_HTTP_APIS}{restricted}",
    ]
