"""Dashboard previews: the pure helpers against tables (Grafana's own arithmetic), then
every panel type drawn from a real Prometheus 2.42 holding backfilled data whose every
value is known."""

from __future__ import annotations

import copy
import math
import re
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib import image

from dashboards.preview import (
    GridItem,
    PreviewResult,
    Table,
    build_builtins,
    build_dashboard_html,
    choose_step,
    format_legend,
    format_value,
    grafana_color,
    grid_positions,
    heatmap_buckets,
    map_value,
    merge_tables,
    panel_pixels,
    rate_interval,
    reduce_values,
    render_previews,
    slug,
    threshold_color,
    time_locator,
)
from sre.prometheus import PrometheusClient, PrometheusError
from sre.stack import free_port, stop_process, wait_http
from tests.conftest import monitoring_binaries, require_tool

# ---------------------------------------------------------------------------------------
# Pure helpers


@pytest.mark.parametrize(
    ("value", "unit", "decimals", "shown"),
    [
        pytest.param(0.0123, "s", None, "12.3 ms", id="seconds under one are milliseconds"),
        pytest.param(0.0004, "s", None, "400 µs", id="under a millisecond are microseconds"),
        pytest.param(1.5, "s", None, "1.50 s", id="seconds keep three digits, zero-padded"),
        pytest.param(90, "s", None, "1.50 min", id="a minute and more are minutes"),
        pytest.param(7200, "s", None, "2 hour", id="hours as Grafana spells them"),
        pytest.param(0, "s", None, "0 s", id="zero seconds is 0 s"),
        pytest.param(0.123456, "s", 1, "123.5 ms", id="set decimals apply after scaling"),
        pytest.param(65000, "ms", None, "1.08 min", id="milliseconds scale up too"),
        pytest.param(0.25, "percentunit", None, "25%", id="a ratio is shown as 0-100 %"),
        pytest.param(0.0323, "percentunit", None, "3.23%", id="a small ratio keeps 3 digits"),
        pytest.param(-0.5, "percentunit", None, "-50%", id="a negative ratio"),
        pytest.param(99.5, "percent", None, "99.5%", id="percent is already 0-100"),
        pytest.param(512, "bytes", None, "512 B", id="bytes under 1 KiB"),
        pytest.param(1536, "bytes", None, "1.50 KiB", id="bytes are IEC: KiB"),
        pytest.param(3 * 1024**3, "bytes", None, "3 GiB", id="whole GiB"),
        pytest.param(1.5e9, "decbytes", None, "1.50 GB", id="decbytes are SI: GB"),
        pytest.param(0.001, "decbytes", None, "0.00100 B", id="no millibytes"),
        pytest.param(1234, "short", None, "1.23 K", id="short scales by thousands"),
        pytest.param(12, "reqps", None, "12 req/s", id="requests per second"),
        pytest.param(1500, "ops", None, "1.50K ops/s", id="ops per second scale"),
        pytest.param(3725, "dtdurations", None, "1 hour, 2 minutes", id="uptime as a duration"),
        pytest.param(3725, "dthms", None, "01:02:05", id="duration as a clock"),
        pytest.param(0.5, "none", None, "0.500", id="none: the number alone"),
        pytest.param(123456, "", None, "123456", id="integers keep every digit"),
        pytest.param(42, "widgets", None, "42 widgets", id="an unknown unit is a suffix"),
        pytest.param(5, "suffix:/min", None, "5/min", id="a custom suffix"),
        pytest.param(None, "s", None, "-", id="no value"),
        pytest.param(math.nan, "s", None, "NaN", id="NaN as Grafana shows it"),
    ],
)
def test_values_are_formatted_in_their_unit_as_grafana_does(
    value: float | None, unit: str, decimals: int | None, shown: str
) -> None:
    assert format_value(value, unit, decimals) == shown


ROUTE = {"__name__": "http_requests_total", "route": "/api/books", "method": "GET"}


