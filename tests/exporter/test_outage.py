"""MySQL dies and comes back: scrapes keep answering, then recover without a restart.

The test starts its own MariaDB (temporary data directory, free port) so it can kill and
restart it; the shared server is never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import OwnMariaDB
from tests.exporter.conftest import RunningExporter, exporter_on
from tests.exporter.test_live import values

pytestmark = pytest.mark.integration


def test_mysql_down_then_back(
    own_mariadb: OwnMariaDB, start_exporter: Callable[..., RunningExporter], tmp_path: Path
) -> None:
    my_cnf, queries = exporter_on(own_mariadb, tmp_path)
    exporter = start_exporter(my_cnf, "--queries", str(queries))
    assert values(exporter.scrape())["mysql_up"] == 1

    own_mariadb.kill()
    started = time.monotonic()
    down = values(exporter.scrape({"X-Prometheus-Scrape-Timeout-Seconds": "5"}))
    assert time.monotonic() - started < 5
    assert down["mysql_up"] == 0
    assert down["mysql_exporter_last_scrape_error"] == 1
    assert down["mysql_exporter_scrape_errors_total{collector=connection}"] == 1
    assert "elibrary_probe" not in down

    own_mariadb.start()
    back = values(exporter.scrape())
    assert back["mysql_up"] == 1
    assert back["mysql_exporter_last_scrape_error"] == 0
    assert back["elibrary_probe"] == 1
    assert exporter.process.poll() is None  # the same process throughout


def test_an_authentication_method_pymysql_cannot_speak_is_a_failed_scrape_not_a_crash(
    own_mariadb: OwnMariaDB, start_exporter: Callable[..., RunningExporter], tmp_path: Path
) -> None:
    # The same failure as caching_sha2_password over plain TCP on MySQL 8 without the
    # cryptography package: pymysql raises RuntimeError, not a database error.
    my_cnf, queries = exporter_on(own_mariadb, tmp_path)
    with own_mariadb.admin().cursor() as cursor:
        cursor.execute("INSTALL SONAME 'auth_ed25519'")
        cursor.execute(
            "ALTER USER 'exporter'@'127.0.0.1' "
            "IDENTIFIED VIA ed25519 USING PASSWORD('own-server-pw')"
        )
    exporter = start_exporter(my_cnf, "--queries", str(queries))
    for _ in range(2):
        got = values(exporter.scrape())
        assert got["mysql_up"] == 0
        assert got["mysql_exporter_last_scrape_error"] == 1
    assert got["mysql_exporter_scrape_errors_total{collector=connection}"] == 2
    log = exporter.log.read_text()
    assert "ed25519" in log and "own-server-pw" not in log
    assert exporter.process.poll() is None
