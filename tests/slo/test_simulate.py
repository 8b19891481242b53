"""sre slo simulate: the generated alerts' reaction times, measured by promtool.

The table test pins, in minutes, when the project's alerts start and stop for each burn
rate, so a change in the rules or the windows shows up here; the other tests pin the
Workbook arithmetic, promtool 2.42's output format, the plan and the errors.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
from pathlib import Path

import pytest
import yaml

from slo.errors import SpecError
from slo.model import SLO, AlertMeta, EventsSLI
from slo.rules import BuildOptions, build_slo_groups, sli_error_metric
from slo.simulate import (
    DEFAULT_BURN_RATES,
    OUTAGE,
    SimulationReport,
    build_plan,
    build_report,
    expected_start_s,
    expected_stop_s,
    parse_promtool_output,
    render_json,
    render_markdown,
    simulate,
)
from slo.spec import load_specs
from slo.windows import load_windows
from tests.conftest import REPO, require_tool

SPEC = REPO / "slo" / "specs" / "elibrary.yaml"
CATALOG = load_windows()
DAY = 86400
W30 = CATALOG[30 * DAY]


def project_slos() -> list[SLO]:
    return [slo for doc in load_specs([SPEC], 30 * DAY, CATALOG) for slo in doc.slos]


def one_slo(**changes: object) -> SLO:
    base = SLO(
        id="svc-avail",
        name="avail",
        service="svc",
        objective=99.9,
        period_s=30 * DAY,
        sli=EventsSLI("sum(rate(e[{{.window}}]))", "sum(rate(t[{{.window}}]))"),
        page_alert=AlertMeta("SvcPage", {"severity": "critical"}, {"summary": "s"}),
        ticket_alert=AlertMeta("SvcTicket"),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def report() -> SimulationReport:
    """One promtool run over the project's three SLOs and the default burn rates."""
    require_tool("promtool", "prometheus")
    return simulate(project_slos(), CATALOG)


# (page starts, page stops, ticket starts, ticket stops), minutes after the burn starts or
# ends; None: never fires (start), not firing when the burn ends (stop)
FIGURES = {
    ("requests-availability", "0.5x"): (None, None, None, None),
    ("requests-availability", "1x"): (None, None, None, None),
    ("requests-availability", "2x"): (None, None, 2161, 180),
    ("requests-availability", "6x"): (None, None, 721, 301),
    ("requests-availability", "14.4x"): (151, 18, 301, 336),
    ("requests-availability", "30x"): (29, 24, 145, 348),
    ("requests-availability", "outage (1000x)"): (1, 30, 5, 360),
    ("requests-latency", "0.5x"): (None, None, None, None),
    ("requests-latency", "1x"): (None, None, None, None),
    ("requests-latency", "2x"): (None, None, 2161, 180),
    ("requests-latency", "6x"): (None, None, 721, 301),
    ("requests-latency", "14.4x"): (151, 18, 300, 336),
    ("requests-latency", "outage (20x)"): (44, 21, 217, 343),
    ("borrow-availability", "0.5x"): (None, None, None, None),
    ("borrow-availability", "1x"): (None, None, None, None),
    ("borrow-availability", "2x"): (None, None, 2161, 180),
    ("borrow-availability", "6x"): (None, None, 721, 301),
    ("borrow-availability", "14.4x"): (150, 18, 300, 336),
    ("borrow-availability", "30x"): (29, 24, 145, 348),
    ("borrow-availability", "outage (200x)"): (5, 30, 22, 359),
}


def _minutes(seconds: int | None) -> int | None:
    return None if seconds is None else seconds // 60


@pytest.mark.parametrize(
    ("slo_name", "burn", "figures"),
    [(slo, burn, figures) for (slo, burn), figures in FIGURES.items()],
    ids=[f"{slo} at {burn}" for slo, burn in FIGURES],
)
def test_the_project_alerts_start_and_stop_when_measured_before(
    report: SimulationReport, slo_name: str, burn: str, figures: tuple[int | None, ...]
) -> None:
    slo = next(s for s in report.slos if s.name == slo_name)
    result = next(b for b in slo.burns if b.label == burn)
    assert result.page is not None and result.ticket is not None
    measured = (
        _minutes(result.page.measured_start_s),
        _minutes(result.page.measured_stop_s),
        _minutes(result.ticket.measured_start_s),
        _minutes(result.ticket.measured_stop_s),
    )
    assert measured == figures
    assert result.page.problems == result.ticket.problems == ()


def test_every_measured_time_is_within_one_interval_of_the_workbook(
    report: SimulationReport,
) -> None:
    assert not report.flagged
    simulated = {(s.name, b.label) for s in report.slos for b in s.burns if not b.note}
    assert simulated == set(FIGURES)


