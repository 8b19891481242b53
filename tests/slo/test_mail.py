"""The daily SLO email: the message (pure), then real SMTP servers (aiosmtpd) on loopback,
plain and with STARTTLS and a login, and every failure named without the password."""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from slo.errors import SpecError
from slo.mail import MailError, build_message, read_password, render_html, send_message, subject
from slo.report import FiredAlert, Report, SloReport, WindowBurn, render_table
from sre.stack import free_port
from tests.slo.conftest import PASSWORD, Inbox

DAY = 86400
SENDER = "SLO reports <slo-report@elibrary.example>"
RECIPIENTS = ["oncall@elibrary.example", "lead@elibrary.example"]


def _slo(name: str, objective: float, error_ratio: float | None, **more: Any) -> SloReport:
    return SloReport(
        f"elibrary-{name}", name, "elibrary", objective, 30 * DAY, error_ratio, 0.9, **more
    )


REPORT = Report(
    "http://prometheus:9090",
    datetime(2026, 11, 25, 6, 0, tzinfo=UTC),
    datetime(2026, 11, 26, 6, 0, tzinfo=UTC),
    (
        _slo(
            "requests-availability",
            99.9,
            0.0025,
            windows=(WindowBurn(300, 0.0144, 14.4),),
            alerts=(
                FiredAlert(
                    "ElibraryAvailabilityBudgetBurn",
                    "page",
                    datetime(2026, 11, 25, 10, 1, 2, tzinfo=UTC),
                    datetime(2026, 11, 25, 10, 31, 0, tzinfo=UTC),
                ),
            ),
        ),
        _slo("requests-latency", 95, 0.01, windows=(WindowBurn(300, 0.01, 0.2),)),
        _slo("borrow-availability", 99.5, None),
    ),
)
CALM = replace(REPORT, slos=REPORT.slos[1:])


# --- the message (pure) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("report", "title", "expected"),
    [
        (REPORT, None, "elibrary SLO report 2026-11-26: 3 SLOs, 1 burning budget"),
        (CALM, None, "elibrary SLO report 2026-11-26: 2 SLOs, all within budget"),
        (REPORT, "eLibrary SLO report", "eLibrary SLO report 2026-11-26: 3 SLOs, 1 burning budget"),
        (
            replace(REPORT, slos=(replace(REPORT.slos[0], service="search"), REPORT.slos[1])),
            None,
            "SLO report 2026-11-26: 2 SLOs, 1 burning budget",
        ),
        (
            replace(CALM, slos=CALM.slos[:1]),
            None,
            "elibrary SLO report 2026-11-26: 1 SLO, all within budget",
        ),
    ],
    ids=[
        "one burning SLO of three is counted",
        "no burning SLO says all are within budget",
        "a title given replaces the service name",
        "SLOs of several services get a neutral title",
        "one SLO is singular",
    ],
)  # fmt: skip
def test_subject(report: Report, title: str | None, expected: str) -> None:
    assert subject(report, title) == expected


def test_the_message_is_plain_text_and_html_alternatives_of_the_same_report() -> None:
    message = build_message(REPORT, SENDER, RECIPIENTS, title="eLibrary SLO report")
    assert message["Subject"] == "eLibrary SLO report 2026-11-26: 3 SLOs, 1 burning budget"
    assert message["From"] == SENDER
    assert message["To"] == "oncall@elibrary.example, lead@elibrary.example"
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content() == render_table(REPORT)
    assert html.get_content_type() == "text/html"
    assert html.get_content() == render_html(REPORT, "eLibrary SLO report")
    assert "Date" not in message  # pure: the clock is read when sending


def test_the_html_part_holds_every_table_escaped_and_coloured() -> None:
    html = render_html(REPORT, title="R&D <SRE>")
    assert "<title>R&amp;D &lt;SRE&gt; 2026-11-26: 3 SLOs, 1 burning budget</title>" in html
    for text in (
        "elibrary-requests-availability",
        "99.750%",
        "ElibraryAvailabilityBudgetBurn",
        "2026-11-25 10:01:02Z",
        "14.40",
        "no events",
    ):
        assert f">{text}</td>" in html, text
    assert 'text-align:left;color:#bf8700;font-weight:bold;">burning</td>' in html
    assert "<p>No SLO alert fired.</p>" in render_html(CALM)


@pytest.mark.parametrize(
    ("sender", "recipients", "error"),
    [
        (SENDER, [], "--email-to: at least one recipient is needed"),
        (SENDER, ["oncall"], "--email-to: 'oncall' is not an email address"),
        ("report@x.example\nBcc: all@x.example", RECIPIENTS, "--email-from: "),
    ],
    ids=[
        "no recipient",
        "a recipient without a domain",
        "a header smuggled in with a newline",
    ],
)
def test_bad_addresses_are_bad_input(sender: str, recipients: list[str], error: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_message(REPORT, sender, recipients)
    assert str(caught.value).startswith(error)


def test_the_password_file_loses_its_final_newline_only(tmp_path: Path) -> None:
    path = tmp_path / "smtp-password"
    path.write_text(f" {PASSWORD} \n")
    assert read_password(path) == f" {PASSWORD} "


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "cannot be read: No such file or directory"),
        ("\n", "is empty; it should hold the SMTP password"),
    ],
    ids=["a missing file", "an empty file"],
)
def test_a_bad_password_file_is_named_not_shown(
    tmp_path: Path, content: str | None, error: str
) -> None:
    path = tmp_path / "smtp-password"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SpecError) as caught:
        read_password(path)
    assert str(caught.value) == f"{path}: {error}"


