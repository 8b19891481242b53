"""``sre generate`` copies what Kubernetes mounts under k8s/base/generated/, byte for byte."""

from __future__ import annotations

import pytest

from alerts import TEMPLATES_DIR
from sre.cli import all_artifacts
from sre.k8s import K8S_GENERATED, k8s_copies


def test_every_copy_is_the_generated_file_itself() -> None:
    artifacts = all_artifacts()
    copies = {p: t for p, t in artifacts.items() if p.startswith(f"{K8S_GENERATED}/")}
    originals = {
        "alerts.rules.yaml": "alerts/generated/elibrary.rules.yaml",
        "slos.rules.yaml": "slo/generated/elibrary.rules.yaml",
        "alertmanager.yml": "alerts/generated/alertmanager.yml",
        "grafana/dashboards/elibrary-service.json": (
            "dashboards/generated/eLibrary/elibrary-service.json"
        ),
        "grafana/provisioning/datasources/prometheus.yaml": (
            "dashboards/generated/provisioning/datasources/prometheus.yaml"
        ),
    }
    for copy, original in originals.items():
        assert copies[f"{K8S_GENERATED}/{copy}"] == artifacts[original]
    assert copies[f"{K8S_GENERATED}/elibrary.tmpl"] == (TEMPLATES_DIR / "elibrary.tmpl").read_text()
    dashboards = [p for p in artifacts if p.startswith("dashboards/generated/")]
    assert len(copies) == 4 + len(dashboards)


def test_a_missing_generator_output_is_named() -> None:
    with pytest.raises(KeyError, match=r"alerts/generated/alertmanager\.yml"):
        k8s_copies(
            {"alerts/generated/elibrary.rules.yaml": "", "slo/generated/elibrary.rules.yaml": ""},
            "",
        )
