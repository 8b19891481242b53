"""SLOs to Prometheus rule groups, exactly as Sloth v0.16 generates them (pure functions).

For each SLO three groups, in Sloth's order and with Sloth's names:

- ``sloth-slo-sli-recordings-<id>``: ``slo:sli_error:ratio_rate<window>`` for every alert
  window, plus the period window (``ratio_rate30d``). By default the period rule averages
  the 5m rule over the period (Sloth's optimized form: one cheap ``sum_over_time`` instead
  of a ``rate()`` over 30 days); ``optimized=False`` gives the raw ``rate()[30d]`` form.
- ``sloth-slo-meta-recordings-<id>``: objective, error budget, period, current and
  period burn rate, budget remaining, and ``sloth_slo_info``.
- ``sloth-slo-alerts-<id>``: the page and ticket multiwindow, multi-burn-rate alerts.

Identical series and labels are what let Sloth's Grafana dashboards read our rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from slo.model import SLO, AlertMeta, AlertWindow, EventsSLI, PeriodWindows
from slo.spec import render_query
from sre.durations import format_duration

__all__ = [
    "SLI_ERROR_METRIC",
    "BuildOptions",
    "Rule",
    "RuleGroup",
    "build_slo_groups",
    "go_float",
    "sli_error_metric",
    "slo_selector",
]

SLI_ERROR_METRIC = "slo:sli_error:ratio_rate"
_WINDOW_LABEL = "sloth_window"


@dataclass(frozen=True)
class Rule:
    """A recording rule (``record``) or an alerting rule (``alert``)."""

    expr: str
    record: str = ""
    alert: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleGroup:
    name: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class BuildOptions:
    """Sloth's generate options, with the same meaning."""

    #: added to every recording rule (``--extra-labels k=v``)
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    disable_recordings: bool = False
    disable_alerts: bool = False
    #: the period SLI from the 5m rule (True, Sloth's default) or a raw rate() over the period
    optimized: bool = True
    #: the ``sloth_version`` label of ``sloth_slo_info``
    version: str = "dev"


def go_float(value: float) -> str:
    """A float as Go's ``%g``/``%v`` print it (shortest form, no trailing ``.0``)."""
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def sli_error_metric(window_s: int) -> str:
    """``slo:sli_error:ratio_rate5m`` and friends."""
    return SLI_ERROR_METRIC + format_duration(window_s)


def slo_selector(slo: SLO) -> str:
    """The matcher set picking one SLO's series, formatted like Prometheus' LabelSet."""
    ids = _id_labels(slo)
    return "{" + ", ".join(f'{k}="{ids[k]}"' for k in sorted(ids)) + "}"


def build_slo_groups(
    slo: SLO, windows: PeriodWindows, options: BuildOptions, spec_kind: str, mode: str
) -> list[RuleGroup]:
    """The rule groups for one SLO; ``mode`` is Sloth's ``sloth_mode`` (cli-gen-prom/k8s)."""
    slo_labels = {**slo.labels, **options.extra_labels}
    groups = []
    if not options.disable_recordings:
        groups.append(
            RuleGroup(
                f"sloth-slo-sli-recordings-{slo.id}",
                _sli_rules(slo, slo_labels, windows, options.optimized),
            )
        )
        groups.append(
            RuleGroup(
                f"sloth-slo-meta-recordings-{slo.id}",
                _meta_rules(slo, slo_labels, windows, options, spec_kind, mode),
            )
        )
    if not options.disable_alerts:
        alerts = _alert_rules(slo, windows)
        if alerts:
            groups.append(RuleGroup(f"sloth-slo-alerts-{slo.id}", alerts))
    return groups


def _id_labels(slo: SLO) -> dict[str, str]:
    return {"sloth_id": slo.id, "sloth_service": slo.service, "sloth_slo": slo.name}


def _sorted(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: labels[k] for k in sorted(labels)}


def _sli_rules(
    slo: SLO, slo_labels: Mapping[str, str], windows: PeriodWindows, optimized: bool
) -> tuple[Rule, ...]:
    rules = []
    for window in (*windows.windows(), slo.period_s):
        if optimized and window == slo.period_s:
            expr = _optimized_sli(slo, window, windows.page_quick.short_s)
        else:
            expr = _sli_expr(slo, window)
        labels = {**_id_labels(slo), _WINDOW_LABEL: format_duration(window), **slo_labels}
        rules.append(Rule(expr, record=sli_error_metric(window), labels=_sorted(labels)))
    return tuple(rules)


