"""Locust journeys against the library service; run it through ``loadtests.run``.

Five kinds of user, by weight: browsers who page through and search the catalogue (3),
readers who open books (3), borrowers who borrow, renew and return (2), newcomers who
register and log in (1) and a librarian, an admin, who adds books (1).

Every task sends exactly one request, and every user paces itself with
``constant_throughput(profile.user_rps)``, so the request rate at full load is
``users * user_rps`` whatever the mix. Requests are named by their route template with the
method as request type (``loadtests/routes.py``), as the server's ``route`` label names
them. Answers the API documents for a well-formed request (409 when no copy is free, and
so on) count as successes.

Options: ``--sre-profile NAME`` (forwarded by Locust from the master to its workers), and
Locust's ``--users``, ``--spawn-rate`` and ``--run-time``, which the load shape reads as
overrides. Environment: ``SRE_LOADTEST_ADMIN_EMAIL`` and ``SRE_LOADTEST_ADMIN_PASSWORD_FILE``
(the librarian's account; without them leave the ``Librarian`` class out) and
``SRE_LOADTEST_REQUESTS_DIR``, where each process writes its per-request log.

Run by hand: ``locust -f loadtests/locustfile.py --headless --sre-profile smoke -u 5 -r 5
-t 30s -H http://127.0.0.1:8000``.
"""

from __future__ import annotations

import atexit
import csv
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

from locust import FastHttpUser, LoadTestShape, events, task
from locust.exception import StopUser
from locust.runners import WorkerRunner
from locust.stats import StatsCSVFileWriter
from locust.user.wait_time import constant_throughput

from loadtests.profiles import PROFILES, ProfileShape, get_profile
from loadtests.routes import (
    ADMIN_STATS,
    BOOK,
    BOOKS,
    EXPECTED,
    LOAN_RENEW,
    LOAN_RETURN,
    LOANS,
    MEMBERS,
    TOKEN,
)
from loadtests.run import REQUEST_LOG_HEADER, WINDOW_STARTED, WINDOW_STOPPED

__all__ = [
    "Borrower",
    "Browser",
    "Librarian",
    "Newcomer",
    "Reader",
    "RunShape",
]

#: seconds before a token expires at which a member logs in again
_RELOGIN_MARGIN_S = 60
_PER_PAGE = 20

_WORDS = ("river", "garden", "library", "storm", "atlas", "silent", "golden", "winter")
_TITLE_WORDS = ("Quiet", "Lantern", "Harbour", "Meridian", "Cobalt", "Juniper", "Ember", "Tide")


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--sre-profile",
        choices=sorted(PROFILES),
        default=os.environ.get("SRE_LOADTEST_PROFILE", "smoke"),
        help="Load profile (loadtests/profiles.py); the master forwards it to its workers.",
    )
    parser.add_argument(
        "--sre-json-file",
        default=None,
        help="Write the final statistics here, in the format of Locust's --json-file.",
    )


# --- the per-request log ---------------------------------------------------------------