@pytest.mark.parametrize(
    ("legend", "labels", "shown"),
    [
        pytest.param("{{route}} {{ method }}", ROUTE, "/api/books GET", id="labels substituted"),
        pytest.param("{{route}} {{status}}", ROUTE, "/api/books ", id="a missing label is empty"),
        pytest.param("p99", ROUTE, "p99", id="a fixed legend"),
        pytest.param(
            "", ROUTE, 'http_requests_total{route="/api/books", method="GET"}', id="no legend"
        ),
        pytest.param("__auto", {"le": "0.1"}, '{le="0.1"}', id="auto without a metric name"),
        pytest.param("", {"__name__": "up"}, "up", id="only a metric name"),
        pytest.param("", {}, "sum(rate(x[5m]))", id="no labels at all: the query"),
        pytest.param("{{status}}", {}, "sum(rate(x[5m]))", id="an empty result: the query"),
    ],
)
def test_legends_are_made_from_labels_as_grafana_does(
    legend: str, labels: dict[str, str], shown: str
) -> None:
    assert format_legend(legend, labels, "sum(rate(x[5m]))") == shown


@pytest.mark.parametrize(
    ("range_s", "min_step_s", "step"),
    [
        pytest.param(3600, 1, 10, id="an hour: 10 s, 360 points"),
        pytest.param(7200, 1, 20, id="two hours: 20 s"),
        pytest.param(900, 1, 3, id="a quarter hour: 3 s, 300 points"),
        pytest.param(86400, 1, 240, id="a day: 4 min"),
        pytest.param(60, 1, 1, id="a minute: never under 1 s"),
        pytest.param(3600, 30, 30, id="a panel's min interval wins"),
        pytest.param(3600, 7, 10, id="the next round step above the min interval"),
        pytest.param(3600, 0.2, 10, id="a sub-second min interval is 1 s"),
    ],
)
def test_the_step_is_round_and_gives_a_few_hundred_points(
    range_s: float, min_step_s: float, step: int
) -> None:
    assert choose_step(range_s, min_step_s) == step


@pytest.mark.parametrize("range_s", [200, 330, 901, 2000, 5000, 21600, 7 * 86400, 90 * 86400])
def test_every_range_over_200_s_gets_200_to_400_points(range_s: float) -> None:
    assert 200 <= range_s / choose_step(range_s) <= 400


@pytest.mark.parametrize(
    ("step_s", "scrape_s", "rate_s"),
    [
        pytest.param(10, 15, 60, id="short steps: four scrape intervals"),
        pytest.param(60, 15, 75, id="long steps: a step and a scrape"),
        pytest.param(1, 1, 4, id="one-second scrapes"),
    ],
)
def test_the_rate_interval_is_grafanas(step_s: int, scrape_s: float, rate_s: float) -> None:
    assert rate_interval(step_s, scrape_s) == rate_s


def test_the_builtin_variables_follow_the_range_and_step() -> None:
    start = datetime(2025, 1, 1, 10, tzinfo=UTC)
    builtins = build_builtins(start, start + timedelta(hours=1), 60, 15)
    assert builtins == {
        "__interval": "1m",
        "__interval_ms": "60000",
        "__rate_interval": "1m15s",
        "__rate_interval_ms": "75000",
        "__range": "3600s",
        "__range_s": "3600",
        "__range_ms": "3600000",
        "__from": "1735725600000",
        "__to": "1735729200000",
    }
    assert build_builtins(start, start + timedelta(hours=1), 1, 0.5)["__rate_interval"] == "2s"
    assert build_builtins(start, start + timedelta(hours=1), 1, 0.3)["__rate_interval"] == "1300ms"


STEPS = {
    "mode": "absolute",
    "steps": [
        {"color": "green", "value": None},
        {"color": "orange", "value": 80},
        {"color": "semi-dark-red", "value": 90},
    ],
}


@pytest.mark.parametrize(
    ("value", "thresholds", "color"),
    [
        pytest.param(50, STEPS, "#73BF69", id="under every step: the base colour"),
        pytest.param(80, STEPS, "#FF9830", id="on a step: that step"),
        pytest.param(89.9, STEPS, "#FF9830", id="between steps: the lower one"),
        pytest.param(95, STEPS, "#E02F44", id="above the last step"),
        pytest.param(None, STEPS, "#73BF69", id="no value: the base colour"),
        pytest.param(170, {**STEPS, "mode": "percentage"}, "#FF9830", id="percentage of min..max"),
        pytest.param(1, None, "#73BF69", id="no thresholds: Grafana's default green"),
    ],
)
def test_a_value_takes_the_colour_of_its_threshold_step(
    value: float | None, thresholds: dict[str, Any] | None, color: str
) -> None:
    assert threshold_color(value, thresholds, 0, 200) == color


