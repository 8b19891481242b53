"""The ``sre`` command: exit codes and messages (0 ok, 1 failed/unavailable, 2 bad input)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from app.db import Database, Session
from sre.cli import main
from tests.conftest import free_port


def run(args: list[str], env: dict[str, str] | None = None, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, args, env=env or {}, input=stdin, catch_exceptions=False)


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}


def test_every_component_group_has_help() -> None:
    result = run(["--help"])
    assert result.exit_code == 0
    assert "app" in result.output
    for command in (
        ["app", "--help"],
        ["app", "serve", "--help"],
        ["app", "seed", "--help"],
        ["app", "users", "add", "--help"],
        ["app", "migrate", "--help"],
    ):
        assert run(command).exit_code == 0, command


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["app", "migrate"], {"DATABASE_URL": "postgres://h/db"}, 2, "DATABASE_URL: must start"),
        (
            ["app", "migrate"],
            {"DATABASE_URL": "sqlite:///x", "SRE_DB_POOL_SIZE": "many"},
            2,
            "SRE_DB_POOL_SIZE",
        ),
        (["app", "serve", "--port", "70000"], {}, 2, "70000"),
        (
            ["app", "seed", "--loans", "5", "--books", "0"],
            {"DATABASE_URL": "sqlite:///x"},
            2,
            "loans need at least one book",
        ),
        (["app", "users", "add", "--email", "a@b.org", "--role", "owner"], {}, 2, "owner"),
    ],
    ids=[
        "unknown database scheme",
        "malformed setting",
        "port out of range",
        "loans without books",
        "unknown role",
    ],
)
def test_bad_input_exits_2_naming_the_problem(
    args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    result = run(args, env)
    assert result.exit_code == code
    assert message in result.output


def test_an_unreachable_database_exits_1() -> None:
    env = {"DATABASE_URL": f"mysql://root:s3cret-pw@127.0.0.1:{free_port()}/db"}
    result = run(["app", "migrate"], env)
    assert result.exit_code == 1
    assert "database unavailable" in result.output
    assert "s3cret-pw" not in result.output


def test_migrate_is_idempotent(sqlite_env: dict[str, str]) -> None:
    assert "applied migrations 1, 2" in run(["app", "migrate"], sqlite_env).output
    assert "up to date" in run(["app", "migrate"], sqlite_env).output


def test_users_add_reads_the_password_from_stdin_and_refuses_duplicates(
    sqlite_env: dict[str, str],
) -> None:
    run(["app", "migrate"], sqlite_env)
    args = ["app", "users", "add", "--email", "Boss@Example.org", "--role", "admin"]
    created = run(args, sqlite_env, stdin="long enough password\n")
    assert created.exit_code == 0, created.output
    assert "created admin boss@example.org" in created.output
    again = run(args, sqlite_env, stdin="long enough password\n")
    assert again.exit_code == 2 and "exists already" in again.output
    short = run(["app", "users", "add", "--email", "x@y.org"], sqlite_env, stdin="short\n")
    assert short.exit_code == 2 and "8 to 128 characters" in short.output


def test_users_add_reads_a_password_file(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    run(["app", "migrate"], sqlite_env)
    secret = tmp_path / "pw"
    secret.write_text("from a file, not argv\n")
    result = run(
        ["app", "users", "add", "--email", "f@x.org", "--password-file", str(secret)], sqlite_env
    )
    assert result.exit_code == 0, result.output


def open_loans_by(s: Session, column: str) -> dict[int, int]:
    rows = s.all(
        f"SELECT {column} AS k, COUNT(*) AS n FROM loans"
        f" WHERE returned_at IS NULL GROUP BY {column}"
    )
    return {row["k"]: int(row["n"]) for row in rows}


def test_seeded_data_is_consistent(database_url: str) -> None:
    result = run(
        ["app", "seed", "--books", "40", "--members", "30", "--loans", "2000"],
        {"DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    assert "seeded 40 books, 30 members, 2000 loans (60 open)" in result.output
    database = Database(database_url)
    with database.session() as s:
        open_by_book = open_loans_by(s, "book_id")
        for book in s.all("SELECT id, copies, available_copies FROM books"):
            assert book["copies"] - book["available_copies"] == open_by_book.get(book["id"], 0)
        open_by_member = open_loans_by(s, "member_id")
        for member in s.all("SELECT id, active_loans FROM members"):
            assert member["active_loans"] == open_by_member.get(member["id"], 0)
            assert member["active_loans"] <= 5
        assert s.scalar("SELECT COUNT(*) FROM book_terms") > 40
    database.close()
