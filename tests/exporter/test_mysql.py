"""mysqld_exporter's rules for turning server output into metrics, as table tests."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.core import Metric

from exporter.business import QueryResult, build_business_metric
from exporter.config import QuerySpec
from exporter.mysql import (
    build_global_status,
    build_global_variables,
    build_innodb_cmpmem,
    build_query_response_time,
    build_slave_status,
    parse_status,
)


def flat(families: list[Metric]) -> dict[str, tuple[str, dict[str, str], float]]:
    return {
        s.name + str(sorted(s.labels.items())): (f.type, s.labels, s.value)
        for f in families
        for s in f.samples
    }


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("42", 42.0),
        ("1.5e3", 1500.0),
        ("ON", 1.0),
        ("off", 0.0),
        ("Yes", 1.0),
        ("Disabled", 0.0),
        ("Primary", 1.0),
        ("non-Primary", 0.0),
        ("Connecting", 0.0),
        ("2026-01-02 03:04:05", 1767323045.0),
        ("mysql-bin.000042", None),
        ("10.11.19", None),
        ("", None),
        ("abc", None),
        (None, None),
        (7, 7.0),
    ],
    ids=[
        "integer",
        "exponent",
        "ON",
        "off",
        "Yes",
        "Disabled",
        "Primary",
        "non-Primary",
        "Connecting",
        "datetime",
        "log file name skipped",
        "version skipped",
        "empty",
        "word",
        "NULL",
        "driver integer",
    ],
)
def test_values_are_read_like_mysqld_exporter(raw: Any, value: float | None) -> None:
    assert parse_status(raw) == value


def test_global_status_groups_into_labelled_families() -> None:
    rows = [
        ("Com_select", "10"),
        ("Com_insert", "2"),
        ("Handler_read_key", "7"),
        ("Connection_errors_max_connections", "1"),
        ("Innodb_buffer_pool_pages_data", "100"),
        ("Innodb_buffer_pool_pages_dirty", "3"),
        ("Innodb_buffer_pool_pages_flushed", "9"),
        ("Innodb_buffer_pool_pages_total", "200"),
        ("Innodb_rows_read", "50"),
        ("Performance_schema_mutex_classes_lost", "0"),
        ("Uptime", "99"),
        ("Rpl_status", "AUTH_MASTER"),
        ("Threads_connected", "4"),
    ]
    got = flat(build_global_status(rows))
    assert got["mysql_global_status_commands_total[('command', 'select')]"][::2] == (
        "counter",
        10.0,
    )
    assert got["mysql_global_status_handlers_total[('handler', 'read_key')]"][2] == 7.0
    assert "mysql_global_status_connection_errors_total[('error', 'max_connections')]" in got
    assert got["mysql_global_status_buffer_pool_pages[('state', 'data')]"][::2] == ("gauge", 100)
    assert got["mysql_global_status_buffer_pool_dirty_pages[]"][2] == 3.0
    assert "mysql_global_status_buffer_pool_page_changes_total[('operation', 'flushed')]" in got
    assert not any("pages_total" in key or "_total[('state'" in key for key in got)
    assert got["mysql_global_status_innodb_row_ops_total[('operation', 'read')]"][2] == 50
    assert (
        "mysql_global_status_performance_schema_lost_total[('instrumentation', "
        "'mutex_classes_lost')]" in got
    )
    assert got["mysql_global_status_uptime[]"][::2] == ("unknown", 99.0)
    assert not any("rpl_status" in key for key in got)


def test_global_variables_give_gauges_version_and_isolation() -> None:
    rows = [
        ("max_connections", "151"),
        ("version", "10.11.19-MariaDB"),
        ("version_comment", "Debian 12"),
        ("innodb_version", "10.11.19"),
        ("transaction_isolation", "REPEATABLE-READ"),
        ("read_only", "OFF"),
        ("datadir", "/var/lib/mysql/"),
    ]
    got = flat(build_global_variables(rows))
    assert got["mysql_global_variables_max_connections[]"][::2] == ("gauge", 151.0)
    assert got["mysql_global_variables_read_only[]"][2] == 0.0
    version = next(v for k, v in got.items() if k.startswith("mysql_version_info"))
    assert version[1] == {
        "innodb_version": "10.11.19",
        "version": "10.11.19-MariaDB",
        "version_comment": "Debian 12",
    }
    assert "mysql_transaction_isolation[('level', 'REPEATABLE-READ')]" in got
    assert not any("datadir" in key for key in got)


def test_replica_status_is_labelled_by_source_and_channel() -> None:
    columns = [
        "Connection_name",
        "Master_Host",
        "Slave_IO_Running",
        "Seconds_Behind_Master",
        "Master_Log_File",
    ]
    got = flat(build_slave_status(columns, [("", "db1", "Yes", 12, "bin.000003")]))
    key = (
        "mysql_slave_status_seconds_behind_master[('channel_name', ''), "
        "('connection_name', ''), ('master_host', 'db1'), ('master_uuid', '')]"
    )
    assert got[key][2] == 12.0
    assert any(k.startswith("mysql_slave_status_slave_io_running") for k in got)
    assert not any("master_log_file" in k for k in got)
    assert build_slave_status(columns, []) == []  # not a replica: nothing at all


def test_cmpmem_relocation_time_is_scaled_like_mysqld_exporter() -> None:
    got = flat(build_innodb_cmpmem([(1024, 0, 5, 6, 7, 3000)]))
    key = (
        "mysql_info_schema_innodb_cmpmem_relocation_time_seconds_total"
        "[('buffer_pool', '0'), ('page_size', '1024')]"
    )
    assert got[key][2] == 3.0


def test_query_response_time_is_a_cumulative_histogram() -> None:
    rows = [("0.000001", 1, "0.000001"), ("0.001000", 4, "0.002"), ("TOO LONG", 2, "10")]
    family = build_query_response_time("query_response_time_seconds", "h", rows)
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("mysql_info_schema_query_response_time_seconds_bucket", "1e-06")] == 1
    assert samples[("mysql_info_schema_query_response_time_seconds_bucket", "0.001")] == 5
    assert samples[("mysql_info_schema_query_response_time_seconds_count", None)] == 7


def test_a_business_result_becomes_one_family() -> None:
    spec = QuerySpec(
        name="elibrary_members", help="M.", type="gauge", sql="SELECT 1", labels=("status",)
    )
    family = build_business_metric(spec, QueryResult(((("active",), 3.0),), 0.0))
    assert [(s.labels, s.value) for s in family.samples] == [({"status": "active"}, 3.0)]
