"""Replica status on a real replica: two MariaDBs of the test's own, one replicating the other.

Both this exporter and the real mysqld_exporter scrape the replica; the
``mysql_slave_status_*`` families must agree, and a stopped applier must show.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pymysql
import pytest
import requests

from sre.names import STATE_SERIES, TARGET_LABELS
from tests.conftest import free_port, require_tool, running_own_mariadb, stop, wait_until_ready
from tests.exporter.conftest import RunningExporter, exporter_on
from tests.exporter.test_live import families, values

pytestmark = pytest.mark.integration


def _replica_state(admin: pymysql.connections.Connection) -> dict[str, object]:
    with admin.cursor(pymysql.cursors.DictCursor) as cursor:
        cursor.execute("SHOW SLAVE STATUS")
        row = cursor.fetchone()
    return dict(row or {})


def _wait_for(admin: pymysql.connections.Connection, io: str, sql: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = _replica_state(admin)
        if (state.get("Slave_IO_Running"), state.get("Slave_SQL_Running")) == (io, sql):
            return
        time.sleep(0.2)
    raise AssertionError(f"replica did not reach IO={io} SQL={sql}: {state}")


def test_replica_status_matches_mysqld_exporter(
    tmp_path: Path, start_exporter: Callable[..., RunningExporter]
) -> None:
    reference_binary = require_tool("prometheus-mysqld-exporter", "prometheus-mysqld-exporter")
    (tmp_path / "primary").mkdir()
    (tmp_path / "replica").mkdir()
    with (
        running_own_mariadb(
            tmp_path / "primary", "--log-bin=primary-bin", "--server-id=1"
        ) as primary,
        running_own_mariadb(
            tmp_path / "replica", "--server-id=2", "--relay-log=replica-relay"
        ) as replica,
    ):
        with primary.admin().cursor() as cursor:
            cursor.execute("CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl-pw'")
            cursor.execute("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'")
        admin = replica.admin()
        with admin.cursor() as cursor:
            cursor.execute(
                "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, "
                "MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=slave_pos",
                (primary.port,),
            )
            cursor.execute("START SLAVE")
        _wait_for(admin, "Yes", "Yes")
        with primary.admin().cursor() as cursor:
            cursor.execute("CREATE DATABASE replicated")  # proves the link carries data
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with admin.cursor() as cursor:
                if cursor.execute("SHOW DATABASES LIKE 'replicated'"):
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("the replica never received the primary's change")

        my_cnf, queries = exporter_on(replica, tmp_path)
        ours = start_exporter(my_cnf, "--queries", str(queries))
        port = free_port()
        reference = subprocess.Popen(
            [
                reference_binary,
                f"--config.my-cnf={my_cnf}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=(tmp_path / "reference.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/metrics", reference)
            theirs_text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        finally:
            stop(reference)
        ours_text = ours.scrape()

        def replica_families(text: str) -> dict[str, tuple[str, frozenset[str]]]:
            return {
                name: shape
                for name, shape in families(text).items()
                if name.startswith("mysql_slave_status_")
            }

        theirs = replica_families(theirs_text)
        assert len(theirs) > 20  # the reference really saw a replica
        assert replica_families(ours_text) == theirs

        # The names check counts these series as proven by this test: prove them here.
        shapes = families(ours_text)
        for name, known in STATE_SERIES.items():
            if "test_replica.py" in known.source:
                assert name in shapes, f"{name} is listed as proven on a replica but not exported"
                assert shapes[name][1] == known.labels - TARGET_LABELS, name

        got, expected = values(ours_text), values(theirs_text)
        for column in ("slave_io_running", "slave_sql_running", "master_server_id"):
            key = next(k for k in expected if k.startswith(f"mysql_slave_status_{column}{{"))
            assert got[key] == expected[key]
            assert "master_host=127.0.0.1" in key
        assert got[next(k for k in got if "slave_sql_running{" in k)] == 1

        with admin.cursor() as cursor:
            cursor.execute("STOP SLAVE SQL_THREAD")
        _wait_for(admin, "Yes", "No")
        stopped = values(ours.scrape())
        assert stopped[next(k for k in stopped if "slave_sql_running{" in k)] == 0
        assert stopped[next(k for k in stopped if "slave_io_running{" in k)] == 1
        admin.close()
