"""Alert rules: generated files are current, promtool accepts them, and the promtool unit
tests in testdata/ pass (each alert fires when it should and stays silent otherwise)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from alerts import ARTIFACTS, build_artifacts, build_rule_groups
from alerts.rules import Alert
from sre.generated import REPO_ROOT, stale_files
from tests.conftest import require_tool

TESTDATA = Path(__file__).parent / "testdata"
UNIT_TESTS = sorted(TESTDATA.glob("*.test.yaml"))


def promtool() -> str:
    return require_tool("promtool", "prometheus")


def test_committed_files_match_what_generation_gives() -> None:
    assert stale_files(build_artifacts()) == [], "run: sre generate"


def test_promtool_accepts_the_rule_file() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(REPO_ROOT / ARTIFACTS[0])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("unit_test", UNIT_TESTS, ids=[p.stem for p in UNIT_TESTS])
def test_promtool_unit_tests_pass(unit_test: Path) -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(unit_test)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_the_labels_and_annotations_on_call_needs() -> None:
    alerts = [a for g in build_rule_groups() for a in g.alerts]
    assert len({a.name for a in alerts}) == len(alerts)
    for alert in alerts:
        rule = alert.to_dict()
        assert rule["labels"]["severity"] in ("critical", "warning", "info")  # type: ignore[index]
        assert set(rule["annotations"]) == {  # type: ignore[arg-type]
            "summary",
            "description",
            "runbook_url",
            "dashboard_url",
        }


def test_the_prometheus_rule_manifest_holds_the_same_groups() -> None:
    files = build_artifacts()
    plain = yaml.safe_load(files[ARTIFACTS[0]])
    manifest = yaml.safe_load(files[ARTIFACTS[1]])
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["spec"]["groups"] == plain["groups"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"severity": "page"}, "severity 'page'"), ({"name": "lower_case"}, "PascalCase")],
    ids=["unknown severity", "alert name not PascalCase"],
)
def test_alert_definitions_are_checked(fields: dict[str, str], message: str) -> None:
    base = {
        "name": "Fine",
        "expr": "up == 0",
        "for_": "1m",
        "severity": "warning",
        "summary": "s",
        "description": "d",
        "dashboard_uid": "x",
    }
    with pytest.raises(ValueError, match=message):
        Alert(**{**base, **fields})


def test_generation_writes_what_is_stale_and_then_nothing(tmp_path: Path) -> None:
    from sre.generated import write_files

    artifacts = build_artifacts()
    assert stale_files(artifacts, tmp_path) == sorted(artifacts)
    assert sorted(write_files(artifacts, tmp_path)) == sorted(artifacts)
    assert stale_files(artifacts, tmp_path) == []
    (tmp_path / ARTIFACTS[0]).write_text("hand edited\n")
    assert stale_files(artifacts, tmp_path) == [ARTIFACTS[0]]


def test_generate_check_exits_1_on_drift(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sre.cli import main

    result = CliRunner().invoke(main, ["generate", "--check"])
    assert result.exit_code == 0, result.output
    target = REPO_ROOT / ARTIFACTS[0]
    original = target.read_text()
    try:
        target.write_text(original + "# drift\n")
        drift = CliRunner().invoke(main, ["alerts", "build", "--check"])
        assert drift.exit_code == 1
        assert f"stale: {ARTIFACTS[0]}" in drift.output
    finally:
        target.write_text(original)


def test_every_alert_has_a_promtool_unit_test() -> None:
    tested = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {t["alertname"] for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
    defined = {a.name for g in build_rule_groups() for a in g.alerts}
    assert defined - tested == set(), "alerts without a firing unit test"


def test_every_alert_has_a_runbook_with_its_four_parts() -> None:
    for alert in (a for g in build_rule_groups() for a in g.alerts):
        runbook = REPO_ROOT / "docs" / "runbooks" / f"{alert.name}.md"
        assert runbook.is_file(), f"missing {runbook}"
        text = runbook.read_text()
        for section in (
            "## What it means",
            "## How to check",
            "## How to fix",
            "## How to silence",
        ):
            assert section in text, f"{runbook}: no {section!r}"


@pytest.mark.parametrize(
    ("expr", "scaled"),
    [
        ("rate(x[5m]) > 0", "rate(x[10s]) > 0"),
        ("x offset 1d", "x offset 2880s"),
        ("increase(x[10m]) > 0 and y offset 10m", "increase(x[20s]) > 0 and y offset 20s"),
        ("max_over_time(x[1m])", "max_over_time(x[2s])"),
        ("histogram_quantile(0.95, x) > 0.2", "histogram_quantile(0.95, x) > 0.2"),
    ],
    ids=["range", "offset in days", "range and offset", "short range", "numbers untouched"],
)
def test_test_stacks_scale_rule_durations(expr: str, scaled: str) -> None:
    from sre.stack import scale_durations

    text = yaml.safe_dump(
        {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": expr, "for": "5m"}]}]}
    )
    rule = yaml.safe_load(scale_durations(text, 30))["groups"][0]["rules"][0]
    assert rule["expr"] == scaled
    assert rule["for"] == "10s"