def test_a_burn_above_a_full_outage_is_reported_not_simulated(report: SimulationReport) -> None:
    latency = next(s for s in report.slos if s.name == "requests-latency")
    burn = next(b for b in latency.burns if b.label == "30x")
    assert (burn.page, burn.ticket) == (None, None)
    assert burn.note == "above a full outage (20x) for a 95% objective"


def test_the_markdown_puts_each_measured_time_beside_its_expectation(
    report: SimulationReport,
) -> None:
    text = render_markdown(report)
    assert text.startswith("# SLO alert simulation\n")
    assert text.endswith("|\n")
    assert "## elibrary/requests-availability: 99.9% over 30d\n" in text
    assert (
        "| 14.4x | 1.44% | 2h31m (exp. 2h30m) | 18m (exp. 17m30s) | 5h1m (exp. 5h) "
        "| 5h36m (exp. 5h35m) |\n" in text
    )
    assert "| 0.5x | 0.05% | never (exp. never) | — | never (exp. never) | — |\n" in text
    assert "| 30x | 150% | above a full outage (20x) for a 95% objective | | | |\n" in text
    assert "⚠" not in text.split("\n", 3)[3]


def test_the_json_gives_seconds_and_null_for_never(report: SimulationReport) -> None:
    text = render_json(report)
    data = json.loads(text)
    assert text.endswith("}\n") and data["flagged"] is False
    assert data["evaluation_interval_seconds"] == 60
    first = data["slos"][0]
    assert (first["id"], first["objective"], first["period_seconds"]) == (
        "elibrary-requests-availability",
        99.9,
        30 * DAY,
    )
    page = first["burns"][4]["page"]
    assert first["burns"][4]["burn_rate"] == 14.4
    assert page == {
        "expected_start_seconds": 9000.0,
        "measured_start_seconds": 9060,
        "expected_stop_seconds": 1050.0,
        "measured_stop_seconds": 1080,
        "problems": [],
    }
    assert first["burns"][0]["page"]["measured_start_seconds"] is None
    assert data["slos"][1]["burns"][5]["page"] is None


# --- the Workbook's arithmetic -----------------------------------------------------------

EXPECTATIONS = [
    ("a 0.5x burn never pages", "page", 0.5, None, None),
    ("a burn at the 6x factor does not exceed it: never pages", "page", 6, None, None),
    ("14.4x pages through the 6h condition: 6h x 6 / 14.4", "page", 14.4, 9000, 1050),
    ("30x pages through the 1h condition, resets with the 30m one", "page", 30, 1728, 1440),
    ("a full outage of 99.9% pages within a minute", "page", 1000, 51.84, 1789.2),
    ("a 1x burn never tickets", "ticket", 1, None, None),
    ("2x tickets after 36h through the 3d condition", "ticket", 2, 129600, 10800),
    ("6x tickets after 12h through either condition", "ticket", 6, 43200, 18000),
]


@pytest.mark.parametrize(
    ("severity", "burn", "start", "stop"),
    [case[1:] for case in EXPECTATIONS],
    ids=[case[0] for case in EXPECTATIONS],
)
def test_the_workbook_expectation(
    severity: str, burn: float, start: float | None, stop: float | None
) -> None:
    assert expected_start_s(W30, severity, burn) == (
        None if start is None else pytest.approx(start)
    )
    assert expected_stop_s(W30, severity, burn) == (None if stop is None else pytest.approx(stop))


# --- promtool's output (2.42) ----------------------------------------------------------

PROMTOOL_2_42_OUTPUT = """Unit Testing:  test.yaml
  FAILED:
    expr: "{__name__=~\\"first|y\\"}", time: 10m,
        exp: {} -1E+00
        got: {__name__="first"} 9E+02, {__name__="y", a="1"} 1.4399999999999183E-05, {} 1E+00

"""


def test_the_got_line_of_promtool_2_42_is_read() -> None:
    assert parse_promtool_output(PROMTOOL_2_42_OUTPUT) == [
        ({"__name__": "first"}, 900.0),
        ({"__name__": "y", "a": "1"}, 1.4399999999999183e-05),
        ({}, 1.0),
    ]


def test_got_nil_is_no_sample() -> None:
    assert parse_promtool_output("  FAILED:\n    expr: ...\n        got: nil\n") == []


def test_output_without_a_got_line_is_an_error() -> None:
    with pytest.raises(SpecError, match=r"^promtool: unexpected output \(no 'got:' line\):\n"):
        parse_promtool_output("  FAILED:\n    rule: x, time: 1m, err: boom\n")


