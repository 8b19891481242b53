"""The ``sre`` command: one group per component (DESIGN.md "CLI").

Exit codes: 0 success, 1 a failed check or an unavailable dependency, 2 bad usage or input.
Commands only parse options and call the components; the work happens there.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from sre.errors import SreError, Unavailable

__all__ = ["all_artifacts", "main"]

F = TypeVar("F", bound=Callable[..., Any])


def _reports_errors(command: F) -> F:
    """Turn expected failures into a one-line message and the documented exit code."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SreError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except Unavailable as exc:
            click.echo(f"error: database unavailable: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="elibrary-sre")
def main() -> None:
    """eLibrary SRE toolkit: the library service and what watches it."""


@main.group("app")
def app_group() -> None:
    """The library service: serve, migrate, seed, manage users."""


def _config(**overrides: Any) -> Any:
    from app.config import load_config

    return load_config(**{k: v for k, v in overrides.items() if v is not None})


@app_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    envvar="SRE_APP_PORT",
    help="Port to bind (env SRE_APP_PORT).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="gunicorn worker processes [default: 2 x CPUs + 1].",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Threads per worker (1 means sync workers).",
)
@click.option(
    "--max-requests",
    type=click.IntRange(0),
    default=10_000,
    show_default=True,
    help="Recycle a worker after this many requests (0: never).",
)
@click.option(
    "--max-requests-jitter",
    type=click.IntRange(0),
    default=None,
    help="Random extra requests before recycling [default: a tenth of max].",
)
@click.option(
    "--metrics-dir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="SRE_METRICS_DIR",
    help="prometheus-client multiprocess directory, wiped at start [default: a new temporary one].",
)
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="Apply schema migrations before serving.",
)
@_reports_errors
def serve(
    host: str,
    port: int,
    workers: int | None,
    threads: int,
    max_requests: int,
    max_requests_jitter: int | None,
    metrics_dir: str | None,
    migrate: bool,
) -> None:
    """Serve the API under gunicorn (DATABASE_URL picks the database)."""
    from app.logs import configure_logging
    from app.manage import migrate_database
    from app.serve import ServerOptions, run_server

    config = _config()
    configure_logging(config.log_level)
    if migrate:
        migrate_database(config)
    defaults = ServerOptions()
    run_server(
        ServerOptions(
            host=host,
            port=port,
            workers=workers or defaults.workers,
            threads=threads,
            max_requests=max_requests,
            max_requests_jitter=(
                max_requests // 10 if max_requests_jitter is None else max_requests_jitter
            ),
            metrics_dir=metrics_dir,
        )
    )


@app_group.command("migrate")
@_reports_errors
def migrate_command() -> None:
    """Apply schema migrations to the database named by DATABASE_URL."""
    from app.manage import migrate_database

    applied = migrate_database(_config())
    if applied:
        click.echo(f"applied migrations {', '.join(map(str, applied))}")
    else:
        click.echo("schema is up to date")


@app_group.command("seed")
@click.option("--books", type=click.IntRange(0, 10_000_000), default=1_000, show_default=True)
@click.option("--members", type=click.IntRange(0, 10_000_000), default=200, show_default=True)
@click.option("--loans", type=click.IntRange(0, 100_000_000), default=5_000, show_default=True)
@click.option(
    "--seed",
    "random_seed",
    type=int,
    default=1,
    show_default=True,
    help="Random seed; the same seed gives the same data.",
)
@click.option(
    "--password-file",
    type=click.File("r"),
    default=None,
    help="Password for the seeded members; without it they cannot log in.",
)
@_reports_errors
def seed(books: int, members: int, loans: int, random_seed: int, password_file: Any | None) -> None:
    """Add realistic books, members and loans (migrating first)."""
    import time

    from app.manage import migrate_database, open_database
    from app.seed import write_seed
    from app.state import utc_now

    if loans and not (books and members):
        raise SreError("--loans", None, "loans need at least one book and one member")
    config = _config()
    migrate_database(config)
    password = password_file.read().strip() if password_file else None
    database = open_database(config)
    started = time.monotonic()
    try:
        report = write_seed(
            database,
            books=books,
            members=members,
            loans=loans,
            loan_limit=config.loan_limit,
            loan_days=config.loan_days,
            now=utc_now(),
            seed=random_seed,
            password=password,
        )
    finally:
        database.close()
    click.echo(
        f"seeded {report.books} books, {report.members} members, {report.loans} loans "
        f"({report.open_loans} open) in {time.monotonic() - started:.1f}s"
    )


