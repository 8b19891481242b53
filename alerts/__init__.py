"""Alert rules as code, generated into committed Prometheus rule files (DESIGN.md)."""

from __future__ import annotations

from pathlib import Path

from alerts.alertmanager import AlertmanagerSettings, build_alertmanager_config
from alerts.render import HEADER, dump_yaml, render_prometheus_rule, render_rule_file
from alerts.rules import Alert, RuleGroup, build_rule_groups

__all__ = [
    "ARTIFACTS",
    "HEADER",
    "TEMPLATES_DIR",
    "Alert",
    "AlertmanagerSettings",
    "RuleGroup",
    "build_artifacts",
    "build_rule_groups",
    "render_alertmanager",
]

_ROOT = Path(__file__).resolve().parent.parent
#: committed files this component generates, relative to the repository root
ARTIFACTS = (
    "alerts/generated/elibrary.rules.yaml",
    "k8s/components/prometheus-operator/prometheusrule-alerts.yaml",
    "alerts/generated/alertmanager.yml",
)
#: the Slack message templates alertmanager.yml names (hand-written, not generated)
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def build_artifacts() -> dict[str, str]:
    """Every generated file's path (from the repository root) and content."""
    groups = build_rule_groups()
    return {
        ARTIFACTS[0]: render_rule_file(groups),
        ARTIFACTS[1]: render_prometheus_rule(groups),
        ARTIFACTS[2]: render_alertmanager(),
    }


def render_alertmanager(settings: AlertmanagerSettings | None = None) -> str:
    """alertmanager.yml as text."""
    return dump_yaml(build_alertmanager_config(settings))
