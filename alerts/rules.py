"""Alert rules as typed Python: the model, one builder per rule group, the catalogue.

Every alert gets ``severity`` and ``service`` labels and ``summary``, ``description``,
``runbook_url`` and ``dashboard_url`` annotations from one place (``_alert``), so none can
be forgotten. Expressions use only PromQL that Prometheus 2.42 knows. Selectors and
thresholds come from ``sre.conventions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sre.conventions import (
    APP_JOB,
    DASHBOARD_BASE_URL,
    EXPORTER_JOB,
    LATENCY_THRESHOLD_S,
    RUNBOOK_BASE_URL,
    SERVICE,
    app_selector,
    exporter_selector,
)

__all__ = ["SEVERITIES", "Alert", "RuleGroup", "build_rule_groups"]

SEVERITIES = ("critical", "warning", "info")
_SERVICE_DASHBOARD = "elibrary-service"
_MYSQL_DASHBOARD = "elibrary-mysql"
_BUSINESS_DASHBOARD = "elibrary-business"


@dataclass(frozen=True)
class Alert:
    """One alerting rule."""

    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    dashboard_uid: str
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.name}: severity {self.severity!r} is not one of {SEVERITIES}")
        if not self.name[:1].isupper() or not self.name.isalnum():
            raise ValueError(f"{self.name}: alert names are PascalCase")

    def to_dict(self, family: str = "") -> dict[str, object]:
        """The rule as Prometheus' rule file writes it; ``family`` is its group's theme."""
        rule: dict[str, object] = {"alert": self.name, "expr": self.expr}
        if self.for_ != "0s":
            rule["for"] = self.for_
        labels = {"severity": self.severity, "service": SERVICE}
        if family:
            labels["family"] = family  # what Alertmanager's critical-inhibits-warning matches
        rule["labels"] = {**labels, **self.labels}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": f"{RUNBOOK_BASE_URL}/{self.name}.md",
            "dashboard_url": f"{DASHBOARD_BASE_URL}/{self.dashboard_uid}",
        }
        return rule


@dataclass(frozen=True)
class RuleGroup:
    """A named group of alerts evaluated together."""

    name: str
    alerts: tuple[Alert, ...]

    @property
    def family(self) -> str:
        """The group's theme (service, mysql, …), shared by its alerts as a label."""
        return self.name.removeprefix(f"{SERVICE}-")

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "rules": [a.to_dict(self.family) for a in self.alerts]}


def _service() -> RuleGroup:
    app = app_selector()
    served = app_selector('route!~"/metrics|/api/metrics|/api/health|/api/ready"')
    failed = app_selector('status=~"5.."')
    not_ready = app_selector('route="/api/ready"', 'status="503"')
    return RuleGroup(
        "elibrary-service",
        (
            Alert(
                "ElibraryTargetDown",
                f'up{{job=~"{APP_JOB}|{EXPORTER_JOB}"}} == 0',
                "2m",
                "critical",
                "{{ $labels.job }} target {{ $labels.instance }} is down",
                "Prometheus has not been able to scrape {{ $labels.instance }} of job "
                "{{ $labels.job }} for 2 minutes.",
                _SERVICE_DASHBOARD,
            ),
            Alert(
                "ElibraryHighErrorRatio",
                f"sum(rate(http_requests_total{failed}[5m]))"
                f" / sum(rate(http_requests_total{app}[5m])) > 0.05",
                "5m",
                "critical",
                "More than 5% of eLibrary requests fail",
                "{{ $value | humanizePercentage }} of requests answered 5xx over the last "
                "5 minutes.",
                _SERVICE_DASHBOARD,
            ),
            Alert(
                "ElibraryHighLatency",
                "histogram_quantile(0.95, sum by (le) "
                f"(rate(http_request_duration_seconds_bucket{app}[5m]))) > {LATENCY_THRESHOLD_S}",
                "10m",
                "warning",
                f"eLibrary p95 latency above {int(LATENCY_THRESHOLD_S * 1000)} ms",
                "The 95th percentile of request duration is {{ $value | humanizeDuration }} "
                "(threshold 200ms) over the last 5 minutes.",
                _SERVICE_DASHBOARD,
            ),
            Alert(
                "ElibraryNotReady",
                f"sum by (instance) (rate(http_requests_total{not_ready}[5m])) > 0",
                "5m",
                "warning",
                "eLibrary instance {{ $labels.instance }} reports not ready",
                "/api/ready answered 503 on {{ $labels.instance }} for 5 minutes: the database "
                "does not answer it in time.",
                _SERVICE_DASHBOARD,
            ),
            Alert(
                "ElibraryNoTraffic",
                f"(sum(rate(http_requests_total{served}[15m])) or vector(0)) == 0",
                "15m",
                "warning",
                "eLibrary receives no API traffic",
                "No API request (probes and scrapes excluded) has reached the service for 30 "
                "minutes.",
                _SERVICE_DASHBOARD,
            ),
        ),
    )


