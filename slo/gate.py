"""The deploy gate: one load-test run judged against the spec's ``gate:`` blocks (``sre slo gate``).

Two sources describe the run (DESIGN.md "The gate"):

- the client side, what Locust measured: ``PREFIX_stats.csv`` (Locust's statistics, with
  percentiles rounded to about two significant digits), ``PREFIX_requests.csv`` (one line
  per request, exact latencies) and ``run.json`` beside them (the run's window, target rate
  and whether the load generator ran short of CPU); any of them may be missing;
- the server side, what Prometheus scraped from the app over exactly the run's window. The
  counters are read, not rated: ``http_requests_total`` and the buckets of
  ``http_request_duration_seconds`` (DESIGN.md "Metric contract") at the last scrape before
  the start and at the first scrape after the end, subtracted series by series (a series
  that did not exist at the start counts 0). ``rate()`` and ``increase()`` extrapolate to
  the window's edges, so they are never used: the gate's server counts are exact. Which
  series count is the SLO's own business: the label matchers of its SLI's queries (and the
  error query's extra matchers, ``status=~"5.."``, for what an error is; its ``le`` bucket
  for a latency SLI's threshold).

Each objective (an error ratio or a p95 latency of one SLO) gets up to three judgements:

1. ``threshold``: the run against the gate's fixed limits (``max_error_ratio``,
   ``max_p95_seconds``) and ``min_requests``;
2. ``baseline``: the run against a baseline run (client side against client side): the
   p95 may grow by ``baseline.max_p95_increase``, the error ratio by
   ``baseline.max_error_ratio_increase``;
3. ``statistical``: Mann-Whitney U on the per-request latencies, one-sided ("the candidate
   is slower"), with Cliff's delta as the effect size: significant but negligible passes,
   significant and small warns, significant and at least medium fails.

A verdict is pass or fail only when the run can show it, otherwise inconclusive: an error
ratio is judged by its one-sided 95 % Clopper-Pearson bounds, a client p95 by its
order-statistic confidence bounds (Locust's rounding when only the CSV is there), a server
p95 by the bounds on the share of requests slower than the threshold's histogram bucket;
and a run with too few requests, an overloaded load generator, a rate more than 10 % short
of its target, or client and server counts more than 0.5 % apart proves nothing.

The shape is the project's (STYLE.md): :func:`load_client_run` and
:func:`fetch_server_run` are the only I/O and return plain data; :func:`build_gate_report`
judges (pure); ``render_*`` format the :class:`GateReport`. :func:`judge_run` does all of it
for the CLI.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import promql_parser
from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite
from scipy import stats

from slo.errors import SpecError
from slo.model import SLO, EventsSLI, GateBaseline, GateSpec
from slo.spec import render_query
from sre.durations import format_duration
from sre.prometheus import NoDataError, PrometheusClient

__all__ = [
    "REQUESTS_HEADER",
    "STATS_COLUMNS",
    "Budget",
    "ClientRun",
    "GateReport",
    "GateSettings",
    "Judgement",
    "LoggedRequest",
    "ObjectiveResult",
    "RunInfo",
    "ServerRun",
    "ServerSeries",
    "SideSummary",
    "SloResult",
    "StatsRow",
    "Verdict",
    "build_gate_report",
    "fetch_server_run",
    "judge_run",
    "load_client_run",
    "render_json",
    "render_junit",
    "render_markdown",
    "render_table",
    "server_selector",
]

#: the per-request log's header, exactly (the load-test runner's contract)
REQUESTS_HEADER = (
    "start_time",
    "request_type",
    "name",
    "response_time_ms",
    "response_length",
    "status",
    "success",
)
#: the columns of Locust's ``PREFIX_stats.csv`` the gate reads
STATS_COLUMNS = ("Type", "Name", "Request Count", "Failure Count", "95%")
#: DESIGN.md "Metric contract": the app's request counter and latency histogram
_REQUESTS_METRIC = "http_requests_total"
_BUCKET_METRIC = "http_request_duration_seconds_bucket"
#: what an error is when the SLI does not say (a latency SLI): a 5xx answer
_DEFAULT_ERROR = (("status", "=~", "5.."),)
#: labels the server pre-filters on (every target series has them, ``up`` included)
_TARGET_LABELS = ("job", "instance")
_NA = "n/a"
_DAY_S = 86400


class Verdict(StrEnum):
    """A judgement's outcome; ``NOT_CHECKED`` when its input is missing (it counts for nothing)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NOT_CHECKED = "not checked"

    @property
    def rank(self) -> int:
        """How much the verdict weighs in a total: fail > inconclusive > warn > pass."""
        return _RANKS[self]


_RANKS = {
    Verdict.NOT_CHECKED: 0,
    Verdict.PASS: 1,
    Verdict.WARN: 2,
    Verdict.INCONCLUSIVE: 3,
    Verdict.FAIL: 4,
}
_EXIT_CODES = {Verdict.PASS: 0, Verdict.WARN: 0, Verdict.FAIL: 1, Verdict.INCONCLUSIVE: 3}


@dataclass(frozen=True)
class GateSettings:
    """The gate's statistical defaults (docs/slo.md "The deploy gate")."""

    #: confidence of each one-sided bound (error ratios, p95s): a pass or a fail is wrong
    #: at most 5 % of the time; zero errors in n requests bound the ratio by about 3/n
    confidence: float = 0.95
    #: significance of the one-sided Mann-Whitney U test "the candidate is slower"
    alpha: float = 0.01
    #: Cliff's delta below this is negligible (Romano et al. 2006): a significant shift passes
    negligible_delta: float = 0.147
    #: Cliff's delta from this on (a medium effect) fails; between the two it warns
    max_delta: float = 0.33
    #: a significant shift of the median smaller than this share of the baseline's median
    #: is tiny and passes: with an injected or network-bound latency the spread is so narrow
    #: that 1 ms is a "large" Cliff's delta, which a user would never notice
    min_shift: float = 0.05
    #: an achieved request rate more than this share below run.json's target is invalid
    max_rate_shortfall: float = 0.10
    #: client and server request counts further apart than this share are invalid
    max_count_difference: float = 0.005
    #: how long after the run's end the gate waits for Prometheus' first scrape after it
    settle_s: float = 15.0


# --- input data ---------------------------------------------------------------------------


class LoggedRequest(NamedTuple):
    """One line of the per-request log."""

    method: str
    name: str
    latency_ms: float
    #: the HTTP status; 0 when no answer came (connection error, timeout)
    status: int
    success: bool


@dataclass(frozen=True)
class StatsRow:
    """One row of Locust's ``PREFIX_stats.csv``."""

    method: str
    name: str
    requests: int
    failures: int
    #: Locust's 95th percentile in ms, rounded as Locust buckets it; None for "N/A"
    p95_ms: float | None


@dataclass(frozen=True)
class RunInfo:
    """What ``run.json`` says about the run (absent fields are None)."""

    start: datetime | None = None
    end: datetime | None = None
    profile: str | None = None
    host: str | None = None
    users: int | None = None
    target_rps: float | None = None
    cpu_warning: bool = False
    locust_version: str | None = None
    locust_exit_code: int | None = None


@dataclass(frozen=True)
class ClientRun:
    """One Locust run as read from disk; None where a file is missing."""

    #: the ``--locust-stats`` prefix (``RUN_DIR/locust``), for messages
    prefix: str
    stats: tuple[StatsRow, ...] | None = None
    #: the ``Aggregated`` row of the stats CSV
    aggregated: StatsRow | None = None
    requests: tuple[LoggedRequest, ...] | None = None
    info: RunInfo | None = None

    @property
    def total_requests(self) -> int:
        """Every request of the run, whichever file tells."""
        if self.requests is not None:
            return len(self.requests)
        if self.aggregated is not None:
            return self.aggregated.requests
        return sum(row.requests for row in self.stats or ())


@dataclass(frozen=True)
class ServerSeries:
    """One counter series over the run window: its growth from start to end."""

    name: str
    labels: tuple[tuple[str, str], ...]
    delta: float

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


@dataclass(frozen=True)
class ServerRun:
    """The app's counters over the run window, as Prometheus scraped them."""

    prometheus_url: str
    start: datetime
    end: datetime
    series: tuple[ServerSeries, ...]
    #: why the counts cannot be trusted (a target not scraped after the end, a reset)
    problems: tuple[str, ...] = ()


