"""A scrape always answers 200, against the real MariaDB: a collector that raises fails
alone, a failure outside the collectors or a peer that is not MySQL still gives ``mysql_up``
and the self-metrics, and every error counter has its series from the first scrape."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.core import Metric

from exporter import Exporter, MySQLClient, QueryFailed, load_mysql_target, load_queries
from exporter.config import DEFAULT_QUERIES
from exporter.mysql import SCRAPERS, Query, Scraper
from tests.conftest import free_port
from tests.exporter.conftest import PASSWORD_MARK, LibraryDatabase, RunningExporter
from tests.exporter.test_live import values

pytestmark = pytest.mark.integration

COLLECTORS = [f"collect.{scraper.name}" for scraper in SCRAPERS]
QUERIES = [spec.name for spec in load_queries(DEFAULT_QUERIES)]
BROKEN = "collect.global_variables"


def logged(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields, the extra ones (collector, error_type, …) included."""
    return record.__dict__


def scrape(url: str) -> dict[str, float]:
    answer = requests.get(f"{url}/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    return values(answer.text)


def with_broken_variables(error: Exception) -> tuple[Scraper, ...]:
    """mysqld_exporter's collectors, global_variables replaced by one that raises ``error``
    after a query worked: the failure is the collector's own, not the link's."""

    def collect(query: Query) -> list[Metric]:
        query("SELECT 1")
        raise error

    return tuple(Scraper(s.name, collect) if s.name == "global_variables" else s for s in SCRAPERS)


def exporter_for(library_db: LibraryDatabase, scrapers: tuple[Scraper, ...] = SCRAPERS) -> Exporter:
    client = MySQLClient(load_mysql_target(str(library_db.my_cnf), env={}))
    return Exporter(client, load_queries(DEFAULT_QUERIES), scrapers=scrapers)


@pytest.mark.parametrize(
    ("error", "error_type", "message"),
    [
        (ValueError("could not convert string to float: 'ON '"), "ValueError", None),
        (KeyError("Uptime"), "KeyError", "'Uptime'"),
        (ZeroDivisionError("float division by zero"), "ZeroDivisionError", None),
        (QueryFailed("ProgrammingError 1146: Table 'x' doesn't exist"), "QueryFailed", None),
        (RuntimeError("bad reply near {password}"), "RuntimeError", "bad reply near <password>"),
    ],
    ids=[
        "ValueError",
        "KeyError",
        "ZeroDivisionError",
        "a database error",
        "a message that holds the password",
    ],
)
def test_a_collector_that_raises_fails_alone(
    library_db: LibraryDatabase,
    serve_in_process: Callable[[Exporter], str],
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    error_type: str,
    message: str | None,
) -> None:
    error.args = tuple(str(a).replace("{password}", library_db.password) for a in error.args)
    url = serve_in_process(exporter_for(library_db, with_broken_variables(error)))
    with caplog.at_level(logging.WARNING, logger="elibrary.exporter"):
        scrapes = [scrape(url), scrape(url)]
    for count, got in enumerate(scrapes, start=1):
        assert got[f"mysql_exporter_collector_success{{collector={BROKEN}}}"] == 0
        assert got[f"mysql_exporter_scrape_errors_total{{collector={BROKEN}}}"] == count
        for label in set(COLLECTORS) - {BROKEN}:
            assert got[f"mysql_exporter_collector_success{{collector={label}}}"] == 1
            assert got[f"mysql_exporter_scrape_errors_total{{collector={label}}}"] == 0
        assert got["mysql_exporter_scrape_errors_total{collector=connection}"] == 0
        assert got["mysql_up"] == 1 and got["mysql_exporter_last_scrape_error"] == 1
        assert "mysql_global_variables_max_connections" not in got
        assert got["mysql_global_status_uptime"] > 0  # the other collectors still report
        assert got["elibrary_book_titles"] == 50  # and the business queries
    lines = [logged(r) for r in caplog.records if r.getMessage() == "collector failed"]
    assert [(line["collector"], line["error_type"]) for line in lines] == [(BROKEN, error_type)] * 2
    assert lines[0]["error"] == (message or str(error))
    if not isinstance(error, QueryFailed):  # a bug: the line says where it was raised
        assert "test_collector.py" in lines[0]["raised_at"]
    assert library_db.password not in repr([logged(r) for r in caplog.records])


def test_every_error_counter_is_0_on_the_first_scrape(
    library_db: LibraryDatabase, start_exporter: Callable[..., RunningExporter]
) -> None:
    got = values(start_exporter(library_db.my_cnf).scrape())
    collector_errors = {k: v for k, v in got.items() if k.startswith("mysql_exporter_scrape_err")}
    assert collector_errors == {
        f"mysql_exporter_scrape_errors_total{{collector={label}}}": 0
        for label in ["connection", *COLLECTORS]
    }
    query_errors = {k: v for k, v in got.items() if k.startswith("elibrary_exporter_query_err")}
    assert query_errors == {
        f"elibrary_exporter_query_errors_total{{query={name}}}": 0 for name in QUERIES
    }


def test_error_counters_exist_when_mysql_is_down_from_the_first_scrape(
    start_exporter: Callable[..., RunningExporter], tmp_path: Path
) -> None:
    my_cnf = tmp_path / "my.cnf"
    my_cnf.write_text(
        f"[client]\nuser=exporter\nhost=127.0.0.1\nport={free_port()}\ndatabase=elibrary\n"
    )
    got = values(start_exporter(my_cnf).scrape())
    assert got["mysql_up"] == 0
    assert got["mysql_exporter_scrape_errors_total{collector=connection}"] == 1
    for label in COLLECTORS:
        assert got[f"mysql_exporter_scrape_errors_total{{collector={label}}}"] == 0
    for name in QUERIES:
        assert got[f"elibrary_exporter_query_errors_total{{query={name}}}"] == 0


@pytest.fixture
def not_mysql() -> Iterator[int]:
    """A port whose server greets every connection with a truncated MySQL handshake, on
    which pymysql raises struct.error, not one of its own errors."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def greet() -> None:
        while not stopping.is_set():
            try:
                peer, _ = listener.accept()
            except TimeoutError:
                continue
            with peer:
                # length 5, sequence 0, protocol 10, then a version string that never ends
                peer.sendall(bytes.fromhex("050000000affffffff"))

    thread = threading.Thread(target=greet, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stopping.set()
    thread.join(5)
    listener.close()


def test_a_peer_that_is_not_mysql_is_a_failed_connection_not_a_crash(
    not_mysql: int, start_exporter: Callable[..., RunningExporter], tmp_path: Path
) -> None:
    my_cnf = tmp_path / "my.cnf"
    my_cnf.write_text(
        f"[client]\nuser=exporter\npassword={PASSWORD_MARK}peer\nhost=127.0.0.1\n"
        f"port={not_mysql}\ndatabase=elibrary\n"
    )
    exporter = start_exporter(my_cnf)  # the start-up check meets the same greeting
    for count in (1, 2):
        got = values(exporter.scrape())
        assert got["mysql_up"] == 0 and got["mysql_exporter_last_scrape_error"] == 1
        assert got["mysql_exporter_scrape_errors_total{collector=connection}"] == count
    log = exporter.log.read_text()
    assert "struct.error" in log and PASSWORD_MARK not in log
    assert exporter.process.poll() is None


def test_a_failure_outside_the_collectors_still_answers_with_the_self_metrics(
    library_db: LibraryDatabase,
    serve_in_process: Callable[[Exporter], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = exporter_for(library_db)
    url = serve_in_process(exporter)
    # as when a scrape races shut-down: the query threads are gone, the link to MySQL works
    exporter.runner.close()
    with caplog.at_level(logging.WARNING, logger="elibrary.exporter"):
        got = scrape(url)
    assert got["mysql_up"] == 1 and got["mysql_exporter_last_scrape_error"] == 1
    assert got["mysql_exporter_scrapes_total"] == 1
    assert got["elibrary_exporter_queries_enabled"] == 1
    for label in ["connection", *COLLECTORS]:
        assert got[f"mysql_exporter_scrape_errors_total{{collector={label}}}"] == 0
    for name in QUERIES:
        assert got[f"elibrary_exporter_query_errors_total{{query={name}}}"] == 0
    [line] = [logged(r) for r in caplog.records if r.levelno == logging.ERROR]
    assert line["msg"] == "scrape failed outside the collectors"
    assert line["error_type"] == "RuntimeError"
    assert line["error"] == "cannot schedule new futures after shutdown"
    assert line["raised_at"].endswith(" in submit")
