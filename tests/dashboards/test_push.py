"""dashboards/push.py against a local imitation of Grafana 11's HTTP API that records every
request: what a push sends, and the error it raises for each way Grafana can fail."""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dashboards import committed_dashboards
from dashboards.push import PushError, PushResult, push_dashboards, read_token
from sre.cli import main
from sre.generated import REPO_ROOT
from sre.stack import free_port

TOKEN = "glsa_Sup3rS3cretT0ken_0123abcd"
REVISION = "v1.4.0-3-gabc1234-dirty"


@dataclass(frozen=True)
class Call:
    """One request the fake Grafana received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGrafana:
    """Grafana 11's answers to the endpoints a push uses, with switchable failures."""

    token: str = TOKEN
    prefix: str = ""
    folders: list[dict[str, Any]] = field(default_factory=list)
    # (status, JSON body) answered instead of the normal answer:
    folder_create_failure: tuple[int, dict[str, Any]] | None = None
    dashboard_failures: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    folders_list_failure: tuple[int, dict[str, Any]] | None = None
    calls: list[Call] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    url: str = ""

    def api_calls(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == f"{self.prefix}{path}"]

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if not path.startswith(f"{self.prefix}/api/"):
            return 404, None
        path = path.removeprefix(self.prefix)
        if (method, path) == ("GET", "/api/health"):
            # No authentication on /api/health, as in Grafana.
            return 200, {"commit": "0123abc", "database": "ok", "version": "11.6.0"}
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {
                "message": "Invalid API key",
                "messageId": "api-key.invalid",
                "statusCode": 401,
                "traceID": "",
            }
        if (method, path) == ("GET", "/api/folders"):
            if self.folders_list_failure:
                return self.folders_list_failure
            return 200, [
                {"id": f["id"], "uid": f["uid"], "title": f["title"]} for f in self.folders
            ]
        if (method, path) == ("POST", "/api/folders"):
            if self.folder_create_failure:
                return self.folder_create_failure
            uid = body.get("uid") or f"generated{len(self.folders)}"
            if any(f["uid"] == uid for f in self.folders):
                return 409, {"message": "a folder with the same uid already exists"}
            folder = {"id": len(self.folders) + 1, "uid": uid, "title": body["title"]}
            self.folders.append(folder)
            return 200, {
                **folder,
                "url": f"{self.prefix}/dashboards/f/{uid}/",
                "hasAcl": False,
                "canSave": True,
                "canEdit": True,
                "canAdmin": True,
                "canDelete": True,
                "version": 1,
            }
        if (method, path) == ("POST", "/api/dashboards/db"):
            dashboard = body["dashboard"]
            uid = dashboard["uid"]
            if uid in self.dashboard_failures:
                return self.dashboard_failures[uid]
            folder_uid = body.get("folderUid")
            if folder_uid and not any(f["uid"] == folder_uid for f in self.folders):
                return 400, {"message": "folder not found"}
            self.versions[uid] = self.versions.get(uid, 0) + 1
            slug = re.sub(r"[^a-z0-9]+", "-", dashboard["title"].lower()).strip("-")
            return 200, {
                "id": 100 + len(self.versions),
                "uid": uid,
                "url": f"{self.prefix}/d/{uid}/{slug}",
                "status": "success",
                "version": self.versions[uid],
                "slug": slug,
            }
        return 404, {"message": "Not found"}


