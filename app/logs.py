"""Structured JSON logs, one line per event, and the request id that ties them together.

A caller's ``X-Request-ID`` is kept when it is short and plain (so a trace survives a
proxy); otherwise one is made. It is echoed in the response header and in problem bodies.
"""

from __future__ import annotations

import logging
import re
import uuid
from time import perf_counter
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from sre.logs import JsonFormatter as BaseJsonFormatter
from sre.logs import configure_logging as configure_base

__all__ = ["JsonFormatter", "configure_logging", "init_request_logging"]

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class JsonFormatter(BaseJsonFormatter):
    """The shared JSON lines, plus the id of the request being served."""

    def context(self) -> dict[str, Any]:
        if has_request_context() and "request_id" in g:
            return {"request_id": g.request_id}
        return {}


def configure_logging(level: str) -> None:
    """Send every log record to stderr as JSON, with request ids."""
    configure_base(level, JsonFormatter())


def init_request_logging(app: Flask, access_log: bool) -> None:
    """Give every request an id; log one access line per request when asked to."""
    access = logging.getLogger("elibrary.access")

    @app.before_request
    def _assign_id() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _SAFE_ID.fullmatch(incoming) else uuid.uuid4().hex
        g.log_started = perf_counter()

    @app.after_request
    def _tag_and_log(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        if access_log and access.isEnabledFor(logging.INFO):
            rule = request.url_rule
            access.info(
                "request",
                extra={
                    "method": request.method,
                    "route": rule.rule if rule is not None else "unmatched",
                    "status": response.status_code,
                    "duration_ms": round((perf_counter() - g.get("log_started", 0)) * 1000, 3),
                    "remote_addr": request.remote_addr,
                },
            )
        return response
