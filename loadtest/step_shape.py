"""Step load: add --step-users users every --step-seconds, for --step-count steps, then stop.

Use it beside the locustfile: `locust -f loadtest/locustfile.py,loadtest/step_shape.py`.
"""

from __future__ import annotations

from locust import LoadTestShape


class StepLoadShape(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options
        step = int(self.get_run_time() // options.step_seconds)
        if step >= options.step_count:
            return None
        users = options.step_users * (step + 1)
        return users, float(users)
