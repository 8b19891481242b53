"""The alert windows catalog: one ``AlertWindows`` file per SLO period.

The format is Sloth's (``apiVersion: sloth.slok.dev/v1``, ``kind: AlertWindows``), so a
team's custom catalog (``sloth generate --slo-period-windows-path``) works unchanged. The
defaults for 30 and 28 days ship in ``slo/windows/``; a custom directory replaces them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from slo.errors import SpecError
from slo.model import AlertWindow, PeriodWindows
from sre.durations import format_duration, parse_duration

__all__ = ["DEFAULT_WINDOWS_DIR", "load_windows"]

DEFAULT_WINDOWS_DIR = Path(__file__).resolve().parent / "windows"
_CONDITIONS = (("page", "quick"), ("page", "slow"), ("ticket", "quick"), ("ticket", "slow"))


def load_windows(directory: Path | None = None) -> dict[int, PeriodWindows]:
    """Every period's windows, keyed by the period in seconds; SpecError on a bad file."""
    root = directory or DEFAULT_WINDOWS_DIR
    if not root.is_dir():
        raise SpecError(str(root), None, "no such directory of alert windows")
    catalog: dict[int, PeriodWindows] = {}
    problems: list[SpecError] = []
    files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    for path in files:
        try:
            windows = _parse(str(path), yaml.safe_load(path.read_text(encoding="utf-8")))
        except SpecError as exc:
            problems.append(exc)
            continue
        except yaml.YAMLError as exc:
            problems.append(SpecError(str(path), None, f"not valid YAML: {exc}"))
            continue
        known = catalog.get(windows.period_s)
        if known is not None and known != windows:
            period = format_duration(windows.period_s)
            problems.append(SpecError(str(path), "spec.sloPeriod", f"{period} is defined twice"))
        catalog[windows.period_s] = windows
    if problems:
        raise SpecError(problems[0].file, problems[0].entry, problems[0].problem, problems[1:])
    if not catalog:
        raise SpecError(str(root), None, "holds no AlertWindows file (*.yaml)")
    return catalog


def _parse(file: str, data: Any) -> PeriodWindows:
    if not isinstance(data, dict):
        raise SpecError(file, None, "must be a YAML mapping (kind: AlertWindows)")
    if data.get("apiVersion") != "sloth.slok.dev/v1" or data.get("kind") != "AlertWindows":
        raise SpecError(file, "kind", "must be apiVersion sloth.slok.dev/v1, kind AlertWindows")
    spec = data.get("spec")
    if not isinstance(spec, dict):
        raise SpecError(file, "spec", "required mapping")
    period = _duration(file, "spec.sloPeriod", spec.get("sloPeriod"))
    conditions = []
    for severity, speed in _CONDITIONS:
        where = f"spec.{severity}.{speed}"
        entry = (spec.get(severity) or {}).get(speed)
        if not isinstance(entry, dict):
            raise SpecError(file, where, "required mapping")
        budget = entry.get("errorBudgetPercent")
        if isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget <= 100:
            raise SpecError(file, f"{where}.errorBudgetPercent", "must be a number in (0, 100]")
        short = _duration(file, f"{where}.shortWindow", entry.get("shortWindow"))
        long = _duration(file, f"{where}.longWindow", entry.get("longWindow"))
        if short >= long:
            raise SpecError(file, f"{where}.shortWindow", "must be shorter than longWindow")
        conditions.append(AlertWindow(float(budget), short, long))
    return PeriodWindows(period, *conditions)


def _duration(file: str, entry: str, raw: Any) -> int:
    if raw is None:
        raise SpecError(file, entry, "required")
    try:
        return parse_duration(str(raw))
    except ValueError as exc:
        raise SpecError(file, entry, str(exc)) from None
