"""The service under real gunicorn: exact metrics across workers, the last-copy race."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.seed import isbn13
from tests.conftest import SRE, free_port

pytestmark = pytest.mark.integration


@dataclass
class Server:
    url: str
    metrics_dir: Path
    log: Path
    #: ``sre app serve``, which is the gunicorn master
    process: subprocess.Popen[bytes]

    def admin_headers(self, database_url: str) -> dict[str, str]:
        env = {**os.environ, "DATABASE_URL": database_url}
        subprocess.run(
            [SRE, "app", "users", "add", "--email", "root@example.org", "--role", "admin"],
            input="admin password\n",
            text=True,
            env=env,
            check=True,
            capture_output=True,
        )
        return login(self.url, "root@example.org", "admin password")


def login(url: str, email: str, password: str) -> dict[str, str]:
    answer = requests.post(
        f"{url}/api/auth/token", json={"email": email, "password": password}, timeout=10
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
def start_server(tmp_path: Path, launch: Callable[..., Any]) -> Callable[..., Server]:
    def start(database_url: str, *, workers: int = 4, max_requests: int = 0) -> Server:
        port = free_port()
        metrics_dir = tmp_path / f"metrics-{port}"
        log = tmp_path / f"server-{port}.log"
        url = f"http://127.0.0.1:{port}"
        process = launch(
            [
                SRE,
                "app",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--max-requests",
                str(max_requests),
                "--max-requests-jitter",
                "0",
                "--metrics-dir",
                str(metrics_dir),
            ],
            log,
            f"{url}/api/ready",
            env={**os.environ, "DATABASE_URL": database_url, "SRE_ACCESS_LOG": "false"},
        )
        return Server(url, metrics_dir, log, process)

    return start


def register_members(url: str, prefix: str, count: int) -> list[dict[str, str]]:
    """Members made through the API; their Authorization headers."""
    headers = []
    for n in range(count):
        email = f"{prefix}{n}@example.org"
        requests.post(
            f"{url}/api/members",
            timeout=10,
            json={"email": email, "name": prefix, "password": "member password"},
        )
        headers.append(login(url, email, "member password"))
    return headers


def samples(url: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_counts_are_exact_across_recycled_workers(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'db.sqlite3'}", workers=4, max_requests=25)
    total = 800

    def hit(_: int) -> int:
        return requests.get(f"{server.url}/api/health", timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(hit, range(total))) == {200}

    # Every worker was recycled several times: its counts must survive in the archive.
    counted = samples(server.url, "http_requests_total")
    health = (("method", "GET"), ("route", "/api/health"), ("status", "200"))
    assert counted[health] == total
    durations = samples(server.url, "http_request_duration_seconds_count")
    assert durations[(("method", "GET"), ("route", "/api/health"))] == total

    # One file per metric kind per live worker, plus the archive: not one per dead worker.
    # The scrapes above are requests too and may recycle a worker; while the master folds
    # it, its files and a third archive generation exist for a moment. Counted once the
    # fold is over, the bounds hold.
    def file_counts() -> tuple[int, int]:
        return (
            len(list(server.metrics_dir.glob("*.db"))),
            len(list((server.metrics_dir / "archive").glob("*.db"))),
        )

    settled = time.monotonic() + 10
    worker_files, archive_files = file_counts()
    while (worker_files > 4 * 4 or archive_files > 4) and time.monotonic() < settled:
        time.sleep(0.1)
        worker_files, archive_files = file_counts()
    assert worker_files <= 4 * 4
    assert archive_files <= 4
    assert samples(server.url, "http_requests_in_progress")[()] >= 1  # the scrape itself


def test_only_one_of_many_concurrent_borrowers_gets_the_last_copy(
    start_server: Callable[..., Server], database_url: str
) -> None:
    server = start_server(database_url, workers=4)
    admin = server.admin_headers(database_url)
    rounds, borrowers = 4, 16
    members = register_members(server.url, "racer", borrowers)

    for round_number in range(rounds):
        book = requests.post(
            f"{server.url}/api/books",
            headers=admin,
            timeout=10,
            json={
                "title": f"Rare {round_number}",
                "author": "A",
                "copies": 1,
                "isbn": isbn13(round_number),
            },
        ).json()
        barrier = threading.Barrier(borrowers)

        def borrow(
            headers: dict[str, str], book_id: int = book["id"], barrier: Any = barrier
        ) -> requests.Response:
            barrier.wait()
            return requests.post(
                f"{server.url}/api/loans", json={"book_id": book_id}, headers=headers, timeout=30
            )

        with ThreadPoolExecutor(borrowers) as pool:
            answers = list(pool.map(borrow, members))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201] + [409] * (borrowers - 1), [a.text for a in answers]
        book_now = requests.get(f"{server.url}/api/books/{book['id']}", timeout=10).json()
        assert book_now["available"] == 0

        winner = next(a for a in answers if a.status_code == 201)
        owner = members[answers.index(winner)]
        returns = threading.Barrier(8)

        def give_back(
            _: int, loan_id: int = winner.json()["id"], returns: Any = returns, owner: Any = owner
        ) -> int:
            returns.wait()
            return requests.post(
                f"{server.url}/api/loans/{loan_id}/return", headers=owner, timeout=30
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            assert sorted(pool.map(give_back, range(8))) == [200] + [409] * 7
        assert (
            requests.get(f"{server.url}/api/books/{book['id']}", timeout=10).json()["available"]
            == 1
        )

    stats = requests.get(f"{server.url}/api/admin/stats", headers=admin, timeout=10).json()
    assert stats["loans"]["active"] == 0
    assert stats["books"]["copies_on_loan"] == 0
    created = samples(server.url, "elibrary_loans_created_total")[()]
    returned = samples(server.url, "elibrary_loans_returned_total")[()]
    assert (created, returned) == (rounds, rounds)


def test_every_line_the_server_logs_is_json(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'db.sqlite3'}", workers=1)
    requests.get(f"{server.url}/api/books/1", timeout=10)
    lines = [line for line in server.log.read_text().splitlines() if line.strip()]
    assert lines
    entries = [json.loads(line) for line in lines]
    assert any(e["logger"] == "gunicorn.error" for e in entries)


def test_concurrent_borrows_and_returns_never_fail_and_keep_counts(
    start_server: Callable[..., Server], database_url: str
) -> None:
    server = start_server(database_url, workers=4)
    admin = server.admin_headers(database_url)
    book = requests.post(
        f"{server.url}/api/books",
        headers=admin,
        timeout=10,
        json={"title": "Busy", "author": "A", "copies": 2, "isbn": isbn13(77)},
    ).json()
    members = register_members(server.url, "busy", 8)

    def churn(headers: dict[str, str]) -> list[int]:
        statuses = []
        for _ in range(15):
            lent = requests.post(
                f"{server.url}/api/loans", json={"book_id": book["id"]}, headers=headers, timeout=30
            )
            statuses.append(lent.status_code)
            if lent.status_code == 201:
                back = requests.post(
                    f"{server.url}/api/loans/{lent.json()['id']}/return",
                    headers=headers,
                    timeout=30,
                )
                statuses.append(back.status_code)
        return statuses

    with ThreadPoolExecutor(len(members)) as pool:
        statuses = [code for codes in pool.map(churn, members) for code in codes]
    assert set(statuses) <= {200, 201, 409}, sorted(set(statuses))
    assert statuses.count(201) == statuses.count(200) > 0
    final = requests.get(f"{server.url}/api/books/{book['id']}", timeout=10).json()
    assert final["available"] == 2
