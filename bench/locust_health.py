"""A trivial Locust load for bench/load_sla.py: GET /api/health back to back.

Each user sends its next request as soon as the last one is answered (``constant(0)``), so
a few dozen users keep one Locust process busy: the rate it reaches, and the CPU it spends
per request, say how many requests per second one Locust process can drive.

It imports ``loadtests.locustfile`` for its hooks only (none of its users or its shape
land in this module's namespace, so Locust runs only ``Health``): the per-request log
(when ``SRE_LOADTEST_REQUESTS_DIR`` is set, as ``loadtests.run`` sets it), the final CSV
write and the log lines marking when the load started and stopped. With the variable
unset the process does what plain Locust does, plus those marks.

    python -m locust -f bench/locust_health.py --headless -u 32 -r 32 -t 15s -H URL
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task

import loadtests.locustfile  # noqa: F401  (its event hooks: request log, final CSV, marks)

__all__ = ["Health"]


class Health(FastHttpUser):
    """Liveness checks, one after the other, as fast as the answers come."""

    wait_time = constant(0)
    network_timeout = 20.0
    connection_timeout = 10.0

    @task
    def health(self) -> None:
        self.client.get("/api/health", name="/api/health")