# --- the report model ---------------------------------------------------------------------


@dataclass(frozen=True)
class SideSummary:
    """One side's numbers for one SLO, as the report shows them."""

    #: ``Locust per-request log``, ``Locust statistics`` or ``Prometheus``
    source: str
    requests: int
    errors: int | None
    #: the p95 (server side: interpolated in the histogram, like histogram_quantile)
    p95_s: float | None
    #: what the p95 may be: a confidence interval, Locust's rounding or the bucket
    p95_low_s: float | None = None
    p95_high_s: float | None = None

    @property
    def error_ratio(self) -> float | None:
        """Errors over requests; None without requests or error counts."""
        if self.errors is None or self.requests == 0:
            return None
        return self.errors / self.requests


@dataclass(frozen=True)
class Budget:
    """The run's SLI error ratio in error-budget terms."""

    #: the SLI's error ratio over the run (5xx share, or share slower than the threshold)
    error_ratio: float
    #: error ratio / (1 - objective): 1 spends exactly the budget over the SLO period
    burn_rate: float
    #: share of the period's error budget one day at this rate would spend
    budget_per_day: float
    #: ``client`` or ``server``
    side: str


@dataclass(frozen=True)
class Judgement:
    """One judgement of one objective: threshold, baseline or statistical."""

    kind: str
    verdict: Verdict
    #: what was measured, formatted (``0.031% (1 of 3200)``)
    measured: str
    #: what the measurement allows (confidence bounds), formatted; empty when none
    bounds: str
    #: the limit, formatted (``<= 0.100%``)
    limit: str
    #: one sentence: why this verdict
    reason: str
    #: the raw numbers behind it, for JSON
    values: Mapping[str, float | int | str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectiveResult:
    """One objective of one SLO (``error ratio`` or ``p95 latency``) and its judgements."""

    slo_id: str
    name: str
    judgements: tuple[Judgement, ...]

    @property
    def verdict(self) -> Verdict:
        """The worst judgement (``not checked`` only when nothing was checked)."""
        return _worst(j.verdict for j in self.judgements)


@dataclass(frozen=True)
class SloResult:
    """One SLO's measurements and objectives."""

    id: str
    name: str
    #: percent of good events, as in the spec
    objective: float
    period_s: int
    client: SideSummary | None
    server: SideSummary | None
    baseline: SideSummary | None
    budget: Budget | None
    objectives: tuple[ObjectiveResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def count_difference(self) -> float | None:
        """(client - server) / server requests; None unless both sides counted."""
        if self.client is None or self.server is None:
            return None
        if self.server.requests == 0:
            return 0.0 if self.client.requests == 0 else math.inf
        return (self.client.requests - self.server.requests) / self.server.requests

    @property
    def p95_difference_s(self) -> float | None:
        """Client p95 minus server p95 (network and client time); None unless both."""
        if self.client is None or self.server is None:
            return None
        if self.client.p95_s is None or self.server.p95_s is None:
            return None
        return self.client.p95_s - self.server.p95_s


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict on one run."""

    slos: tuple[SloResult, ...]
    start: datetime | None
    end: datetime | None
    locust: str | None
    prometheus: str | None
    baseline: str | None
    info: RunInfo | None
    settings: GateSettings
    notes: tuple[str, ...] = ()

    @property
    def objectives(self) -> tuple[ObjectiveResult, ...]:
        return tuple(o for s in self.slos for o in s.objectives)

    @property
    def verdict(self) -> Verdict:
        """The worst objective: fail > inconclusive > warn > pass."""
        return _worst(o.verdict for o in self.objectives)

    @property
    def exit_code(self) -> int:
        """0 pass (warnings alone pass), 1 fail, 3 inconclusive (DESIGN.md "The gate")."""
        return _EXIT_CODES.get(self.verdict, 3)


def _worst(verdicts: Any) -> Verdict:
    return max(verdicts, key=lambda v: v.rank, default=Verdict.NOT_CHECKED)


# --- I/O: the Locust run ------------------------------------------------------------------


def load_client_run(prefix: Path) -> ClientRun:
    """The Locust run at ``prefix`` (``RUN_DIR/locust``); SpecError naming any bad file.

    ``PREFIX_stats.csv`` and ``PREFIX_requests.csv`` may each be missing, not both;
    ``run.json`` is read from the prefix's directory when it is there.
    """
    stats_path = Path(f"{prefix}_stats.csv")
    requests_path = Path(f"{prefix}_requests.csv")
    if not stats_path.is_file() and not requests_path.is_file():
        raise SpecError(
            str(prefix),
            None,
            f"no Locust statistics: neither {stats_path} nor {requests_path} exists",
        )
    rows = aggregated = None
    if stats_path.is_file():
        rows, aggregated = _read_stats(stats_path)
    logged = _read_requests(requests_path) if requests_path.is_file() else None
    info_path = prefix.parent / "run.json"
    info = _read_run_info(info_path) if info_path.is_file() else None
    return ClientRun(str(prefix), rows, aggregated, logged, info)


def _csv_lines(path: Path) -> list[list[str]]:
    try:
        with path.open(encoding="utf-8", newline="") as stream:
            lines = list(csv.reader(stream))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SpecError(str(path), None, f"cannot be read as CSV: {exc}") from None
    if not lines:
        raise SpecError(str(path), None, "is empty: no header line")
    return lines


def _read_stats(path: Path) -> tuple[tuple[StatsRow, ...], StatsRow | None]:
    lines = _csv_lines(path)
    header = lines[0]
    missing = [c for c in STATS_COLUMNS if c not in header]
    if missing:
        raise SpecError(
            str(path),
            "header",
            f"missing column(s) {', '.join(missing)}: not Locust's --csv PREFIX_stats.csv",
        )
    at = {name: header.index(name) for name in STATS_COLUMNS}
    rows, aggregated = [], None
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        if len(line) != len(header):
            raise SpecError(
                str(path), f"line {number}", f"has {len(line)} fields, the header {len(header)}"
            )
        where = f"line {number}"
        row = StatsRow(
            method=line[at["Type"]],
            name=line[at["Name"]],
            requests=_count(line[at["Request Count"]], path, where, "Request Count"),
            failures=_count(line[at["Failure Count"]], path, where, "Failure Count"),
            p95_ms=_milliseconds(line[at["95%"]], path, where, "95%", allow_na=True),
        )
        if row.name == "Aggregated" and not row.method:
            aggregated = row
        else:
            rows.append(row)
    return tuple(rows), aggregated


def _read_requests(path: Path) -> tuple[LoggedRequest, ...]:
    lines = _csv_lines(path)
    if tuple(lines[0]) != REQUESTS_HEADER:
        raise SpecError(
            str(path),
            "header",
            f"expected {','.join(REQUESTS_HEADER)}, found {','.join(lines[0])}",
        )
    logged = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        where = f"line {number}"
        if len(line) != len(REQUESTS_HEADER):
            raise SpecError(str(path), where, f"has {len(line)} fields, the header 7")
        _, method, name, latency, _, status, success = line
        flag = success.strip().lower()
        if flag not in ("true", "false", "1", "0"):
            raise SpecError(str(path), where, f"success must be True or False, not {success!r}")
        latency_ms = _milliseconds(latency, path, where, "response_time_ms")
        assert latency_ms is not None
        logged.append(
            LoggedRequest(
                method,
                name,
                latency_ms,
                _count(status or "0", path, where, "status"),
                flag in ("true", "1"),
            )
        )
    return tuple(logged)


def _count(raw: str, path: Path, where: str, column: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise SpecError(str(path), where, f"{column} must be a whole number >= 0, not {raw!r}")
    return value


def _milliseconds(
    raw: str, path: Path, where: str, column: str, allow_na: bool = False
) -> float | None:
    if allow_na and raw.strip() in ("N/A", ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise SpecError(str(path), where, f"{column} must be milliseconds >= 0, not {raw!r}")
    return value


def _read_run_info(path: Path) -> RunInfo:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), None, f"cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(str(path), None, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(str(path), None, "must be a JSON object")

    def number(key: str) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(str(path), key, f"must be a number, not {value!r}")
        return float(value)

    def moment(key: str) -> datetime | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise SpecError(str(path), key, f"must be Unix seconds (a number), not {value!r}")
        return datetime.fromtimestamp(value, UTC)

    cpu_warning = data.get("cpu_warning", False)
    if not isinstance(cpu_warning, bool):
        raise SpecError(str(path), "cpu_warning", f"must be true or false, not {cpu_warning!r}")
    start, end = moment("start"), moment("end")
    if start is not None and end is not None and end <= start:
        raise SpecError(str(path), "end", "must be after start")
    users, exit_code = number("users"), number("locust_exit_code")
    return RunInfo(
        start=start,
        end=end,
        profile=_text(data.get("profile")),
        host=_text(data.get("host")),
        users=None if users is None else int(users),
        target_rps=number("target_rps"),
        cpu_warning=cpu_warning,
        locust_version=_text(data.get("locust_version")),
        locust_exit_code=None if exit_code is None else int(exit_code),
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# --- which requests an SLO counts (pure) -----------------------------------------------------


Matcher = tuple[str, str, str]  # label, operator (= != =~ !~), value

_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


@dataclass(frozen=True)
class _Shape:
    """What an SLO counts, read from its SLI's queries."""

    #: None when the SLI names no selector the gate understands (a raw SLI)
    request: tuple[Matcher, ...] | None
    error: tuple[Matcher, ...]
    #: ``availability`` (errors by status), ``latency`` (slower than ``threshold_s``), ``other``
    kind: str
    threshold_s: float | None = None
    pairs: frozenset[str] = frozenset()

    def takes(self, labels: Mapping[str, str], only: Sequence[str] = ()) -> bool:
        """Whether a series or request with these labels counts (``only``: labels to test)."""
        if self.request is None:
            return self.pair_ok(labels)
        tested = [m for m in self.request if not only or m[0] in only]
        return all(_matches(m, labels) for m in tested) and self.pair_ok(labels)

    def pair_ok(self, labels: Mapping[str, str]) -> bool:
        return not self.pairs or f"{labels.get('method', '')} {labels.get('route', '')}" in (
            self.pairs
        )

    def is_error(self, labels: Mapping[str, str]) -> bool:
        return all(_matches(m, labels) for m in self.error)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _matches(matcher: Matcher, labels: Mapping[str, str]) -> bool:
    label, op, value = matcher
    found = labels.get(label, "")
    if op == "=":
        return found == value
    if op == "!=":
        return found != value
    hit = _regex(value).fullmatch(found) is not None  # PromQL regexes are anchored
    return hit if op == "=~" else not hit


def _selectors(query: str) -> list[tuple[str, tuple[Matcher, ...]]]:
    """Every vector selector in the query: its metric name and label matchers."""
    found: list[tuple[str, tuple[Matcher, ...]]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = tuple(
                (m.name, _OPS[str(m.op)], m.value)
                for m in node.matchers.matchers
                if m.name != "__name__"
            )
            found.append((node.name or "", matchers))

    promql_parser.walk(promql_parser.parse(render_query(query, 60)), visit)
    return found


def _shape(slo: SLO, gate: GateSpec) -> _Shape:
    pairs = frozenset(gate.requests)
    if not isinstance(slo.sli, EventsSLI):
        return _Shape(None, _DEFAULT_ERROR, "other", pairs=pairs)
    total = _selectors(slo.sli.total_query)
    if not total:
        return _Shape(None, _DEFAULT_ERROR, "other", pairs=pairs)
    request = tuple(m for m in total[0][1] if m[0] != "le")
    for name, matchers in _selectors(slo.sli.error_query):
        le = [m for m in matchers if m[0] == "le" and m[1] == "="]
        if name.endswith("_bucket") and le:
            try:
                threshold = float(le[0][2])
            except ValueError:
                continue
            return _Shape(request, _DEFAULT_ERROR, "latency", threshold, pairs)
    for _, matchers in _selectors(slo.sli.error_query):
        extra = tuple(m for m in matchers if m not in request)
        if extra and all(m in matchers for m in request):
            return _Shape(request, extra, "availability", pairs=pairs)
    return _Shape(request, _DEFAULT_ERROR, "other", pairs=pairs)


def _gated(slos: Sequence[SLO]) -> list[tuple[SLO, GateSpec]]:
    return [(slo, slo.gate) for slo in slos if slo.gate is not None]


def server_selector(slos: Sequence[SLO]) -> str:
    """The one selector the gate reads Prometheus with: the two metrics and ``up``, narrowed
    by the ``job``/``instance`` matchers every gated SLO shares (the rest is applied here)."""
    shapes = [_shape(slo, gate) for slo, gate in _gated(slos)]
    common: set[Matcher] | None = None
    for shape in shapes:
        if shape.request is None:  # not read from Prometheus
            continue
        mine = {m for m in shape.request if m[0] in _TARGET_LABELS}
        common = mine if common is None else common & mine
    names = "|".join(("up", _REQUESTS_METRIC, _BUCKET_METRIC))
    parts = [f'__name__=~"{names}"']
    parts.extend(f'{label}{op}"{_quote(value)}"' for label, op, value in sorted(common or ()))
    return "{" + ",".join(parts) + "}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


# --- I/O: Prometheus ----------------------------------------------------------------------


def fetch_server_run(
    prometheus_url: str,
    slos: Sequence[SLO],
    start: datetime,
    end: datetime,
    settle_s: float = 15.0,
    timeout_s: float = 5.0,
) -> ServerRun:
    """The app's counters over ``[start, end]``: two queries, exact, no extrapolation.

    The values at the start are an instant query just before it (the last scrape before the
    run); those at the end are the first sample after it, read from the raw samples of a
    range selector. The gate waits (up to ``settle_s`` after the end) until every target has
    been scraped successfully after the end; a target that was not is a problem of the run.
    PrometheusError when Prometheus fails, NoDataError when it scrapes no target there.
    """
    selector = server_selector(slos)
    window_s = max(120, math.ceil(settle_s) + 1)
    prometheus = PrometheusClient(prometheus_url, timeout_s, retries=1)
    deadline = min(end.timestamp() + settle_s, time.time() + settle_s)
    try:
        before = prometheus.instant(selector, start.timestamp() - 0.001)
        while True:
            after = prometheus.instant(f"{selector}[{window_s}s]", end.timestamp() + window_s)
            firsts, scraped = _first_samples(after, end.timestamp())
            targets = {_target(s["metric"]) for s in before if _name(s) == "up"}
            targets |= {_target(s["metric"]) for s in after if _name(s) == "up"}
            pending = targets - scraped
            if not pending or time.time() >= deadline:
                break
            time.sleep(0.25)
    finally:
        prometheus.close()
    if not targets:
        raise NoDataError(
            prometheus.url,
            None,
            f"no target matches {selector} around the run "
            f"({_iso(start)} to {_iso(end)}): is Prometheus scraping the app?",
        )
    return _server_run(prometheus.url, start, end, before, firsts, scraped, pending)


def _name(series: Mapping[str, Any]) -> str:
    return str(series["metric"].get("__name__", ""))


def _target(labels: Mapping[str, str]) -> tuple[str, str]:
    return labels.get("job", ""), labels.get("instance", "")


def _key(labels: Mapping[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    rest = tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))
    return labels.get("__name__", ""), rest


def _first_samples(
    matrix: list[dict[str, Any]], after: float
) -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], float], set[tuple[str, str]]]:
    """Each series' first value after ``after``, and the targets scraped well since then."""
    firsts = {}
    scraped = set()
    for series in matrix:
        samples = [(float(t), _number(v)) for t, v in series.get("values", [])]
        later = [(t, v) for t, v in sorted(samples) if t > after]
        if not later:
            continue
        if _name(series) == "up":
            if any(v == 1 for _, v in later):
                scraped.add(_target(series["metric"]))
        else:
            firsts[_key(series["metric"])] = later[0][1]
    return firsts, scraped


