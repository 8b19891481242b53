"""``sre slo gate``: the judgements and their evidence rules (pure), the report formats, bad
input, and a real Prometheus 2.42 scraping the app while a loopback client makes a known
number of requests and writes a run directory in the load-test runner's format."""

# The expected reports below are exact terminal and Markdown text, wider than 100 columns.
# ruff: noqa: E501

from __future__ import annotations

import csv
import json
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from junitparser import Error, Failure, JUnitXml, Skipped
from scipy import stats

from slo.errors import SpecError
from slo.gate import (
    REQUESTS_HEADER,
    ClientRun,
    GateReport,
    GateSettings,
    Judgement,
    LoggedRequest,
    ObjectiveResult,
    RunInfo,
    ServerRun,
    ServerSeries,
    SloResult,
    Verdict,
    build_gate_report,
    fetch_server_run,
    judge_run,
    load_client_run,
    render_json,
    render_junit,
    render_markdown,
    render_table,
    server_selector,
)
from slo.model import SLO, RawSLI
from slo.report import NoDataError, PrometheusError
from slo.spec import SPECS_DIR, load_specs
from sre.stack import SRE, free_port, stack
from tests.conftest import require_tool

SPEC = {s.name: s for d in load_specs([SPECS_DIR / "elibrary.yaml"]) for s in d.slos}
AVAILABILITY = SPEC["requests-availability"]  # <= 0.1% 5xx, min 1000, baseline +0.05 points
LATENCY = SPEC["requests-latency"]  # p95 <= 200 ms, min 1000, baseline +10%
BORROW = SPEC["borrow-availability"]  # POST /api/loans <= 0.5% 5xx, min 200
START = 1_795_000_000.0  # 2026-11-18 11:06:40Z
BOOKS = ("GET", "/api/books")
BOOK = ("GET", "/api/books/<int:book_id>")
LOANS = ("POST", "/api/loans")
INFO = RunInfo(
    start=datetime.fromtimestamp(START, UTC),
    end=datetime.fromtimestamp(START + 100, UTC),
    profile="load",
    users=50,
)
SERVER_LABELS = (("instance", "127.0.0.1:8000"), ("job", "elibrary-app"))
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, math.inf)


# --- fixtures: runs made of known requests -----------------------------------------------


def calls(
    route: tuple[str, str], latencies_ms: Sequence[float], errors: int = 0
) -> list[LoggedRequest]:
    """Requests of one route with these latencies; the first ``errors`` answer 500."""
    method, name = route
    return [
        LoggedRequest(method, name, float(ms), 500 if i < errors else 200, i >= errors)
        for i, ms in enumerate(latencies_ms)
    ]


def spread(n: int, low_ms: float, high_ms: float) -> list[float]:
    """n latencies evenly spread over [low, high]."""
    step = (high_ms - low_ms) / max(1, n - 1)
    return [round(low_ms + i * step, 3) for i in range(n)]


def client_of(logged: Sequence[LoggedRequest], info: RunInfo | None = INFO) -> ClientRun:
    return ClientRun("runs/candidate/locust", requests=tuple(logged), info=info)


def server_of(logged: Sequence[LoggedRequest], problems: Sequence[str] = ()) -> ServerRun:
    """What Prometheus would have counted for exactly these requests."""
    counts: Counter[tuple[str, str, str]] = Counter()
    buckets: Counter[tuple[str, str, float]] = Counter()
    for r in logged:
        counts[r.method, r.name, str(r.status)] += 1
        for le in BUCKETS:
            if r.latency_ms / 1000 <= le:
                buckets[r.method, r.name, le] += 1
    series = [
        ServerSeries(
            "http_requests_total",
            tuple(sorted((*SERVER_LABELS, ("method", m), ("route", n), ("status", s)))),
            float(count),
        )
        for (m, n, s), count in counts.items()
    ]
    series += [
        ServerSeries(
            "http_request_duration_seconds_bucket",
            tuple(sorted((*SERVER_LABELS, ("le", _le(le)), ("method", m), ("route", n)))),
            float(count),
        )
        for (m, n, le), count in buckets.items()
    ]
    return ServerRun(
        "http://prometheus:9090",
        datetime.fromtimestamp(START, UTC),
        datetime.fromtimestamp(START + 100, UTC),
        tuple(series),
        tuple(problems),
    )


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def gated(slo: SLO, **changes: Any) -> SLO:
    """The SLO with its gate changed."""
    assert slo.gate is not None
    return replace(slo, gate=replace(slo.gate, **changes))


def judge(
    slo: SLO,
    client: ClientRun | None = None,
    server: ServerRun | None = None,
    baseline: ClientRun | None = None,
) -> GateReport:
    return build_gate_report([slo], client, server, baseline)


def judgement(report: GateReport, kind: str) -> Judgement:
    (found,) = [j for o in report.objectives for j in o.judgements if j.kind == kind]
    return found


# --- evidence: error ratios --------------------------------------------------------------


@pytest.mark.parametrize(
    ("slo", "n", "errors", "side", "verdict"),
    [
        (AVAILABILITY, 3000, 0, "client", Verdict.PASS),
        (AVAILABILITY, 2000, 0, "client", Verdict.INCONCLUSIVE),
        (AVAILABILITY, 3000, 10, "client", Verdict.FAIL),
        (AVAILABILITY, 3000, 3, "client", Verdict.INCONCLUSIVE),
        (AVAILABILITY, 3000, 0, "server", Verdict.PASS),
        (AVAILABILITY, 3000, 10, "server", Verdict.FAIL),
        (BORROW, 700, 0, "both", Verdict.PASS),
        (BORROW, 700, 10, "both", Verdict.FAIL),
        (BORROW, 400, 0, "both", Verdict.INCONCLUSIVE),
    ],
    ids=[
        "no error in 3000 requests shows the ratio below 0.1%: pass",
        "no error in 2000 requests allows up to about 3/2000 = 0.15%: inconclusive",
        "10 errors in 3000 requests show it above 0.1% even at its lower bound: fail",
        "3 errors in 3000 requests, exactly the limit, cannot be told apart: inconclusive",
        "the server's exact counts are judged the same way: pass",
        "the server's exact counts are judged the same way: fail",
        "borrowing: no error in 700 requests shows the ratio below 0.5%",
        "borrowing: 10 errors in 700 requests (1.4%) fail 0.5%",
        "borrowing: 400 requests meet min_requests but cannot show 0.5% without errors",
    ],
)
def test_an_error_ratio_passes_or_fails_only_when_its_bounds_are_clear_of_the_limit(
    slo: SLO, n: int, errors: int, side: str, verdict: Verdict
) -> None:
    route = LOANS if slo is BORROW else BOOKS
    logged = calls(route, [20.0] * n, errors)
    client = client_of(logged) if side in ("client", "both") else None
    server = server_of(logged) if side in ("server", "both") else None
    found = judgement(judge(slo, client, server), "threshold")
    assert found.verdict is verdict, found.reason
    assert found.values["side"] == ("client" if side == "client" else "server")


