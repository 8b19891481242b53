"""SLO status over a time range, read from Prometheus (``sre slo report``).

For each SLO, over ``[start, end]``:

- the SLI over the whole range: the SLI's own queries with ``{{.window}}`` set to the
  range's length, evaluated at ``end`` (good ratio = 1 - error ratio);
- the error budget remaining over the SLO period
  (``slo:period_error_budget_remaining:ratio`` at ``end``);
- the burn rate now, per alert window of the catalog
  (``slo:sli_error:ratio_rate<w>`` at ``end`` divided by the error budget, 1 - objective);
- the alerts that fired in the range (``ALERTS{alertstate="firing", sloth_id=...}``), with
  their first and last time seen firing.

Sloth's SLI rules divide the error rate by the total rate, so a window without a single
error series (a service that never answered 5xx since it started) records nothing. A
missing recorded window or period series is therefore computed from the SLI's queries
instead (no error series means zero errors). An SLO with no data at all is an error: its
rules not loaded in this Prometheus (``slo:objective:ratio`` missing), or its SLI's total
has no series over the range.

The shape is the project's (STYLE.md): :func:`fetch_raw` is the only I/O and returns plain
numbers (:class:`RawReport`); :func:`build_report` turns them into the :class:`Report`
model; ``render_*`` are pure functions of that model.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slo.errors import SpecError
from slo.model import SLO, EventsSLI, PeriodWindows
from slo.rules import sli_error_metric, slo_selector
from slo.spec import render_query
from sre.durations import format_duration
from sre.prometheus import NoDataError, PrometheusClient, PrometheusError, one_line, redact_url

__all__ = [
    "FiredAlert",
    "NoDataError",
    "PrometheusError",
    "RawAlert",
    "RawReport",
    "RawSlo",
    "Report",
    "SloReport",
    "Table",
    "WindowBurn",
    "build_report",
    "fetch_raw",
    "fetch_report",
    "redact_url",
    "render_json",
    "render_markdown",
    "render_table",
    "report_heading",
    "report_summary",
    "report_tables",
]

#: at most this many points per alert series in the range query (Prometheus allows 11000)
_MAX_POINTS = 5000
_NA = "n/a"
#: a formatted number cell: 99.9%, 12.34, n/a, or empty
_NUMBER = re.compile(r"-?[0-9.]+%?|n/a|")


# --- raw numbers (what Prometheus said) ---------------------------------------------------


@dataclass(frozen=True)
class RawAlert:
    """One ``ALERTS`` series of an SLO and the times (Unix seconds) it was seen firing."""

    name: str
    severity: str
    timestamps: tuple[float, ...]


@dataclass(frozen=True)
class RawSlo:
    """The numbers read for one SLO; ``None`` where Prometheus had no value (or NaN)."""

    slo: SLO
    #: error ratio (0..1) over the report's range, from the SLI's own queries
    range_error_ratio: float | None
    #: ``slo:period_error_budget_remaining:ratio`` at the end of the range
    budget_remaining: float | None
    #: the period's error ratio from the SLI's queries, read only when the above is missing
    period_error_ratio: float | None
    #: error ratio per alert window (seconds) at the end of the range
    window_error_ratios: Mapping[int, float | None]
    alerts: tuple[RawAlert, ...] = ()


@dataclass(frozen=True)
class RawReport:
    """Everything one report needs, as read from Prometheus."""

    #: the Prometheus URL without credentials
    prometheus_url: str
    start: datetime
    end: datetime
    slos: tuple[RawSlo, ...]


# --- the report model ---------------------------------------------------------------------


@dataclass(frozen=True)
class WindowBurn:
    """One alert window: its error ratio now and how fast that spends the budget."""

    window_s: int
    error_ratio: float | None
    #: error ratio / error budget; 1 spends exactly the budget over the SLO period
    burn_rate: float | None


@dataclass(frozen=True)
class FiredAlert:
    """An SLO alert that fired in the range: first and last time it was seen firing."""

    name: str
    #: Sloth's ``sloth_severity``: page or ticket
    severity: str
    first: datetime
    last: datetime


@dataclass(frozen=True)
class SloReport:
    """One SLO's status over the range."""

    id: str
    name: str
    service: str
    #: percent of good events, as in the spec (99.9)
    objective: float
    period_s: int
    #: error ratio over the range (0..1); None when the range holds no events
    error_ratio: float | None
    #: share of the period's error budget left (1 = untouched, below 0 = overspent)
    budget_remaining: float | None
    windows: tuple[WindowBurn, ...] = ()
    alerts: tuple[FiredAlert, ...] = ()

    @property
    def error_budget(self) -> float:
        """The error ratio the objective allows (0.001 for 99.9)."""
        return 1 - self.objective / 100

    @property
    def good_ratio(self) -> float | None:
        """The SLI over the range: good events / all events."""
        return None if self.error_ratio is None else 1 - self.error_ratio

    @property
    def burn_rate(self) -> float | None:
        """How fast the range spent the budget (1 = exactly as fast as the period allows)."""
        return None if self.error_ratio is None else self.error_ratio / self.error_budget

    @property
    def status(self) -> str:
        """``exhausted`` (no budget left), ``burning`` (the range burnt faster than 1, or an
        alert fired), ``no events`` (nothing to measure in the range) or ``ok``."""
        if self.budget_remaining is not None and self.budget_remaining <= 0:
            return "exhausted"
        burn = self.burn_rate
        if (burn is not None and burn > 1) or self.alerts:
            return "burning"
        return "no events" if self.error_ratio is None else "ok"


