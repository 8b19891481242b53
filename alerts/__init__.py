"""Alert rules as code, generated into committed Prometheus rule files (DESIGN.md)."""

from __future__ import annotations

from pathlib import Path

from alerts.render import render_prometheus_rule, render_rule_file
from alerts.rules import Alert, RuleGroup, build_rule_groups

__all__ = ["ARTIFACTS", "Alert", "RuleGroup", "build_artifacts", "build_rule_groups"]

_ROOT = Path(__file__).resolve().parent.parent
#: committed files this component generates, relative to the repository root
ARTIFACTS = ("alerts/generated/elibrary.rules.yaml", "k8s/base/prometheusrule-alerts.yaml")


def build_artifacts() -> dict[str, str]:
    """Every generated file's path (from the repository root) and content."""
    groups = build_rule_groups()
    return {ARTIFACTS[0]: render_rule_file(groups), ARTIFACTS[1]: render_prometheus_rule(groups)}
