"""Business metrics from the SQL queries of the YAML file, with per-query self-metrics.

Each query runs on the runner's own threads with its own server-side timeout and, when it
declares ``cache``, at most once per cache interval however many scrapes come (one scrape
runs it, concurrent ones wait for that result). A query that fails in any way (a server
error, its statement timeout, a result of the wrong shape, an exception nobody expected,
or no answer before the scrape gives up waiting) is counted in
``elibrary_exporter_query_errors_total``, logged and left out of that scrape; the others
are not affected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.config import QuerySpec
from exporter.db import QueryFailed
from exporter.failures import failure_fields

__all__ = [
    "PendingQuery",
    "Query",
    "QueryResult",
    "QueryRunner",
    "build_business_metric",
    "check_result_shape",
]

log = logging.getLogger("elibrary.exporter")

#: (sql, timeout in seconds) -> column names and rows
Query = Callable[[str, float], tuple[list[str], list[tuple[Any, ...]]]]

#: business queries run side by side, each on its own connection
QUERY_THREADS = 4
#: how long past its deadline a scrape still waits for results: the server cuts a
#: statement off at the deadline and the client socket gives up a second later, so a run
#: that got its thread in time has ended by then
_WAIT_GRACE_S = 1.5


class ResultShapeError(QueryFailed):
    """A query answered, but not with the columns or row count its entry declares."""


@dataclass(frozen=True)
class QueryResult:
    """Label values and value of every row, and when they were read."""

    rows: tuple[tuple[tuple[str, ...], float], ...]
    read_at: float


def check_result_shape(spec: QuerySpec, columns: Sequence[str], rows: Sequence[Any]) -> None:
    """ResultShapeError unless the columns and row count fit the entry."""
    missing = [c for c in (*spec.labels, spec.value) if c not in columns]
    if missing:
        raise ResultShapeError(
            f"result has no column {', '.join(missing)} (columns: {', '.join(columns)})"
        )
    if len(rows) > spec.max_series:
        raise ResultShapeError(f"returned {len(rows)} rows, more than max_series {spec.max_series}")


def _to_result(
    spec: QuerySpec, columns: Sequence[str], rows: Sequence[Any], now: float
) -> QueryResult:
    check_result_shape(spec, columns, rows)
    index = {c: i for i, c in enumerate(columns)}
    out = []
    seen = set()
    for row in rows:
        labels = tuple("" if row[index[c]] is None else str(row[index[c]]) for c in spec.labels)
        raw = row[index[spec.value]]
        try:
            value = float(raw if raw is not None else "nan")
        except (TypeError, ValueError):
            raise ResultShapeError(f"column {spec.value} holds {raw!r}, not a number") from None
        if labels in seen:
            raise ResultShapeError(
                f"two rows have the labels {dict(zip(spec.labels, labels, strict=True))}"
            )
        seen.add(labels)
        out.append((labels, value))
    return QueryResult(tuple(out), now)


def build_business_metric(spec: QuerySpec, result: QueryResult) -> Metric:
    """The metric family of one query's result."""
    kind = CounterMetricFamily if spec.type == "counter" else GaugeMetricFamily
    family = kind(spec.name, spec.help, labels=list(spec.labels))
    for labels, value in result.rows:
        family.add_metric(list(labels), value)
    return family


@dataclass(frozen=True)
class PendingQuery:
    """One query a scrape started and has not collected yet."""

    spec: QuerySpec
    future: Future[QueryResult]


@dataclass
class _QueryState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    result: QueryResult | None = None
    errors: int = 0
    last_duration_s: float = 0.0
    last_success: float = 0.0
    last_error: str = ""


