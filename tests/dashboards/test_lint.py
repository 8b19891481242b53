"""The dashboard lint: one good dashboard that passes, then one small change per rule that
makes exactly that rule fire; and the exceptions file, matched, stale and malformed."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dashboards.lint import (
    RULES,
    Finding,
    LintException,
    apply_exceptions,
    lint_dashboard,
    load_exceptions,
)
from sre.errors import SreError

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = '{job=~"$job", instance=~"$instance"}'
GOOD_EXPR = f"sum by (route) (rate(http_requests_total{SEL}[$__rate_interval]))"


def _variable(name: str, query: str) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": name.title(),
        "datasource": DS,
        "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor"},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "current": {"text": ["All"], "value": ["$__all"]},
    }


GOOD: dict[str, Any] = {
    "uid": "good",
    "title": "Good",
    "editable": False,
    "schemaVersion": 41,
    "templating": {
        "list": [
            {
                "type": "datasource",
                "name": "datasource",
                "label": "Data source",
                "query": "prometheus",
                "current": {"text": "Prometheus", "value": "prometheus"},
            },
            _variable("job", "label_values(up, job)"),
            _variable("instance", 'label_values(up{job=~"$job"}, instance)'),
        ]
    },
    "panels": [
        {
            "id": 1,
            "type": "timeseries",
            "title": "Requests",
            "description": "Requests per second by route.",
            "datasource": DS,
            "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
            "fieldConfig": {"defaults": {"unit": "reqps", "mappings": []}, "overrides": []},
            "targets": [{"refId": "A", "datasource": DS, "expr": GOOD_EXPR}],
        }
    ],
}

Change = Callable[[dict[str, Any]], None]


def _changed(change: Change) -> dict[str, Any]:
    dashboard = copy.deepcopy(GOOD)
    change(dashboard)
    return dashboard


def _panel(d: dict[str, Any]) -> dict[str, Any]:
    panel: dict[str, Any] = d["panels"][0]
    return panel


def _set_expr(expr: str) -> Change:
    def change(d: dict[str, Any]) -> None:
        _panel(d)["targets"][0]["expr"] = expr

    return change


def _variable_named(d: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(v for v in d["templating"]["list"] if v["name"] == name)
    return found


def _set_variable(name: str, key: str, value: Any) -> Change:
    def change(d: dict[str, Any]) -> None:
        _variable_named(d, name)[key] = value

    return change


def _drop_variable(name: str) -> Change:
    def change(d: dict[str, Any]) -> None:
        d["templating"]["list"].remove(_variable_named(d, name))

    return change


def _set_panel(key: str, value: Any) -> Change:
    def change(d: dict[str, Any]) -> None:
        _panel(d)[key] = value

    return change


def _drop_panel_key(*path: str) -> Change:
    def change(d: dict[str, Any]) -> None:
        node = _panel(d)
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


def _in_a_collapsed_row(d: dict[str, Any]) -> None:
    panel = _panel(d)
    panel["targets"][0]["expr"] = f"rate(http_requests_total{SEL}[5m])"
    d["panels"] = [{"type": "row", "title": "Traffic", "collapsed": True, "panels": [panel]}]


def _stat_showing_a_label(d: dict[str, Any]) -> None:
    panel = _panel(d)
    panel["type"] = "stat"
    panel["fieldConfig"]["defaults"].pop("unit")
    panel["options"] = {"reduceOptions": {"fields": "/^version$/"}}


def _unit_only_in_an_override(d: dict[str, Any]) -> None:
    defaults = _panel(d)["fieldConfig"]["defaults"]
    _panel(d)["fieldConfig"]["overrides"] = [
        {
            "matcher": {"id": "byName", "options": "x"},
            "properties": [{"id": "unit", "value": defaults.pop("unit")}],
        }
    ]


def _a_text_panel(d: dict[str, Any]) -> None:
    d["panels"].append({"id": 2, "type": "text", "options": {"content": "# Read me"}})


def _a_window_variable(d: dict[str, Any]) -> None:
    window = {"type": "custom", "name": "window", "query": "5m,1h", "current": {"value": "5m"}}
    d["templating"]["list"].append(window)
    _panel(d)["targets"][0]["expr"] = f"rate(http_requests_total{SEL}[$window])"


def _a_second_query(expr: str) -> Change:
    def change(d: dict[str, Any]) -> None:
        _panel(d)["targets"].append({"refId": "B", "datasource": DS, "expr": expr})

    return change


P = "Requests"
# (sentence id, change, expected findings as (rule, panel, refId, message))
CASES: list[tuple[str, Change, list[tuple[str, str | None, str | None, str]]]] = [
    # --- target-rate-interval-rule
    (
        "a rate over a literal 5m is flagged",
        _set_expr(f"sum(rate(http_requests_total{SEL}[5m]))"),
        [("target-rate-interval-rule", P, "A", "rate() over [5m] should use [$__rate_interval]")],
    ),
    (
        "an irate over $__interval is flagged by the variable's name",
        _set_expr(f"sum(irate(http_requests_total{SEL}[$__interval]))"),
        [
            (
                "target-rate-interval-rule",
                P,
                "A",
                "irate() over [$__interval] should use [$__rate_interval]",
            )
        ],
    ),
    (
        "an increase over a literal hour is flagged",
        _set_expr(f"sum(increase(http_requests_total{SEL}[1h]))"),
        [
            (
                "target-rate-interval-rule",
                P,
                "A",
                "increase() over [1h] should use [$__rate_interval] or [$__range]",
            )
        ],
    ),
    (
        "an increase over the dashboard's range is accepted",
        _set_expr(f"sum(increase(http_requests_total{SEL}[$__range]))"),
        [],
    ),
    (
        "the braced ${__rate_interval} is the same variable",
        _set_expr(f"sum(rate(http_requests_total{SEL}[${{__rate_interval}}]))"),
        [],
    ),
    (
        "a rate over a subquery of a fixed range is flagged",
        _set_expr(f"rate(process_resident_memory_bytes{SEL}[10m:1m])"),
        [("target-rate-interval-rule", P, "A", "rate() over [10m] should use [$__rate_interval]")],
    ),
    (
        "a window over a custom variable is judged by the variable's value",
        _a_window_variable,
        [("target-rate-interval-rule", P, "A", "rate() over [5m] should use [$__rate_interval]")],
    ),
    # --- target-counter-agg-rule
    (
        "a bare counter is flagged",
        _set_expr(f"sum by (route) (http_requests_total{SEL})"),
        [
            (
                "target-counter-agg-rule",
                P,
                "A",
                "counter metric 'http_requests_total' is not aggregated with rate, irate, or "
                "increase",
            )
        ],
    ),
    (
        "a histogram's _count outside rate is a counter too",
        _set_expr(f"http_request_duration_seconds_count{SEL}"),
        [
            (
                "target-counter-agg-rule",
                P,
                "A",
                "counter metric 'http_request_duration_seconds_count' is not aggregated with "
                "rate, irate, or increase",
            )
        ],
    ),
    (
        "a counter in an _over_time function is not a rate",
        _set_expr(f"max_over_time(process_cpu_seconds_total{SEL}[$__rate_interval])"),
        [
            (
                "target-counter-agg-rule",
                P,
                "A",
                "counter metric 'process_cpu_seconds_total' is not aggregated with rate, irate, "
                "or increase",
            )
        ],
    ),
    (
        "histogram_quantile over a rate of buckets is accepted",
        _set_expr(
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(http_request_duration_seconds_bucket{SEL}[$__rate_interval])))"
        ),
        [],
    ),
    (
        "a mean latency from _sum and _count rates is accepted",
        _set_expr(
            f"sum(rate(http_request_duration_seconds_sum{SEL}[$__rate_interval])) / "
            f"sum(rate(http_request_duration_seconds_count{SEL}[$__rate_interval]))"
        ),
        [],
    ),
    # --- target-job-rule, target-instance-rule
    (
        "a selector missing instance is flagged",
        _set_expr('sum(rate(http_requests_total{job=~"$job"}[$__rate_interval]))'),
        [
            (
                "target-instance-rule",
                P,
                "A",
                "'http_requests_total{job=~\"$job\"}': instance selector not found",
            )
        ],
    ),
    (
        "a bare selector misses both",
        _set_expr("sum(rate(http_requests_total[$__rate_interval]))"),
        [
            ("target-job-rule", P, "A", "'http_requests_total{}': job selector not found"),
            (
                "target-instance-rule",
                P,
                "A",
                "'http_requests_total{}': instance selector not found",
            ),
        ],
    ),
    (
        "an equality matcher on $job is flagged",
        _set_expr(
            'sum(rate(http_requests_total{job="$job", instance=~"$instance"}[$__rate_interval]))'
        ),
        [
            (
                "target-job-rule",
                P,
                "A",
                '\'http_requests_total{job="$job",instance=~"$instance"}\': '
                "job selector is =, not =~",
            )
        ],
    ),
    (
        "a hard-coded job is flagged",
        _set_expr(
            "sum(rate(http_requests_total"
            '{job=~"elibrary-app", instance=~"$instance"}[$__rate_interval]))'
        ),
        [
            (
                "target-job-rule",
                P,
                "A",
                '\'http_requests_total{job=~"elibrary-app",instance=~"$instance"}\': '
                "job selector is elibrary-app, not $job",
            )
        ],
    ),
    (
        "a hard-coded job next to the variable is accepted",
        _set_expr(
            "sum(rate(http_requests_total"
            '{job="elibrary-app", job=~"${job}", instance=~"$instance"}[$__rate_interval]))'
        ),
        [],
    ),
    (
        "recording-rule series and sloth_slo_info need no job or instance",
        _set_expr(
            'slo:sli_error:ratio_rate5m{sloth_service="elibrary"} '
            '* on (sloth_id) group_left sloth_slo_info{sloth_service="elibrary"}'
        ),
        [],
    ),
    (
        "every selector of a query is checked",
        _a_second_query(f'up{SEL} * on (instance) group_left up{{job=~"$job"}}'),
        [("target-instance-rule", P, "B", "'up{job=~\"$job\"}': instance selector not found")],
    ),
    # --- target-promql-rule
    (
        "unparsable PromQL is flagged with the parser's message",
        _set_expr(f"sum(rate(http_requests_total{SEL}[$__rate_interval])"),
        [
            (
                "target-promql-rule",
                P,
                "A",
                f"invalid PromQL query 'sum(rate(http_requests_total{SEL}[$__rate_interval])': "
                "unclosed left parenthesis",
            )
        ],
    ),
    (
        "an unknown variable is left for the parser to trip on",
        _set_expr(f"topk($n, rate(http_requests_total{SEL}[$__rate_interval]))"),
        [
            (
                "target-promql-rule",
                P,
                "A",
                f"invalid PromQL query 'topk($n, rate(http_requests_total{SEL}"
                "[$__rate_interval]))': unexpected character: '$'",
            )
        ],
    ),
    (
        "an empty query is flagged",
        _set_expr(""),
        [("target-promql-rule", P, "A", "invalid PromQL query '': no expression found in input")],
    ),
    (
        "a Loki query is not read as PromQL",
        lambda d: _panel(d)["targets"].append(
            {"refId": "B", "datasource": {"type": "loki", "uid": "logs"}, "expr": '{app="x"} |= "'}
        ),
        [("panel-datasource-rule", P, "B", "does not use a templated datasource, uses 'logs'")],
    ),
    (
        "a query reusing a missing panel's results is flagged",
        lambda d: _panel(d)["targets"].append(
            {
                "refId": "B",
                "panelId": 9,
                "datasource": {"type": "datasource", "uid": "-- Dashboard --"},
            }
        ),
        [
            (
                "panel-datasource-rule",
                P,
                "B",
                "does not use a templated datasource, uses '-- Dashboard --'",
            ),
            ("target-promql-rule", P, "B", "references panel 9, which does not exist"),
        ],
    ),
    # --- panel rules
    (
        "a panel without a unit is flagged",
        _drop_panel_key("fieldConfig", "defaults", "unit"),
        [("panel-units-rule", P, None, "has no unit (fieldConfig.defaults.unit)")],
    ),
    (
        "a unit Grafana does not know is flagged",
        lambda d: _panel(d)["fieldConfig"]["defaults"].update(unit="requests/s"),
        [("panel-units-rule", P, None, "has unknown unit 'requests/s'")],
    ),
    (
        "a custom suffix unit is accepted",
        lambda d: _panel(d)["fieldConfig"]["defaults"].update(unit="suffix: loans"),
        [],
    ),
    (
        "a unit only in an override is not the panel's unit",
        _unit_only_in_an_override,
        [("panel-units-rule", P, None, "has no unit (fieldConfig.defaults.unit)")],
    ),
    (
        "value mappings excuse a missing unit",
        lambda d: _panel(d)["fieldConfig"]["defaults"].update(
            unit="", mappings=[{"type": "value", "options": {"1": {"text": "UP"}}}]
        ),
        [],
    ),
    (
        "a stat panel showing a label's value needs no unit",
        _stat_showing_a_label,
        [],
    ),
    (
        "a panel without a description is flagged",
        _drop_panel_key("description"),
        [("panel-title-description-rule", P, None, "has no description")],
    ),
    (
        "a panel without a title is flagged",
        _set_panel("title", ""),
        [("panel-title-description-rule", "", None, "has no title")],
    ),
    (
        "a panel on a fixed datasource is flagged",
        _set_panel("datasource", {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}),
        [
            (
                "panel-datasource-rule",
                P,
                None,
                "does not use a templated datasource, uses 'P1809F7CD0C75ACF3'",
            )
        ],
    ),
    (
        "a query on a fixed datasource is flagged",
        lambda d: _panel(d)["targets"][0].update(datasource="prometheus"),
        [
            (
                "panel-datasource-rule",
                P,
                "A",
                "does not use a templated datasource, uses 'prometheus'",
            )
        ],
    ),
    (
        "a query inheriting the panel's datasource is accepted",
        lambda d: _panel(d)["targets"][0].pop("datasource"),
        [],
    ),
    (
        "the $datasource spelling is accepted",
        _set_panel("datasource", "$datasource"),
        [],
    ),
    (
        "a panel with no targets is flagged",
        _set_panel("targets", []),
        [("panel-no-targets-rule", P, None, "has no targets")],
    ),
    (
        "a text panel owes nothing",
        _a_text_panel,
        [],
    ),
    (
        "panels inside a collapsed row are walked, the row itself is not a panel",
        _in_a_collapsed_row,
        [("target-rate-interval-rule", P, "A", "rate() over [5m] should use [$__rate_interval]")],
    ),
    # --- template rules
    (
        "a dashboard without a job variable is flagged",
        _drop_variable("job"),
        [("template-job-rule", None, None, "is missing the job template")],
    ),
    (
        "a single-select instance variable is flagged",
        _set_variable("instance", "multi", False),
        [("template-instance-rule", None, None, "instance template should be a multi select")],
    ),
    (
        "a job variable without the All option is flagged",
        _set_variable("job", "includeAll", False),
        [("template-job-rule", None, None, "job template should include an All option")],
    ),
    (
        "an All value other than .+ is flagged",
        _set_variable("job", "allValue", ".*"),
        [
            (
                "template-job-rule",
                None,
                None,
                "job template allValue should be '.+', is currently '.*'",
            )
        ],
    ),
    (
        "a job variable on a fixed datasource is flagged",
        _set_variable("job", "datasource", {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}),
        [
            (
                "template-job-rule",
                None,
                None,
                "job template should use datasource '$datasource', is currently "
                "'P1809F7CD0C75ACF3'",
            )
        ],
    ),
    (
        "a custom job variable is flagged",
        _set_variable("job", "type", "custom"),
        [
            (
                "template-job-rule",
                None,
                None,
                "job template should be a Prometheus query, is currently 'custom'",
            )
        ],
    ),
    (
        "a dashboard without a datasource variable is flagged, and so are its panels",
        _drop_variable("datasource"),
        [
            ("template-datasource-rule", None, None, "does not have a templated data source"),
            (
                "panel-datasource-rule",
                P,
                None,
                "does not use a templated datasource, uses '${datasource}'",
            ),
            (
                "panel-datasource-rule",
                P,
                "A",
                "does not use a templated datasource, uses '${datasource}'",
            ),
        ],
    ),
    (
        "a datasource variable by another name is flagged",
        _set_variable("datasource", "name", "ds"),
        [
            (
                "template-datasource-rule",
                None,
                None,
                "templated data source variable named 'ds', should be named "
                "'prometheus_datasource', or 'datasource'",
            ),
            (
                "panel-datasource-rule",
                P,
                None,
                "does not use a templated datasource, uses '${datasource}'",
            ),
            (
                "panel-datasource-rule",
                P,
                "A",
                "does not use a templated datasource, uses '${datasource}'",
            ),
        ],
    ),
    (
        "a datasource variable for Loki is flagged",
        _set_variable("datasource", "query", "loki"),
        [
            (
                "template-datasource-rule",
                None,
                None,
                "templated data source variable 'datasource' is for 'loki', "
                "should be for 'prometheus'",
            ),
        ],
    ),
    (
        "a variable query that does not parse is flagged",
        _set_variable("instance", "query", "label_values(up{, instance)"),
        [
            (
                "template-label-promql-rule",
                None,
                None,
                "template 'instance' invalid templated label 'label_values(up{, instance)': "
                "unexpected end of input inside braces",
            )
        ],
    ),
    (
        "a variable query with an unknown function is flagged",
        _set_variable("job", "query", "values(up, job)"),
        [
            (
                "template-label-promql-rule",
                None,
                None,
                "template 'job' invalid templated label 'values(up, job)': "
                "invalid 'function': values",
            )
        ],
    ),
    (
        "a variable query that is no function call is flagged",
        _set_variable("job", "query", "up"),
        [
            (
                "template-label-promql-rule",
                None,
                None,
                "template 'job' invalid templated label 'up': invalid 'query': up",
            )
        ],
    ),
    (
        "a label_values query with a comma in a matcher is split at the right comma",
        _set_variable("instance", "query", 'label_values(up{job=~"a,b|$job"}, instance)'),
        [],
    ),
    (
        "a variable refreshed only on load is flagged",
        _set_variable("instance", "refresh", 1),
        [
            (
                "template-on-time-change-reload-rule",
                None,
                None,
                "template variable named 'instance' should be refreshed 'On time range change' "
                "(refresh: 2), is currently 1",
            )
        ],
    ),
    # --- uneditable-dashboard
    (
        "an editable dashboard is flagged",
        lambda d: d.update(editable=True),
        [
            (
                "uneditable-dashboard",
                None,
                None,
                "is editable, it should be set to 'editable: false'",
            )
        ],
    ),
    (
        "a dashboard that does not say is editable, as Grafana reads it",
        lambda d: d.pop("editable"),
        [
            (
                "uneditable-dashboard",
                None,
                None,
                "is editable, it should be set to 'editable: false'",
            )
        ],
    ),
]


def test_the_good_dashboard_passes_every_rule() -> None:
    assert lint_dashboard(GOOD) == []


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_change_fires_exactly_its_rule(
    change: Change, expected: list[tuple[str, str | None, str | None, str]]
) -> None:
    findings = lint_dashboard(_changed(change))
    assert [(f.rule, f.panel_title, f.ref_id, f.message) for f in findings] == expected
    assert all(f.dashboard_uid == "good" for f in findings)


def test_every_rule_has_a_case_that_fires_it() -> None:
    fired = {rule for _, _, expected in CASES for rule, *_ in expected}
    assert fired == set(RULES)


def test_every_rule_names_its_dashboard_linter_source() -> None:
    for name, rule in RULES.items():
        assert rule.name == name
        assert rule.mirrors.startswith("lint/rule_") and rule.mirrors.endswith(".go")
        assert rule.description


def test_the_good_dashboard_is_not_changed_by_linting() -> None:
    before = copy.deepcopy(GOOD)
    lint_dashboard(GOOD)
    assert before == GOOD


def test_a_finding_reads_as_a_location_and_a_message() -> None:
    finding = Finding("panel-units-rule", "good", "Requests", None, "has no unit")
    assert str(finding) == 'good: panel "Requests": has no unit [panel-units-rule]'
    finding = Finding("target-job-rule", "good", "Requests", "B", "x")
    assert str(finding) == 'good: panel "Requests" query B: x [target-job-rule]'


# ------------------------------------------------------------------------ exceptions

UNIT = Finding("panel-units-rule", "good", "Requests", None, "has no unit")
JOB_A = Finding("target-job-rule", "good", "Requests", "A", "x")
JOB_B = Finding("target-job-rule", "good", "Requests", "B", "x")
TEMPLATE = Finding("template-job-rule", "good", None, None, "is missing the job template")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lint-exceptions.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_exception_silences_the_findings_it_names(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
- rule: target-job-rule
  dashboard: good
  panel: Requests
  target: A
  reason: the query sums every job on purpose
- rule: panel-units-rule
  dashboard: good
  reason: a ratio without a unit
""",
    )
    exceptions = load_exceptions(path)
    assert exceptions == [
        LintException(
            "target-job-rule", "good", "the query sums every job on purpose", "Requests", "A"
        ),
        LintException("panel-units-rule", "good", "a ratio without a unit"),
    ]
    assert str(exceptions[0]) == '[0] target-job-rule on good panel "Requests" query A'
    remaining, stale = apply_exceptions([UNIT, JOB_A, JOB_B, TEMPLATE], exceptions)
    assert remaining == [JOB_B, TEMPLATE]
    assert stale == []


