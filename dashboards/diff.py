"""What changed between two versions of a dashboard, panel by panel.

A raw JSON diff of a regenerated dashboard is hundreds of lines of moved braces; a reviewer
wants "panel X added", "query B of panel Y now reads Z", "unit s → ms". Panels are matched
by their row and title (ids and grid positions move whenever a panel is inserted above).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["diff_dashboards"]

_IGNORED = frozenset({"id", "gridPos"})


def _keyed_panels(dashboard: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Panels by ``row / title`` (a repeated key gets ``#2``, ``#3``…)."""
    keyed: dict[str, dict[str, Any]] = {}
    row = ""

    def add(panel: dict[str, Any]) -> None:
        key = f"{row} / {panel.get('title', '')}" if row else str(panel.get("title", ""))
        n, unique = 1, key
        while unique in keyed:
            n += 1
            unique = f"{key} #{n}"
        keyed[unique] = panel

    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            row = str(panel.get("title", ""))
            for inner in panel.get("panels", []):
                add(inner)
        else:
            add(panel)
    return keyed


def _flatten(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(inner, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, inner in enumerate(value):
            yield from _flatten(inner, f"{path}[{i}]")
    else:
        yield path, value


def _changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    before, after = dict(_flatten(old)), dict(_flatten(new))
    lines = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            whole = path.endswith("expr")  # a query is read whole, never cut
            was, now = _show(before.get(path), whole), _show(after.get(path), whole)
            lines.append(f"{path}: {was} → {now}")
    return lines


def _show(value: Any, whole: bool = False) -> str:
    text = repr(value) if value is not None else "(none)"
    return text if whole or len(text) <= 120 else text[:117] + "..."


def _queries(panel: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(t.get("refId", i)): t for i, t in enumerate(panel.get("targets", []))}


def _panel_changes(key: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines = []
    old_queries, new_queries = _queries(old), _queries(new)
    for ref in sorted(set(old_queries) | set(new_queries)):
        if ref not in new_queries:
            lines.append(f'~ panel "{key}": query {ref} removed: {old_queries[ref].get("expr")}')
        elif ref not in old_queries:
            lines.append(f'~ panel "{key}": query {ref} added: {new_queries[ref].get("expr")}')
        else:
            for change in _changed_fields(old_queries[ref], new_queries[ref]):
                lines.append(f'~ panel "{key}": query {ref} {change}')
    rest_old = {k: v for k, v in old.items() if k not in _IGNORED | {"targets"}}
    rest_new = {k: v for k, v in new.items() if k not in _IGNORED | {"targets"}}
    lines.extend(f'~ panel "{key}": {c}' for c in _changed_fields(rest_old, rest_new))
    return lines


def diff_dashboards(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """Panel-level changes from ``old`` to ``new`` (either may be None: added, removed)."""
    if old is None and new is None:
        return []
    if old is None:
        assert new is not None
        return [f'+ dashboard "{new.get("title")}" ({len(_keyed_panels(new))} panels)']
    if new is None:
        return [f'- dashboard "{old.get("title")}"']
    lines = []
    old_panels, new_panels = _keyed_panels(old), _keyed_panels(new)
    for key in new_panels:
        if key not in old_panels:
            queries = ", ".join(str(t.get("expr")) for t in new_panels[key].get("targets", []))
            lines.append(f'+ panel "{key}" ({new_panels[key].get("type")}): {queries}')
    for key in old_panels:
        if key not in new_panels:
            lines.append(f'- panel "{key}"')
    for key in new_panels:
        if key in old_panels:
            lines.extend(_panel_changes(key, old_panels[key], new_panels[key]))
    moved = [
        key
        for key in new_panels
        if key in old_panels and old_panels[key].get("gridPos") != new_panels[key].get("gridPos")
    ]
    if moved and not any(line.startswith(("+", "-")) for line in lines):
        lines.append(f"~ layout: {len(moved)} panels moved")
    others = {k: v for k, v in new.items() if k != "panels"}
    before = {k: v for k, v in old.items() if k != "panels"}
    lines.extend(f"~ dashboard: {c}" for c in _changed_fields(before, others))
    return lines
