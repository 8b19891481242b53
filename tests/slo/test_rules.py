"""Rules: byte-identical to Sloth v0.16 for Sloth's own test specs, accepted by promtool,
and the project's committed rule files current.

Sloth's integration testdata (in-*.yaml → out-*.yaml.tpl, Apache-2.0, from
github.com/slok/sloth test/integration/prometheus/testdata at v0.16.0) is the reference;
only the version in the header and the ``sloth_version`` label differ, so both are
rendered with the version Sloth's templates name.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

import slo
from slo import BuildOptions, build_documents
from slo.render import SLOTH_HEADER, render_documents
from slo.spec import load_specs
from slo.windows import load_windows
from sre.generated import REPO_ROOT, stale_files
from tests.conftest import require_tool

TESTDATA = Path(__file__).parent / "testdata"
SLOTH = TESTDATA / "sloth"
VERSION = "v0.16.0"


def sloth_expected(name: str) -> str:
    """Sloth's golden template with its Go-template escapes and version filled in."""
    text = (SLOTH / name).read_text(encoding="utf-8")
    text = re.sub(r'\{\{"(.*?)"\}\}', lambda m: m.group(1), text)
    return text.replace("{{ .version }}", VERSION)


SLOTH_CASES: list[tuple[str, str, str, dict[str, Any], int, Path | None]] = [
    ("Sloth spec", "in-base.yaml", "out-base.yaml.tpl", {}, 30, None),
    ("Kubernetes spec", "in-base-k8s.yaml", "out-base-k8s.yaml.tpl", {}, 30, None),
    (
        "alerts disabled",
        "in-base.yaml",
        "out-base-no-alerts.yaml.tpl",
        {"disable_alerts": True},
        30,
        None,
    ),
    (
        "recordings disabled",
        "in-base.yaml",
        "out-base-no-recordings.yaml.tpl",
        {"disable_recordings": True},
        30,
        None,
    ),
    (
        "extra labels",
        "in-base.yaml",
        "out-base-extra-labels.yaml.tpl",
        {"extra_labels": {"exk1": "exv1", "exk2": "exv2"}},
        30,
        None,
    ),
    ("multi-document Sloth file", "in-multifile.yaml", "out-multifile.yaml.tpl", {}, 30, None),
    (
        "multi-document Kubernetes file",
        "in-multifile-k8s.yaml",
        "out-multifile-k8s.yaml.tpl",
        {},
        30,
        None,
    ),
    ("OpenSLO v1alpha", "in-openslo.yaml", "out-openslo.yaml.tpl", {}, 30, None),
    ("28-day period", "in-base.yaml", "out-base-28d.yaml.tpl", {}, 28, None),
    (
        "custom 7-day windows",
        "in-base.yaml",
        "out-base-custom-windows-7d.yaml.tpl",
        {},
        7,
        SLOTH / "windows",
    ),
]


@pytest.mark.parametrize(
    ("spec", "expected", "options", "days", "windows"),
    [case[1:] for case in SLOTH_CASES],
    ids=[case[0] for case in SLOTH_CASES],
)
def test_rules_are_what_sloth_generates(
    spec: str, expected: str, options: dict[str, Any], days: int, windows: Path | None
) -> None:
    catalog = load_windows(windows)
    documents = load_specs([SLOTH / spec], days * 86400, catalog)
    built = build_documents(documents, catalog, BuildOptions(version=VERSION, **options))
    header = SLOTH_HEADER.format(version=VERSION)
    assert render_documents(built, header, sloth_layout=True) == sloth_expected(expected)


def test_the_raw_period_form_computes_the_period_sli_with_rate() -> None:
    catalog = load_windows()
    documents = load_specs([SLOTH / "in-base.yaml"], catalog=catalog)
    built = build_documents(documents, catalog, BuildOptions(optimized=False))
    period = [
        rule for group in built[0][1] for rule in group.rules if rule.record.endswith("rate30d")
    ]
    assert len(period) == 2
    assert "[30d]" in period[0].expr and "sum_over_time" not in period[0].expr
    assert period[0].expr.startswith("(sum(rate(http_request_duration_seconds_count")


@pytest.mark.parametrize("name", ["openslo-v1"])
def test_own_golden_files(name: str, update_golden: bool) -> None:
    """Inputs Sloth has no reference for; regenerate with ``pytest --update-golden``."""
    catalog = load_windows()
    documents = load_specs([TESTDATA / f"in-{name}.yaml"], catalog=catalog)
    text = render_documents(build_documents(documents, catalog, BuildOptions(version=VERSION)))
    golden = TESTDATA / f"out-{name}.yaml"
    if update_golden:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_committed_files_match_what_generation_gives() -> None:
    assert stale_files(slo.build_artifacts()) == [], "run: sre generate"


@pytest.mark.parametrize("artifact", ["slo/generated/elibrary.rules.yaml"])
def test_promtool_accepts_the_committed_rules(artifact: str) -> None:
    promtool = require_tool("promtool", "prometheus")
    result = subprocess.run(
        [promtool, "check", "rules", str(REPO_ROOT / artifact)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 51 rules found" in result.stdout


UNIT_TESTS = sorted(TESTDATA.glob("*.test.yaml"))


@pytest.mark.parametrize("unit_test", UNIT_TESTS, ids=[p.stem for p in UNIT_TESTS])
def test_promtool_unit_tests_pass(unit_test: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    result = subprocess.run(
        [promtool, "test", "rules", str(unit_test)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_slo_alert_has_a_promtool_test_and_a_runbook() -> None:
    alerts = {
        rule.alert
        for _, groups in build_documents(
            load_specs([slo.SPECS_DIR]), load_windows(), BuildOptions()
        )
        for group in groups
        for rule in group.rules
        if rule.alert
    }
    tested = "".join(p.read_text() for p in UNIT_TESTS)
    for alert in sorted(alerts):
        assert f"alertname: {alert}" in tested, f"{alert} has no promtool test"
        runbook = REPO_ROOT / "docs" / "runbooks" / f"{alert}.md"
        assert runbook.is_file(), f"{alert} has no runbook at {runbook}"
