"""MySQL server metrics under prometheus mysqld_exporter's names, types and labels.

The default collectors of mysqld_exporter 0.14 (global_status, global_variables,
slave_status, info_schema.innodb_cmp, info_schema.innodb_cmpmem,
info_schema.query_response_time) are rebuilt here so community dashboards and the
mysqld-mixin alerts work unchanged. Each ``build_*`` function is pure (rows in, metric
families out); ``SCRAPERS`` pairs them with their SQL. Where mysqld_exporter's rules are
odd (e.g. values that look like log file names are skipped) they are kept, because
matching its output is the point.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.samples import Sample

__all__ = ["SCRAPERS", "Scraper", "parse_status"]

Rows = Sequence[Sequence[Any]]

_STATUS_GROUP = re.compile(
    r"^(com|handler|connection_errors|innodb_buffer_pool_pages|innodb_rows|performance_schema)_(.*)$"
)
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_DATES = (
    (re.compile(r"^[A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} \d{4} [A-Z]+$"), "%b %d %H:%M:%S %Y %Z"),
    (re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"), "%Y-%m-%d %H:%M:%S"),
)
_WORDS = {
    "yes": 1.0, "on": 1.0, "primary": 1.0,
    "no": 0.0, "off": 0.0, "disabled": 0.0, "connecting": 0.0,
    "non-primary": 0.0, "disconnected": 0.0,
}  # fmt: skip


def parse_status(raw: Any) -> float | None:
    """A status or variable value as mysqld_exporter reads it; None when it skips it."""
    if raw is None:
        return None
    if isinstance(raw, int | float):
        return float(raw)
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    if text.isascii() and text.isdigit():  # most values: plain counters
        return float(text)
    if _NUMBER.match(text):  # most values: the fast path, a scrape parses about a thousand
        return float(text)
    word = _WORDS.get(text.lower())
    if word is not None:
        return word
    for pattern, fmt in _DATES:
        if pattern.match(text):
            try:
                return float(datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp())
            except ValueError:
                return None
    return None


@functools.lru_cache(maxsize=4096)
def _name(key: str) -> str:
    return _NOT_NAME.sub("_", key).lower()


def _single(name: str, documentation: str, kind: str, value: float) -> Metric:
    """A one-sample family without per-object validation.

    A scrape builds about a thousand of these; ``name`` is always ``mysql_`` plus a key
    already reduced to ``[a-z0-9_]`` by ``_name``, so Metric's name check cannot fail and
    is skipped (it is half the cost of a family).
    """
    family = Metric.__new__(Metric)
    family.name = name
    family.documentation = documentation
    family.unit = ""
    family.type = kind
    family.samples = [Sample(name, {}, value, None, None, None)]
    return family


#: status prefixes mysqld_exporter turns into one labelled counter family each:
#: prefix -> (name after mysql_global_status_, help, label)
_LABELLED_COUNTERS = {
    "com": ("commands_total", "Total number of executed MySQL commands.", "command"),
    "handler": ("handlers_total", "Total number of executed MySQL handlers.", "handler"),
    "connection_errors": (
        "connection_errors_total",
        "Total number of MySQL connection errors.",
        "error",
    ),
    "innodb_rows": (
        "innodb_row_ops_total",
        "Total number of MySQL InnoDB row operations.",
        "operation",
    ),
    "performance_schema": (
        "performance_schema_lost_total",
        "Total number of MySQL instrumentations that could not be loaded or created "
        "due to memory constraints.",
        "instrumentation",
    ),
}


def build_global_status(rows: Rows) -> list[Metric]:
    """SHOW GLOBAL STATUS: labelled families for commands, handlers, … ; the rest untyped."""
    families: dict[str, Metric] = {}

    def family(kind: type, name: str, help_text: str, labels: Sequence[str] = ()) -> Any:
        if name not in families:
            families[name] = kind(name, help_text, labels=list(labels))
        return families[name]

    prefix = "mysql_global_status_"
    for key, raw in rows:
        value = parse_status(raw)
        if value is None:
            continue
        key = _name(str(key))
        group = _STATUS_GROUP.match(key)
        if group is None:
            families[prefix + key] = _single(
                prefix + key, "Generic metric from SHOW GLOBAL STATUS.", "unknown", value
            )
            continue
        kind, rest = group.groups()
        if kind in _LABELLED_COUNTERS:
            name, help_text, label = _LABELLED_COUNTERS[kind]
            family(CounterMetricFamily, prefix + name, help_text, [label]).add_metric([rest], value)
        elif rest in ("data", "free", "misc", "old"):  # innodb_buffer_pool_pages_*
            family(
                GaugeMetricFamily,
                prefix + "buffer_pool_pages",
                "Innodb buffer pool pages by state.",
                ["state"],
            ).add_metric([rest], value)
        elif rest == "dirty":
            family(
                GaugeMetricFamily,
                prefix + "buffer_pool_dirty_pages",
                "Innodb buffer pool dirty pages.",
            ).add_metric([], value)
        elif rest != "total":
            family(
                CounterMetricFamily,
                prefix + "buffer_pool_page_changes_total",
                "Innodb buffer pool page state changes.",
                ["operation"],
            ).add_metric([rest], value)
    return list(families.values())


_TEXT_VARIABLES = (
    "innodb_version",
    "version",
    "version_comment",
    "wsrep_cluster_name",
    "tx_isolation",
    "transaction_isolation",
)


def build_global_variables(rows: Rows) -> list[Metric]:
    """SHOW GLOBAL VARIABLES: one gauge per numeric variable, plus version and isolation."""
    families: list[Metric] = []
    text: dict[str, str] = {}
    for key, raw in rows:
        key = _name(str(key))
        value = parse_status(raw)
        if value is not None:
            families.append(
                _single(
                    f"mysql_global_variables_{key}",
                    "Generic gauge metric from SHOW GLOBAL VARIABLES.",
                    "gauge",
                    value,
                )
            )
        elif key in _TEXT_VARIABLES:
            text[key] = "" if raw is None else str(raw)
    version = GaugeMetricFamily(
        "mysql_version_info",
        "MySQL version and distribution.",
        labels=["innodb_version", "version", "version_comment"],
    )
    version.add_metric(
        [text.get("innodb_version", ""), text.get("version", ""), text.get("version_comment", "")],
        1,
    )
    families.append(version)
    if text.get("wsrep_cluster_name"):
        galera = GaugeMetricFamily(
            "mysql_galera_variables_info",
            "PXC/Galera variables information.",
            labels=["wsrep_cluster_name"],
        )
        galera.add_metric([text["wsrep_cluster_name"]], 1)
        families.append(galera)
    level = text.get("transaction_isolation") or text.get("tx_isolation")
    if level:
        isolation = GaugeMetricFamily(
            "mysql_transaction_isolation", "MySQL transaction isolation.", labels=["level"]
        )
        isolation.add_metric([level], 1)
        families.append(isolation)
    return families


#: SHOW REPLICA STATUS (MySQL 8.0.22+, the only form in 8.4) renamed the columns word by
#: word; the old words keep mysqld_exporter 0.14's names, so dashboards and alerts hold
_LEGACY_WORDS = {"replica": "Slave", "source": "Master"}


def legacy_column(column: str) -> str:
    """``Seconds_Behind_Source`` as ``Seconds_Behind_Master``; ``Replicate_Do_DB`` as is."""
    return "_".join(_LEGACY_WORDS.get(word.lower(), word) for word in column.split("_"))


def build_slave_status(columns: Sequence[str], rows: Rows) -> list[Metric]:
    """SHOW [ALL] SLAVE STATUS: one untyped family per numeric column, labelled by channel.

    SHOW REPLICA STATUS columns are read under their SHOW SLAVE STATUS names.
    """
    labels = ["master_host", "master_uuid", "channel_name", "connection_name"]
    families: dict[str, UnknownMetricFamily] = {}
    columns = [legacy_column(column) for column in columns]
    for row in rows:
        by_column = dict(zip(columns, row, strict=False))

        def text(column: str, cells: dict[str, Any] = by_column) -> str:
            value = cells.get(column)
            return "" if value is None else str(value)

        label_values = [
            text("Master_Host"),
            text("Master_UUID"),
            text("Channel_Name"),
            text("Connection_name"),
        ]
        for column, raw in by_column.items():
            value = parse_status(raw)
            if value is None:
                continue
            name = f"mysql_slave_status_{column.lower()}"
            if name not in families:
                families[name] = UnknownMetricFamily(
                    name, "Generic metric from SHOW SLAVE STATUS.", labels=labels
                )
            families[name].add_metric(label_values, value)
    return list(families.values())


_CMP = (
    (
        "compress_ops_total",
        "Number of times a B-tree page of the size PAGE_SIZE has been compressed.",
    ),
    (
        "compress_ops_ok_total",
        "Number of times a B-tree page of the size PAGE_SIZE has been successfully compressed.",
    ),
    (
        "compress_time_seconds_total",
        "Total time in seconds spent in attempts to compress B-tree pages.",
    ),
    (
        "uncompress_ops_total",
        "Number of times a B-tree page of the size PAGE_SIZE has been uncompressed.",
    ),
    ("uncompress_time_seconds_total", "Total time in seconds spent in uncompressing B-tree pages."),
)


def build_innodb_cmp(rows: Rows) -> list[Metric]:
    """information_schema.innodb_cmp, by page size."""
    families = [
        CounterMetricFamily(f"mysql_info_schema_innodb_cmp_{name}", help_text, labels=["page_size"])
        for name, help_text in _CMP
    ]
    for page_size, *values in rows:
        for family, value in zip(families, values, strict=True):
            family.add_metric([str(page_size)], float(value))
    return list[Metric](families)


_CMPMEM = (
    ("pages_used_total", "Number of blocks of the size PAGE_SIZE that are currently in use."),
    (
        "pages_free_total",
        "Number of blocks of the size PAGE_SIZE that are currently available for allocation.",
    ),
    ("relocation_ops_total", "Number of times a block of the size PAGE_SIZE has been relocated."),
    ("relocation_time_seconds_total", "Total time in seconds spent in relocating blocks."),
)


def build_innodb_cmpmem(rows: Rows) -> list[Metric]:
    """information_schema.innodb_cmpmem, by page size and buffer pool."""
    families = [
        CounterMetricFamily(
            f"mysql_info_schema_innodb_cmpmem_{name}",
            help_text,
            labels=["page_size", "buffer_pool"],
        )
        for name, help_text in _CMPMEM
    ]
    for page_size, pool, used, free, ops, time_ms in rows:
        labels = [str(page_size), str(pool)]
        # relocation_time is in microseconds' thousandths; mysqld_exporter divides by 1000
        for family, value in zip(families, (used, free, ops, float(time_ms) / 1000), strict=True):
            family.add_metric(labels, float(value))
    return list[Metric](families)


_RESPONSE_TIME = (
    (
        "INFORMATION_SCHEMA.QUERY_RESPONSE_TIME",
        "query_response_time_seconds",
        "The number of all queries by duration they took to execute.",
    ),
    (
        "INFORMATION_SCHEMA.QUERY_RESPONSE_TIME_READ",
        "read_query_response_time_seconds",
        "The number of read queries by duration they took to execute.",
    ),
    (
        "INFORMATION_SCHEMA.QUERY_RESPONSE_TIME_WRITE",
        "write_query_response_time_seconds",
        "The number of write queries by duration they took to execute.",
    ),
)


def _float_or_zero(raw: Any) -> float:
    text = str(raw).strip()
    return float(text) if _NUMBER.match(text) else 0.0


def build_query_response_time(name: str, help_text: str, rows: Rows) -> Metric:
    """One QUERY_RESPONSE_TIME table as a histogram of cumulative counts."""
    count, total, buckets = 0, 0.0, []
    for length, n, seconds in rows:
        count += int(n)
        total += _float_or_zero(seconds)
        bound = _float_or_zero(length)
        if bound:  # the "TOO LONG" row counts, but is no bucket: it is what +Inf adds
            buckets.append((bound, count))
    histogram = HistogramMetricFamily(f"mysql_info_schema_{name}", help_text)
    histogram.add_metric([], [(repr(b), c) for b, c in sorted(buckets)] + [("+Inf", count)], total)
    return histogram


Query = Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]


@dataclass(frozen=True)
class Scraper:
    """One mysqld_exporter collector: its label in self-metrics and how to collect it."""

    name: str
    collect: Callable[[Query], list[Metric]]


def _status(query: Query) -> list[Metric]:
    return build_global_status(_names_and_values(query, "GLOBAL_STATUS", "SHOW GLOBAL STATUS"))


def _variables(query: Query) -> list[Metric]:
    return build_global_variables(
        _names_and_values(query, "GLOBAL_VARIABLES", "SHOW GLOBAL VARIABLES")
    )


def _names_and_values(query: Query, view: str, show: str) -> Rows:
    """The rows of ``show``, fetched packed into one row where the server allows it.

    pymysql spends about 2 us of Python on every row it reads; SHOW GLOBAL STATUS and
    VARIABLES are 1,200 rows a scrape, a fifth of its time. MariaDB's information_schema
    views hold the same rows and GROUP_CONCAT packs them into one. MySQL 8 dropped the
    views, and an answer that does not unpack into as many pairs as the view has rows
    (group_concat_max_len, a NULL, a separator inside a value) is not trusted: both fall
    back to ``show``, the statement mysqld_exporter runs.
    """
    from exporter.db import QueryFailed

    try:
        rows = query(
            "SELECT COUNT(*), GROUP_CONCAT(VARIABLE_NAME, '\\t', VARIABLE_VALUE"
            f" SEPARATOR '\\n') FROM information_schema.{view}"
        )[1]
    except QueryFailed:
        rows = []
    if rows and rows[0][1] is not None:
        count, packed = rows[0]
        text = packed.decode() if isinstance(packed, bytes) else str(packed)
        pairs = [tuple(item.split("\t")) for item in text.split("\n")]
        if len(pairs) == count and all(len(pair) == 2 for pair in pairs):
            return pairs
    return query(show)[1]


#: MariaDB answers the first (every connection); MySQL up to 8.3 the second; MySQL 8.4
#: only the third. mysqld_exporter tries them in this order too.
_REPLICA_STATUS = ("SHOW ALL SLAVES STATUS", "SHOW SLAVE STATUS", "SHOW REPLICA STATUS")


def _slaves(query: Query) -> list[Metric]:
    from exporter.db import QueryFailed

    for statement in _REPLICA_STATUS[:-1]:
        try:
            return build_slave_status(*query(statement))
        except QueryFailed:
            continue
    return build_slave_status(*query(_REPLICA_STATUS[-1]))


def _cmp(query: Query) -> list[Metric]:
    return build_innodb_cmp(
        query(
            "SELECT page_size, compress_ops, compress_ops_ok, compress_time, uncompress_ops,"
            " uncompress_time FROM information_schema.innodb_cmp"
        )[1]
    )


def _cmpmem(query: Query) -> list[Metric]:
    return build_innodb_cmpmem(
        query(
            "SELECT page_size, buffer_pool_instance, pages_used, pages_free, relocation_ops,"
            " relocation_time FROM information_schema.innodb_cmpmem"
        )[1]
    )


def _response_time(query: Query) -> list[Metric]:
    from exporter.db import QueryFailed

    try:
        enabled = query("SELECT @@query_response_time_stats")[1]
    except QueryFailed:
        return []  # the plugin is not installed: nothing to export, as mysqld_exporter does
    if not enabled or not parse_status(enabled[0][0]):
        return []
    families = []
    for table, name, help_text in _RESPONSE_TIME:
        try:
            rows = query(f"SELECT TIME, COUNT, TOTAL FROM {table}")[1]
        except QueryFailed:
            continue
        families.append(build_query_response_time(name, help_text, rows))
    return families


#: mysqld_exporter 0.14's default collectors, in its order
SCRAPERS: tuple[Scraper, ...] = (
    Scraper("global_status", _status),
    Scraper("global_variables", _variables),
    Scraper("slave_status", _slaves),
    Scraper("info_schema.innodb_cmp", _cmp),
    Scraper("info_schema.innodb_cmpmem", _cmpmem),
    Scraper("info_schema.query_response_time", _response_time),
)