class QueryRunner:
    """Runs the business queries for scrapes and keeps their self-metrics.

    ``redact`` blanks the password out of error messages before they are logged
    (MySQLTarget.redact): a query callable may raise anything.
    """

    def __init__(
        self,
        specs: Sequence[QuerySpec],
        redact: Callable[[str], str] = lambda text: text,
        clock: Callable[[], float] = time.time,
        threads: int = QUERY_THREADS,
    ) -> None:
        self.specs = tuple(specs)
        self._redact = redact
        self._clock = clock
        self._state = {spec.name: _QueryState() for spec in self.specs}
        #: error counts are written by every scrape's thread; a run's own lock may be held
        #: for as long as a hung statement lasts, so counting takes this one
        self._counting = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="business-query")

    def start(self, query: Query, deadline: float) -> list[PendingQuery]:
        """Every query submitted to the query threads; each gets the budget left when it
        starts (``deadline`` is on the time.monotonic clock)."""

        def one(spec: QuerySpec) -> QueryResult:
            return self.run(spec, query, _remaining(deadline))

        return [PendingQuery(spec, self._pool.submit(one, spec)) for spec in self.specs]

    def finish(self, pending: Sequence[PendingQuery], deadline: float) -> list[Metric]:
        """The families of the queries that answered in time.

        Every other one is counted, logged with its reason and left out; a query still
        waiting for a thread is cancelled, the next scrape asks again.
        """
        done, _ = wait([item.future for item in pending], _remaining(deadline) + _WAIT_GRACE_S)
        families: list[Metric] = []
        for item in pending:
            failure: Exception
            if item.future in done:
                try:
                    families.append(build_business_metric(item.spec, item.future.result()))
                    continue
                except Exception as exc:  # whatever the query raised: counted, not a 500
                    failure = exc
            else:
                where = (
                    "waiting for a free query thread"
                    if item.future.cancel()
                    else "running, or waiting for another scrape's run of it"
                )
                failure = TimeoutError(f"the scrape gave up waiting; the query was still {where}")
            self._count_failure(item.spec, failure)
        return families

    def _count_failure(self, spec: QuerySpec, exc: BaseException) -> None:
        fields = failure_fields(exc, self._redact)
        state = self._state[spec.name]
        with self._counting:
            state.errors += 1
            state.last_error = fields["error"]
        log.warning("business query failed", extra={"query": spec.name, **fields})

    def run(self, spec: QuerySpec, query: Query, budget_s: float) -> QueryResult:
        """The query's rows (from cache when fresh enough); raises whatever made it fail.

        Failures are counted by ``finish``, once for each scrape the query is missing from.
        """
        state = self._state[spec.name]
        with state.lock:  # one run per query at a time: concurrent scrapes share it
            now = self._clock()
            if (
                state.result is not None
                and spec.cache_s
                and now - state.result.read_at < spec.cache_s
            ):
                return state.result
            timeout = max(0.05, min(spec.timeout_s, budget_s))
            started = time.perf_counter()
            try:
                columns, rows = query(spec.sql, timeout)
                result = _to_result(spec, columns, rows, now)
            except BaseException:
                state.result = None  # an older result must not be served as fresh
                raise
            finally:
                state.last_duration_s = time.perf_counter() - started
            state.result = result
            state.last_success = now
            return result

    def last_error(self, name: str) -> str:
        """Why a query last failed (its message, the password blanked out)."""
        return self._state[name].last_error

    def error_count(self, name: str) -> int:
        """How many scrapes left the query out because it failed."""
        return self._state[name].errors

    def self_metrics(self) -> list[Metric]:
        """Duration, errors and last success of every query."""
        duration = GaugeMetricFamily(
            "elibrary_exporter_query_duration_seconds",
            "How long the last run of each business query took.",
            labels=["query"],
        )
        errors = CounterMetricFamily(
            "elibrary_exporter_query_errors_total",
            "Scrapes that left a business query out because it failed, timed out, returned "
            "the wrong shape or did not answer in time.",
            labels=["query"],
        )
        success = GaugeMetricFamily(
            "elibrary_exporter_query_last_success_timestamp_seconds",
            "Unix time of the last successful run of each business query (0: never).",
            labels=["query"],
        )
        for spec in self.specs:
            state = self._state[spec.name]
            duration.add_metric([spec.name], state.last_duration_s)
            errors.add_metric([spec.name], state.errors)
            success.add_metric([spec.name], state.last_success)
        return [duration, errors, success]

    def close(self) -> None:
        """Stop the query threads; queued runs are cancelled."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _remaining(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())
