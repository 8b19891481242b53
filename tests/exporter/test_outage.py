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
from tests.exporter.conftest import RunningExporter, grant_exporter
from tests.exporter.test_live import values

pytestmark = pytest.mark.integration


def test_mysql_down_then_back(
    own_mariadb: OwnMariaDB, start_exporter: Callable[..., RunningExporter], tmp_path: Path
) -> None:
    admin = own_mariadb.admin()
    with admin.cursor() as cursor:
        cursor.execute("CREATE DATABASE elibrary")
    grant_exporter(admin, "exporter", "outage-test-pw", "elibrary")
    admin.close()
    my_cnf = tmp_path / "my.cnf"
    my_cnf.write_text(
        f"[client]\nuser=exporter\npassword=outage-test-pw\nhost=127.0.0.1\n"
        f"port={own_mariadb.port}\ndatabase=elibrary\n"
    )
    queries = tmp_path / "q.yaml"
    queries.write_text(
        "queries:\n  - {name: elibrary_probe, help: P., type: gauge, sql: SELECT 1 AS value}\n"
    )
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