def test_the_installed_promtool_prints_what_the_parser_reads(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yaml"],
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [{"series": 'y{a="1"}', "values": "0.0144+0x10"}],
                        "promql_expr_test": [
                            {
                                "expr": 'y or label_replace(vector(900), "b", "x", "", "")',
                                "eval_time": "5m",
                                "exp_samples": [{"labels": "{}", "value": -1}],
                            }
                        ],
                    }
                ],
            }
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    # samples sorted by their labels, values in Go's shortest %E form
    assert parse_promtool_output(result.stdout + result.stderr) == [
        ({"__name__": "y", "a": "1"}, 0.0144),
        ({"b": "x"}, 900.0),
    ]


# --- the plan ------------------------------------------------------------------------------


def test_the_simulated_alerts_are_the_generated_ones_byte_for_byte() -> None:
    plan = build_plan(project_slos(), CATALOG)
    groups = yaml.safe_load(plan.rules_yaml)["groups"]
    simulated = {rule["expr"] for group in groups for rule in group["rules"] if "alert" in rule}
    for slo in project_slos():
        built = build_slo_groups(slo, W30, BuildOptions(), "prometheus/v1", "cli-gen-prom")
        for rule in (r for g in built for r in g.rules if r.alert):
            assert rule.expr in simulated


def test_only_the_recording_rules_the_alerts_read_are_kept() -> None:
    plan = build_plan([one_slo()], CATALOG)
    groups = {g["name"]: g for g in yaml.safe_load(plan.rules_yaml)["groups"]}
    sli = groups["sloth-slo-sli-recordings-svc-avail"]
    assert [r["record"] for r in sli["rules"]] == [sli_error_metric(w) for w in W30.windows()]
    assert "sloth-slo-meta-recordings-svc-avail" not in groups
    alerts = groups["sloth-slo-alerts-svc-avail"]["rules"]
    assert [(a["alert"], a["labels"]) for a in alerts] == [
        ("SvcPage", {"sloth_severity": "page"}),
        ("SvcTicket", {"sloth_severity": "ticket"}),
    ]
    order = yaml.safe_load(plan.test_yaml)["group_eval_order"]
    assert order == [
        "sre-simulate-incident",
        "sloth-slo-sli-recordings-svc-avail",
        "sloth-slo-alerts-svc-avail",
        "sre-simulate-alert-tracking",
    ]


