"""The committed dashboards: Grafana's schema, the linter's rules, house style, the links
alerts carry, one SLO row per SLO, and ``sre dashboards build`` itself."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import dashboards
import slo
from dashboards.diff import diff_dashboards
from dashboards.lint import DEFAULT_EXCEPTIONS, apply_exceptions, lint_dashboard, load_exceptions
from dashboards.queries import panels
from dashboards.schema import SCHEMA_VERSION, schema_problems
from dashboards.slos import slos_in_rules
from slo.render import render_documents
from slo.spec import SPECS_DIR, load_specs
from slo.windows import load_windows
from sre.cli import all_artifacts, main
from sre.errors import SreError
from sre.generated import REPO_ROOT
from sre.stack import free_port

COMMITTED = dashboards.committed_dashboards(REPO_ROOT)
BY_UID = {d["uid"]: d for d in COMMITTED}
CURRENT_PANEL_TYPES = {"timeseries", "stat", "table", "bargauge", "heatmap", "state-timeline"}
LEGACY_KEYS = {"span", "error", "cacheTimeout", "rows", "minSpan", "height", "hideControls"}
SLO_RULES = REPO_ROOT / "slo/generated/elibrary.rules.yaml"


def _walk(node: Any, path: str = ""):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key, value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_the_five_dashboards_are_committed_and_current() -> None:
    assert sorted(BY_UID) == [
        "elibrary-business",
        "elibrary-mysql",
        "elibrary-service",
        "elibrary-slos",
        "elibrary-system",
    ]
    artifacts = dashboards.build_artifacts({"slo.rules.yaml": SLO_RULES.read_text()})
    for path, text in artifacts.items():
        assert (REPO_ROOT / path).read_text() == text, f"{path}: run sre dashboards build"


@pytest.mark.parametrize("uid", sorted(BY_UID))
def test_grafanas_own_models_read_every_dashboard_whole(uid: str) -> None:
    assert BY_UID[uid]["schemaVersion"] == SCHEMA_VERSION == 41
    assert schema_problems(BY_UID[uid]) == []


def test_the_schema_check_names_what_grafana_does_not_know() -> None:
    broken = copy.deepcopy(BY_UID["elibrary-service"])
    broken["panels"][1]["span"] = 6  # grafanalib's pre-grid width
    series = next(i for i, p in enumerate(broken["panels"]) if p["type"] == "timeseries")
    broken["panels"][series]["fieldConfig"]["defaults"]["custom"]["lineWdth"] = 2
    broken["schemaVersion"] = 16
    lost = "not in Grafana's schema (lost on the round trip)"
    assert schema_problems(broken) == [
        "elibrary-service: schemaVersion: 16 is not the pinned Grafana's 41",
        f"elibrary-service.panels[1 'Requests per second'].span: {lost}",
        f"elibrary-service.panels[{series} 'Request rate by route'].fieldConfig.defaults.custom"
        f".lineWdth: {lost}",
    ]


def test_every_dashboard_keeps_the_linters_rules_with_only_the_listed_exceptions() -> None:
    findings = [finding for d in COMMITTED for finding in lint_dashboard(d)]
    exceptions = load_exceptions(DEFAULT_EXCEPTIONS)
    remaining, stale = apply_exceptions(findings, exceptions)
    assert remaining == [], "\n".join(map(str, remaining))
    assert stale == []
    assert all(len(e.reason) > 40 for e in exceptions)


@pytest.mark.parametrize("uid", sorted(BY_UID))
def test_house_style(uid: str) -> None:
    dashboard = BY_UID[uid]
    assert dashboard["editable"] is False and "elibrary" in dashboard["tags"]
    assert dashboard["links"][0]["type"] == "dashboards"  # the eLibrary menu
    variables = [v["name"] for v in dashboard["templating"]["list"]]
    assert variables[0] == "datasource"
    drawn = list(panels(dashboard))
    assert len({p["id"] for p in dashboard["panels"] + drawn}) == len(dashboard["panels"])
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(box["x"], box["x"] + box["w"])
                for y in range(box["y"], box["y"] + box["h"])}  # fmt: skip
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
    for panel in drawn:
        assert panel["type"] in CURRENT_PANEL_TYPES
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"].strip() and panel["fieldConfig"]["defaults"]["unit"]
        for query in panel["targets"]:
            assert query["datasource"] == panel["datasource"]
    for path, key, value in _walk(dashboard):
        assert key not in LEGACY_KEYS, path
        assert value is not None or path.endswith(".steps[0].value"), path


def test_every_alert_dashboard_link_resolves_to_a_committed_dashboard() -> None:
    links: set[str] = set()
    for path, text in all_artifacts().items():
        if path.endswith((".rules.yaml", "prometheusrule-slos.yaml", "prometheusrule.yaml")):
            links |= set(re.findall(r"dashboard_url: \S+/d/([\w-]+)", text))
    assert links >= {"elibrary-service", "elibrary-mysql", "elibrary-business", "elibrary-slos"}
    assert links <= set(BY_UID)


def _rows(dashboard: dict[str, Any]) -> list[str]:
    return [p["title"] for p in dashboard["panels"] if p["type"] == "row"]


def test_the_slo_dashboard_has_one_row_per_slo_of_the_specs() -> None:
    rows = _rows(BY_UID["elibrary-slos"])
    assert rows == [
        "Every SLO",
        "elibrary / requests-availability: 99.9%",
        "elibrary / requests-latency: 95%",
        "elibrary / borrow-availability: 99.5%",
    ]


def test_a_new_slo_in_a_spec_gets_its_row_with_no_code(tmp_path: Path) -> None:
    spec = tmp_path / "search.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "version": "prometheus/v1",
                "service": "search",
                "slos": [
                    {
                        "name": "queries-availability",
                        "objective": 99.95,
                        "sli": {
                            "events": {
                                "error_query": 'sum(rate(search_total{code="5xx"}[{{.window}}]))',
                                "total_query": "sum(rate(search_total[{{.window}}]))",
                            }
                        },
                        "alerting": {
                            "page_alert": {"disable": True},
                            "ticket_alert": {"disable": True},
                        },
                    }
                ],
            }
        )
    )
    documents = load_specs([spec])
    rules = render_documents(slo.build_documents(documents, load_windows(None), slo.BuildOptions()))
    built = dashboards.build_from_file(
        dashboards.HERE / "slos.dashboard.py", dashboards.inputs_from_rules({"r": rules})
    )
    assert _rows(built) == ["Every SLO", "search / queries-availability: 99.95%"]
    row_queries = [t["expr"] for p in panels(built) for t in p["targets"]]
    assert any('sloth_id="search-queries-availability"' in q for q in row_queries)


def test_the_service_dashboard_draws_the_slo_thresholds() -> None:
    specs = {s.name: s for d in load_specs([SPECS_DIR]) for s in d.slos}
    latency_query = repr(specs["requests-latency"].sli)
    threshold = re.search(r'le="([0-9.]+)"', latency_query)
    assert threshold is not None
    budget = round(1 - specs["requests-availability"].objective / 100, 12)
    by_title = {p["title"]: p for p in panels(BY_UID["elibrary-service"])}
    latency = by_title["Latency p50 / p95 / p99"]["fieldConfig"]["defaults"]
    errors = by_title["Error ratio"]["fieldConfig"]["defaults"]
    assert latency["thresholds"]["steps"][1]["value"] == float(threshold[1])
    assert errors["thresholds"]["steps"][1]["value"] == budget
    assert latency["custom"]["thresholdsStyle"]["mode"] == "line"
    assert errors["custom"]["thresholdsStyle"]["mode"] == "line"


def test_slos_are_read_back_from_sloth_rule_names() -> None:
    found = slos_in_rules(SLO_RULES.read_text(), "rules")
    assert [(s.sloth_id, s.objective, s.period_days) for s in found] == [
        ("elibrary-requests-availability", 0.9990000000000001, 30),
        ("elibrary-requests-latency", 0.95, 30),
        ("elibrary-borrow-availability", 0.995, 30),
    ]
    assert found[0].windows == ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
    assert {(a.name, a.severity) for a in found[0].alerts} == {
        ("ElibraryAvailabilityBudgetBurn", "page"),
        ("ElibraryAvailabilityBudgetBurn", "ticket"),
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("groups: [", "rules: not YAML"),
        ("kind: nothing", "rules: no rule groups"),
        (
            "groups: [{name: g, rules: [{record: slo:time_period:days, expr: vector(30),"
            " labels: {sloth_id: x}}]}]",
            "rules: x: no slo:objective:ratio rule",
        ),
        (
            "groups: [{name: g, rules: [{record: slo:objective:ratio, expr: up,"
            " labels: {sloth_id: x}}]}]",
            "rules: slo:objective:ratio: not vector(<number>): up",
        ),
    ],
)
def test_unreadable_slo_rules_are_named(text: str, problem: str) -> None:
    with pytest.raises(SreError) as caught:
        slos_in_rules(text, "rules")
    assert str(caught.value).startswith(problem)


# --------------------------------------------------------------------------- diff


def test_the_check_diff_speaks_of_panels_and_queries() -> None:
    old = BY_UID["elibrary-service"]
    before = old_expr(old)
    new = copy.deepcopy(old)
    removed = new["panels"].pop(3)  # "Now / p95 latency"
    changed = next(
        p for p in new["panels"] if p["title"] == "Error ratio" and p["type"] == "timeseries"
    )
    changed["fieldConfig"]["defaults"]["unit"] = "percent"
    changed["targets"][0]["expr"] = "sum(rate(x_total[$__rate_interval]))"
    new["title"] = "Service"
    assert diff_dashboards(old, new) == [
        f'- panel "Now / {removed["title"]}"',
        '~ panel "Traffic and errors / Error ratio": query A expr: '
        f"{before!r} → 'sum(rate(x_total[$__rate_interval]))'",
        "~ panel \"Traffic and errors / Error ratio\": fieldConfig.defaults.unit: 'percentunit'"
        " → 'percent'",
        "~ dashboard: title: 'eLibrary service' → 'Service'",
    ]
    assert diff_dashboards(None, new)[0].startswith('+ dashboard "Service"')
    assert diff_dashboards(old, None) == ['- dashboard "eLibrary service"']
    assert diff_dashboards(old, copy.deepcopy(old)) == []


def old_expr(dashboard: dict[str, Any]) -> str:
    panel = next(
        p for p in dashboard["panels"] if p["title"] == "Error ratio" and p["type"] == "timeseries"
    )
    return str(panel["targets"][0]["expr"])


# --------------------------------------------------------------------------- CLI


def test_build_check_passes_on_the_committed_files() -> None:
    result = CliRunner().invoke(main, ["dashboards", "build", "--check"])
    assert result.exit_code == 0, result.output
    assert "7 dashboard files are up to date" in result.output


def test_build_of_one_dashboard_file_of_your_own(tmp_path: Path) -> None:
    source = tmp_path / "team.dashboard.py"
    source.write_text(
        "from dashboards.house import Row, dashboard, query_variable, selector, target,"
        " timeseries\n\n"
        "def build(inputs):\n"
        "    return dashboard('team', 'Team', 'Ours.', [Row('R', [timeseries('Up', 'Targets.',"
        " [target(f'up{selector()}')], unit='short')])],"
        " variables=[query_variable('job', 'Job', 'up'),"
        " query_variable('instance', 'Instance', 'up', after=['job'])])\n"
    )
    result = CliRunner().invoke(main, ["dashboards", "build", str(source), "-o", "-"])
    assert result.exit_code == 0, result.output
    built = json.loads(result.output)
    assert built["uid"] == "team" and schema_problems(built) == []
    assert lint_dashboard(built) == []


@pytest.mark.parametrize(
    ("args", "source", "message"),
    [
        (["a.dashboard.py", "b.dashboard.py"], None, "PATHS: give one *.dashboard.py at a time"),
        (["-o", "x.json"], None, "--output: needs a PATH to build"),
        (["{dir}/missing.dashboard.py"], None, "missing.dashboard.py: no such file"),
        (["{dir}/x.dashboard.py"], "dashboard = 1\n", "x.dashboard.py: defines no build(inputs)"),
        (["{dir}/x.dashboard.py"], "def build(:\n", "x.dashboard.py: line 1: not Python"),
        (["{dir}/x.dashboard.py"], "def build(i):\n    return {}\n", "must return a dashboard"),
    ],
)
def test_build_refuses_bad_input_with_exit_2(
    tmp_path: Path, args: list[str], source: str | None, message: str
) -> None:
    if source is not None:
        (tmp_path / "x.dashboard.py").write_text(source)
    argv = [a.replace("{dir}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(main, ["dashboards", "build", *argv])
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Prometheus does not answer (connection refused)"),
        (["--from", "yesterday"], "--from: 'yesterday' is neither RFC 3339 nor Unix seconds"),
        (["--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"], "must be before"),
        (["--since", "ages"], "--since/--scrape-interval"),
        (["--dashboard", "elibrary-nope"], "--dashboard: no committed dashboard elibrary-nope"),
        (["--var", "route"], "--var: 'route' is not name=value"),
    ],
)
def test_preview_refuses_bad_input_and_a_silent_prometheus_with_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    silent = f"http://user:secret@127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        main, ["dashboards", "preview", "--prometheus", silent, "--out", str(tmp_path), *args]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "secret" not in result.output
    assert not (tmp_path / "index.html").exists()