@dataclass(frozen=True)
class Report:
    """The status of every SLO over ``[start, end]``."""

    prometheus_url: str
    start: datetime
    end: datetime
    slos: tuple[SloReport, ...] = field(default_factory=tuple)

    @property
    def range_s(self) -> int:
        """The range's length in whole seconds (at least 1)."""
        return max(1, round((self.end - self.start).total_seconds()))

    @property
    def burning(self) -> tuple[SloReport, ...]:
        """The SLOs spending their budget too fast, or with none left."""
        return tuple(s for s in self.slos if s.status in ("burning", "exhausted"))


# --- I/O: reading Prometheus --------------------------------------------------------------


def fetch_report(
    prometheus_url: str,
    slos: Sequence[SLO],
    catalog: Mapping[int, PeriodWindows],
    start: datetime,
    end: datetime,
) -> Report:
    """The report of ``slos`` over ``[start, end]``; PrometheusError, NoDataError otherwise."""
    return build_report(fetch_raw(prometheus_url, slos, catalog, start, end))


def fetch_raw(
    prometheus_url: str,
    slos: Sequence[SLO],
    catalog: Mapping[int, PeriodWindows],
    start: datetime,
    end: datetime,
    timeout_s: int = 30,
) -> RawReport:
    """Read every number the report needs; all SLOs without data are raised together.

    The range is cut to whole seconds (the API client rounds range queries to them).
    """
    start, end = (_utc(t).replace(microsecond=0) for t in (start, end))
    if end <= start:
        raise SpecError(None, "--start", f"{_iso(start)} is not before the end {_iso(end)}")
    missing = [s for s in slos if s.period_s not in catalog]
    if missing:
        period = format_duration(missing[0].period_s)
        raise SpecError(None, f"SLO {missing[0].id}", f"no alert windows for a {period} period")
    prometheus = PrometheusClient(prometheus_url, timeout_s, retries=2)
    try:
        problems: list[NoDataError] = []
        raw = [_fetch_slo(prometheus, s, catalog[s.period_s], start, end, problems) for s in slos]
    finally:
        prometheus.close()
    if problems:
        first = problems[0]
        raise NoDataError(first.file, first.entry, first.problem, problems[1:])
    return RawReport(prometheus.url, start, end, tuple(r for r in raw if r is not None))