def _saturation() -> RuleGroup:
    # The app exports the whole server's usage (gunicorn master and workers together) and the
    # limits it runs under: its cgroup's CPU quota and memory limit, which in Kubernetes are
    # the container's own, else the machine's. One expression serves every platform.
    app = app_selector()
    return RuleGroup(
        "elibrary-saturation",
        (
            Alert(
                "ElibraryHighCpu",
                f"rate(process_cpu_seconds_total{app}[5m])"
                f" / elibrary_server_cpu_limit_cores{app} > 0.8",
                "15m",
                "warning",
                "eLibrary CPU above 80% of its limit",
                "{{ $labels.instance }} uses {{ $value | humanizePercentage }} of the CPU it may "
                "use (its cgroup's quota, else the machine's cores) over 5 minutes.",
                _SERVICE_DASHBOARD,
            ),
            Alert(
                "ElibraryHighMemory",
                f"process_resident_memory_bytes{app} / elibrary_server_memory_limit_bytes{app}"
                " > 0.9",
                "15m",
                "warning",
                "eLibrary memory above 90% of its limit",
                "{{ $labels.instance }} uses {{ $value | humanizePercentage }} of the memory it "
                "may use (its cgroup's limit, else the machine's memory).",
                _SERVICE_DASHBOARD,
            ),
        ),
    )


def _events() -> RuleGroup:
    app = app_selector()
    return RuleGroup(
        "elibrary-events",
        (
            Alert(
                "ElibraryNewDeployment",
                # a revision that was not running 10 minutes ago, when something was running then
                f"group by (job, version, revision) (elibrary_build_info{app})"
                f" unless group by (job, version, revision) (elibrary_build_info{app} offset 10m)"
                f" and on (job) group by (job) (elibrary_build_info{app} offset 10m)",
                "0s",
                "info",
                "eLibrary {{ $labels.version }} ({{ $labels.revision }}) is being deployed",
                "A new build, version {{ $labels.version }} revision {{ $labels.revision }}, "
                "started serving in the last 10 minutes.",
                _SERVICE_DASHBOARD,
            ),
            Alert(
                "ElibraryReplicasChanged",
                f"count by (job) (up{app}) != count by (job) (up{app} offset 10m)",
                "0s",
                "info",
                "eLibrary now runs {{ $value }} instances",
                "The number of scraped eLibrary instances changed in the last 10 minutes "
                "(now {{ $value }}).",
                _SERVICE_DASHBOARD,
            ),
        ),
    )


def _mysql() -> RuleGroup:
    db = exporter_selector()
    return RuleGroup(
        "elibrary-mysql",
        (
            Alert(
                "ElibraryMySQLDown",
                f"mysql_up{db} == 0",
                "1m",
                "critical",
                "MySQL is down for eLibrary",
                "The exporter {{ $labels.instance }} cannot reach MySQL.",
                _MYSQL_DASHBOARD,
            ),
            Alert(
                "ElibraryMySQLTooManyConnections",
                f"max_over_time(mysql_global_status_threads_connected{db}[1m])"
                f" / mysql_global_variables_max_connections{db} > 0.8",
                "2m",
                "warning",
                "MySQL connections above 80% of max_connections",
                "{{ $value | humanizePercentage }} of max_connections are in use.",
                _MYSQL_DASHBOARD,
            ),
            Alert(
                "ElibraryMySQLSlowQueries",
                f"rate(mysql_global_status_slow_queries{db}[5m]) > 0.1",
                "5m",
                "warning",
                "MySQL runs slow queries",
                "{{ $value | humanize }} queries per second exceed long_query_time.",
                _MYSQL_DASHBOARD,
            ),
            Alert(
                "ElibraryMySQLReplicationStopped",
                f"mysql_slave_status_slave_sql_running{db} == 0"
                f" or mysql_slave_status_slave_io_running{db} == 0",
                "2m",
                "critical",
                "MySQL replication stopped on {{ $labels.instance }}",
                "A replication thread is not running (source {{ $labels.master_host }}).",
                _MYSQL_DASHBOARD,
            ),
            Alert(
                "ElibraryMySQLReplicationLag",
                f"mysql_slave_status_seconds_behind_master{db}"
                f" - mysql_slave_status_sql_delay{db} > 30",
                "5m",
                "warning",
                "MySQL replica lags {{ $value | humanizeDuration }}",
                "The replica {{ $labels.instance }} is {{ $value | humanizeDuration }} behind "
                "{{ $labels.master_host }}.",
                _MYSQL_DASHBOARD,
            ),
            Alert(
                "ElibraryMySQLInnoDBLogWaits",
                f"rate(mysql_global_status_innodb_log_waits{db}[15m]) > 10",
                "5m",
                "warning",
                "InnoDB waits for its log buffer",
                "{{ $value | humanize }} log waits per second: innodb_log_buffer_size is too "
                "small for the write load.",
                _MYSQL_DASHBOARD,
            ),
            Alert(
                "ElibraryExporterScrapeErrors",
                # `or`, not `+`: a sum over a missing side would be empty. Both counters
                # exist from the first scrape; errors that last, not a blip, warn.
                f"sum by (instance) (increase(mysql_exporter_scrape_errors_total{db}[5m])"
                f" or increase(elibrary_exporter_query_errors_total{db}[5m])) > 0",
                "10m",
                "warning",
                "The eLibrary exporter fails to collect some metrics",
                "{{ $value | humanize }} collector or business-query errors in 5 minutes on "
                "{{ $labels.instance }}; see the exporter's log.",
                _MYSQL_DASHBOARD,
            ),
            Alert(
                "ElibraryExporterQueriesDisabled",
                f"elibrary_exporter_queries_enabled{db} == 0",
                "15m",
                "warning",
                "The eLibrary exporter runs no business queries",
                "{{ $labels.instance }} has no database to run the business queries in (its "
                "my.cnf names none): the business metrics, dashboards and alerts are blind.",
                _MYSQL_DASHBOARD,
            ),
        ),
    )


