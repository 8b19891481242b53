"""Fixtures shared by every component's tests: real databases and real servers.

MariaDB is the one at ``SRE_TEST_MYSQL`` (default ``root@127.0.0.1:3306``); each test gets
its own database, dropped afterwards. Without the server the MySQL cases skip, except
under ``CI=true`` where a missing dependency is a failure.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml

# Process helpers live with the reusable stack harness (sre/stack.py); tests use the same.
from sre.stack import binary, free_port
from sre.stack import stop_process as stop
from sre.stack import wait_http as wait_until_ready

IN_CI = os.environ.get("CI", "").lower() == "true"
MYSQL_HOST = os.environ.get("SRE_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("SRE_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("SRE_TEST_MYSQL_USER", "root")
#: the host part of the users tests create on that server: where it sees the tests connect
#: from (a container's port mapping shows the Docker gateway instead: CI sets '%')
MYSQL_CLIENT_HOST = os.environ.get("SRE_TEST_MYSQL_CLIENT_HOST", "127.0.0.1")
REPO = Path(__file__).resolve().parent.parent
SRE = str(Path(sys.executable).parent / "sre")


def mysql_admin() -> pymysql.connections.Connection:
    return pymysql.connect(
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        user=MYSQL_USER,
        password="",
        connect_timeout=3,
        autocommit=True,
    )


def require_mysql() -> None:
    """Skip without MariaDB, or fail in CI where it must be there."""
    try:
        mysql_admin().close()
    except pymysql.err.MySQLError as exc:
        if IN_CI:
            pytest.fail(f"MariaDB at {MYSQL_HOST}:{MYSQL_PORT} is required in CI: {exc}")
        pytest.skip(f"MariaDB at {MYSQL_HOST}:{MYSQL_PORT} is not running")


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh, empty MariaDB database for one test."""
    require_mysql()
    name = f"sre_test_{secrets.token_hex(4)}"
    admin = mysql_admin()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    try:
        yield f"mysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


