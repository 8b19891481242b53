"""``sre slo report``: the report model and its renderers (pure), then a real Prometheus
2.42 evaluating the project's SLO rules over the real app with a fault injected."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml
from click.testing import CliRunner

from slo import BuildOptions, build_documents
from slo.errors import SpecError
from slo.model import SLO, EventsSLI, PeriodWindows
from slo.render import render_documents
from slo.report import (
    FiredAlert,
    NoDataError,
    PrometheusError,
    RawAlert,
    RawReport,
    RawSlo,
    Report,
    SloReport,
    WindowBurn,
    build_report,
    fetch_report,
    redact_url,
    render_json,
    render_markdown,
    render_table,
)
from slo.spec import SPECS_DIR, load_specs
from slo.windows import load_windows
from sre.cli import main
from sre.stack import SRE, free_port, stack
from tests.conftest import require_tool
from tests.slo.conftest import Inbox

DAY = 86400
START = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
END = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
SLI = EventsSLI("sum(rate(e[{{.window}}]))", "sum(rate(t[{{.window}}]))")
AVAILABILITY = SLO("elibrary-requests-availability", "requests-availability", "elibrary", 99.9,
                   30 * DAY, SLI)  # fmt: skip


def raw(
    range_error_ratio: float | None = 0.0005,
    budget_remaining: float | None = 0.9,
    period_error_ratio: float | None = None,
    windows: dict[int, float | None] | None = None,
    alerts: tuple[RawAlert, ...] = (),
) -> RawReport:
    slo = RawSlo(
        AVAILABILITY,
        range_error_ratio,
        budget_remaining,
        period_error_ratio,
        windows if windows is not None else {300: 0.0144, 3600: 0.002},
        alerts,
    )
    return RawReport("http://prometheus:9090", START, END, (slo,))


# --- the model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "status", "burn_rate", "budget_remaining"),
    [
        (raw(), "ok", 0.5, 0.9),
        (raw(range_error_ratio=0.002), "burning", 2.0, 0.9),
        (
            raw(alerts=(RawAlert("ElibraryAvailabilityBudgetBurn", "page", (1.0e9,)),)),
            "burning",
            0.5,
            0.9,
        ),
        (raw(budget_remaining=-0.25), "exhausted", 0.5, -0.25),
        (raw(range_error_ratio=0.0, budget_remaining=0.0), "exhausted", 0.0, 0.0),
        (raw(range_error_ratio=None), "no events", None, 0.9),
        (raw(range_error_ratio=float("nan")), "no events", None, 0.9),
        (raw(budget_remaining=None, period_error_ratio=0.0005), "ok", 0.5, 0.5),
        (raw(budget_remaining=None, period_error_ratio=None), "ok", 0.5, None),
    ],
    ids=[
        "an SLO spending less than its budget over the range is ok",
        "an SLO spending twice its budget's pace over the range is burning",
        "an alert that fired makes an SLO burning even when the whole range is within budget",
        "an overspent period budget is exhausted whatever the range",
        "a budget of exactly zero is exhausted",
        "a range without a single event has no SLI",
        "NaN from Prometheus (0/0: no events) counts as no value",
        "a missing budget series is computed from the period's error ratio",
        "no period data at all leaves the budget unknown",
    ],
)
def test_status_of_an_slo(
    given: RawReport, status: str, burn_rate: float | None, budget_remaining: float | None
) -> None:
    slo = build_report(given).slos[0]
    assert slo.status == status
    assert slo.burn_rate == (None if burn_rate is None else pytest.approx(burn_rate))
    expected_budget = None if budget_remaining is None else pytest.approx(budget_remaining)
    assert slo.budget_remaining == expected_budget


def test_window_burn_rates_divide_the_error_ratio_by_the_budget() -> None:
    slo = build_report(raw(windows={3600: 0.002, 300: 0.0144, 1800: None})).slos[0]
    assert [w.window_s for w in slo.windows] == [300, 1800, 3600]
    assert [w.burn_rate for w in slo.windows] == [pytest.approx(14.4), None, pytest.approx(2.0)]


def test_alert_series_merge_per_name_and_severity_in_order_of_first_firing() -> None:
    alerts = (
        RawAlert("ElibraryAvailabilityBudgetBurn", "ticket", (200.0, 260.0)),
        RawAlert("ElibraryAvailabilityBudgetBurn", "page", (100.0, 150.0)),
        RawAlert("ElibraryAvailabilityBudgetBurn", "page", (120.0, 300.0)),  # other labels
    )
    fired = build_report(raw(alerts=alerts)).slos[0].alerts
    at = lambda s: datetime.fromtimestamp(s, UTC)  # noqa: E731
    assert fired == (
        FiredAlert("ElibraryAvailabilityBudgetBurn", "page", at(100), at(300)),
        FiredAlert("ElibraryAvailabilityBudgetBurn", "ticket", at(200), at(260)),
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://prometheus:9090", "http://prometheus:9090"),
        ("https://admin:s3cret@prom.example.org/", "https://prom.example.org"),
        ("http://token@127.0.0.1:9090/prom/?x=secret#f", "http://127.0.0.1:9090/prom"),
        ("http://u:p@[::1]:9090", "http://[::1]:9090"),
    ],
    ids=[
        "a plain URL is shown as given",
        "user and password are dropped",
        "a query string and fragment are dropped",
        "an IPv6 address keeps its brackets",
    ],
)
def test_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# --- renderers ---------------------------------------------------------------------------

REPORT = Report(
    "http://prometheus:9090",
    START,
    END,
    (
        SloReport(
            "elibrary-requests-availability", "requests-availability", "elibrary", 99.9,
            30 * DAY, error_ratio=0.0025, budget_remaining=0.875,
            windows=(WindowBurn(300, 0.0144, 14.4), WindowBurn(3600, 0.002, 2.0)),
            alerts=(
                FiredAlert(
                    "ElibraryAvailabilityBudgetBurn", "page",
                    datetime(2026, 11, 25, 10, 1, 2, tzinfo=UTC),
                    datetime(2026, 11, 25, 10, 31, 0, tzinfo=UTC),
                ),
            ),
        ),
        SloReport(
            "elibrary-requests-latency", "requests-latency", "elibrary", 95, 30 * DAY,
            error_ratio=0.01, budget_remaining=0.95,
            windows=(WindowBurn(300, None, None), WindowBurn(3600, 0.01, 0.2)),
        ),
    ),
)  # fmt: skip
QUIET = replace(REPORT, slos=(replace(REPORT.slos[1], error_ratio=None),))

TABLE = """\
SLO report, 2026-11-25 06:00:00Z to 2026-11-26 06:00:00Z (1d)
Prometheus: http://prometheus:9090
2 SLOs, 1 burning budget