@main.group("exporter")
def exporter_group() -> None:
    """MySQL server and business metrics for Prometheus (replaces mysqld_exporter)."""


def _exporter_inputs(my_cnf: str | None, queries: str | None) -> tuple[Any, Any, str]:
    from exporter import DEFAULT_QUERIES, load_mysql_target, load_queries

    queries_file = queries or str(DEFAULT_QUERIES)
    specs = load_queries(queries_file)
    return load_mysql_target(my_cnf), specs, queries_file


_MY_CNF = click.option(
    "--my-cnf",
    type=click.Path(dir_okay=False),
    default=None,
    help="MySQL client options file with a [client] section (user, password, host, port) "
    "[default: SRE_MYSQL_* variables, else ~/.my.cnf].",
)
_QUERIES = click.option(
    "--queries",
    type=click.Path(dir_okay=False),
    default=None,
    help="Business queries YAML [default: the one shipped for the library schema].",
)


@exporter_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=9207,
    show_default=True,
    envvar="SRE_EXPORTER_PORT",
    help="Port to bind (env SRE_EXPORTER_PORT).",
)
@_MY_CNF
@_QUERIES
@click.option(
    "--scrape-timeout",
    type=click.FloatRange(0.1, 120),
    default=10.0,
    show_default=True,
    help="Seconds a scrape may take when Prometheus does not say "
    "(X-Prometheus-Scrape-Timeout-Seconds).",
)
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Run every business query once at start-up and refuse bad ones.",
)
@_reports_errors
def exporter_serve(
    host: str,
    port: int,
    my_cnf: str | None,
    queries: str | None,
    scrape_timeout: float,
    check: bool,
) -> None:
    """Serve /metrics; a database outage shows as mysql_up 0, never a failed scrape."""
    import logging

    from exporter import Exporter, MySQLClient, QueryFailed, check_queries
    from exporter.server import serve as serve_exporter
    from sre.logs import configure_logging

    configure_logging("INFO")
    target, specs, queries_file = _exporter_inputs(my_cnf, queries)
    client = MySQLClient(target)
    if check:
        try:
            check_queries(client, specs, queries_file)
        except QueryFailed as exc:  # the server is down: start anyway, scrapes will say so
            logging.getLogger("elibrary.exporter").warning(
                "queries not checked: MySQL unreachable", extra={"error": str(exc)}
            )
    serve_exporter(Exporter(client, specs), host, port, scrape_timeout)


@exporter_group.command("check")
@_MY_CNF
@_QUERIES
@_reports_errors
def exporter_check(my_cnf: str | None, queries: str | None) -> None:
    """Validate the queries file and run each query once (exit 2 names every bad one)."""
    from exporter import MySQLClient, QueryFailed, check_queries

    target, specs, queries_file = _exporter_inputs(my_cnf, queries)
    client = MySQLClient(target)
    try:
        check_queries(client, specs, queries_file, require_database=True)
    except QueryFailed as exc:
        click.echo(f"error: MySQL at {target.address} unreachable: {exc}", err=True)
        sys.exit(1)
    finally:
        client.close()
    click.echo(f"{queries_file}: {len(specs)} queries ok against {target.address}")


def _write_or_check(artifacts: dict[str, str], check: bool) -> None:
    """Write generated files under the repository root, or exit 1 listing stale ones."""
    from sre.generated import stale_files, write_files

    if check:
        stale = stale_files(artifacts)
        if stale:
            for path in stale:
                click.echo(f"stale: {path} (run: sre generate)", err=True)
            sys.exit(1)
        click.echo(f"{len(artifacts)} generated files are up to date")
        return
    for path in write_files(artifacts):
        click.echo(f"wrote {path}")


@main.group("alerts")
def alerts_group() -> None:
    """Alert rules as code: Prometheus rule files and the PrometheusRule manifest."""


@alerts_group.command("build")
@click.option("--check", is_flag=True, help="Compare with the committed files; exit 1 if stale.")
def alerts_build(check: bool) -> None:
    """Regenerate the committed rule files from alerts/rules.py."""
    from alerts import build_artifacts

    _write_or_check(build_artifacts(), check)


def all_artifacts() -> dict[str, str]:
    """Every committed generated file of every component: path from the root → content."""
    from alerts import TEMPLATES_DIR
    from alerts import build_artifacts as alert_artifacts
    from slo import build_artifacts as slo_artifacts
    from sre.k8s import k8s_copies

    slo_files = slo_artifacts()
    artifacts = {**alert_artifacts(), **slo_files, **_dashboard_artifacts(slo_files)}
    template = (TEMPLATES_DIR / "elibrary.tmpl").read_text(encoding="utf-8")
    return {**artifacts, **k8s_copies(artifacts, template)}


