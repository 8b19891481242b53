"""Prometheus durations (``5m``, ``1h30m``, ``4w``) to seconds and back.

Formatting follows Prometheus' own ``model.Duration.String()``: weeks and years only when
they divide exactly, so 28 days prints ``4w`` and 30 days ``30d``. Rule names built from a
window (``slo:sli_error:ratio_rate4w``) depend on that spelling, so it must match what
Sloth, which uses the same function, writes.
"""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_TERM = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_WHOLE = re.compile(r"^(?:\d+(?:ms|y|w|d|h|m|s))+$")


def parse_duration(text: str) -> int:
    """Whole seconds in a Prometheus duration; ValueError naming the text otherwise."""
    raw = str(text).strip()
    if not _WHOLE.match(raw):
        raise ValueError(f"{text!r} is not a duration such as 5m, 6h, 30d or 4w")
    millis = 0
    for number, unit in _TERM.findall(raw):
        millis += int(number) * (1 if unit == "ms" else _UNITS[unit] * 1000)
    if millis == 0 or millis % 1000:
        raise ValueError(f"{text!r} must be a positive whole number of seconds")
    return millis // 1000


def format_duration(seconds: int) -> str:
    """The shortest Prometheus spelling of ``seconds``, as Prometheus prints it."""
    if seconds <= 0:
        return "0s"
    parts = []
    rest = seconds
    for unit, size in _UNITS.items():
        exact_only = unit in ("y", "w")
        if exact_only and rest % size:
            continue
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
