"""SLOs as code: Sloth-compatible specs in, recording rules and burn-rate alerts out.

``build_artifacts()`` gives the committed files (``sre slo build``/``sre generate``);
``build_documents()`` turns loaded specs into rule groups for any other output.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from slo.errors import SpecError
from slo.model import SLO, PeriodWindows, SpecDocument
from slo.render import HEADER, render_documents, render_prometheus_rule
from slo.rules import BuildOptions, RuleGroup, build_slo_groups
from slo.spec import DEFAULT_PERIOD_S, SPECS_DIR, load_specs
from slo.windows import load_windows

__all__ = [
    "K8S_ARTIFACT",
    "SLO",
    "SPECS_DIR",
    "BuildOptions",
    "RuleGroup",
    "SpecDocument",
    "SpecError",
    "build_artifacts",
    "build_documents",
    "sloth_version",
]

#: the PrometheusRule holding every project SLO's rules, for k8s/
K8S_ARTIFACT = "k8s/components/prometheus-operator/prometheusrule-slos.yaml"
_GENERATED_DIR = "slo/generated"
# Sloth's sloth_mode label per input format
_MODES = {
    "sloth.slok.dev/v1": "cli-gen-k8s",
    "openslo/v1alpha": "cli-gen-openslo",
    "openslo/v1": "cli-gen-openslo",
}


def sloth_version() -> str:
    """The ``sloth_version`` label our rules carry: this toolkit and its version."""
    try:
        return f"sre-{version('elibrary-sre')}"
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "sre-dev"


def build_documents(
    documents: Sequence[SpecDocument],
    catalog: dict[int, PeriodWindows],
    options: BuildOptions,
) -> list[tuple[SpecDocument, list[RuleGroup]]]:
    """Each spec document with the rule groups of its SLOs, in spec order."""
    built = []
    for document in documents:
        mode = _MODES.get(document.kind, "cli-gen-prom")
        groups: list[RuleGroup] = []
        for slo in document.slos:
            windows = catalog[slo.period_s]
            groups.extend(build_slo_groups(slo, windows, options, document.kind, mode))
        built.append((document, groups))
    return built


def build_artifacts(specs_dir: Path = SPECS_DIR) -> dict[str, str]:
    """The committed files: a rule file per spec in slo/specs, and one PrometheusRule."""
    catalog = load_windows()
    documents = load_specs([specs_dir], DEFAULT_PERIOD_S, catalog)
    built = build_documents(documents, catalog, BuildOptions(version=sloth_version()))
    artifacts: dict[str, str] = {}
    for file in dict.fromkeys(document.file for document in documents):
        mine = [(d, groups) for d, groups in built if d.file == file]
        artifacts[f"{_GENERATED_DIR}/{Path(file).stem}.rules.yaml"] = render_documents(mine)
    every_group = [group for _, groups in built for group in groups]
    labels = {"app.kubernetes.io/part-of": "elibrary", "app.kubernetes.io/component": "slo"}
    artifacts[K8S_ARTIFACT] = HEADER + render_prometheus_rule(
        every_group, "elibrary-slos", labels=labels
    )
    return artifacts
