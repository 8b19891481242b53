"""The exporter's own renderer writes exactly what prometheus-client would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from exporter.exposition import render
from exporter.mysql import (
    build_global_status,
    build_global_variables,
    build_query_response_time,
    build_slave_status,
)


class _Fixed:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def reference(families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return generate_latest(registry)


def test_render_is_byte_identical_to_generate_latest() -> None:
    families = [
        *build_global_status(
            [
                ("Com_select", "10"),
                ("Uptime", "1e3"),
                ("Innodb_rows_read", "0"),
                ("Innodb_buffer_pool_pages_data", "-1.5"),
            ]
        ),
        *build_global_variables(
            [
                ("max_connections", "151"),
                ("version", 'v"1\\2\n3'),
                ("transaction_isolation", "READ-COMMITTED"),
            ]
        ),
        *build_slave_status(["Master_Host", "Seconds_Behind_Master"], [("db\\1", None)]),
        build_query_response_time(
            "query_response_time_seconds",
            "Help with \\ and\nnewline",
            [("0.000001", 1, "0.1"), ("1.0", 2, "3")],
        ),
    ]
    assert render(families) == reference(families)


def test_render_matches_a_real_scrape(library_db, start_exporter) -> None:  # type: ignore[no-untyped-def]
    from exporter import Exporter, MySQLClient, load_mysql_target, load_queries
    from exporter.config import DEFAULT_QUERIES

    exporter = Exporter(
        MySQLClient(load_mysql_target(str(library_db.my_cnf), env={})),
        load_queries(DEFAULT_QUERIES),
    )
    try:
        families = exporter.scrape(10)
    finally:
        exporter.close()
    assert len(families) > 500
    assert render(families) == reference(families)