# --- real SMTP servers -------------------------------------------------------------------


def _received(inbox: Inbox) -> EmailMessage:
    (envelope,) = inbox.envelopes
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _tls(cert: Path, key: Path) -> dict[str, Any]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return {"tls_context": context, "require_starttls": True}


@pytest.mark.integration
def test_a_plain_smtp_server_gets_both_parts_for_every_recipient(
    smtp_server: Callable[..., tuple[Inbox, int]],
) -> None:
    inbox, port = smtp_server()
    send_message(build_message(REPORT, SENDER, RECIPIENTS), "127.0.0.1", port, False, None, None)
    assert inbox.envelopes[0].mail_from == "slo-report@elibrary.example"
    assert inbox.envelopes[0].rcpt_tos == RECIPIENTS
    message = _received(inbox)
    assert message["Subject"] == "elibrary SLO report 2026-11-26: 3 SLOs, 1 burning budget"
    assert message["Date"]  # added when sent
    assert message["Message-ID"].endswith("@elibrary.example>")
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == render_table(REPORT)
    assert "ElibraryAvailabilityBudgetBurn</td>" in html.get_content()


@pytest.mark.integration
@pytest.mark.parametrize(
    "excluded",
    [[], ["PLAIN"]],
    ids=["with AUTH PLAIN", "with AUTH LOGIN, the only mechanism offered"],
)
def test_starttls_and_a_login_deliver_without_the_password_showing(
    smtp_server: Callable[..., tuple[Inbox, int]],
    certificate: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    excluded: list[str],
) -> None:
    caplog.set_level("DEBUG")  # aiosmtpd's own log too
    inbox, port = smtp_server(login=True, auth_exclude_mechanism=excluded, **_tls(*certificate))
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    message = build_message(REPORT, SENDER, RECIPIENTS[:1])
    send_message(message, "127.0.0.1", port, True, "reporter", PASSWORD, tls_context=trusted)
    assert inbox.logins == [b"reporter"]
    assert _received(inbox)["To"] == RECIPIENTS[0]
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err + caplog.text


@pytest.mark.integration
@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("wrong password", "the server refuses the login of 'reporter': 535 5.7.8 Authentication credentials invalid"),  # noqa: E501
        ("untrusted certificate", "TLS failed: CERTIFICATE_VERIFY_FAILED"),
        ("no STARTTLS offered", "not supported: STARTTLS extension not supported by server."),
        ("nobody listening", "the server does not answer: Connection refused"),
    ],
    ids=[
        "a refused login names the user, never the password",
        "a certificate the system does not trust stops before the login",
        "STARTTLS asked of a server without it is refused, not skipped",
        "a server that does not answer is named",
    ],
)  # fmt: skip
def test_smtp_failures_name_the_server_and_never_the_password(
    smtp_server: Callable[..., tuple[Inbox, int]],
    certificate: tuple[Path, Path],
    case: str,
    problem: str,
) -> None:
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    password, context = PASSWORD, trusted
    if case == "nobody listening":
        port = free_port()
    elif case == "no STARTTLS offered":
        _, port = smtp_server()
    else:
        _, port = smtp_server(login=True, **_tls(*certificate))
    if case == "wrong password":
        password = PASSWORD[::-1]
    if case == "untrusted certificate":
        context = ssl.create_default_context()
    with pytest.raises(MailError) as caught:
        send_message(
            build_message(REPORT, SENDER, RECIPIENTS),
            "127.0.0.1",
            port,
            True,
            "reporter",
            password,
            tls_context=context,
            timeout_s=10,
        )
    assert str(caught.value) == f"smtp://127.0.0.1:{port}: {problem}"
    assert password not in repr(caught.value) and caught.value.__cause__ is None


@pytest.mark.integration
def test_a_login_asked_of_a_server_without_auth_is_refused(
    smtp_server: Callable[..., tuple[Inbox, int]],
) -> None:
    inbox, port = smtp_server()
    with pytest.raises(MailError) as caught:
        send_message(
            build_message(REPORT, SENDER, RECIPIENTS), "127.0.0.1", port, False, "u", PASSWORD
        )
    assert (
        str(caught.value)
        == f"smtp://127.0.0.1:{port}: not supported: the server offers no SMTP AUTH"
    )
    assert inbox.envelopes == []  # nothing sent unauthenticated


def test_a_password_is_never_sent_in_clear_to_a_remote_server() -> None:
    with pytest.raises(SpecError) as caught:
        send_message(
            build_message(REPORT, SENDER, RECIPIENTS), "smtp.example.org", 587, False, "u", PASSWORD
        )
    assert str(caught.value) == (
        "--smtp-user: logging in to smtp.example.org needs STARTTLS (--smtp-starttls)"
    )
