"""Walking a Grafana dashboard's JSON: its panels, their queries, and the queries with the
dashboard's variables substituted the way Grafana would before sending them to Prometheus.

The lint, the names check, the live-data check and the previews all read queries through
here, so they agree on what a panel asks Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUILTIN_DEFAULTS",
    "PanelQuery",
    "expand",
    "panel_queries",
    "panels",
    "variable_values",
]

# Grafana's built-in interval variables, at the values a 1-hour view of a 15s-scrape
# Prometheus gets: $__rate_interval is max($__interval + scrape interval, 4 x scrape interval).
BUILTIN_DEFAULTS: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

# $name, ${name}, ${name:format} and the deprecated [[name]].
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")


@dataclass(frozen=True)
class PanelQuery:
    """One Prometheus query of one panel."""

    dashboard_uid: str
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str
    legend: str
    hidden: bool
    #: the whole target as the panel has it (instant, format, interval...)
    target: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def where(self) -> str:
        """``uid: panel "title" (id) query A``, for messages."""
        panel = f'panel "{self.panel_title}" ({self.panel_id})'
        return f"{self.dashboard_uid}: {panel} query {self.ref_id}"


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that draws data, in order; rows are walked into (collapsed ones too) and
    not returned themselves."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every Prometheus query of every panel, raw (variables not substituted)."""
    uid = str(dashboard.get("uid", ""))
    found = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not expr:
                continue
            found.append(
                PanelQuery(
                    dashboard_uid=uid,
                    panel_id=int(panel.get("id", 0)),
                    panel_title=str(panel.get("title", "")),
                    ref_id=str(target.get("refId", "")),
                    expr=str(expr),
                    legend=str(target.get("legendFormat", "")),
                    hidden=bool(target.get("hide", False)),
                    target=target,
                )
            )
    return found


def variable_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """The value each template variable takes when every option is selected: its
    ``allValue`` (a regex such as ``.+``), else its current value, else ``.*``."""
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable.get("name")
        if not name:
            continue
        if variable.get("type") == "datasource":
            values[name] = "prometheus"
            continue
        value = variable.get("allValue")
        if not value:
            current = variable.get("current", {}).get("value")
            value = current if isinstance(current, str) and current else ".*"
        if value in ("$__all", "All"):
            value = ".*"
        values[name] = value
    return values


def expand(
    expr: str,
    variables: Mapping[str, str],
    builtins: Mapping[str, str] = BUILTIN_DEFAULTS,
) -> str:
    """``expr`` with every ``$variable`` replaced; an unknown variable is left as written,
    so the PromQL parser reports it where it stands."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in variables:
            return variables[name]
        if name in builtins:
            return builtins[name]
        return match.group(0)

    return _VARIABLE.sub(replace, expr)
