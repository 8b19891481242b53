"""The one Prometheus HTTP API client of the toolkit (SLO report and gate, dashboard
checks and previews), over prometheus-api-client.

Every failure becomes a :class:`PrometheusError` naming the URL without its credentials
and saying what went wrong in a fixed phrase (the library's own text may quote the URL):
the CLI prints it and exits 2.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from sre.errors import SreError

__all__ = [
    "NoDataError",
    "PrometheusClient",
    "PrometheusError",
    "QueryRejected",
    "one_line",
    "redact_url",
]


class PrometheusError(SreError):
    """Prometheus does not answer, answers with an error, or rejects a query: exit 2."""


class QueryRejected(PrometheusError):
    """Prometheus answers, but refuses this query (HTTP 400 or 422): the query is at fault,
    not the server, so a caller running many queries may go on with the others."""

    def __init__(self, url: str, query: str, reason: str) -> None:
        super().__init__(url, None, f"Prometheus rejects the query {one_line(query)}: {reason}")
        self.reason = reason


class NoDataError(SreError):
    """Prometheus answers but lacks the series asked for: exit 2 (nothing to judge)."""


def redact_url(url: str) -> str:
    """The URL without user, password, query or fragment: safe to print."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def one_line(query: str) -> str:
    """A query on one line, for a message."""
    return " ".join(query.split())


class PrometheusClient:
    """Instant and range queries; ``retries`` quick retries of a refused connection, then fail
    fast: a cron report and a CI gate must say why rather than hang."""

    def __init__(self, url: str, timeout_s: float, retries: int = 1) -> None:
        self.url = redact_url(url)
        self.timeout_s = timeout_s
        retry = Retry(
            total=retries,
            connect=retries,
            read=0,
            backoff_factor=0.1,
            status_forcelist=(502, 503, 504),
            raise_on_status=False,
        )
        self._api = PrometheusConnect(
            url=url.rstrip("/"), retry=retry, timeout=math.ceil(timeout_s)
        )

    def close(self) -> None:
        self._api.close()

    def instant(self, query: str, at: float) -> list[dict[str, Any]]:
        """The result of ``query`` evaluated at Unix time ``at``."""
        return self._call(query, lambda: self._api.custom_query(query, {"time": f"{at:.3f}"}))

    def span(self, query: str, start: datetime, end: datetime, step_s: int) -> list[dict[str, Any]]:
        """The range vector (matrix) of ``query`` from ``start`` to ``end``."""
        return self._call(
            query, lambda: self._api.custom_query_range(query, start, end, f"{step_s}s")
        )

    def _call(self, query: str, call: Callable[[], Any]) -> list[dict[str, Any]]:
        try:
            result = call()
        except PrometheusApiClientException as exc:
            status, message = _api_error(str(exc))
            if status in (400, 422):
                raise QueryRejected(self.url, query, message) from None
            problem = f"Prometheus answers HTTP {status}: {message}"
            raise PrometheusError(self.url, None, problem) from None
        except (requests.exceptions.JSONDecodeError, KeyError, TypeError):
            problem = "answers, but not as the Prometheus HTTP API (no JSON data.result)"
            raise PrometheusError(self.url, None, problem) from None
        except requests.RequestException as exc:
            problem = f"Prometheus does not answer ({_reason(exc, self.timeout_s)})"
            raise PrometheusError(self.url, None, problem) from None
        if not isinstance(result, list):
            problem = "answers, but not as the Prometheus HTTP API (no result list)"
            raise PrometheusError(self.url, None, problem)
        return result


def _api_error(text: str) -> tuple[int, str]:
    """Status and Prometheus' error message from PrometheusApiClientException's text."""
    match = re.fullmatch(r"HTTP Status Code (\d+) \((b'.*'|b\".*\")\)", text, re.DOTALL)
    if match is None:
        return 0, "an unexpected answer"
    try:
        message = str(json.loads(ast.literal_eval(match.group(2)))["error"])
    except (ValueError, SyntaxError, KeyError, TypeError):
        message = "no Prometheus error message"
    return int(match.group(1)), message


def _reason(exc: requests.RequestException, timeout_s: float) -> str:
    # Only a fixed phrase leaves here: the exception text may quote the request URL.
    text = str(exc)
    if isinstance(exc, requests.Timeout) or "timed out" in text:
        return f"no answer within {timeout_s:g}s"
    if "refused" in text:
        return "connection refused"
    if "resolution" in text or "not known" in text or "nodename" in text:
        return "unknown host"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return "not a valid http(s) URL"
    return type(exc).__name__