def _server_run(
    url: str,
    start: datetime,
    end: datetime,
    before: list[dict[str, Any]],
    firsts: Mapping[tuple[str, tuple[tuple[str, str], ...]], float],
    scraped: set[tuple[str, str]],
    pending: set[tuple[str, str]],
) -> ServerRun:
    problems = [
        f"Prometheus has not scraped {instance} (job {job}) since the run ended"
        for job, instance in sorted(pending)
    ]
    at_start = {_key(s["metric"]): _number(s["value"][1]) for s in before if _name(s) != "up"}
    series = []
    resets = []
    for key in sorted(set(at_start) | set(firsts)):
        name, labels = key
        first = at_start.get(key, 0.0)
        last = firsts.get(key)
        if last is None:
            if _target(dict(labels)) in scraped:
                resets.append(f"{name}{_labels_text(labels)}")
            continue
        if last < first:
            resets.append(f"{name}{_labels_text(labels)}")
            continue
        series.append(ServerSeries(name, labels, last - first))
    if resets:
        more = f" and {len(resets) - 1} more" if len(resets) > 1 else ""
        problems.append(
            f"a counter was reset during the run (the app restarted?): {resets[0]}{more}"
        )
    return ServerRun(url, start, end, tuple(series), tuple(problems))


def _labels_text(labels: tuple[tuple[str, str], ...]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


def _number(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


# --- the whole gate -----------------------------------------------------------------------


def judge_run(
    slos: Sequence[SLO],
    locust_prefix: Path | None,
    prometheus_url: str | None,
    start: datetime | None,
    end: datetime | None,
    baseline_dir: Path | None,
    settings: GateSettings | None = None,
) -> GateReport:
    """Read the run (Locust files, Prometheus) and the baseline, and judge them.

    ``start``/``end`` default to run.json's. SpecError (exit 2) for unusable input: no
    source given, a missing or malformed file, no window for Prometheus, Prometheus not
    answering or scraping nothing, a run without requests.
    """
    settings = settings or GateSettings()
    if locust_prefix is None and prometheus_url is None:
        raise SpecError(
            None, "--locust-stats", "nothing to judge: give --locust-stats, --prometheus or both"
        )
    if not _gated(slos):
        raise SpecError(None, "--spec", "no SLO has a gate: block, so there is nothing to judge")
    if prometheus_url is None and (start is not None or end is not None):
        raise SpecError(None, "--start", "the window of --start and --end needs --prometheus")
    client = load_client_run(locust_prefix) if locust_prefix is not None else None
    baseline = load_client_run(_baseline_prefix(baseline_dir)) if baseline_dir else None
    server = None
    if prometheus_url is not None:
        info = client.info if client is not None else None
        start = _utc(start) if start is not None else info.start if info else None
        end = _utc(end) if end is not None else info.end if info else None
        if start is None or end is None:
            missing = "--start" if start is None else "--end"
            raise SpecError(
                None, missing, "required with --prometheus when no run.json gives the window"
            )
        if end <= start:
            raise SpecError(None, "--start", f"{_iso(start)} is not before the end {_iso(end)}")
        server = fetch_server_run(prometheus_url, slos, start, end, settings.settle_s)
    return build_gate_report(slos, client, server, baseline, settings)


def _baseline_prefix(path: Path) -> Path:
    """A baseline is a run directory (its ``locust`` prefix) or a prefix itself."""
    return path / "locust" if path.is_dir() else path


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- pure: judging ------------------------------------------------------------------------


@dataclass(frozen=True)
class _ClientSide:
    """One client run's numbers for one SLO."""

    summary: SideSummary
    #: sorted latencies in seconds, from the per-request log
    latencies: np.ndarray[Any, np.dtype[np.float64]] | None
    #: requests slower than the SLI's threshold (per-request log only)
    slow: int | None
    rounded: bool


@dataclass(frozen=True)
class _ServerSide:
    summary: SideSummary
    #: cumulative bucket counts by upper bound, +Inf last
    buckets: tuple[tuple[float, float], ...]


def build_gate_report(
    slos: Sequence[SLO],
    client: ClientRun | None,
    server: ServerRun | None,
    baseline: ClientRun | None,
    settings: GateSettings | None = None,
) -> GateReport:
    """Judge every gated SLO from the numbers read (no I/O). SpecError when there is no data."""
    settings = settings or GateSettings()
    gated = _gated(slos)
    if client is not None and client.total_requests == 0:
        raise SpecError(client.prefix, None, "holds no requests: the load test made none")
    if baseline is not None and baseline.total_requests == 0:
        raise SpecError(baseline.prefix, None, "holds no requests: the baseline run made none")
    run_problems = _run_problems(client, settings, "the run") + list(
        server.problems if server else ()
    )
    base_problems = _run_problems(baseline, settings, "the baseline run")
    results = []
    server_total = 0
    for slo, gate in gated:
        shape = _shape(slo, gate)
        confidence = settings.confidence
        client_side = _client_side(client, shape, confidence) if client is not None else None
        base_side = _client_side(baseline, shape, confidence) if baseline is not None else None
        server_side = _server_side(server, shape) if server and shape.request is not None else None
        server_total += server_side.summary.requests if server_side else 0
        case = _Case(
            slo,
            gate,
            shape,
            client_side,
            server_side,
            base_side,
            _budget(slo, shape, client_side, server_side),
            settings,
        )
        results.append(_judge_slo(case, run_problems, base_problems, server is not None))
    if server is not None and client is None and server_total == 0:
        raise NoDataError(
            server.prometheus_url,
            None,
            f"no request any gated SLO counts between {_iso(server.start)} and "
            f"{_iso(server.end)}: nothing to judge",
        )
    report = GateReport(
        slos=tuple(results),
        start=server.start if server else client.info.start if client and client.info else None,
        end=server.end if server else client.info.end if client and client.info else None,
        locust=client.prefix if client else None,
        prometheus=server.prometheus_url if server else None,
        baseline=baseline.prefix if baseline else None,
        info=client.info if client else None,
        settings=settings,
        notes=tuple(_report_notes(client, server, baseline)),
    )
    if report.verdict is Verdict.NOT_CHECKED:
        raise SpecError(
            None,
            "--baseline",
            "nothing to judge: the gate blocks only set limits against a baseline run",
        )
    return report


def _run_problems(run: ClientRun | None, settings: GateSettings, what: str) -> list[str]:
    """Why a Locust run's measurement is invalid, from run.json."""
    if run is None or run.info is None:
        return []
    info = run.info
    problems = []
    if info.cpu_warning:
        problems.append(f"the load generator ran short of CPU during {what} (run.json cpu_warning)")
    if info.target_rps and info.start and info.end:
        achieved = run.total_requests / (info.end - info.start).total_seconds()
        if achieved < info.target_rps * (1 - settings.max_rate_shortfall):
            short = 1 - achieved / info.target_rps
            problems.append(
                f"{what} achieved {achieved:.1f} requests/s, {short:.0%} short of its target "
                f"{info.target_rps:g}/s"
            )
    return problems


def _client_side(run: ClientRun, shape: _Shape, confidence: float) -> _ClientSide:
    only = ("method", "route")
    if run.requests is not None:
        mine = [r for r in run.requests if shape.takes({"method": r.method, "route": r.name}, only)]
        latencies = np.sort(np.fromiter((r.latency_ms / 1000 for r in mine), dtype=np.float64))
        errors = sum(
            1
            for r in mine
            if r.status == 0
            or shape.is_error({"method": r.method, "route": r.name, "status": str(r.status)})
        )
        p95 = low = high = None
        if len(latencies):
            p95 = float(latencies[_nearest_rank(len(latencies), 0.95) - 1])
            low, high = _quantile_bounds(latencies, 0.95, confidence)
        slow = None
        if shape.threshold_s is not None:
            slow = int(np.count_nonzero(latencies > shape.threshold_s))
        summary = SideSummary("Locust per-request log", len(mine), errors, p95, low, high)
        return _ClientSide(summary, latencies, slow, rounded=False)
    rows = [r for r in run.stats or () if shape.takes({"method": r.method, "route": r.name}, only)]
    every = len(rows) == len(run.stats or ()) and run.aggregated is not None
    counted = [run.aggregated] if every and run.aggregated else rows
    requests_ = sum(r.requests for r in counted)
    failures = sum(r.failures for r in counted)
    p95s = [r.p95_ms for r in counted if r.p95_ms is not None and r.requests]
    p95 = low = high = None
    if p95s:
        # a mixture's quantile lies between its parts' quantiles; Locust rounds each
        low_ms, high_ms = min(p95s), max(p95s)
        low = (low_ms - _locust_rounding_ms(low_ms)) / 1000
        high = (high_ms + _locust_rounding_ms(high_ms)) / 1000
        p95 = p95s[0] / 1000 if len(p95s) == 1 else None
    summary = SideSummary("Locust statistics", requests_, failures, p95, low, high)
    return _ClientSide(summary, None, None, rounded=True)


def _locust_rounding_ms(value_ms: float) -> float:
    """Half the width Locust rounds a response time to (its ``bucket_response_time``)."""
    if value_ms < 100:
        return 0.5
    if value_ms < 1000:
        return 5.0
    if value_ms < 10000:
        return 50.0
    return 500.0


def _nearest_rank(n: int, p: float) -> int:
    return max(1, math.ceil(p * n - 1e-9))


def _quantile_bounds(
    ordered: np.ndarray[Any, np.dtype[np.float64]], p: float, confidence: float
) -> tuple[float | None, float | None]:
    """One-sided order-statistic bounds of the p-quantile (distribution-free).

    The lower bound is the l-th smallest value with P(Binomial(n, p) >= l) >= confidence,
    the upper the u-th with P(Binomial(n, p) <= u - 1) >= confidence; None beyond the data.
    """
    n = len(ordered)
    alpha = 1 - confidence
    low_rank = int(stats.binom.ppf(alpha, n, p))
    high_rank = int(stats.binom.ppf(confidence, n, p)) + 1
    low = float(ordered[low_rank - 1]) if low_rank >= 1 else None
    high = float(ordered[high_rank - 1]) if high_rank <= n else None
    return low, high


def _server_side(server: ServerRun, shape: _Shape) -> _ServerSide:
    total = errors = 0.0
    cumulative: dict[float, float] = {}
    for series in server.series:
        labels = dict(series.labels)
        if not shape.takes(labels):
            continue
        if series.name == _REQUESTS_METRIC:
            total += series.delta
            errors += series.delta if shape.is_error(labels) else 0.0
        elif series.name == _BUCKET_METRIC:
            bound = _number(labels.get("le"))
            if not math.isnan(bound):
                cumulative[bound] = cumulative.get(bound, 0.0) + series.delta
    buckets = tuple(sorted(cumulative.items()))
    p95 = low = high = None
    if buckets and buckets[-1][1] > 0:
        p95, low, high = _histogram_p95(buckets, 0.95)
    summary = SideSummary("Prometheus", round(total), round(errors), p95, low, high)
    return _ServerSide(summary, buckets)


def _histogram_p95(
    buckets: tuple[tuple[float, float], ...], p: float
) -> tuple[float, float, float]:
    """histogram_quantile's interpolation, and the bucket the quantile lies in."""
    count = buckets[-1][1]
    rank = p * count
    previous_bound, previous_count = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if math.isinf(bound):
                return previous_bound, previous_bound, math.inf
            share = (rank - previous_count) / (cumulative - previous_count)
            return previous_bound + (bound - previous_bound) * share, previous_bound, bound
        previous_bound, previous_count = bound, cumulative
    return previous_bound, previous_bound, math.inf


def _clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """One-sided exact binomial bounds of k/n, each at ``confidence``."""
    alpha = 1 - confidence
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(confidence, k + 1, n - k))
    return low, high


def _requests_needed(limit: float, confidence: float) -> int:
    """Requests a run without one error needs for its upper bound to fall below ``limit``."""
    if limit <= 0:
        return 0
    return math.floor(math.log(1 - confidence) / math.log1p(-limit)) + 1


@dataclass(frozen=True)
class _Case:
    """Everything one SLO is judged from."""

    slo: SLO
    gate: GateSpec
    shape: _Shape
    client: _ClientSide | None
    server: _ServerSide | None
    base: _ClientSide | None
    budget: Budget | None
    settings: GateSettings

    @property
    def judged(self) -> _ClientSide | _ServerSide:
        """The side fixed limits are judged on: the server's (the SLO's own SLI) if read."""
        side = self.server or self.client
        assert side is not None  # a source is always given
        return side


def _judge_slo(
    case: _Case, run_problems: list[str], base_problems: list[str], server_read: bool
) -> SloResult:
    gate, client, server, base = case.gate, case.client, case.server, case.base
    problems = list(run_problems)
    count = case.judged.summary.requests
    # Too few requests cannot show a pass, but a failure whose bound already clears the
    # limit is shown: 17 errors in 208 requests fail a 0.1 % objective however short the run.
    shortfall = []
    if count < gate.min_requests:
        shortfall.append(f"the run made {count} of the {gate.min_requests} requests it needs")
    if client is not None and server is not None:
        c, s = client.summary.requests, server.summary.requests
        difference = abs(c - s) / max(c, s, 1)
        if difference > case.settings.max_count_difference:
            problems.append(
                f"client and server counts differ by {difference:.1%} ({c} against {s})"
            )
    base_all = list(base_problems)
    if base is not None and base.summary.requests < gate.min_requests:
        made = base.summary.requests
        base_all.insert(0, f"the baseline made {made} of the {gate.min_requests} requests it needs")
    baseline = gate.baseline or GateBaseline()
    objectives = []
    if gate.max_error_ratio is not None or baseline.max_error_ratio_increase is not None:
        objectives.append(_error_objective(case))
    if gate.max_p95_seconds is not None or baseline.max_p95_increase is not None:
        objectives.append(_latency_objective(case))
    checked = []
    for objective in objectives:
        judgements = []
        for judgement in objective.judgements:
            shown_failure = judgement.kind == "threshold" and judgement.verdict is Verdict.FAIL
            reasons = (
                ([] if shown_failure else shortfall)
                + problems
                + (base_all if judgement.kind != "threshold" else [])
            )
            judgements.append(_invalidated(judgement, reasons))
        checked.append(replace(objective, judgements=tuple(judgements)))
    notes = []
    if server_read and case.shape.request is None:
        notes.append("its SLI names no selector of the app's metrics: judged on the client side")
    if not objectives:
        notes.append("its gate: block sets no limit")
    return SloResult(
        id=case.slo.id,
        name=case.slo.name,
        objective=case.slo.objective,
        period_s=case.slo.period_s,
        client=client.summary if client else None,
        server=server.summary if server else None,
        baseline=base.summary if base else None,
        budget=case.budget,
        objectives=tuple(checked),
        notes=tuple(notes),
    )


def _invalidated(judgement: Judgement, problems: list[str]) -> Judgement:
    """The judgement made inconclusive when the run cannot show it either way."""
    if not problems or judgement.verdict in (Verdict.NOT_CHECKED, Verdict.INCONCLUSIVE):
        if judgement.verdict is Verdict.INCONCLUSIVE and problems:
            return replace(judgement, reason=f"{_sentence(problems)}; {judgement.reason}")
        return judgement
    would = judgement.verdict.value
    reason = f"{_sentence(problems)}; the numbers alone would {would}"
    return replace(judgement, verdict=Verdict.INCONCLUSIVE, reason=reason)


def _sentence(parts: list[str]) -> str:
    return "; ".join(parts)


def _budget(
    slo: SLO, shape: _Shape, client: _ClientSide | None, server: _ServerSide | None
) -> Budget | None:
    ratio, side = None, ""
    if shape.kind == "latency" and shape.threshold_s is not None:
        if server is not None and server.summary.requests:
            slower = _slower_than(server.buckets, shape.threshold_s)
            if slower is not None:
                ratio, side = slower / server.buckets[-1][1], "server"
        elif client is not None and client.slow is not None and client.summary.requests:
            ratio, side = client.slow / client.summary.requests, "client"
    else:
        for candidate, name in ((server, "server"), (client, "client")):
            if candidate is not None and candidate.summary.error_ratio is not None:
                ratio, side = candidate.summary.error_ratio, name
                break
    if ratio is None:
        return None
    burn = ratio / (1 - slo.objective / 100)
    return Budget(ratio, burn, burn * _DAY_S / slo.period_s, side)


def _slower_than(buckets: tuple[tuple[float, float], ...], bound: float) -> float | None:
    """Requests slower than ``bound`` (a bucket bound), or None when it is none."""
    for le, cumulative in buckets:
        if le == bound:
            return buckets[-1][1] - cumulative
    return None


def _budget_warning(judgement: Judgement, budget: Budget | None) -> Judgement:
    if judgement.verdict is not Verdict.PASS or budget is None or budget.burn_rate <= 1:
        return judgement
    reason = (
        f"{judgement.reason}, but the run burns the SLO's error budget {budget.burn_rate:.2f}x "
        "as fast as the period allows"
    )
    return replace(judgement, verdict=Verdict.WARN, reason=reason)


def _decide(low: float | None, high: float | None, limit: float) -> Verdict:
    """Pass when the upper bound is below the limit, fail when the lower is above it."""
    if high is not None and high < limit:
        return Verdict.PASS
    if low is not None and low > limit:
        return Verdict.FAIL
    return Verdict.INCONCLUSIVE


def _error_objective(case: _Case) -> ObjectiveResult:
    judgements = []
    limit = case.gate.max_error_ratio
    if limit is not None:
        side = "server" if case.server else "client"
        threshold = _error_threshold(case.judged.summary, limit, side, case.settings)
        if case.shape.kind != "latency":
            threshold = _budget_warning(threshold, case.budget)
        judgements.append(threshold)
    increase = case.gate.baseline.max_error_ratio_increase if case.gate.baseline else None
    # without a baseline run the notes say so; a row only when nothing else is judged
    if increase is not None and (case.base is not None or not judgements):
        judgements.append(_error_baseline(case.client, case.base, increase, case.settings))
    return ObjectiveResult(case.slo.id, "error ratio", tuple(judgements))


def _error_threshold(
    side: SideSummary, limit: float, where: str, settings: GateSettings
) -> Judgement:
    n, k = side.requests, side.errors or 0
    limit_text = f"<= {_pct(limit)}"
    values: dict[str, float | int | str | None] = {
        "side": where,
        "requests": n,
        "errors": k,
        "limit": limit,
    }
    if n == 0:
        return _no_requests(limit_text, values)
    low, high = _clopper_pearson(k, n, settings.confidence)
    values |= {"error_ratio": k / n, "lower_bound": low, "upper_bound": high}
    verdict = _decide(low, high, limit)
    measured = f"{_pct(k / n)} ({k} of {n}, {where})"
    bounds = f"{_pct(low)} to {_pct(high)}"
    if verdict is Verdict.PASS:
        reason = f"even its upper bound {_pct(high)} is below the limit"
    elif verdict is Verdict.FAIL:
        reason = f"even its lower bound {_pct(low)} is above the limit"
    else:
        needed = _requests_needed(limit, settings.confidence)
        reason = (
            f"{k} errors in {n} requests cannot show the ratio below {_pct(limit)} or above "
            f"it (a run without errors needs {needed} requests to pass)"
        )
    return Judgement("threshold", verdict, measured, bounds, limit_text, reason, values)


def _error_baseline(
    client: _ClientSide | None, base: _ClientSide | None, increase: float, settings: GateSettings
) -> Judgement:
    limit_text = f"baseline +{_pct(increase)}"
    if base is None:
        return _not_checked("baseline", limit_text, "no --baseline run given")
    if client is None:
        return _not_checked("baseline", limit_text, "the run has no Locust statistics")
    base_ratio = base.summary.error_ratio
    n, k = client.summary.requests, client.summary.errors or 0
    if base_ratio is None or n == 0:
        return _not_checked("baseline", limit_text, "no requests to compare")
    limit = base_ratio + increase
    low, high = _clopper_pearson(k, n, settings.confidence)
    verdict = _decide(low, high, limit)
    measured = f"{_pct(k / n)} against {_pct(base_ratio)} (client)"
    allowed = f"the baseline's {_pct(base_ratio)} + {_pct(increase)}"
    words = {
        Verdict.PASS: f"even its upper bound {_pct(high)} is below {allowed}",
        Verdict.FAIL: f"even its lower bound {_pct(low)} is above {allowed}",
        Verdict.INCONCLUSIVE: f"{k} errors in {n} requests cannot show the ratio below "
        f"{_pct(limit)} or above it",
    }
    values: dict[str, float | int | str | None] = {
        "error_ratio": k / n,
        "baseline_error_ratio": base_ratio,
        "limit": limit,
        "lower_bound": low,
        "upper_bound": high,
    }
    return Judgement(
        "baseline",
        verdict,
        measured,
        f"{_pct(low)} to {_pct(high)}",
        f"<= {_pct(limit)} ({limit_text})",
        words[verdict],
        values,
    )


def _not_checked(kind: str, limit: str, why: str) -> Judgement:
    return Judgement(kind, Verdict.NOT_CHECKED, _NA, "", limit, why)


def _no_requests(limit: str, values: dict[str, Any]) -> Judgement:
    """A threshold with nothing to judge: no request of the run is one this SLO counts."""
    reason = "the run made no request this SLO counts"
    return Judgement("threshold", Verdict.INCONCLUSIVE, "no requests", "", limit, reason, values)


def _latency_objective(case: _Case) -> ObjectiveResult:
    judgements = []
    limit = case.gate.max_p95_seconds
    if limit is not None:
        if case.server is not None:
            threshold = _server_p95_threshold(case.server, limit, case.settings)
        else:
            assert case.client is not None
            threshold = _client_p95_threshold(case.client, limit)
        if case.shape.kind == "latency":
            threshold = _budget_warning(threshold, case.budget)
        judgements.append(threshold)
    increase = case.gate.baseline.max_p95_increase if case.gate.baseline else None
    if increase is not None and (case.base is not None or not judgements):
        judgements.append(_p95_baseline(case.client, case.base, increase))
    if case.base is not None:
        judgements.append(_statistical(case.client, case.base, case.settings))
    return ObjectiveResult(case.slo.id, "p95 latency", tuple(judgements))


def _client_p95_threshold(client: _ClientSide, limit: float) -> Judgement:
    summary = client.summary
    limit_text = f"<= {_ms(limit)}"
    values: dict[str, float | int | str | None] = {
        "side": "client",
        "requests": summary.requests,
        "p95_s": summary.p95_s,
        "lower_bound_s": summary.p95_low_s,
        "upper_bound_s": summary.p95_high_s,
        "limit_s": limit,
    }
    if summary.requests == 0:
        return _no_requests(limit_text, values)
    low, high = summary.p95_low_s, summary.p95_high_s
    verdict = _decide(low, high, limit)
    what = "Locust's rounded p95" if client.rounded else "p95"
    if summary.p95_s is None:  # several rounded rows: only a range
        measured = f"{what} between {_ms(low)} and {_ms(high)} (client)"
    else:
        measured = f"{what} {_ms(summary.p95_s)} (client)"
    bounds = f"{_ms(low)} to {_ms(high)}"
    if verdict is Verdict.PASS:
        reason = f"even its upper bound {_ms(high)} is below the limit"
    elif verdict is Verdict.FAIL:
        reason = f"even its lower bound {_ms(low)} is above the limit"
    elif client.rounded:
        reason = f"Locust's rounding leaves it between {bounds}, which holds the limit"
    else:
        reason = f"its confidence bounds {bounds} hold the limit: more requests would narrow them"
    return Judgement("threshold", verdict, measured, bounds, limit_text, reason, values)


def _server_p95_threshold(server: _ServerSide, limit: float, settings: GateSettings) -> Judgement:
    """p95 <= limit exactly when at most 5 % of requests are slower: counted by bucket."""
    summary = server.summary
    limit_text = f"<= {_ms(limit)}"
    total = server.buckets[-1][1] if server.buckets else 0.0
    if total == 0:
        return _no_requests(limit_text, {"side": "server", "limit_s": limit})
    bounds_at = [le for le, _ in server.buckets]
    below = max((b for b in bounds_at if b <= limit), default=None)
    above = min((b for b in bounds_at if b >= limit), default=math.inf)
    n = round(total)
    slow_below = None if below is None else round(total - dict(server.buckets)[below])
    slow_above = round(total - dict(server.buckets)[above]) if not math.isinf(above) else 0
    # pass: even the upper bound of the share slower than the bucket at or below the limit
    # stays under 5 %; fail: even the lower bound of the share slower than the bucket at or
    # above the limit exceeds it
    high = None if slow_below is None else _clopper_pearson(slow_below, n, settings.confidence)[1]
    low = _clopper_pearson(slow_above, n, settings.confidence)[0]
    verdict = _decide(low, high, 0.05)
    shown = slow_below if slow_below is not None else slow_above
    edge = below if below is not None else above
    measured = f"{_pct(shown / n)} slower than {_ms(edge)}, p95 ~{_ms(summary.p95_s)} (server)"
    bounds = f"{_pct(low)} to {_pct(high) if high is not None else _NA}"
    values: dict[str, float | int | str | None] = {
        "side": "server",
        "requests": n,
        "p95_s": summary.p95_s,
        "limit_s": limit,
        "bucket_s": edge,
        "slower": shown,
        "lower_bound": low,
        "upper_bound": high,
    }
    limit_text = f"<= {_ms(limit)} (<= 5% slower)"
    if verdict is Verdict.PASS:
        reason = f"even the upper bound {_pct(high or 0)} of the share slower than {_ms(below)} "
        reason += "is below 5%"
    elif verdict is Verdict.FAIL:
        reason = f"even the lower bound {_pct(low)} of the share slower than {_ms(above)} is "
        reason += "above 5%"
    elif below is None:
        reason = f"the histogram has no bucket bound at or below {_ms(limit)}"
    else:
        reason = f"the share slower than {_ms(edge)} lies between {bounds}, which holds 5%"
    return Judgement("threshold", verdict, measured, bounds, limit_text, reason, values)


def _p95_baseline(
    client: _ClientSide | None, base: _ClientSide | None, increase: float
) -> Judgement:
    limit_text = f"baseline +{increase:.0%}"
    if base is None:
        return _not_checked("baseline", limit_text, "no --baseline run given")
    if client is None or client.summary.requests == 0:
        return _not_checked("baseline", limit_text, "the run has no client-side latencies")
    base_p95 = base.summary.p95_s
    if base_p95 is None:
        base_p95 = base.summary.p95_high_s  # several rounded rows: the highest it may be
    if base_p95 is None:
        return _not_checked("baseline", limit_text, "the baseline has no p95 for these requests")
    limit = base_p95 * (1 + increase)
    low, high = client.summary.p95_low_s, client.summary.p95_high_s
    verdict = _decide(low, high, limit)
    p95 = client.summary.p95_s
    change = "" if p95 is None else f" ({p95 / base_p95 - 1:+.1%})"
    measured = f"p95 {_ms(p95)} against {_ms(base_p95)}{change} (client)"
    bounds = f"{_ms(low)} to {_ms(high)}"
    if verdict is Verdict.PASS:
        reason = f"even its upper bound {_ms(high)} is below the baseline's p95 +{increase:.0%}"
    elif verdict is Verdict.FAIL:
        reason = f"even its lower bound {_ms(low)} is above the baseline's p95 +{increase:.0%}"
    else:
        reason = f"its bounds {bounds} hold the limit {_ms(limit)}"
    values: dict[str, float | int | str | None] = {
        "p95_s": p95,
        "baseline_p95_s": base_p95,
        "limit_s": limit,
        "lower_bound_s": low,
        "upper_bound_s": high,
    }
    return Judgement(
        "baseline", verdict, measured, bounds, f"<= {_ms(limit)} ({limit_text})", reason, values
    )


def _statistical(
    client: _ClientSide | None, base: _ClientSide | None, settings: GateSettings
) -> Judgement:
    limit_text = (
        f"Cliff's delta < {settings.max_delta:g} or median +{settings.min_shift:.0%} "
        f"(alpha {settings.alpha:g})"
    )
    if base is None:
        return _not_checked("statistical", limit_text, "no --baseline run given")
    if client is None or client.latencies is None:
        return _not_checked("statistical", limit_text, "the run has no per-request log")
    if base.latencies is None:
        return _not_checked("statistical", limit_text, "the baseline has no per-request log")
    candidate, baseline = client.latencies, base.latencies
    if len(candidate) == 0 or len(baseline) == 0:
        return _not_checked("statistical", limit_text, "no requests to compare")
    test = stats.mannwhitneyu(candidate, baseline, alternative="greater")
    u, p = float(test.statistic), float(test.pvalue)
    delta = 2 * u / (len(candidate) * len(baseline)) - 1  # Cliff's delta, rank-biserial
    shift = float(np.median(candidate) - np.median(baseline))
    measured = f"Cliff's delta {delta:+.3f}, p = {p:.2g}, median {shift * 1000:+.1f} ms"
    values: dict[str, float | int | str | None] = {
        "u": u,
        "p_value": p,
        "cliffs_delta": delta,
        "median_shift_s": shift,
        "candidate_requests": len(candidate),
        "baseline_requests": len(baseline),
    }
    base_median = float(np.median(baseline))
    relative = shift / base_median if base_median > 0 else math.inf if shift > 0 else 0.0
    values["median_shift_ratio"] = relative
    if p >= settings.alpha:
        verdict, reason = Verdict.PASS, f"not significantly slower than the baseline (p = {p:.2g})"
    elif relative < settings.min_shift:
        verdict = Verdict.PASS
        reason = (
            f"significantly slower than the baseline but tinily: the median moved "
            f"{relative:+.1%}, under {settings.min_shift:.0%}"
        )
    elif delta >= settings.max_delta:
        verdict = Verdict.FAIL
        reason = f"significantly slower than the baseline, by a {_effect(delta)} effect"
    elif delta >= settings.negligible_delta:
        verdict = Verdict.WARN
        reason = f"significantly slower than the baseline, by a small effect (delta {delta:.3f})"
    else:
        verdict = Verdict.PASS
        reason = f"significantly slower than the baseline but negligibly (delta {delta:.3f})"
    return Judgement("statistical", verdict, measured, "", limit_text, reason, values)


def _effect(delta: float) -> str:
    return "large" if delta >= 0.474 else "medium"


def _report_notes(
    client: ClientRun | None, server: ServerRun | None, baseline: ClientRun | None
) -> list[str]:
    notes = ["Warnings alone pass (exit 0); an inconclusive objective exits 3, a failed one 1."]
    if client is None:
        notes.append("No Locust statistics: judged on the server side alone.")
    else:
        if client.requests is None:
            notes.append(
                "No per-request log (PREFIX_requests.csv): client p95s are Locust's rounded "
                "percentiles, without confidence bounds, and there is no statistical test."
            )
        if client.info is None:
            notes.append("No run.json: the load generator's CPU and request rate were not checked.")
    if server is None:
        notes.append(
            "No Prometheus: judged on the client side alone; client and server counts not compared."
        )
    else:
        notes.append(
            "The server p95 is interpolated in its histogram bucket, as histogram_quantile "
            "does; [brackets] show the bucket (client side: the p95's confidence bounds)."
        )
    if baseline is None:
        notes.append("No baseline run: relative and statistical judgements not made.")
    return notes


# --- pure: renderers ----------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%d %H:%M:%SZ")


def _pct(value: float | None, digits: int = 3) -> str:
    return _NA if value is None else f"{value * 100:.{digits}f}%"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return _NA
    if math.isinf(seconds):
        return "+Inf"
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def _signed_ms(seconds: float | None) -> str:
    if seconds is None:
        return _NA
    return f"{seconds * 1000:+.1f} ms"


def _heading(report: GateReport) -> str:
    return f"SLO gate: {report.verdict.value.upper()} (exit {report.exit_code})"


def _run_line(report: GateReport) -> str:
    parts = []
    if report.start and report.end:
        length = format_duration(max(1, round((report.end - report.start).total_seconds())))
        parts.append(f"{_when(report.start)} to {_when(report.end)} ({length})")
    info = report.info
    if info is not None:
        if info.profile:
            parts.append(f"profile {info.profile}")
        if info.users is not None:
            parts.append(f"{info.users} user" + ("" if info.users == 1 else "s"))
        if info.target_rps:
            parts.append(f"target {info.target_rps:g} requests/s")
    return "Run: " + (", ".join(parts) if parts else "window unknown (no run.json)")


def _sources_line(report: GateReport) -> str:
    return (
        f"Locust: {report.locust or 'none'}; Prometheus: {report.prometheus or 'none'}; "
        f"baseline: {report.baseline or 'none'}"
    )


_Table = tuple[str, tuple[str, ...], list[tuple[str, ...]]]


def _tables(report: GateReport) -> list[_Table]:
    verdicts: list[tuple[str, ...]] = [
        (o.slo_id, o.name, j.kind, j.verdict.value, j.measured, j.bounds, j.limit)
        for o in report.objectives
        for j in o.judgements
    ]
    sides: list[tuple[str, ...]] = []
    for s in report.slos:
        difference = s.count_difference
        sides.append(
            (
                s.id,
                _count_text(s.client),
                _count_text(s.server),
                _NA if difference is None else f"{difference:+.2%}",
                _p95_cell(s.client),
                _p95_cell(s.server),
                _signed_ms(s.p95_difference_s),
                _pct(s.client.error_ratio) if s.client else _NA,
                _pct(s.server.error_ratio) if s.server else _NA,
            )
        )
    budgets: list[tuple[str, ...]] = [
        (
            s.id,
            f"{s.objective:g}%",
            _pct(s.budget.error_ratio) if s.budget else _NA,
            f"{s.budget.burn_rate:.2f}" if s.budget else _NA,
            f"{_pct(s.budget.budget_per_day, 2)} of {format_duration(s.period_s)}"
            if s.budget
            else _NA,
            s.budget.side if s.budget else _NA,
        )
        for s in report.slos
    ]
    return [
        (
            "Judgements",
            ("SLO", "Objective", "Judgement", "Verdict", "Measured", "Bounds (95%)", "Limit"),
            verdicts,
        ),
        (
            "Client (Locust) and server (Prometheus)",
            (
                "SLO",
                "Requests client",
                "Requests server",
                "Count diff",
                "p95 client",
                "p95 server",
                "p95 client - server",
                "Error ratio client",
                "Error ratio server",
            ),
            sides,
        ),
        (
            "Error budget at the run's rate",
            ("SLO", "Objective", "SLI error ratio", "Burn rate", "Budget per day", "Side"),
            budgets,
        ),
    ]


def _p95_cell(side: SideSummary | None) -> str:
    """``74 ms [71, 76]``: the p95 and, in ms, what it may be (bounds, rounding, bucket)."""
    if side is None or (side.p95_s is None and side.p95_low_s is None):
        return _NA
    low, high = side.p95_low_s, side.p95_high_s
    bounds = f" [{_bare_ms(low)}, {_bare_ms(high)}]" if low is not None or high is not None else ""
    if side.p95_s is None:
        return f"{_bare_ms(low)} to {_bare_ms(high)} ms"
    return _ms(side.p95_s) + bounds


def _bare_ms(seconds: float | None) -> str:
    return _ms(seconds).removesuffix(" ms")


def _count_text(side: SideSummary | None) -> str:
    return _NA if side is None else str(side.requests)


def _reasons(report: GateReport) -> list[str]:
    return [
        f"{o.slo_id} {o.name}, {j.kind}: {j.verdict.value}: {j.reason}."
        for o in report.objectives
        for j in o.judgements
    ]


def _slo_notes(report: GateReport) -> list[str]:
    return [f"{s.id}: {note}." for s in report.slos for note in s.notes]


def render_table(report: GateReport) -> str:
    """The report as aligned text tables for a terminal."""
    lines = [_heading(report), _run_line(report), _sources_line(report)]
    for title, headers, rows in _tables(report):
        lines.extend(["", title])
        widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
        for row in (headers, *rows):
            cells = (c.ljust(w) for c, w in zip(row, widths, strict=True))
            lines.append("  ".join(cells).rstrip())
    lines.extend(["", "Why"])
    lines.extend(f"- {line}" for line in _reasons(report))
    lines.extend(["", "Notes"])
    lines.extend(f"- {note}" for note in (*report.notes, *_slo_notes(report)))
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(report: GateReport) -> str:
    """The report as Markdown, for a CI job summary."""
    lines = [f"## {_heading(report)}", "", _run_line(report) + "  ", _sources_line(report)]
    for title, headers, rows in _tables(report):
        lines.extend(["", f"### {title}", ""])
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "---|" * len(headers))
        lines.extend("| " + " | ".join(_md(c) for c in row) + " |" for row in rows)
    lines.extend(["", "### Why", ""])
    lines.extend(f"- {_md(line)}" for line in _reasons(report))
    lines.extend(["", "### Notes", ""])
    lines.extend(f"- {_md(note)}" for note in (*report.notes, *_slo_notes(report)))
    return "\n".join(lines) + "\n"


