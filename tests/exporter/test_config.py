"""The queries file and MySQL credentials: every bad input names file, entry and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import (
    DEFAULT_QUERIES,
    ConfigError,
    MySQLTarget,
    database_advice,
    load_mysql_target,
    load_queries,
    missing_database,
    parse_duration,
)

BAD = sorted((Path(__file__).parent / "testdata" / "bad").glob("*.yaml"))


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_query_files_give_the_expected_error(path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# error: ")
    with pytest.raises(ConfigError) as caught:
        load_queries(path)
    assert str(caught.value) == f"{path}: {expected}"


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(
        "queries:\n"
        "  - {name: 'bad name', help: A., type: gauge, sql: SELECT 1 AS value}\n"
        "  - {name: elibrary_b, help: B., type: gauge, sql: SELECT 1 AS value, cache: forever}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_queries(path)
    lines = str(caught.value).splitlines()
    assert lines == [
        f"{path}: queries[0].name: 'bad name' is not a valid Prometheus metric name",
        f"{path}: queries[1].cache: 'forever' is not a duration such as 500ms, 5s or 2m",
    ]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load_queries(tmp_path / "nope.yaml")


def test_the_shipped_queries_load() -> None:
    specs = load_queries(DEFAULT_QUERIES)
    names = {s.name for s in specs}
    assert {
        "elibrary_book_copies",
        "elibrary_loans_overdue",
        "elibrary_members",
        "elibrary_loans_oldest_overdue_age_seconds",
        "elibrary_loans_active",
        "elibrary_loans_created_last_hour",
        "elibrary_book_titles",
        "elibrary_backup_last_success_timestamp_seconds",
    } == names
    assert all(s.name.startswith("elibrary_") for s in specs)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("250ms", 0.25), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), ("1d", 86400.0), (3, 3.0)],
    ids=["milliseconds", "seconds", "minutes", "hours", "days", "bare number"],
)
def test_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


def test_my_cnf_is_read_like_the_mysql_client(tmp_path: Path) -> None:
    cnf = tmp_path / "my.cnf"
    cnf.write_text(
        '[client]\nuser = exporter\npassword = "s3cret"\nhost=db.local\n'
        "port=3307\ndatabase=elibrary\n"
    )
    target = load_mysql_target(str(cnf), env={})
    assert (target.user, target.password, target.host, target.port, target.database) == (
        "exporter",
        "s3cret",
        "db.local",
        3307,
        "elibrary",
    )
    assert "s3cret" not in repr(target)


@pytest.mark.parametrize(
    ("file_says", "env", "database"),
    [
        ("", {}, None),
        ("", {"SRE_MYSQL_DATABASE": "elibrary"}, "elibrary"),
        ("database=library\n", {"SRE_MYSQL_DATABASE": "elibrary"}, "library"),
        ("database=library\n", {}, "library"),
    ],
    ids=[
        "mysqld_exporter's file: no database",
        "the environment completes the file",
        "the file wins over the environment",
        "the file alone",
    ],
)
def test_the_database_of_a_my_cnf(
    tmp_path: Path, file_says: str, env: dict[str, str], database: str | None
) -> None:
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\nuser=exporter\npassword=pw\nhost=db\n" + file_says)
    target = load_mysql_target(str(cnf), env=env)
    assert (target.database, target.options_file) == (database, str(cnf))


@pytest.mark.parametrize(
    ("target", "advice", "error"),
    [
        (
            MySQLTarget(user="x", options_file="/etc/exporter.my.cnf"),
            "add database=<schema> under [client] in /etc/exporter.my.cnf, "
            "or set SRE_MYSQL_DATABASE=<schema>",
            "/etc/exporter.my.cnf: [client].database: is missing: the business queries need a "
            "schema (add database=<schema> there, or set SRE_MYSQL_DATABASE=<schema>)",
        ),
        (
            MySQLTarget(user="x"),
            "set SRE_MYSQL_DATABASE=<schema>",
            "environment: SRE_MYSQL_DATABASE: is not set: the business queries need a schema",
        ),
    ],
    ids=["from a my.cnf", "from the environment"],
)
def test_a_missing_database_says_where_to_name_it(
    target: MySQLTarget, advice: str, error: str
) -> None:
    assert database_advice(target) == advice
    assert str(missing_database(target)) == error


def test_redact_blanks_out_the_password() -> None:
    target = MySQLTarget(user="x", password="s3cret")
    assert target.redact("near 's3cret' and s3cret") == "near '<password>' and <password>"
    assert MySQLTarget(user="x").redact("no password to hide") == "no password to hide"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[mysqld]\nuser=x\n", "[client]: section is missing"),
        ("[client]\npassword=x\n", "[client].user: is required"),
        ("[client]\nuser=x\nport=http\n", "[client].port: must be a port number"),
        ("not an ini file", "is not an INI file"),
    ],
    ids=["no client section", "no user", "port not a number", "not INI"],
)
def test_bad_my_cnf_files(tmp_path: Path, text: str, message: str) -> None:
    cnf = tmp_path / "my.cnf"
    cnf.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_mysql_target(str(cnf), env={})
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(cnf))


def test_credentials_from_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    target = load_mysql_target(
        None,
        env={
            "SRE_MYSQL_USER": "exp",
            "SRE_MYSQL_PASSWORD_FILE": str(secret),
            "SRE_MYSQL_PORT": "3310",
        },
    )
    assert (target.user, target.password, target.port) == ("exp", "from-file", 3310)


@pytest.mark.parametrize(
    ("lines", "mode"),
    [
        ("", "PREFERRED"),
        ("ssl-mode = disabled", "DISABLED"),
        ("ssl_mode=REQUIRED", "REQUIRED"),
        ("ssl-ca = {ca}", "VERIFY_CA"),
        ("ssl-mode=VERIFY_IDENTITY\nssl-ca={ca}", "VERIFY_IDENTITY"),
        ("skip-ssl", "DISABLED"),
        ("ssl = 0", "DISABLED"),
        ("ssl-verify-server-cert", "VERIFY_IDENTITY"),
        ("ssl-skip-verfication = true", "REQUIRED"),
        ("ssl-ca={ca}\nssl-cert={ca}\nssl-key={ca}", "VERIFY_CA"),
    ],
    ids=[
        "default",
        "mode disabled",
        "underscore spelling",
        "a CA means verify it",
        "verify identity",
        "MariaDB skip-ssl",
        "MariaDB ssl=0",
        "MariaDB verify-server-cert",
        "mysqld_exporter skip verification",
        "client certificate",
    ],
)
def test_tls_options_read_like_the_mysql_client(tmp_path: Path, lines: str, mode: str) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("a CA bundle")
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\nuser=exporter\n" + lines.format(ca=ca) + "\n")
    assert load_mysql_target(str(cnf), env={}).tls.mode == mode


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            "ssl-mode=sometimes",
            "[client].ssl-mode: must be one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, "
            "VERIFY_IDENTITY, not 'SOMETIMES'",
        ),
        ("ssl-mode=DISABLED\nssl-ca={ca}", "[client].ssl-mode: DISABLED contradicts the ssl-ca"),
        (
            "ssl-mode=VERIFY_CA\nssl-skip-verification",
            "[client].ssl-mode: VERIFY_CA contradicts ssl-skip-verification",
        ),
        ("ssl-cert={ca}", "[client].ssl-key: is required with ssl-cert"),
        ("ssl-ca={ca}.missing", "[client].ssl-ca: cannot read {ca}.missing"),
    ],
    ids=["unknown mode", "disabled with a CA", "verify but skip", "cert without key", "no CA"],
)
def test_contradictory_tls_options_are_refused(tmp_path: Path, lines: str, message: str) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("a CA bundle")
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[client]\nuser=exporter\n" + lines.format(ca=ca) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_mysql_target(str(cnf), env={})
    assert str(caught.value).startswith(f"{cnf}: " + message.format(ca=ca))


def test_tls_options_from_the_environment(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("a CA bundle")
    env = {"SRE_MYSQL_USER": "exp", "SRE_MYSQL_SSL_CA": str(ca)}
    tls = load_mysql_target(None, env=env).tls
    assert (tls.mode, tls.ca) == ("VERIFY_CA", str(ca))
    with pytest.raises(ConfigError, match=r"^environment: SRE_MYSQL_SSL_KEY: is required"):
        load_mysql_target(None, env={**env, "SRE_MYSQL_SSL_CERT": str(ca)})
    with pytest.raises(ConfigError, match=r"^environment: SRE_MYSQL_SSL_MODE: must be one of"):
        load_mysql_target(None, env={**env, "SRE_MYSQL_SSL_MODE": "always"})
