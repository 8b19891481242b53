"""The database down, slow or silent: 503 with Retry-After, never a hang or a 500."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app import ConfigError, create_app, load_config
from app.db import Database, DatabaseUnavailable, Session, migrate
from app.state import utc_now
from tests.conftest import free_port


def client_for(url: str, **settings: float) -> FlaskClient:
    config = load_config(env={}, database_url=url, access_log=False, **settings)
    return create_app(config).test_client()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung database)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


@pytest.mark.parametrize(
    "path", ["/api/books", "/api/books/1", "/api/ready"], ids=["list", "get", "readiness"]
)
def test_refused_connections_give_503_with_retry_after(path: str) -> None:
    client = client_for(f"mysql://root@127.0.0.1:{free_port()}/nothing")
    answer = client.get(path)
    assert answer.status_code == 503
    assert answer.mimetype == "application/problem+json"
    assert int(answer.headers["Retry-After"]) > 0
    assert client.get("/api/health").status_code == 200  # liveness does not need the database


def test_a_silent_database_times_out_instead_of_hanging(silent_server: int) -> None:
    client = client_for(f"mysql://root@127.0.0.1:{silent_server}/nothing", db_connect_timeout_s=0.5)
    started = time.monotonic()
    assert client.get("/api/books").status_code == 503
    assert client.get("/api/ready").status_code == 503
    assert time.monotonic() - started < 5


def test_errors_never_leak_credentials() -> None:
    client = client_for(f"mysql://someone:hunter2secret@127.0.0.1:{free_port()}/db")
    answer = client.get("/api/books")
    assert answer.status_code == 503
    assert "hunter2secret" not in answer.get_data(as_text=True)


def test_an_unmigrated_database_is_not_ready(tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = client_for(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert client.get("/api/books").status_code == 503


def test_a_slow_statement_is_cut_off_on_mysql(mysql_url: str) -> None:
    database = Database(mysql_url, query_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable), database.session() as session:
        session.scalar("SELECT SLEEP(5)")
    assert time.monotonic() - started < 3
    with database.session() as session:  # the pool recovered: a fresh connection works
        assert session.scalar("SELECT 1") == 1


def test_a_slow_statement_is_cut_off_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    database = Database(f"sqlite:///{tmp_path / 'slow.sqlite3'}", query_timeout_s=0.3)
    slow = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000)"
        " SELECT COUNT(*) FROM n"
    )
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable), database.session() as session:
        session.scalar(slow)
    assert time.monotonic() - started < 3


def test_a_database_that_goes_away_gives_503(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "later" / "db.sqlite3"
    client = client_for(f"sqlite:///{path}")
    assert client.get("/api/ready").status_code == 200  # SQLite creates its file
    path.unlink()
    (tmp_path / "later").rmdir()
    (tmp_path / "later").write_text("not a directory")
    assert client.get("/api/books").status_code == 503


def test_connections_the_server_dropped_are_replaced(mysql_url: str) -> None:
    database = Database(mysql_url, idle_check_s=0)
    with database.session() as session:
        connection_id = session.scalar("SELECT CONNECTION_ID()")
    admin = Database(mysql_url)
    with admin.session() as session:
        session.execute(f"KILL CONNECTION {int(connection_id)}")
    with database.session() as session:  # the dead pooled connection is noticed and replaced
        assert session.scalar("SELECT CONNECTION_ID()") != connection_id


def test_a_deadlock_victim_is_run_again(mysql_url: str) -> None:
    """Two transactions lock two rows in opposite orders: InnoDB kills one, which reruns."""
    database = Database(mysql_url)
    with database.session() as s:
        s.execute("CREATE TABLE pair (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
        s.execute("INSERT INTO pair VALUES (1, 0), (2, 0)")
    both_hold_one = threading.Barrier(2)
    attempts = {"first": 0, "second": 0}

    def work(name: str, order: tuple[int, int]) -> Callable[[Session], None]:
        def run(s: Session) -> None:
            attempts[name] += 1
            s.execute("UPDATE pair SET n = n + 1 WHERE id = ?", (order[0],))
            if attempts[name] == 1:
                both_hold_one.wait(5)
            s.execute("UPDATE pair SET n = n + 1 WHERE id = ?", (order[1],))

        return run

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(database.run_transaction, work("first", (1, 2)))
        second = pool.submit(database.run_transaction, work("second", (2, 1)))
        first.result(timeout=30)
        second.result(timeout=30)
    assert sorted(attempts.values()) == [1, 2]  # exactly one victim, run once more
    with database.session() as s:
        assert [r["n"] for r in s.all("SELECT n FROM pair ORDER BY id")] == [2, 2]


def test_pooled_connections_share_one_tls_context(mysql_url: str) -> None:
    # pymysql alone builds a context (system CA store loaded, ~0.8 MiB) per connection
    database = Database(mysql_url)
    with database.session() as first, database.session() as second:
        assert first._conn is not second._conn
        assert first._conn.ctx is second._conn.ctx is not None
    database.close()


def test_the_mysql_password_can_come_from_a_file(mysql_url: str, tmp_path: Path) -> None:
    """SRE_DATABASE_PASSWORD_FILE: the URL names user and database, the file the password."""
    from tests.conftest import MYSQL_CLIENT_HOST, mysql_admin

    database = mysql_url.rsplit("/", 1)[1]
    user, password = f"app_{database[-8:]}", "pw-from-a-file-" + database[-8:]
    admin = mysql_admin()
    with admin.cursor() as cursor:
        account = f"'{user}'@'{MYSQL_CLIENT_HOST}'"
        cursor.execute(f"CREATE USER {account} IDENTIFIED BY %s", (password,))
        cursor.execute(f"GRANT ALL ON `{database}`.* TO {account}")
    try:
        url = mysql_url.replace("root@", f"{user}@")
        secret = tmp_path / "db-password"
        secret.write_text(password + "\n")
        with_file = load_config(
            env={"DATABASE_URL": url, "SRE_DATABASE_PASSWORD_FILE": str(secret)},
            access_log=False,
        )
        app = create_app(with_file)
        migrate(app.extensions["elibrary"].db, utc_now())
        assert app.test_client().get("/api/ready").status_code == 200
        app.extensions["elibrary"].db.close()

        secret.write_text("not-the-password\n")
        refused = create_app(with_file).test_client().get("/api/books")
        assert refused.status_code == 503
        assert "not-the-password" not in refused.get_data(as_text=True)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'{MYSQL_CLIENT_HOST}'")
        admin.close()


def test_a_missing_password_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"SRE_DATABASE_PASSWORD_FILE: .*no-such-file: no such"):
        load_config(env={"SRE_DATABASE_PASSWORD_FILE": str(tmp_path / "no-such-file")})
