"""The Alertmanager configuration (0.25) that routes alerts to Slack by severity.

- ``critical`` pages: the Slack incidents channel and PagerDuty (Events API v2, through
  Alertmanager's native ``pagerduty_configs``);
- ``warning`` goes to the Slack alerts channel;
- ``info`` goes to the low-priority channel, once (no repeats);
- a critical alert inhibits the warnings of the same service and family, and a target that
  is down inhibits every other alert from that instance.

Secrets are never written here: Slack URLs come from ``api_url_file``, the PagerDuty
integration key from ``routing_key_file``. Message texts live in
``alerts/templates/elibrary.tmpl``, installed into ``templates_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TEMPLATE_NAME", "AlertmanagerSettings", "build_alertmanager_config"]

TEMPLATE_NAME = "elibrary.tmpl"


@dataclass(frozen=True)
class AlertmanagerSettings:
    """Where secrets and templates live on the Alertmanager host, and the channels."""

    secrets_dir: str = "/etc/alertmanager/secrets"
    templates_dir: str = "/etc/alertmanager/templates"
    incidents_channel: str = "#elibrary-incidents"
    alerts_channel: str = "#elibrary-alerts"
    low_priority_channel: str = "#elibrary-info"
    #: PagerDuty's Events API v2 endpoint; None keeps Alertmanager's default (PagerDuty's own)
    pagerduty_url: str | None = None
    #: how long to wait, and how often to repeat; test stacks shorten them
    group_wait: str = "30s"
    page_group_wait: str = "10s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    page_repeat_interval: str = "1h"


def _slack(settings: AlertmanagerSettings, channel: str, url_file: str) -> dict[str, Any]:
    return {
        "api_url_file": f"{settings.secrets_dir}/{url_file}",
        "channel": channel,
        "send_resolved": True,
        "color": '{{ template "elibrary.slack.color" . }}',
        "title": '{{ template "elibrary.slack.title" . }}',
        "title_link": '{{ template "elibrary.slack.dashboard" . }}',
        "text": '{{ template "elibrary.slack.text" . }}',
        "actions": [
            {
                "type": "button",
                "text": "Runbook",
                "url": '{{ template "elibrary.slack.runbook" . }}',
            },
            {
                "type": "button",
                "text": "Dashboard",
                "url": '{{ template "elibrary.slack.dashboard" . }}',
            },
            {
                "type": "button",
                "text": "Silence",
                "url": '{{ template "elibrary.slack.silence" . }}',
            },
        ],
    }


def _pagerduty(settings: AlertmanagerSettings) -> dict[str, Any]:
    page: dict[str, Any] = {
        "routing_key_file": f"{settings.secrets_dir}/pagerduty-routing-key",
        "send_resolved": True,
        "severity": '{{ template "elibrary.pagerduty.severity" . }}',
        "description": '{{ template "elibrary.pagerduty.description" . }}',
        "client": "eLibrary Alertmanager",
        "client_url": '{{ template "elibrary.slack.silence" . }}',
        "links": [
            {"href": '{{ template "elibrary.slack.runbook" . }}', "text": "Runbook"},
            {"href": '{{ template "elibrary.slack.dashboard" . }}', "text": "Dashboard"},
        ],
    }
    if settings.pagerduty_url is not None:
        page["url"] = settings.pagerduty_url
    return page


def build_alertmanager_config(settings: AlertmanagerSettings | None = None) -> dict[str, Any]:
    """The whole alertmanager.yml as data."""
    s = settings or AlertmanagerSettings()
    return {
        "global": {"resolve_timeout": "5m"},
        "templates": [f"{s.templates_dir}/{TEMPLATE_NAME}"],
        "route": {
            "receiver": "slack-alerts",
            "group_by": ["alertname", "service"],
            "group_wait": s.group_wait,
            "group_interval": s.group_interval,
            "repeat_interval": s.repeat_interval,
            "routes": [
                {
                    "receiver": "page",
                    "matchers": ['severity="critical"'],
                    "group_wait": s.page_group_wait,
                    "repeat_interval": s.page_repeat_interval,
                },
                {"receiver": "slack-alerts", "matchers": ['severity="warning"']},
                # info is news, not a problem: say it once
                {
                    "receiver": "slack-low-priority",
                    "matchers": ['severity="info"'],
                    "repeat_interval": "8760h",
                },
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["service", "family"],
            },
            {
                "source_matchers": ['alertname="ElibraryTargetDown"'],
                "target_matchers": ['alertname!="ElibraryTargetDown"'],
                "equal": ["instance"],
            },
        ],
        "receivers": [
            {
                "name": "page",
                "slack_configs": [_slack(s, s.incidents_channel, "slack-incidents-url")],
                "pagerduty_configs": [_pagerduty(s)],
            },
            {
                "name": "slack-alerts",
                "slack_configs": [_slack(s, s.alerts_channel, "slack-alerts-url")],
            },
            {
                "name": "slack-low-priority",
                "slack_configs": [_slack(s, s.low_priority_channel, "slack-info-url")],
            },
        ],
    }