def test_an_inconclusive_error_ratio_says_how_many_requests_would_do() -> None:
    found = judgement(judge(AVAILABILITY, client_of(calls(BOOKS, [20.0] * 2000))), "threshold")
    assert found.reason == (
        "0 errors in 2000 requests cannot show the ratio below 0.100% or above it (a run "
        "without errors needs 2995 requests to pass)"
    )
    assert found.bounds == "0.000% to 0.150%"


# --- evidence: p95 latency ---------------------------------------------------------------


def _locust_p95(latencies_ms: Sequence[float]) -> float:
    """Locust's own 95th percentile: response times rounded to ~2 digits, counted down."""
    rounded = Counter(_locust_bucket(ms) for ms in latencies_ms)
    wanted, seen = int(len(latencies_ms) * 0.95), 0
    for value in sorted(rounded, reverse=True):
        seen += rounded[value]
        if len(latencies_ms) - seen <= wanted:
            return float(value)
    return 0.0


def _locust_bucket(ms: float) -> int:
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return int(round(ms, -1))
    return int(round(ms, -2))


def csv_only(logged: Sequence[LoggedRequest]) -> ClientRun:
    """The same run as only Locust's statistics CSV shows it."""
    from slo.gate import StatsRow

    by_route: dict[tuple[str, str], list[LoggedRequest]] = {}
    for r in logged:
        by_route.setdefault((r.method, r.name), []).append(r)
    rows = tuple(
        StatsRow(
            m, n, len(rs), sum(not r.success for r in rs), _locust_p95([r.latency_ms for r in rs])
        )
        for (m, n), rs in by_route.items()
    )
    failures = sum(not r.success for r in logged)
    every = [r.latency_ms for r in logged]
    total = StatsRow("", "Aggregated", len(logged), failures, _locust_p95(every))
    return ClientRun("runs/candidate/locust", stats=rows, aggregated=total, info=INFO)


# 1000 requests whose p95 (nearest rank: the 950th) is the given latency
def around(p95_ms: float, n: int = 1000) -> list[float]:
    below = spread(949, p95_ms * 0.5, p95_ms * 0.99)
    return [*below, p95_ms, *spread(n - 950, p95_ms * 1.01, p95_ms * 1.5)]


@pytest.mark.parametrize(
    ("source", "latencies", "verdict"),
    [
        ("log", around(150), Verdict.PASS),
        ("log", around(199), Verdict.INCONCLUSIVE),
        ("log", around(260), Verdict.FAIL),
        ("csv", around(170), Verdict.PASS),
        ("csv", around(198), Verdict.INCONCLUSIVE),
        ("csv", around(230), Verdict.FAIL),
        ("server", [50.0] * 980 + [400.0] * 20, Verdict.PASS),
        ("server", [50.0] * 950 + [400.0] * 50, Verdict.INCONCLUSIVE),
        ("server", [50.0] * 900 + [400.0] * 100, Verdict.FAIL),
        ("server", [199.0] * 1000, Verdict.PASS),
    ],
    ids=[
        "a p95 of 150 ms whose confidence bounds stay below 200 ms passes",
        "a p95 of 199 ms whose confidence bounds hold 200 ms is inconclusive",
        "a p95 of 260 ms whose lower bound is above 200 ms fails",
        "Locust's rounded p95 of 170 ms passes even at the top of its rounding",
        "Locust's rounded p95 of 200 ms could be 195 to 205 ms: inconclusive",
        "Locust's rounded p95 of 230 ms fails",
        "server: 2% of 1000 requests slower than the 0.2 s bucket passes",
        "server: exactly 5% slower than 0.2 s is inconclusive",
        "server: 10% slower than 0.2 s fails",
        "server: 199 ms requests are all in the 0.2 s bucket, whatever the interpolation",
    ],
)
def test_a_p95_passes_or_fails_only_outside_its_resolution(
    source: str, latencies: list[float], verdict: Verdict
) -> None:
    logged = calls(BOOKS, latencies)
    if source == "log":
        report = judge(LATENCY, client_of(logged))
    elif source == "csv":
        report = judge(LATENCY, csv_only(logged))
    else:
        report = judge(LATENCY, None, server_of(logged))
    found = judgement(report, "threshold")
    assert found.verdict is verdict, (found.measured, found.bounds, found.reason)


def test_locust_rounding_is_the_only_resolution_of_a_csv_p95_and_the_report_says_so() -> None:
    report = judge(LATENCY, csv_only(calls(BOOKS, around(198))))
    found = judgement(report, "threshold")
    assert found.measured == "Locust's rounded p95 200 ms (client)"
    assert found.bounds == "195 ms to 205 ms"
    assert (
        found.reason
        == "Locust's rounding leaves it between 195 ms to 205 ms, which holds the limit"
    )
    assert any("Locust's rounded percentiles" in note for note in report.notes)


def test_several_csv_rows_bound_the_p95_between_their_own() -> None:
    """No per-request log and a gate over two request names: the p95 of the mixture lies
    between the rows' p95s (Locust's rounding added), so only that range is known."""
    slo = gated(LATENCY, requests=(f"{BOOKS[0]} {BOOKS[1]}", f"{BOOK[0]} {BOOK[1]}"))
    logged = calls(BOOKS, [30.0] * 1000) + calls(BOOK, [120.0] * 1000) + calls(LOANS, [900.0] * 10)
    found = judgement(judge(slo, csv_only(logged)), "threshold")
    assert found.measured == "Locust's rounded p95 between 30 ms and 125 ms (client)"
    assert found.verdict is Verdict.PASS


def test_quantile_bounds_are_the_order_statistics_binomial_coverage_promises() -> None:
    """Lower bound: the l-th value with P(Bin(n, .95) >= l) >= 95%; upper: the u-th with
    P(Bin(n, .95) <= u - 1) >= 95%; both as tight as that allows."""
    for n in (20, 100, 1000, 5000):
        latencies = [float(i) for i in range(1, n + 1)]  # the i-th smallest is i ms
        summary = build_gate_report([LATENCY], client_of(calls(BOOKS, latencies)), None, None)
        client = summary.slos[0].client
        assert client is not None
        low = None if client.p95_low_s is None else round(client.p95_low_s * 1000)
        high = None if client.p95_high_s is None else round(client.p95_high_s * 1000)
        binom = stats.binom(n, 0.95)
        if low is not None:
            assert binom.sf(low - 1) >= 0.95 > binom.sf(low)
        if high is not None:
            assert binom.cdf(high - 1) >= 0.95 > binom.cdf(high - 2)
        else:
            assert binom.cdf(n - 1) < 0.95  # not even the largest value is a bound
        assert client.p95_s == pytest.approx(math.ceil(0.95 * n) / 1000)


# --- evidence: is the measurement valid at all? ------------------------------------------

