"""Run the real Triton Inference Server on this machine with the kit's model repository.

    unetkit-serve [--host 127.0.0.1] [--grpc-port 8001] [--config cpu]   (or: make serve)

Waits until the model is ready, prints where the server listens and a client command,
restarts it when a python backend stub dies, and stops the server (stubs included) on
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

from unetkit.core import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    MEMORY_BUDGET_ENV,
    MODEL_NAME,
    UserError,
    add_debug_flag,
    run_cli,
)
from unetkit.triton import (
    ADMIN_KEY_ENV,
    ADMIN_KEY_FILE_ENV,
    TritonServer,
    parse_bytes,
    supervise,
)

EXIT_SERVER_DIED = 3


class StopRequested(Exception):
    """SIGTERM arrived: leave the wait and stop the server like Ctrl-C does."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="unetkit-serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Exit codes: 0 stopped by Ctrl-C/SIGTERM, 2 cannot start (one line on stderr "
            f"says why), {EXIT_SERVER_DIED} the server stopped on its own."
        ),
    )
    parser.add_argument(
        "--model-repository",
        type=Path,
        default=Path("model_repository"),
        help="Triton model repository (default: %(default)s; `make repository` fills it)",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (default: %(default)s; 0.0.0.0 exposes the server to "
        "the network, with no TLS or authentication on inference)",
    )
    for name, default in (
        ("grpc", DEFAULT_GRPC_PORT),
        ("http", DEFAULT_HTTP_PORT),
        ("metrics", DEFAULT_METRICS_PORT),
    ):
        parser.add_argument(
            f"--{name}-port", type=int, default=default, help="default: %(default)s"
        )
    parser.add_argument(
        "--config",
        default="cpu",
        help="model configuration, configs/NAME.pbtxt of the model (default: %(default)s)",
    )
    parser.add_argument(
        "--memory",
        metavar="SIZE",
        help="memory budget for Triton and the model, e.g. 4G (default: the config's, "
        "'auto' = half the memory available at start-up); larger images are refused and "
        "batches split to stay inside it",
    )
    parser.add_argument(
        "--log-verbose", type=int, default=0, help="Triton's verbose log level (default: 0)"
    )
    add_debug_flag(parser)
    return parser.parse_args(argv)


def check_repository(repository: Path, config: str) -> None:
    model_dir = repository / MODEL_NAME
    config_file = model_dir / "configs" / f"{config}.pbtxt"
    if not config_file.is_file():
        raise UserError(
            f"no model configuration {config_file}: run `make repository`, "
            "or pick an existing one with --config"
        )
    versions = [d for d in model_dir.iterdir() if d.is_dir() and d.name.isdigit()]
    if not any(any(v.glob("model.*")) for v in versions):
        raise UserError(f"no model file in {model_dir}/<version>/: run `make repository`")
    if config == "cpu" and not any((v / "model.onnx").is_file() for v in versions):
        raise UserError(f"no {model_dir}/1/model.onnx for the CPU config: run `make repository`")


def check_ports(host: str, ports: dict[str, int]) -> None:
    if len(set(ports.values())) != len(ports):
        raise UserError(f"ports must differ, got {ports}")
    for flag, port in ports.items():
        if not 1 <= port <= 65535:
            raise UserError(f"{flag} {port} is not a port number (1..65535)")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise UserError(
                        f"port {port} on {host} is in use (another server?): "
                        f"stop it or pick another with {flag}"
                    ) from e
                raise UserError(f"cannot listen on {host}:{port}: {e.strerror}") from e


def is_loopback(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return host == "localhost"


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise StopRequested


def client_python() -> str:
    """This interpreter (it has tritonclient), as a path relative to here when it is inside."""
    relative = os.path.relpath(sys.executable)
    return sys.executable if relative.startswith("..") else relative


def announce(server: TritonServer, config: str) -> None:
    admin = (
        f"open to requests carrying the key in ${ADMIN_KEY_ENV}"
        if os.environ.get(ADMIN_KEY_ENV) or os.environ.get(ADMIN_KEY_FILE_ENV)
        else f"closed (set {ADMIN_KEY_ENV} to open them with a key)"
    )
    print(
        f"Triton is serving model '{MODEL_NAME}' (config {config}) "
        f"from {server.model_repository}\n"
        f"  gRPC     {server.grpc_url}\n"
        f"  HTTP     http://{server.http_url}\n"
        f"  metrics  {server.metrics_url}\n"
        f"  admin APIs (model-repository, shared-memory, trace, logging): {admin}\n"
        f"Segment images:  {client_python()} client/segment.py -u {server.grpc_url} "
        "samples/*.png\n"
        "Ctrl-C stops the server.",
        flush=True,
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not is_loopback(args.host):
        print(
            f"warning: listening on {args.host}: anyone who can reach this machine can run "
            "inference (no TLS, no authentication); see SECURITY.md",
            file=sys.stderr,
        )
    check_repository(args.model_repository, args.config)
    ports = {
        "--grpc-port": args.grpc_port,
        "--http-port": args.http_port,
        "--metrics-port": args.metrics_port,
    }
    check_ports(args.host, ports)
    if args.memory is not None:
        # The model reads it when it loads (1/model.py); checked here for a one-line error.
        os.environ[MEMORY_BUDGET_ENV] = str(parse_bytes(args.memory))
    server = TritonServer(
        args.model_repository.resolve(),
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        model_config_name=args.config,
        log_verbose=args.log_verbose,
    )
    # A shell starts background jobs with SIGINT ignored, and Python keeps an inherited
    # SIG_IGN: Ctrl-C's signal must stop the server however it was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_stop)
    code: int | None = None
    try:
        server.start()
        announce(server, args.config)
        code = supervise(server, lambda line: print(line, file=sys.stderr, flush=True))
    except (KeyboardInterrupt, StopRequested):
        print("stopping Triton ...", file=sys.stderr, flush=True)
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave stub processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        server.stop()
    if code is not None:
        raise UserError(f"tritonserver stopped on its own with exit code {code}", EXIT_SERVER_DIED)
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
