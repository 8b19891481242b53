"""eLibrary MySQL: the database under the service, from the exporter (mysqld_exporter 0.14's
names, so the mysqld-mixin alerts and this dashboard read the same series)."""

from __future__ import annotations

from typing import Any

from dashboards.house import (
    GREEN,
    ORANGE,
    RED,
    YELLOW,
    Inputs,
    Row,
    dashboard,
    query_variable,
    selector,
    stat,
    steps,
    sum_rate,
    target,
    timeseries,
    value_mapping,
)

UID = "elibrary-mysql"
DB = selector()
DATA_PAGES = selector('state="data"')


def _rate(metric: str, by: str = "", *matchers: str) -> str:
    return sum_rate(f"{metric}{selector(*matchers)}", by)


def build(inputs: Inputs) -> dict[str, Any]:
    overview = Row(
        "Now",
        [
            stat(
                "MySQL up",
                "Whether the exporter reached the server at its last scrape.",
                [target(f"min(mysql_up{DB})", "up")],
                unit="none",
                thresholds=steps(RED, (1, GREEN)),
                mappings=[value_mapping(0, "DOWN", RED), value_mapping(1, "UP", GREEN)],
                graph=False,
                width=4,
            ),
            stat(
                "Uptime",
                "Time since the server started.",
                [target(f"min(mysql_global_status_uptime{DB})", "uptime")],
                unit="dtdurations",
                thresholds=steps(ORANGE, (3600, GREEN)),
                graph=False,
                color_mode="value",
                width=4,
            ),
            stat(
                "Queries per second",
                "Statements the server executed per second (Queries status counter).",
                [target(_rate("mysql_global_status_queries"), "qps")],
                unit="ops",
                thresholds=steps(GREEN),
                color_mode="value",
                width=4,
            ),
            stat(
                "Connections used",
                "Connected threads as a share of max_connections: new clients are refused at 100%.",
                [
                    target(
                        f"max(mysql_global_status_threads_connected{DB} / "
                        f"mysql_global_variables_max_connections{DB})",
                        "used",
                    )
                ],
                unit="percentunit",
                decimals=1,
                thresholds=steps(GREEN, (0.75, ORANGE), (0.9, RED)),
                width=4,
            ),
            stat(
                "Buffer pool used",
                "InnoDB buffer pool pages holding data, as a share of all pages.",
                [
                    target(
                        f"sum(mysql_global_status_buffer_pool_pages{DATA_PAGES})"
                        f" / sum(mysql_global_status_buffer_pool_pages{DB})",
                        "used",
                    )
                ],
                unit="percentunit",
                decimals=1,
                thresholds=steps(GREEN, (0.95, YELLOW)),
                width=4,
            ),
            stat(
                "Version",
                "The server's version as it reports it.",
                [target(f"mysql_version_info{DB}", "{{version}}")],
                unit="none",
                text_mode="name",
                color_mode="none",
                graph=False,
                width=4,
            ),
        ],
    )
    connections = Row(
        "Connections and threads",
        [
            timeseries(
                "Connections against max_connections",
                "Connected threads, the most ever connected since start, and the limit.",
                [
                    target(f"sum(mysql_global_status_threads_connected{DB})", "connected"),
                    target(f"sum(mysql_global_status_max_used_connections{DB})", "max used"),
                    target(f"min(mysql_global_variables_max_connections{DB})", "max_connections"),
                ],
                unit="short",
                width=8,
            ),
            timeseries(
                "Threads",
                "Threads running a statement now, and threads cached for reuse.",
                [
                    target(f"sum(mysql_global_status_threads_running{DB})", "running"),
                    target(f"sum(mysql_global_status_threads_cached{DB})", "cached"),
                ],
                unit="short",
                width=8,
            ),
            timeseries(
                "Aborted connections",
                "Connection attempts that failed (bad credentials, timeouts) and clients "
                "that died without closing.",
                [
                    target(_rate("mysql_global_status_aborted_connects"), "aborted connects"),
                    target(_rate("mysql_global_status_aborted_clients"), "aborted clients"),
                ],
                unit="ops",
                width=8,
            ),
        ],
    )
    queries = Row(
        "Queries",
        [
            timeseries(
                "Commands by type",
                "The ten busiest statement types per second (Com_* counters).",
                [
                    target(
                        f"topk(10, {_rate('mysql_global_status_commands_total', 'command')} > 0)",
                        "{{command}}",
                    )
                ],
                unit="ops",
                stack=True,
            ),
            timeseries(
                "Slow queries",
                "Statements per second slower than long_query_time.",
                [target(_rate("mysql_global_status_slow_queries"), "slow")],
                unit="ops",
                thresholds=steps(GREEN, (1, ORANGE)),
            ),
        ],
    )
    innodb = Row(
        "InnoDB",
        [
            timeseries(
                "Buffer pool pages",
                "InnoDB buffer pool pages by state; little free space means the working set "
                "no longer fits.",
                [
                    target(
                        f"sum by (state) (mysql_global_status_buffer_pool_pages{DB})",
                        "{{state}}",
                    )
                ],
                unit="short",
                stack=True,
                width=8,
            ),
            timeseries(
                "Buffer pool reads from disk",
                "Logical read requests per second, and the ones the buffer pool could not "
                "serve and read from disk.",
                [
                    target(
                        _rate("mysql_global_status_innodb_buffer_pool_read_requests"),
                        "read requests",
                    ),
                    target(_rate("mysql_global_status_innodb_buffer_pool_reads"), "disk reads"),
                ],
                unit="ops",
                width=8,
            ),
            timeseries(
                "Row operations",
                "Rows read, written, updated and deleted per second (handler counters).",
                [
                    target(
                        _rate(
                            "mysql_global_status_handlers_total",
                            "handler",
                            'handler=~"write|update|delete|read_rnd_next|read_key|read_next"',
                        ),
                        "{{handler}}",
                    )
                ],
                unit="ops",
                width=8,
            ),
            timeseries(
                "Row lock waits",
                "Row lock waits per second and waiting now: contention between "
                "transactions (deadlock retries in the app start here).",
                [
                    target(_rate("mysql_global_status_innodb_row_lock_waits"), "waits/s"),
                    target(
                        f"sum(mysql_global_status_innodb_row_lock_current_waits{DB})",
                        "waiting now",
                    ),
                ],
                unit="short",
            ),
            timeseries(
                "Replication lag",
                "Seconds the replica's SQL thread is behind the source. Empty on a server "
                "that is not a replica.",
                [
                    target(
                        f"max by (instance) (mysql_slave_status_seconds_behind_master{DB})",
                        "{{instance}}",
                    ),
                    target(
                        f"min by (instance) (mysql_slave_status_slave_io_running{DB} * "
                        f"mysql_slave_status_slave_sql_running{DB})",
                        "{{instance}} threads running",
                    ),
                ],
                unit="s",
                thresholds=steps(GREEN, (30, ORANGE), (300, RED)),
                threshold_style="dashed",
            ),
        ],
    )
    backup_age = f"time() - max(elibrary_backup_last_success_timestamp_seconds{DB})"
    backups = Row(
        "Backups",
        [
            stat(
                "Last backup",
                "Time since the last successful backup (the daily CronJob records each "
                "one); the ElibraryBackupStale alert warns above 26 hours. Decades mean none "
                "has ever succeeded.",
                [target(backup_age, "age")],
                unit="dtdurations",
                thresholds=steps(GREEN, (25 * 3600, ORANGE), (26 * 3600, RED)),
                graph=False,
                width=6,
            ),
            timeseries(
                "Backup age",
                "Time since the last successful backup, over time: a saw tooth resetting "
                "once a day; a line climbing past the red threshold is a missed backup.",
                [target(backup_age, "age")],
                unit="s",
                thresholds=steps(GREEN, (26 * 3600, RED)),
                threshold_style="dashed",
                width=18,
            ),
        ],
    )
    exporter = Row(
        "Exporter",
        [
            timeseries(
                "Collector duration",
                "Seconds each collector took at the last scrape.",
                [
                    target(
                        f"max by (collector) (mysql_exporter_collector_duration_seconds{DB})",
                        "{{collector}}",
                    )
                ],
                unit="s",
                width=8,
            ),
            timeseries(
                "Scrape errors",
                "Collector errors per second, and whether the last scrape failed.",
                [
                    target(
                        _rate("mysql_exporter_scrape_errors_total", "collector"),
                        "{{collector}}",
                    ),
                    target(f"max(mysql_exporter_last_scrape_error{DB})", "last scrape failed"),
                ],
                unit="short",
                thresholds=steps(GREEN, (1, RED)),
                width=8,
            ),
            timeseries(
                "Business query errors",
                "Errors per second of the exporter's business queries (queries.yaml), per query.",
                [
                    target(
                        _rate("elibrary_exporter_query_errors_total", "query"),
                        "{{query}}",
                    )
                ],
                unit="ops",
                thresholds=steps(GREEN, (0.001, RED)),
                width=8,
            ),
        ],
    )
    return dashboard(
        UID,
        "eLibrary MySQL",
        "The eLibrary database: availability, load, connections, InnoDB, replication and "
        "the exporter's own health.",
        [overview, connections, queries, innodb, backups, exporter],
        variables=[
            query_variable("job", "Job", "mysql_up"),
            query_variable("instance", "Instance", "mysql_up", after=["job"]),
        ],
    )