PLENTY = calls(BOOKS, [20.0] * 4000)  # passes every fixed limit of the availability SLO


@pytest.mark.parametrize(
    ("client", "server", "slo", "reason"),
    [
        (
            client_of(PLENTY, replace(INFO, cpu_warning=True)),
            None,
            AVAILABILITY,
            "the load generator ran short of CPU during the run (run.json cpu_warning); "
            "the numbers alone would pass",
        ),
        (
            client_of(PLENTY, replace(INFO, target_rps=50.0)),
            None,
            AVAILABILITY,
            "the run achieved 40.0 requests/s, 20% short of its target 50/s; the numbers "
            "alone would pass",
        ),
        (
            client_of(PLENTY),
            server_of(PLENTY[:3950]),
            AVAILABILITY,
            "client and server counts differ by 1.2% (4000 against 3950); the numbers alone "
            "would pass",
        ),
        (
            client_of(PLENTY),
            server_of(PLENTY, ["a counter was reset during the run (the app restarted?): x"]),
            AVAILABILITY,
            "a counter was reset during the run (the app restarted?): x; the numbers alone "
            "would pass",
        ),
        (
            client_of(PLENTY),
            None,
            gated(AVAILABILITY, min_requests=5000),
            "the run made 4000 of the 5000 requests it needs; the numbers alone would pass",
        ),
    ],
    ids=[
        "an overloaded load generator makes a clear pass inconclusive",
        "a rate 20% short of run.json's target makes a clear pass inconclusive",
        "client and server counts 1.2% apart make a clear pass inconclusive",
        "a counter reset on the server makes a clear pass inconclusive",
        "fewer requests than min_requests make a clear pass inconclusive",
    ],
)
def test_an_invalid_measurement_is_inconclusive_and_says_what_it_would_be(
    client: ClientRun, server: ServerRun | None, slo: SLO, reason: str
) -> None:
    report = judge(slo, client, server)
    found = judgement(report, "threshold")
    assert (found.verdict, found.reason) == (Verdict.INCONCLUSIVE, reason)
    assert report.exit_code == 3


@pytest.mark.parametrize(
    ("client", "server"),
    [
        (client_of(PLENTY, replace(INFO, target_rps=42.0)), None),
        (client_of(PLENTY), server_of(PLENTY[:3985])),
    ],
    ids=[
        "a rate 4.8% short of its target is valid",
        "client and server counts 0.4% apart are valid",
    ],
)
def test_small_deviations_keep_the_measurement_valid(
    client: ClientRun, server: ServerRun | None
) -> None:
    assert judgement(judge(AVAILABILITY, client, server), "threshold").verdict is Verdict.PASS


# --- budget terms ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slo", "logged", "ratio", "burn", "per_day"),
    [
        (AVAILABILITY, calls(BOOKS, [20.0] * 5000, errors=10), 0.002, 2.0, 2.0 / 30),
        (LATENCY, calls(BOOKS, [50.0] * 980 + [250.0] * 20), 0.02, 0.4, 0.4 / 30),
        (BORROW, calls(LOANS, [20.0] * 1000), 0.0, 0.0, 0.0),
    ],
    ids=[
        "0.2% errors burn a 99.9% SLO's budget twice as fast: 6.7% of 30 days' budget a day",
        "2% of requests slower than 200 ms burn a 95% latency SLO's budget at 0.4",
        "no errors burn nothing",
    ],
)
def test_the_runs_sli_error_ratio_is_stated_as_a_burn_rate_and_a_budget_share_per_day(
    slo: SLO, logged: list[LoggedRequest], ratio: float, burn: float, per_day: float
) -> None:
    sides = ((client_of(logged), None, "client"), (None, server_of(logged), "server"))
    for client, server, side in sides:
        budget = judge(slo, client, server).slos[0].budget
        assert budget is not None
        assert (budget.error_ratio, budget.burn_rate, budget.side) == (
            pytest.approx(ratio),
            pytest.approx(burn),
            side,
        )
        assert budget.budget_per_day == pytest.approx(per_day)


def test_a_pass_that_burns_the_budget_faster_than_the_period_allows_warns_and_exits_0() -> None:
    loose = gated(AVAILABILITY, max_error_ratio=0.01)  # ten times the SLO's own budget
    report = judge(loose, client_of(calls(BOOKS, [20.0] * 20000, errors=40)))
    found = judgement(report, "threshold")
    assert found.verdict is Verdict.WARN
    assert found.reason.endswith(
        "but the run burns the SLO's error budget 2.00x as fast as the period allows"
    )
    assert (report.verdict, report.exit_code) == (Verdict.WARN, 0)


# --- relative to a baseline run ----------------------------------------------------------

BASE_LATENCIES = spread(5000, 20, 120)


def base_run(latencies: Sequence[float] = BASE_LATENCIES, errors: int = 0) -> ClientRun:
    return ClientRun("runs/baseline/locust", requests=tuple(calls(BOOKS, latencies, errors)))


@pytest.mark.parametrize(
    ("factor", "verdict"),
    [(1.02, Verdict.PASS), (1.10, Verdict.INCONCLUSIVE), (1.25, Verdict.FAIL)],
    ids=[
        "a p95 2% above the baseline's, bounds included, is within +10%",
        "a p95 10% above the baseline's is too close to tell",
        "a p95 25% above the baseline's exceeds +10% even at its lower bound",
    ],
)
def test_the_p95_may_grow_by_the_gates_share_over_the_baseline(
    factor: float, verdict: Verdict
) -> None:
    candidate = client_of(calls(BOOKS, [ms * factor for ms in BASE_LATENCIES]))
    found = judgement(judge(LATENCY, candidate, None, base_run()), "baseline")
    assert found.verdict is verdict, (found.measured, found.bounds, found.limit)


@pytest.mark.parametrize(
    ("n", "errors", "base_errors", "verdict"),
    [
        (20000, 0, 0, Verdict.PASS),
        (4000, 0, 0, Verdict.INCONCLUSIVE),
        (4000, 40, 0, Verdict.FAIL),
        (4000, 40, 160, Verdict.PASS),
    ],
    ids=[
        "no errors in 20000 requests stay within the baseline's 0% + 0.05 points",
        "no errors in 4000 requests cannot show they stay within 0.05 points",
        "1% errors against a baseline without errors fail +0.05 points",
        "1% errors against a baseline with 4% errors pass",
    ],
)
def test_the_error_ratio_may_grow_by_the_gates_points_over_the_baseline(
    n: int, errors: int, base_errors: int, verdict: Verdict
) -> None:
    candidate = client_of(calls(BOOKS, [20.0] * n, errors))
    baseline = base_run([20.0] * 4000, base_errors)
    loose = gated(AVAILABILITY, max_error_ratio=0.5)
    found = judgement(judge(loose, candidate, None, baseline), "baseline")
    assert found.verdict is verdict, (found.measured, found.bounds, found.limit)