@pytest.mark.parametrize(
    ("name", "color"),
    [
        pytest.param("green", "#73BF69", id="a hue"),
        pytest.param("semi-dark-red", "#E02F44", id="a shade"),
        pytest.param("super-light-blue", "#C0D8FF", id="a light shade"),
        pytest.param("#123abc", "#123abc", id="hex as written"),
        pytest.param("rgb(255, 0, 0)", "#FF0000", id="rgb()"),
        pytest.param("rgba(255, 0, 0, 0.5)", "#FF000080", id="rgba()"),
        pytest.param("text", "#CCCCDC", id="the theme's text colour"),
        pytest.param("transparent", "#00000000", id="transparent"),
        pytest.param("white", "#FFFFFF", id="a CSS name"),
        pytest.param("nonsense", "#808080", id="anything else: the fallback grey"),
    ],
)
def test_grafana_colour_names_map_to_the_dark_palette(name: str, color: str) -> None:
    assert grafana_color(name) == color


MAPPINGS = [
    {"type": "value", "options": {"0": {"text": "DOWN", "color": "red", "index": 0}}},
    {"type": "value", "options": {"1": {"text": "UP", "color": "green", "index": 1}}},
    {"type": "range", "options": {"from": 2, "to": 10, "result": {"text": "many"}}},
    {"type": "special", "options": {"match": "null", "result": {"text": "gone"}}},
]


@pytest.mark.parametrize(
    ("value", "mapped"),
    [
        pytest.param(0.0, ("DOWN", "#F2495C"), id="a value mapping"),
        pytest.param(1.0, ("UP", "#73BF69"), id="another value"),
        pytest.param(5.0, ("many", None), id="a range without colour"),
        pytest.param(None, ("gone", None), id="a null"),
        pytest.param(11.0, None, id="nothing matches"),
    ],
)
def test_value_mappings_give_text_and_colour(
    value: float | None, mapped: tuple[str | None, str | None] | None
) -> None:
    assert map_value(value, MAPPINGS) == mapped


@pytest.mark.parametrize(
    ("calc", "values", "result"),
    [
        pytest.param("lastNotNull", [1, math.nan, 3, 2, math.nan], 2, id="last not null"),
        pytest.param("last", [1, 2, math.nan], None, id="last, even null"),
        pytest.param("firstNotNull", [math.nan, 4, 5], 4, id="first not null"),
        pytest.param("max", [1, math.nan, 3, 2], 3, id="max"),
        pytest.param("mean", [1, math.nan, 3, 2], 2, id="mean ignores nulls"),
        pytest.param("count", [1, math.nan, 3, 2], 3, id="count of values"),
        pytest.param("range", [1, math.nan, 3, 2], 2, id="range"),
        pytest.param("delta", [1, 5, 2, 4], 8, id="delta counts a reset"),
        pytest.param("lastNotNull", [math.nan], None, id="nothing left"),
        pytest.param("nonsense", [1, 2], 2, id="unknown reducers are lastNotNull"),
    ],
)
def test_series_are_reduced_as_grafana_reduces(
    calc: str, values: list[float], result: float | None
) -> None:
    assert reduce_values(values, calc) == result


@pytest.mark.parametrize(
    ("frames", "table"),
    [
        pytest.param(
            [
                ("A", [({"route": "/b"}, 1.0), ({"route": "/a"}, 2.1)]),
                ("B", [({"route": "/a"}, 0.1)]),
            ],
            Table(("route", "Value #A", "Value #B"), (("/a", 2.1, 0.1), ("/b", 1.0, None))),
            id="two queries joined on their shared label",
        ),
        pytest.param(
            [("A", [({"job": "app", "route": "/a"}, 1.0), ({"job": "app", "route": "/b"}, 2.0)])],
            Table(("route", "Value"), (("/a", 1.0), ("/b", 2.0))),
            id="one query: labels that never vary are left out",
        ),
        pytest.param(
            [("A", [({"version": "1.2", "revision": "abc"}, 1.0)])],
            Table(("version", "revision", "Value"), (("1.2", "abc", 1.0),)),
            id="a single row keeps every label",
        ),
        pytest.param(
            [("A", [({}, 3.1)]), ("B", [({"route": "/a"}, 0.1)])],
            Table(("route", "Value #A", "Value #B"), (("", 3.1, None), ("/a", None, 0.1))),
            id="rows sharing no label are not joined",
        ),
        pytest.param(
            [
                ("A", [({"route": "/a"}, 3.0)]),
                (
                    "B",
                    [
                        ({"route": "/a", "status": "200"}, 2.0),
                        ({"route": "/a", "status": "500"}, 1.0),
                    ],
                ),
            ],
            Table(("status", "Value #A", "Value #B"), (("200", 3.0, 2.0), ("500", None, 1.0))),
            id="one value per query in a row; the route, the same in each, is left out",
        ),
        pytest.param([("A", [])], Table(("Value",), ()), id="no rows"),
    ],
)
def test_table_queries_are_merged_on_shared_labels(
    frames: list[tuple[str, list[tuple[dict[str, str], float | None]]]], table: Table
) -> None:
    assert merge_tables(frames) == table


