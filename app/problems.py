"""RFC 9457 problem responses, the only error shape the API returns."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, g, json
from werkzeug.exceptions import HTTPException

from app.db import DatabaseUnavailable

__all__ = ["PROBLEM_TYPE", "ApiError", "init_problems", "problem_response"]

PROBLEM_TYPE = "application/problem+json"


class ApiError(Exception):
    """An answer the client gets as a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def problem_response(error: ApiError) -> Response:
    """The problem+json response for an ApiError."""
    body: dict[str, Any] = {"type": "about:blank", "title": error.title, "status": error.status}
    if error.detail:
        body["detail"] = error.detail
    if error.errors:
        body["errors"] = error.errors
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    response = Response(json.dumps(body), status=error.status, mimetype=PROBLEM_TYPE)
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def _from_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    headers = {}
    if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # type: ignore[attr-defined]
    title = exc.name
    detail = exc.description if status != 404 else "No such resource."
    return problem_response(ApiError(status, title, detail, headers=headers))


def _from_database(exc: DatabaseUnavailable) -> Response:
    current_app.logger.warning("database unavailable", extra={"error": str(exc)})
    retry = str(current_app.config["SRE"].retry_after_s)
    return problem_response(
        ApiError(
            503,
            "Service Unavailable",
            "The database is not answering; retry later.",
            headers={"Retry-After": retry},
        )
    )


def _from_bug(exc: Exception) -> Response:
    current_app.logger.exception("unhandled error")
    return problem_response(ApiError(500, "Internal Server Error", "An unexpected error."))


def init_problems(app: Flask) -> None:
    """Answer every error, expected or not, with a problem document."""
    app.register_error_handler(ApiError, problem_response)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(DatabaseUnavailable, _from_database)
    app.register_error_handler(Exception, _from_bug)