@pytest.mark.parametrize(
    ("shift_ms", "verdict", "reason"),
    [
        (0.0, Verdict.PASS, "not significantly slower than the baseline (p = 0.5)"),
        (
            2.5,
            Verdict.PASS,
            "significantly slower than the baseline but tinily: the median moved +3.6%, under 5%",
        ),
        (
            11.0,
            Verdict.WARN,
            "significantly slower than the baseline, by a small effect (delta 0.208)",
        ),
        (30.0, Verdict.FAIL, "significantly slower than the baseline, by a large effect"),
    ],
    ids=[
        "the same latencies are not slower",
        "2.5 ms slower on a 70 ms median is significant but tiny: pass",
        "11 ms slower is a small effect: warn",
        "30 ms slower is a large effect: fail",
    ],
)
def test_mann_whitney_u_fails_a_slower_candidate_only_for_a_sizeable_effect(
    shift_ms: float, verdict: Verdict, reason: str
) -> None:
    candidate = client_of(calls(BOOKS, [ms + shift_ms for ms in BASE_LATENCIES]))
    found = judgement(judge(LATENCY, candidate, None, base_run()), "statistical")
    assert (found.verdict, found.reason) == (verdict, reason)
    assert found.limit == "Cliff's delta < 0.33 or median +5% (alpha 0.01)"


@pytest.mark.parametrize(
    ("shift_ms", "verdict"),
    [(2.0, Verdict.PASS), (30.0, Verdict.FAIL)],
    ids=[
        "2 ms on a tight 100 ms (a large delta, a 2% shift) passes",
        "30 ms on a tight 100 ms fails",
    ],
)
def test_a_tight_distribution_fails_only_for_a_shift_a_user_would_notice(
    shift_ms: float, verdict: Verdict
) -> None:
    """An injected or network-bound latency: a spread of 2 ms, so 2 ms is a huge delta."""
    tight = spread(2000, 100, 102)
    candidate = client_of(calls(BOOKS, [ms + shift_ms for ms in tight]))
    found = judgement(judge(LATENCY, candidate, None, base_run(tight)), "statistical")
    assert found.verdict is verdict, found.reason
    assert found.values["cliffs_delta"] > 0.5


def test_a_faster_candidate_is_never_significantly_slower() -> None:
    candidate = client_of(calls(BOOKS, [ms - 10 for ms in BASE_LATENCIES]))
    found = judgement(judge(LATENCY, candidate, None, base_run()), "statistical")
    assert found.verdict is Verdict.PASS
    assert found.values["cliffs_delta"] == pytest.approx(-0.19, abs=0.01)


def test_an_overloaded_baseline_makes_relative_judgements_inconclusive_not_the_fixed_ones() -> None:
    overloaded = replace(base_run(), info=replace(INFO, cpu_warning=True))
    candidate = client_of(calls(BOOKS, BASE_LATENCIES))
    report = judge(LATENCY, candidate, None, overloaded)
    verdicts = {j.kind: j.verdict for o in report.objectives for j in o.judgements}
    assert verdicts == {
        "threshold": Verdict.PASS,
        "baseline": Verdict.INCONCLUSIVE,
        "statistical": Verdict.INCONCLUSIVE,
    }
    assert judgement(report, "statistical").reason.startswith(
        "the load generator ran short of CPU during the baseline run (run.json cpu_warning)"
    )


def test_a_baseline_without_per_request_log_cannot_be_tested_and_says_so() -> None:
    candidate = client_of(calls(BOOKS, BASE_LATENCIES))
    baseline = csv_only(calls(BOOKS, BASE_LATENCIES))
    found = judgement(judge(LATENCY, candidate, None, baseline), "statistical")
    assert (found.verdict, found.reason) == (
        Verdict.NOT_CHECKED,
        "the baseline has no per-request log",
    )


# --- the total ---------------------------------------------------------------------------


def _objective(verdict: Verdict) -> ObjectiveResult:
    return ObjectiveResult("s", "error ratio", (Judgement("threshold", verdict, "", "", "", ""),))


@pytest.mark.parametrize(
    ("verdicts", "total", "exit_code"),
    [
        ((Verdict.PASS, Verdict.PASS), Verdict.PASS, 0),
        ((Verdict.PASS, Verdict.WARN), Verdict.WARN, 0),
        ((Verdict.WARN, Verdict.INCONCLUSIVE), Verdict.INCONCLUSIVE, 3),
        ((Verdict.INCONCLUSIVE, Verdict.FAIL), Verdict.FAIL, 1),
        ((Verdict.NOT_CHECKED, Verdict.PASS), Verdict.PASS, 0),
    ],
    ids=[
        "every objective passing passes: exit 0",
        "a warning alone still passes: exit 0",
        "an inconclusive objective outweighs a warning: exit 3",
        "a failed objective outweighs an inconclusive one: exit 1",
        "what was not checked counts for nothing",
    ],
)
def test_the_total_is_the_worst_objective(
    verdicts: tuple[Verdict, ...], total: Verdict, exit_code: int
) -> None:
    slo = SloResult(
        "s", "s", 99.9, 30 * 86400, None, None, None, None, tuple(_objective(v) for v in verdicts)
    )
    report = GateReport((slo,), None, None, "run/locust", None, None, None, GateSettings())
    assert (report.verdict, report.exit_code) == (total, exit_code)


# --- which requests an SLO counts ---------------------------------------------------------


def test_each_slo_counts_the_requests_its_own_sli_selects_on_both_sides() -> None:
    """Probes and scrapes are not the API's requests; borrowing is POST /api/loans only."""
    logged = (
        calls(BOOKS, [20.0] * 300)
        + calls(LOANS, [30.0] * 200)
        + calls(("GET", "/api/loans"), [30.0] * 100)
        + calls(("GET", "/api/health"), [1.0] * 50)
        + calls(("GET", "/metrics"), [1.0] * 40)
    )
    report = build_gate_report([AVAILABILITY, BORROW], client_of(logged), server_of(logged), None)
    counts = {
        s.id: (s.client.requests, s.server.requests) for s in report.slos if s.client and s.server
    }
    assert counts == {
        "elibrary-requests-availability": (600, 600),
        "elibrary-borrow-availability": (200, 200),
    }


def test_an_error_is_a_5xx_or_no_answer_at_all_client_side() -> None:
    logged = [
        *calls(BOOKS, [20.0] * 1000),
        LoggedRequest("GET", "/api/books", 10.0, 404, False),  # the locustfile's failure: no 5xx
        LoggedRequest("GET", "/api/books", 10.0, 503, False),
        LoggedRequest("GET", "/api/books", 5000.0, 0, False),  # connection error: no answer
    ]
    client = judge(AVAILABILITY, client_of(logged)).slos[0].client
    assert client is not None and (client.requests, client.errors) == (1003, 2)


