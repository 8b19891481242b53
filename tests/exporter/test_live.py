"""The exporter against the real MariaDB, as the least-privilege user the docs prescribe."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.db import Database
from exporter import (
    DEFAULT_QUERIES,
    ConfigError,
    MySQLClient,
    QueryFailed,
    check_queries,
    load_mysql_target,
    load_queries,
)
from exporter.mysql import _names_and_values
from tests.conftest import SRE, free_port, require_tool, stop, wait_until_ready
from tests.exporter.conftest import LibraryDatabase, RunningExporter

pytestmark = pytest.mark.integration
DOCS = Path(__file__).resolve().parents[2] / "docs" / "exporter.md"


def values(text: str) -> dict[str, float]:
    return {
        s.name
        + (
            "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
            if s.labels
            else ""
        ): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def families(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    return {
        f.name: (f.type, frozenset(k for s in f.samples for k in s.labels) - {"le"})
        for f in text_string_to_metric_families(text)
    }


def write_queries(path: Path, body: str) -> Path:
    path.write_text("queries:\n" + body)
    return path


def without_database(library_db: LibraryDatabase, tmp_path: Path) -> Path:
    """The exporter user's my.cnf as mysqld_exporter reads it: [client] without database."""
    my_cnf = tmp_path / "mysqld_exporter.my.cnf"
    lines = library_db.my_cnf.read_text().splitlines(keepends=True)
    my_cnf.write_text("".join(line for line in lines if not line.startswith("database=")))
    assert my_cnf.read_text() != library_db.my_cnf.read_text()
    return my_cnf


def log_lines(exporter: RunningExporter, containing: str) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for line in exporter.log.read_text().splitlines()
        if containing in line and line.startswith("{")
    ]


#: the environment of a process that must see no SRE_MYSQL_DATABASE
_NO_DATABASE_ENV = {k: v for k, v in os.environ.items() if k != "SRE_MYSQL_DATABASE"}


def test_a_scrape_has_server_and_business_metrics(
    library_db: LibraryDatabase, start_exporter: Callable[..., RunningExporter]
) -> None:
    exporter = start_exporter(library_db.my_cnf)
    got = values(exporter.scrape())
    assert got["mysql_up"] == 1 and got["mysql_exporter_last_scrape_error"] == 0
    assert got["mysql_global_variables_max_connections"] > 0
    assert got["mysql_global_status_commands_total{command=select}"] > 0
    database = Database(library_db.url)
    with database.session() as s:
        copies = s.one("SELECT SUM(copies) AS c, SUM(available_copies) AS a FROM books")
        members = s.scalar("SELECT COUNT(*) FROM members")
        open_loans = s.scalar("SELECT COUNT(*) FROM loans WHERE returned_at IS NULL")
    database.close()
    assert got["elibrary_book_copies{state=available}"] == copies["a"]
    assert got["elibrary_book_copies{state=on_loan}"] == copies["c"] - copies["a"]
    assert got["elibrary_members{status=active}"] == members
    assert got["elibrary_loans_active"] == open_loans
    assert got["elibrary_book_titles"] == 50
    assert got["elibrary_exporter_query_errors_total{query=elibrary_members}"] == 0


def test_promtool_accepts_the_exposition(
    library_db: LibraryDatabase, start_exporter: Callable[..., RunningExporter]
) -> None:
    promtool = require_tool("promtool", "prometheus")
    text = start_exporter(library_db.my_cnf).scrape()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, check=False
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).decode().splitlines()
        if line.strip() and not line.startswith("mysql_")
    ]
    # mysqld_exporter's own names (mysql_*) are kept exactly, lint or not: that is the
    # compatibility promise. Everything this project names must be clean.
    assert problems == []


