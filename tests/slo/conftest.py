"""Fixtures of the SLO tests: a real SMTP server (aiosmtpd) on loopback, and its TLS certificate."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sre.stack import free_port
from tests.conftest import IN_CI, require_tool

#: the one password the test SMTP server accepts (user "reporter")
PASSWORD = "c0rrect-h0rse-battery-staple"


def _aiosmtpd() -> Any:
    """The aiosmtpd package: skipped without it, failed in CI."""
    try:
        import aiosmtpd.controller
        import aiosmtpd.smtp
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"aiosmtpd is required in CI (pip install -e .[dev]): {exc}")
        pytest.skip("aiosmtpd is not installed")
    return aiosmtpd


class Inbox:
    """An aiosmtpd handler keeping every envelope it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.logins: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        smtp = _aiosmtpd().smtp
        self.logins.append(getattr(auth_data, "login", b""))
        good = isinstance(auth_data, smtp.LoginPassword) and (
            auth_data.login == b"reporter" and auth_data.password == PASSWORD.encode()
        )
        return smtp.AuthResult(success=good, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 and its key."""
    openssl = require_tool("openssl", "openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[Inbox, int]]]:
    """Starts an aiosmtpd server on a free loopback port; stopped after the test."""
    controller_module = _aiosmtpd().controller
    running: list[Any] = []

    def start(**options: Any) -> tuple[Inbox, int]:
        inbox, port = Inbox(), free_port()
        if options.pop("login", False):
            options |= {"authenticator": inbox.authenticate, "auth_required": True}
        controller = controller_module.Controller(inbox, hostname="127.0.0.1", port=port, **options)
        controller.start()
        running.append(controller)
        return inbox, port

    yield start
    for controller in running:
        controller.stop()