def test_an_slo_whose_sli_names_no_app_selector_is_judged_on_the_client_side() -> None:
    raw = replace(
        BORROW, id="elibrary-raw", sli=RawSLI("1 - avg_over_time(probe_success[{{.window}}])")
    )
    logged = calls(LOANS, [20.0] * 700)
    report = build_gate_report([raw], client_of(logged), server_of(logged), None)
    (result,) = report.slos
    assert result.server is None and result.client is not None
    assert result.notes == (
        "its SLI names no selector of the app's metrics: judged on the client side",
    )
    assert judgement(report, "threshold").values["side"] == "client"


def test_prometheus_is_read_with_one_selector_narrowed_by_the_job_every_slo_shares() -> None:
    assert server_selector(list(SPEC.values())) == (
        '{__name__=~"up|http_requests_total|http_request_duration_seconds_bucket",'
        'job="elibrary-app"}'
    )


# --- reports -----------------------------------------------------------------------------

SMALL = build_gate_report(
    [BORROW],
    client_of(calls(LOANS, spread(700, 10, 80))),
    server_of(calls(LOANS, spread(700, 8, 70))),
    None,
)

TABLE = """\
SLO gate: PASS (exit 0)
Run: 2026-11-18 11:06:40Z to 2026-11-18 11:08:20Z (1m40s), profile load, 50 users
Locust: runs/candidate/locust; Prometheus: http://prometheus:9090; baseline: none

Judgements
SLO                           Objective    Judgement  Verdict  Measured                   Bounds (95%)      Limit
elibrary-borrow-availability  error ratio  threshold  pass     0.000% (0 of 700, server)  0.000% to 0.427%  <= 0.500%

Client (Locust) and server (Prometheus)
SLO                           Requests client  Requests server  Count diff  p95 client      p95 server       p95 client - server  Error ratio client  Error ratio server
elibrary-borrow-availability  700              700              +0.00%      76 ms [75, 77]  92 ms [50, 100]  -15.8 ms             0.000%              0.000%

Error budget at the run's rate
SLO                           Objective  SLI error ratio  Burn rate  Budget per day  Side
elibrary-borrow-availability  99.5%      0.000%           0.00       0.00% of 30d    server

Why
- elibrary-borrow-availability error ratio, threshold: pass: even its upper bound 0.427% is below the limit.

Notes
- Warnings alone pass (exit 0); an inconclusive objective exits 3, a failed one 1.
- The server p95 is interpolated in its histogram bucket, as histogram_quantile does; [brackets] show the bucket (client side: the p95's confidence bounds).
- No baseline run: relative and statistical judgements not made.
"""


def test_the_terminal_table_of_a_small_report() -> None:
    assert render_table(SMALL) == TABLE


MARKDOWN = """\
## SLO gate: PASS (exit 0)

Run: 2026-11-18 11:06:40Z to 2026-11-18 11:08:20Z (1m40s), profile load, 50 users  
Locust: runs/candidate/locust; Prometheus: http://prometheus:9090; baseline: none

### Judgements

| SLO | Objective | Judgement | Verdict | Measured | Bounds (95%) | Limit |
|---|---|---|---|---|---|---|
| elibrary-borrow-availability | error ratio | threshold | pass | 0.000% (0 of 700, server) | 0.000% to 0.427% | <= 0.500% |

### Client (Locust) and server (Prometheus)

| SLO | Requests client | Requests server | Count diff | p95 client | p95 server | p95 client - server | Error ratio client | Error ratio server |
|---|---|---|---|---|---|---|---|---|
| elibrary-borrow-availability | 700 | 700 | +0.00% | 76 ms [75, 77] | 92 ms [50, 100] | -15.8 ms | 0.000% | 0.000% |

### Error budget at the run's rate

| SLO | Objective | SLI error ratio | Burn rate | Budget per day | Side |
|---|---|---|---|---|---|
| elibrary-borrow-availability | 99.5% | 0.000% | 0.00 | 0.00% of 30d | server |

### Why

- elibrary-borrow-availability error ratio, threshold: pass: even its upper bound 0.427% is below the limit.

### Notes

- Warnings alone pass (exit 0); an inconclusive objective exits 3, a failed one 1.
- The server p95 is interpolated in its histogram bucket, as histogram_quantile does; [brackets] show the bucket (client side: the p95's confidence bounds).
- No baseline run: relative and statistical judgements not made.
"""  # noqa: W291 (two trailing spaces: a Markdown line break)


def test_the_markdown_of_a_small_report() -> None:
    assert render_markdown(SMALL) == MARKDOWN


def test_json_keeps_raw_numbers_and_null_for_no_value() -> None:
    data = json.loads(render_json(SMALL))
    assert (data["verdict"], data["exit_code"]) == ("pass", 0)
    assert data["start"] == "2026-11-18T11:06:40Z" and data["end"] == "2026-11-18T11:08:20Z"
    assert data["sources"] == {
        "locust": "runs/candidate/locust",
        "prometheus": "http://prometheus:9090",
        "baseline": None,
    }
    (slo,) = data["slos"]
    assert slo["client"]["requests"] == slo["server"]["requests"] == 700
    assert slo["baseline"] is None and slo["count_difference"] == 0.0
    assert slo["budget"] == {
        "error_ratio": 0.0,
        "burn_rate": 0.0,
        "budget_per_day": 0.0,
        "side": "server",
    }
    (objective,) = slo["objectives"]
    (threshold,) = objective["judgements"]
    assert threshold["values"]["upper_bound"] == pytest.approx(1 - 0.05 ** (1 / 700))
    assert data["settings"]["confidence"] == 0.95


def test_junit_has_one_case_per_objective_failed_inconclusive_or_skipped() -> None:
    failing = client_of(calls(LOANS, [20.0] * 700, errors=50) + calls(BOOKS, [20.0] * 500))
    loose_latency = gated(LATENCY, max_p95_seconds=None)  # only a baseline limit, no baseline
    report = build_gate_report([AVAILABILITY, BORROW, loose_latency], failing, None, None)
    xml = render_junit(report)
    assert xml.startswith('<?xml version="1.0" encoding="utf-8"?>\n<testsuites')
    parsed = JUnitXml.fromstring(xml)
    (suite,) = list(parsed)
    cases = {case.name: case for case in suite}
    assert sorted(cases) == [
        "elibrary-borrow-availability: error ratio",
        "elibrary-requests-availability: error ratio",
        "elibrary-requests-latency: p95 latency",
    ]
    (borrow,) = cases["elibrary-borrow-availability: error ratio"].result
    assert isinstance(borrow, Failure) and borrow.type == "fail"
    assert borrow.message.startswith("threshold: even its lower bound 5.607% is above the limit")
    (availability,) = cases["elibrary-requests-availability: error ratio"].result
    assert isinstance(availability, Failure)  # 50 errors in 1200: fails 0.1% too
    (latency,) = cases["elibrary-requests-latency: p95 latency"].result
    assert isinstance(latency, Skipped) and latency.message == "baseline: no --baseline run given"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (3, 2, 0, 1)


