"""The daily SLO email: the report as HTML with a plain-text part, sent over SMTP.

:func:`build_message` is pure (no clock, no network): the same report gives the same
message. :func:`send_message` is the thin shell: it adds ``Date`` and ``Message-ID`` when
missing, talks SMTP (STARTTLS and login when asked) and turns every failure into one
:class:`MailError` line. The password comes from a file (:func:`read_password`); it is
never logged and never part of an error message.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from html import escape
from pathlib import Path

from slo.errors import SpecError
from slo.report import Report, Table, render_table, report_heading, report_summary, report_tables

__all__ = [
    "MailError",
    "build_message",
    "read_password",
    "render_html",
    "send_message",
    "subject",
]

_STATUS_COLOURS = {
    "ok": "#1a7f37",
    "no events": "#57606a",
    "burning": "#bf8700",
    "exhausted": "#cf222e",
}
_CELL = "padding:4px 10px;border-bottom:1px solid #d0d7de;"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class MailError(SpecError):
    """The report could not be sent (server, TLS, login, recipients): exit 2."""


def subject(report: Report, title: str | None = None) -> str:
    """``<title> <end date, UTC>: 3 SLOs, 1 burning budget``.

    The title defaults to ``<service> SLO report`` when every SLO is one service's.
    """
    services = {s.service for s in report.slos}
    heading = title or (f"{services.pop()} SLO report" if len(services) == 1 else "SLO report")
    return f"{heading} {report.end:%Y-%m-%d}: {report_summary(report)}"


def build_message(
    report: Report,
    sender: str,
    recipients: Sequence[str],
    title: str | None = None,
) -> EmailMessage:
    """The report as a multipart/alternative email (text/plain, then text/html)."""
    if not recipients:
        raise SpecError(None, "--email-to", "at least one recipient is needed")
    for entry, address in (("--email-from", sender), *(("--email-to", r) for r in recipients)):
        if not _plausible_address(address):
            raise SpecError(None, entry, f"{address!r} is not an email address")
    message = EmailMessage()
    message["Subject"] = subject(report, title)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message.set_content(render_table(report))
    message.add_alternative(render_html(report, title), subtype="html")
    return message


def read_password(path: Path) -> str:
    """The SMTP password in ``path`` (one final newline dropped); SpecError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise SpecError(str(path), None, f"cannot be read: {reason}") from None
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        raise SpecError(str(path), None, "is empty; it should hold the SMTP password")
    return password


