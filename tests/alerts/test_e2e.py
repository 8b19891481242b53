"""End to end: real app, exporter, Prometheus and Alertmanager, faults injected for real,
and the Slack messages on-call would read, caught by a local Slack-compatible receiver.

Rules are the generated ones with every duration divided by 30 (5m → 10s) and Prometheus
evaluating every second, so an alert that needs minutes in production needs seconds here.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from alerts import ARTIFACTS, TEMPLATES_DIR, AlertmanagerSettings, render_alertmanager
from sre.generated import REPO_ROOT
from sre.stack import SRE, SlackReceiver, Stack, binary, free_port, scale_durations, stack
from tests.conftest import IN_CI, OwnMariaDB
from tests.exporter.conftest import exporter_on

pytestmark = pytest.mark.integration
SPEEDUP = 30
#: seconds within which a page must reach Slack once the fault starts
PAGE_WITHIN_S = 60


@pytest.fixture
def binaries() -> dict[str, str]:
    try:
        return {
            "prometheus": binary("prometheus"),
            "alertmanager": binary("prometheus-alertmanager"),
        }
    except RuntimeError as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def monitoring(
    tmp_path: Path, binaries: dict[str, str], slack: SlackReceiver
) -> Iterator[Callable[..., Stack]]:
    """Starts app and/or exporter, then Prometheus and Alertmanager watching them."""
    with stack(tmp_path) as running:

        def start(
            app_env: dict[str, str] | None = None,
            exporter_cnf: Path | None = None,
            exporter_args: list[str] | None = None,
        ) -> Stack:
            app_port = exporter_port = None
            if app_env is not None:
                app_port = free_port()
                running.start(
                    "app",
                    [
                        SRE,
                        "app",
                        "serve",
                        "--port",
                        str(app_port),
                        "--workers",
                        "2",
                        "--metrics-dir",
                        str(tmp_path / "app-metrics"),
                    ],
                    "/api/ready",
                    app_port,
                    env={**os.environ, **app_env},
                )
            if exporter_cnf is not None:
                exporter_port = free_port()
                running.start(
                    "exporter",
                    [
                        SRE,
                        "exporter",
                        "serve",
                        "--port",
                        str(exporter_port),
                        "--my-cnf",
                        str(exporter_cnf),
                        *(exporter_args or []),
                    ],
                    "/healthz",
                    exporter_port,
                )
            secrets = tmp_path / "secrets"
            secrets.mkdir()
            for name, channel in (
                ("slack-incidents-url", "incidents"),
                ("slack-alerts-url", "alerts"),
                ("slack-info-url", "info"),
            ):
                (secrets / name).write_text(slack.url(channel))
            (secrets / "pager-token").write_text("test-token")
            am_port = free_port()
            settings = AlertmanagerSettings(
                secrets_dir=str(secrets),
                templates_dir=str(TEMPLATES_DIR),
                pager_url=slack.url("pager"),
                group_wait="1s",
                page_group_wait="1s",
                group_interval="2s",
                repeat_interval="1h",
                page_repeat_interval="1h",
            )
            am_config = tmp_path / "alertmanager.yml"
            am_config.write_text(render_alertmanager(settings))
            running.start(
                "alertmanager",
                [
                    binaries["alertmanager"],
                    f"--config.file={am_config}",
                    f"--storage.path={tmp_path / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                    f"--web.external-url=http://127.0.0.1:{am_port}",
                ],
                "/-/ready",
                am_port,
            )
            rules = tmp_path / "rules.yaml"
            rules.write_text(scale_durations((REPO_ROOT / ARTIFACTS[0]).read_text(), SPEEDUP))
            prom_port = free_port()
            config = running.prometheus_config(app_port, exporter_port, am_port, rules)
            running.start(
                "prometheus",
                [
                    binaries["prometheus"],
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                "/-/ready",
                prom_port,
            )
            return running

        yield start


def titles(messages: list[dict[str, Any]]) -> list[str]:
    return [f"{m['path']} {a.get('title', '')}" for m in messages for a in m.get("attachments", [])]


@pytest.fixture
def traffic() -> Iterator[Callable[[str], None]]:
    """Keeps a light, bounded stream of API requests going (stops by itself)."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(url: str) -> None:
        def loop() -> None:
            deadline = time.monotonic() + 240
            while not stop.is_set() and time.monotonic() < deadline:
                with contextlib.suppress(requests.RequestException):
                    requests.get(f"{url}/api/books", timeout=2)
                time.sleep(0.05)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(5)


