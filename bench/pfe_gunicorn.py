"""Gunicorn settings for the "pfe" benchmark mode, matching what ``sre app serve`` uses.

Bind address, workers, threads and worker class come from the command line, as for the
project's server; the rest mirrors ``app.serve.run_server`` so that only the
instrumentation differs. ``child_exit`` marks an exited worker dead in the multiprocess
directory, as prometheus-flask-exporter's Gunicorn documentation asks.
"""

from __future__ import annotations

from typing import Any

from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics

max_requests = 10_000
max_requests_jitter = 1_000
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = None
errorlog = "-"
proc_name = "elibrary-pfe"
control_socket_disable = True


def child_exit(server: Any, worker: Any) -> None:
    """Drop the exited worker's live gauges from the multiprocess directory."""
    GunicornPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
