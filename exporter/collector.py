"""One scrape: MySQL server collectors, business queries and the exporter's own metrics.

A scrape always answers, with ``mysql_up`` and the self-metrics:

- without a connection it says ``mysql_up 0`` and ``mysql_exporter_last_scrape_error 1``
  and counts the error under ``collector="connection"``; the next scrape connects again;
- a collector that raises anything reports ``mysql_exporter_collector_success 0``, is
  counted under its ``collect.<name>`` and logged; the other collectors still report;
- a business query that fails is counted and left out (exporter.business);
- anything else that goes wrong (a bug of the exporter's own) is logged with where it was
  raised and sets ``mysql_exporter_last_scrape_error 1``; what was collected is kept.

Every error counter has a series from the first scrape, at 0, so ``rate()`` and
``increase()`` see the first error. Everything a scrape runs is bounded by its budget
(Prometheus' ``X-Prometheus-Scrape-Timeout-Seconds`` less a safety offset).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.business import QueryRunner
from exporter.config import QuerySpec
from exporter.db import MySQLClient
from exporter.failures import failure_fields
from exporter.mysql import SCRAPERS, Scraper

__all__ = ["Exporter"]

log = logging.getLogger("elibrary.exporter")

#: the ``collector`` label of errors reaching MySQL, as mysqld_exporter names it
CONNECTION = "connection"


class Exporter:
    """State shared by all scrapes: the client, the query runner and the error counts.

    ``scrapers`` are the MySQL server collectors (mysqld_exporter's defaults unless given).
    The business queries run only when the credentials name a database; without one
    ``elibrary_exporter_queries_enabled`` is 0 and only server metrics are served.
    """

    def __init__(
        self,
        client: MySQLClient,
        queries: Iterable[QuerySpec],
        scrapers: Sequence[Scraper] = SCRAPERS,
    ) -> None:
        self.client = client
        self.scrapers = tuple(scrapers)
        self.runner = QueryRunner(tuple(queries), redact=client.target.redact)
        self.queries_enabled = client.target.database is not None
        self._lock = threading.Lock()
        self._scrapes = 0
        # every label value there can be, at 0, so the counter's series exist before an error
        self._errors = dict.fromkeys(
            [CONNECTION, *(_collector_label(scraper) for scraper in self.scrapers)], 0
        )

    def scrape(self, budget_s: float) -> list[Metric]:
        """Every metric family of one scrape, within ``budget_s`` seconds; never raises
        for anything the database, a collector or a query does."""
        deadline = time.monotonic() + budget_s
        with self._lock:
            self._scrapes += 1
        families: list[Metric] = []
        durations: dict[str, float] = {}
        failed: list[str] = []
        started = time.perf_counter()
        up = False
        broken = False
        try:
            with self.client.connection(verify=True) as conn:
                durations[CONNECTION] = time.perf_counter() - started
                up = True
                # started first: they run on their own connections while the collectors run
                pending = (
                    self.runner.start(self._business_query, deadline)
                    if self.queries_enabled
                    else []
                )
                for scraper in self.scrapers:
                    families.extend(self._collect(scraper, conn, deadline, durations, failed))
                families.extend(self.runner.finish(pending, deadline))
        except Exception as exc:
            fields = failure_fields(exc, self.client.target.redact)
            if not up:
                failed.append(CONNECTION)
                log.warning(
                    "cannot reach MySQL", extra={"address": self.client.target.address, **fields}
                )
            else:  # not the database's doing: one of ours, and where it happened tells which
                broken = True
                log.error("scrape failed outside the collectors", extra=fields)
        with self._lock:
            for label in failed:
                self._errors[label] += 1
        families.extend(self._self_metrics(up, durations, failed, broken))
        return families

    def _collect(
        self,
        scraper: Scraper,
        conn: Any,
        deadline: float,
        durations: dict[str, float],
        failed: list[str],
    ) -> list[Metric]:
        """One collector's families, or none when it raised (counted and logged)."""
        label = _collector_label(scraper)
        began = time.perf_counter()

        def run(sql: str) -> Any:
            return conn.query(sql, _remaining(deadline))

        try:
            return scraper.collect(run)
        except Exception as exc:  # a collector's failure is its own, never the scrape's
            failed.append(label)
            log.warning(
                "collector failed",
                extra={"collector": label, **failure_fields(exc, self.client.target.redact)},
            )
            return []
        finally:
            durations[label] = time.perf_counter() - began

    def _business_query(self, sql: str, timeout: float) -> Any:
        # the scrape's own connection was verified first; see MySQLClient.connection
        with self.client.connection() as conn:
            return conn.query(sql, timeout)

    def _self_metrics(
        self, up: bool, durations: dict[str, float], failed: list[str], broken: bool
    ) -> list[Metric]:
        mysql_up = GaugeMetricFamily("mysql_up", "Whether the MySQL server is up.")
        mysql_up.add_metric([], 1.0 if up else 0.0)
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
        enabled = GaugeMetricFamily(
            "elibrary_exporter_queries_enabled",
            "Whether the business queries run (1), or are not configured because the MySQL "
            "credentials name no database (0).",
        )
        with self._lock:
            scrapes.add_metric([], self._scrapes)
            for label, count in sorted(self._errors.items()):
                errors.add_metric([label], count)
        last.add_metric([], 1.0 if failed or broken else 0.0)
        for label, seconds in durations.items():
            duration.add_metric([label], seconds)
            success.add_metric([label], 0.0 if label in failed else 1.0)
        enabled.add_metric([], 1.0 if self.queries_enabled else 0.0)
        # the query self-metrics even when the queries do not run: every error counter has
        # its series from the first scrape, whatever the configuration
        return [
            mysql_up,
            scrapes,
            errors,
            last,
            duration,
            success,
            enabled,
            *self.runner.self_metrics(),
        ]

    def close(self) -> None:
        """Stop the query threads and close connections."""
        self.runner.close()
        self.client.close()


def _collector_label(scraper: Scraper) -> str:
    return f"collect.{scraper.name}"


def _remaining(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())