def test_cumulative_buckets_become_counts_per_bucket() -> None:
    bounds, counts = heatmap_buckets(
        {"+Inf": [30, 60], "0.1": [20, 40], "0.5": [29, 58], "0.2": [25, math.nan]}
    )
    assert bounds == ["0.1", "0.2", "0.5", "+Inf"]
    # a missing sample counts 0, and the drop it makes is no negative count
    assert counts.tolist() == [[20, 40], [5, 0], [4, 58], [1, 2]]


def test_a_collapsed_rows_panels_are_laid_out_under_it_and_push_the_rest_down() -> None:
    dashboard = {
        "panels": [
            {"id": 9, "type": "stat", "gridPos": {"x": 0, "y": 10, "w": 24, "h": 4}},
            {"id": 1, "type": "timeseries", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 8}},
            {"id": 2, "type": "timeseries", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8}},
            {
                "id": 3,
                "type": "row",
                "collapsed": True,
                "gridPos": {"x": 0, "y": 8, "w": 24, "h": 1},
                "panels": [
                    {"id": 5, "type": "table", "gridPos": {"x": 0, "y": 40, "w": 8, "h": 6}},
                    {"id": 4, "type": "stat", "gridPos": {"x": 8, "y": 40, "w": 8, "h": 3}},
                ],
            },
            {"id": 6, "type": "row", "gridPos": {"y": 9}},
        ]
    }
    placed = [(p["id"], place) for p, place in grid_positions(dashboard)]
    assert placed == [
        (2, (0, 0, 12, 8)),
        (1, (12, 0, 12, 8)),
        (3, (0, 8, 24, 1)),
        (5, (0, 9, 8, 6)),
        (4, (8, 9, 8, 3)),
        (6, (0, 15, 24, 1)),
        (9, (0, 16, 24, 4)),
    ]


def test_the_page_places_each_image_at_its_grid_position() -> None:
    start = datetime(2025, 1, 1, 10, tzinfo=UTC)
    page = build_dashboard_html(
        "Service <overview>",
        start,
        start + timedelta(hours=1),
        {"route": ".*"},
        [
            GridItem("Traffic", 0, 0, 24, 1),
            GridItem("Rate & errors", 12, 1, 12, 8, "svc/2-rate-errors.png"),
        ],
    )
    assert "<h1>Service &lt;overview&gt;</h1>" in page
    assert '<h2 class="row" style="grid-column: 1 / span 24; grid-row: 1 / span 1">Traffic' in page
    assert (
        '<figure class="panel" style="grid-column: 13 / span 12; grid-row: 2 / span 8">'
        '<img src="svc/2-rate-errors.png" alt="Rate &amp; errors" title="Rate &amp; errors" '
        'width="760" height="296">'
    ) in page
    assert "<tr><th>$route</th><td>.*</td></tr>" in page
    assert "2025-01-01 10:00:00+00:00 to 2025-01-01 11:00:00+00:00 (1h)" in page
    assert panel_pixels(12, 8) == (760, 296)  # Grafana: 8 units of 30 px and 7 gaps of 8


@pytest.mark.parametrize(
    ("title", "name"),
    [
        pytest.param("Request rate (5m)", "request-rate-5m", id="punctuation runs are one dash"),
        pytest.param("  ", "panel", id="nothing left"),
        pytest.param("p99 — by route", "p99-by-route", id="non-ASCII is dropped"),
    ],
)
def test_titles_become_file_names(title: str, name: str) -> None:
    assert slug(title) == name


# ---------------------------------------------------------------------------------------
# A real Prometheus with known data

SAMPLE_S = 15
#: (route, status) → requests per second
RATES = {("/a", "200"): 2.0, ("/b", "200"): 1.0, ("/a", "500"): 0.1}
#: per 15 s: observations at or under each bound
BUCKETS = {"0.1": 20, "0.2": 25, "0.5": 29, "+Inf": 30}
DOWN_MINUTES = (40, 30)  # instance "a" is down from 40 to 30 minutes before the end