def test_promtool_accepts_the_simulation_rules(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    (tmp_path / "rules.yaml").write_text(build_plan(project_slos(), CATALOG).rules_yaml)
    result = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_onset_lasts_until_its_slowest_expected_alert_plus_an_hour() -> None:
    # 2x tickets after 36h; the outage tickets after 4m19s; the recovery needs 10m + 6h
    plan = build_plan([one_slo()], CATALOG, [2, OUTAGE, 0.5])
    assert plan.onset_ends_s == ((37 * 3600, 5 * 60 + 3600, 3600),)
    assert (plan.incident_end_s, plan.recovery_run_s) == (600, 600 + 6 * 3600 + 3600)
    assert plan.run_s == 37 * 3600 + plan.recovery_run_s
    tests = yaml.safe_load(plan.test_yaml)["tests"]
    assert [t["name"] for t in tests] == ["sre slo simulate: onset", "sre slo simulate: recovery"]
    assert [t["promql_expr_test"][0]["eval_time"] for t in tests] == ["1d13h", "7h10m"]


# --- smaller runs --------------------------------------------------------------------------


def test_a_disabled_alert_is_not_simulated() -> None:
    require_tool("promtool", "prometheus")
    result = simulate([one_slo(ticket_alert=None)], CATALOG, [30, OUTAGE])
    burns = result.slos[0].burns
    assert [b.ticket for b in burns] == [None, None]
    assert [_minutes(b.page.measured_start_s) for b in burns if b.page] == [29, 1]
    assert "| 30x | 3% | 29m (exp. 28m48s) | 24m (exp. 24m) | disabled | disabled |" in (
        render_markdown(result)
    )


@pytest.mark.parametrize(
    ("period_days", "interval_s"),
    [(28, 60), (30, 300), (30, 30)],
    ids=["a 28-day period's windows", "a 5m evaluation interval", "a 30s evaluation interval"],
)
def test_measured_times_agree_with_the_workbook_for(period_days: int, interval_s: int) -> None:
    require_tool("promtool", "prometheus")
    slo = one_slo(period_s=period_days * DAY)
    result = simulate([slo], CATALOG, [14.4, 30, OUTAGE], evaluation_interval_s=interval_s)
    assert not result.flagged, render_markdown(result)
    assert all(b.page and b.page.measured_start_s for b in result.slos[0].burns)


def test_a_late_alert_is_flagged() -> None:
    plan = build_plan([one_slo(ticket_alert=None)], CATALOG, [14.4])

    def sample(name: str, phase: str, value: float) -> tuple[dict[str, str], float]:
        labels = {
            "__name__": f"sre_simulated:{name}",
            "sloth_severity": "page",
            "sre_simulation_case": "0",
            "sre_simulation_phase": phase,
            "sre_simulation_slo": "0",
        }
        return labels, value

    end, onset_end = plan.incident_end_s, plan.onset_ends_s[0][0]
    samples = [
        sample("alert_first_firing:timestamp", "onset", 3 * 3600),
        sample("alert_last_firing:timestamp", "onset", onset_end),
        sample("alert_firing:evaluations", "onset", (onset_end - 3 * 3600) // 60 + 1),
        sample("alert_first_firing:timestamp", "recovery", 60),
        sample("alert_last_firing:timestamp", "recovery", end + 17 * 60),
        sample("alert_firing:evaluations", "recovery", (end + 17 * 60 - 60) // 60 + 1),
    ]
    page = build_report(plan, samples).slos[0].burns[0].page
    assert page is not None
    assert page.problems == ("starts after 3h, expected 2h30m",)
    assert "| 14.4x | 1.44% | ⚠ 3h (exp. 2h30m) | 18m (exp. 17m30s) |" in render_markdown(
        build_report(plan, samples)
    )
    assert "- 14.4x page: starts after 3h, expected 2h30m" in render_markdown(
        build_report(plan, samples)
    )


def test_an_alert_silent_at_a_full_burn_is_flagged() -> None:
    plan = build_plan([one_slo(ticket_alert=None)], CATALOG, [14.4])
    page = build_report(plan, []).slos[0].burns[0].page
    assert page is not None
    assert page.problems == (
        "starts: not within 3h30m, expected after 2h30m",
        "silent once a burn has filled every window",
    )


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ([0], "burn rates: 0 must be above 0"),
        ([1, -2], "burn rates: -2 must be above 0"),
        ([math.nan], "burn rates: nan is not a number"),
        ([], "burn rates: at least one is needed"),
    ],
    ids=["zero", "a negative rate", "not a number", "none at all"],
)
def test_bad_burn_rates_are_refused(rates: list[float], message: str) -> None:
    with pytest.raises(SpecError) as error:
        simulate([one_slo()], CATALOG, rates)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        (0, "evaluation interval: 0 must be a whole number of seconds, 1 to 300"),
        (600, "evaluation interval: 600 must be a whole number of seconds, 1 to 300"),
        (7, "evaluation interval: 7s must divide every alert window (5m does not)"),
    ],
    ids=["zero", "longer than the lookback", "not dividing the windows"],
)
def test_bad_evaluation_intervals_are_refused(interval: int, message: str) -> None:
    with pytest.raises(SpecError) as error:
        simulate([one_slo()], CATALOG, evaluation_interval_s=interval)
    assert str(error.value) == message


def test_a_missing_promtool_is_a_clear_error() -> None:
    with pytest.raises(SpecError) as error:
        simulate([one_slo()], CATALOG, promtool="/nonexistent/promtool")
    assert str(error.value) == (
        "promtool: '/nonexistent/promtool' not found: install Prometheus' promtool "
        "(Debian package prometheus) or put it on PATH"
    )


def test_a_period_without_windows_is_refused() -> None:
    with pytest.raises(SpecError) as error:
        simulate([one_slo(period_s=7 * DAY)], CATALOG)
    assert str(error.value) == "svc-avail: no alert windows for a 1w period (known: 4w, 30d)"


def test_the_same_slo_twice_is_refused() -> None:
    with pytest.raises(SpecError) as error:
        simulate([one_slo(), one_slo()], CATALOG)
    assert str(error.value) == "svc-avail: the same SLO id is given twice"


def test_an_slo_without_alerts_needs_no_promtool_run() -> None:
    result = simulate(
        [one_slo(page_alert=None, ticket_alert=None)], CATALOG, promtool="/nonexistent/promtool"
    )
    assert [(b.page, b.ticket) for b in result.slos[0].burns] == [(None, None)] * 7
    assert "| 2x | 0.2% | disabled | disabled | disabled | disabled |" in render_markdown(result)


def test_the_default_burn_rates_end_with_a_full_outage() -> None:
    assert DEFAULT_BURN_RATES == (0.5, 1, 2, 6, 14.4, 30, OUTAGE)
    assert math.isinf(OUTAGE)