def _handler(grafana: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            headers = {name.lower(): value for name, value in self.headers.items()}
            grafana.calls.append(Call(self.command, self.path.split("?")[0], headers, body))
            status, answer = grafana.answer(self.command, self.path.split("?")[0], headers, body)
            data = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            if answer is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start a FakeGrafana (as configured) on a loopback port; all are stopped afterwards."""
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(grafana: FakeGrafana) -> FakeGrafana:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(grafana))
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        servers.append((server, thread))
        grafana.url = f"http://127.0.0.1:{server.server_address[1]}{grafana.prefix}"
        return grafana

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def grafana(serve: Any) -> FakeGrafana:
    return serve(FakeGrafana())


def dashboard(uid: str, title: str | None = None) -> dict[str, Any]:
    return {
        "id": 42,
        "uid": uid,
        "title": title or uid.replace("-", " ").title(),
        "panels": [{"id": 1, "type": "timeseries", "title": "Requests"}],
        "schemaVersion": 41,
        "version": 3,
    }


DASHBOARDS = [dashboard("elibrary-overview", "eLibrary overview"), dashboard("elibrary-mysql")]


def push(grafana: FakeGrafana, **kwargs: Any) -> list[PushResult]:
    kwargs.setdefault("revision", REVISION)
    kwargs.setdefault("timeout_s", 5)
    return push_dashboards(
        kwargs.pop("dashboards", DASHBOARDS), grafana.url, kwargs.pop("token", TOKEN), **kwargs
    )


def assert_token_hidden(error: PushError) -> None:
    texts = [str(error), repr(error), *(str(d) for d in error.details)]
    assert all(TOKEN not in text for text in texts)
    # Nothing chained: the library exceptions carry the request and its headers.
    assert error.__cause__ is None
    assert error.__context__ is None


# --- what a push sends -------------------------------------------------------------------


def test_a_missing_folder_is_created_once_and_found_by_title_afterwards(
    grafana: FakeGrafana,
) -> None:
    push(grafana)
    push(grafana)
    created = grafana.api_calls("POST", "/api/folders")
    assert len(created) == 1
    assert created[0].body["title"] == "eLibrary"
    assert re.fullmatch(r"[a-z0-9-]{1,40}", created[0].body["uid"])
    assert len(grafana.api_calls("GET", "/api/folders")) == 2


def test_a_folder_with_the_title_is_used_whatever_its_uid(serve: Any) -> None:
    grafana = serve(FakeGrafana(folders=[{"id": 7, "uid": "made-by-hand", "title": "eLibrary"}]))
    results = push(grafana)
    assert grafana.api_calls("POST", "/api/folders") == []
    saved = grafana.api_calls("POST", "/api/dashboards/db")
    assert [c.body["folderUid"] for c in saved] == ["made-by-hand", "made-by-hand"]
    assert {r.folder_uid for r in results} == {"made-by-hand"}


def test_the_folder_uid_comes_from_the_title_alone(serve: Any) -> None:
    def created_uid(title: str) -> str:
        grafana = serve(FakeGrafana())
        push(grafana, folder=title)
        return str(grafana.api_calls("POST", "/api/folders")[0].body["uid"])

    assert created_uid("eLibrary") == created_uid("eLibrary")
    assert created_uid("A B") != created_uid("a-b")
    long_uid = created_uid("Très long titre de dossier " * 5)
    assert re.fullmatch(r"[a-z0-9-]{1,40}", long_uid)


def test_every_dashboard_is_saved_with_overwrite_id_null_the_folder_and_the_revision(
    grafana: FakeGrafana,
) -> None:
    before = copy.deepcopy(DASHBOARDS)
    push(grafana)
    folder_uid = grafana.folders[0]["uid"]
    saved = grafana.api_calls("POST", "/api/dashboards/db")
    assert [c.body["dashboard"]["uid"] for c in saved] == ["elibrary-overview", "elibrary-mysql"]
    for call, sent in zip(saved, DASHBOARDS, strict=True):
        assert call.body["overwrite"] is True
        assert call.body["folderUid"] == folder_uid
        assert call.body["message"] == f"sre dashboards push: {REVISION}"
        assert call.body["dashboard"] == {**sent, "id": None}
    assert before == DASHBOARDS, "the caller's dashboards are left as they were"


def test_the_bearer_token_goes_with_every_request(grafana: FakeGrafana) -> None:
    push(grafana)
    assert len(grafana.calls) == 5  # health, folders, create folder, two dashboards
    assert {c.headers.get("authorization") for c in grafana.calls} == {f"Bearer {TOKEN}"}


def test_the_results_carry_what_grafana_answered(grafana: FakeGrafana) -> None:
    first = push(grafana)
    second = push(grafana)
    folder_uid = grafana.folders[0]["uid"]
    assert first == [
        PushResult(
            "elibrary-overview",
            "eLibrary overview",
            "/d/elibrary-overview/elibrary-overview",
            1,
            folder_uid,
        ),
        PushResult(
            "elibrary-mysql", "Elibrary Mysql", "/d/elibrary-mysql/elibrary-mysql", 1, folder_uid
        ),
    ]
    assert [r.version for r in second] == [2, 2]


def test_no_folder_means_general_and_no_folder_is_made(grafana: FakeGrafana) -> None:
    results = push(grafana, folder=None)
    assert grafana.api_calls("POST", "/api/folders") == []
    assert all("folderUid" not in c.body for c in grafana.api_calls("POST", "/api/dashboards/db"))
    assert {r.folder_uid for r in results} == {None}


def test_an_empty_revision_is_called_unknown(grafana: FakeGrafana) -> None:
    push(grafana, revision="  ")
    messages = {c.body["message"] for c in grafana.api_calls("POST", "/api/dashboards/db")}
    assert messages == {"sre dashboards push: unknown"}


def test_grafana_under_a_sub_path(serve: Any) -> None:
    grafana = serve(FakeGrafana(prefix="/grafana"))
    results = push(grafana)
    assert {c.path for c in grafana.calls} == {
        "/grafana/api/health",
        "/grafana/api/folders",
        "/grafana/api/dashboards/db",
    }
    assert results[0].url == "/grafana/d/elibrary-overview/elibrary-overview"


# --- the server, the token ---------------------------------------------------------------


def test_a_bad_token_is_rejected_without_being_shown(serve: Any) -> None:
    grafana = serve(FakeGrafana(token="the-right-one"))
    with pytest.raises(PushError) as caught:
        push(grafana)
    assert str(caught.value) == f"{grafana.url}: Grafana rejects the token (HTTP 401)"
    assert_token_hidden(caught.value)
    assert grafana.api_calls("POST", "/api/folders") == []
    assert grafana.api_calls("POST", "/api/dashboards/db") == []


def test_a_token_without_rights_is_rejected(serve: Any) -> None:
    forbidden = (403, {"message": "You'll need additional permissions to perform this action."})
    grafana = serve(FakeGrafana(folders_list_failure=forbidden))
    with pytest.raises(PushError, match=r"Grafana rejects the token \(HTTP 403\)") as caught:
        push(grafana)
    assert_token_hidden(caught.value)


def test_grafana_quoting_the_token_does_not_reveal_it(serve: Any) -> None:
    echo = (400, {"message": f"bad dashboard from Bearer {TOKEN}"})
    grafana = serve(FakeGrafana(dashboard_failures={"elibrary-mysql": echo}))
    with pytest.raises(PushError, match="<token>") as caught:
        push(grafana)
    assert_token_hidden(caught.value)


def test_nothing_listening_names_the_url_without_its_credentials() -> None:
    port = free_port()
    url = f"http://pusher:hunter2pass@127.0.0.1:{port}/"
    with pytest.raises(PushError) as caught:
        push_dashboards(DASHBOARDS, url, TOKEN, revision=REVISION, timeout_s=2)
    message = str(caught.value)
    assert message == f"http://127.0.0.1:{port}: Grafana does not answer (connection refused)"
    assert "hunter2pass" not in message
    assert "pusher" not in message
    assert_token_hidden(caught.value)


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as sock:  # listening, never accepting: the request hangs
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(PushError, match=r"does not answer \(no answer within 0.3s\)"):
            push_dashboards(DASHBOARDS, url, TOKEN, revision=REVISION, timeout_s=0.3)


def test_an_unknown_host_is_said_to_be_unknown() -> None:
    url = "https://admin:hunter2pass@grafana.nonexistent.invalid"
    with pytest.raises(PushError) as caught:
        push_dashboards(DASHBOARDS, url, TOKEN, revision=REVISION, timeout_s=2)
    assert str(caught.value) == (
        "https://grafana.nonexistent.invalid: Grafana does not answer (unknown host)"
    )


def test_a_server_that_is_not_grafana(serve: Any) -> None:
    # Requests outside the prefix get 404, like any web server that is not Grafana.
    grafana = serve(FakeGrafana(prefix="/elsewhere"))
    with pytest.raises(PushError, match="answers, but not as Grafana"):
        push_dashboards(
            DASHBOARDS, grafana.url.removesuffix("/elsewhere"), TOKEN, revision=REVISION
        )


# --- folders and dashboards Grafana refuses ----------------------------------------------


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        pytest.param(
            403,
            {"message": "You'll need additional permissions to perform this action."},
            id="the token may not create folders",
        ),
        pytest.param(409, {"message": "a folder with the same name already exists"}, id="a clash"),
        pytest.param(
            412,
            {
                "message": "The folder has been changed by someone else",
                "status": "version-mismatch",
            },
            id="a precondition failed",
        ),
    ],
)
def test_a_folder_grafana_will_not_create_is_named(
    serve: Any, status: int, answer: dict[str, Any]
) -> None:
    grafana = serve(FakeGrafana(folder_create_failure=(status, answer)))
    with pytest.raises(PushError) as caught:
        push(grafana, folder="SRE team")
    error = caught.value
    assert error.entry == "folder 'SRE team'"
    assert f"(HTTP {status})" in error.problem
    assert answer["message"] in error.problem
    assert grafana.api_calls("POST", "/api/dashboards/db") == []
    assert_token_hidden(error)


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        pytest.param(
            412,
            {
                "message": "The dashboard has been changed by someone else",
                "status": "version-mismatch",
            },
            "Grafana rejects it (HTTP 412): version-mismatch: "
            "The dashboard has been changed by someone else",
            id="someone changed it",
        ),
        pytest.param(
            412,
            {
                "message": "A dashboard with the same name in the folder already exists",
                "status": "name-exists",
            },
            "Grafana rejects it (HTTP 412): name-exists: "
            "A dashboard with the same name in the folder already exists",
            id="another dashboard has its title",
        ),
        pytest.param(
            400,
            {"message": "Dashboard title cannot be empty"},
            "Grafana rejects it (HTTP 400): Dashboard title cannot be empty",
            id="bad input",
        ),
    ],
)
def test_a_rejected_dashboard_is_named_and_the_others_are_saved(
    serve: Any, status: int, answer: dict[str, Any], expected: str
) -> None:
    grafana = serve(FakeGrafana(dashboard_failures={"elibrary-overview": (status, answer)}))
    with pytest.raises(PushError) as caught:
        push(grafana)
    assert str(caught.value) == f"{grafana.url}: dashboard elibrary-overview: {expected}"
    assert grafana.versions == {"elibrary-mysql": 1}
    assert_token_hidden(caught.value)


def test_every_rejected_dashboard_is_reported_at_once(serve: Any) -> None:
    bad = (400, {"message": "bad panel"})
    grafana = serve(
        FakeGrafana(dashboard_failures={"elibrary-overview": bad, "elibrary-mysql": bad})
    )
    with pytest.raises(PushError) as caught:
        push(grafana)
    assert [caught.value.entry, *(d.entry for d in caught.value.details)] == [
        "dashboard elibrary-overview",
        "dashboard elibrary-mysql",
    ]


def test_a_server_error_stops_the_push(serve: Any) -> None:
    broken = (500, {"message": "Internal Server Error"})
    grafana = serve(FakeGrafana(dashboard_failures={"elibrary-overview": broken}))
    with pytest.raises(PushError) as caught:
        push(grafana)
    assert str(caught.value) == f"{grafana.url}: Grafana answers HTTP 500: Internal Server Error"
    assert len(grafana.api_calls("POST", "/api/dashboards/db")) == 1


# --- input found unusable before any request ---------------------------------------------


@pytest.mark.parametrize(
    ("dashboards", "folder", "url", "expected"),
    [
        pytest.param(
            [{"title": "No uid"}],
            "eLibrary",
            None,
            "dashboards[0].uid: uid must be 1-40 letters, digits, '-' or '_', not None",
            id="a dashboard without a uid",
        ),
        pytest.param(
            [dashboard("same"), dashboard("same")],
            "eLibrary",
            None,
            "dashboards[1].uid: same appears twice",
            id="two dashboards with one uid",
        ),
        pytest.param(
            [{"uid": "untitled"}],
            "eLibrary",
            None,
            "dashboards[0].title: missing or empty",
            id="a dashboard without a title",
        ),
        pytest.param(
            DASHBOARDS,
            " ",
            None,
            "folder: an empty title (None means General)",
            id="a blank folder",
        ),
        pytest.param(
            DASHBOARDS,
            "eLibrary",
            "grafana.example:3000",
            "grafana.example:3000: not an http(s) URL with a host",
            id="a URL without a scheme",
        ),
    ],
)
def test_unusable_input_is_refused_before_any_request(
    grafana: FakeGrafana,
    dashboards: list[dict[str, Any]],
    folder: str,
    url: str | None,
    expected: str,
) -> None:
    with pytest.raises(PushError) as caught:
        push_dashboards(dashboards, url or grafana.url, TOKEN, folder=folder, revision=REVISION)
    assert str(caught.value) == expected
    assert grafana.calls == []


def test_all_input_problems_are_reported_at_once(grafana: FakeGrafana) -> None:
    with pytest.raises(PushError) as caught:
        push_dashboards([{"uid": "x"}, {}], grafana.url, "", folder="", revision=REVISION)
    assert [caught.value.entry, *(d.entry for d in caught.value.details)] == [
        "token",
        "folder",
        "dashboards[0].title",
        "dashboards[1].uid",
    ]


# --- the token file ----------------------------------------------------------------------


def test_the_token_is_read_without_surrounding_space(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"\n  {TOKEN}\n\n", encoding="ascii")
    assert read_token(path) == TOKEN


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"", "the token file is empty", id="an empty file"),
        pytest.param(b" \n\t\n", "the token file is empty", id="only whitespace"),
        pytest.param(
            f"{TOKEN}\n{TOKEN}\n".encode(),
            "the token file holds more than one word (expected one token on one line)",
            id="two lines",
        ),
        pytest.param(
            f"token: {TOKEN}".encode(),
            "the token file holds more than one word (expected one token on one line)",
            id="a label before the token",
        ),
        pytest.param(TOKEN.encode() + b"\xff", "the token file holds non-ASCII bytes", id="binary"),
    ],
)
def test_a_token_file_without_one_token(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(PushError) as caught:
        read_token(path)
    assert str(caught.value) == f"{path}: {expected}"
    assert TOKEN not in str(caught.value)


def test_a_missing_token_file(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(PushError) as caught:
        read_token(path)
    assert str(caught.value) == f"{path}: no such token file"


def test_an_unreadable_token_file(tmp_path: Path) -> None:
    with pytest.raises(PushError) as caught:
        read_token(tmp_path)  # a directory
    assert str(caught.value).startswith(f"{tmp_path}: cannot read the token file (")


# --------------------------------------------------------------------------- the CLI


def test_sre_dashboards_push_uploads_the_committed_dashboards(
    grafana: FakeGrafana, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    monkeypatch.setenv("SRE_BUILD_REVISION", "v9.9.9-test")
    result = CliRunner().invoke(
        main, ["dashboards", "push", "--url", grafana.url, "--token-file", str(token_file)]
    )
    assert result.exit_code == 0, result.output
    saved = grafana.api_calls("POST", "/api/dashboards/db")
    committed = {d["uid"] for d in committed_dashboards(REPO_ROOT)}
    assert {call.body["dashboard"]["uid"] for call in saved} == committed
    assert {call.body["message"] for call in saved} == {"sre dashboards push: v9.9.9-test"}
    assert [c.body["title"] for c in grafana.api_calls("POST", "/api/folders")] == ["eLibrary"]
    assert result.output.count("pushed elibrary-") == len(committed)
    assert TOKEN not in result.output


def test_sre_dashboards_push_with_a_bad_token_exits_2_without_showing_it(
    grafana: FakeGrafana, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("not-the-token\n")
    result = CliRunner().invoke(
        main, ["dashboards", "push", "--url", grafana.url, "--token-file", str(token_file)]
    )
    assert result.exit_code == 2
    assert "Grafana rejects the token (HTTP 401)" in result.output
    assert "not-the-token" not in result.output
    assert grafana.api_calls("POST", "/api/dashboards/db") == []