def _openmetrics(first: int, last: int) -> str:
    """Two hours of samples every 15 s: counters, gauges, a histogram; OpenMetrics order
    (each family together, each series in time order)."""
    times = range(first, last + 1, SAMPLE_S)
    lines = ["# HELP elibrary_test_requests Requests.", "# TYPE elibrary_test_requests counter"]
    for (route, status), rate in RATES.items():
        labels = f'route="{route}",status="{status}"'
        lines += [
            f"elibrary_test_requests_total{{{labels}}} {rate * (t - first)} {t}" for t in times
        ]
    lines.append("# TYPE elibrary_test_in_progress gauge")
    for instance, low in (("a", 2), ("b", 6)):  # a: 2 or 3, b: 6 or 7
        lines += [
            f'elibrary_test_in_progress{{instance="{instance}"}} {low + k % 2} {t}'
            for k, t in enumerate(times)
        ]
    lines.append("# TYPE elibrary_test_duration_seconds histogram")
    for k, t in enumerate(times):
        for le, count in BUCKETS.items():
            lines.append(f'elibrary_test_duration_seconds_bucket{{le="{le}"}} {count * k} {t}')
        lines.append(f"elibrary_test_duration_seconds_count {30 * k} {t}")
        lines.append(f"elibrary_test_duration_seconds_sum {3.0 * k} {t}")
    lines.append("# TYPE elibrary_test_up gauge")
    down_from, down_to = (last - m * 60 for m in DOWN_MINUTES)
    lines += [
        f'elibrary_test_up{{instance="a"}} {0 if down_from <= t < down_to else 1} {t}'
        for t in times
    ]
    lines += [f'elibrary_test_up{{instance="b"}} 1 {t}' for t in times]
    lines.append("# TYPE elibrary_test_start_time_seconds gauge")
    lines += [f"elibrary_test_start_time_seconds {first - 3600} {t}" for t in times]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Backfilled:
    url: str
    start: datetime  # the previewed hour
    end: datetime


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backfilled]:
    """Prometheus 2.42 on a free loopback port, serving two hours of backfilled samples."""
    server = monitoring_binaries()["prometheus"]
    promtool = require_tool("promtool", "prometheus")
    folder = tmp_path_factory.mktemp("preview-prometheus")
    last = int(time.time()) // 60 * 60 - 60
    first = last - 7200
    data = folder / "data.om"
    data.write_text(_openmetrics(first, last))
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(data), str(folder / "tsdb")],
        check=True,
        capture_output=True,
    )
    config = folder / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            server,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", process)
        end = datetime.fromtimestamp(last, UTC)
        yield Backfilled(url, end - timedelta(hours=1), end)
    finally:
        stop_process(process)
        log.close()


REQUESTS = "elibrary_test_requests_total"
RATE_BY_ROUTE = f'sum by (route, status) (rate({REQUESTS}{{route=~"$route"}}[$__rate_interval]))'
LATENCY_BUCKETS = "sum by (le) (increase(elibrary_test_duration_seconds_bucket[$__rate_interval]))"


def _panel(panel_id: int, kind: str, title: str, pos: tuple[int, int, int, int], **more: Any):
    x, y, w, h = pos
    return {
        "id": panel_id,
        "type": kind,
        "title": title,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        **more,
    }


def _target(expr: str, ref: str = "A", **more: Any) -> dict[str, Any]:
    return {"refId": ref, "expr": expr, "datasource": {"uid": "${datasource}"}, **more}