@pytest.fixture(params=["sqlite", "mysql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes this runs once on SQLite and once on MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'library.sqlite3'}"
    return str(request.getfixturevalue("mysql_url"))


@pytest.fixture
def launch() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a server process logging to a file, wait until ready_url answers 200; every
    process started is stopped when the test ends, failed or not."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(
        argv: list[str], log: Path, ready_url: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        processes.append(process)
        wait_until_ready(ready_url, process)
        return process

    yield start
    for process in processes:
        stop(process)


MARIADBD = "/usr/sbin/mariadbd"


@dataclass
class OwnMariaDB:
    datadir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    #: more server options, such as --ssl-cert
    options: tuple[str, ...] = ()

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
                *self.options,
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


@contextmanager
def running_own_mariadb(directory: Path, *options: str) -> Iterator[OwnMariaDB]:
    """A MariaDB of the test's own in ``directory`` on a free port, stopped afterwards."""
    if not (os.access(MARIADBD, os.X_OK) and shutil.which("mariadb-install-db")):
        if IN_CI:
            pytest.fail("mariadbd and mariadb-install-db are required in CI")
        pytest.skip("MariaDB server binaries are not installed")
    datadir = directory / "mariadb"
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
    server = OwnMariaDB(datadir, free_port(), options=options)
    server.start()
    try:
        yield server
    finally:
        if server.process and server.process.poll() is None:
            server.process.terminate()
            server.process.wait(20)


@pytest.fixture
def own_mariadb(tmp_path: Path) -> Iterator[OwnMariaDB]:
    with running_own_mariadb(tmp_path) as server:
        yield server


def monitoring_binaries() -> dict[str, str]:
    """Prometheus and Alertmanager (Debian's packages): skipped without them, failed in CI."""
    try:
        return {
            "prometheus": binary("prometheus"),
            "alertmanager": binary("prometheus-alertmanager"),
        }
    except RuntimeError as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def require_tool(name: str, package: str) -> str:
    """The path of a program the test needs: skipped without it, failed in CI."""
    found = shutil.which(name)
    if found is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI (Debian package {package})")
        pytest.skip(f"{name} is not installed")
    return found


def lint_tool(name: str, package: str) -> str:
    """A check program installed from a wheel: ``$SRE_<NAME>`` if set, else the one in this
    venv (or in scripts/setup's ``.venv-checkov`` for checkov), else PATH's; skipped without
    it, failed in CI."""
    override = os.environ.get("SRE_" + name.upper().replace("-", "_"))
    candidates = [
        override,
        Path(sys.executable).parent / name,
        REPO / ".venv-checkov" / "bin" / name,
        shutil.which(name),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    if IN_CI:
        pytest.fail(f"{name} is required in CI (pip package {package}; ./scripts/setup)")
    pytest.skip(f"{name} is not installed (pip package {package}; ./scripts/setup)")


def checkov_report(target: list[str], *extra: str) -> dict[str, Any]:
    """checkov's JSON report on ``target`` (``--framework F -f FILE`` or ``-d DIR``), run
    from the repository without reaching Prisma Cloud."""
    done = subprocess.run(
        [lint_tool("checkov", "checkov"), *target, "--skip-download", "-o", "json", *extra],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert isinstance(report, dict), "one framework gives one report"
    return report


def assert_checkov_clean(target: list[str], skips_file: Path, id_pattern: str) -> None:
    """Nothing fails but the checks ``skips_file`` lists, each with a reason (``- id: …,
    reason: …``) and each still failing without its skip (else the skip is stale)."""
    skips = yaml.safe_load(skips_file.read_text(encoding="utf-8")) or []
    assert isinstance(skips, list)
    for skip in skips:
        assert set(skip) == {"id", "reason"}, skip
        assert re.fullmatch(id_pattern, skip["id"]), skip
        assert len(str(skip["reason"]).split()) >= 5, f"{skip['id']}: say why"
    ids = [skip["id"] for skip in skips]
    assert len(ids) == len(set(ids))
    report = checkov_report(target, *(["--skip-check", ",".join(ids)] if ids else []))
    failed = [
        f"{c['check_id']} {c['file_path']}:{c['file_line_range']} {c['check_name']}"
        for c in report["results"].get("failed_checks", [])
    ]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0
    if ids:
        failing = {c["check_id"] for c in checkov_report(target)["results"]["failed_checks"]}
        assert set(ids) <= failing, f"stale skips: {sorted(set(ids) - failing)}"


@dataclass(frozen=True)
class Cgroup:
    """A cgroup of the test's own: ``prefix`` runs a command inside it."""

    folders: tuple[Path, ...]

    @property
    def prefix(self) -> list[str]:
        procs = [str(folder / "cgroup.procs") for folder in self.folders]
        # the shell moves itself in, then becomes the command: every child inherits it
        script = "for f in " + " ".join(procs) + '; do echo $$ > "$f" || exit 97; done; exec "$@"'
        return ["sh", "-c", script, "sh"]


@contextmanager
def limited_cgroup(cpu_cores: float, memory_bytes: int) -> Iterator[Cgroup]:
    """A cgroup (v2, else v1) limited to ``cpu_cores`` and ``memory_bytes``, removed after.

    Needs root and a writable cgroup filesystem; skipped without them, failed in CI.
    Processes started inside must be stopped before the block ends.
    """
    name = f"sre-test-{secrets.token_hex(4)}"
    root = Path("/sys/fs/cgroup")
    quota = int(cpu_cores * 100_000)
    if (root / "cgroup.controllers").exists():  # the unified hierarchy
        settings = {root / name: {"cpu.max": f"{quota} 100000", "memory.max": str(memory_bytes)}}
    else:
        settings = {
            root / "cpu" / name: {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": str(quota)},
            root / "memory" / name: {"memory.limit_in_bytes": str(memory_bytes)},
        }
    made: list[Path] = []
    try:
        for folder, values in settings.items():
            folder.mkdir()
            made.append(folder)
            for key, value in values.items():
                (folder / key).write_text(value)
    except OSError as exc:
        for folder in made:
            folder.rmdir()
        if IN_CI:
            pytest.fail(f"a cgroup with CPU and memory limits is required in CI: {exc}")
        pytest.skip(f"cannot make a cgroup here: {exc}")
    try:
        yield Cgroup(tuple(made))
    finally:
        for folder in made:
            deadline = time.monotonic() + 10
            while True:  # the last process may take a moment to leave
                try:
                    folder.rmdir()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite golden files (testdata/out-*) from what the code generates now.",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite golden files instead of comparing."""
    return bool(request.config.getoption("--update-golden"))