def _fetch_slo(
    prometheus: PrometheusClient,
    slo: SLO,
    windows: PeriodWindows,
    start: datetime,
    end: datetime,
    problems: list[NoDataError],
) -> RawSlo | None:
    where = f"SLO {slo.id}"
    selector = slo_selector(slo)
    recorded: dict[str, float] = {}
    for series in prometheus.instant('{__name__=~"slo:.+", ' + selector[1:], end.timestamp()):
        recorded[series["metric"].get("__name__", "")] = _number(series["value"][1])
    if "slo:objective:ratio" not in recorded:
        problems.append(
            NoDataError(
                prometheus.url,
                where,
                f"no series slo:objective:ratio{selector} at {_iso(end)}: the SLO's rules "
                "are not loaded in this Prometheus (sre slo build writes them)",
            )
        )
        return None
    range_s = max(1, round((end - start).total_seconds()))
    found, range_ratio = _sli_ratio(prometheus, slo, range_s, end)
    if not found:
        query = slo.sli.total_query if isinstance(slo.sli, EventsSLI) else slo.sli.error_ratio_query
        problems.append(
            NoDataError(
                prometheus.url,
                where,
                f"no data for {one_line(render_query(query, range_s))} over "
                f"{format_duration(range_s)} to {_iso(end)}: nothing scraped for the SLI",
            )
        )
        return None
    ratios: dict[int, float | None] = {}
    for window in windows.windows():
        metric = sli_error_metric(window)
        if metric in recorded:
            ratios[window] = recorded[metric]
        else:  # Sloth records nothing while the error query is empty: ask the SLI itself
            ratios[window] = _sli_ratio(prometheus, slo, window, end)[1]
    budget = recorded.get("slo:period_error_budget_remaining:ratio")
    period_ratio = None
    if budget is None:
        period_ratio = _sli_ratio(prometheus, slo, slo.period_s, end)[1]
    return RawSlo(
        slo=slo,
        range_error_ratio=range_ratio,
        budget_remaining=budget,
        period_error_ratio=period_ratio,
        window_error_ratios=ratios,
        alerts=_fetch_alerts(prometheus, slo, start, end),
    )


def _sli_ratio(
    prometheus: PrometheusClient, slo: SLO, window_s: int, at: datetime
) -> tuple[bool, float | None]:
    """Whether the SLI has any series over the window, and its error ratio (None: no events).

    Several series in a result are summed: the ratio of the sums, as one SLI.
    """
    if isinstance(slo.sli, EventsSLI):
        total = prometheus.instant(render_query(slo.sli.total_query, window_s), at.timestamp())
        if not total:
            return False, None
        errors = prometheus.instant(render_query(slo.sli.error_query, window_s), at.timestamp())
        total_sum = sum(_number(s["value"][1]) for s in total)
        error_sum = sum(_number(s["value"][1]) for s in errors)  # no error series: no errors
        if not total_sum > 0:  # zero events, or NaN
            return True, None
        return True, error_sum / total_sum
    ratio = prometheus.instant(render_query(slo.sli.error_ratio_query, window_s), at.timestamp())
    if not ratio:
        return False, None
    values = [_number(s["value"][1]) for s in ratio]
    return True, sum(values) / len(values)


def _fetch_alerts(
    prometheus: PrometheusClient, slo: SLO, start: datetime, end: datetime
) -> tuple[RawAlert, ...]:
    range_s = max(1, round((end - start).total_seconds()))
    step = max(1, math.ceil(range_s / _MAX_POINTS))
    # max_over_time over one step sees every firing sample, even one shorter than the step
    query = f'max_over_time(ALERTS{{alertstate="firing", sloth_id="{slo.id}"}}[{step}s])'
    alerts = []
    for series in prometheus.span(query, start, end, step):
        labels = series["metric"]
        times = tuple(float(t) for t, _ in series.get("values", []))
        if times:
            name, severity = labels.get("alertname", ""), labels.get("sloth_severity", "")
            alerts.append(RawAlert(name, severity, times))
    return tuple(alerts)


