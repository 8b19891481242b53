"""The service's Prometheus metrics (DESIGN.md "Metric contract") and the request hooks.

Label values are bounded by construction: ``route`` is the Flask URL rule template or
``unmatched``, ``method`` is one of the standard verbs or ``other``, ``status`` is one of
the codes the app can answer. Under gunicorn the values live in prometheus-client's
multiprocess files (see ``app.multiproc``); elsewhere in an ordinary registry.
"""

from __future__ import annotations

import os
from time import perf_counter

from flask import Flask, Response, request
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)

from app.multiproc import CompactingCollector
from app.process import ServerProcessCollector, server_pid

__all__ = ["HTTP_BUCKETS", "AppMetrics", "init_metrics", "multiprocess_directory"]

#: seconds; holds every latency-SLO threshold (0.2 s) as an exact bucket bound
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"


_pid = [os.getpid()]
_cached_pid_values = False


def _refresh_pid() -> None:
    _pid[0] = os.getpid()


def _use_cached_pid_values() -> None:
    """Make multiprocess values ask a cached pid instead of the kernel on every write.

    prometheus-client calls os.getpid() on each inc/observe to notice a fork; that syscall
    is a quarter of the cost of a write. The cache is refreshed in every forked child, which
    is exactly the event the check exists for.
    """
    global _cached_pid_values
    if _cached_pid_values:
        return
    _refresh_pid()
    os.register_at_fork(after_in_child=_refresh_pid)
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: _pid[0])
    _cached_pid_values = True


def multiprocess_directory() -> str | None:
    """The prometheus-client multiprocess directory, when this process runs in one."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class AppMetrics:
    """The metric objects of one app, and how to expose them."""

    def __init__(self, version: str, revision: str) -> None:
        shared_dir = multiprocess_directory()
        self.registry = CollectorRegistry(auto_describe=True)
        # In multiprocess mode values go to files and the registry only reads those files.
        own = None if shared_dir else self.registry
        if shared_dir:
            _use_cached_pid_values()
            CompactingCollector(shared_dir, registry=self.registry)
        # the whole server's CPU and memory, whichever worker answers the scrape
        ServerProcessCollector(server_pid(), registry=self.registry)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=own,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from the request reaching the app to the response leaving it.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=own,
        )
        self.in_progress = Gauge(
            "http_requests_in_progress",
            "HTTP requests being handled right now.",
            registry=own,
            multiprocess_mode="livesum",
        )
        self.db_connections = Gauge(
            "database_connections_active",
            "Database connections checked out by the app right now.",
            registry=own,
            multiprocess_mode="livesum",
        )
        self.loans_created = Counter(
            "elibrary_loans_created_total", "Loans created (books borrowed).", registry=own
        )
        self.loans_returned = Counter(
            "elibrary_loans_returned_total", "Loans closed by a return.", registry=own
        )
        build_info = Gauge(
            "elibrary_build_info",
            "Always 1; the labels say which build is running.",
            ["version", "revision"],
            registry=own,
            multiprocess_mode="livemax",
        )
        build_info.labels(version, revision).set(1)
        # .labels() validates and locks on every call; the label space is small and fixed,
        # so the children are cached here to keep the per-request cost down.
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._duration_children: dict[tuple[str, str], Histogram] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and record how long it took."""
        key = (method, route, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(method, route, str(status))
        counter.inc()
        timer_key = (method, route)
        histogram = self._duration_children.get(timer_key)
        if histogram is None:
            histogram = self._duration_children[timer_key] = self.duration.labels(method, route)
        histogram.observe(seconds)

    def count_loan_event(self, event: str) -> None:
        """Count a business event: 'created' or 'returned'."""
        (self.loans_created if event == "created" else self.loans_returned).inc()

    def on_db_checkout(self, delta: int) -> None:
        """Follow database connections in and out of use."""
        self.db_connections.inc(delta)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition of every metric, and its content type.

        The classic 0.0.4 text format is named explicitly: it is what Prometheus 2.x and
        promtool expect, whatever the client library's newest default is.
        """
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4


def init_metrics(app: Flask, metrics: AppMetrics) -> None:
    """Measure every request the app answers, errors and unknown URLs included.

    One wrapper around ``full_dispatch_request`` (which runs the before/after hooks, the
    view and the error handlers) instead of three Flask hooks: it is the cheapest place
    that still sees the matched URL rule and the final status code.
    """
    # Multiprocess mode has no *_created series; drop them in single-process mode as well
    # so dashboards and tests see the same series either way.
    disable_created_metrics()
    dispatch = app.full_dispatch_request
    in_progress = metrics.in_progress
    observe = metrics.observe_request

    def instrumented_dispatch() -> Response:
        started = perf_counter()
        in_progress.inc()
        try:
            response = dispatch()
        finally:
            in_progress.dec()
        current = request._get_current_object()  # type: ignore[attr-defined]
        rule = current.url_rule
        method = current.method
        observe(
            method if method in _METHODS else "other",
            rule.rule if rule is not None else UNMATCHED_ROUTE,
            response.status_code,
            perf_counter() - started,
        )
        return response

    app.full_dispatch_request = instrumented_dispatch  # type: ignore[method-assign]
