"""Names every generated artifact agrees on: job selectors, thresholds, links.

Selectors live only here (STYLE.md); rules and dashboards import them, so renaming a
scrape job is a one-line change.
"""

from __future__ import annotations

__all__ = [
    "APP_JOB",
    "DASHBOARD_BASE_URL",
    "EXPORTER_JOB",
    "LATENCY_THRESHOLD_S",
    "RUNBOOK_BASE_URL",
    "SERVICE",
    "app_selector",
    "exporter_selector",
]

SERVICE = "elibrary"
APP_JOB = "elibrary-app"
EXPORTER_JOB = "elibrary-exporter"
#: the latency SLO threshold; also a bucket bound of http_request_duration_seconds
LATENCY_THRESHOLD_S = 0.2
#: where docs/runbooks/<Alert>.md is published
RUNBOOK_BASE_URL = "https://github.com/elibrary/sre-toolkit/blob/main/docs/runbooks"
#: Grafana base URL; dashboards are addressed by uid
DASHBOARD_BASE_URL = "https://grafana.elibrary.example/d"


def app_selector(*extra: str) -> str:
    """The label matchers selecting the library service's series."""
    return "{" + ", ".join((f'job="{APP_JOB}"', *extra)) + "}"


def exporter_selector(*extra: str) -> str:
    """The label matchers selecting the exporter's series."""
    return "{" + ", ".join((f'job="{EXPORTER_JOB}"', *extra)) + "}"