def test_junit_reports_an_inconclusive_objective_as_an_error_with_its_reason() -> None:
    report = judge(AVAILABILITY, client_of(calls(BOOKS, [20.0] * 2000)))
    (case,) = list(next(iter(JUnitXml.fromstring(render_junit(report)))))
    (result,) = case.result
    assert isinstance(result, Error) and result.type == "inconclusive"
    assert result.message.startswith("threshold: 0 errors in 2000 requests cannot show")
    assert "threshold: inconclusive: 0.000% (0 of 2000, client)" in case.system_out


# --- files: the load-test runner's run directory -----------------------------------------

STATS_HEADER = [
    *("Type", "Name", "Request Count", "Failure Count", "Median Response Time"),
    *("Average Response Time", "Min Response Time", "Max Response Time"),
    *("Average Content Size", "Requests/s", "Failures/s"),
    *("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"),
]
PERCENTILES = (0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0)


def _locust_percentile(latencies_ms: Sequence[float], p: float) -> int:
    rounded = Counter(_locust_bucket(ms) for ms in latencies_ms)
    wanted, seen = int(len(latencies_ms) * p), 0
    for value in sorted(rounded, reverse=True):
        seen += rounded[value]
        if len(latencies_ms) - seen <= wanted:
            return value
    return 0


def _stats_line(method: str, name: str, rs: Sequence[LoggedRequest], seconds: float) -> list[str]:
    times = [r.latency_ms for r in rs]
    failures = sum(not r.success for r in rs)
    if not rs:
        return [method, name, "0", "0", "0", "0.0", "0", "0", "0", "0.0", "0.0", *["N/A"] * 11]
    return [
        method,
        name,
        str(len(rs)),
        str(failures),
        str(_locust_percentile(times, 0.5)),
        f"{sum(times) / len(times):.3f}",
        f"{min(times):.3f}",
        f"{max(times):.3f}",
        "100.0",
        f"{len(rs) / seconds:.3f}",
        f"{failures / seconds:.3f}",
        *(str(_locust_percentile(times, p)) for p in PERCENTILES),
    ]