def test_5xx_pages_with_a_runbook_then_resolves_and_normal_traffic_stays_quiet(
    monitoring: Callable[..., Stack],
    slack: SlackReceiver,
    traffic: Callable[[str], None],
    tmp_path: Path,
) -> None:
    fault = tmp_path / "fault.json"
    running = monitoring(
        app_env={
            "DATABASE_URL": f"sqlite:///{tmp_path / 'lib.sqlite3'}",
            "SRE_FAULT_FILE": str(fault),
            "SRE_ACCESS_LOG": "false",
        }
    )
    traffic(running.urls["app"])
    time.sleep(20)  # normal traffic: nothing may reach Slack
    assert titles(slack.messages) == []

    fault.write_text(json.dumps({"error_ratio": 1.0, "route": "/api/books"}))
    started = time.monotonic()
    page = slack.wait_for(
        lambda m: m["path"] == "/incidents" and "ElibraryHighErrorRatio" in json.dumps(m),
        PAGE_WITHIN_S,
    )
    attachment = page["attachments"][0]
    assert attachment["title"].startswith("[CRITICAL] ElibraryHighErrorRatio")
    assert "docs/runbooks/ElibraryHighErrorRatio.md" in attachment["text"]
    assert {a["text"] for a in attachment["actions"]} == {"Runbook", "Dashboard", "Silence"}
    paged_after = time.monotonic() - started
    print(f"ElibraryHighErrorRatio paged {paged_after:.1f}s after the fault started")
    assert paged_after < PAGE_WITHIN_S
    assert any(m["path"] == "/pager" for m in slack.messages) or slack.wait_for(
        lambda m: m["path"] == "/pager", 10
    )

    fault.write_text(json.dumps({"error_ratio": 0.0}))
    recovered = time.monotonic()
    resolved = slack.wait_for(
        lambda m: (
            m["path"] == "/incidents"
            and any(
                a.get("title", "").startswith("[RESOLVED] ElibraryHighErrorRatio")
                for a in m.get("attachments", [])
            )
        ),
        PAGE_WITHIN_S,
    )
    print(f"[RESOLVED] arrived {time.monotonic() - recovered:.1f}s after the fault ended")
    assert resolved


def test_a_killed_app_pages_target_down(
    monitoring: Callable[..., Stack], slack: SlackReceiver, tmp_path: Path
) -> None:
    running = monitoring(app_env={"DATABASE_URL": f"sqlite:///{tmp_path / 'lib.sqlite3'}"})
    time.sleep(5)
    running.stop("app", kill=True)
    page = slack.wait_for(
        lambda m: m["path"] == "/incidents" and "ElibraryTargetDown" in json.dumps(m), PAGE_WITHIN_S
    )
    assert page["attachments"][0]["title"].startswith("[CRITICAL] ElibraryTargetDown")


def test_mysql_unreachable_for_the_exporter_pages_then_resolves(
    monitoring: Callable[..., Stack],
    slack: SlackReceiver,
    tmp_path: Path,
    own_mariadb: OwnMariaDB,
) -> None:
    my_cnf, queries = exporter_on(own_mariadb, tmp_path)
    monitoring(exporter_cnf=my_cnf, exporter_args=["--queries", str(queries)])
    time.sleep(5)
    own_mariadb.kill()
    page = slack.wait_for(
        lambda m: m["path"] == "/incidents" and "ElibraryMySQLDown" in json.dumps(m), PAGE_WITHIN_S
    )
    assert "docs/runbooks/ElibraryMySQLDown.md" in page["attachments"][0]["text"]
    own_mariadb.start()
    slack.wait_for(
        lambda m: any(
            a.get("title", "").startswith("[RESOLVED] ElibraryMySQLDown")
            for a in m.get("attachments", [])
        ),
        PAGE_WITHIN_S,
    )


def test_inhibitions_on_a_live_alertmanager(
    tmp_path: Path, binaries: dict[str, str], slack: SlackReceiver
) -> None:
    """Critical silences the same family's warning; TargetDown silences its instance."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("slack-incidents-url", "slack-alerts-url", "slack-info-url", "pager-token"):
        (secrets / name).write_text(slack.url(name))
    config = tmp_path / "am.yml"
    config.write_text(
        render_alertmanager(
            AlertmanagerSettings(secrets_dir=str(secrets), templates_dir=str(TEMPLATES_DIR))
        )
    )
    port = free_port()
    with stack(tmp_path) as running:
        url = running.start(
            "alertmanager",
            [
                binaries["alertmanager"],
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            "/-/ready",
            port,
        )

        def alert(name: str, severity: str, family: str, instance: str) -> dict[str, Any]:
            return {
                "labels": {
                    "alertname": name,
                    "severity": severity,
                    "service": "elibrary",
                    "family": family,
                    "instance": instance,
                }
            }

        requests.post(
            f"{url}/api/v2/alerts",
            timeout=5,
            json=[
                alert("ElibraryHighErrorRatio", "critical", "service", "a:8000"),
                alert("ElibraryHighLatency", "warning", "service", "a:8000"),
                alert("ElibraryMySQLSlowQueries", "warning", "mysql", "e:9207"),
                alert("ElibraryTargetDown", "critical", "service", "b:8000"),
                alert("ElibraryHighCpu", "warning", "saturation", "b:8000"),
            ],
        ).raise_for_status()
        deadline = time.monotonic() + 15
        state: dict[str, list[str]] = {}
        while time.monotonic() < deadline:
            answer = requests.get(f"{url}/api/v2/alerts", timeout=5).json()
            state = {a["labels"]["alertname"]: a["status"]["inhibitedBy"] for a in answer}
            if len(state) == 5 and state["ElibraryHighLatency"] and state["ElibraryHighCpu"]:
                break
            time.sleep(0.5)
    assert state["ElibraryHighLatency"], "critical should inhibit the same family's warning"
    assert state["ElibraryHighCpu"], "TargetDown should inhibit its instance's other alerts"
    assert state["ElibraryMySQLSlowQueries"] == []  # another family: still notified
    assert state["ElibraryHighErrorRatio"] == [] and state["ElibraryTargetDown"] == []
