"""The exporter's HTTP surface: ``/metrics``, ``/healthz`` and a landing page.

A small threaded WSGI server, as prometheus-client's own ``start_http_server`` uses, so
concurrent scrapes are served side by side; each scrape gets the time budget Prometheus
announces in ``X-Prometheus-Scrape-Timeout-Seconds`` (less an offset for the answer's
journey), or ``default_budget_s`` without the header. ``Exporter.scrape`` answers whatever
fails inside it, so ``/metrics`` answers 200.
"""

from __future__ import annotations

import logging
import socketserver
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from exporter.collector import Exporter
from exporter.config import database_advice
from exporter.exposition import render

__all__ = ["make_http_server", "make_wsgi_app", "serve"]

log = logging.getLogger("elibrary.exporter")

#: seconds kept back from Prometheus' scrape timeout for sending the answer
TIMEOUT_OFFSET_S = 0.25
MAX_BUDGET_S = 120.0

_LANDING = b"""<html><head><title>eLibrary MySQL exporter</title></head><body>
<h1>eLibrary MySQL exporter</h1><p><a href="/metrics">Metrics</a> &middot;
<a href="/healthz">Health</a></p></body></html>"""

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _budget(header: str | None, default_s: float) -> float:
    if not header:
        return default_s
    try:
        announced = float(header)
    except ValueError:
        return default_s
    if announced != announced or announced <= 0:  # NaN or nonsense: keep the default
        return default_s
    return min(MAX_BUDGET_S, max(0.1, announced - TIMEOUT_OFFSET_S))


def make_wsgi_app(
    exporter: Exporter, default_budget_s: float = 10.0
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI application serving one exporter."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response(
                "405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")]
            )
            return [b"method not allowed\n"]
        if path == "/metrics":
            budget = _budget(
                environ.get("HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS"), default_budget_s
            )
            body = render(exporter.scrape(budget))
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)])
            return [body]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [_LANDING]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return app


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("request", extra={"line": format % args})


def make_http_server(
    exporter: Exporter, host: str, port: int, default_budget_s: float = 10.0
) -> WSGIServer:
    """The threaded HTTP server of one exporter, bound (port 0: any free one), not serving yet."""
    return make_server(
        host,
        port,
        make_wsgi_app(exporter, default_budget_s),
        server_class=_ThreadingServer,
        handler_class=_QuietHandler,
    )


def serve(exporter: Exporter, host: str, port: int, default_budget_s: float = 10.0) -> None:
    """Serve until interrupted."""
    server = make_http_server(exporter, host, port, default_budget_s)
    target = exporter.client.target
    if not exporter.queries_enabled:
        # A my.cnf written for mysqld_exporter has no database: serve what it allows, and
        # say once how to get the rest.
        log.warning(
            "business queries not configured, serving MySQL server metrics only: "
            f"the MySQL credentials name no database; {database_advice(target)}",
            extra={"my_cnf": target.options_file or "environment"},
        )
    log.info(
        "listening",
        extra={
            "address": f"http://{host}:{port}/metrics",
            "mysql": target.address,
            "queries": len(exporter.runner.specs) if exporter.queries_enabled else 0,
        },
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        exporter.close()
