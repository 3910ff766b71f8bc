"""Memory stress of the CPU server as a user starts it: many clients with large images.

    .venv/bin/python loadtest/stress.py                   # make stress: 32 x 2048x2048, 60 s
    .venv/bin/python loadtest/stress.py --clients 8 --side 1024 --seconds 20 --memory 2G

Starts `python -m unetkit.serve` (what `make serve` runs, with its stub supervisor) on free
ports with the repository's model and the default memory budget (or --memory). Each client
sends its image back to back, asking for MASK only, and pauses 0.2 s after a refusal. The
resident memory of tritonserver and its stubs is sampled every 0.1 s during the burst and
for a minute after. Reported: masks served, requests refused and how fast the refusals came,
client-side failures of any other kind, peak RSS against the budget, restarts of Triton by
the supervisor, and the memory one minute after. Then the clients start again, and after a
few seconds, with large images in flight and queued, the server gets Ctrl-C (SIGINT to its
process group, as a terminal sends it): it must be gone within STOP_LIMIT_S.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from unetkit.core import (
    INPUT_IMAGE,
    MODEL_NAME,
    OUTPUT_MASK,
    UserError,
    run_cli,
    write_text_atomic,
)
from unetkit.triton import child_pids, free_ports, group_members, parse_bytes

ROOT = Path(__file__).resolve().parent.parent
RESTARTED = "warning: a python backend stub died"
STOP_LIMIT_S = 10.0  # Ctrl-C stops the server within this long, even mid-burst
STOP_BURST_S = 5.0  # how long the clients send before that Ctrl-C


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--side", type=int, default=2048, help="grey images of side x side")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the burst")
    parser.add_argument("--after-s", type=float, default=60.0, help="memory watched after")
    parser.add_argument("--memory", help="the server's budget (default: make serve's)")
    parser.add_argument("--output", type=Path, default=ROOT / "loadtest/reports/stress.md")
    args = parser.parse_args(argv)
    if min(args.clients, args.side) < 1 or args.seconds <= 0 or args.after_s < 0:
        raise UserError("--clients, --side and --seconds must be positive")
    return args


class Server:
    """`python -m unetkit.serve` in its own process group, its output collected."""

    def __init__(self, repository: Path, memory: str | None) -> None:
        self.http, self.grpc, self.metrics = free_ports(3)
        command = [
            sys.executable, "-m", "unetkit.serve", "--model-repository", str(repository),
            "--grpc-port", str(self.grpc), "--http-port", str(self.http),
            "--metrics-port", str(self.metrics),
        ]  # fmt: skip
        if memory:
            command += ["--memory", memory]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("Ctrl-C stops the server"):
                self.ready.set()

    def resident_bytes(self) -> int:
        """tritonserver and its stubs (the launcher's own Python is not the server)."""
        return sum(
            m.rss_kib * 1024 for pid in child_pids(self.process.pid) for m in group_members(pid)
        )

    def budget(self) -> str:
        found = [line for line in self.lines if "unetkit: memory budget" in line]
        return found[-1].split("unetkit: ", 1)[1].strip().rstrip('"') if found else "?"

    def stop(self) -> tuple[int | None, float]:
        """Ctrl-C: the exit code (None: still running after two limits) and the seconds
        it took."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            code: int | None = self.process.wait(timeout=2 * STOP_LIMIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            code = None
        return code, time.monotonic() - started


def burst(url: str, args: argparse.Namespace, seconds: float) -> list[dict[str, Any]]:
    """Every client sending for `seconds`; their outcomes."""
    outcomes: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    clients = [
        threading.Thread(target=client, args=(url, args.side, i, deadline, outcomes))
        for i in range(args.clients)
    ]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    return outcomes


def stop_mid_burst(server: Server, url: str, args: argparse.Namespace) -> tuple[int | None, float]:
    """Clients sending again, then Ctrl-C with their requests in flight and queued."""
    clients = threading.Thread(target=burst, args=(url, args, STOP_BURST_S + STOP_LIMIT_S))
    clients.start()
    time.sleep(STOP_BURST_S)
    stopped = server.stop()
    clients.join()
    return stopped


def client(url: str, side: int, seed: int, deadline: float, outcomes: list[dict[str, Any]]) -> None:
    image = np.random.default_rng(seed).integers(0, 256, (1, side, side, 1), np.uint8)
    tensor = grpcclient.InferInput(INPUT_IMAGE, list(image.shape), "UINT8")
    tensor.set_data_from_numpy(image)
    with grpcclient.InferenceServerClient(url) as connection:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                connection.infer(
                    MODEL_NAME,
                    [tensor],
                    outputs=[grpcclient.InferRequestedOutput(OUTPUT_MASK)],
                    client_timeout=60,
                )
                outcomes.append({"kind": "mask", "s": time.monotonic() - started})
            except InferenceServerException as e:
                kind = "refused" if e.status() == "StatusCode.UNAVAILABLE" else "failed"
                outcomes.append(
                    {"kind": kind, "s": time.monotonic() - started, "why": e.message() or ""}
                )
                time.sleep(0.2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args.repository, args.memory)
    if not server.ready.wait(timeout=180):
        server.process.kill()
        raise UserError("the server did not start:\n" + "".join(server.lines[-20:]))
    url = f"127.0.0.1:{server.grpc}"
    baseline = server.resident_bytes()
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.1):
            samples.append((time.monotonic(), server.resident_bytes()))

    watcher = threading.Thread(target=watch)
    watcher.start()
    outcomes = burst(url, args, args.seconds)
    burst_end = time.monotonic()
    time.sleep(args.after_s)
    stop.set()
    watcher.join()
    after = server.resident_bytes()
    ready = model_ready(url)
    code, stop_s = stop_mid_burst(server, url, args)
    during = [rss for t, rss in samples if t <= burst_end]
    refusal_s = sorted(o["s"] for o in outcomes if o["kind"] == "refused")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python", "loadtest/stress.py", *sys.argv[1:]]),
        "clients": args.clients,
        "side": args.side,
        "seconds": args.seconds,
        "budget": server.budget(),
        "budget_bytes": parse_bytes(args.memory) if args.memory else None,
        "outcomes": dict(Counter(o["kind"] for o in outcomes)),
        "refusal_reasons": dict(
            Counter(o["why"].split("] ")[-1][:60] for o in outcomes if o["kind"] == "refused")
        ),
        "failures": [o["why"] for o in outcomes if o["kind"] == "failed"][:10],
        "refusal_s_median": float(np.median(refusal_s)) if refusal_s else None,
        "refusal_s_max": max(refusal_s) if refusal_s else None,
        "mask_s_median": float(np.median([o["s"] for o in outcomes if o["kind"] == "mask"] or [0])),
        "rss_baseline_mib": baseline / 2**20,
        "rss_peak_mib": max(during, default=0) / 2**20,
        "rss_after_mib": after / 2**20,
        "after_s": args.after_s,
        "restarts": sum(RESTARTED in line for line in server.lines),
        "ready_after": ready,
        "server_exit_code": code,
        "stop_s": stop_s,
        "stopped_in_time": code is not None and stop_s <= STOP_LIMIT_S,
    }


def model_ready(url: str) -> bool:
    with grpcclient.InferenceServerClient(url) as connection:
        return bool(connection.is_model_ready(MODEL_NAME))


def markdown(r: dict[str, Any]) -> str:
    o = r["outcomes"]
    return (
        "\n".join(
            [
                f"- Date: {r['date']}; command: `{r['command']}`",
                f"- {r['clients']} clients x {r['side']}x{r['side']} grey, MASK only, "
                f"{r['seconds']:g} s; server: {r['budget']}",
                f"- Masks served: {o.get('mask', 0)} (median {r['mask_s_median']:.1f} s each); "
                f"refused at capacity: {o.get('refused', 0)} (answer in median "
                f"{r['refusal_s_median'] or 0:.2f} s, max {r['refusal_s_max'] or 0:.2f} s; "
                f"{r['refusal_reasons']}); other failures: {o.get('failed', 0)} {r['failures']}",
                f"- Resident memory of tritonserver + stubs: {r['rss_baseline_mib']:.0f} MiB "
                f"before, peak {r['rss_peak_mib']:.0f} MiB, {r['rss_after_mib']:.0f} MiB "
                f"{r['after_s']:g} s after; restarts {r['restarts']}; "
                f"model ready after: {r['ready_after']}",
                f"- Ctrl-C {STOP_BURST_S:g} s into a second burst: the server stopped in "
                f"{r['stop_s']:.1f} s (exit code {r['server_exit_code']}; limit "
                f"{STOP_LIMIT_S:g} s)",
            ]
        )
        + "\n"
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    results = run(args)
    text = markdown(results)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output, text)
    write_text_atomic(args.output.with_suffix(".json"), json.dumps(results, indent=2) + "\n")
    ok = (
        results["restarts"] == 0
        and not results["failures"]
        and results["ready_after"]
        and results["stopped_in_time"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    run_cli(main)
