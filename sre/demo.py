"""``sre demo``: the whole loop on one machine, started for real and stopped again.

The app (SQLite unless ``DATABASE_URL`` says otherwise) with sample data; the exporter when
MariaDB answers; Prometheus with the generated alert and SLO rules and Alertmanager with
the generated routing, pointed at local Slack and PagerDuty receivers that record what
they get; the smoke load test; the SLO gate over the run; previews of every dashboard
panel drawn from the run's data. With ``fault`` the app's fault
injection turns on for the second half of the run, so the gate fails, naming the
objective, and the page reaches Slack.

Rules are time-scaled (``SPEEDUP``) so that alerts written for hours fire within a
minute-long demo; the gate reads the SLI queries themselves, unscaled. What cannot run
here is skipped with a line saying how to get it. Every process started is stopped at the
end, on Ctrl-C too.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql

from alerts import ARTIFACTS as ALERT_ARTIFACTS
from sre.errors import SreError
from sre.generated import REPO_ROOT
from sre.stack import (
    SRE,
    PagerDutyReceiver,
    SlackReceiver,
    Stack,
    free_port,
    scale_durations,
    stack,
    start_alertmanager,
)

__all__ = ["FAULTS", "SPEEDUP", "DemoOptions", "run_demo"]

#: alert and SLO rules run this many times faster than written (1h windows last 30 s)
SPEEDUP = 120
#: what --fault turns on for the second half of the run
FAULTS: dict[str, dict[str, Any]] = {
    "errors": {"error_ratio": 0.2},
    "latency": {"latency_ms": 300},
}
_SLO_RULES = "slo/generated/elibrary.rules.yaml"
_MARIADB = ("127.0.0.1", 3306, "root")


@dataclass(frozen=True)
class DemoOptions:
    """What ``sre demo`` was asked for."""

    workdir: Path
    fault: str | None = None
    database_url: str | None = None
    #: the load test's length; the fault starts half-way
    run_time_s: int = 90
    #: 30 users send 30 requests a second: enough in 90 s for the 1000 requests the API's
    #: availability gate needs; borrowing (a few % of requests) stays inconclusive, which
    #: the gate says rather than guess
    users: int | None = 30
    #: keep the stack up after the gate until Ctrl-C, to look around
    keep_running: bool = False


def run_demo(options: DemoOptions, say: Callable[[str], None]) -> int:
    """Run the loop; the gate's exit code (0 pass, 1 fail, 3 inconclusive)."""
    from loadtests.run import run_loadtest
    from slo import gate
    from slo.spec import SPECS_DIR, load_specs
    from slo.windows import load_windows

    if options.fault is not None and options.fault not in FAULTS:
        raise SreError(None, "--fault", f"{options.fault!r}: one of {', '.join(FAULTS)}")
    workdir = options.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    slos = [s for d in load_specs([SPECS_DIR], catalog=load_windows()) for s in d.slos]
    fault_file = workdir / "fault.json"
    fault_file.unlink(missing_ok=True)
    database_url = options.database_url or f"sqlite:///{workdir / 'library.sqlite3'}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SRE_FAULT_FILE": str(fault_file),
        "SRE_ACCESS_LOG": "false",
    }
    with ExitStack() as cleanup:
        running = cleanup.enter_context(stack(workdir))
        admin_email, admin_password_file = _prepare_data(env, workdir, say)
        app_port = free_port()
        app = running.start(
            "app",
            [
                *(SRE, "app", "serve", "--port", str(app_port), "--workers", "2"),
                *("--metrics-dir", str(workdir / "app-metrics")),
            ],
            "/api/ready",
            app_port,
            env=env,
        )
        say(f"app: {app} ({_describe(database_url)}), log {workdir / 'app.log'}")
        exporter_port = _start_exporter(running, database_url, workdir, say)
        slack = SlackReceiver()
        cleanup.callback(slack.close)
        pagerduty = PagerDutyReceiver()
        cleanup.callback(pagerduty.close)
        prometheus = _start_monitoring(running, app_port, exporter_port, slack, pagerduty, say)

        if options.fault:
            delay = options.run_time_s / 2
            timer = threading.Timer(
                delay, lambda: fault_file.write_text(json.dumps(FAULTS[options.fault or ""]))
            )
            timer.daemon = True
            timer.start()
            cleanup.callback(timer.cancel)
            say(f"fault: {options.fault} {FAULTS[options.fault]} from {delay:.0f}s into the run")
        out = workdir / "loadtest"
        shutil.rmtree(out, ignore_errors=True)
        say(f"load test: smoke profile for {options.run_time_s}s against {app}")
        started = datetime.now(UTC)
        run_loadtest(
            "smoke",
            app,
            out,
            users=options.users,
            run_time_s=options.run_time_s,
            env={
                "SRE_LOADTEST_ADMIN_EMAIL": admin_email,
                "SRE_LOADTEST_ADMIN_PASSWORD_FILE": str(admin_password_file),
            },
            progress=say,
        )
        if prometheus:  # the last requests' scrape, so the server side sees the whole run
            time.sleep(2)
        report = gate.judge_run(slos, out / "locust", prometheus, None, None, None)
        reports = workdir / "gate"
        reports.mkdir(exist_ok=True)
        (reports / "gate.md").write_text(gate.render_markdown(report), encoding="utf-8")
        (reports / "gate.json").write_text(gate.render_json(report), encoding="utf-8")
        (reports / "gate.xml").write_text(gate.render_junit(report), encoding="utf-8")
        say("")
        say(gate.render_table(report).rstrip("\n"))
        say("")
        if prometheus and options.fault:
            _wait_for_page(slack, say)
        _tell_what_arrived(slack, pagerduty, say)
        if prometheus:
            _draw_dashboards(prometheus, workdir / "dashboards", started, say)
        say(f"reports: {out} (Locust CSV, HTML, JSON, per-request log), {reports}")
        say(f"logs: {workdir}/*.log")
        if options.keep_running:
            fault_file.unlink(missing_ok=True)
            urls = ", ".join(f"{name} {url}" for name, url in running.urls.items())
            say(f"still running (fault off): {urls}; Ctrl-C stops everything")
            while True:
                time.sleep(3600)
        return report.exit_code
    raise AssertionError("unreachable")  # pragma: no cover  (ExitStack does not swallow)


