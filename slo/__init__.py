"""SLOs as code: Sloth-compatible specs in, recording rules and burn-rate alerts out."""

from __future__ import annotations

from collections.abc import Sequence

from slo.errors import SpecError
from slo.model import SLO, PeriodWindows, SpecDocument
from slo.rules import BuildOptions, RuleGroup, build_slo_groups

__all__ = ["SLO", "BuildOptions", "RuleGroup", "SpecDocument", "SpecError", "build_documents"]

# Sloth's sloth_mode label per input format
_MODES = {
    "sloth.slok.dev/v1": "cli-gen-k8s",
    "openslo/v1alpha": "cli-gen-openslo",
    "openslo/v1": "cli-gen-openslo",
}


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