THRESHOLDS = {
    "mode": "absolute",
    "steps": [{"color": "green", "value": None}, {"color": "red", "value": 0.01}],
}
DASHBOARD: dict[str, Any] = {
    "uid": "preview-test",
    "title": "Preview test",
    "schemaVersion": 41,
    "templating": {
        "list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {"name": "route", "type": "query", "allValue": ".+", "current": {"value": "$__all"}},
        ]
    },
    "panels": [
        _panel(1, "row", "Traffic", (0, 0, 24, 1), collapsed=False, panels=[]),
        _panel(
            2,
            "timeseries",
            "Request rate",
            (0, 1, 12, 8),
            targets=[_target(RATE_BY_ROUTE, legendFormat="{{route}} {{status}}")],
            fieldConfig={
                "defaults": {
                    "unit": "reqps",
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "green", "value": None},
                            {"color": "red", "value": 1.5},
                        ],
                    },
                    "custom": {"thresholdsStyle": {"mode": "line+area"}},
                },
                "overrides": [],
            },
        ),
        _panel(
            3,
            "stat",
            "Error ratio",
            (12, 1, 6, 4),
            targets=[
                _target(
                    f'sum(rate({REQUESTS}{{status="500"}}[$__rate_interval]))'
                    f" / sum(rate({REQUESTS}[$__rate_interval]))"
                )
            ],
            fieldConfig={"defaults": {"unit": "percentunit", "thresholds": THRESHOLDS}},
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"},
        ),
        _panel(
            4,
            "table",
            "Routes",
            (18, 1, 6, 8),
            targets=[
                _target(f"sum by (route) (rate({REQUESTS}[5m]))", format="table", instant=True),
                _target(
                    f'sum by (route) (rate({REQUESTS}{{status="500"}}[5m]))',
                    "B",
                    format="table",
                    instant=True,
                ),
            ],
            fieldConfig={"defaults": {"unit": "reqps"}},
        ),
        _panel(
            5,
            "bargauge",
            "In progress",
            (12, 5, 6, 4),
            targets=[_target("elibrary_test_in_progress", legendFormat="{{instance}}")],
            fieldConfig={
                "defaults": {
                    "min": 0,
                    "max": 10,
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "green", "value": None},
                            {"color": "orange", "value": 5},
                        ],
                    },
                }
            },
        ),
        _panel(
            6,
            "heatmap",
            "Latency",
            (0, 9, 12, 8),
            targets=[_target(LATENCY_BUCKETS, format="heatmap", legendFormat="{{le}}")],
            options={"yAxis": {"unit": "s"}, "color": {"mode": "scheme", "scheme": "Oranges"}},
        ),
        _panel(
            7,
            "state-timeline",
            "Up",
            (12, 9, 12, 5),
            targets=[_target("elibrary_test_up", legendFormat="{{instance}}")],
            fieldConfig={"defaults": {"mappings": MAPPINGS[:2], "color": {"mode": "thresholds"}}},
        ),
        _panel(
            8,
            "timeseries",
            "Nothing here",
            (0, 17, 8, 6),
            targets=[_target("rate(elibrary_test_never_exported_total[$__rate_interval])")],
        ),
        _panel(
            9,
            "timeseries",
            "Broken query",
            (8, 17, 8, 6),
            targets=[_target(f"sum(rate({REQUESTS}[5m]) by (")],
        ),
        _panel(
            10,
            "text",
            "About",
            (16, 17, 8, 6),
            options={"mode": "markdown", "content": "# Preview\nBackfilled **test** data."},
        ),
        _panel(
            11,
            "row",
            "Process",
            (0, 23, 24, 1),
            collapsed=True,
            panels=[
                _panel(
                    12,
                    "stat",
                    "Uptime",
                    (0, 24, 6, 4),
                    targets=[_target("time() - elibrary_test_start_time_seconds")],
                    fieldConfig={"defaults": {"unit": "dtdurations"}},
                ),
                _panel(
                    13,
                    "timeseries",
                    "Half broken",
                    (6, 24, 18, 4),
                    targets=[
                        _target(f"rate({REQUESTS}[5m]) +"),
                        _target(f"sum(rate({REQUESTS}[$__rate_interval]))", "B"),
                    ],
                ),
            ],
        ),
    ],
}
#: panel id → gridPos, the collapsed row's panels too
GRID = {p["id"]: p["gridPos"] for top in DASHBOARD["panels"] for p in [top, *top.get("panels", [])]}
#: panel id → series per query, from what was backfilled
SERIES = {
    2: {"A": 3},
    3: {"A": 1},
    4: {"A": 2, "B": 1},
    5: {"A": 2},
    6: {"A": 4},
    7: {"A": 2},
    8: {"A": 0},
    9: {"A": 0},
    10: {},
    12: {"A": 1},
    13: {"A": 0, "B": 1},
}