def _draw_dashboards(
    prometheus: str, out: Path, started: datetime, say: Callable[[str], None]
) -> None:
    """Every panel of the committed dashboards, drawn from this run's data."""
    from dashboards import committed_dashboards
    from dashboards.preview import render_previews
    from sre.prometheus import PrometheusClient

    shutil.rmtree(out, ignore_errors=True)
    client = PrometheusClient(prometheus, timeout_s=30)
    try:
        render_previews(
            committed_dashboards(REPO_ROOT),
            client,
            out,
            started - timedelta(seconds=30),
            datetime.now(UTC),
            scrape_interval_s=1,
        )
    finally:
        client.close()
    say(f"dashboards: {out / 'index.html'} (every panel, drawn from this run's data)")


def _describe(database_url: str) -> str:
    return database_url.split("@")[-1] if database_url.startswith("mysql") else database_url


def _prepare_data(
    env: dict[str, str], workdir: Path, say: Callable[[str], None]
) -> tuple[str, Path]:
    """Schema, sample data (once per work directory) and a fresh admin for the load test."""
    _sre(["app", "migrate"], env)
    marker = workdir / ".seeded"
    if not marker.exists():
        say("data: seeding 500 books, 100 members, 1000 loans")
        _sre(["app", "seed", "--books", "500", "--members", "100", "--loans", "1000"], env)
        marker.write_text("seeded\n")
    # a new admin each run: its password exists only in this file, never on a command line
    email = f"demo-admin-{secrets.token_hex(4)}@example.org"
    password_file = workdir / "admin-password"
    password_file.write_text(secrets.token_urlsafe(16) + "\n")
    password_file.chmod(0o600)
    add = ["app", "users", "add", "--email", email, "--role", "admin"]
    _sre([*add, "--password-file", str(password_file)], env)
    return email, password_file


