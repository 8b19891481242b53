"""The link to MySQL over TLS, against a MariaDB of the test's own that requires it.

The server gets a certificate from a throwaway CA (openssl), for 127.0.0.1 only; one
user must come over TLS and another must show a client certificate. Each ssl-mode then
connects, or fails with a message that says why, exactly as the MySQL client would.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from exporter.config import ConfigError, MySQLTarget, TLSSettings
from exporter.db import MySQLClient, QueryFailed, tls_context
from tests.conftest import (
    MYSQL_HOST,
    MYSQL_PORT,
    SRE,
    OwnMariaDB,
    require_tool,
    running_own_mariadb,
)
from tests.exporter.conftest import PASSWORD_MARK

pytestmark = pytest.mark.integration

PASSWORD = PASSWORD_MARK + "tls"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    #: a CA that signed nothing here
    other_ca: Path


def _make_certificates(directory: Path) -> Certificates:
    openssl = require_tool("openssl", "openssl")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    for ca in ("ca", "other-ca"):
        run(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN=test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
        )  # fmt: skip
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for party, extension in (("server", ["-extfile", "server.ext"]), ("client", [])):
        run(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={party}",
            "-keyout", f"{party}.key", "-out", f"{party}.csr",
        )  # fmt: skip
        run(
            "x509", "-req", "-in", f"{party}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{party}.pem", *extension,
        )  # fmt: skip
    return Certificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )


@dataclass(frozen=True)
class TLSServer:
    server: OwnMariaDB
    certs: Certificates

    def target(self, user: str, **tls: object) -> MySQLTarget:
        return MySQLTarget(
            host="127.0.0.1",
            port=self.server.port,
            user=user,
            password=PASSWORD,
            tls=TLSSettings(**tls),  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    directory = tmp_path_factory.mktemp("tls")
    certs = _make_certificates(directory)
    with running_own_mariadb(
        directory,
        f"--ssl-ca={certs.ca}",
        f"--ssl-cert={certs.server_cert}",
        f"--ssl-key={certs.server_key}",
    ) as server:
        admin = server.admin()
        with admin.cursor() as cursor:
            for user, requirement in (("over_tls", "SSL"), ("with_cert", "X509")):
                cursor.execute(
                    f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s REQUIRE {requirement}",
                    (PASSWORD,),
                )
        admin.close()
        yield TLSServer(server, certs)


def _cipher(target: MySQLTarget) -> str:
    client = MySQLClient(target, connect_timeout_s=5)
    try:
        with client.connection() as conn:
            _, rows = conn.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'", 5)
        return str(rows[0][1])
    finally:
        client.close()


@pytest.mark.parametrize(
    ("user", "tls"),
    [
        ("over_tls", {}),
        ("over_tls", {"mode": "REQUIRED"}),
        ("over_tls", {"mode": "VERIFY_CA", "ca": "ca"}),
        ("over_tls", {"mode": "VERIFY_IDENTITY", "ca": "ca"}),
        ("with_cert", {"mode": "VERIFY_CA", "ca": "ca", "cert": "client", "key": "client"}),
    ],
    ids=["preferred by default", "required", "verify CA", "verify identity", "client cert"],
)
def test_modes_that_connect_encrypt_the_link(
    tls_server: TLSServer, user: str, tls: dict[str, str]
) -> None:
    certs = tls_server.certs
    files = {"ca": certs.ca, "cert": certs.client_cert, "key": certs.client_key}
    settings = {k: (v if k == "mode" else str(files[k])) for k, v in tls.items()}
    assert _cipher(tls_server.target(user, **settings)) != ""


@pytest.mark.parametrize(
    ("user", "host", "tls", "message"),
    [
        ("over_tls", "127.0.0.1", {"mode": "DISABLED"}, "OperationalError 1045"),
        ("over_tls", "127.0.0.1", {"mode": "VERIFY_CA", "ca": "other_ca"}, "certificate verify"),
        ("over_tls", "localhost", {"mode": "VERIFY_IDENTITY", "ca": "ca"}, "certificate verify"),
        ("with_cert", "127.0.0.1", {"mode": "VERIFY_CA", "ca": "ca"}, "OperationalError 1045"),
    ],
    ids=["disabled is refused", "wrong CA", "name mismatch", "no client cert"],
)
def test_modes_that_must_fail_say_why(
    tls_server: TLSServer, user: str, host: str, tls: dict[str, str], message: str
) -> None:
    certs = tls_server.certs
    files = {"ca": certs.ca, "other_ca": certs.other_ca}
    settings = {k: (v if k == "mode" else str(files[v])) for k, v in tls.items()}
    target = replace(tls_server.target(user, **settings), host=host)
    with pytest.raises(QueryFailed) as caught:
        _cipher(target)
    assert message in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_required_against_a_server_without_tls_says_so() -> None:
    target = MySQLTarget(
        host=MYSQL_HOST, port=MYSQL_PORT, user="root", tls=TLSSettings(mode="REQUIRED")
    )
    with pytest.raises(QueryFailed, match="TLS: SSL is required but the server doesn't support"):
        _cipher(target)


def test_connections_share_one_context(tls_server: TLSServer) -> None:
    client = MySQLClient(tls_server.target("over_tls"), connect_timeout_s=5)
    try:
        with client.connection() as first, client.connection() as second:
            contexts = {id(first._raw.ctx), id(second._raw.ctx)}
        assert len(contexts) == 1
    finally:
        client.close()


def test_unloadable_files_are_named(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as caught:
        tls_context(TLSSettings(mode="VERIFY_CA", ca=str(not_pem)))
    assert str(caught.value).startswith(f"{not_pem}: ssl-ca: cannot be loaded")
    assert tls_context(TLSSettings(mode="DISABLED")) is None


def test_check_command_reports_a_failed_verification(tls_server: TLSServer, tmp_path: Path) -> None:
    my_cnf = tmp_path / "my.cnf"
    my_cnf.write_text(
        f"[client]\nuser=over_tls\npassword={PASSWORD}\nhost=127.0.0.1\n"
        f"port={tls_server.server.port}\nssl-ca={tls_server.certs.other_ca}\n"
        "database=mysql\n"  # complete, so that only the link can fail
    )
    done = subprocess.run(
        [SRE, "exporter", "check", "--my-cnf", str(my_cnf)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 1, done.stderr
    assert "certificate verify failed" in done.stderr
    assert PASSWORD not in done.stderr + done.stdout


@pytest.mark.parametrize("command", ["check", "serve"])
def test_an_unloadable_ca_stops_the_command_with_exit_2(tmp_path: Path, command: str) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    my_cnf = tmp_path / "my.cnf"
    my_cnf.write_text(f"[client]\nuser=x\nhost=127.0.0.1\nssl-ca={not_pem}\n")
    done = subprocess.run(
        [SRE, "exporter", command, "--my-cnf", str(my_cnf)],
        capture_output=True,
        text=True,
        timeout=30,  # a serve that started despite the bad file would hang here
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {not_pem}: ssl-ca: cannot be loaded")
