"""Grafana's own schema, as a check: a dashboard must survive a round trip through the
Python models Grafana generates from its schema (grafana-foundation-sdk, pinned to the
Grafana 11.6 build) without losing a key or changing a value's type.

The models drop what the schema does not know (a legacy key, a misspelt option) and
decode each panel's ``options``/``fieldConfig.custom`` with that panel type's own model,
so a key that vanishes on the way back is a key Grafana would not read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

__all__ = ["SCHEMA_VERSION", "round_trip", "schema_problems"]

#: The schemaVersion the pinned Grafana build writes.
SCHEMA_VERSION = Dashboard().schema_version

register_default_plugins()


def round_trip(dashboard: Mapping[str, Any]) -> dict[str, Any]:
    """The dashboard decoded into Grafana's models and encoded back."""
    model = Dashboard.from_json(json.loads(json.dumps(dashboard)))
    encoded: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return encoded


def schema_problems(dashboard: Mapping[str, Any]) -> list[str]:
    """Every key the round trip loses and every value whose JSON type it changes, as
    ``uid: path: problem``; empty when Grafana's models read the dashboard whole."""
    uid = str(dashboard.get("uid", "?"))
    problems: list[str] = []
    if dashboard.get("schemaVersion") != SCHEMA_VERSION:
        problems.append(
            f"{uid}: schemaVersion: {dashboard.get('schemaVersion')} is not the pinned "
            f"Grafana's {SCHEMA_VERSION}"
        )
    try:
        back = round_trip(dashboard)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [*problems, f"{uid}: Grafana's models cannot read it: {exc!r}"]
    _compare(dashboard, back, uid, problems)
    return problems


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _compare(original: Any, back: Any, path: str, problems: list[str]) -> None:
    if _kind(original) != _kind(back):
        problems.append(f"{path}: {_kind(original)} came back as {_kind(back)}")
        return
    if isinstance(original, dict):
        for key, value in original.items():
            here = f"{path}.{key}" if path else key
            if key not in back:
                problems.append(f"{here}: not in Grafana's schema (lost on the round trip)")
            else:
                _compare(value, back[key], here, problems)
    elif isinstance(original, list):
        if len(original) != len(back):
            problems.append(f"{path}: {len(original)} items came back as {len(back)}")
            return
        for i, (a, b) in enumerate(zip(original, back, strict=True)):
            label = (
                a.get("title") or a.get("refId") or a.get("name") if isinstance(a, dict) else None
            )
            _compare(a, b, f"{path}[{i}{f' {label!r}' if label else ''}]", problems)
    elif original != back:
        problems.append(f"{path}: {original!r} came back as {back!r}")
