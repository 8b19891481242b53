"""MySQL + business metrics exporter (DESIGN.md "Exporter"): a drop-in for mysqld_exporter's
default collectors plus the library's ``elibrary_*`` metrics from SQL declared in YAML."""

from __future__ import annotations

from collections.abc import Sequence

from exporter.business import check_result_shape
from exporter.collector import Exporter
from exporter.config import (
    DEFAULT_QUERIES,
    ConfigError,
    MySQLTarget,
    QuerySpec,
    load_mysql_target,
    load_queries,
    missing_database,
)
from exporter.db import MySQLClient, QueryFailed

__all__ = [
    "DEFAULT_QUERIES",
    "ConfigError",
    "Exporter",
    "MySQLClient",
    "MySQLTarget",
    "QueryFailed",
    "QuerySpec",
    "check_queries",
    "load_mysql_target",
    "load_queries",
]


def check_queries(
    client: MySQLClient, specs: Sequence[QuerySpec], file: str, *, require_database: bool = False
) -> None:
    """Run every query once; ConfigError naming each one that fails or has the wrong shape.

    QueryFailed (not ConfigError) when the server cannot be reached at all: that says
    nothing about the file.

    Credentials without a database leave nothing to run but the connection. At ``serve``
    start-up that is no error: a my.cnf written for mysqld_exporter must keep working, and
    the exporter then serves server metrics only (exporter.server logs how to add the
    queries). With ``require_database``, what ``sre exporter check`` needs since it exists
    to run the queries, it is a ConfigError naming the options file and its missing
    ``database``, raised before connecting as bad input is.
    """
    if client.target.database is None and require_database:
        raise missing_database(client.target)
    with client.connection():
        pass  # connect first, so an unreachable server is not blamed on every query
    if client.target.database is None:
        return
    problems: list[ConfigError] = []
    for index, spec in enumerate(specs):
        try:
            with client.connection() as conn:
                columns, rows = conn.query(spec.sql, spec.timeout_s)
            check_result_shape(spec, columns, rows)
        except QueryFailed as exc:
            problems.append(ConfigError(file, f"queries[{index}] ({spec.name})", str(exc)))
    if problems:
        raise ConfigError(problems[0].file, problems[0].entry, problems[0].problem, problems[1:])
