"""Business metrics from the SQL queries of the YAML file, with per-query self-metrics.

Each query runs with its own server-side timeout and, when it declares ``cache``, at most
once per cache interval however many scrapes come (one scrape runs it, concurrent ones
wait for that result). A failing, slow or oversized query is counted in
``elibrary_exporter_query_errors_total`` and left out of the scrape; the others are not
affected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.config import QuerySpec
from exporter.db import QueryFailed

__all__ = ["QueryResult", "QueryRunner", "build_business_metric", "check_result_shape"]

Query = Callable[[str, float], tuple[list[str], list[tuple[Any, ...]]]]


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


@dataclass
class _QueryState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    result: QueryResult | None = None
    errors: int = 0
    last_duration_s: float = 0.0
    last_success: float = 0.0
    last_error: str = ""


class QueryRunner:
    """Runs the business queries for scrapes and keeps their self-metrics."""

    def __init__(self, specs: Sequence[QuerySpec], clock: Callable[[], float] = time.time):
        self.specs = tuple(specs)
        self._clock = clock
        self._state = {spec.name: _QueryState() for spec in self.specs}

    def run(self, spec: QuerySpec, query: Query, budget_s: float) -> QueryResult | None:
        """The query's rows (from cache when fresh enough), or None when it failed."""
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
                state.result = _to_result(spec, columns, rows, now)
            except QueryFailed as exc:
                state.errors += 1
                state.last_error = str(exc)
                state.result = None
                return None
            finally:
                state.last_duration_s = time.perf_counter() - started
            state.last_success = now
            return state.result

    def last_error(self, name: str) -> str:
        """Why a query last failed, for logs and ``sre exporter check``."""
        return self._state[name].last_error

    def self_metrics(self) -> list[Metric]:
        """Duration, errors and last success of every query."""
        duration = GaugeMetricFamily(
            "elibrary_exporter_query_duration_seconds",
            "How long the last run of each business query took.",
            labels=["query"],
        )
        errors = CounterMetricFamily(
            "elibrary_exporter_query_errors_total",
            "Business query runs that failed, timed out or returned the wrong shape.",
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
