"""Every way a business query can fail is counted, logged and kept out of the scrape, with
the queries running against the real MariaDB; the other queries are not affected."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from exporter import MySQLClient, load_mysql_target
from exporter.business import QueryRunner
from exporter.config import QuerySpec
from tests.exporter.conftest import LibraryDatabase

pytestmark = pytest.mark.integration

HEALTHY = QuerySpec(
    name="elibrary_book_titles",
    help="Titles.",
    type="gauge",
    sql="SELECT COUNT(*) AS value FROM books",
)


def failing(sql: str, timeout_s: float = 5.0) -> QuerySpec:
    return QuerySpec(
        name="elibrary_failing", help="Fails.", type="gauge", sql=sql, timeout_s=timeout_s
    )


@dataclass(frozen=True)
class Case:
    spec: QuerySpec
    error_type: str
    #: part of the logged reason
    error: str
    #: what the query callable does for this query instead of asking MySQL; it gets an
    #: event the test sets when it ends
    instead: Callable[[threading.Event], Any] | None = None
    budget_s: float = 5.0


def _a_bug() -> Any:
    columns: dict[str, int] = {}
    return columns["no such column"]


CASES = {
    "a server error": Case(
        failing("SELECT 1 AS value FROM no_such_table"),
        "QueryFailed",
        "ProgrammingError 1146: Table",
    ),
    "the server-side statement timeout": Case(
        failing("SELECT SLEEP(3) AS value", timeout_s=0.5), "QueryTimeout", "ran past 0.5s"
    ),
    "a result without the value column": Case(
        failing("SELECT 1 AS n"), "ResultShapeError", "result has no column value"
    ),
    "a value that is not a number": Case(
        failing("SELECT 'many' AS value"), "ResultShapeError", "column value holds 'many'"
    ),
    "an exception of a type nobody expected": Case(
        failing("SELECT 2 AS value"),
        "KeyError",
        "'no such column'",
        instead=lambda _: _a_bug(),
    ),
    "no answer before the scrape gives up": Case(
        failing("SELECT 3 AS value"),
        "TimeoutError",
        "the scrape gave up waiting; the query was still running",
        instead=lambda released: released.wait(30),
        budget_s=0.3,
    ),
}


def errors(runner: QueryRunner) -> dict[str, float]:
    """elibrary_exporter_query_errors_total by query, as the scrape exports it."""
    [family] = [f for f in runner.self_metrics() if f.name == "elibrary_exporter_query_errors"]
    return {s.labels["query"]: s.value for s in family.samples if s.name.endswith("_total")}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_failing_query_is_counted_logged_and_left_out(
    library_db: LibraryDatabase, caplog: pytest.LogCaptureFixture, case: Case
) -> None:
    client = MySQLClient(load_mysql_target(str(library_db.my_cnf), env={}))
    released = threading.Event()

    def query(sql: str, timeout: float) -> Any:
        if sql == case.spec.sql and case.instead is not None:
            return case.instead(released)
        with client.connection() as conn:
            return conn.query(sql, timeout)

    runner = QueryRunner([case.spec, HEALTHY], redact=client.target.redact)
    try:
        assert errors(runner) == {"elibrary_failing": 0, "elibrary_book_titles": 0}
        deadline = time.monotonic() + case.budget_s
        with caplog.at_level(logging.WARNING, logger="elibrary.exporter"):
            families = runner.finish(runner.start(query, deadline), deadline)
        assert [(f.name, f.samples[0].value) for f in families] == [("elibrary_book_titles", 50)]
        assert errors(runner) == {"elibrary_failing": 1, "elibrary_book_titles": 0}
        [line] = [r.__dict__ for r in caplog.records if r.msg == "business query failed"]
        assert (line["query"], line["error_type"]) == ("elibrary_failing", case.error_type)
        assert case.error in line["error"]
        assert runner.last_error("elibrary_failing") == line["error"]
    finally:
        released.set()
        runner.close()
        client.close()


def test_a_query_waiting_for_a_thread_is_given_up_and_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One query thread, held by a run that does not end: the next query never starts.
    released = threading.Event()
    started: list[str] = []

    def query(sql: str, timeout: float) -> Any:
        started.append(sql)
        released.wait(30)
        return ["value"], [(1,)]

    specs = [failing("SELECT 1 AS value"), HEALTHY]
    runner = QueryRunner(specs, threads=1)
    try:
        deadline = time.monotonic() + 0.1
        with caplog.at_level(logging.WARNING, logger="elibrary.exporter"):
            assert runner.finish(runner.start(query, deadline), deadline) == []
        assert errors(runner) == {"elibrary_failing": 1, "elibrary_book_titles": 1}
        reasons = {r.__dict__["query"]: r.__dict__["error"] for r in caplog.records}
        assert reasons["elibrary_book_titles"].endswith("still waiting for a free query thread")
    finally:
        released.set()
        runner.close()
    assert started == ["SELECT 1 AS value"]  # the cancelled one never ran