def test_at_least_95_percent_of_mysqld_exporters_families_match(
    library_db: LibraryDatabase,
    start_exporter: Callable[..., RunningExporter],
    tmp_path: Path,
) -> None:
    binary = require_tool("prometheus-mysqld-exporter", "prometheus-mysqld-exporter")
    port = free_port()
    reference = subprocess.Popen(
        [binary, f"--config.my-cnf={library_db.my_cnf}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=(tmp_path / "reference.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/metrics", reference)
        theirs = families(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text)
    finally:
        stop(reference)
    ours = families(start_exporter(library_db.my_cnf).scrape())
    wanted = {name: shape for name, shape in theirs.items() if name.startswith("mysql_")}
    missing = sorted(name for name, shape in wanted.items() if ours.get(name) != shape)
    assert len(wanted) > 500
    assert 1 - len(missing) / len(wanted) >= 0.95, missing
    documented = set(re.findall(r"`(mysql_[a-z0-9_]+)`", DOCS.read_text()))
    assert set(missing) <= documented, f"undocumented differences: {set(missing) - documented}"


def test_a_slow_query_is_cut_off_and_the_others_still_answer(
    library_db: LibraryDatabase, start_exporter: Callable[..., RunningExporter], tmp_path: Path
) -> None:
    queries = write_queries(
        tmp_path / "q.yaml",
        """
  - {name: elibrary_slow, help: Sleeps., type: gauge, sql: SELECT SLEEP(5) AS value,
     timeout: 500ms}
  - {name: elibrary_book_titles, help: Titles., type: gauge,
     sql: SELECT COUNT(*) AS value FROM books}
""",
    )
    exporter = start_exporter(library_db.my_cnf, "--queries", str(queries), "--no-check")
    started = time.monotonic()
    got = values(exporter.scrape())
    assert time.monotonic() - started < 3
    assert got["mysql_up"] == 1
    assert got["elibrary_book_titles"] == 50
    assert "elibrary_slow" not in got
    assert got["elibrary_exporter_query_errors_total{query=elibrary_slow}"] == 1
    assert got["elibrary_exporter_query_errors_total{query=elibrary_book_titles}"] == 0


def test_prometheus_scrape_timeout_header_bounds_the_scrape(
    library_db: LibraryDatabase, start_exporter: Callable[..., RunningExporter], tmp_path: Path
) -> None:
    queries = write_queries(
        tmp_path / "q.yaml",
        """
  - {name: elibrary_slow, help: Sleeps., type: gauge, sql: SELECT SLEEP(20) AS value,
     timeout: 30s}
""",
    )
    exporter = start_exporter(library_db.my_cnf, "--queries", str(queries), "--no-check")
    started = time.monotonic()
    got = values(exporter.scrape({"X-Prometheus-Scrape-Timeout-Seconds": "2"}))
    assert time.monotonic() - started < 4
    assert got["mysql_up"] == 1 and "elibrary_slow" not in got


def test_oversized_results_are_refused_not_exported(
    library_db: LibraryDatabase, start_exporter: Callable[..., RunningExporter], tmp_path: Path
) -> None:
    queries = write_queries(
        tmp_path / "q.yaml",
        """
  - {name: elibrary_per_book, help: One series per book., type: gauge, labels: [book],
     sql: "SELECT id AS book, copies AS value FROM books", max_series: 10}
""",
    )
    exporter = start_exporter(library_db.my_cnf, "--queries", str(queries), "--no-check")
    got = values(exporter.scrape())
    assert not any(name.startswith("elibrary_per_book") for name in got)
    assert got["elibrary_exporter_query_errors_total{query=elibrary_per_book}"] == 1


def test_concurrent_scrapes_all_succeed(
    library_db: LibraryDatabase, start_exporter: Callable[..., RunningExporter]
) -> None:
    exporter = start_exporter(library_db.my_cnf)

    def scrape(_: int) -> float:
        return values(exporter.scrape())["mysql_up"]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(scrape, range(32))) == [1.0] * 32
    assert values(exporter.scrape())["mysql_exporter_scrapes_total"] == 33


def test_check_names_every_bad_query(library_db: LibraryDatabase, tmp_path: Path) -> None:
    queries = write_queries(
        tmp_path / "q.yaml",
        """
  - {name: elibrary_a, help: A., type: gauge, sql: SELECT COUNT(*) AS n FROM books}
  - {name: elibrary_b, help: B., type: gauge, sql: SELECT 1 AS value FROM no_such_table}
  - {name: elibrary_c, help: C., type: gauge, sql: SELECT 1 AS value}
""",
    )
    result = subprocess.run(
        [SRE, "exporter", "check", "--my-cnf", str(library_db.my_cnf), "--queries", str(queries)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(
        f"error: {queries}: queries[0] (elibrary_a): result has no column value"
    )
    assert lines[1].startswith(f"{queries}: queries[1] (elibrary_b): ProgrammingError 1146")
    assert len(lines) == 2
    ok = subprocess.run(
        [SRE, "exporter", "check", "--my-cnf", str(library_db.my_cnf)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert library_db.password not in result.stderr + ok.stdout + ok.stderr


def test_the_password_never_shows(
    library_db: LibraryDatabase, start_exporter: Callable[..., RunningExporter], tmp_path: Path
) -> None:
    exporter = start_exporter(library_db.my_cnf)
    text = exporter.scrape() + requests.get(f"{exporter.url}/healthz", timeout=5).text
    wrong = tmp_path / "wrong.my.cnf"
    wrong.write_text(
        library_db.my_cnf.read_text().replace(library_db.password, library_db.password + "x")
    )
    denied = start_exporter(wrong)
    assert values(denied.scrape())["mysql_up"] == 0
    refused = subprocess.run(
        [SRE, "exporter", "check", "--my-cnf", str(wrong)], capture_output=True, text=True
    )
    assert refused.returncode == 1
    for seen in (
        text,
        exporter.log.read_text(),
        denied.log.read_text(),
        refused.stdout + refused.stderr,
    ):
        assert library_db.password not in seen
    assert "mysql_exporter_last_scrape_error 1.0" in denied.scrape()


def test_packed_reads_give_the_rows_show_gives(library_db: LibraryDatabase) -> None:
    # as the least-privilege user: the information_schema views must be readable to it
    client = MySQLClient(load_mysql_target(str(library_db.my_cnf), env={}))
    statements: list[str] = []
    try:
        with client.connection() as conn:

            def query(sql: str) -> tuple[list[str], list[tuple[object, ...]]]:
                statements.append(sql.split()[0])
                return conn.query(sql, 5)

            for view, show in (
                ("GLOBAL_VARIABLES", "SHOW GLOBAL VARIABLES"),
                ("GLOBAL_STATUS", "SHOW GLOBAL STATUS"),
            ):
                packed = {str(k).lower(): v for k, v in _names_and_values(query, view, show)}
                shown = {str(k).lower(): v for k, v in query(show)[1]}
                assert packed.keys() == shown.keys() and len(packed) > 400
                if view == "GLOBAL_VARIABLES":
                    assert packed == shown
    finally:
        client.close()
    assert statements == ["SELECT", "SHOW", "SELECT", "SHOW"]  # the packed read was used


@pytest.mark.parametrize(
    "with_database", [False, True], ids=["mysqld_exporter's my.cnf, no database", "a database"]
)
def test_business_queries_run_only_when_the_credentials_name_a_database(
    library_db: LibraryDatabase,
    start_exporter: Callable[..., RunningExporter],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_database: bool,
) -> None:
    monkeypatch.delenv("SRE_MYSQL_DATABASE", raising=False)  # the exporter inherits this
    my_cnf = library_db.my_cnf if with_database else without_database(library_db, tmp_path)
    exporter = start_exporter(my_cnf)  # with the start-up check of the queries, as by default
    got = values(exporter.scrape())
    assert got["mysql_up"] == 1 and got["mysql_exporter_last_scrape_error"] == 0
    assert got["mysql_global_status_uptime"] > 0
    assert got["mysql_global_variables_max_connections"] > 0
    assert got["elibrary_exporter_queries_enabled"] == float(with_database)
    assert ("elibrary_book_titles" in got) is with_database
    assert got["elibrary_exporter_query_errors_total{query=elibrary_book_titles}"] == 0
    warnings = log_lines(exporter, "business queries not configured")
    if with_database:
        assert warnings == []
        return
    [warning] = warnings
    assert warning["level"] == "warning"
    assert (
        f"add database=<schema> under [client] in {my_cnf}, or set SRE_MYSQL_DATABASE=<schema>"
        in str(warning["msg"])
    )
    assert library_db.password not in exporter.log.read_text()


def test_sre_mysql_database_completes_a_my_cnf_without_database(
    library_db: LibraryDatabase,
    start_exporter: Callable[..., RunningExporter],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SRE_MYSQL_DATABASE", library_db.name)
    exporter = start_exporter(without_database(library_db, tmp_path))
    got = values(exporter.scrape())
    assert got["elibrary_exporter_queries_enabled"] == 1
    assert got["elibrary_book_titles"] == 50


def test_the_start_up_check_without_a_database_connects_but_does_not_fail(
    library_db: LibraryDatabase, tmp_path: Path
) -> None:
    specs = load_queries(DEFAULT_QUERIES)
    my_cnf = without_database(library_db, tmp_path)
    client = MySQLClient(load_mysql_target(str(my_cnf), env={}))
    try:
        check_queries(client, specs, str(DEFAULT_QUERIES))  # as serve calls it: no exit
        with pytest.raises(ConfigError) as caught:
            check_queries(client, specs, str(DEFAULT_QUERIES), require_database=True)
    finally:
        client.close()
    assert str(caught.value) == (
        f"{my_cnf}: [client].database: is missing: the business queries need a schema "
        "(add database=<schema> there, or set SRE_MYSQL_DATABASE=<schema>)"
    )
    unreachable = tmp_path / "unreachable.my.cnf"
    unreachable.write_text(f"[client]\nuser=exporter\nhost=127.0.0.1\nport={free_port()}\n")
    client = MySQLClient(load_mysql_target(str(unreachable), env={}))
    with pytest.raises(QueryFailed, match="cannot connect"):  # serve logs this and starts
        check_queries(client, specs, str(DEFAULT_QUERIES))


def test_check_without_a_database_fails_naming_the_file_and_the_missing_database(
    library_db: LibraryDatabase, tmp_path: Path
) -> None:
    my_cnf = without_database(library_db, tmp_path)
    result = subprocess.run(
        [SRE, "exporter", "check", "--my-cnf", str(my_cnf)],
        capture_output=True,
        text=True,
        env=_NO_DATABASE_ENV,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: {my_cnf}: [client].database: is missing: the business queries need a schema "
        "(add database=<schema> there, or set SRE_MYSQL_DATABASE=<schema>)\n"
    )