def _side_json(side: SideSummary | None) -> dict[str, Any] | None:
    if side is None:
        return None
    return {
        "source": side.source,
        "requests": side.requests,
        "errors": side.errors,
        "error_ratio": side.error_ratio,
        "p95_s": side.p95_s,
        "p95_lower_bound_s": side.p95_low_s,
        "p95_upper_bound_s": _finite(side.p95_high_s),
    }


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _judgement_json(judgement: Judgement) -> dict[str, Any]:
    values = {k: _finite(v) if isinstance(v, float) else v for k, v in judgement.values.items()}
    return {
        "kind": judgement.kind,
        "verdict": judgement.verdict.value,
        "measured": judgement.measured,
        "bounds": judgement.bounds,
        "limit": judgement.limit,
        "reason": judgement.reason,
        "values": values,
    }


def render_json(report: GateReport) -> str:
    """The report as JSON: ratios 0..1, latencies in seconds, null where there is no value."""
    info = report.info
    data = {
        "verdict": report.verdict.value,
        "exit_code": report.exit_code,
        "start": _iso(report.start) if report.start else None,
        "end": _iso(report.end) if report.end else None,
        "run": None
        if info is None
        else {
            "profile": info.profile,
            "host": info.host,
            "users": info.users,
            "target_rps": info.target_rps,
            "cpu_warning": info.cpu_warning,
            "locust_version": info.locust_version,
            "locust_exit_code": info.locust_exit_code,
        },
        "sources": {
            "locust": report.locust,
            "prometheus": report.prometheus,
            "baseline": report.baseline,
        },
        "settings": dict(report.settings.__dict__),
        "slos": [
            {
                "id": s.id,
                "name": s.name,
                "objective_percent": s.objective,
                "period": format_duration(s.period_s),
                "verdict": _worst(o.verdict for o in s.objectives).value,
                "client": _side_json(s.client),
                "server": _side_json(s.server),
                "baseline": _side_json(s.baseline),
                "count_difference": _finite(s.count_difference),
                "p95_difference_s": s.p95_difference_s,
                "budget": None
                if s.budget is None
                else {
                    "error_ratio": s.budget.error_ratio,
                    "burn_rate": s.budget.burn_rate,
                    "budget_per_day": s.budget.budget_per_day,
                    "side": s.budget.side,
                },
                "objectives": [
                    {
                        "name": o.name,
                        "verdict": o.verdict.value,
                        "judgements": [_judgement_json(j) for j in o.judgements],
                    }
                    for o in s.objectives
                ],
                "notes": list(s.notes),
            }
            for s in report.slos
        ],
        "notes": list(report.notes),
    }
    return json.dumps(data, indent=2) + "\n"


