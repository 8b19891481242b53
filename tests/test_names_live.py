"""The names check on a live stack (DESIGN.md: every name a rule or dashboard reads is
proven exported).

Every series that a generated artifact or a promtool unit test reads must be exported by
the real app under gunicorn (several workers, multiprocess mode), the real exporter on
MariaDB, the real Prometheus or Alertmanager, a committed recording rule, or one of the two
short lists of ``sre.names`` (other software, and series only a test's state shows), with
every label name it relies on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from alerts import TEMPLATES_DIR, AlertmanagerSettings, render_alertmanager
from sre.cli import all_artifacts
from sre.names import (
    OTHER_SOFTWARE,
    STATE_SERIES,
    Inventory,
    Reads,
    check,
    reads_in_artifact,
    reads_in_unit_tests,
)
from sre.stack import Stack, free_port, stack
from tests.conftest import REPO, SRE, monitoring_binaries
from tests.exporter.conftest import LibraryDatabase, RunningExporter
from tests.exporter.conftest import library_db as library_db  # fixtures
from tests.exporter.conftest import start_exporter as start_exporter

pytestmark = pytest.mark.integration
UNIT_TESTS = sorted(REPO.glob("tests/**/testdata/*.test.yaml"))


def everything_read() -> Reads:
    """What every generated artifact and every promtool unit test reads."""
    found = Reads()
    for path, text in sorted(all_artifacts().items()):
        found.extend(reads_in_artifact(path, text))
    for path in UNIT_TESTS:
        found.extend(reads_in_unit_tests(str(path.relative_to(REPO)), path.read_text()))
    return found


def rule_files() -> dict[str, str]:
    """The generated Prometheus rule files (not the manifests or the k8s/ copies that
    repeat them)."""
    return {
        path: text
        for path, text in all_artifacts().items()
        if path.endswith((".rules.yaml", ".rules.yml")) and not path.startswith("k8s/")
    }


def _secret_files(config: Any, found: list[str]) -> list[str]:
    """Every ``*_file`` an Alertmanager configuration names."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key.endswith("_file") and isinstance(value, str):
                found.append(value)
            else:
                _secret_files(value, found)
    elif isinstance(config, list):
        for item in config:
            _secret_files(item, found)
    return found


