"""eLibrary SLOs and error budgets: one row per SLO the rules record.

Built on Sloth's rule names and labels only (``slo:*`` recordings, ``sloth_*`` labels), so
a new SLO in slo/specs gets its row with no code here, and Sloth's community dashboards
read the same series.
"""

from __future__ import annotations

from typing import Any

from dashboards.house import (
    GREEN,
    ORANGE,
    RED,
    YELLOW,
    Inputs,
    Row,
    bargauge,
    dashboard,
    query_variable,
    stat,
    steps,
    target,
    timeseries,
)
from dashboards.slos import SloInfo

UID = "elibrary-slos"
SERVICES = 'sloth_service=~"$service"'

#: Burn-rate thresholds of the SRE Workbook's multiwindow alerts (DESIGN.md): 1x spends the
#: budget in exactly one period, 6x and 14.4x page.
BURN_STEPS = steps(GREEN, (1, YELLOW), (6, ORANGE), (14.4, RED))
BUDGET_STEPS = steps(RED, (0, ORANGE), (0.25, YELLOW), (0.5, GREEN))


def _overview(slos: tuple[SloInfo, ...]) -> Row:
    every = "{" + SERVICES + "}"
    return Row(
        "Every SLO",
        [
            bargauge(
                "Error budget remaining",
                "Share of each SLO's error budget left over its period (30 days): 100% "
                "untouched, 0% spent, below 0 overspent.",
                [
                    target(
                        f"slo:period_error_budget_remaining:ratio{every}",
                        "{{sloth_service}} / {{sloth_slo}}",
                    )
                ],
                unit="percentunit",
                thresholds=BUDGET_STEPS,
                minimum=None,
                maximum=1,
                height=max(4, 2 + 2 * len(slos)),
            ),
            bargauge(
                "Burn rate now (1h)",
                "How fast each SLO spends its budget over the last hour: 1 spends exactly "
                "the budget in a period, 14.4 pages.",
                [
                    target(
                        f"slo:sli_error:ratio_rate1h{every} / on(sloth_id, sloth_slo, "
                        f"sloth_service) group_left slo:error_budget:ratio{every}",
                        "{{sloth_service}} / {{sloth_slo}}",
                    )
                ],
                unit="x",
                thresholds=BURN_STEPS,
                height=max(4, 2 + 2 * len(slos)),
            ),
        ],
    )


def _row(slo: SloInfo) -> Row:
    this = slo.selector
    burn_windows = [w for w in slo.windows if w != f"{slo.period_days}d"]
    alerts = ", ".join(sorted({a.name for a in slo.alerts})) or "none"
    alert_matchers = f'sloth_id="{slo.sloth_id}", alertstate="firing"'
    return Row(
        f"{slo.service} / {slo.name}: {slo.objective_percent}",
        [
            stat(
                "SLI over the period",
                f"Share of good events over the last {slo.period_days} days, against the "
                f"objective {slo.objective_percent}.",
                [target(f"1 - slo:sli_error:ratio_rate{slo.period_days}d{this}", "SLI")],
                unit="percentunit",
                decimals=3,
                thresholds=steps(RED, (slo.objective, GREEN)),
                width=4,
            ),
            stat(
                "Budget remaining",
                f"Share of the error budget ({1 - slo.objective:.3%} of events) left for the "
                f"{slo.period_days}-day period.",
                [target(f"slo:period_error_budget_remaining:ratio{this}", "remaining")],
                unit="percentunit",
                decimals=1,
                thresholds=BUDGET_STEPS,
                width=4,
            ),
            stat(
                "Alerts firing",
                f"Burn-rate alerts of this SLO firing now ({alerts}): a page at 14.4x or "
                "6x, a ticket at 3x or 1x.",
                [target(f"count(ALERTS{{{alert_matchers}}}) or vector(0)", "firing")],
                unit="none",
                thresholds=steps(GREEN, (1, RED)),
                graph=False,
                width=4,
            ),
            bargauge(
                "Burn rate per alert window",
                "Error ratio over each window divided by the budget: the multiwindow alerts "
                "page when both of a pair exceed 14.4x (1h and 5m) or 6x (6h and 30m).",
                [
                    target(
                        f"slo:sli_error:ratio_rate{window}{this} / on(sloth_id, sloth_slo, "
                        f"sloth_service) group_left slo:error_budget:ratio{this}",
                        window,
                    )
                    for window in burn_windows
                ],
                unit="x",
                thresholds=BURN_STEPS,
                width=12,
            ),
            timeseries(
                "SLI against the objective",
                f"Share of good events over 5 minutes and 1 hour; the line is the "
                f"objective ({slo.objective_percent}).",
                [
                    target(f"1 - slo:sli_error:ratio_rate5m{this}", "SLI 5m"),
                    target(f"1 - slo:sli_error:ratio_rate1h{this}", "SLI 1h"),
                    target(f"slo:objective:ratio{this}", "objective"),
                ],
                unit="percentunit",
                thresholds=steps(RED, (slo.objective, GREEN)),
                threshold_style="dashed",
                maximum=1,
            ),
            timeseries(
                "Error budget remaining over time",
                f"Budget left for the {slo.period_days}-day period over time; a falling "
                "line is budget being spent.",
                [target(f"slo:period_error_budget_remaining:ratio{this}", "remaining")],
                unit="percentunit",
                thresholds=BUDGET_STEPS,
                threshold_style="dashed",
            ),
        ],
    )


def build(inputs: Inputs) -> dict[str, Any]:
    return dashboard(
        UID,
        "eLibrary SLOs",
        "Service level objectives and error budgets, one row per SLO of slo/specs, on "
        "Sloth's recording rules.",
        [_overview(inputs.slos), *(_row(slo) for slo in inputs.slos)],
        variables=[
            query_variable("service", "Service", "sloth_slo_info", label="sloth_service"),
        ],
        time_from="now-24h",
        refresh="1m",
    )