class _RequestLog:
    """One CSV file per process with every request's exact timing, opened on first use
    (after Locust may have forked), flushed every second and when Locust quits."""

    def __init__(self, directory: str | None) -> None:
        self._directory = Path(directory) if directory else None
        self._file: IO[str] | None = None
        self._writer: Any = None
        self._pid = 0
        self._flushed = 0.0

    def _open(self) -> None:
        assert self._directory is not None
        self._directory.mkdir(parents=True, exist_ok=True)
        self._pid = os.getpid()
        name = f"requests-{socket.gethostname()}-{self._pid}-{uuid.uuid4().hex[:8]}.csv"
        self._file = (self._directory / name).open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._writer.writerow(REQUEST_LOG_HEADER)

    def record(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int | None,
        response: Any = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        """An ``events.request`` listener: one row per request."""
        if self._directory is None:
            return
        if self._file is None or self._pid != os.getpid():
            self._open()
        status = getattr(response, "status_code", 0) or 0
        started = start_time if start_time is not None else time.time() - response_time / 1000
        self._writer.writerow(
            (
                f"{started:.6f}",
                request_type,
                name,
                f"{response_time:.3f}",
                int(response_length or 0),
                int(status),
                0 if exception else 1,
            )
        )
        now = time.monotonic()
        if now - self._flushed >= 1.0:
            self._flushed = now
            assert self._file is not None
            self._file.flush()

    def close(self, **_: Any) -> None:
        """Flush and close this process's file (Locust's ``quit`` event and atexit)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
            self._file = None


_LOG = _RequestLog(os.environ.get("SRE_LOADTEST_REQUESTS_DIR"))
events.request.add_listener(_LOG.record)
events.quit.add_listener(_LOG.close)
atexit.register(_LOG.close)


# --- Locust's CSV files, final -----------------------------------------------------------
# Locust rewrites its CSV files once a second and never again at exit, so locust_stats.csv
# can miss the last second of requests that locust.json (written at exit) has. One more
# write just before the files are closed (after every user and worker has stopped and
# reported) makes the CSV files final; the history gets a last row with the final totals.

_close_files = StatsCSVFileWriter.close_files


def _close_files_after_a_final_write(self: StatsCSVFileWriter) -> None:
    for handle, writer, columns, rows in (
        (self.requests_csv_filehandle, self.requests_csv_writer, self.requests_csv_columns,
         self._requests_data_rows),
        (self.failures_csv_filehandle, self.failures_csv_writer, self.failures_columns,
         self._failures_data_rows),
        (self.exceptions_csv_filehandle, self.exceptions_csv_writer, self.exceptions_columns,
         self._exceptions_data_rows),
    ):  # fmt: skip
        if not handle.closed:
            handle.seek(0)
            handle.truncate()
            writer.writerow(columns)
            rows(writer)
    if not self.stats_history_csv_filehandle.closed:
        self._stats_history_data_rows(self.stats_history_csv_writer, time.time())
    _close_files(self)


StatsCSVFileWriter.close_files = _close_files_after_a_final_write  # type: ignore[method-assign]


@events.test_start.add_listener
def _mark_start(environment: Any, **_: Any) -> None:
    """Log when the load starts (workers connected), for a master whose requests are all
    sent from other machines: ``loadtests.run`` reads the window from these lines."""
    if not isinstance(environment.runner, WorkerRunner):
        logging.getLogger("loadtests").info("%s %.6f", WINDOW_STARTED, time.time())


@events.test_stop.add_listener
def _mark_stop(environment: Any, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        logging.getLogger("loadtests").info("%s %.6f", WINDOW_STOPPED, time.time())


@events.quitting.add_listener
def _write_json(environment: Any, **_: Any) -> None:
    """locust.json as Locust's ``--json-file`` writes it, from the final statistics.

    Locust's own ``--json-file`` resets every entry while it serialises it (it reuses what
    workers use to send deltas), and the CSV files are written after it; so the runner
    asks for this file instead (``--sre-json-file``), written by the master or the only
    process once every worker has reported.
    """
    path = getattr(environment.parsed_options, "sre_json_file", None)
    if not path or isinstance(environment.runner, WorkerRunner):
        return
    entries = environment.runner.stats.entries.values()
    report = [entry.serialize() for entry in entries if entry.num_requests or entry.num_failures]
    Path(path).write_text(json.dumps(report, indent=4), encoding="utf-8")


# --- shared knowledge of the catalogue ---------------------------------------------------


class _Catalogue:
    """Book ids, title words and authors seen in listings, shared by a process's users."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.words: list[str] = list(_WORDS)
        self.authors: list[str] = []
        self.total = 0

    def learn(self, page: Mapping[str, Any], filtered: bool) -> None:
        """Remember a listing's books; the catalogue's size only from unfiltered ones."""
        if isinstance(page.get("total"), int) and not filtered:
            self.total = max(self.total, page["total"])
        for item in page.get("items") or []:
            self.ids.append(int(item["id"]))
            self.words.extend(w.lower() for w in str(item.get("title", "")).split() if len(w) > 3)
            self.authors.append(str(item.get("author", "")))
        # keep memory flat over an hour-long soak
        del self.ids[:-2000], self.words[:-500], self.authors[:-200]

    def pages(self) -> int:
        return max(1, min(100_000, -(-self.total // _PER_PAGE)))


_CATALOGUE = _Catalogue()


def _isbn13(rng: random.Random) -> str:
    """A random ISBN-13 (978 prefix) with a valid check digit."""
    digits = [9, 7, 8, *(rng.randrange(10) for _ in range(9))]
    check = (10 - sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
    return "".join(map(str, digits)) + str(check)


def _paced(user: Any) -> float:
    """constant_throughput at the profile's per-user rate (known on workers once the master
    has sent the run's options)."""
    pacer = getattr(user, "_sre_pacer", None)
    if pacer is None:
        options = user.environment.parsed_options
        name = getattr(options, "sre_profile", None) or "smoke"
        pacer = user._sre_pacer = constant_throughput(get_profile(name).user_rps)
    return float(pacer(user))


# --- journeys ----------------------------------------------------------------------------


class _ApiUser(FastHttpUser):
    """What every journey shares: one request per task, documented answers count as ok."""

    abstract = True
    wait_time = _paced
    #: below the runner's --stop-timeout, so a request always ends before its user is killed
    network_timeout = 20.0
    connection_timeout = 10.0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.rng = random.Random()
        self.token: str | None = None
        self.token_expires = 0.0
        self.email = ""
        self.password = ""

    def call(
        self,
        method: str,
        route: str,
        path: str | None = None,
        *,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        auth: bool = False,
    ) -> tuple[int, Any]:
        """Send one request named ``route``; (status, decoded JSON or None)."""
        url = (path or route) + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        expected = EXPECTED[(method, route)]
        with self.client.request(
            method, url, name=route, json=body, headers=headers, catch_response=True
        ) as response:
            status = int(response.status_code or 0)
            data: Any = None
            if status in expected:
                if status < 300:
                    try:
                        data = response.json()
                    except ValueError:
                        response.failure(f"{method} {route}: answer {status} is not JSON")
                        return status, None
                response.success()
            else:
                response.failure(f"{method} {route}: unexpected status {status}")
            return status, data

    def log_in(self) -> bool:
        """POST /api/auth/token with this user's credentials; True with a token."""
        status, data = self.call(
            "POST", TOKEN, body={"email": self.email, "password": self.password}
        )
        if status != 200 or not isinstance(data, dict):
            return False
        self.token = str(data["access_token"])
        self.token_expires = time.monotonic() + float(data.get("expires_in", 3600))
        return True

    def register(self) -> bool:
        """POST /api/members with a new identity; True when it was created."""
        self.email = f"lt-{uuid.uuid4().hex}@loadtest.example"
        self.password = uuid.uuid4().hex
        self.token = None
        status, _ = self.call(
            "POST",
            MEMBERS,
            body={"email": self.email, "name": "Load Test", "password": self.password},
        )
        return status == 201

    def token_is_stale(self) -> bool:
        return self.token is None or time.monotonic() > self.token_expires - _RELOGIN_MARGIN_S

    def list_books(self, **query: Any) -> None:
        """GET /api/books (one page, possibly filtered); what it shows is remembered."""
        status, data = self.call("GET", BOOKS, query={"per_page": _PER_PAGE, **query})
        if status == 200 and isinstance(data, dict):
            _CATALOGUE.learn(data, filtered=bool(set(query) - {"page", "per_page"}))

    def view_book(self) -> None:
        """GET /api/books/<id> of a book seen in a listing (a listing first if none yet)."""
        if not _CATALOGUE.ids:
            self.list_books()
            return
        book_id = self.rng.choice(_CATALOGUE.ids)
        self.call("GET", BOOK, f"/api/books/{book_id}")


class Browser(_ApiUser):
    """Pages through the catalogue and searches it: by words, author, availability."""

    weight = 3

    @task
    def browse(self) -> None:
        roll = self.rng.random()
        page = self.rng.randint(1, _CATALOGUE.pages())
        if roll < 0.4 or not _CATALOGUE.total:
            self.list_books(page=page)
        elif roll < 0.75:
            words = self.rng.sample(_CATALOGUE.words, k=min(2, len(_CATALOGUE.words)))
            self.list_books(q=" ".join(w[: self.rng.randint(3, len(w))] for w in words))
        elif roll < 0.9:
            self.list_books(available="true", page=self.rng.randint(1, min(5, page)))
        else:
            author = self.rng.choice(_CATALOGUE.authors) if _CATALOGUE.authors else "Ada Moreau"
            self.list_books(author=author)


class Reader(_ApiUser):
    """Opens books one after the other, now and then a listing to find more."""

    weight = 3

    @task
    def read(self) -> None:
        if self.rng.random() < 0.2:
            self.list_books(page=self.rng.randint(1, _CATALOGUE.pages()))
        else:
            self.view_book()


class Newcomer(_ApiUser):
    """Registers, logs in and looks around; then the next newcomer does the same."""

    weight = 1
    _STEPS = ("register", "log_in", "browse", "view", "loans", "view")

    def on_start(self) -> None:
        self.step = 0

    @task
    def next_step(self) -> None:
        name = self._STEPS[self.step % len(self._STEPS)]
        self.step += 1
        if name == "register":
            if not self.register():
                self.step = 0  # try again with another identity
        elif name == "log_in":
            self.log_in()
        elif name == "browse":
            self.list_books(page=self.rng.randint(1, _CATALOGUE.pages()))
        elif name == "view":
            self.view_book()
        elif self.token:
            self.call("GET", LOANS, auth=True)
        else:
            self.view_book()


class Borrower(_ApiUser):
    """A member who finds free books, borrows, renews and returns them (at most two out)."""

    weight = 2

    def on_start(self) -> None:
        self.loans: list[dict[str, Any]] = []
        self.candidates: list[int] = []
        self.steps = 0
        if not (self.register() and self.log_in()):
            raise StopUser()

    @task
    def next_step(self) -> None:
        self.steps += 1
        if self.token_is_stale():
            self.log_in()
        elif self.steps % 8 == 0:
            self.call("GET", LOANS, query={"status": "active"}, auth=True)
        elif not self.candidates and len(self.loans) < 2:
            self.find_free_books()
        elif len(self.loans) < 2:
            self.borrow(self.candidates.pop())
        elif any(not loan["renewed"] for loan in self.loans):
            loan = next(loan for loan in self.loans if not loan["renewed"])
            self.call("POST", LOAN_RENEW, f"/api/loans/{loan['id']}/renew", auth=True)
            loan["renewed"] = True  # renewed now, or refused for good (409)
        else:
            loan = self.loans.pop(0)
            self.call("POST", LOAN_RETURN, f"/api/loans/{loan['id']}/return", auth=True)

    def find_free_books(self) -> None:
        page = self.rng.randint(1, max(1, min(10, _CATALOGUE.pages())))
        status, data = self.call(
            "GET", BOOKS, query={"available": "true", "per_page": _PER_PAGE, "page": page}
        )
        if status == 200 and isinstance(data, dict):
            self.candidates = [int(item["id"]) for item in data.get("items") or []]
            self.rng.shuffle(self.candidates)
            del self.candidates[3:]

    def borrow(self, book_id: int) -> None:
        status, data = self.call("POST", LOANS, body={"book_id": book_id}, auth=True)
        if status == 201 and isinstance(data, dict):
            self.loans.append({"id": int(data["id"]), "renewed": False})


class Librarian(_ApiUser):
    """An admin who adds books, checks each one, and looks at the admin numbers."""

    weight = 1
    _STEPS = ("add", "check", "add", "stats", "add", "check", "add", "members")

    def on_start(self) -> None:
        self.email, self.password = _admin_credentials(os.environ)
        self.step = 0
        self.added: list[int] = []
        if not self.log_in():
            raise StopUser()

    @task
    def next_step(self) -> None:
        name = self._STEPS[self.step % len(self._STEPS)]
        self.step += 1
        if self.token_is_stale():
            self.log_in()
        elif name == "add":
            book = {
                "title": " ".join(self.rng.sample(_TITLE_WORDS, 2)),
                "author": f"Load Author {self.rng.randint(1, 50)}",
                "isbn": _isbn13(self.rng),
                "copies": self.rng.randint(1, 5),
            }
            status, data = self.call("POST", BOOKS, body=book, auth=True)
            if status == 201 and isinstance(data, dict):
                self.added.append(int(data["id"]))
                del self.added[:-20]
        elif name == "check" and self.added:
            book_id = self.rng.choice(self.added)
            self.call("GET", BOOK, f"/api/books/{book_id}")
        elif name == "members":
            self.call("GET", MEMBERS, query={"per_page": _PER_PAGE}, auth=True)
        else:
            self.call("GET", ADMIN_STATS, auth=True)


def _admin_credentials(environ: Mapping[str, str]) -> tuple[str, str]:
    email = environ.get("SRE_LOADTEST_ADMIN_EMAIL", "")
    password_file = environ.get("SRE_LOADTEST_ADMIN_PASSWORD_FILE", "")
    if not (email and password_file):
        raise StopUser()  # the runner leaves Librarian out without credentials
    return email, Path(password_file).read_text(encoding="utf-8").strip()


class RunShape(ProfileShape, LoadTestShape):
    """The profile's users over time (``loadtests.profiles.ProfileShape``)."""
