"""eLibrary system overview: is everything scraped, what is firing, what was deployed.

The first page the on-call engineer opens: every target up or down, alerts firing by
severity, and deployments as annotations, with links to the other dashboards.
"""

from __future__ import annotations

from typing import Any

from dashboards.house import (
    BLUE,
    GREEN,
    ORANGE,
    RED,
    Inputs,
    Row,
    dashboard,
    deployments_annotation,
    query_variable,
    selector,
    stat,
    state_timeline,
    steps,
    table,
    target,
    timeseries,
    value_mapping,
)

UID = "elibrary-system"
SEL = selector()
SEVERITIES = (("critical", RED), ("warning", ORANGE), ("info", BLUE))


def _firing(severity: str) -> str:
    return f'count(ALERTS{{alertstate="firing", severity="{severity}"}}) or vector(0)'


def build(inputs: Inputs) -> dict[str, Any]:
    overview = Row(
        "Now",
        [
            stat(
                "Targets up",
                "Scrape targets Prometheus reached at their last scrape.",
                [target(f"sum(up{SEL})", "up")],
                unit="short",
                thresholds=steps(GREEN),
                color_mode="value",
                width=4,
            ),
            stat(
                "Targets down",
                "Scrape targets Prometheus could not reach at their last scrape.",
                [target(f"count(up{SEL} == 0) or vector(0)", "down")],
                unit="short",
                thresholds=steps(GREEN, (1, RED)),
                graph=False,
                width=4,
            ),
            *(
                stat(
                    f"Alerts firing: {severity}",
                    f"Alerts with severity {severity} firing now "
                    f"({'pages' if severity == 'critical' else 'Slack only'}).",
                    [target(_firing(severity), severity)],
                    unit="short",
                    thresholds=steps(GREEN, (1, colour)),
                    graph=False,
                    width=4,
                )
                for severity, colour in SEVERITIES
            ),
            stat(
                "App uptime",
                "Time since the app's server (gunicorn master) started.",
                [target(f"time() - min(process_start_time_seconds{SEL})", "uptime")],
                unit="dtdurations",
                thresholds=steps(ORANGE, (600, GREEN)),
                color_mode="value",
                graph=False,
                width=4,
            ),
        ],
    )
    targets = Row(
        "Scrape targets",
        [
            state_timeline(
                "Targets up or down",
                "Each scrape target over time: green when Prometheus reached it, red when not.",
                [target(f"up{SEL}", "{{job}} {{instance}}")],
                unit="none",
                mappings=[value_mapping(0, "down", RED), value_mapping(1, "up", GREEN)],
                thresholds=steps(RED, (1, GREEN)),
                height=6,
            ),
            timeseries(
                "Scrape duration",
                "Seconds each scrape took; close to the scrape timeout means samples will "
                "be missed.",
                [target(f"scrape_duration_seconds{SEL}", "{{job}} {{instance}}")],
                unit="s",
            ),
            timeseries(
                "Samples scraped",
                "Samples each target exposes per scrape: a jump is a cardinality problem.",
                [target(f"scrape_samples_scraped{SEL}", "{{job}} {{instance}}")],
                unit="short",
            ),
        ],
    )
    alerts = Row(
        "Alerts",
        [
            timeseries(
                "Alerts firing by severity",
                "Firing alerts over time by severity. Empty while nothing fires.",
                [
                    target(
                        'count by (severity) (ALERTS{alertstate="firing"})',
                        "{{severity}}",
                    )
                ],
                unit="short",
                stack=True,
                bars=True,
                overrides=[
                    {
                        "matcher": {"id": "byName", "options": severity},
                        "properties": [
                            {"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}
                        ],
                    }
                    for severity, colour in SEVERITIES
                ],
            ),
            table(
                "Alerts firing now",
                "Every alert firing now, with its severity and service. Empty while nothing fires.",
                [
                    target(
                        'max by (alertname, severity, service) (ALERTS{alertstate="firing"})',
                        instant=True,
                        fmt="table",
                    )
                ],
                unit="none",
                columns={"alertname": "Alert", "severity": "Severity", "service": "Service"},
                width=12,
            ),
        ],
    )
    deployments = Row(
        "Deployments",
        [
            table(
                "Running versions",
                "The version and revision each app instance runs (elibrary_build_info); the "
                "dashboard's deployment markers show when each started.",
                [
                    target(
                        f"max by (job, instance, version, revision) (elibrary_build_info{SEL})",
                        instant=True,
                        fmt="table",
                    )
                ],
                unit="none",
                columns={
                    "job": "Job",
                    "instance": "Instance",
                    "version": "Version",
                    "revision": "Revision",
                },
                height=6,
            ),
        ],
    )
    return dashboard(
        UID,
        "eLibrary system overview",
        "Start here: every scrape target, alerts firing by severity, and deployments. The "
        "eLibrary menu links the service, SLO, MySQL and business dashboards.",
        [overview, targets, alerts, deployments],
        variables=[
            query_variable("job", "Job", "up"),
            query_variable("instance", "Instance", "up", after=["job"]),
        ],
        annotations=[deployments_annotation()],
    )
