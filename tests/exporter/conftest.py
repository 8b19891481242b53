"""Real servers for the exporter's tests: a seeded library database, a least-privilege
MySQL user (the grants docs/exporter.md gives), and the exporter as a real process, or
in-process behind its real HTTP server when a test injects parts of it."""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest
import requests

from exporter import Exporter
from exporter.server import make_http_server
from tests.conftest import (
    MYSQL_CLIENT_HOST,
    MYSQL_HOST,
    MYSQL_PORT,
    SRE,
    OwnMariaDB,
    free_port,
    mysql_admin,
)

#: distinctive, so a test can prove it never shows up anywhere
PASSWORD_MARK = "pw-never-shown-"


def grant_exporter(
    admin: pymysql.connections.Connection,
    user: str,
    password: str,
    database: str,
    host: str = "127.0.0.1",
) -> None:
    """The minimal grants of docs/exporter.md."""
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY %s", (password,))
        cursor.execute(f"GRANT PROCESS, REPLICATION CLIENT ON *.* TO '{user}'@'{host}'")
        # MariaDB 10.5+ split replica monitoring out of REPLICATION CLIENT; on MySQL the
        # grant does not exist and REPLICATION CLIENT covers SHOW REPLICA STATUS.
        with suppress(pymysql.err.MySQLError):
            cursor.execute(f"GRANT SLAVE MONITOR ON *.* TO '{user}'@'{host}'")
        cursor.execute(f"GRANT SELECT ON `{database}`.* TO '{user}'@'{host}'")


def exporter_on(server: OwnMariaDB, tmp_path: Path) -> tuple[Path, Path]:
    """An exporter user on a test-owned MariaDB: its my.cnf and a one-query queries file."""
    admin = server.admin()
    with admin.cursor() as cursor:
        cursor.execute("CREATE DATABASE elibrary")
    grant_exporter(admin, "exporter", "own-server-pw", "elibrary")
    admin.close()
    my_cnf = tmp_path / "own.my.cnf"
    my_cnf.write_text(
        f"[client]\nuser=exporter\npassword=own-server-pw\nhost=127.0.0.1\n"
        f"port={server.port}\ndatabase=elibrary\n"
    )
    queries = tmp_path / "probe.yaml"
    queries.write_text(
        "queries:\n  - {name: elibrary_probe, help: P., type: gauge, sql: SELECT 1 AS value}\n"
    )
    return my_cnf, queries


@dataclass
class LibraryDatabase:
    url: str
    name: str
    user: str
    password: str
    my_cnf: Path


@pytest.fixture
def library_db(mysql_url: str, tmp_path: Path) -> Iterator[LibraryDatabase]:
    """A migrated, seeded library database and an exporter user that may only read it."""
    name = mysql_url.rsplit("/", 1)[1]
    env = {**os.environ, "DATABASE_URL": mysql_url}
    subprocess.run(
        [SRE, "app", "seed", "--books", "50", "--members", "20", "--loans", "500"],
        env=env,
        check=True,
        capture_output=True,
    )
    user = f"exp_{secrets.token_hex(4)}"
    password = PASSWORD_MARK + secrets.token_hex(6)
    admin = mysql_admin()
    grant_exporter(admin, user, password, name, host=MYSQL_CLIENT_HOST)
    my_cnf = tmp_path / "exporter.my.cnf"
    my_cnf.write_text(
        f"[client]\nuser={user}\npassword={password}\nhost={MYSQL_HOST}\n"
        f"port={MYSQL_PORT}\ndatabase={name}\n"
    )
    my_cnf.chmod(0o600)
    try:
        yield LibraryDatabase(mysql_url, name, user, password, my_cnf)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'{MYSQL_CLIENT_HOST}'")
        admin.close()


@dataclass
class RunningExporter:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def scrape(self, headers: dict[str, str] | None = None, timeout: float = 30) -> str:
        answer = requests.get(f"{self.url}/metrics", headers=headers or {}, timeout=timeout)
        assert answer.status_code == 200, answer.text
        return answer.text


@pytest.fixture
def start_exporter(
    tmp_path: Path, launch: Callable[..., subprocess.Popen[bytes]]
) -> Callable[..., RunningExporter]:
    def start(my_cnf: Path, *extra: str) -> RunningExporter:
        port = free_port()
        log = tmp_path / f"exporter-{port}.log"
        url = f"http://127.0.0.1:{port}"
        process = launch(
            [SRE, "exporter", "serve", "--port", str(port), "--my-cnf", str(my_cnf), *extra],
            log,
            f"{url}/healthz",
        )
        return RunningExporter(url, log, process)

    return start


@pytest.fixture
def serve_in_process() -> Iterator[Callable[[Exporter], str]]:
    """Serve an Exporter built by the test (its own scrapers, say) through the exporter's
    real HTTP server on a free port; gives the base URL. Stopped and closed afterwards."""
    running: list[tuple[Exporter, Any, threading.Thread]] = []

    def start(exporter: Exporter) -> str:
        server = make_http_server(exporter, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((exporter, server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for exporter, server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(10)
        exporter.close()
