"""Uploading the generated dashboards to a Grafana server through its HTTP API.

``sre dashboards push`` calls :func:`push_dashboards`: it checks that Grafana answers
(``GET /api/health``) and accepts the token (``GET /api/folders``), finds the folder by
title or creates it under a uid derived from the title, then saves every dashboard with
``POST /api/dashboards/db`` (``overwrite``, ``id`` null, a commit message naming the
revision). The requests go through grafana-client.

Every failure becomes a :class:`PushError` whose text names the URL without credentials
and never the token: grafana-client lets the HTTP library's own exceptions through, and
those carry the request with its ``Authorization`` header, so none is chained.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests.exceptions
from grafana_client import GrafanaApi, TokenAuth
from grafana_client.client import GrafanaException

from sre.errors import SreError
from sre.prometheus import redact_url

__all__ = ["DEFAULT_FOLDER", "PushError", "PushResult", "push_dashboards", "read_token"]

DEFAULT_FOLDER = "eLibrary"

# Grafana's limit on a uid (folders and dashboards alike) and the characters it allows.
_UID_MAX = 40
_UID_CHARS = re.compile(r"[A-Za-z0-9_-]+")
# How much of an unexpected response body a message quotes.
_QUOTE_MAX = 200
# _Failure.status for failures without an HTTP status.
_NO_ANSWER = 0
_NOT_JSON = -1


class PushError(SreError):
    """Grafana is unreachable, rejects the token, a folder or a dashboard, or the input is
    unusable: the CLI prints it and exits 2."""


@dataclass(frozen=True)
class PushResult:
    """One dashboard Grafana saved."""

    uid: str
    title: str
    url: str
    """Grafana's path to the dashboard (``/d/<uid>/<slug>``, under Grafana's sub-path)."""
    version: int
    """Grafana's version number of the dashboard after this save (1 for a new one)."""
    folder_uid: str | None
    """None: the General folder."""


def read_token(path: Path) -> str:
    """The Grafana token in ``path`` (a service account token), without surrounding space."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PushError(str(path), None, "no such token file") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PushError(str(path), None, f"cannot read the token file ({reason})") from None
    # The content is a secret: the problems below describe it and never quote it.
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise PushError(str(path), None, "the token file holds non-ASCII bytes") from None
    if not token:
        raise PushError(str(path), None, "the token file is empty")
    if not token.isprintable() or any(char.isspace() for char in token):
        problem = "the token file holds more than one word (expected one token on one line)"
        raise PushError(str(path), None, problem)
    return token


def push_dashboards(
    dashboards: Sequence[Mapping[str, Any]],
    url: str,
    token: str,
    *,
    folder: str | None = DEFAULT_FOLDER,
    revision: str,
    timeout_s: float = 10,
) -> list[PushResult]:
    """Save ``dashboards`` (Grafana dashboard JSON) in ``folder`` of the Grafana at ``url``.

    ``folder`` is a folder title, created when missing; None means the General folder.
    ``revision`` goes into each save's commit message. ``timeout_s`` bounds each request.
    Dashboards Grafana rejects are reported together after the others are saved.
    """
    safe_url = redact_url(url)
    _check_input(dashboards, url, safe_url, token, folder)
    grafana = _Grafana(url, safe_url, token, timeout_s)
    try:
        grafana.check_health()
        folders = grafana.list_folders()
        folder_uid = None if folder is None else grafana.ensure_folder(folder, folders)
        message = f"sre dashboards push: {revision.strip() or 'unknown'}"
        results: list[PushResult] = []
        rejected: list[PushError] = []
        for dashboard in dashboards:
            try:
                results.append(grafana.save(dashboard, folder_uid, message))
            except _Rejected as exc:
                rejected.append(exc.error)
    finally:
        grafana.close()
    if rejected:
        first, *rest = rejected
        raise PushError(first.file, first.entry, first.problem, details=rest)
    return results


def _check_input(
    dashboards: Sequence[Mapping[str, Any]],
    url: str,
    safe_url: str,
    token: str,
    folder: str | None,
) -> None:
    """Every problem a push would meet before talking to Grafana, at once."""
    problems: list[PushError] = []
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(PushError(safe_url, None, "not an http(s) URL with a host"))
    elif not _port_ok(url):
        problems.append(PushError(safe_url, None, "the port is not a number in 1-65535"))
    if not token.strip():
        problems.append(PushError(None, "token", "empty: Grafana needs a service account token"))
    if folder is not None and not folder.strip():
        problems.append(PushError(None, "folder", "an empty title (None means General)"))
    seen: set[str] = set()
    for index, dashboard in enumerate(dashboards):
        entry = f"dashboards[{index}]"
        uid = dashboard.get("uid") if isinstance(dashboard, Mapping) else None
        if not isinstance(uid, str) or not _UID_CHARS.fullmatch(uid) or len(uid) > _UID_MAX:
            # Without a fixed uid Grafana would make a new copy on every push.
            problem = f"uid must be 1-{_UID_MAX} letters, digits, '-' or '_', not {uid!r}"
            problems.append(PushError(None, f"{entry}.uid", problem))
            continue
        if uid in seen:
            problems.append(PushError(None, f"{entry}.uid", f"{uid} appears twice"))
        seen.add(uid)
        title = dashboard.get("title")
        if not isinstance(title, str) or not title.strip():
            problems.append(PushError(None, f"{entry}.title", "missing or empty"))
    if problems:
        first, *rest = problems
        raise PushError(first.file, first.entry, first.problem, details=rest)


def _port_ok(url: str) -> bool:
    try:
        port = urlsplit(url).port  # raises for a port out of range or not a number
    except ValueError:
        return False
    return port is None or port > 0


def _folder_uid(title: str) -> str:
    """A uid for the folder titled ``title``: the same on every run, readable, at most 40
    characters; the hash keeps titles with the same slug ("A B", "a-b") apart."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:31].strip("-") or "folder"
    return f"{slug}-{hashlib.sha256(title.encode('utf-8')).hexdigest()[:8]}"


