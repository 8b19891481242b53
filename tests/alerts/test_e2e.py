"""End to end: real app, exporter, Prometheus and Alertmanager, faults injected for real,
and the Slack messages and PagerDuty pages on-call would get, caught by local receivers
(Slack-compatible, and PagerDuty's Events API v2).

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
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from alerts import ARTIFACTS, TEMPLATES_DIR, AlertmanagerSettings, render_alertmanager
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
from tests.conftest import OwnMariaDB, limited_cgroup, monitoring_binaries
from tests.exporter.conftest import LibraryDatabase, exporter_on
from tests.exporter.conftest import library_db as library_db  # fixture
from tests.exporter.test_live import without_database

#: a PagerDuty integration key has 32 characters; this one is the test's own
ROUTING_KEY = "e2e0test0routing0key000000000001"

pytestmark = pytest.mark.integration
SPEEDUP = 30
#: seconds within which a page must reach Slack once the fault starts
PAGE_WITHIN_S = 60


@pytest.fixture
def binaries() -> dict[str, str]:
    return monitoring_binaries()


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyReceiver]:
    receiver = PagerDutyReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def monitoring(
    tmp_path: Path, binaries: dict[str, str], slack: SlackReceiver, pagerduty: PagerDutyReceiver
) -> Iterator[Callable[..., Stack]]:
    """Starts app and/or exporter, then Prometheus and Alertmanager watching them."""
    with stack(tmp_path) as running:

        def start(
            app_env: dict[str, str] | None = None,
            exporter_cnf: Path | None = None,
            exporter_args: list[str] | None = None,
            app_prefix: list[str] | None = None,
        ) -> Stack:
            app_port = exporter_port = None
            if app_env is not None:
                app_port = free_port()
                running.start(
                    "app",
                    [
                        *(app_prefix or []),
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
            am_port = start_alertmanager(
                running, binaries["alertmanager"], slack, pagerduty, ROUTING_KEY, "2s"
            )
            rules = tmp_path / "rules.yaml"
            rules.write_text(scale_durations((REPO_ROOT / ARTIFACTS[0]).read_text(), SPEEDUP))
            prom_port = free_port()
            config = running.prometheus_config(app_port, exporter_port, am_port, [rules])
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
    pagerduty: PagerDutyReceiver,
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
    time.sleep(20)  # normal traffic: nothing may reach Slack or PagerDuty
    assert titles(slack.messages) == []
    assert pagerduty.messages == []

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
    trigger = pagerduty.wait_for(lambda m: m["event_action"] == "trigger", 10)
    assert trigger["routing_key"] == ROUTING_KEY
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["summary"] == (
        "[CRITICAL] ElibraryHighErrorRatio: More than 5% of eLibrary requests fail"
    )
    assert trigger["client"] == "eLibrary Alertmanager"
    assert [link["text"] for link in trigger["links"]] == ["Runbook", "Dashboard"]
    assert trigger["links"][0]["href"].endswith("docs/runbooks/ElibraryHighErrorRatio.md")
    # The series the system dashboard counts alerts by (sre.names.STATE_SERIES["ALERTS"]).
    firing = requests.get(
        f"{running.urls['prometheus']}/api/v1/query",
        params={"query": 'ALERTS{alertname="ElibraryHighErrorRatio", alertstate="firing"}'},
        timeout=5,
    ).json()["data"]["result"]
    assert firing
    assert {"severity", "service"} <= set(firing[0]["metric"])

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
    resolve = pagerduty.wait_for(lambda m: m["event_action"] == "resolve", PAGE_WITHIN_S)
    assert resolve["dedup_key"] == trigger["dedup_key"]  # the same incident is closed
    assert resolve["routing_key"] == ROUTING_KEY


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
    for name in ("slack-incidents-url", "slack-alerts-url", "slack-info-url"):
        (secrets / name).write_text(slack.url(name))
    (secrets / "pagerduty-routing-key").write_text(ROUTING_KEY)
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


def firing(prometheus: str, alertname: str) -> list[dict[str, Any]]:
    """The alerts of that name Prometheus holds as firing right now."""
    alerts = requests.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def wait_firing(prometheus: str, alertname: str, timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = firing(prometheus, alertname)
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{alertname} did not fire within {timeout_s}s")


def test_a_new_revision_is_announced_and_the_first_one_is_not(
    monitoring: Callable[..., Stack], slack: SlackReceiver, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'lib.sqlite3'}", "SRE_ACCESS_LOG": "false"}
    running = monitoring(app_env={**os.environ, **env, "SRE_BUILD_REVISION": "rev-a"})
    prometheus = running.urls["prometheus"]
    time.sleep(25)  # longer than the scaled 10 minutes (20 s) the rule looks back
    assert firing(prometheus, "ElibraryNewDeployment") == []  # the first build seen is not news
    running.stop("app")
    running.restart("app", env={**os.environ, **env, "SRE_BUILD_REVISION": "rev-b"})
    alert = wait_firing(prometheus, "ElibraryNewDeployment", 20)[0]
    assert alert["labels"]["revision"] == "rev-b"
    assert alert["labels"]["version"] == metadata.version("elibrary-sre")
    note = slack.wait_for(lambda m: m["path"] == "/info", 20)
    assert "ElibraryNewDeployment" in note["attachments"][0]["title"]
    assert "revision rev-b" in note["attachments"][0]["text"]


def test_a_failing_business_query_raises_exporter_scrape_errors(
    monitoring: Callable[..., Stack], tmp_path: Path, library_db: LibraryDatabase
) -> None:
    # One query the server cuts off at its timeout, every scrape; one that works.
    queries = tmp_path / "queries.yaml"
    queries.write_text(
        "queries:\n"
        "  - {name: elibrary_probe, help: Works., type: gauge, sql: SELECT 1 AS value}\n"
        "  - {name: elibrary_slow, help: Too slow., type: gauge, timeout: 200ms,\n"
        "     sql: SELECT SLEEP(2) AS value}\n"
    )
    running = monitoring(
        exporter_cnf=library_db.my_cnf, exporter_args=["--queries", str(queries), "--no-check"]
    )
    prometheus = running.urls["prometheus"]
    started = time.monotonic()
    alert = wait_firing(prometheus, "ElibraryExporterScrapeErrors", 90)[0]
    print(f"ElibraryExporterScrapeErrors fired {time.monotonic() - started:.1f}s after start")
    assert alert["labels"]["instance"] == running.urls["exporter"].removeprefix("http://")
    errors = requests.get(
        f"{prometheus}/api/v1/query",
        params={"query": "elibrary_exporter_query_errors_total > 0"},
        timeout=5,
    ).json()["data"]["result"]
    assert {e["metric"]["query"] for e in errors} == {"elibrary_slow"}


def test_an_exporter_given_a_mysqld_exporter_my_cnf_warns_that_queries_are_off(
    monitoring: Callable[..., Stack], tmp_path: Path, library_db: LibraryDatabase
) -> None:
    running = monitoring(exporter_cnf=without_database(library_db, tmp_path))
    prometheus = running.urls["prometheus"]
    alert = wait_firing(prometheus, "ElibraryExporterQueriesDisabled", 90)[0]
    assert alert["labels"]["instance"] == running.urls["exporter"].removeprefix("http://")
    assert firing(prometheus, "ElibraryMySQLDown") == []  # the server metrics are fine
    assert firing(prometheus, "ElibraryExporterScrapeErrors") == []


@pytest.mark.parametrize(
    ("alertname", "cpu_cores", "memory_mb", "fault"),
    [
        ("ElibraryHighCpu", 0.5, 1024, {"cpu_ms": 100, "route": "/api/books"}),
        ("ElibraryHighMemory", 2.0, 512, None),
    ],
    ids=["CPU near the cgroup's quota", "memory near the cgroup's limit"],
)
def test_a_server_near_its_cgroup_limit_warns(
    monitoring: Callable[..., Stack],
    traffic: Callable[[str], None],
    tmp_path: Path,
    alertname: str,
    cpu_cores: float,
    memory_mb: int,
    fault: dict[str, Any] | None,
) -> None:
    fault_file = tmp_path / "fault.json"
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'lib.sqlite3'}",
        "SRE_FAULT_FILE": str(fault_file),
        "SRE_ACCESS_LOG": "false",
    }
    with limited_cgroup(cpu_cores, memory_mb << 20) as cgroup:
        running = monitoring(app_env=env, app_prefix=cgroup.prefix)
        app, prometheus = running.urls["app"], running.urls["prometheus"]
        limits = metric_values(app)
        usable = min(cpu_cores, len(os.sched_getaffinity(0)))  # the quota, or fewer CPUs
        assert limits["elibrary_server_cpu_limit_cores"] == pytest.approx(usable)
        assert limits["elibrary_server_memory_limit_bytes"] == memory_mb << 20
        traffic(app)
        traffic(app)
        time.sleep(5)
        assert firing(prometheus, alertname) == []
        if fault is None:  # hold enough in the two workers to reach ~94% of the limit
            resident = metric_values(app)["process_resident_memory_bytes"]
            per_worker = int((0.94 * (memory_mb << 20) - resident) / 2) >> 20
            fault = {"memory_mb": per_worker}
        fault_file.write_text(json.dumps(fault))
        started = time.monotonic()
        alert = wait_firing(prometheus, alertname, 120)[0]
        print(f"{alertname} fired {time.monotonic() - started:.1f}s after {fault}")
        assert alert["labels"]["instance"] == app.removeprefix("http://")
        assert float(alert["value"]) > (0.8 if alertname == "ElibraryHighCpu" else 0.9)
        fault_file.unlink()
        running.stop("app")


def metric_values(url: str) -> dict[str, float]:
    """The unlabelled samples of a /metrics answer."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }
