"""The generated Alertmanager configuration: amtool accepts it and routes every severity
to the right receiver; inhibitions and secrets are as DESIGN.md says."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from alerts import TEMPLATES_DIR, AlertmanagerSettings, render_alertmanager
from alerts.rules import SEVERITIES
from sre.generated import REPO_ROOT
from tests.conftest import require_tool

#: the files under secrets_dir the generated configuration reads
SECRET_FILES = (
    "slack-incidents-url",
    "slack-alerts-url",
    "slack-info-url",
    "pagerduty-routing-key",
)


def amtool() -> str:
    return require_tool("amtool", "prometheus-alertmanager")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """The generated config, pointed at this checkout's templates and dummy secret files."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in SECRET_FILES:
        (secrets / name).write_text("placeholder\n")
    path = tmp_path / "alertmanager.yml"
    path.write_text(
        render_alertmanager(
            AlertmanagerSettings(secrets_dir=str(secrets), templates_dir=str(TEMPLATES_DIR))
        )
    )
    return path


def test_amtool_accepts_the_committed_and_the_test_config(config_file: Path) -> None:
    for path in (config_file, REPO_ROOT / "alerts/generated/alertmanager.yml"):
        result = subprocess.run(
            [amtool(), "check-config", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=ElibraryHighErrorRatio"], "page"),
        (["severity=warning", "alertname=ElibraryHighLatency"], "slack-alerts"),
        (["severity=info", "alertname=ElibraryNewDeployment"], "slack-low-priority"),
        (["alertname=SomethingUnlabelled"], "slack-alerts"),
    ],
    ids=[
        "critical pages",
        "warning to the alerts channel",
        "info to low priority",
        "no severity still reaches a human",
    ],
)
def test_routes(config_file: Path, labels: list[str], receiver: str) -> None:
    result = subprocess.run(
        [
            amtool(),
            "config",
            "routes",
            "test",
            f"--config.file={config_file}",
            "service=elibrary",
            *labels,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == receiver, result.stdout + result.stderr


def test_every_severity_has_a_route(config_file: Path) -> None:
    routes = yaml.safe_load(config_file.read_text())["route"]["routes"]
    assert {r["matchers"][0] for r in routes} == {f'severity="{s}"' for s in SEVERITIES}


def test_inhibitions() -> None:
    rules = yaml.safe_load(render_alertmanager())["inhibit_rules"]
    assert {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["service", "family"],
    } in rules
    assert {
        "source_matchers": ['alertname="ElibraryTargetDown"'],
        "target_matchers": ['alertname!="ElibraryTargetDown"'],
        "equal": ["instance"],
    } in rules


def test_no_webhook_url_or_key_is_written_in_the_config() -> None:
    config = yaml.safe_load(render_alertmanager())
    for receiver in config["receivers"]:
        assert set(receiver) <= {"name", "slack_configs", "pagerduty_configs"}
        for slack in receiver.get("slack_configs", []):
            assert "api_url" not in slack and slack["api_url_file"].startswith("/etc/")
            assert slack["send_resolved"] is True
        for page in receiver.get("pagerduty_configs", []):
            assert not {"routing_key", "service_key", "service_key_file"} & set(page)
            assert page["routing_key_file"] == "/etc/alertmanager/secrets/pagerduty-routing-key"
            assert "url" not in page  # PagerDuty's own endpoint unless a test says otherwise
    files = {
        value.rsplit("/", 1)[1]
        for receiver in config["receivers"]
        for kind in ("slack_configs", "pagerduty_configs")
        for entry in receiver.get(kind, [])
        for key, value in entry.items()
        if key.endswith("_file")
    }
    assert files == set(SECRET_FILES)


def test_critical_pages_pagerduty_natively_and_nothing_else_does() -> None:
    receivers = {r["name"]: r for r in yaml.safe_load(render_alertmanager())["receivers"]}
    assert [r for r in receivers if "pagerduty_configs" in receivers[r]] == ["page"]
    page = receivers["page"]["pagerduty_configs"][0]
    assert page["send_resolved"] is True
    assert [link["text"] for link in page["links"]] == ["Runbook", "Dashboard"]