SLO status
SLO                             Objective  SLI (1d)  Burn rate (1d)  Budget left (30d)  Status
elibrary-requests-availability      99.9%   99.750%            2.50              87.5%  burning
elibrary-requests-latency             95%   99.000%            0.20              95.0%  ok

Burn rate now, by alert window
(1 = the error budget lasts exactly the SLO period; higher spends it faster.)
SLO                                5m    1h
elibrary-requests-availability  14.40  2.00
elibrary-requests-latency         n/a  0.20

Alerts fired
SLO                             Alert                           Severity  First firing          Last firing
elibrary-requests-availability  ElibraryAvailabilityBudgetBurn  page      2026-11-25 10:01:02Z  2026-11-25 10:31:00Z
"""  # noqa: E501

MARKDOWN = """\
## SLO report, 2026-11-25 06:00:00Z to 2026-11-26 06:00:00Z (1d)

1 SLO, all within budget. Prometheus: http://prometheus:9090

### SLO status

| SLO | Objective | SLI (1d) | Burn rate (1d) | Budget left (30d) | Status |
| --- | ---: | ---: | ---: | ---: | --- |
| elibrary-requests-latency | 95% | n/a | n/a | 95.0% | no events |

### Burn rate now, by alert window

1 = the error budget lasts exactly the SLO period; higher spends it faster.

| SLO | 5m | 1h |
| --- | ---: | ---: |
| elibrary-requests-latency | n/a | 0.20 |

### Alerts fired