def send_message(
    message: EmailMessage,
    host: str,
    port: int,
    starttls: bool,
    user: str | None,
    password: str | None,
    tls_context: ssl.SSLContext | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Send over SMTP (STARTTLS first when asked, then login when ``user`` is given).

    ``tls_context`` defaults to the system's trusted CAs with host name checks. A password
    goes in clear only to a loopback server (a local relay). Any failure raises MailError
    naming the server, and the user for a refused login; never the password.
    """
    where = f"smtp://{host}:{port}"
    if user and not password:
        raise SpecError(None, "--smtp-password-file", f"a password is needed to log in as {user}")
    if user and not starttls and host not in _LOOPBACK:
        raise SpecError(
            None, "--smtp-user", f"logging in to {host} needs STARTTLS (--smtp-starttls)"
        )
    if "Date" not in message:
        message["Date"] = formatdate(localtime=False, usegmt=True)
    if "Message-ID" not in message:
        domain = parseaddr(str(message.get("From", "")))[1].rpartition("@")[2]
        message["Message-ID"] = make_msgid(domain=domain or host)
    try:
        with smtplib.SMTP(host, port, timeout=timeout_s) as smtp:
            smtp.ehlo()
            if starttls:
                smtp.starttls(context=tls_context or ssl.create_default_context())
                smtp.ehlo()
            if user and password:
                _login(smtp, user, password)
            refused = smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        problem = (
            f"the server refuses the login of {user!r}: {_reply(exc.smtp_code, exc.smtp_error)}"
        )
        raise MailError(where, None, _scrub(problem, password)) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailError(where, None, _scrub(f"not supported: {exc}", password)) from None
    except smtplib.SMTPRecipientsRefused as exc:
        names = ", ".join(sorted(exc.recipients))
        raise MailError(where, None, f"every recipient was refused: {names}") from None
    except smtplib.SMTPResponseException as exc:
        problem = f"the server answers {_reply(exc.smtp_code, exc.smtp_error)}"
        raise MailError(where, None, _scrub(problem, password)) from None
    except smtplib.SMTPException as exc:
        raise MailError(where, None, _scrub(str(exc), password)) from None
    except ssl.SSLError as exc:
        reason = exc.reason or type(exc).__name__
        raise MailError(where, None, f"TLS failed: {reason}") from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise MailError(where, None, f"the server does not answer: {reason}") from None
    if refused:
        raise MailError(where, None, f"some recipients were refused: {', '.join(sorted(refused))}")


def _login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """Log in with the best mechanism offered, once.

    Unlike ``SMTP.login`` a refused password is not tried again with the next mechanism
    (two failures count twice against lockout policies), and LOGIN answers the server's
    challenges instead of sending an initial response (Python 3.11 then sends the user
    name twice and the server waits for the password until the timeout).
    """
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("the server offers no SMTP AUTH")
    offered = smtp.esmtp_features["auth"].upper().split()
    mechanism = next((m for m in ("CRAM-MD5", "PLAIN", "LOGIN") if m in offered), None)
    if mechanism is None:
        raise smtplib.SMTPNotSupportedError(f"no login mechanism in common ({', '.join(offered)})")
    smtp.user, smtp.password = user, password
    method = getattr(smtp, "auth_" + mechanism.lower().replace("-", "_"))
    smtp.auth(mechanism, method, initial_response_ok=mechanism != "LOGIN")


def _reply(code: int, text: bytes | str) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(raw.split())}"


def _scrub(text: str, password: str | None) -> str:
    """The text with the password blanked, should a server ever echo it."""
    return text.replace(password, "***") if password else text


def _plausible_address(address: str) -> bool:
    # Enough to catch a swapped flag or a stray newline; the server judges the rest.
    if "\r" in address or "\n" in address:
        return False
    local, at, domain = parseaddr(address)[1].rpartition("@")
    return bool(at and local and domain)


# --- the HTML part ----------------------------------------------------------------------------


def _cell(tag: str, text: str, right: bool, style: str = "") -> str:
    align = "right" if right else "left"
    return f'<{tag} style="{_CELL}text-align:{align};{style}">{escape(text)}</{tag}>'


def _html_table(table: Table) -> list[str]:
    right = table.right_aligned()
    head = "".join(
        _cell("th", h, r, "background:#f6f8fa;") for h, r in zip(table.headers, right, strict=True)
    )
    out = ['<table style="border-collapse:collapse;font-size:14px;margin:8px 0 16px 0;">']
    out.append(f"<tr>{head}</tr>")
    for row in table.rows:
        cells = []
        for i, (text, is_right) in enumerate(zip(row, right, strict=True)):
            style = ""
            if i == table.status_column:
                style = f"color:{_STATUS_COLOURS.get(text, '#24292f')};font-weight:bold;"
            cells.append(_cell("td", text, is_right, style))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return out


def render_html(report: Report, title: str | None = None) -> str:
    """The report as a self-contained HTML document (inline styles, as mail clients want)."""
    heading = subject(report, title)
    body = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{escape(heading)}</title></head>",
        '<body style="font-family:Helvetica,Arial,sans-serif;color:#24292f;">',
        f'<h2 style="margin-bottom:4px;">{escape(heading)}</h2>',
        f'<p style="margin-top:0;color:#57606a;">{escape(report_heading(report))}, '
        f"from {escape(report.prometheus_url)}</p>",
    ]
    for table in report_tables(report):
        body.append(f"<h3>{escape(table.title)}</h3>")
        if table.note:
            body.append(f'<p style="color:#57606a;">{escape(table.note)}</p>')
        body.extend(_html_table(table) if table.rows else [f"<p>{escape(table.empty)}</p>"])
    body.append("</body></html>")
    return "\n".join(body) + "\n"