class _Rejected(Exception):
    """Grafana refused one dashboard: the push goes on with the others."""

    def __init__(self, error: PushError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class _Failure:
    status: int
    """The HTTP status, or _NO_ANSWER, or _NOT_JSON."""
    message: str

    @property
    def ends_push(self) -> bool:
        """No answer, not Grafana, the token refused or a server error: nothing else
        would succeed either."""
        return self.status <= 0 or self.status == 401 or self.status >= 500


class _Grafana:
    """The calls a push makes, each turning grafana-client's failures into PushError."""

    def __init__(self, url: str, safe_url: str, token: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        # grafana-client pastes host, port and prefix into "{host}:{port}/{prefix}api":
        # an IPv6 host needs its brackets, and a sub-path its trailing slash.
        if ":" in host:
            host = f"[{host}]"
        prefix = parts.path.strip("/")
        self.url = safe_url
        self.token = token
        self.timeout_s = timeout_s
        # Not GrafanaApi.from_url: it would send user:password from the URL, and its
        # connect() logs the URL as given.
        self.api = GrafanaApi(
            auth=TokenAuth(token),
            host=host,
            port=parts.port,
            url_path_prefix=f"{prefix}/" if prefix else "",
            protocol=parts.scheme,
            timeout=timeout_s,
        )

    def close(self) -> None:
        self.api.client.s.close()

    def check_health(self) -> None:
        """Grafana answers at all (``/api/health`` needs no token)."""
        answer = self._call(lambda: self.api.client.GET("/health"), self._fail_server)
        if not isinstance(answer, dict) or "database" not in answer:
            self._not_grafana("/api/health")

    def list_folders(self) -> list[dict[str, Any]]:
        """The top-level folders; also proves the token is accepted."""
        answer = self._call(self.api.folder.get_all_folders, self._fail_server)
        if not isinstance(answer, list) or not all(
            isinstance(item, dict) and isinstance(item.get("uid"), str) for item in answer
        ):
            self._not_grafana("/api/folders")
        return answer

    def ensure_folder(self, title: str, folders: list[dict[str, Any]]) -> str:
        """The uid of the folder titled ``title``, created when there is none."""
        uid = _folder_uid(title)
        same_title = [item["uid"] for item in folders if item.get("title") == title]
        if same_title:
            # Several folders may share a title: prefer the one an earlier push made.
            return uid if uid in same_title else str(same_title[0])
        entry = f"folder {title!r}"

        def fail(failure: _Failure) -> NoReturn:
            if failure.ends_push:
                self._fail_server(failure)
            problem = f"Grafana cannot create it as uid {uid} (HTTP {failure.status})"
            self._raise(entry, f"{problem}: {failure.message}")

        answer = self._call(lambda: self.api.folder.create_folder(title, uid=uid), fail)
        if not isinstance(answer, dict) or not isinstance(answer.get("uid"), str):
            self._not_grafana("/api/folders")
        return str(answer["uid"])

    def save(
        self, dashboard: Mapping[str, Any], folder_uid: str | None, message: str
    ) -> PushResult:
        """Save one dashboard, replacing Grafana's copy with the same uid."""
        uid = str(dashboard["uid"])
        # id null: Grafana matches on the uid, whatever id the dashboard had elsewhere.
        body: dict[str, Any] = {
            "dashboard": {**dashboard, "id": None},
            "overwrite": True,
            "message": message,
        }
        if folder_uid is not None:
            body["folderUid"] = folder_uid

        def fail(failure: _Failure) -> NoReturn:
            if failure.ends_push:
                self._fail_server(failure)
            problem = f"Grafana rejects it (HTTP {failure.status}): {failure.message}"
            raise _Rejected(PushError(self.url, f"dashboard {uid}", self._scrub(problem)))

        answer = self._call(lambda: self.api.dashboard.update_dashboard(body), fail)
        if not isinstance(answer, dict) or not isinstance(answer.get("version"), int):
            self._not_grafana("/api/dashboards/db")
        return PushResult(
            uid=str(answer.get("uid", uid)),
            title=str(dashboard["title"]),
            url=str(answer.get("url", "")),
            version=int(answer["version"]),
            folder_uid=folder_uid,
        )

    def _call(self, call: Callable[[], Any], fail: Callable[[_Failure], NoReturn]) -> Any:
        """The answer of ``call``; on failure, ``fail`` with Grafana's status and message
        (status 0: no HTTP answer). Raised outside the ``except``, so nothing is chained."""
        try:
            return call()
        except GrafanaException as exc:
            if exc.status_code:
                failure = _Failure(int(exc.status_code), _grafana_message(exc.response))
            else:
                failure = _Failure(_NO_ANSWER, _unreachable(str(exc)))
        except requests.exceptions.InvalidJSONError:
            failure = _Failure(_NOT_JSON, "an answer that is not JSON")
        except requests.exceptions.SSLError:
            failure = _Failure(_NO_ANSWER, "TLS handshake failed")
        except requests.exceptions.Timeout:
            failure = _Failure(_NO_ANSWER, f"no answer within {self.timeout_s:g}s")
        except requests.exceptions.RequestException as exc:
            # grafana-client wraps only HTTP error answers; a refused connection or an
            # unknown host arrive as requests' ConnectionError (holding the request, with
            # its Authorization header: never chained).
            failure = _Failure(_NO_ANSWER, _unreachable(str(exc)))
        fail(failure)

    def _fail_server(self, failure: _Failure) -> NoReturn:
        """Failures that end the push: no answer, the token, a server error."""
        if failure.status == _NO_ANSWER:
            self._raise(None, f"Grafana does not answer ({failure.message})")
        if failure.status == _NOT_JSON:
            self._raise(None, f"answers, but not as Grafana ({failure.message})")
        if failure.status in (401, 403):
            self._raise(None, f"Grafana rejects the token (HTTP {failure.status})")
        if failure.status == 404:
            self._raise(None, "answers, but not as Grafana (HTTP 404 for its API)")
        self._raise(None, f"Grafana answers HTTP {failure.status}: {failure.message}")

    def _not_grafana(self, path: str) -> NoReturn:
        self._raise(None, f"answers, but not as Grafana (unexpected answer to {path})")

    def _raise(self, entry: str | None, problem: str) -> NoReturn:
        raise PushError(self.url, entry, self._scrub(problem))

    def _scrub(self, text: str) -> str:
        # Grafana's messages are quoted as they come; none should hold the token, but a
        # proxy's might, and it must not reach a CI log.
        return text.replace(self.token, "<token>") if self.token else text


def _grafana_message(response: Any) -> str:
    """Grafana's error message from a response body (its JSON ``message``/``status``)."""
    if isinstance(response, dict):
        message = str(response.get("message", "")).strip()
        status = response.get("status")
        if isinstance(status, str) and status and status != message:
            # 412 answers name the conflict in "status": version-mismatch, name-exists, ...
            message = f"{status}: {message}" if message else status
        if message:
            return _quote(message)
        return _quote(json.dumps(response, sort_keys=True))
    text = " ".join(str(response or "").split())
    return _quote(text) if text else "no message"


def _quote(text: str) -> str:
    return text if len(text) <= _QUOTE_MAX else text[: _QUOTE_MAX - 3] + "..."


def _unreachable(text: str) -> str:
    """A fixed phrase for a failed connection: the library's text may quote the URL."""
    if "refused" in text.lower():
        return "connection refused"
    if any(hint in text for hint in ("resolve", "resolution", "not known", "nodename")):
        return "unknown host"
    if "timed out" in text or "timeout" in text.lower():
        return "no connection within the timeout"
    if "reset" in text.lower() or "aborted" in text.lower():
        return "the connection was closed"
    return "connection failed"
