"""The life of a load test in one Locust process, hooked onto Locust's events: the flags,
the workload prepared at test start, measurement windows, the workers' windows merged by
the master, and the exact-latency report at the end."""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.env import Environment
from locust.event import Events
from locust.runners import MasterRunner, WorkerRunner

from unetkit.core import UserError
from unetkit.loadgen.measurement import Recorder
from unetkit.loadgen.options import add_arguments
from unetkit.loadgen.user import TritonGrpcUser
from unetkit.loadgen.workload import prepare_workload

logger = logging.getLogger("unetkit.loadtest")


def install(events: Events) -> None:
    """Register the kit's listeners; call once from the locustfile."""
    environments: list[Environment] = []

    @events.init_command_line_parser.add_listener
    def _flags(parser: Any) -> None:
        add_arguments(parser)

    @events.init.add_listener
    def _remember(environment: Environment, **_: Any) -> None:
        environments.append(environment)
        if isinstance(environment.runner, MasterRunner):
            logger.info("master: merging exact latencies from the workers' reports")

    @events.test_start.add_listener
    def _start(environment: Environment, **_: Any) -> None:
        options = environment.parsed_options
        if TritonGrpcUser.workload is None and not isinstance(environment.runner, MasterRunner):
            try:
                TritonGrpcUser.workload = prepare_workload(options)
            except UserError as e:
                logger.error("error: %s", e)
                environment.process_exit_code = 2
                gevent.spawn(environment.runner.quit)
        TritonGrpcUser.recorder = Recorder()
        if options.window > 0 and not isinstance(environment.runner, WorkerRunner):
            gevent.spawn(TritonGrpcUser.recorder.measure_windows, options, environment.runner.quit)

    @events.spawning_complete.add_listener
    def _users(user_count: int, **_: Any) -> None:
        recorder = TritonGrpcUser.recorder
        recorder.users = max(recorder.users, user_count)

    @events.test_stop.add_listener
    def _stop(**_: Any) -> None:
        TritonGrpcUser.recorder.stopped = time.monotonic()

    @events.report_to_master.add_listener
    def _send(client_id: str, data: dict[str, Any]) -> None:
        TritonGrpcUser.recorder.send_window(data)

    @events.worker_report.add_listener
    def _receive(client_id: str, data: dict[str, Any]) -> None:
        TritonGrpcUser.recorder.receive_window(data)

    @events.quit.add_listener
    def _report(exit_code: int, **_: Any) -> None:
        if environments and not isinstance(environments[-1].runner, WorkerRunner):
            TritonGrpcUser.recorder.print_and_write(environments[-1].parsed_options)