def _dashboard_artifacts(slo_files: dict[str, str] | None = None) -> dict[str, str]:
    """The dashboards and their provisioning, built on the SLO rules slo/ generates (read as
    that component's output: DESIGN.md's layers keep dashboards/ from importing slo/)."""
    import dashboards
    from slo import build_artifacts as slo_artifacts

    slo_files = slo_files if slo_files is not None else slo_artifacts()
    rules = {path: text for path, text in slo_files.items() if path.endswith(".rules.yaml")}
    return dashboards.build_artifacts(rules)


@main.group("slo")
def slo_group() -> None:
    """SLOs as code: Sloth-compatible specs to recording rules, burn-rate alerts, reports."""


_PROMETHEUS_URL = click.option(
    "--prometheus",
    default="http://127.0.0.1:9090",
    show_default=True,
    envvar="SRE_PROMETHEUS_URL",
    help="Prometheus base URL (env SRE_PROMETHEUS_URL).",
)
_SPEC_PATHS = click.argument("paths", nargs=-1, type=click.Path(path_type=Path, exists=False))


def _slo_period(value: str) -> int:
    from sre.durations import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise SreError(None, "--slo-period", str(exc)) from None


def _extra_labels(pairs: tuple[str, ...], option: str = "--extra-labels") -> dict[str, str]:
    import re

    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value or not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key):
            raise SreError(None, option, f"{pair!r} is not name=value")
        labels[key] = value
    return labels


def _load_slos(paths: tuple[Path, ...], period: str, windows_path: Path | None) -> Any:
    from slo.spec import SPECS_DIR, load_specs
    from slo.windows import load_windows

    catalog = load_windows(windows_path)
    documents = load_specs(list(paths) or [SPECS_DIR], _slo_period(period), catalog)
    return documents, catalog


_PERIOD_OPTIONS = [
    click.option(
        "--slo-period",
        default="30d",
        show_default=True,
        help="SLO period for specs that do not state one (Sloth's --default-slo-period).",
    ),
    click.option(
        "--slo-period-windows-path",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Directory of AlertWindows files replacing the default 30d/28d catalog.",
    ),
]


def _period_options(command: F) -> F:
    for option in reversed(_PERIOD_OPTIONS):
        command = option(command)
    return command


@slo_group.command("validate")
@_SPEC_PATHS
@_period_options
@_reports_errors
def slo_validate(
    paths: tuple[Path, ...], slo_period: str, slo_period_windows_path: Path | None
) -> None:
    """Check spec files (default: slo/specs); every problem is reported, then exit 2."""
    documents, _ = _load_slos(paths, slo_period, slo_period_windows_path)
    files = {d.file for d in documents}
    count = sum(len(d.slos) for d in documents)
    click.echo(f"{len(files)} spec files, {count} SLOs: valid")


@slo_group.command("build")
@_SPEC_PATHS
@click.option(
    "-o", "--output", default=None, help="File to write, or - for stdout [with PATHS: -]."
)
@click.option(
    "--check", is_flag=True, help="Compare instead of writing; exit 1 if it would change."
)
@click.option(
    "--extra-labels", "-l", multiple=True, help="name=value added to every rule (repeat)."
)
@click.option("--disable-recordings", is_flag=True, help="Write no recording rules.")
@click.option("--disable-alerts", is_flag=True, help="Write no alerting rules.")
@click.option(
    "--raw-period-sli",
    is_flag=True,
    help="Compute the period SLI with rate() over the whole period instead of from the 5m rule.",
)
@_period_options
@_reports_errors
def slo_build(
    paths: tuple[Path, ...],
    output: str | None,
    check: bool,
    extra_labels: tuple[str, ...],
    disable_recordings: bool,
    disable_alerts: bool,
    raw_period_sli: bool,
    slo_period: str,
    slo_period_windows_path: Path | None,
) -> None:
    """Spec files to Prometheus rules, as Sloth generates them.

    Without PATHS: rebuild the committed files (slo/generated/, k8s/base/). With PATHS:
    write the rules for those specs to --output (a PrometheusRule for Kubernetes specs).
    """
    import slo
    from slo.render import render_documents

    defaults = (extra_labels, disable_recordings, disable_alerts, raw_period_sli)
    if not paths and output is None:
        if any(defaults) or slo_period != "30d" or slo_period_windows_path is not None:
            raise SreError(None, "PATHS", "options that change the rules need input PATHS")
        _write_or_check(slo.build_artifacts(), check)
        return
    documents, catalog = _load_slos(paths, slo_period, slo_period_windows_path)
    options = slo.BuildOptions(
        extra_labels=_extra_labels(extra_labels),
        disable_recordings=disable_recordings,
        disable_alerts=disable_alerts,
        optimized=not raw_period_sli,
        version=slo.sloth_version(),
    )
    text = render_documents(slo.build_documents(documents, catalog, options))
    if not text:
        raise SreError(None, None, "no rules to write (recordings and alerts both disabled?)")
    _emit(text, output or "-", check)