def _sre(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run([SRE, *args], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SreError(None, f"sre {' '.join(args[:2])}", (result.stderr or result.stdout).strip())


def _start_exporter(
    running: Stack, database_url: str, workdir: Path, say: Callable[[str], None]
) -> int | None:
    host, port, user = _MARIADB
    try:
        pymysql.connect(host=host, port=port, user=user, password="", connect_timeout=2).close()
    except pymysql.err.MySQLError:
        say(
            f"skipped: no MariaDB at {host}:{port} (user {user}): exporter not started; "
            "install and start MariaDB (./scripts/setup does) to see MySQL metrics"
        )
        return None
    cnf = workdir / "exporter.my.cnf"
    lines = ["[client]", f"user={user}", f"host={host}", f"port={port}"]
    if database_url.startswith("mysql"):
        lines.append(f"database={database_url.rsplit('/', 1)[-1]}")
    cnf.write_text("\n".join(lines) + "\n")
    cnf.chmod(0o600)
    exporter_port = free_port()
    url = running.start(
        "exporter",
        [SRE, "exporter", "serve", "--port", str(exporter_port), "--my-cnf", str(cnf)],
        "/healthz",
        exporter_port,
    )
    what = (
        "server and business metrics"
        if database_url.startswith("mysql")
        else (
            "server metrics only (the app is on SQLite; set DATABASE_URL to a MariaDB database "
            "for the business metrics)"
        )
    )
    say(f"exporter: {url}, {what}")
    return exporter_port


def _start_monitoring(
    running: Stack,
    app_port: int,
    exporter_port: int | None,
    slack: SlackReceiver,
    pagerduty: PagerDutyReceiver,
    say: Callable[[str], None],
) -> str | None:
    """Alertmanager, then Prometheus; None (and a line saying so) when not installed."""
    binaries = {name: shutil.which(name) for name in ("prometheus", "prometheus-alertmanager")}
    binaries["prometheus-alertmanager"] = binaries["prometheus-alertmanager"] or shutil.which(
        "alertmanager"
    )
    if not all(binaries.values()):
        say(
            "skipped: Prometheus or Alertmanager is not installed: no alerts, and the gate "
            "judges Locust's side only; ./scripts/setup installs them (Debian packages "
            "prometheus, prometheus-alertmanager)"
        )
        return None
    workdir = running.workdir
    am_port = start_alertmanager(
        running,
        str(binaries["prometheus-alertmanager"]),
        slack,
        pagerduty,
        secrets.token_hex(16),
    )
    rule_files = []
    for source in (ALERT_ARTIFACTS[0], _SLO_RULES):
        target = workdir / Path(source).name
        target.write_text(scale_durations((REPO_ROOT / source).read_text(), SPEEDUP))
        rule_files.append(target)
    prom_port = free_port()
    config = running.prometheus_config(app_port, exporter_port, am_port, rule_files)
    url = running.start(
        "prometheus",
        [
            str(binaries["prometheus"]),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        "/-/ready",
        prom_port,
    )
    say(
        f"prometheus: {url}, alertmanager: http://127.0.0.1:{am_port} "
        f"(alert and SLO rules {SPEEDUP}x faster than written, so they fire within the demo)"
    )
    return url


def _wait_for_page(slack: SlackReceiver, say: Callable[[str], None], timeout_s: float = 60) -> None:
    say("waiting for the page to reach Slack #incidents ...")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(m.get("path") == "/incidents" for m in list(slack.messages)):
            return
        time.sleep(1)
    say(f"no page reached Slack within {timeout_s:.0f}s")


def _tell_what_arrived(
    slack: SlackReceiver, pagerduty: PagerDutyReceiver, say: Callable[[str], None]
) -> None:
    messages = list(slack.messages)
    if not messages:
        say("slack: nothing received")
    for message in messages:
        channel = message.get("channel") or message.get("path", "?")
        for attachment in message.get("attachments") or [{"title": message.get("text", "")}]:
            say(f"slack {channel}: {attachment.get('title', '')}")
    for event in list(pagerduty.messages):
        summary = (event.get("payload") or {}).get("summary", "")
        say(f"pagerduty: {event.get('event_action', '?')} {summary}")
