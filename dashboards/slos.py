"""The SLOs a rule file records, read back from Sloth's rule names and labels.

The SLO dashboard gets one row per SLO from the generated rules (slo/'s output, passed in
as text), not from slo/'s code: components read each other's output only, and anything
that follows Sloth's naming (Sloth itself, or our ``sre slo build``) gets its rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from sre.errors import SreError

__all__ = ["SloAlert", "SloInfo", "slos_in_rules"]

_RATE_RULE = re.compile(r"^slo:sli_error:ratio_rate(?P<window>\d+[smhdwy])$")
_SLOTH_ID = re.compile(r'sloth_id="([^"]+)"')
_VECTOR = re.compile(r"^\s*vector\(\s*(?P<value>[0-9.eE+-]+)\s*\)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


@dataclass(frozen=True)
class SloAlert:
    name: str
    severity: str  # Sloth's sloth_severity: page or ticket


@dataclass(frozen=True)
class SloInfo:
    """One SLO as its rules record it."""

    sloth_id: str
    service: str
    name: str
    objective: float  # a ratio, 0.999
    period_days: int
    windows: tuple[str, ...]  # the SLI error-ratio windows recorded, shortest first
    alerts: tuple[SloAlert, ...]

    @property
    def selector(self) -> str:
        """Sloth's three labels, as every SLO rule carries them."""
        return (
            f'{{sloth_id="{self.sloth_id}", sloth_service="{self.service}", '
            f'sloth_slo="{self.name}"}}'
        )

    @property
    def objective_percent(self) -> str:
        return f"{self.objective * 100:.10g}%"


def slos_in_rules(text: str, source: str) -> list[SloInfo]:
    """Every SLO of a Prometheus rule file written by Sloth or ``sre slo build``, in the
    order of the file. ``source`` names the file in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SreError(source, None, f"not YAML: {exc}") from None
    groups = data.get("groups") if isinstance(data, dict) else None
    if groups is None and isinstance(data, dict):  # a PrometheusRule manifest
        groups = (data.get("spec") or {}).get("groups")
    if not isinstance(groups, list):
        raise SreError(source, None, "no rule groups")
    found: dict[str, dict[str, Any]] = {}
    for group in groups:
        for rule in group.get("rules") or []:
            labels = rule.get("labels") or {}
            # Sloth's alerts carry the id in their expression (the recordings' labels).
            in_expr = _SLOTH_ID.search(str(rule.get("expr", ""))) if "alert" in rule else None
            sloth_id = labels.get("sloth_id") or (in_expr[1] if in_expr else None)
            if not sloth_id:
                continue
            slo = found.setdefault(
                sloth_id,
                {
                    "service": labels.get("sloth_service", ""),
                    "name": labels.get("sloth_slo", ""),
                    "windows": [],
                    "alerts": [],
                },
            )
            _collect(slo, rule, labels, source)
    slos = []
    for sloth_id, slo in found.items():
        if "objective" not in slo:
            raise SreError(source, sloth_id, "no slo:objective:ratio rule")
        windows = sorted(slo["windows"], key=_seconds)
        slos.append(
            SloInfo(
                sloth_id=sloth_id,
                service=slo["service"],
                name=slo["name"],
                objective=slo["objective"],
                period_days=int(slo.get("period_days", 30)),
                windows=tuple(windows),
                alerts=tuple(slo["alerts"]),
            )
        )
    return slos


def _collect(
    slo: dict[str, Any], rule: dict[str, Any], labels: dict[str, Any], source: str
) -> None:
    record = rule.get("record", "")
    if "alert" in rule:
        alert = SloAlert(str(rule["alert"]), str(labels.get("sloth_severity", "")))
        if alert not in slo["alerts"]:
            slo["alerts"].append(alert)
    elif record == "slo:objective:ratio":
        slo["objective"] = _constant(rule, source)
    elif record == "slo:time_period:days":
        slo["period_days"] = _constant(rule, source)
    elif match := _RATE_RULE.match(record):
        slo["windows"].append(match["window"])


def _constant(rule: dict[str, Any], source: str) -> float:
    match = _VECTOR.match(str(rule.get("expr", "")))
    if match is None:
        raise SreError(source, rule.get("record"), f"not vector(<number>): {rule.get('expr')}")
    return float(match["value"])


def _seconds(window: str) -> int:
    return int(window[:-1]) * _UNIT_SECONDS[window[-1]]