def _burn_rates(text: str | None) -> list[float] | None:
    """``0.5,1,14.4,outage`` as numbers (``outage``: a full outage)."""
    from slo.simulate import OUTAGE

    if text is None:
        return None
    rates = []
    for item in text.split(","):
        word = item.strip().lower()
        try:
            rates.append(OUTAGE if word == "outage" else float(word.removesuffix("x")))
        except ValueError:
            raise SreError(None, "--burn-rates", f"{item!r} is not a number or outage") from None
    return rates


@slo_group.command("simulate")
@_SPEC_PATHS
@click.option(
    "--burn-rates",
    default=None,
    help="Comma-separated burn rates, 'outage' for 100% errors "
    "[default: 0.5,1,2,6,14.4,30,outage].",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
)
@click.option("-o", "--output", default="-", show_default=True, help="File to write, or -.")
@click.option(
    "--evaluation-interval",
    default="1m",
    show_default=True,
    help="Rule evaluation interval of the simulation (the resolution of every figure).",
)
@click.option("--promtool", default="promtool", show_default=True, help="promtool to run.")
@_period_options
@_reports_errors
def slo_simulate(
    paths: tuple[Path, ...],
    burn_rates: str | None,
    output_format: str,
    output: str,
    evaluation_interval: str,
    promtool: str,
    slo_period: str,
    slo_period_windows_path: Path | None,
) -> None:
    """When each SLO's page and ticket alerts start and stop, per burn rate.

    Measured by running the generated rules in promtool over a synthetic incident, beside
    the SRE Workbook's expected detection time; figures more than one evaluation interval
    away from it are flagged.
    """
    from slo import simulate
    from sre.durations import parse_duration

    documents, catalog = _load_slos(paths, slo_period, slo_period_windows_path)
    try:
        interval_s = parse_duration(evaluation_interval)
    except ValueError as exc:
        raise SreError(None, "--evaluation-interval", str(exc)) from None
    slos = [s for d in documents for s in d.slos]
    result = simulate.simulate(
        slos, catalog, _burn_rates(burn_rates), interval_s, promtool=promtool
    )
    render = simulate.render_json if output_format == "json" else simulate.render_markdown
    _emit(render(result), output, check=False)


