"""The test stack's PagerDuty stand-in refuses what PagerDuty's Events API v2 refuses, so a
page that reaches it would reach PagerDuty too."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from sre.stack import PagerDutyReceiver, pagerduty_event_errors

KEY = "k" * 32
TRIGGER = {
    "routing_key": KEY,
    "event_action": "trigger",
    "dedup_key": "abc",
    "payload": {"summary": "disk full", "source": "db-1", "severity": "critical"},
}


@pytest.mark.parametrize(
    ("event", "errors"),
    [
        (TRIGGER, []),
        ({"routing_key": KEY, "event_action": "resolve", "dedup_key": "abc"}, []),
        (
            {**TRIGGER, "routing_key": "short"},
            ["routing_key must be a 32-character integration key"],
        ),
        (
            {**TRIGGER, "event_action": "page"},
            ["event_action must be one of trigger, acknowledge, resolve"],
        ),
        (
            {"routing_key": KEY, "event_action": "resolve"},
            ["dedup_key is required to acknowledge or resolve"],
        ),
        ({**TRIGGER, "payload": None}, ["payload is required to trigger"]),
        (
            {**TRIGGER, "payload": {"summary": "", "source": "", "severity": "fatal"}},
            [
                "payload.summary must be 1 to 1024 characters",
                "payload.source is required",
                "payload.severity must be one of critical, error, warning, info",
            ],
        ),
        ([1], ["the body is not a JSON object"]),
    ],
    ids=[
        "a trigger",
        "a resolve",
        "a short routing key",
        "an unknown action",
        "a resolve without dedup key",
        "a trigger without payload",
        "a payload with three faults",
        "not an object",
    ],
)
def test_events_are_judged_as_pagerduty_does(event: Any, errors: list[str]) -> None:
    assert pagerduty_event_errors(event) == errors


def test_the_receiver_answers_like_pagerduty_and_keeps_only_valid_events() -> None:
    receiver = PagerDutyReceiver()
    try:
        accepted = requests.post(receiver.url, json=TRIGGER, timeout=5)
        refused = requests.post(receiver.url, json={**TRIGGER, "routing_key": "x"}, timeout=5)
    finally:
        receiver.close()
    assert accepted.status_code == 202
    assert accepted.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "abc",
    }
    assert refused.status_code == 400
    assert refused.json()["errors"] == ["routing_key must be a 32-character integration key"]
    assert [m["dedup_key"] for m in receiver.messages] == ["abc"]
