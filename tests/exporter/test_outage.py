"""MySQL dies and comes back: scrapes keep answering, then recover without a restart.

The test starts its own MariaDB (temporary data directory, free port) so it can kill and
restart it; the shared server is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from tests.conftest import IN_CI, free_port
from tests.exporter.conftest import RunningExporter, grant_exporter
from tests.exporter.test_live import values

pytestmark = pytest.mark.integration

MARIADBD = "/usr/sbin/mariadbd"


@dataclass
class OwnMariaDB:
    datadir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                MARIADBD,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.datadir}/sock",
                f"--pid-file={self.datadir}/pid",
                "--user=root",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
                f"--log-error={self.datadir}/error.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                pymysql.connect(
                    unix_socket=f"{self.datadir}/sock", user="root", connect_timeout=1
                ).close()
                return
            except pymysql.err.MySQLError:
                time.sleep(0.1)
        raise RuntimeError("own MariaDB did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def admin(self) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=f"{self.datadir}/sock", user="root", autocommit=True)


@pytest.fixture
def own_mariadb(tmp_path: Path) -> Iterator[OwnMariaDB]:
    if not (os.access(MARIADBD, os.X_OK) and shutil.which("mariadb-install-db")):
        if IN_CI:
            pytest.fail("mariadbd and mariadb-install-db are required in CI")
        pytest.skip("MariaDB server binaries are not installed")
    datadir = tmp_path / "mariadb"
    subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
            "--user=root",
        ],
        check=True,
        capture_output=True,
    )
    server = OwnMariaDB(datadir, free_port())
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.process.terminate()
        server.process.wait(20)


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