def _moment(value: str | None, option: str) -> Any:
    """An RFC 3339 time or Unix seconds as an aware UTC datetime."""
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SreError(None, option, f"{value!r} is neither RFC 3339 nor Unix seconds") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@slo_group.command("report")
@_SPEC_PATHS
@_PROMETHEUS_URL
@click.option("--since", default="24h", show_default=True, help="Range length ending at --end.")
@click.option(
    "--start", default=None, help="Range start (RFC 3339 or Unix seconds); wins over --since."
)
@click.option("--end", default=None, help="Range end (RFC 3339 or Unix seconds) [default: now].")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "markdown", "json"]),
    default="table",
    show_default=True,
)
@click.option("-o", "--output", default="-", show_default=True, help="File to write, or -.")
@click.option(
    "--email-to", multiple=True, help="Also mail the report (HTML and text) here (repeat)."
)
@click.option("--email-from", default="sre@localhost", show_default=True, help="Sender address.")
@click.option("--email-title", default="eLibrary SLO report", show_default=True)
@click.option("--smtp-host", default="127.0.0.1", show_default=True, envvar="SRE_SMTP_HOST")
@click.option(
    "--smtp-port",
    type=click.IntRange(1, 65535),
    default=2525,
    show_default=True,
    envvar="SRE_SMTP_PORT",
)
@click.option("--smtp-starttls/--no-smtp-starttls", default=True, show_default=True)
@click.option("--smtp-user", default=None, envvar="SRE_SMTP_USER", help="Log in as this user.")
@click.option(
    "--smtp-password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    envvar="SRE_SMTP_PASSWORD_FILE",
    help="File holding the SMTP password (never a flag).",
)
@click.option(
    "--smtp-cafile",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="CA bundle that signed the SMTP server's certificate.",
)
@_period_options
@_reports_errors
def slo_report(
    paths: tuple[Path, ...],
    prometheus: str,
    since: str,
    start: str | None,
    end: str | None,
    output_format: str,
    output: str,
    email_to: tuple[str, ...],
    email_from: str,
    email_title: str,
    smtp_host: str,
    smtp_port: int,
    smtp_starttls: bool,
    smtp_user: str | None,
    smtp_password_file: Path | None,
    smtp_cafile: Path | None,
    slo_period: str,
    slo_period_windows_path: Path | None,
) -> None:
    """SLI, budget left, burn rate per alert window and alerts fired, read from Prometheus.

    A report, not a gate: it exits 0 even when SLOs burn; 2 when Prometheus does not answer
    or an SLO has no data. With --email-to it also goes out as the daily summary.
    """
    import ssl
    from datetime import UTC, datetime, timedelta

    from slo import mail, report
    from sre.durations import parse_duration

    documents, catalog = _load_slos(paths, slo_period, slo_period_windows_path)
    slos = [s for d in documents for s in d.slos]
    end_at = _moment(end, "--end") or datetime.now(UTC)
    start_at = _moment(start, "--start")
    if start_at is None:
        try:
            start_at = end_at - timedelta(seconds=parse_duration(since))
        except ValueError as exc:
            raise SreError(None, "--since", str(exc)) from None
    password = mail.read_password(smtp_password_file) if smtp_password_file else None
    if email_to and smtp_user and password is None:
        raise SreError(None, "--smtp-password-file", f"needed to log in as {smtp_user}")
    result = report.fetch_report(prometheus, slos, catalog, start_at, end_at)
    render = {
        "table": report.render_table,
        "markdown": report.render_markdown,
        "json": report.render_json,
    }[output_format]
    _emit(render(result), output, check=False)
    if email_to:
        message = mail.build_message(result, email_from, list(email_to), title=email_title)
        context = ssl.create_default_context(cafile=str(smtp_cafile)) if smtp_cafile else None
        mail.send_message(
            message, smtp_host, smtp_port, smtp_starttls, smtp_user, password, tls_context=context
        )
        click.echo(f"mailed the report to {', '.join(email_to)}", err=True)


@slo_group.command("gate")
@click.option(
    "--spec",
    "specs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="SLO spec file or directory (repeat) [default: slo/specs].",
)
@click.option(
    "--locust-stats",
    type=click.Path(path_type=Path),
    default=None,
    help="CSV prefix of a run (DIR/locust); its per-request log and run.json beside it.",
)
@click.option(
    "--prometheus",
    default=None,
    envvar="SRE_PROMETHEUS_URL",
    help="Prometheus base URL for the server side (env SRE_PROMETHEUS_URL).",
)
@click.option("--start", default=None, help="Run start (RFC 3339 or Unix seconds) [run.json].")
@click.option("--end", default=None, help="Run end (RFC 3339 or Unix seconds) [run.json].")
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="An earlier run's output folder to compare with.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "markdown", "json"]),
    default="table",
    show_default=True,
    help="What goes to stdout.",
)
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Also append the Markdown report here (e.g. $GITHUB_STEP_SUMMARY).",
)
@click.option(
    "--json",
    "json_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the JSON report here.",
)
@click.option(
    "--junit",
    "junit_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write JUnit XML here, one test case per objective.",
)
@click.option(
    "--settle",
    type=click.FloatRange(0, 300),
    default=15.0,
    show_default=True,
    help="Seconds to wait for Prometheus' first scrape after the run's end.",
)
@_period_options
@_reports_errors
def slo_gate(
    specs: tuple[Path, ...],
    locust_stats: Path | None,
    prometheus: str | None,
    start: str | None,
    end: str | None,
    baseline: Path | None,
    output_format: str,
    markdown_file: Path | None,
    json_file: Path | None,
    junit_file: Path | None,
    settle: float,
    slo_period: str,
    slo_period_windows_path: Path | None,
) -> None:
    """Judge one load-test run against the specs' gate: blocks.

    Exit 0 pass (warnings included), 1 fail, 2 unusable input, 3 inconclusive: the run
    cannot show the objective either way.
    """
    from slo import gate

    documents, _ = _load_slos(specs, slo_period, slo_period_windows_path)
    slos = [s for d in documents for s in d.slos]
    report = gate.judge_run(
        slos,
        locust_stats,
        prometheus,
        _moment(start, "--start"),
        _moment(end, "--end"),
        baseline,
        gate.GateSettings(settle_s=settle),
    )
    render = {
        "table": gate.render_table,
        "markdown": gate.render_markdown,
        "json": gate.render_json,
    }[output_format]
    click.echo(render(report), nl=False)
    if markdown_file is not None:
        with markdown_file.open("a", encoding="utf-8") as handle:
            handle.write(gate.render_markdown(report))
    for target, text in ((json_file, gate.render_json), (junit_file, gate.render_junit)):
        if target is not None:
            from sre.generated import write_files

            write_files({target.name: text(report)}, root=target.resolve().parent)
    sys.exit(report.exit_code)