def _start_alertmanager(running: Stack, tmp_path: Path, program: str) -> str:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    settings = AlertmanagerSettings(secrets_dir=str(secrets), templates_dir=str(TEMPLATES_DIR))
    text = render_alertmanager(settings)
    for path in _secret_files(yaml.safe_load(text), []):
        Path(path).write_text("http://127.0.0.1:9/unused" if path.endswith("-url") else "x" * 32)
    config = tmp_path / "alertmanager.yml"
    config.write_text(text)
    port = free_port()
    return running.start(
        "alertmanager",
        [
            program,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        "/-/ready",
        port,
    )


def wait_for_targets(prometheus: str, jobs: int) -> list[dict[str, str]]:
    """The ``up`` series once every job was scraped once."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        series = requests.get(
            f"{prometheus}/api/v1/series", params={"match[]": "up"}, timeout=5
        ).json()["data"]
        if len(series) >= jobs:
            return list(series)
        time.sleep(0.5)
    raise AssertionError(f"Prometheus did not scrape {jobs} targets in 30 s")


def _drive_traffic(url: str) -> None:
    """A request of each kind, so every labelled series of the app has a sample."""
    requests.get(f"{url}/api/books?per_page=5", timeout=10).raise_for_status()
    requests.get(f"{url}/api/books/1", timeout=10)
    requests.get(f"{url}/api/books/999999999", timeout=10)  # 404 by rule
    requests.get(f"{url}/no/such/route", timeout=10)  # unmatched
    requests.post(f"{url}/api/loans", json={"book_id": 1}, timeout=10)  # 401
    requests.post(
        f"{url}/api/members",
        json={"email": "names@example.org", "name": "Names", "password": "names password"},
        timeout=10,
    )
    requests.get(f"{url}/api/ready", timeout=10)


def start_app(running: Stack, tmp_path: Path, database_url: str) -> str:
    """The app under gunicorn with three workers on ``database_url``; its base URL."""
    port = free_port()
    return running.start(
        "app",
        [SRE, "app", "serve", "--port", str(port), "--workers", "3",
         "--metrics-dir", str(tmp_path / "app-metrics")],
        "/api/ready",
        port,
        env={**os.environ, "DATABASE_URL": database_url, "SRE_ACCESS_LOG": "false"},
    )  # fmt: skip


def start_prometheus(running: Stack, tmp_path: Path, app: str, exporter: str) -> str:
    """Prometheus 2.42 scraping the app and the exporter every second and evaluating every
    generated rule file; its base URL."""
    rules = []
    for path, text in rule_files().items():
        rules.append(tmp_path / Path(path).name)
        rules[-1].write_text(text)
    port_of = {url: int(url.rsplit(":", 1)[1]) for url in (app, exporter)}
    config = running.prometheus_config(port_of[app], port_of[exporter], free_port(), rules)
    port = free_port()
    return running.start(
        "prometheus",
        [monitoring_binaries()["prometheus"], f"--config.file={config}",
         f"--storage.tsdb.path={tmp_path / 'prom-data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        "/-/ready",
        port,
    )  # fmt: skip


def build_live_inventory(
    tmp_path: Path,
    library_db: LibraryDatabase,
    start_exporter: Callable[..., RunningExporter],
) -> Inventory:
    """Start the real app, exporter, Prometheus and Alertmanager and record what they export."""
    programs = monitoring_binaries()
    inventory = Inventory()
    exporter = start_exporter(library_db.my_cnf)
    with stack(tmp_path) as running:
        app = start_app(running, tmp_path, library_db.url)
        _drive_traffic(app)
        alertmanager = _start_alertmanager(running, tmp_path, programs["alertmanager"])
        prometheus = start_prometheus(running, tmp_path, app, exporter.url)
        for series in wait_for_targets(prometheus, jobs=2):
            # Prometheus writes these for every target it scrapes.
            for name in ("up", "scrape_duration_seconds", "scrape_samples_scraped"):
                inventory.add(name, set(series) - {"__name__"}, f"Prometheus ({name}, per target)")
        time.sleep(2)  # a rule evaluation or two, so rule-group self-metrics exist
        for source, url in (
            ("the app (sre app serve, 3 workers)", app),
            ("the exporter on MariaDB", exporter.url),
            ("Prometheus 2.42 /metrics", prometheus),
            ("Alertmanager 0.25 /metrics", alertmanager),
        ):
            inventory.add_exposition(requests.get(f"{url}/metrics", timeout=30).text, source)
    for path, text in rule_files().items():
        inventory.add_recording_rules(path, text)
    return inventory


def test_every_name_the_artifacts_and_unit_tests_read_is_really_exported(
    tmp_path: Path,
    library_db: LibraryDatabase,
    start_exporter: Callable[..., RunningExporter],
) -> None:
    inventory = build_live_inventory(tmp_path, library_db, start_exporter)
    for listed in (STATE_SERIES, OTHER_SOFTWARE):
        # A listed series the live stack exports belongs to the stack, not to a list.
        assert {name for name in listed if inventory.labels(name) is not None} == set()
    inventory.add_known(OTHER_SOFTWARE)
    inventory.add_known(STATE_SERIES)
    found = everything_read()
    assert len(found.reads) > 50  # the artifacts and the unit tests were really read
    problems = check(found, inventory)
    assert problems == [], "\n".join(problems)


def test_every_listed_series_is_read_by_something() -> None:
    read = {r.name for r in everything_read().reads}
    assert set(OTHER_SOFTWARE) - read == set(), "drop entries nothing reads"
    assert set(STATE_SERIES) - read == set(), "drop entries nothing reads"
