"""The metric contract of DESIGN.md: names, types, labels, buckets, bounded cardinality."""

from __future__ import annotations

import random
import subprocess
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import HTTP_BUCKETS
from tests.app.conftest import Auth
from tests.conftest import require_tool

CONTRACT = {
    "http_requests": ("counter", {"method", "route", "status"}),
    "http_request_duration_seconds": ("histogram", {"method", "route"}),
    "http_requests_in_progress": ("gauge", set()),
    "database_connections_active": ("gauge", set()),
    "elibrary_loans_created": ("counter", set()),
    "elibrary_loans_returned": ("counter", set()),
    "elibrary_build_info": ("gauge", {"version", "revision"}),
}


def families(client: FlaskClient) -> dict[str, Any]:
    text = client.get("/metrics").get_data(as_text=True)
    return {family.name: family for family in text_string_to_metric_families(text)}


def series(client: FlaskClient) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in families(client).values()
        for sample in family.samples
        if sample.name.startswith(("http_", "elibrary_", "database_"))
    }


def test_every_contract_metric_is_exported_with_its_type_and_labels(
    client: FlaskClient,
) -> None:
    client.get("/api/books")
    found = families(client)
    for name, (kind, labels) in CONTRACT.items():
        assert found[name].type == kind, name
        sample_labels = {k for s in found[name].samples for k in s.labels} - {"le"}
        assert sample_labels == labels, name


def test_the_latency_slo_threshold_is_a_bucket_bound(client: FlaskClient) -> None:
    assert 0.2 in HTTP_BUCKETS
    client.get("/api/books")
    bounds = {
        s.labels["le"]
        for s in families(client)["http_request_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert "0.2" in bounds


def test_routes_are_templates_and_methods_are_bounded(client: FlaskClient) -> None:
    client.get("/api/books/7")
    client.get("/api/books/8")
    client.open("/api/books", method="BREW")
    labels = {
        (s.labels["method"], s.labels["route"], s.labels["status"])
        for s in families(client)["http_requests"].samples
    }
    assert ("GET", "/api/books/<int:book_id>", "404") in labels
    assert ("other", "/api/books", "405") in labels or ("other", "unmatched", "405") in labels
    assert not any("/api/books/7" in route for _, route, _ in labels)


def test_random_urls_and_ids_add_no_series(app: Flask, client: FlaskClient) -> None:
    rng = random.Random(7)
    client.get("/no/such/page")
    client.get("/api/books/1")
    client.get("/metrics")  # the scrape's own series exist from here on
    before = series(client)
    for _ in range(10_000):
        path = "/" + "/".join(
            "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=rng.randint(1, 12)))
            for _ in range(rng.randint(1, 4))
        )
        client.get(path)
    for book_id in rng.sample(range(1, 10**9), 1_000):
        client.get(f"/api/books/{book_id}")
    after = series(client)
    assert after == before
    routes = {dict(labels).get("route") for _, labels in after} - {None}
    known = {rule.rule for rule in app.url_map.iter_rules()} | {"unmatched"}
    assert routes <= known


def test_business_events_are_counted(client: FlaskClient, auth: Auth) -> None:
    admin, member = auth.admin(), auth.member()
    client.post(
        "/api/books",
        headers=admin["headers"],
        json={"title": "T", "author": "A", "isbn": "9780441172719", "copies": 1},
    )
    loan = client.post("/api/loans", json={"book_id": 1}, headers=member["headers"]).json
    client.post("/api/loans", json={"book_id": 1}, headers=member["headers"])  # refused
    client.post(f"/api/loans/{loan['id']}/return", headers=member["headers"])
    found = families(client)
    assert found["elibrary_loans_created"].samples[0].value == 1
    assert found["elibrary_loans_returned"].samples[0].value == 1


def test_promtool_finds_nothing_to_complain_about(client: FlaskClient) -> None:
    promtool = require_tool("promtool", "prometheus")
    client.get("/api/books")
    client.get("/nowhere")
    text = client.get("/metrics").get_data()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b"" and result.stderr.strip() == b""


def test_metrics_are_served_at_both_paths(client: FlaskClient) -> None:
    first = client.get("/metrics")
    second = client.get("/api/metrics")
    assert first.status_code == second.status_code == 200
    assert first.content_type.startswith("text/plain; version=0.0.4")
    assert b"http_requests_total" in second.data