def render_junit(report: GateReport) -> str:
    """JUnit XML, one test case per objective: fail -> failure, inconclusive -> error,
    nothing checked -> skipped; a warning passes with its reason in system-out."""
    suite = TestSuite("sre slo gate")
    for objective in report.objectives:
        case = TestCase(f"{objective.slo_id}: {objective.name}", objective.slo_id, 0.0)
        deciding = [j for j in objective.judgements if j.verdict is objective.verdict]
        message = "; ".join(f"{j.kind}: {j.reason}" for j in deciding)
        result: Callable[..., Any] | None = {
            Verdict.FAIL: Failure,
            Verdict.INCONCLUSIVE: Error,
            Verdict.NOT_CHECKED: Skipped,
        }.get(objective.verdict)
        if result is not None:
            element = result(message, objective.verdict.value)
            case.result = [element]
        case.system_out = "\n".join(
            f"{j.kind}: {j.verdict.value}: {j.measured}; limit {j.limit}; {j.reason}"
            for j in objective.judgements
        )
        suite.add_testcase(case)
    suite.update_statistics()
    document = JUnitXml("sre slo gate")
    document.add_testsuite(suite)
    document.update_statistics()
    xml = document.tostring()
    text = xml.decode("utf-8") if isinstance(xml, bytes) else str(xml)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + text + "\n"