def _emit(text: str, output: str, check: bool) -> None:
    """Write text to a file (atomically) or stdout; with check, exit 1 if it would differ."""
    if output == "-":
        if check:
            raise SreError(None, "--check", "needs -o FILE to compare with")
        click.echo(text, nl=False)
        return
    from sre.generated import write_files

    target = Path(output).resolve()
    if check:
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            click.echo(f"stale: {output}", err=True)
            sys.exit(1)
        click.echo(f"{output} is up to date")
        return
    write_files({target.name: text}, root=target.parent)
    click.echo(f"wrote {output}")


@main.group("dashboards")
def dashboards_group() -> None:
    """Grafana dashboards as code: build, preview without Grafana, push to Grafana."""


@dashboards_group.command("build")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option("-o", "--output", default=None, help="With one PATH: file to write, or -.")
@click.option(
    "--check",
    is_flag=True,
    help="Compare with the committed files; print what changed panel by panel; exit 1 if stale.",
)
@_reports_errors
def dashboards_build(paths: tuple[Path, ...], output: str | None, check: bool) -> None:
    """Regenerate dashboards/generated/ from dashboards/*.dashboard.py.

    With PATH (a *.dashboard.py of your own, built with dashboards.house), write that one
    dashboard's JSON to --output instead.
    """
    import json

    import dashboards
    from dashboards.diff import diff_dashboards
    from sre.generated import REPO_ROOT, stale_files

    if paths:
        if len(paths) != 1:
            raise SreError(None, "PATHS", "give one *.dashboard.py at a time with -o")
        from slo import build_artifacts as slo_artifacts

        rules = {p: t for p, t in slo_artifacts().items() if p.endswith(".rules.yaml")}
        built = dashboards.build_from_file(paths[0], dashboards.inputs_from_rules(rules))
        _emit(dashboards.dashboard_json(built), output or "-", check)
        return
    if output is not None:
        raise SreError(None, "--output", "needs a PATH to build (without one, the committed files)")
    artifacts = _dashboard_artifacts()
    if not check:
        _write_or_check(artifacts, check=False)
        return
    stale = stale_files(artifacts)
    for path in stale:
        click.echo(f"stale: {path} (run: sre dashboards build)", err=True)
        if path.endswith(".json"):
            committed = REPO_ROOT / path
            old = json.loads(committed.read_text()) if committed.is_file() else None
            for line in diff_dashboards(old, json.loads(artifacts[path])):
                click.echo(f"  {line}", err=True)
    if stale:
        sys.exit(1)
    click.echo(f"{len(artifacts)} dashboard files are up to date")


