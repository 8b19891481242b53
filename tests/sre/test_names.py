"""The names check's pure parts: what an expression reads, what a rule records, what is
missing from an inventory. The live inventory is tests/test_names_live.py's."""

from __future__ import annotations

import json

import pytest
import yaml

from sre.names import (
    Inventory,
    Reads,
    check,
    output_labels,
    reads_in_artifact,
    reads_in_expr,
    reads_in_unit_tests,
)


def reads(expr: str, printed: tuple[str, ...] = ()) -> dict[str, set[str]]:
    found = reads_in_expr(expr, "here", printed)
    assert found.problems == []
    merged: dict[str, set[str]] = {}
    for read in found.reads:
        merged.setdefault(read.name, set()).update(read.labels)
    return merged


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up", {"up": set()}),
        ('up{job="a", instance=~"b.*"}', {"up": {"job", "instance"}}),
        ('{__name__="up", job="a"}', {"up": {"job"}}),
        ("rate(x_total[5m] offset 1h)", {"x_total": set()}),
        ("max_over_time(x[1h:5m])", {"x": set()}),
        ("sum by (route) (rate(x[5m]))", {"x": {"route"}}),
        ("sum without (pod) (x)", {"x": {"pod"}}),
        ("sum by (a) (sum by (a, b) (x))", {"x": {"a", "b"}}),
        ("a / on (job) group_left (version) b", {"a": {"job"}, "b": {"job", "version"}}),
        ("a * ignoring (le) b", {"a": {"le"}, "b": {"le"}}),
        ("a and on (job) b", {"a": {"job"}, "b": {"job"}}),
        (
            "histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m])))",
            {"h_bucket": {"le"}},
        ),
        ("histogram_quantile(0.95, rate(h_bucket[5m]))", {"h_bucket": {"le"}}),
        ('label_replace(x, "dst", "$1", "src", "(.*)")', {"x": {"src"}}),
        ('sum by (dst) (label_replace(x, "dst", "$1", "src", "(.*)"))', {"x": {"src"}}),
        ('label_join(x, "dst", ",", "a", "b")', {"x": {"a", "b"}}),
        ('count_values("v", x)', {"x": set()}),
        ("topk(3, x) by (k)", {"x": {"k"}}),
        ("(sum(rate(x[5m])) or vector(0)) == 0", {"x": set()}),
        ("1 - a / b", {"a": set(), "b": set()}),
        ("time() - x > 60", {"x": set()}),
        ("absent(x{job='a'})", {"x": {"job"}}),
    ],
    ids=[
        "a bare name",
        "matchers",
        "the name as a matcher",
        "a range with an offset",
        "a subquery",
        "sum by",
        "sum without",
        "nested aggregations charge the inner grouping",
        "group_left's extra labels come from the right",
        "ignoring",
        "a set operator on labels",
        "le under histogram_quantile",
        "le under histogram_quantile without an aggregation",
        "label_replace reads its source label",
        "a label label_replace makes is not read",
        "label_join reads its sources",
        "count_values",
        "topk keeps labels",
        "or vector(0)",
        "scalars and vectors",
        "a scalar function",
        "absent",
    ],
)
def test_every_selector_is_found_with_the_labels_it_relies_on(
    expr: str, expected: dict[str, set[str]]
) -> None:
    assert reads(expr) == expected


@pytest.mark.parametrize(
    ("expr", "printed", "expected"),
    [
        ("sum by (instance) (rate(x[5m])) > 1", ("instance",), {"x": {"instance"}}),
        ("x / y > 0.9", ("instance",), {"x": {"instance"}, "y": set()}),
        ("a == 0 or b == 0", ("master_host",), {"a": {"master_host"}, "b": {"master_host"}}),
        ("a unless b", ("version",), {"a": {"version"}, "b": set()}),
    ],
    ids=[
        "through an aggregation that keeps it",
        "one-to-one keeps the left side's labels",
        "both sides of or",
        "the left side of unless",
    ],
)
def test_labels_an_alert_prints_are_required_of_what_it_reads(
    expr: str, printed: tuple[str, ...], expected: dict[str, set[str]]
) -> None:
    assert reads(expr, printed) == expected


