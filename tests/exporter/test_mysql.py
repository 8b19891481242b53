"""mysqld_exporter's rules for turning server output into metrics, as table tests."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.core import Metric

from exporter.business import QueryResult, build_business_metric
from exporter.config import QuerySpec
from exporter.db import QueryFailed
from exporter.mysql import (
    SCRAPERS,
    _names_and_values,
    build_global_status,
    build_global_variables,
    build_innodb_cmpmem,
    build_query_response_time,
    build_slave_status,
    legacy_column,
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


@pytest.mark.parametrize(
    ("column", "legacy"),
    [
        ("Seconds_Behind_Source", "Seconds_Behind_Master"),
        ("Replica_SQL_Running", "Slave_SQL_Running"),
        ("Relay_Source_Log_File", "Relay_Master_Log_File"),
        ("Get_Source_public_key", "Get_Master_public_key"),
        ("Replicate_Do_DB", "Replicate_Do_DB"),
        ("Slave_IO_Running", "Slave_IO_Running"),
    ],
)
def test_replica_columns_keep_their_slave_names(column: str, legacy: str) -> None:
    assert legacy_column(column) == legacy


# SHOW SLAVE STATUS (MySQL 5.7) and SHOW REPLICA STATUS (MySQL 8.4) of one replica, as the
# two reference manuals print them.
_SLAVE_57 = {
    "Slave_IO_State": "Waiting for master to send event",
    "Master_Host": "127.0.0.1",
    "Master_Port": 13000,
    "Read_Master_Log_Pos": 927,
    "Slave_IO_Running": "Yes",
    "Slave_SQL_Running": "Yes",
    "Replicate_Do_DB": "",
    "Exec_Master_Log_Pos": 927,
    "Seconds_Behind_Master": 0,
    "Master_Server_Id": 1,
    "Master_UUID": "3e11fa47-71ca-11e1-9e33-c80aa9429562",
    "Channel_Name": "",
}
_REPLICA_84 = {
    "Replica_IO_State": "Waiting for source to send event",
    "Source_Host": "127.0.0.1",
    "Source_Port": 13000,
    "Read_Source_Log_Pos": 927,
    "Replica_IO_Running": "Yes",
    "Replica_SQL_Running": "Yes",
    "Replicate_Do_DB": "",
    "Exec_Source_Log_Pos": 927,
    "Seconds_Behind_Source": 0,
    "Source_Server_Id": 1,
    "Source_UUID": "3e11fa47-71ca-11e1-9e33-c80aa9429562",
    "Channel_Name": "",
}


def test_mysql_84_replica_status_reads_as_mysql_57_slave_status() -> None:
    def build(row: dict[str, object]) -> dict[str, tuple[str, dict[str, str], float]]:
        return flat(build_slave_status(list(row), [tuple(row.values())]))

    legacy = build(_SLAVE_57)
    assert build(_REPLICA_84) == legacy
    assert any(
        k.startswith("mysql_slave_status_seconds_behind_master") and "'127.0.0.1'" in k
        for k in legacy
    )


@pytest.mark.parametrize(
    ("answers", "asked"),
    [
        ({"SHOW ALL SLAVES STATUS"}, ["SHOW ALL SLAVES STATUS"]),
        ({"SHOW SLAVE STATUS"}, ["SHOW ALL SLAVES STATUS", "SHOW SLAVE STATUS"]),
        (
            {"SHOW REPLICA STATUS"},
            ["SHOW ALL SLAVES STATUS", "SHOW SLAVE STATUS", "SHOW REPLICA STATUS"],
        ),
    ],
    ids=["MariaDB", "MySQL 5.7 to 8.3", "MySQL 8.4"],
)
def test_replica_status_statement_falls_back_in_order(answers: set[str], asked: list[str]) -> None:
    seen: list[str] = []

    def query(sql: str) -> tuple[list[str], list[tuple[object, ...]]]:
        seen.append(sql)
        if sql not in answers:
            raise QueryFailed("ProgrammingError 1064: You have an error in your SQL syntax")
        return list(_REPLICA_84), [tuple(_REPLICA_84.values())]

    slave_status = next(s for s in SCRAPERS if s.name == "slave_status")
    assert slave_status.collect(query)
    assert seen == asked


_SHOWN = [("Aborted_clients", "3"), ("Com_select", "12")]


@pytest.mark.parametrize(
    ("packed_answer", "rows"),
    [
        (
            [(2, "ABORTED_CLIENTS\t3\nCOM_SELECT\t12")],
            [("ABORTED_CLIENTS", "3"), ("COM_SELECT", "12")],
        ),
        (QueryFailed("ProgrammingError 1109: Unknown table 'GLOBAL_STATUS'"), _SHOWN),
        ([(3, "ABORTED_CLIENTS\t3\nCOM_SELECT\t12")], _SHOWN),
        ([(2, "ABORTED_CLIENTS\t3\nCOM_SEL")], _SHOWN),
        ([(2, "A\tB\tC\nCOM_SELECT\t12")], _SHOWN),
        ([(0, None)], _SHOWN),
    ],
    ids=[
        "MariaDB, packed",
        "MySQL 8, no view",
        "a NULL row left out",
        "cut at group_concat_max_len",
        "separator in a value",
        "empty view",
    ],
)
def test_status_is_read_packed_or_else_shown(packed_answer: object, rows: list[tuple]) -> None:
    def query(sql: str) -> tuple[list[str], list[tuple[object, ...]]]:
        if sql == "SHOW GLOBAL STATUS":
            return ["Variable_name", "Value"], list(_SHOWN)
        assert "information_schema.GLOBAL_STATUS" in sql
        if isinstance(packed_answer, Exception):
            raise packed_answer
        return ["count", "packed"], packed_answer  # type: ignore[return-value]

    got = _names_and_values(query, "GLOBAL_STATUS", "SHOW GLOBAL STATUS")
    assert [tuple(row) for row in got] == rows