No SLO alert fired.
"""


def test_the_terminal_table_lines_up_status_burn_rates_and_alerts() -> None:
    assert render_table(REPORT) == TABLE


def test_markdown_of_a_quiet_range_says_no_events_and_no_alerts() -> None:
    assert render_markdown(QUIET) == MARKDOWN


def test_markdown_of_a_burning_slo_lists_its_alert() -> None:
    text = render_markdown(REPORT)
    assert "2 SLOs, 1 burning budget." in text
    assert (
        "| elibrary-requests-availability | ElibraryAvailabilityBudgetBurn | page "
        "| 2026-11-25 10:01:02Z | 2026-11-25 10:31:00Z |"
    ) in text


def test_json_keeps_raw_ratios_and_null_for_no_value() -> None:
    data = json.loads(render_json(REPORT))
    assert data["start"] == "2026-11-25T06:00:00Z" and data["end"] == "2026-11-26T06:00:00Z"
    assert data["range"] == "1d"
    assert data["burning"] == ["elibrary-requests-availability"]
    availability, latency = data["slos"]
    assert availability["error_ratio"] == 0.0025
    assert availability["burn_rate"] == pytest.approx(2.5)
    assert availability["error_budget_remaining"] == 0.875
    assert availability["windows"]["5m"] == {"error_ratio": 0.0144, "burn_rate": 14.4}
    assert availability["alerts"] == [
        {
            "name": "ElibraryAvailabilityBudgetBurn",
            "severity": "page",
            "first": "2026-11-25T10:01:02Z",
            "last": "2026-11-25T10:31:00Z",
        }
    ]
    assert latency["windows"]["5m"] == {"error_ratio": None, "burn_rate": None}
    assert latency["status"] == "ok" and latency["period"] == "30d"
    assert render_json(REPORT).endswith("}\n")


# --- a real Prometheus -------------------------------------------------------------------

#: the page alert must fire within this many seconds of the fault starting
FIRE_WITHIN_S = 45


@dataclass(frozen=True)
class Live:
    prometheus: str
    app: str
    slos: dict[str, SLO]
    catalog: dict[int, PeriodWindows]
    start: datetime
    end: datetime


def _page_firing(prometheus: str) -> bool:
    answer = requests.get(f"{prometheus}/api/v1/alerts", timeout=5).json()
    return any(
        a["labels"]["alertname"] == "ElibraryAvailabilityBudgetBurn"
        and a["labels"].get("sloth_severity") == "page"
        and a["state"] == "firing"
        for a in answer["data"]["alerts"]
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app under gunicorn answering half of GET /api/books with 500, scraped every
    second by Prometheus 2.42 evaluating the rules built from the project's spec; yields
    once the page alert has fired for a few evaluations."""
    prometheus_bin = require_tool("prometheus", "prometheus")
    tmp = tmp_path_factory.mktemp("slo-report")
    catalog = load_windows()
    documents = load_specs([SPECS_DIR / "elibrary.yaml"], catalog=catalog)
    rules = tmp / "slo-rules.yaml"
    rules.write_text(render_documents(build_documents(documents, catalog, BuildOptions())))
    fault = tmp / "fault.json"
    fault.write_text(json.dumps({"error_ratio": 0.5, "route": "/api/books"}))
    stop = threading.Event()
    with stack(tmp) as running:
        app_port = free_port()
        app = running.start(
            "app",
            [
                *(SRE, "app", "serve", "--port", str(app_port), "--workers", "2"),
                *("--metrics-dir", str(tmp / "app-metrics")),
            ],
            "/api/ready",
            app_port,
            env={
                **os.environ,
                "DATABASE_URL": f"sqlite:///{tmp / 'library.sqlite3'}",
                "SRE_FAULT_FILE": str(fault),
                "SRE_ACCESS_LOG": "false",
            },
        )
        prom_port = free_port()
        # nothing listens on the Alertmanager port: the report reads ALERTS from Prometheus
        config = running.prometheus_config(app_port, None, free_port(), [rules])
        prometheus = running.start(
            "prometheus",
            [
                prometheus_bin,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            "/-/ready",
            prom_port,
        )

        def traffic() -> None:
            deadline = time.monotonic() + 120
            while not stop.is_set() and time.monotonic() < deadline:
                with contextlib.suppress(requests.RequestException):
                    requests.get(f"{app}/api/books", timeout=2)
                time.sleep(0.02)

        thread = threading.Thread(target=traffic, daemon=True)
        start = datetime.now(UTC)
        thread.start()
        try:
            deadline = time.monotonic() + FIRE_WITHIN_S
            while not _page_firing(prometheus):
                assert time.monotonic() < deadline, f"no page within {FIRE_WITHIN_S}s"
                time.sleep(0.5)
            time.sleep(3)
            end = datetime.now(UTC)
            slos = {s.name: s for d in documents for s in d.slos}
            yield Live(prometheus, app, slos, catalog, start, end)
        finally:
            stop.set()
            thread.join(5)


@pytest.mark.integration
def test_a_fault_shows_as_errors_a_fast_burn_and_the_page_that_fired(live: Live) -> None:
    slos = [live.slos["requests-availability"], live.slos["requests-latency"]]
    report = fetch_report(live.prometheus, slos, live.catalog, live.start, live.end)
    availability, latency = report.slos
    assert availability.id == "elibrary-requests-availability"
    assert availability.error_ratio is not None and 0.2 < availability.error_ratio < 0.8
    assert availability.burn_rate is not None and availability.burn_rate > 1
    burns = {w.window_s: w.burn_rate for w in availability.windows}
    assert sorted(burns) == [300, 1800, 3600, 7200, 21600, 86400, 259200]
    assert all(rate is not None and rate > 14.4 for rate in burns.values()), burns
    assert availability.budget_remaining is not None and availability.budget_remaining < 0
    assert availability.status == "exhausted"
    page = [a for a in availability.alerts if a.severity == "page"]
    assert [a.name for a in page] == ["ElibraryAvailabilityBudgetBurn"]
    assert live.start - timedelta(seconds=1) <= page[0].first <= page[0].last <= live.end
    assert latency.error_ratio is not None  # measured; fast or slow depends on the machine
    assert report.burning[0] is availability

    table, markdown, text = render_table(report), render_markdown(report), render_json(report)
    assert "ElibraryAvailabilityBudgetBurn  page" in table
    assert "| elibrary-requests-availability | ElibraryAvailabilityBudgetBurn | page |" in markdown
    assert json.loads(text)["slos"][0]["alerts"][0]["severity"] in ("page", "ticket")
    print(f"\n{table}\n{markdown}\n{text}")  # the samples quoted in the hand-over


@pytest.mark.integration
def test_the_cli_prints_the_report_and_mails_the_daily_summary(
    live: Live, tmp_path: Path, smtp_server: Callable[..., tuple[Inbox, int]]
) -> None:
    """`sre slo report` end to end: the spec file, Prometheus, the terminal and SMTP."""
    spec = yaml.safe_load((SPECS_DIR / "elibrary.yaml").read_text())
    spec["slos"] = [s for s in spec["slos"] if s["name"] != "borrow-availability"]  # no traffic
    spec_file = tmp_path / "slos.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    inbox, port = smtp_server()
    args = [
        *("slo", "report", str(spec_file), "--prometheus", live.prometheus),
        *("--start", live.start.isoformat(), "--end", live.end.isoformat(), "--format", "json"),
        *("--email-to", "oncall@example.org", "--email-to", "lead@example.org"),
        *("--email-from", "sre@example.org", "--smtp-port", str(port), "--no-smtp-starttls"),
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert [s["id"] for s in printed["slos"]] == [
        "elibrary-requests-availability",
        "elibrary-requests-latency",
    ]
    assert printed["slos"][0]["status"] == "exhausted"
    (envelope,) = inbox.envelopes
    assert sorted(envelope.rcpt_tos) == ["lead@example.org", "oncall@example.org"]
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"].startswith("eLibrary SLO report ")
    assert message["Subject"].endswith(": 2 SLOs, 1 burning budget")
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert "ElibraryAvailabilityBudgetBurn" in plain.get_content()
    assert "ElibraryAvailabilityBudgetBurn" in html.get_content()


@pytest.mark.integration
def test_the_cli_exits_2_when_prometheus_does_not_answer() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["slo", "report", "--prometheus", url])
    assert result.exit_code == 2
    assert result.output == f"error: {url}: Prometheus does not answer (connection refused)\n"


@pytest.mark.integration
def test_slos_without_data_are_named_with_their_missing_series_all_at_once(live: Live) -> None:
    borrow = live.slos["borrow-availability"]  # nobody borrowed: no POST /api/loans series
    undeployed = replace(live.slos["requests-latency"], id="elibrary-checkout", name="checkout")
    slos = [live.slos["requests-availability"], borrow, undeployed]
    with pytest.raises(NoDataError) as caught:
        fetch_report(live.prometheus, slos, live.catalog, live.start, live.end)
    first, second = str(caught.value).splitlines()
    # fetch_raw cuts both ends to whole seconds
    start, end = (t.replace(microsecond=0) for t in (live.start, live.end))
    range_s = round((end - start).total_seconds())
    assert first.startswith(
        f"{live.prometheus}: SLO elibrary-borrow-availability: no data for "
        'sum(rate(http_requests_total{job="elibrary-app",method="POST",route="/api/loans"}'
        f"[{range_s}s]))"
    )
    assert first.endswith("nothing scraped for the SLI")
    assert second.startswith(
        f"{live.prometheus}: SLO elibrary-checkout: no series slo:objective:ratio"
        '{sloth_id="elibrary-checkout", sloth_service="elibrary", sloth_slo="checkout"}'
    )
    assert second.endswith("the SLO's rules are not loaded in this Prometheus (sre slo build writes them)")  # fmt: skip  # noqa: E501


@pytest.mark.integration
def test_a_url_that_is_not_prometheus_is_an_error(live: Live) -> None:
    with pytest.raises(PrometheusError) as caught:
        fetch_report(live.app, [AVAILABILITY], {30 * DAY: live.catalog[30 * DAY]}, START, END)
    assert (
        str(caught.value) == f"{live.app}: Prometheus answers HTTP 404: no Prometheus error message"
    )


def test_an_unreachable_prometheus_is_named_without_its_credentials() -> None:
    port = free_port()  # nobody listens there
    catalog = load_windows()
    started = time.monotonic()
    with pytest.raises(PrometheusError) as caught:
        fetch_report(f"http://admin:s3cret@127.0.0.1:{port}/", [AVAILABILITY], catalog, START, END)
    assert str(caught.value) == (
        f"http://127.0.0.1:{port}: Prometheus does not answer (connection refused)"
    )
    assert "s3cret" not in repr(caught.value) and caught.value.__cause__ is None
    assert time.monotonic() - started < 5


@pytest.fixture
def answering() -> Iterator[Callable[[int, bytes], str]]:
    """A loopback HTTP server answering every GET with one status and body; its URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, body: bytes) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "problem"),
    [
        (
            400,
            b'{"status":"error","errorType":"bad_data","error":"parse error: unexpected"}',
            'Prometheus rejects the query {__name__=~"slo:.+", sloth_id="elibrary-requests-'
            'availability", sloth_service="elibrary", sloth_slo="requests-availability"}: '
            "parse error: unexpected",
        ),
        (200, b"<html>Grafana</html>", "answers, but not as the Prometheus HTTP API "
         "(no JSON data.result)"),
        (503, b"Service Unavailable", "Prometheus answers HTTP 503: no Prometheus error message"),
    ],
    ids=[
        "a query Prometheus rejects is quoted with Prometheus' reason",
        "a server that is not Prometheus (HTML) is named",
        "a Prometheus that stays unavailable after a retry is named",
    ],
)  # fmt: skip
def test_bad_answers_are_errors(
    answering: Callable[[int, bytes], str], status: int, body: bytes, problem: str
) -> None:
    url = answering(status, body)
    with pytest.raises(PrometheusError) as caught:
        fetch_report(url, [AVAILABILITY], load_windows(), START, END)
    assert str(caught.value) == f"{url}: {problem}"


def test_a_range_that_ends_before_it_starts_is_bad_input() -> None:
    with pytest.raises(SpecError) as caught:  # exit 2
        fetch_report("http://127.0.0.1:1", [AVAILABILITY], load_windows(), END, START)
    assert str(caught.value) == (
        "--start: 2026-11-26T06:00:00Z is not before the end 2026-11-25T06:00:00Z"
    )


def test_an_slo_period_without_alert_windows_is_bad_input() -> None:
    odd = replace(AVAILABILITY, period_s=7 * DAY)
    with pytest.raises(SpecError) as caught:
        fetch_report("http://127.0.0.1:1", [odd], load_windows(), START, END)
    assert str(caught.value) == (
        "SLO elibrary-requests-availability: no alert windows for a 1w period"
    )