@pytest.fixture(scope="module")
def previewed(
    prometheus: Backfilled, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PreviewResult, float]]:
    out = tmp_path_factory.mktemp("previews")
    client = PrometheusClient(prometheus.url, timeout_s=10)
    began = time.monotonic()
    try:
        result = render_previews([DASHBOARD], client, out, prometheus.start, prometheus.end)
    finally:
        client.close()
    yield result, time.monotonic() - began


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _has_color(png: Path, color: str, share: float = 0.001, within: float = 0.02) -> bool:
    """Whether at least ``share`` of the image's pixels are ``color`` (each channel
    ``within`` of it: small text is mostly anti-aliased edges)."""
    pixels = image.imread(png)[:, :, :3]
    wanted = np.array([int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    close = np.all(np.abs(pixels - wanted) < within, axis=-1)
    return bool(close.mean() >= share)


def _blend(color: str, alpha: float, background: str) -> str:
    """``color`` at ``alpha`` over ``background``, as #RRGGBB."""
    mixed = [
        round(alpha * int(color[i : i + 2], 16) + (1 - alpha) * int(background[i : i + 2], 16))
        for i in (1, 3, 5)
    ]
    return "#" + "".join(f"{c:02X}" for c in mixed)


@pytest.mark.integration
def test_every_panel_is_drawn_to_a_png_of_its_grid_size(
    previewed: tuple[PreviewResult, float],
) -> None:
    result, seconds = previewed
    (dashboard,) = result.dashboards
    assert dashboard.uid == "preview-test"
    assert [p.panel_id for p in dashboard.panels] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]
    for panel in dashboard.panels:
        assert panel.png.parent.name == "preview-test"
        assert re.fullmatch(rf"{panel.panel_id}-[a-z0-9-]+\.png", panel.png.name)
        pos = GRID[panel.panel_id]
        assert _png_size(panel.png) == panel_pixels(pos["w"], pos["h"])
        assert panel.png.stat().st_size > 2000, f"{panel.png.name} is nearly empty"
        assert image.imread(panel.png).shape[:2] == panel_pixels(pos["w"], pos["h"])[::-1]
    print(f"\n{len(dashboard.panels)} panels drawn in {seconds:.2f}s")


@pytest.mark.integration
def test_the_result_counts_the_series_each_query_returned(
    previewed: tuple[PreviewResult, float],
) -> None:
    (dashboard,) = previewed[0].dashboards
    assert {p.panel_id: p.series for p in dashboard.panels} == SERIES
    rate = dashboard.panels[0].queries[0]
    # an hour in 10 s steps; $__rate_interval = 4 scrapes of 15 s; $route at its all-value
    assert rate.step_s == 10
    assert rate.expr == (f'sum by (route, status) (rate({REQUESTS}{{route=~".+"}}[1m]))')
    table = dashboard.panels[2].queries
    assert [(q.ref_id, q.instant, q.step_s) for q in table] == [("A", True, 0), ("B", True, 0)]
    assert dashboard.variables == {"datasource": "prometheus", "route": ".+"}


@pytest.mark.integration
def test_no_data_and_a_rejected_query_are_drawn_and_recorded(
    previewed: tuple[PreviewResult, float],
) -> None:
    result = previewed[0]
    panels = {p.panel_id: p for p in result.dashboards[0].panels}
    assert [p.panel_id for p in panels.values() if p.no_data] == [8]
    assert panels[8].errors == ()
    (error,) = panels[9].errors
    assert error.startswith("query A rejected: ") and "parse error" in error
    assert not panels[9].no_data
    (half,) = panels[13].errors  # query B's series is drawn, query A's error beside it
    assert half.startswith("query A rejected: ") and "parse error" in half
    assert result.errors == [
        f'preview-test: panel "Broken query" (9) {error}',
        f'preview-test: panel "Half broken" (13) {half}',
    ]
    assert all(not p.errors for i, p in panels.items() if i not in (9, 13))
    # the rejected query is written in the panel, in Grafana's error red
    assert _has_color(panels[9].png, "#F2495C", 0.0005, within=0.12)
    assert _has_color(panels[13].png, "#F2495C", 0.0002, within=0.12)
    assert _has_color(panels[13].png, "#73BF69", 0.001)  # the series, in the palette's first
    assert 'no data: preview-test: panel "Nothing here" (8)' in result.summary_lines()


@pytest.mark.integration
def test_thresholds_and_mappings_colour_what_they_apply_to(
    previewed: tuple[PreviewResult, float],
) -> None:
    panels = {p.panel_id: p for p in previewed[0].dashboards[0].panels}
    # 0.1 of 3.1 requests per second fail: 3.23% is over the 1% step, red and not green
    assert _has_color(panels[3].png, "#F2495C", 0.01)
    assert not _has_color(panels[3].png, "#73BF69")
    # instance "a" was down for ten minutes: both mapped colours show (at the default 70%)
    assert _has_color(panels[7].png, _blend("#F2495C", 0.7, "#181B1F"), 0.005)
    assert _has_color(panels[7].png, _blend("#73BF69", 0.7, "#181B1F"), 0.05)
    # the in-progress gauge: "a" (2 or 3) is under the step at 5, "b" (6 or 7) over it
    assert _has_color(panels[5].png, "#73BF69", 0.005)
    assert _has_color(panels[5].png, "#FF9830", 0.005)
    # the request-rate threshold at 1.5 req/s: a red line, and red-tinted area above it
    assert _has_color(panels[2].png, "#F2495C", 0.001)
    tinted = _blend("#F2495C", 0.15, "#181B1F")
    assert _has_color(panels[2].png, tinted, 0.05, within=0.03)


@pytest.mark.integration
def test_the_page_lays_every_png_out_on_the_grid(
    previewed: tuple[PreviewResult, float],
) -> None:
    result = previewed[0]
    (dashboard,) = result.dashboards
    page = dashboard.html.read_text()
    assert dashboard.html.name == "preview-test.html"
    for panel in dashboard.panels:
        pos = GRID[panel.panel_id]
        place = (
            f'style="grid-column: {pos["x"] + 1} / span {pos["w"]}; '
            f'grid-row: {pos["y"] + 1} / span {pos["h"]}"><img src="preview-test/{panel.png.name}"'
        )
        assert place in page, panel.title
    assert page.count("<img ") == len(dashboard.panels)
    for row in ("Traffic", "Process"):
        assert re.search(rf'<h2 class="row" [^>]*>{row}', page)
    assert "<h1>Preview test</h1>" in page
    assert "<tr><th>$route</th><td>.+</td></tr>" in page
    assert f"{dashboard.html.parent}" == str(result.index.parent)
    index = result.index.read_text()
    assert '<a href="preview-test.html">Preview test</a>' in index
    assert "11 panels, 1 with no data, 2 errors" in index


@pytest.mark.integration
def test_variables_given_override_the_all_value(prometheus: Backfilled, tmp_path: Path) -> None:
    dashboard = copy.deepcopy(DASHBOARD)
    dashboard["panels"] = [dashboard["panels"][1]]  # request rate
    client = PrometheusClient(prometheus.url, timeout_s=10)
    try:
        result = render_previews(
            [dashboard],
            client,
            tmp_path,
            prometheus.start,
            prometheus.end,
            variables={"route": "/a"},
            scrape_interval_s=30,
        )
    finally:
        client.close()
    (panel,) = result.dashboards[0].panels
    assert panel.series == {"A": 2}  # /a 200 and /a 500
    assert '{route=~"/a"}[2m]' in panel.queries[0].expr  # 4 scrapes of 30 s
    assert result.dashboards[0].variables["route"] == "/a"


@pytest.mark.integration
def test_an_unreachable_prometheus_stops_the_preview(tmp_path: Path) -> None:
    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=2, retries=0)
    end = datetime.now(UTC)
    try:
        with pytest.raises(PrometheusError, match="does not answer"):
            render_previews([DASHBOARD], client, tmp_path, end - timedelta(hours=1), end)
    finally:
        client.close()
    assert not (tmp_path / "index.html").exists()


def test_a_naive_time_range_is_refused(tmp_path: Path) -> None:
    client = PrometheusClient("http://127.0.0.1:9", timeout_s=1)
    try:
        with pytest.raises(ValueError, match="timezone-aware"):
            render_previews(
                [DASHBOARD], client, tmp_path, datetime(2025, 1, 1), datetime(2025, 1, 2)
            )
    finally:
        client.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("span_s", [20, 95, 130, 700, 4000, 20000, 7 * 86400])
@pytest.mark.parametrize("most_ticks", [3, 4, 6])
def test_the_time_axis_finds_round_ticks_for_any_range_without_warning(
    span_s: int, most_ticks: int
) -> None:
    import warnings

    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3, 2))
    axes = figure.add_subplot()
    axes.xaxis.set_major_locator(time_locator(UTC, most_ticks))
    start = datetime(2026, 11, 26, tzinfo=UTC)
    axes.set_xlim(mdates.date2num(start), mdates.date2num(start + timedelta(seconds=span_s)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when it finds no interval
        ticks = axes.xaxis.get_major_locator()()
    assert 2 <= len(ticks) <= most_ticks + 2