def _sli_expr(slo: SLO, window: int) -> str:
    if isinstance(slo.sli, EventsSLI):
        error = render_query(slo.sli.error_query, window)
        total = render_query(slo.sli.total_query, window)
        return f"({error})\n/\n({total})\n"
    return f"({render_query(slo.sli.error_ratio_query, window)})"


def _optimized_sli(slo: SLO, window: int, short_window: int) -> str:
    # A ratio of sums, not an average of ratios: summing the 5m ratios over the period and
    # dividing by their count weights each 5m step equally (Sloth's reasoning, kept).
    metric = sli_error_metric(short_window) + slo_selector(slo)
    period = format_duration(window)
    return (
        f"sum_over_time({metric}[{period}])\n"
        f"/ ignoring ({_WINDOW_LABEL})\n"
        f"count_over_time({metric}[{period}])\n"
    )


def _meta_rules(
    slo: SLO,
    slo_labels: Mapping[str, str],
    windows: PeriodWindows,
    options: BuildOptions,
    spec_kind: str,
    mode: str,
) -> tuple[Rule, ...]:
    labels = _sorted({**_id_labels(slo), **slo_labels})
    ratio = slo.objective / 100
    selector = slo_selector(slo)

    def burn_rate(metric: str) -> str:
        return (
            f"{metric}{selector}\n"
            "/ on(sloth_id, sloth_slo, sloth_service) group_left\n"
            f"slo:error_budget:ratio{selector}\n"
        )

    info = _sorted(
        {
            **labels,
            "sloth_version": options.version,
            "sloth_mode": mode,
            "sloth_spec": spec_kind,
            "sloth_objective": go_float(slo.objective),
        }
    )
    return (
        Rule(f"vector({go_float(ratio)})", record="slo:objective:ratio", labels=labels),
        Rule(f"vector(1-{go_float(ratio)})", record="slo:error_budget:ratio", labels=labels),
        Rule(
            f"vector({go_float(slo.period_s / 86400)})",
            record="slo:time_period:days",
            labels=labels,
        ),
        Rule(
            burn_rate(sli_error_metric(windows.page_quick.short_s)),
            record="slo:current_burn_rate:ratio",
            labels=labels,
        ),
        Rule(
            burn_rate(sli_error_metric(slo.period_s)),
            record="slo:period_burn_rate:ratio",
            labels=labels,
        ),
        Rule(
            f"1 - slo:period_burn_rate:ratio{selector}",
            record="slo:period_error_budget_remaining:ratio",
            labels=labels,
        ),
        Rule("vector(1)", record="sloth_slo_info", labels=info),
    )


def _alert_rules(slo: SLO, windows: PeriodWindows) -> tuple[Rule, ...]:
    rules = []
    conditions = (
        ("page", slo.page_alert, windows.page_quick, windows.page_slow),
        ("ticket", slo.ticket_alert, windows.ticket_quick, windows.ticket_slow),
    )
    for severity, meta, quick, slow in conditions:
        if meta is not None:
            rules.append(_alert(slo, windows, severity, meta, quick, slow))
    return tuple(rules)


def _alert(
    slo: SLO,
    windows: PeriodWindows,
    severity: str,
    meta: AlertMeta,
    quick: AlertWindow,
    slow: AlertWindow,
) -> Rule:
    budget = go_float((100 - slo.objective) / 100)
    selector = slo_selector(slo)

    def over(window: int, factor: float) -> str:
        return (
            f"max({sli_error_metric(window)}{selector} > ({go_float(factor)} * {budget}))"
            f" without ({_WINDOW_LABEL})"
        )

    quick_factor, slow_factor = windows.burn_factor(quick), windows.burn_factor(slow)
    expr = (
        "(\n"
        f"    {over(quick.short_s, quick_factor)}\n"
        "    and\n"
        f"    {over(quick.long_s, quick_factor)}\n"
        ")\n"
        "or\n"
        "(\n"
        f"    {over(slow.short_s, slow_factor)}\n"
        "    and\n"
        f"    {over(slow.long_s, slow_factor)}\n"
        ")\n"
    )
    # The SLO's own labels are not repeated here: the alert inherits them from the series.
    annotations = {
        "title": f"({severity}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO "
        "error budget burn rate is too fast.",
        "summary": "{{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate "
        "is over expected.",
        **meta.annotations,
    }
    labels = {"sloth_severity": severity, **meta.labels}
    return Rule(expr, alert=meta.name, labels=_sorted(labels), annotations=_sorted(annotations))