@pytest.mark.parametrize(
    ("expr", "printed", "problem"),
    [
        ("sum(x) > 0", ("instance",), "here: label instance is used above sum by ()"),
        (
            "sum by (pod) (x) > 0",
            ("instance",),
            "here: label instance is used above sum by (pod)",
        ),
        (
            "sum without (instance) (x)",
            ("instance",),
            "here: label instance is used above sum without (instance)",
        ),
        ("a / on (job) b", ("instance",), "here: label instance is used above / on (job)"),
        (
            "sum by (le) (histogram_quantile(0.9, h))",
            (),
            "here: label le is used above histogram_quantile",
        ),
        ("rate(x[5m]", (), "here: does not parse: unclosed left parenthesis"),
        ('{job="a"}', (), "here: a selector without a metric name"),
    ],
    ids=[
        "sum drops every label",
        "sum by another label",
        "sum without the label",
        "one-to-one on() keeps only its labels",
        "histogram_quantile drops le",
        "a syntax error",
        "no metric name",
    ],
)
def test_problems_visible_without_an_inventory_are_reported(
    expr: str, printed: tuple[str, ...], problem: str
) -> None:
    assert reads_in_expr(expr, "here", printed).problems == [problem]


LABELS = {
    "x": frozenset({"job", "instance", "route"}),
    "h_bucket": frozenset({"job", "le", "route"}),
    "info": frozenset({"job", "version"}),
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("x", {"job", "instance", "route"}),
        ("rate(x[5m])", {"job", "instance", "route"}),
        ("sum(rate(x[5m]))", set()),
        ("sum by (route) (x)", {"route"}),
        ("sum without (instance) (x)", {"job", "route"}),
        ('count_values("v", x)', {"v"}),
        ("histogram_quantile(0.9, rate(h_bucket[5m]))", {"job", "route"}),
        ("x / on (job) group_left (version) info", {"job", "instance", "route", "version"}),
        ("x / on (job) info", {"job"}),
        ("x or info", {"job", "instance", "route", "version"}),
        ("x unless info", {"job", "instance", "route"}),
        ('label_replace(info, "v", "$1", "version", "(.*)")', {"job", "version", "v"}),
        ("2 * x", {"job", "instance", "route"}),
        ("vector(1)", set()),
        ("unknown", set()),
    ],
    ids=[
        "a selector",
        "a function",
        "sum",
        "sum by",
        "sum without",
        "count_values adds its label",
        "histogram_quantile drops le",
        "group_left adds its extra labels",
        "one-to-one on() keeps its labels",
        "or unites",
        "unless keeps the left side",
        "label_replace adds its label",
        "a scalar times a vector",
        "vector()",
        "a name nobody exports",
    ],
)
def test_the_labels_of_what_an_expression_returns(expr: str, expected: set[str]) -> None:
    assert output_labels(expr, LABELS.get) == expected


def inventory() -> Inventory:
    found = Inventory()
    found.add_exposition(
        "# TYPE http_requests_total counter\n"
        'http_requests_total{method="GET",route="/",status="200"} 1\n'
        "# TYPE http_request_duration_seconds histogram\n"
        'http_request_duration_seconds_bucket{route="/",le="0.2"} 1\n'
        'http_request_duration_seconds_bucket{route="/",le="+Inf"} 1\n'
        'http_request_duration_seconds_sum{route="/"} 0.1\n'
        'http_request_duration_seconds_count{route="/"} 1\n'
        "# TYPE mysql_exporter_scrape_errors_total counter\n",
        "app /metrics",
    )
    return found


def test_an_exposition_counts_samples_with_the_labels_scraping_adds() -> None:
    found = inventory()
    assert found.labels("http_requests_total") == {"job", "instance", "method", "route", "status"}
    assert found.labels("http_request_duration_seconds_bucket") == {
        "job",
        "instance",
        "route",
        "le",
    }
    assert found.labels("http_request_duration_seconds_count") == {"job", "instance", "route"}
    assert found.labels("http_request_duration_seconds") is None  # a family is not a series
    assert found.labels("mysql_exporter_scrape_errors_total") is None  # declared, no sample


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ('sum(rate(http_requests_total{status=~"5.."}[5m]))', None),
        (
            "histogram_quantile(0.95,"
            " sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
            None,
        ),
        ("sum by (instance) (rate(http_requests_total[5m]))", None),
        (
            "rate(http_requests_totl[5m])",
            "rules.yaml: A: http_requests_totl is exported by none of: app /metrics",
        ),
        (
            'rate(http_requests_total{path="/"}[5m])',
            "rules.yaml: A: http_requests_total has no label path "
            "(it has: instance, job, method, route, status)",
        ),
        (
            "sum by (pod) (http_request_duration_seconds_count)",
            "rules.yaml: A: http_request_duration_seconds_count has no label pod "
            "(it has: instance, job, route)",
        ),
        (
            'sum({__name__=~"http_.*_total", method="GET"})',
            None,
        ),
        (
            'sum({__name__=~"nothing_.*"})',
            "rules.yaml: A: no series matching 'nothing_.*' with labels (none) is exported",
        ),
    ],
    ids=[
        "an exported counter",
        "a histogram's buckets with le",
        "a target label",
        "a misspelt name",
        "a label the series lacks",
        "a grouping label the series lacks",
        "a name pattern that matches",
        "a name pattern that matches nothing",
    ],
)
def test_check_names_every_read_that_would_select_nothing(expr: str, problem: str | None) -> None:
    found = reads_in_expr(expr, "rules.yaml: A")
    assert check(found, inventory()) == ([problem] if problem else [])


