"""``sre loadtest run`` then ``sre slo gate`` on the real stack: the app under gunicorn with
fault injection, Prometheus 2.42 scraping it, Locust driving it, the gate judging each run.

One module-scoped stack; each test runs Locust for a few seconds with a fault set (or not)
and asserts the gate's exit code and what its report names. The whole file stays within
about two and a half minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from click.testing import CliRunner

from slo.spec import SPECS_DIR
from sre.cli import main
from sre.stack import SRE, free_port, stack
from tests.conftest import require_tool

SECONDS = 15
USERS = 30  # each user sends one request a second: about 450 requests a run


@dataclass(frozen=True)
class Bench:
    app: str
    prometheus: str
    fault: Path
    spec: Path
    env: dict[str, str]
    root: Path


def _test_spec(path: Path) -> None:
    """The project's availability and latency SLOs with gates a 15-second run can meet:
    450 requests without an error bound the error ratio below 1 % (3/450)."""
    spec = yaml.safe_load((SPECS_DIR / "elibrary.yaml").read_text())
    slos = {s["name"]: s for s in spec["slos"]}
    availability, latency = slos["requests-availability"], slos["requests-latency"]
    availability["objective"] = 99
    availability["gate"] = {"min_requests": 300, "max_error_ratio": 0.01}
    latency["gate"] = {"min_requests": 300, "max_p95_seconds": 0.2}
    spec["slos"] = [availability, latency]
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def _books_spec(path: Path) -> None:
    """Latency of GET /api/books alone, with the baseline limit of the project's latency SLO.

    A whole run's p95 is set by the few password hashes (registration and login, about 7 %
    of a short run's requests), which no latency fault moves by a fixed share; one route's
    p95 is set by that route, so "30 % slower" is what the test injects.
    """
    count = (
        'http_request_duration_seconds_count{job="elibrary-app",method="GET",route="/api/books"}'
    )
    fast = count.replace("_count{", "_bucket{").replace("}", ',le="0.5"}')
    window = "[{{.window}}]"
    spec = {
        "version": "prometheus/v1",
        "service": "elibrary",
        "slos": [
            {
                "name": "books-latency",
                "objective": 95,
                "sli": {
                    "events": {
                        "error_query": f"(sum(rate({count}{window})) - sum(rate({fast}{window})))",
                        "total_query": f"sum(rate({count}{window}))",
                    }
                },
                "alerting": {"page_alert": {"disable": True}, "ticket_alert": {"disable": True}},
                "gate": {
                    "min_requests": 100,
                    "max_p95_seconds": 0.5,
                    "baseline": {"max_p95_increase": 0.1},
                },
            }
        ],
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    prometheus_bin = require_tool("prometheus", "prometheus")
    root = tmp_path_factory.mktemp("gate-e2e")
    fault = root / "fault.json"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{root / 'library.sqlite3'}",
        "SRE_FAULT_FILE": str(fault),
        "SRE_ACCESS_LOG": "false",
    }
    seed = ["--books", "300", "--members", "30", "--loans", "100"]
    subprocess.run([SRE, "app", "seed", *seed], env=env, check=True, capture_output=True)
    secret = root / "admin-password"
    secret.write_text("gate-e2e-admin-password\n")
    subprocess.run(
        [SRE, "app", "users", "add", "--email", "gate@example.org", "--role", "admin",
         "--password-file", str(secret)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    spec = root / "slos.yaml"
    _test_spec(spec)
    _books_spec(root / "books.yaml")
    with stack(root) as running:
        app_port = free_port()
        app = running.start(
            "app",
            # 16 threads a worker: users paced at one request a second arrive in bursts on
            # the second, and an injected sleep must not queue behind another one
            [SRE, "app", "serve", "--port", str(app_port), "--workers", "2", "--threads", "16",
             "--metrics-dir", str(root / "metrics")],
            "/api/ready",
            app_port,
            env=env,
        )  # fmt: skip
        prom_port = free_port()
        config = running.prometheus_config(app_port, None, free_port(), [])
        prometheus = running.start(
            "prometheus",
            [prometheus_bin, f"--config.file={config}",
             f"--storage.tsdb.path={root / 'prom-data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            "/-/ready",
            prom_port,
        )  # fmt: skip
        _wait_for_first_scrape(prometheus)
        admin = {
            "SRE_LOADTEST_ADMIN_EMAIL": "gate@example.org",
            "SRE_LOADTEST_ADMIN_PASSWORD_FILE": str(secret),
        }
        yield Bench(app, prometheus, fault, spec, {**os.environ, **admin}, root)


def _wait_for_first_scrape(prometheus: str, timeout_s: float = 30) -> None:
    """Prometheus applies new targets every few seconds: wait until it has scraped the app."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = requests.get(f"{prometheus}/api/v1/query", params={"query": "up"}, timeout=5)
        if answer.json()["data"]["result"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus did not scrape the app within {timeout_s}s")


def load(bench: Bench, name: str, fault: dict[str, Any] | None, seconds: int = SECONDS,
         users: int = USERS, spawn_rate: int | None = None) -> Path:  # fmt: skip
    """One Locust run through the CLI with ``fault`` on in the app; its output folder.

    Users ramp over about five seconds (a spawn rate of a fifth of them), so their password
    hashes do not all land at once and stall every other request of a short run."""
    if fault is None:
        bench.fault.unlink(missing_ok=True)
    else:
        bench.fault.write_text(json.dumps(fault))
    time.sleep(1.5)  # every worker re-reads the fault file on its next request
    out = bench.root / name
    result = subprocess.run(
        [SRE, "loadtest", "run", "--profile", "smoke", "--host", bench.app, "--out", str(out),
         "--users", str(users), "--spawn-rate", str(spawn_rate or max(1, users // 5)),
         "--run-time", f"{seconds}s"],
        env=bench.env, capture_output=True, text=True, timeout=seconds + 90, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def gate(
    bench: Bench, run: Path, *more: str, prometheus: str | None = None, spec: Path | None = None
) -> tuple[int, str]:
    args = [
        *("slo", "gate", "--spec", str(spec or bench.spec), "--locust-stats", str(run / "locust")),
        *("--prometheus", prometheus or bench.prometheus, "--settle", "5", *more),
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result.exit_code, result.output


def verdicts(output_json: str) -> dict[tuple[str, str, str], str]:
    """(SLO, objective, judgement kind) → verdict, from the gate's JSON report."""
    report = json.loads(output_json)
    found = {}
    for slo in report["slos"]:
        for objective in slo["objectives"]:
            for judgement in objective["judgements"]:
                key = (slo["name"], objective["name"], judgement["kind"])
                found[key] = judgement["verdict"]
    return found


@pytest.mark.integration
def test_a_healthy_run_passes(bench: Bench) -> None:
    code, output = gate(bench, load(bench, "healthy", None))
    assert code == 0, output
    assert "SLO gate: PASS" in output


@pytest.mark.integration
def test_250ms_more_on_one_route_fails_the_latency_objective(bench: Bench) -> None:
    run = load(bench, "slow-books", {"latency_ms": 250, "route": "/api/books"})
    code, output = gate(bench, run, "--format", "json")
    assert code == 1, output
    found = verdicts(output)
    assert found[("requests-latency", "p95 latency", "threshold")] == "fail", found
    assert found[("requests-availability", "error ratio", "threshold")] == "pass", found


@pytest.mark.integration
def test_5_percent_errors_fail_the_availability_objective(bench: Bench, tmp_path: Path) -> None:
    run = load(bench, "errors", {"error_ratio": 0.05})
    junit = tmp_path / "gate.xml"
    code, output = gate(bench, run, "--junit", str(junit))
    assert code == 1, output
    assert "FAIL" in output
    from junitparser import Failure, JUnitXml

    cases = {case.name: case for suite in JUnitXml.fromfile(str(junit)) for case in suite}
    failed = [
        name for name, case in cases.items() if any(isinstance(r, Failure) for r in case.result)
    ]
    assert failed == ["elibrary-requests-availability: error ratio"], failed


@pytest.mark.integration
def test_prometheus_not_answering_is_unusable_input(bench: Bench) -> None:
    run = bench.root / "healthy"
    if not (run / "run.json").exists():
        run = load(bench, "healthy", None)
    url = f"http://127.0.0.1:{free_port()}"
    code, output = gate(bench, run, prometheus=url)
    assert code == 2, output
    assert url in output and "does not answer" in output


@pytest.mark.integration
def test_a_run_too_short_to_judge_is_inconclusive(bench: Bench) -> None:
    code, output = gate(bench, load(bench, "short", None, seconds=4, users=5))
    assert code == 3, output
    assert "INCONCLUSIVE" in output
    assert "requests it needs" in output


# Twenty users started four a second: their password hashes (registration and login)
# spread over five seconds instead of stalling every request at once, so one route's latency
# is the route's own; 30 s give about 250 GET /api/books a run, enough for the p95's bounds
# to sit clearly on one side of the baseline's +10 %.
CALM = {"seconds": 30, "users": 20, "spawn_rate": 4}


@pytest.mark.integration
def test_30_percent_slower_than_its_baseline_fails_a_rerun_passes(bench: Bench) -> None:
    books = bench.root / "books.yaml"
    baseline = load(bench, "baseline", {"latency_ms": 100, "route": "/api/books"}, **CALM)
    slower = load(bench, "slower", {"latency_ms": 130, "route": "/api/books"}, **CALM)
    code, output = gate(bench, slower, "--baseline", str(baseline), "--format", "json", spec=books)
    assert code == 1, output
    found = verdicts(output)
    assert found[("books-latency", "p95 latency", "threshold")] == "pass", found
    assert found[("books-latency", "p95 latency", "baseline")] == "fail", found
    assert found[("books-latency", "p95 latency", "statistical")] == "fail", found
    rerun = load(bench, "rerun", {"latency_ms": 100, "route": "/api/books"}, **CALM)
    code, output = gate(bench, rerun, "--baseline", str(baseline), "--format", "json", spec=books)
    found = verdicts(output)
    assert found[("books-latency", "p95 latency", "baseline")] == "pass", found
    assert found[("books-latency", "p95 latency", "statistical")] in ("pass", "warn"), found
    assert code == 0, output
