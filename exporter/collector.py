"""One scrape: MySQL server collectors, business queries and the exporter's own metrics.

A scrape never fails because the database does: without a connection it answers
``mysql_up 0`` and ``mysql_exporter_last_scrape_error 1`` and counts the error; the next
scrape connects again. Everything a scrape runs is bounded by its budget (Prometheus'
``X-Prometheus-Scrape-Timeout-Seconds`` less a safety offset).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.business import QueryRunner, build_business_metric
from exporter.config import QuerySpec
from exporter.db import MySQLClient, QueryFailed
from exporter.mysql import SCRAPERS

__all__ = ["Exporter"]

log = logging.getLogger("elibrary.exporter")

#: business queries run side by side, each on its own connection
_QUERY_THREADS = 4


class Exporter:
    """State shared by all scrapes: the client, the query runner and the error counts."""

    def __init__(self, client: MySQLClient, queries: Iterable[QuerySpec]) -> None:
        self.client = client
        self.runner = QueryRunner(tuple(queries))
        self._pool = ThreadPoolExecutor(_QUERY_THREADS, thread_name_prefix="business-query")
        self._lock = threading.Lock()
        self._scrapes = 0
        self._errors: dict[str, int] = {}

    def scrape(self, budget_s: float) -> list[Metric]:
        """Every metric family of one scrape, within ``budget_s`` seconds."""
        deadline = time.monotonic() + budget_s
        with self._lock:
            self._scrapes += 1
        families: list[Metric] = []
        durations: dict[str, float] = {}
        failed: list[str] = []
        started = time.perf_counter()
        up = 0.0
        try:
            with self.client.connection(verify=True) as conn:
                durations["connection"] = time.perf_counter() - started
                up = 1.0
                pending = self._start_business_queries(deadline)
                for scraper in SCRAPERS:
                    label = f"collect.{scraper.name}"
                    began = time.perf_counter()

                    def run(sql: str, conn: Any = conn) -> Any:
                        return conn.query(sql, _remaining(deadline))

                    try:
                        families.extend(scraper.collect(run))
                    except QueryFailed as exc:
                        failed.append(label)
                        log.warning(
                            "collector failed", extra={"collector": label, "error": str(exc)}
                        )
                    durations[label] = time.perf_counter() - began
                families.extend(self._finish_business_queries(pending, deadline))
        except QueryFailed as exc:
            if up == 0.0:
                failed.append("connection")
                log.warning(
                    "cannot reach MySQL",
                    extra={"address": self.client.target.address, "error": str(exc)},
                )
        with self._lock:
            for label in failed:
                self._errors[label] = self._errors.get(label, 0) + 1
        families.extend(self._self_metrics(up, durations, failed))
        return families

    def _start_business_queries(self, deadline: float) -> list[tuple[QuerySpec, Future]]:
        def one(spec: QuerySpec) -> Any:
            def query(sql: str, timeout: float) -> Any:
                # the scrape's own connection was verified first; see MySQLClient.connection
                with self.client.connection() as conn:
                    return conn.query(sql, timeout)

            return self.runner.run(spec, query, _remaining(deadline))

        return [(spec, self._pool.submit(one, spec)) for spec in self.runner.specs]

    def _finish_business_queries(
        self, pending: list[tuple[QuerySpec, Future]], deadline: float
    ) -> list[Metric]:
        families = []
        for spec, future in pending:
            try:
                result = future.result(timeout=_remaining(deadline) + 1.5)
            except Exception:
                result = None
            if result is None:
                log.warning(
                    "business query failed",
                    extra={"query": spec.name, "error": self.runner.last_error(spec.name)},
                )
                continue
            families.append(build_business_metric(spec, result))
        families.extend(self.runner.self_metrics())
        return families

    def _self_metrics(
        self, up: float, durations: dict[str, float], failed: list[str]
    ) -> list[Metric]:
        mysql_up = GaugeMetricFamily("mysql_up", "Whether the MySQL server is up.")
        mysql_up.add_metric([], up)
        scrapes = CounterMetricFamily(
            "mysql_exporter_scrapes_total", "Total number of times MySQL was scraped for metrics."
        )
        errors = CounterMetricFamily(
            "mysql_exporter_scrape_errors_total",
            "Total number of times an error occurred scraping a MySQL.",
            labels=["collector"],
        )
        last = GaugeMetricFamily(
            "mysql_exporter_last_scrape_error",
            "Whether the last scrape of metrics from MySQL resulted in an error "
            "(1 for error, 0 for success).",
        )
        duration = GaugeMetricFamily(
            "mysql_exporter_collector_duration_seconds",
            "Collector time duration.",
            labels=["collector"],
        )
        success = GaugeMetricFamily(
            "mysql_exporter_collector_success",
            "Whether each collector succeeded in the last scrape.",
            labels=["collector"],
        )
        with self._lock:
            scrapes.add_metric([], self._scrapes)
            for label, count in sorted(self._errors.items()):
                errors.add_metric([label], count)
        last.add_metric([], 1.0 if failed else 0.0)
        for label, seconds in durations.items():
            duration.add_metric([label], seconds)
            success.add_metric([label], 0.0 if label in failed else 1.0)
        return [mysql_up, scrapes, errors, last, duration, success]

    def close(self) -> None:
        """Stop the query threads and close connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


def _remaining(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())
