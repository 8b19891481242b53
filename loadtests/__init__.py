"""Load tests: Locust journeys and profiles against the library service (DESIGN.md).

- ``loadtests.profiles``: smoke, load, stress and soak as data, and the load shape's logic;
- ``loadtests.routes``: the (method, route template) names requests are reported under;
- ``loadtests.locustfile``: the journeys, run only inside Locust's own processes;
- ``loadtests.run``: ``run_loadtest``, which runs Locust headless in subprocesses and
  writes the files ``sre slo gate`` reads (docs/loadtests.md).

Importing this package never imports Locust or gevent.
"""

from loadtests.profiles import PROFILES, Profile
from loadtests.run import (
    LoadTestFailed,
    RunResult,
    merge_request_logs,
    parse_run_time,
    run_loadtest,
)

__all__ = [
    "PROFILES",
    "LoadTestFailed",
    "Profile",
    "RunResult",
    "merge_request_logs",
    "parse_run_time",
    "run_loadtest",
]