def write_run(
    folder: Path,
    logged: Sequence[LoggedRequest],
    start: float = START,
    end: float = START + 100,
    log: bool = True,
    stats_csv: bool = True,
    **info: Any,
) -> Path:
    """A run directory as loadtests/run.py writes it; the ``--locust-stats`` prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    if stats_csv:
        by_route: dict[tuple[str, str], list[LoggedRequest]] = {}
        for r in logged:
            by_route.setdefault((r.method, r.name), []).append(r)
        with (folder / "locust_stats.csv").open("w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(STATS_HEADER)
            for (method, name), rs in sorted(by_route.items()):
                writer.writerow(_stats_line(method, name, rs, end - start))
            writer.writerow(_stats_line("", "Aggregated", list(logged), end - start))
        (folder / "locust_stats_history.csv").write_text("Timestamp,User Count,Type,Name\n")
        (folder / "locust_failures.csv").write_text("Method,Name,Error,Occurrences\n")
    if log:
        with (folder / "locust_requests.csv").open("w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(REQUESTS_HEADER)
            step = (end - start) / max(1, len(logged))
            for i, r in enumerate(logged):
                writer.writerow(
                    [
                        f"{start + i * step:.6f}",
                        r.method,
                        r.name,
                        f"{r.latency_ms:.3f}",
                        120,
                        r.status,
                        r.success,
                    ]
                )
    run = {
        "profile": "smoke",
        "host": "http://127.0.0.1:8000",
        "users": 5,
        "spawn_rate": 5,
        "run_time_s": round(end - start),
        "target_rps": None,
        "start": start,
        "end": end,
        "processes": 1,
        "cpu_warning": False,
        "locust_version": "2.47.0",
        "locust_exit_code": 0,
        "requests": len(logged),
    } | info
    (folder / "run.json").write_text(json.dumps(run))
    return folder / "locust"


def test_a_run_directory_reads_back_as_written(tmp_path: Path) -> None:
    logged = calls(LOANS, spread(300, 10, 40), errors=3) + calls(BOOKS, [20.0] * 100)
    run = load_client_run(write_run(tmp_path / "run", logged, target_rps=5.0))
    assert run.requests == tuple(logged)
    assert run.aggregated is not None and run.aggregated.requests == 400
    assert run.aggregated.failures == 3
    assert [(r.method, r.name, r.requests) for r in run.stats or ()] == [
        ("GET", "/api/books", 100),
        ("POST", "/api/loans", 300),
    ]
    assert run.info == replace(
        INFO,
        profile="smoke",
        users=5,
        host="http://127.0.0.1:8000",
        target_rps=5.0,
        locust_version="2.47.0",
        locust_exit_code=0,
    )


def test_judge_run_from_files_alone_judges_with_what_is_there(tmp_path: Path) -> None:
    prefix = write_run(tmp_path / "run", calls(LOANS, [20.0] * 700), log=False)
    report = judge_run([BORROW], prefix, None, None, None, None)
    assert report.exit_code == 0
    assert report.slos[0].client is not None
    assert report.slos[0].client.source == "Locust statistics"
    assert any("No per-request log" in note for note in report.notes)


def test_a_baseline_is_a_run_directory(tmp_path: Path) -> None:
    prefix = write_run(tmp_path / "run", calls(BOOKS, [ms * 1.5 for ms in BASE_LATENCIES]))
    write_run(tmp_path / "base", calls(BOOKS, BASE_LATENCIES))
    report = judge_run([LATENCY], prefix, None, None, None, tmp_path / "base")
    assert report.baseline == str(tmp_path / "base" / "locust")
    assert judgement(report, "baseline").verdict is Verdict.FAIL
    assert judgement(report, "statistical").verdict is Verdict.FAIL
    assert report.exit_code == 1


def _stats_file(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "locust_stats.csv").write_text(text)
    return folder / "locust"


def _log_file(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "locust_requests.csv").write_text(text)
    return folder / "locust"


GOOD_ROW = "POST,/api/loans,700,0,20,20.0,10,30,100,7.0,0.0,20,20,20,20,20,20,20,20,20,20,20\n"
LOG_HEADER = ",".join(REQUESTS_HEADER) + "\n"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda d: d / "nothing" / "locust",
            "{d}/nothing/locust: no Locust statistics: neither {d}/nothing/locust_stats.csv nor "
            "{d}/nothing/locust_requests.csv exists",
        ),
        (
            lambda d: _stats_file(d / "r", ""),
            "{d}/r/locust_stats.csv: is empty: no header line",
        ),
        (
            lambda d: _stats_file(d / "r", "Type,Name,Requests\nGET,/api/books,3\n"),
            "{d}/r/locust_stats.csv: header: missing column(s) Request Count, Failure Count, 95%: "
            "not Locust's --csv PREFIX_stats.csv",
        ),
        (
            lambda d: _stats_file(
                d / "r", ",".join(STATS_HEADER) + "\n" + GOOD_ROW.replace("700", "7e2")
            ),
            "{d}/r/locust_stats.csv: line 2: Request Count must be a whole number >= 0, not '7e2'",
        ),
        (
            lambda d: _stats_file(d / "r", ",".join(STATS_HEADER) + "\n" + "POST,/api/loans,700\n"),
            "{d}/r/locust_stats.csv: line 2: has 3 fields, the header 22",
        ),
        (
            lambda d: _log_file(d / "r", "start_time,method,name\n"),
            "{d}/r/locust_requests.csv: header: expected "
            + ",".join(REQUESTS_HEADER)
            + ", found start_time,method,name",
        ),
        (
            lambda d: _log_file(d / "r", LOG_HEADER + "1.0,GET,/api/books,12.5,10,200,yes\n"),
            "{d}/r/locust_requests.csv: line 2: success must be True or False, not 'yes'",
        ),
        (
            lambda d: _log_file(d / "r", LOG_HEADER + "1.0,GET,/api/books,-3,10,200,True\n"),
            "{d}/r/locust_requests.csv: line 2: response_time_ms must be milliseconds >= 0, "
            "not '-3'",
        ),
        (
            lambda d: _log_file(d / "r", LOG_HEADER + "1.0,GET,/api/books,3,10,OK,True\n"),
            "{d}/r/locust_requests.csv: line 2: status must be a whole number >= 0, not 'OK'",
        ),
        (
            lambda d: _log_file(d / "r", LOG_HEADER),
            "{d}/r/locust: holds no requests: the load test made none",
        ),
    ],
    ids=[
        "a prefix with neither CSV file",
        "an empty stats file",
        "a stats file that is not Locust's",
        "a request count that is not a whole number",
        "a stats row cut short",
        "a per-request log with another header",
        "a success flag that is neither True nor False",
        "a negative response time",
        "a status that is not a number",
        "a run without a single request",
    ],
)
def test_bad_locust_files_are_named_with_the_line_and_the_problem(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    prefix = make(tmp_path)
    with pytest.raises(SpecError) as caught:
        judge_run([BORROW], prefix, None, None, None, None)
    assert str(caught.value) == message.format(d=tmp_path)


@pytest.mark.parametrize(
    ("run_json", "message"),
    [
        (
            "{",
            "run.json: not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        ("[]", "run.json: must be a JSON object"),
        (
            '{"start": "yesterday"}',
            "run.json: start: must be Unix seconds (a number), not 'yesterday'",
        ),
        ('{"start": 10, "end": 5}', "run.json: end: must be after start"),
        ('{"cpu_warning": "no"}', "run.json: cpu_warning: must be true or false, not 'no'"),
        ('{"target_rps": "fast"}', "run.json: target_rps: must be a number, not 'fast'"),
    ],
    ids=[
        "run.json that is not JSON",
        "run.json that is not an object",
        "a start that is not Unix seconds",
        "an end before the start",
        "a cpu_warning that is not a boolean",
        "a target rate that is not a number",
    ],
)
def test_a_bad_run_json_is_named_with_its_field(
    tmp_path: Path, run_json: str, message: str
) -> None:
    prefix = write_run(tmp_path, calls(LOANS, [20.0] * 10))
    (tmp_path / "run.json").write_text(run_json)
    with pytest.raises(SpecError) as caught:
        judge_run([BORROW], prefix, None, None, None, None)
    assert str(caught.value) == f"{tmp_path}/{message}"


NOW = datetime(2026, 11, 18, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"locust_prefix": None},
            "--locust-stats: nothing to judge: give --locust-stats, --prometheus or both",
        ),
        (
            {"slos": [replace(BORROW, gate=None)]},
            "--spec: no SLO has a gate: block, so there is nothing to judge",
        ),
        ({"start": NOW}, "--start: the window of --start and --end needs --prometheus"),
        (
            {"prometheus_url": "http://127.0.0.1:1", "locust_prefix": None, "end": NOW},
            "--start: required with --prometheus when no run.json gives the window",
        ),
        (
            {"prometheus_url": "http://127.0.0.1:1", "start": NOW, "end": NOW},
            "--start: 2026-11-18T07:00:00Z is not before the end 2026-11-18T07:00:00Z",
        ),
        (
            {"baseline_dir": Path("/nonexistent/base")},
            "/nonexistent/base: no Locust statistics: neither /nonexistent/base_stats.csv nor "
            "/nonexistent/base_requests.csv exists",
        ),
        (
            {"slos": [gated(LATENCY, max_p95_seconds=None)]},
            "--baseline: nothing to judge: the gate blocks only set limits against a baseline run",
        ),
    ],
    ids=[
        "neither Locust statistics nor Prometheus",
        "a spec without a single gate: block",
        "a window without Prometheus to read it from",
        "Prometheus without a window and without run.json",
        "a window that ends when it starts",
        "a baseline that does not exist",
        "only baseline limits and no baseline",
    ],
)
def test_unusable_flags_are_spec_errors_naming_the_flag(
    tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    prefix = write_run(tmp_path / "run", calls(LOANS, [20.0] * 700))
    given: dict[str, Any] = {
        "slos": [BORROW],
        "locust_prefix": prefix,
        "prometheus_url": None,
        "start": None,
        "end": None,
        "baseline_dir": None,
    } | arguments
    with pytest.raises(SpecError) as caught:
        judge_run(**given)
    assert str(caught.value) == message


# --- Prometheus answers, but not as hoped (a stand-in server) ----------------------------


@dataclass
class FakePrometheus:
    """Answers /api/v1/query: the instant query with ``before``, the range one with ``after``."""

    before: list[dict[str, Any]]
    after: list[dict[str, Any]]
    queries: list[str]


@pytest.fixture
def fake_prometheus() -> Iterator[Callable[[FakePrometheus], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(fake: FakePrometheus) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)["query"][0]
                fake.queries.append(query)
                matrix = query.endswith("s]")
                result = fake.after if matrix else fake.before
                kind = "matrix" if matrix else "vector"
                body = json.dumps(
                    {"status": "success", "data": {"resultType": kind, "result": result}}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _series(name: str, **labels: str) -> dict[str, str]:
    return {"__name__": name, "job": "elibrary-app", "instance": "app:8000", **labels}


LOANS_201 = _series("http_requests_total", method="POST", route="/api/loans", status="201")
UP = _series("up")


def test_counters_are_read_at_the_last_scrape_before_and_the_first_after_the_run(
    fake_prometheus: Callable[[FakePrometheus], str],
) -> None:
    end = START + 100
    fake = FakePrometheus(
        before=[
            {"metric": UP, "value": [START, "1"]},
            {"metric": LOANS_201, "value": [START, "40"]},
        ],
        after=[
            {"metric": UP, "values": [[end - 0.5, "1"], [end + 0.5, "1"], [end + 1.5, "1"]]},
            {
                "metric": LOANS_201,
                "values": [[end - 0.5, "730"], [end + 0.5, "740"], [end + 1.5, "760"]],
            },
        ],
        queries=[],
    )
    url = fake_prometheus(fake)
    run = fetch_server_run(url, [BORROW], _at(START), _at(end))
    assert [(s.name, s.delta) for s in run.series] == [("http_requests_total", 700.0)]
    assert run.problems == ()
    selector = server_selector([BORROW])
    assert fake.queries == [selector, f"{selector}[120s]"]  # two queries, no rate()


def test_a_target_not_scraped_since_the_end_and_a_reset_counter_are_problems(
    fake_prometheus: Callable[[FakePrometheus], str],
) -> None:
    end = START + 100
    other = _series("up", instance="app-2:8000")
    reset = {**LOANS_201, "instance": "app:8000"}
    fake = FakePrometheus(
        before=[
            {"metric": UP, "value": [START, "1"]},
            {"metric": other, "value": [START, "1"]},
            {"metric": reset, "value": [START, "900"]},
        ],
        after=[
            {"metric": UP, "values": [[end + 0.5, "1"]]},
            {"metric": other, "values": [[end + 0.5, "0"]]},
            {"metric": reset, "values": [[end + 0.5, "12"]]},
        ],
        queries=[],
    )
    run = fetch_server_run(fake_prometheus(fake), [BORROW], _at(START), _at(end), settle_s=0.5)
    assert run.problems == (
        "Prometheus has not scraped app-2:8000 (job elibrary-app) since the run ended",
        "a counter was reset during the run (the app restarted?): http_requests_total"
        '{instance="app:8000",job="elibrary-app",method="POST",route="/api/loans",status="201"}',
    )


def test_prometheus_scraping_nothing_there_is_no_data(
    fake_prometheus: Callable[[FakePrometheus], str],
) -> None:
    url = fake_prometheus(FakePrometheus([], [], []))
    with pytest.raises(NoDataError) as caught:  # a SpecError: exit 2
        fetch_server_run(url, [BORROW], _at(START), _at(START + 100))
    assert str(caught.value) == (
        f"{url}: no target matches {server_selector([BORROW])} around the run "
        "(2026-11-18T11:06:40Z to 2026-11-18T11:08:20Z): is Prometheus scraping the app?"
    )


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --- the real thing: Prometheus 2.42 scraping the app ------------------------------------


@dataclass(frozen=True)
class Live:
    prometheus: str
    prefix: Path
    logged: tuple[LoggedRequest, ...]
    stop_prometheus: Callable[[], None]


#: what the loopback client sends: enough API requests for the availability SLO to pass
PLAN = (
    [("GET", "/api/books", "/api/books")] * 2400
    + [("GET", "/api/books/<int:book_id>", "/api/books/999999")] * 300
    + [("POST", "/api/loans", "/api/loans")] * 700
    + [("GET", "/api/health", "/api/health")] * 100  # not an API request the SLOs count
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app under gunicorn, Prometheus scraping it every second, and a run directory of
    exactly the requests a requests.Session loop made between start and end."""
    prometheus_bin = require_tool("prometheus", "prometheus")
    tmp = tmp_path_factory.mktemp("slo-gate")
    with stack(tmp) as running:
        app_port = free_port()
        app = running.start(
            "app",
            [
                *(SRE, "app", "serve", "--port", str(app_port), "--workers", "2"),
                *("--metrics-dir", str(tmp / "app-metrics")),
            ],
            "/api/ready",
            app_port,
            env={
                **os.environ,
                "DATABASE_URL": f"sqlite:///{tmp / 'library.sqlite3'}",
                "SRE_ACCESS_LOG": "false",
            },
        )
        prom_port = free_port()
        config = running.prometheus_config(app_port, None, free_port(), [])
        prometheus = running.start(
            "prometheus",
            [
                prometheus_bin,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            "/-/ready",
            prom_port,
        )
        _wait_for_a_scrape(prometheus)
        session = requests.Session()
        logged = []
        start = time.time()
        for method, name, path in PLAN:
            began = time.perf_counter()
            answer = session.request(method, app + path, json={} if method == "POST" else None)
            took_ms = (time.perf_counter() - began) * 1000
            logged.append(
                LoggedRequest(
                    method, name, round(took_ms, 3), answer.status_code, answer.status_code < 400
                )
            )
        end = time.time()
        prefix = write_run(tmp / "run", logged, start=start, end=end)
        yield Live(prometheus, prefix, tuple(logged), lambda: running.stop("prometheus"))


def _wait_for_a_scrape(prometheus: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = requests.get(f"{prometheus}/api/v1/query", params={"query": "up"}, timeout=5)
        result = answer.json()["data"]["result"]
        if result and result[0]["value"][1] == "1":
            time.sleep(1.2)  # one more scrape: the counters before the run are in
            return
        time.sleep(0.2)
    raise AssertionError("Prometheus never scraped the app")


@pytest.mark.integration
def test_server_counts_equal_the_clients_exactly_and_the_run_passes(live: Live) -> None:
    slos = list(SPEC.values())
    began = time.monotonic()
    report = judge_run(slos, live.prefix, live.prometheus, None, None, None)
    took = time.monotonic() - began
    print(render_table(report))
    print(render_markdown(report))
    print(render_junit(report))
    print(f"the gate took {took:.2f}s")
    assert took < 5
    counts = {
        s.id: (s.client.requests, s.server.requests) for s in report.slos if s.client and s.server
    }
    api = len([r for r in live.logged if r.name != "/api/health"])
    assert counts == {
        "elibrary-requests-availability": (api, api),
        "elibrary-requests-latency": (api, api),
        "elibrary-borrow-availability": (700, 700),
    }
    assert all(s.server and s.server.errors == 0 for s in report.slos)
    verdicts = {(o.slo_id, j.kind): j.verdict for o in report.objectives for j in o.judgements}
    assert set(verdicts.values()) == {Verdict.PASS}, render_table(report)
    assert report.exit_code == 0
    assert report.prometheus == live.prometheus and report.start is not None


@pytest.mark.integration
def test_prometheus_stopped_is_unusable_input(live: Live) -> None:
    live.stop_prometheus()
    with pytest.raises(PrometheusError) as caught:  # a SpecError: exit 2
        judge_run(list(SPEC.values()), live.prefix, live.prometheus, None, None, None)
    assert (
        str(caught.value) == f"{live.prometheus}: Prometheus does not answer (connection refused)"
    )


def test_a_short_run_still_fails_when_even_its_lower_bound_is_over_the_limit() -> None:
    """Too few requests cannot show a pass; 100 errors in 500 requests show a failure."""
    report = judge(AVAILABILITY, client_of(calls(BOOKS, [20.0] * 500, errors=100)), None)
    found = judgement(report, "threshold")
    assert found.verdict is Verdict.FAIL
    assert found.reason.startswith("even its lower bound")
    assert report.exit_code == 1