def test_recording_rules_add_their_series_with_the_labels_they_keep() -> None:
    rules = yaml.safe_dump(
        {
            "groups": [
                {
                    "name": "g",
                    "rules": [
                        {  # reads the next rule's output: order must not matter
                            "record": "route:ratio:rate5m",
                            "expr": "route:errors:rate5m / route:requests:rate5m",
                        },
                        {
                            "record": "route:errors:rate5m",
                            "expr": 'sum by (route) (rate(http_requests_total{status=~"5.."}[5m]))',
                            "labels": {"sloth_id": "x"},
                        },
                        {
                            "record": "route:requests:rate5m",
                            "expr": "sum by (route) (rate(http_requests_total[5m]))",
                        },
                    ],
                }
            ]
        }
    )
    found = inventory()
    found.add_recording_rules("slo.yaml", rules)
    assert found.labels("route:errors:rate5m") == {"route", "sloth_id"}
    assert found.labels("route:ratio:rate5m") == {"route", "sloth_id"}
    assert "slo.yaml (rule)" in found.sources("route:ratio:rate5m")


def test_rule_files_and_prometheus_rules_are_read_with_their_alert_templates() -> None:
    group = {
        "name": "g",
        "rules": [
            {
                "alert": "Down",
                "expr": "sum(up) == 0",
                "annotations": {"summary": "{{ $labels.instance }} is down"},
            },
            {"record": "job:up:sum", "expr": "sum by (job) (up)"},
        ],
    }
    plain = reads_in_artifact("rules.yaml", yaml.safe_dump({"groups": [group]}))
    manifest = reads_in_artifact(
        "rule.yaml",
        yaml.safe_dump({"kind": "PrometheusRule", "spec": {"groups": [group]}}),
    )
    for found, path in ((plain, "rules.yaml"), (manifest, "rule.yaml")):
        assert [(r.name, r.where) for r in found.reads] == [
            ("up", f"{path}: Down"),
            ("up", f"{path}: record job:up:sum"),
        ]
        assert found.problems == [f"{path}: Down: label instance is used above sum by ()"]
    assert reads_in_artifact("alertmanager.yml", "route: {receiver: x}\n").reads == []


def test_dashboards_are_read_panel_by_panel_with_grafana_variables() -> None:
    dashboard = {
        "panels": [
            {
                "title": "Rate",
                "targets": [
                    {
                        "expr": "sum by (route)"
                        ' (rate(http_requests_total{job="$job"}[$__rate_interval]))'
                    }
                ],
            },
            {"title": "Row", "panels": [{"title": "Inner", "targets": [{"expr": "up[$window]"}]}]},
        ],
        "templating": {
            "list": [
                {"type": "query", "name": "job", "query": "label_values(up, job)"},
                {"type": "datasource", "name": "datasource", "query": "prometheus"},
            ]
        },
        "annotations": {
            "list": [
                {"name": "Annotations & Alerts", "builtIn": 1},
                {"name": "Deployments", "expr": 'changes(build_info{job="$job"}[$__interval])'},
            ]
        },
    }
    found = reads_in_artifact("d.json", json.dumps(dashboard))
    assert found.problems == []
    assert [(r.name, sorted(r.labels), r.where) for r in found.reads] == [
        ("http_requests_total", ["job", "route"], "d.json / Rate"),
        ("up", [], "d.json / Row / Inner"),
        ("build_info", ["job"], "d.json: annotation Deployments"),
        ("up", ["job"], "d.json: variable job"),
    ]


def test_unit_test_inputs_are_reads_too() -> None:
    text = yaml.safe_dump(
        {
            "tests": [
                {
                    "name": "t",
                    "input_series": [
                        {"series": 'up{job="a", instance="b"}', "values": "1"},
                        {"series": "made_up_total", "values": "1"},
                    ],
                }
            ]
        }
    )
    found = reads_in_unit_tests("u.yaml", text)
    assert check(found, inventory()) == [
        "u.yaml: tests[0] (t) input_series[0]: up is exported by none of: app /metrics",
        "u.yaml: tests[0] (t) input_series[1]: made_up_total is exported by none of: app /metrics",
    ]


def test_reads_of_several_artifacts_add_up() -> None:
    total = Reads()
    total.extend(reads_in_expr("a", "one")).extend(reads_in_expr("rate(", "two"))
    assert [r.name for r in total.reads] == ["a"]
    assert len(total.problems) == 1
