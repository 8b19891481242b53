"""The generated artifacts Kubernetes mounts, copied under ``k8s/base/generated/``.

kustomize reads a ConfigMap's files only from inside the kustomization's own tree, so the
rule files, the Alertmanager configuration and template, and the dashboards with their
provisioning are copied there by ``sre generate``: the same bytes, held to the same
staleness check as every other generated file (the copies are never edited by hand).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["K8S_GENERATED", "k8s_copies"]

K8S_GENERATED = "k8s/base/generated"

# generated path → path under K8S_GENERATED
_RENAMES = {
    "alerts/generated/elibrary.rules.yaml": "alerts.rules.yaml",
    "slo/generated/elibrary.rules.yaml": "slos.rules.yaml",
    "alerts/generated/alertmanager.yml": "alertmanager.yml",
}
_DASHBOARDS = "dashboards/generated/"


def k8s_copies(artifacts: Mapping[str, str], alert_template: str) -> dict[str, str]:
    """Path → text of every copy, from the other generators' artifacts (path → text) and
    the Alertmanager notification template the configuration names."""
    missing = sorted(set(_RENAMES) - set(artifacts))
    if missing:
        raise KeyError(f"not generated: {', '.join(missing)}")
    copies = {f"{K8S_GENERATED}/{name}": artifacts[path] for path, name in _RENAMES.items()}
    copies[f"{K8S_GENERATED}/elibrary.tmpl"] = alert_template
    for path, text in artifacts.items():
        if not path.startswith(_DASHBOARDS):
            continue
        inner = path.removeprefix(_DASHBOARDS)
        # eLibrary/<uid>.json → grafana/dashboards/<uid>.json; provisioning/... kept
        inner = inner.replace("eLibrary/", "dashboards/", 1)
        copies[f"{K8S_GENERATED}/grafana/{inner}"] = text
    return copies