def _business() -> RuleGroup:
    db = exporter_selector()
    app = app_selector()
    ratio = f"elibrary_loans_overdue{db} / elibrary_loans_active{db}"
    ratio_yesterday = f"elibrary_loans_overdue{db} offset 1d / elibrary_loans_active{db} offset 1d"
    return RuleGroup(
        "elibrary-business",
        (
            Alert(
                "ElibraryOverdueRatioJump",
                f"({ratio}) > 1.5 * ({ratio_yesterday}) and ({ratio}) > 0.1",
                "30m",
                "warning",
                "Overdue loans jumped to {{ $value | humanizePercentage }}",
                "The share of open loans that are overdue is {{ $value | humanizePercentage }}, "
                "more than 1.5x what it was a day ago.",
                _BUSINESS_DASHBOARD,
            ),
            Alert(
                "ElibraryBackupStale",
                "time() - max by (job) "
                f"(elibrary_backup_last_success_timestamp_seconds{db}) > 26 * 3600",
                "15m",
                "warning",
                "The last database backup finished {{ $value | humanizeDuration }} ago",
                "No backup has succeeded for more than 26 hours (the backup CronJob runs daily "
                "at 02:00 UTC): a restore now would lose more than a day of loans.",
                _MYSQL_DASHBOARD,
            ),
            Alert(
                "ElibraryNoLoansDuringOpeningHours",
                f"(sum(increase(elibrary_loans_created_total{app}[1h])) or vector(0)) == 0"
                " and on () (hour() >= 9 and hour() < 18)"
                " and on () (day_of_week() >= 1 and day_of_week() <= 5)",
                "30m",
                "warning",
                "No loans at all during opening hours",
                "Nobody borrowed a book in the last hour on a weekday between 09:00 and 18:00 UTC.",
                _BUSINESS_DASHBOARD,
            ),
        ),
    )


def _monitoring() -> RuleGroup:
    return RuleGroup(
        "elibrary-monitoring",
        (
            Alert(
                "PrometheusRuleEvaluationFailures",
                "increase(prometheus_rule_evaluation_failures_total[5m]) > 0",
                "5m",
                "warning",
                "Prometheus fails to evaluate rules",
                "{{ $value }} rule evaluations failed in group {{ $labels.rule_group }}.",
                _SERVICE_DASHBOARD,
            ),
            Alert(
                "AlertmanagerNotificationsFailing",
                "rate(alertmanager_notifications_failed_total[5m]) > 0",
                "5m",
                "critical",
                "Alertmanager cannot deliver notifications to {{ $labels.integration }}",
                "{{ $value | humanize }} notifications per second fail: on-call may not be "
                "hearing about incidents.",
                _SERVICE_DASHBOARD,
            ),
            Alert(
                "PrometheusConfigReloadFailed",
                "prometheus_config_last_reload_successful == 0",
                "5m",
                "warning",
                "Prometheus configuration reload failed",
                "{{ $labels.instance }} runs an older configuration: the last reload failed.",
                _SERVICE_DASHBOARD,
            ),
        ),
    )


def build_rule_groups() -> tuple[RuleGroup, ...]:
    """Every alert rule group, in a fixed order."""
    return (_service(), _saturation(), _events(), _mysql(), _business(), _monitoring())