@dashboards_group.command("preview")
@_PROMETHEUS_URL
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory for one PNG per panel and one HTML page per dashboard.",
)
@click.option("--since", default="1h", show_default=True, help="Range length ending at --to.")
@click.option("--from", "start", default=None, help="Range start (RFC 3339 or Unix seconds).")
@click.option("--to", "end", default=None, help="Range end (RFC 3339 or Unix seconds) [now].")
@click.option(
    "--dashboard",
    "uids",
    multiple=True,
    help="Only this dashboard uid (repeat) [default: every committed dashboard].",
)
@click.option(
    "--var", "variables", multiple=True, help="name=value for a template variable (repeat)."
)
@click.option(
    "--scrape-interval",
    default="15s",
    show_default=True,
    help="The Prometheus scrape interval, for $__rate_interval.",
)
@_reports_errors
def dashboards_preview(
    prometheus: str,
    out: Path,
    since: str,
    start: str | None,
    end: str | None,
    uids: tuple[str, ...],
    variables: tuple[str, ...],
    scrape_interval: str,
) -> None:
    """Draw every panel of the committed dashboards from Prometheus' data, without Grafana.

    Writes OUT/<uid>/<panel>.png, OUT/<uid>.html laid out on the dashboard's grid, and
    OUT/index.html. Exit 2 when Prometheus does not answer.
    """
    from datetime import UTC, datetime, timedelta

    import dashboards
    from dashboards.preview import render_previews
    from sre.durations import parse_duration
    from sre.generated import REPO_ROOT
    from sre.prometheus import PrometheusClient

    end_at = _moment(end, "--to") or datetime.now(UTC)
    start_at = _moment(start, "--from")
    try:
        if start_at is None:
            start_at = end_at - timedelta(seconds=parse_duration(since))
        scrape_s = parse_duration(scrape_interval)
    except ValueError as exc:
        raise SreError(None, "--since/--scrape-interval", str(exc)) from None
    if start_at >= end_at:
        raise SreError(None, "--from", "must be before --to")
    chosen = dashboards.committed_dashboards(REPO_ROOT)
    if uids:
        unknown = sorted(set(uids) - {d["uid"] for d in chosen})
        if unknown:
            raise SreError(None, "--dashboard", f"no committed dashboard {', '.join(unknown)}")
        chosen = [d for d in chosen if d["uid"] in uids]
    client = PrometheusClient(prometheus, timeout_s=30)
    try:
        result = render_previews(
            chosen,
            client,
            out,
            start_at,
            end_at,
            variables=_extra_labels(variables, "--var"),
            scrape_interval_s=scrape_s,
        )
    finally:
        client.close()
    for line in result.summary_lines():
        click.echo(line)


@dashboards_group.command("push")
@click.option("--url", required=True, envvar="SRE_GRAFANA_URL", help="Grafana base URL.")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File holding a Grafana service-account token (never pass the token itself).",
)
@click.option("--folder", default="eLibrary", show_default=True, help="Grafana folder title.")
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True)
@_reports_errors
def dashboards_push(url: str, token_file: Path, folder: str, timeout_s: float) -> None:
    """Upload the committed dashboards to Grafana (folder made if missing, overwrite,
    the revision in the version message). Exit 2 when Grafana or the token is refused."""
    import dashboards
    from dashboards.push import push_dashboards, read_token
    from sre.generated import REPO_ROOT

    token = read_token(token_file)
    results = push_dashboards(
        dashboards.committed_dashboards(REPO_ROOT),
        url,
        token,
        folder=folder,
        revision=_revision(),
        timeout_s=timeout_s,
    )
    for pushed in results:
        click.echo(f"pushed {pushed.uid} (version {pushed.version}): {pushed.url}")


def _revision() -> str:
    """``git describe`` of the checkout (or SRE_BUILD_REVISION), for Grafana's version note."""
    import os
    import subprocess

    from sre.generated import REPO_ROOT

    if os.environ.get("SRE_BUILD_REVISION"):
        return os.environ["SRE_BUILD_REVISION"]
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return described.stdout.strip() or "unknown"


@main.command("generate")
@click.option("--check", is_flag=True, help="Compare with the committed files; exit 1 if stale.")
def generate(check: bool) -> None:
    """Rebuild every committed generated artifact of every component."""
    _write_or_check(all_artifacts(), check)


@main.group("loadtest")
def loadtest_group() -> None:
    """Locust load tests against the library service (docs/loadtests.md)."""


