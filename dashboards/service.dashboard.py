"""eLibrary service: the golden signals (traffic, errors, latency, saturation) of the app.

The SLO thresholds drawn on the error and latency panels come from the SLOs the rules
record, so the line on the panel is the objective the pager enforces.
"""

from __future__ import annotations

from typing import Any

from dashboards.house import (
    GREEN,
    RED,
    Inputs,
    Row,
    dashboard,
    deployments_annotation,
    heatmap,
    query_variable,
    selector,
    stat,
    steps,
    sum_rate,
    table,
    target,
    timeseries,
)

UID = "elibrary-service"
#: The latency SLO's threshold (slo/specs: the le="0.2" bucket); tests/dashboards checks
#: that the spec still says so.
LATENCY_THRESHOLD_S = 0.2
AVAILABILITY_SLO = "requests-availability"

REQUESTS = f"http_requests_total{selector(route=True)}"
FAILED = "http_requests_total" + selector('status=~"5.."', route=True)
BUCKETS = f"http_request_duration_seconds_bucket{selector(route=True)}"
APP = selector()
ROUTE = "method, route"


def _error_budget(inputs: Inputs) -> float:
    """The availability SLO's allowed error ratio (0.001 for 99.9%)."""
    for slo in inputs.slos:
        if slo.name == AVAILABILITY_SLO:
            return round(1 - slo.objective, 12)
    return 0.001


def _quantile(q: float, by: str = "") -> str:
    grouping = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({grouping}) (rate({BUCKETS}[$__rate_interval])))"


def build(inputs: Inputs) -> dict[str, Any]:
    budget = _error_budget(inputs)
    error_ratio = f"({sum_rate(FAILED)} or vector(0)) / {sum_rate(REQUESTS)}"
    latency_steps = steps(GREEN, (LATENCY_THRESHOLD_S, RED))
    error_steps = steps(GREEN, (budget, RED))
    overview = Row(
        "Now",
        [
            stat(
                "Requests per second",
                "Requests the app answered per second, every route and status.",
                [target(sum_rate(REQUESTS))],
                unit="reqps",
                thresholds=steps(GREEN),
                color_mode="value",
            ),
            stat(
                "Error ratio",
                f"Share of requests answered 5xx. Red above the availability SLO's "
                f"error budget ({budget:.3%}).",
                [target(error_ratio)],
                unit="percentunit",
                decimals=3,
                thresholds=error_steps,
            ),
            stat(
                "p95 latency",
                f"95th percentile of request duration. Red above the latency SLO's "
                f"threshold ({LATENCY_THRESHOLD_S * 1000:g} ms).",
                [target(_quantile(0.95))],
                unit="s",
                thresholds=latency_steps,
            ),
            stat(
                "Running version",
                "The version and revision each instance reports (elibrary_build_info).",
                [target(f"elibrary_build_info{APP}", "{{version}} ({{revision}})")],
                unit="none",
                text_mode="name",
                color_mode="none",
                graph=False,
            ),
        ],
    )
    traffic = Row(
        "Traffic and errors",
        [
            timeseries(
                "Request rate by route",
                "Requests per second per route template (the route label is the Flask "
                "rule, never a raw path).",
                [target(sum_rate(REQUESTS, "route"), "{{route}}")],
                unit="reqps",
            ),
            timeseries(
                "Error ratio",
                "Share of requests answered 5xx; the red line is the availability SLO's "
                "error budget. Above it, the budget burns faster than it refills.",
                [target(error_ratio, "5xx ratio")],
                unit="percentunit",
                thresholds=error_steps,
                threshold_style="line",
            ),
            timeseries(
                "Responses by status",
                "Responses per second by HTTP status code.",
                [target(sum_rate(REQUESTS, "status"), "{{status}}")],
                unit="reqps",
                stack=True,
            ),
            timeseries(
                "Latency p50 / p95 / p99",
                "Request duration quantiles from the histogram; the red line is the "
                "latency SLO's threshold.",
                [
                    target(_quantile(0.5), "p50"),
                    target(_quantile(0.95), "p95"),
                    target(_quantile(0.99), "p99"),
                ],
                unit="s",
                thresholds=latency_steps,
                threshold_style="line",
            ),
        ],
    )
    latency = Row(
        "Latency",
        [
            heatmap(
                "Latency distribution",
                "Requests per histogram bucket over time: where the bulk of requests sits, "
                "and how long the tail is.",
                [
                    target(
                        f"sum by (le) (increase({BUCKETS}[$__rate_interval]))",
                        "{{le}}",
                        fmt="heatmap",
                    )
                ],
                unit="s",
            ),
            timeseries(
                "p95 latency by route",
                "95th percentile of request duration per route.",
                [target(_quantile(0.95, "route"), "{{route}}")],
                unit="s",
                thresholds=latency_steps,
                threshold_style="dashed",
            ),
        ],
    )
    saturation = Row(
        "Saturation",
        [
            timeseries(
                "Requests in flight",
                "Requests being served right now, every worker together.",
                [target(f"sum(http_requests_in_progress{APP})", "in flight")],
                unit="short",
                width=8,
            ),
            timeseries(
                "CPU",
                "CPU time of the whole server (gunicorn master and workers) per second: "
                "1 = one core busy.",
                [
                    target(
                        f"rate(process_cpu_seconds_total{APP}[$__rate_interval])",
                        "{{instance}}",
                    )
                ],
                unit="percentunit",
                width=8,
            ),
            timeseries(
                "Memory",
                "Resident memory of the whole server (master and workers).",
                [target(f"process_resident_memory_bytes{APP}", "{{instance}}")],
                unit="bytes",
                width=8,
            ),
            timeseries(
                "Database connections in use",
                "Connections the app holds to the database right now.",
                [target(f"sum(database_connections_active{APP})", "in use")],
                unit="short",
                width=12,
            ),
            timeseries(
                "Open file descriptors",
                "File descriptors the server holds (sockets included).",
                [target(f"process_open_fds{APP}", "{{instance}}")],
                unit="short",
                width=12,
            ),
        ],
    )
    per_route = Row(
        "Per route",
        [
            table(
                "Routes",
                "Each route now: request rate, 5xx ratio and p95 latency (sort by any column).",
                [
                    target(sum_rate(REQUESTS, "method, route"), instant=True, fmt="table"),
                    target(
                        f"({sum_rate(FAILED, ROUTE)} or {sum_rate(REQUESTS, ROUTE)}"
                        f" * 0) / {sum_rate(REQUESTS, ROUTE)}",
                        instant=True,
                        fmt="table",
                    ),
                    target(_quantile(0.95, "method, route"), instant=True, fmt="table"),
                ],
                unit="short",
                columns={
                    "method": "Method",
                    "route": "Route",
                    "Value #A": "Requests/s",
                    "Value #B": "5xx ratio",
                    "Value #C": "p95",
                },
                units={"Requests/s": "reqps", "5xx ratio": "percentunit", "p95": "s"},
                sort_by="Requests/s",
                height=10,
            ),
        ],
    )
    return dashboard(
        UID,
        "eLibrary service",
        "Golden signals of the eLibrary app: traffic, errors and latency against the SLOs, "
        "and saturation.",
        [overview, traffic, latency, saturation, per_route],
        variables=[
            query_variable("job", "Job", "http_requests_total"),
            query_variable("instance", "Instance", "http_requests_total", after=["job"]),
            query_variable("route", "Route", "http_requests_total", after=["job", "instance"]),
        ],
        annotations=[deployments_annotation()],
    )