def test_an_exception_matching_nothing_is_stale() -> None:
    wrong_panel = LintException("panel-units-rule", "good", "r", panel="Latency")
    wrong_dashboard = LintException("panel-units-rule", "other", "r")
    panel_wide = LintException("target-job-rule", "good", "r", panel="Requests")
    remaining, stale = apply_exceptions(
        [UNIT, JOB_A, JOB_B], [wrong_panel, wrong_dashboard, panel_wide]
    )
    assert remaining == [UNIT]
    assert stale == [wrong_panel, wrong_dashboard]


def test_a_panel_exception_does_not_cover_dashboard_findings() -> None:
    exception = LintException("template-job-rule", "good", "r", panel="Requests")
    assert apply_exceptions([TEMPLATE], [exception]) == ([TEMPLATE], [exception])


def test_an_empty_exceptions_file_holds_none(tmp_path: Path) -> None:
    assert load_exceptions(_write(tmp_path, "# nothing yet\n")) == []


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        (
            "rule: panel-units-rule\ndashboard: good\nreason: r\n",
            [": must be a list of exceptions (rule, dashboard, panel, target, reason)"],
        ),
        (
            "- rule: panel-units-rule\n  dashboard: good\n",
            [": [0].reason: is required: say why the rule does not apply here"],
        ),
        (
            "- {rule: panel-units-rule, dashboard: good, reason: '  '}\n",
            [": [0].reason: must be a non-empty string"],
        ),
        (
            "- {rule: panel-unit-rule, dashboard: good, reason: r}\n",
            [": [0].rule: unknown rule 'panel-unit-rule'; known: " + ", ".join(RULES)],
        ),
        (
            "- {rule: target-job-rule, dashboard: good, target: A, reason: r}\n",
            [": [0].target: needs a panel: a refId names a query of one panel"],
        ),
        (
            "- {rule: target-job-rule, dashboard: good, panel: P, reason: r, why: x}\n"
            "- just a string\n"
            "- {rule: target-job-rule, dashboard: 7, reason: r}\n",
            [
                ": [0]: unknown key(s) why",
                ": [1]: must be a mapping with keys rule, dashboard, panel, target, reason",
                ": [2].dashboard: must be a non-empty string",
            ],
        ),
        (
            "- {rule: panel-units-rule, dashboard: good, reason: r}\n"
            "- {rule: panel-units-rule, dashboard: good, reason: again}\n",
            [": [1]: repeats [0]"],
        ),
        ("- {rule: [\n", [": line 2: is not valid YAML"]),
    ],
    ids=[
        "a mapping instead of a list",
        "an entry without a reason",
        "a blank reason",
        "an unknown rule",
        "a target without its panel",
        "every bad entry in one error",
        "the same place excepted twice",
        "not YAML",
    ],
)
def test_a_malformed_exceptions_file_is_refused_naming_the_entry(
    tmp_path: Path, text: str, errors: list[str]
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SreError) as caught:
        load_exceptions(path)
    assert str(caught.value).splitlines() == [f"{path}{line}" for line in errors]


def test_a_missing_exceptions_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(SreError, match=r"nowhere\.yaml: cannot read: No such file or directory$"):
        load_exceptions(path)