@loadtest_group.command("run")
@click.option(
    "--profile",
    type=click.Choice(["smoke", "load", "stress", "soak"]),
    required=True,
    help="Users, spawn rate, duration and pacing (docs/loadtests.md).",
)
@click.option("--host", required=True, help="Base URL of the service, e.g. http://127.0.0.1:8000.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory for Locust's CSV, HTML and JSON, the per-request log and run.json.",
)
@click.option("--users", type=int, default=None, help="Peak users (Locust's --users).")
@click.option("--spawn-rate", type=float, default=None, help="Users started per second.")
@click.option("--run-time", default=None, help="Length: seconds, or 30s, 5m, 1h30m.")
@click.option(
    "--processes",
    type=click.IntRange(0, 64),
    default=0,
    show_default=True,
    help="Worker processes on this machine under one master (0: one local process).",
)
@click.option("--master", is_flag=True, help="Run only the master; workers join from elsewhere.")
@click.option("--worker", is_flag=True, help="Run only a worker of a master at --master-host.")
@click.option("--expect-workers", type=click.IntRange(1, 1000), default=None)
@click.option("--master-host", default="127.0.0.1", show_default=True)
@click.option("--master-port", type=click.IntRange(1, 65535), default=5557, show_default=True)
@click.option(
    "--admin-email",
    default=None,
    envvar="SRE_LOADTEST_ADMIN_EMAIL",
    help="Admin the admin journey logs in as; without it that journey is left out.",
)
@click.option(
    "--admin-password-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    envvar="SRE_LOADTEST_ADMIN_PASSWORD_FILE",
    help="File holding that admin's password.",
)
@_reports_errors
def loadtest_run(
    profile: str,
    host: str,
    out: Path,
    users: int | None,
    spawn_rate: float | None,
    run_time: str | None,
    processes: int,
    master: bool,
    worker: bool,
    expect_workers: int | None,
    master_host: str,
    master_port: int,
    admin_email: str | None,
    admin_password_file: Path | None,
) -> None:
    """Run one profile headless; it stops by itself and writes what `sre slo gate` reads."""
    from loadtests import LoadTestFailed, parse_run_time, run_loadtest

    env = {}
    if admin_email and admin_password_file:
        env = {
            "SRE_LOADTEST_ADMIN_EMAIL": admin_email,
            "SRE_LOADTEST_ADMIN_PASSWORD_FILE": str(admin_password_file.resolve()),
        }
    try:
        result = run_loadtest(
            profile,
            host,
            out,
            users=users,
            spawn_rate=spawn_rate,
            run_time_s=parse_run_time(run_time) if run_time is not None else None,
            processes=processes,
            master=master,
            worker=worker,
            expect_workers=expect_workers,
            master_host=master_host,
            master_port=master_port,
            env=env,
            progress=click.echo,
        )
    except LoadTestFailed as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{result.requests} requests; reports in {out}")


def _demo_line(text: str) -> None:
    """One progress line with its prefix; a block (the gate's table) as it is."""
    click.echo(f"demo: {text}" if text and "\n" not in text else text)


@main.command("demo")
@click.option(
    "--fault",
    type=click.Choice(["latency", "errors"]),
    default=None,
    help="Turn on the app's fault injection for the second half of the run.",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("var/demo"),
    show_default=True,
    help="Where data, logs and reports go.",
)
@click.option(
    "--run-time",
    "run_time_s",
    type=click.IntRange(10, 3600),
    default=90,
    show_default=True,
    help="Seconds of load; the fault starts half-way.",
)
@click.option(
    "--users",
    type=click.IntRange(1, 1000),
    default=None,
    help="Override the smoke profile's users.",
)
@click.option(
    "--keep-running", is_flag=True, help="After the gate, keep the stack up until Ctrl-C."
)
@_reports_errors
def demo(
    fault: str | None, workdir: Path, run_time_s: int, users: int | None, keep_running: bool
) -> None:
    """The whole loop on this machine: app, exporter, Prometheus, Alertmanager, Slack,
    a smoke load test and the SLO gate; exits with the gate's code. Ctrl-C stops it all."""
    import os

    from sre.demo import DemoOptions, run_demo

    options = DemoOptions(
        workdir=workdir,
        fault=fault,
        database_url=os.environ.get("DATABASE_URL"),
        run_time_s=run_time_s,
        users=users,
        keep_running=keep_running,
    )
    try:
        code = run_demo(options, _demo_line)
    except KeyboardInterrupt:
        click.echo("demo: interrupted; everything it started is stopped", err=True)
        sys.exit(130)
    sys.exit(code)


@app_group.group("users")
def users() -> None:
    """Accounts that the API cannot create (admins)."""


@users.command("add")
@click.option("--email", required=True)
@click.option("--name", default=None, help="Display name [default: the email's local part].")
@click.option("--role", type=click.Choice(["admin", "member"]), default="member", show_default=True)
@click.option(
    "--password-file",
    type=click.File("r"),
    default=None,
    help="File holding the password; without it the password is read from stdin.",
)
@_reports_errors
def users_add(email: str, name: str | None, role: str, password_file: Any | None) -> None:
    """Create an account; the password never goes on the command line."""
    from app.manage import add_user

    if password_file is not None:
        password = password_file.read().strip()
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
    else:
        password = sys.stdin.readline().strip()
    member_id = add_user(_config(), email, name or email.split("@")[0], role, password)
    click.echo(f"created {role} {email.strip().lower()} with id {member_id}")
