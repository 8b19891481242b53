"""Every panel of every committed dashboard shows data on the live stack.

The real app (three gunicorn workers on MariaDB), the exporter on the same database, and
Prometheus 2.42 evaluating every generated rule file, after a short Locust run: each
panel query, with the dashboard's variables at "All", must return at least one series,
and each template variable at least one value. The panels that rightly show nothing
without a fault are listed below with the reason. Then ``sre dashboards preview`` draws
every panel from that Prometheus.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from dashboards import committed_dashboards
from dashboards.queries import expand, panel_queries, panels, variable_values
from sre.cli import main
from sre.generated import REPO_ROOT
from sre.prometheus import PrometheusClient
from sre.stack import stack
from tests.conftest import SRE
from tests.exporter.conftest import LibraryDatabase, RunningExporter
from tests.exporter.conftest import library_db as library_db  # fixtures
from tests.exporter.conftest import start_exporter as start_exporter
from tests.test_names_live import start_app, start_prometheus, wait_for_targets

pytestmark = pytest.mark.integration

#: (dashboard uid, panel title, query refId) → why it shows nothing on a healthy stack.
EMPTY_WITHOUT_A_FAULT = {
    ("elibrary-mysql", "Replication lag", "A"): "the server is not a replica",
    ("elibrary-mysql", "Replication lag", "B"): "the server is not a replica",
    ("elibrary-system", "Alerts firing by severity", "A"): "no alert fires on a healthy stack",
    ("elibrary-system", "Alerts firing now", "A"): "no alert fires on a healthy stack",
}
SCRAPE_S = 1  # sre.stack's Prometheus scrapes and evaluates every second
# Grafana's $__rate_interval for that scrape interval is 4s; a little more smooths a
# short run's counters.
BUILTINS = {
    "__rate_interval": "10s",
    "__interval": "1s",
    "__interval_ms": "1000",
    "__range": "2m",
    "__range_s": "120",
    "__range_ms": "120000",
}
_LABEL_VALUES = re.compile(r"^label_values\((?P<series>.+),\s*(?P<label>\w+)\)$")


def _variable_values_found(prometheus: str, dashboard: dict, values: dict[str, str]) -> list[str]:
    """Variables whose label_values query finds no value."""
    missing = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = _LABEL_VALUES.match(variable["query"]["query"])
        assert match, f"{dashboard['uid']}: variable {variable['name']} is not label_values()"
        series = expand(match["series"], values, BUILTINS)
        found = requests.get(
            f"{prometheus}/api/v1/series", params={"match[]": series}, timeout=10
        ).json()["data"]
        if not any(match["label"] in s for s in found):
            missing.append(f"{dashboard['uid']}: variable {variable['name']} ({series})")
    return missing


def test_every_panel_shows_live_data_and_previews_draw_it(
    tmp_path: Path,
    library_db: LibraryDatabase,
    start_exporter: Callable[..., RunningExporter],
) -> None:
    exporter = start_exporter(library_db.my_cnf)
    dashboards = committed_dashboards(REPO_ROOT)
    assert {d["uid"] for d in dashboards} >= {"elibrary-service", "elibrary-slos"}
    with stack(tmp_path) as running:
        app = start_app(running, tmp_path, library_db.url)
        prometheus = start_prometheus(running, tmp_path, app, exporter.url)
        wait_for_targets(prometheus, jobs=2)
        started = datetime.now(UTC)
        load = subprocess.run(
            [SRE, "loadtest", "run", "--profile", "smoke", "--host", app,
             "--out", str(tmp_path / "load"), "--users", "5", "--spawn-rate", "5",
             "--run-time", "15s"],
            env={**os.environ, "DATABASE_URL": library_db.url},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert load.returncode == 0, load.stdout + load.stderr
        time.sleep(3)  # the last scrapes and rule evaluations after the run

        client = PrometheusClient(prometheus, timeout_s=10)
        now = time.time()
        empty, missing_variables, checked = set(), [], 0
        for dashboard in dashboards:
            values = variable_values(dashboard)
            missing_variables += _variable_values_found(prometheus, dashboard, values)
            for query in panel_queries(dashboard):
                checked += 1
                if not client.instant(expand(query.expr, values, BUILTINS), now):
                    empty.add((query.dashboard_uid, query.panel_title, query.ref_id))
        client.close()
        assert checked > 100  # every dashboard's queries were really run
        assert missing_variables == []
        unexplained = sorted(empty - set(EMPTY_WITHOUT_A_FAULT))
        assert unexplained == [], "panels without data:\n" + "\n".join(map(str, unexplained))
        every_query = {
            (q.dashboard_uid, q.panel_title, q.ref_id) for d in dashboards for q in panel_queries(d)
        }
        assert set(EMPTY_WITHOUT_A_FAULT) <= every_query, "a listed panel no longer exists"

        out = tmp_path / "previews"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. matplotlib finding no tick interval
            result = CliRunner().invoke(
                main,
                ["dashboards", "preview", "--prometheus", prometheus, "--out", str(out),
                 "--from", started.isoformat(), "--scrape-interval", f"{SCRAPE_S}s"],
                catch_exceptions=False,
            )  # fmt: skip
    assert result.exit_code == 0, result.output
    for dashboard in dashboards:
        page = (out / f"{dashboard['uid']}.html").read_text()
        drawn = sorted((out / dashboard["uid"]).glob("*.png"))
        assert len(drawn) == len(list(panels(dashboard)))
        for png in drawn:
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert png.name in page
    assert (out / "index.html").is_file()