def _number(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def _utc(moment: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --- pure: the report model -----------------------------------------------------------------


def build_report(raw: RawReport) -> Report:
    """The report model from the numbers read (no I/O)."""
    return Report(
        prometheus_url=raw.prometheus_url,
        start=_utc(raw.start),
        end=_utc(raw.end),
        slos=tuple(_slo_report(item) for item in raw.slos),
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _slo_report(raw: RawSlo) -> SloReport:
    slo = raw.slo
    budget = 1 - slo.objective / 100
    remaining = _finite(raw.budget_remaining)
    period_ratio = _finite(raw.period_error_ratio)
    if remaining is None and period_ratio is not None:
        remaining = 1 - period_ratio / budget
    windows = []
    for window in sorted(raw.window_error_ratios):
        ratio = _finite(raw.window_error_ratios[window])
        windows.append(WindowBurn(window, ratio, None if ratio is None else ratio / budget))
    return SloReport(
        id=slo.id,
        name=slo.name,
        service=slo.service,
        objective=slo.objective,
        period_s=slo.period_s,
        error_ratio=_finite(raw.range_error_ratio),
        budget_remaining=remaining,
        windows=tuple(windows),
        alerts=_merge_alerts(raw.alerts),
    )


def _merge_alerts(alerts: Sequence[RawAlert]) -> tuple[FiredAlert, ...]:
    """One entry per alert name and severity (label sets merged), in order of first firing."""
    spans: dict[tuple[str, str], tuple[float, float]] = {}
    for alert in alerts:
        key = (alert.name, alert.severity)
        first, last = min(alert.timestamps), max(alert.timestamps)
        if key in spans:
            first, last = min(first, spans[key][0]), max(last, spans[key][1])
        spans[key] = (first, last)
    merged = [
        FiredAlert(name, severity, _from_unix(first), _from_unix(last))
        for (name, severity), (first, last) in spans.items()
    ]
    return tuple(sorted(merged, key=lambda a: (a.first, a.name, a.severity)))


def _from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --- pure: renderers ------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%d %H:%M:%SZ")


def _percent(value: float | None, digits: int) -> str:
    return _NA if value is None else f"{value * 100:.{digits}f}%"


def _rate(value: float | None) -> str:
    return _NA if value is None else f"{value:.2f}"


def report_summary(report: Report) -> str:
    """``3 SLOs, 1 burning budget`` or ``3 SLOs, all within budget``."""
    count = len(report.slos)
    burning = len(report.burning)
    slos = f"{count} SLO" + ("" if count == 1 else "s")
    return f"{slos}, {burning} burning budget" if burning else f"{slos}, all within budget"


def report_heading(report: Report) -> str:
    """``SLO report, <start> to <end> (<length>)``, in UTC."""
    length = format_duration(report.range_s)
    return f"SLO report, {_when(report.start)} to {_when(report.end)} ({length})"


@dataclass(frozen=True)
class Table:
    """One table of a report, as text cells; every renderer draws the same tables."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    #: a line explaining the table, shown under its title
    note: str = ""
    #: what stands in for the table when it has no rows
    empty: str = ""
    #: the column holding a status word (a renderer may colour it), or -1
    status_column: int = -1

    def right_aligned(self) -> tuple[bool, ...]:
        """Per column: whether it holds only numbers (drawn to the right); names never do."""
        return tuple(
            i > 0 and all(_NUMBER.fullmatch(row[i]) for row in self.rows)
            for i in range(len(self.headers))
        )


def report_tables(report: Report) -> tuple[Table, ...]:
    """The status, burn-rate and alert tables of the report, formatted for reading."""
    length = format_duration(report.range_s)
    periods = {format_duration(s.period_s) for s in report.slos}
    left = f"Budget left ({periods.pop()})" if len(periods) == 1 else "Budget left (period)"
    status = Table(
        "SLO status",
        ("SLO", "Objective", f"SLI ({length})", f"Burn rate ({length})", left, "Status"),
        tuple(
            (
                s.id,
                f"{s.objective:g}%",
                _percent(s.good_ratio, 3),
                _rate(s.burn_rate),
                _percent(s.budget_remaining, 1),
                s.status,
            )
            for s in report.slos
        ),
        empty="No SLO in the report.",
        status_column=5,
    )
    windows = sorted({w.window_s for s in report.slos for w in s.windows})
    burn_rows = []
    for s in report.slos:
        by_window = {w.window_s: w for w in s.windows}
        cells = (_rate(by_window[w].burn_rate) if w in by_window else "" for w in windows)
        burn_rows.append((s.id, *cells))
    burn = Table(
        "Burn rate now, by alert window",
        ("SLO", *(format_duration(w) for w in windows)),
        tuple(burn_rows),
        note="1 = the error budget lasts exactly the SLO period; higher spends it faster.",
        empty="No SLO in the report.",
    )
    alerts = Table(
        "Alerts fired",
        ("SLO", "Alert", "Severity", "First firing", "Last firing"),
        tuple(
            (s.id, a.name, a.severity, _when(a.first), _when(a.last))
            for s in report.slos
            for a in s.alerts
        ),
        empty="No SLO alert fired.",
    )
    return status, burn, alerts


def _text_table(table: Table) -> list[str]:
    columns = zip(table.headers, *table.rows, strict=True)
    widths = [max(len(cell) for cell in column) for column in columns]
    right = table.right_aligned()

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "  ".join(out).rstrip()

    return [line(table.headers), *(line(row) for row in table.rows)]


def render_table(report: Report) -> str:
    """The report as aligned text tables for a terminal (and the plain-text email)."""
    lines = [report_heading(report), f"Prometheus: {report.prometheus_url}"]
    lines.append(report_summary(report))
    for table in report_tables(report):
        lines.extend(["", table.title])
        if table.note:
            lines.append(f"({table.note})")
        lines.extend(_text_table(table) if table.rows else [table.empty])
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(table: Table) -> list[str]:
    align = ["---:" if right else "---" for right in table.right_aligned()]
    return [
        "| " + " | ".join(_md_cell(h) for h in table.headers) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows),
    ]


def render_markdown(report: Report) -> str:
    """The report as Markdown (a CI job summary, a wiki page)."""
    lines = [f"## {report_heading(report)}", ""]
    lines.append(f"{report_summary(report)}. Prometheus: {report.prometheus_url}")
    for table in report_tables(report):
        lines.extend(["", f"### {table.title}", ""])
        if table.note:
            lines.extend([table.note, ""])
        lines.extend(_md_table(table) if table.rows else [table.empty])
    return "\n".join(lines) + "\n"


def _json_slo(s: SloReport) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "service": s.service,
        "objective_percent": s.objective,
        "period": format_duration(s.period_s),
        "status": s.status,
        "error_ratio": s.error_ratio,
        "good_ratio": s.good_ratio,
        "burn_rate": s.burn_rate,
        "error_budget_remaining": s.budget_remaining,
        "windows": {
            format_duration(w.window_s): {"error_ratio": w.error_ratio, "burn_rate": w.burn_rate}
            for w in s.windows
        },
        "alerts": [
            {"name": a.name, "severity": a.severity, "first": _iso(a.first), "last": _iso(a.last)}
            for a in s.alerts
        ],
    }


def render_json(report: Report) -> str:
    """The report as JSON: ratios 0..1 (null when there is no value), times in UTC."""
    data = {
        "prometheus": report.prometheus_url,
        "start": _iso(report.start),
        "end": _iso(report.end),
        "range": format_duration(report.range_s),
        "slo_count": len(report.slos),
        "burning": [s.id for s in report.burning],
        "slos": [_json_slo(s) for s in report.slos],
    }
    return json.dumps(data, indent=2) + "\n"
