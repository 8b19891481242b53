"""Does this machine hold the original design's SLA? More than 1,000 requests/s, p95 under
200 ms, errors under 0.1 %, with the load generator beside the app (prints figures).

The library service on MariaDB under gunicorn (``sre app serve``), Prometheus 2.42 scraping
it every second, and Locust (``loadtests.run_loadtest``: the ``load`` profile's journeys, a
master and two worker processes) on the same machine. The offered rate is stepped (each
user sends one request per second, so the rate is the number of users), and each step is
judged by the deploy gate (``slo.gate.judge_run`` with every gate of slo/specs), timed from
the call to the exit code. Per step: the achieved rate (over the whole run as the gate
counts it, and after the ramp), the client p95 from the per-request log, the server p95
from Prometheus (the gate's report), the error ratio, how bunched the requests are, the
CPU share of Locust, the app, MariaDB and Prometheus (psutil, sampled twice a second) and
the CPU each spends per request. Stepping stops at the first rate the machine does not
carry (after the ramp, the rate or a p95 missed); ``--refine`` more steps halve the gap
below it. Whether a step holds the SLA is judged over the whole run, as the gate does.

Two pacings, each stepped on its own: ``locust``, the project's locustfile as it is
(``constant_throughput(1)``; Locust starts each second's batch of users at one instant, so
their requests arrive in one burst a second), and ``spread`` (``bench/locust_spread.py``:
the same journeys, each user with a random phase and a jittered period of the same mean).

Then one Locust process's ceiling: ``bench/locust_health.py`` against ``GET /api/health``
as fast as it answers, with and without the project's per-request log: requests per second
and per CPU second of the process.

Everything runs in its own database (``sre_bench_<random>``, dropped at the end) and a
temporary directory; every process it starts is stopped at the end, also on Ctrl-C.

    .venv/bin/python bench/load_sla.py [--rates 100,200,400,700,1000] [--seconds 35]
        [--pacing locust,spread] [--workers 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

import loadtests.run
from loadtests import run_loadtest
from loadtests.routes import MEMBERS, TOKEN
from loadtests.run import WINDOW_STARTED, WINDOW_STOPPED
from slo.gate import GateReport, GateSettings, Verdict, judge_run, render_table
from slo.spec import SPECS_DIR, load_specs
from sre.conventions import APP_JOB
from sre.stack import free_port, stop_process, wait_http

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
SRE = str(BIN / "sre")
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
SLA_RPS = 1000
SLA_P95_S = 0.2
SLA_ERROR_RATIO = 0.001
#: a step may fall this share short of its offered rate (the gate's own rule)
RATE_TOLERANCE = 0.10
#: the gate must answer within this many seconds of the run's end
GATE_BUDGET_S = 5.0
CORES = os.cpu_count() or 1
_ADMIN_EMAIL = "bench-admin@example.org"
#: how the users of a step space their requests: the locustfile each runs
PACINGS = {
    "locust": loadtests.run.LOCUSTFILE,
    "spread": BENCH / "locust_spread.py",
}
PACING_NAMES = {
    "locust": "the project's locustfile, constant_throughput(1)",
    "spread": "bench/locust_spread.py, a random phase and a period of 0.5-1.5 s",
}
#: what Locust logs when a process runs short of CPU (as loadtests.run looks for it)
_CPU_WARNING = re.compile(r"CPU usage above \d+%|CPU usage threshold|CPU usage was too high")


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the figures."""
    print(f"[load_sla {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- CPU sampling


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)
    return busy, busy + t.idle + getattr(t, "iowait", 0.0)


def _interpolate(series: Sequence[tuple[float, float]], at: float) -> float:
    """A cumulative value at time ``at``, linear between the samples around it."""
    if not series:
        return 0.0
    if at <= series[0][0]:
        return series[0][1]
    for (t0, v0), (t1, v1) in itertools.pairwise(series):
        if t0 <= at <= t1:
            return v0 + (v1 - v0) * ((at - t0) / (t1 - t0) if t1 > t0 else 1.0)
    return series[-1][1]


class Sampler:
    """Cumulative CPU seconds of Locust, the app, MariaDB, Prometheus, this script and the
    whole machine, sampled twice a second in a thread, so any window's share can be read."""

    def __init__(self, app_pid: int, prometheus_pid: int, every_s: float = 0.5) -> None:
        self.app_pid = app_pid
        self.prometheus = psutil.Process(prometheus_pid)
        self.mysqld = next(
            (p for p in psutil.process_iter(["name"]) if p.info["name"] in ("mariadbd", "mysqld")),
            None,
        )
        self.me = psutil.Process()
        self.every_s = every_s
        self.series: dict[str, list[tuple[float, float]]] = {}
        #: each Locust process's own CPU (pid -> samples); dead ones keep their last value
        self.locust: dict[int, list[tuple[float, float]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def _add(self, name: str, at: float, value: float) -> None:
        self.series.setdefault(name, []).append((at, value))

    def _sample(self) -> None:
        from app.process import read_server

        at = time.time()
        for child in self.me.children(recursive=True):
            with suppress(psutil.Error):
                argv = child.cmdline()
                if "locust" in argv[1:3]:  # python -m locust ...
                    self.locust.setdefault(child.pid, []).append((at, _cpu(child)))
        self._add("locust", at, sum(s[-1][1] for s in self.locust.values()))
        with suppress(OSError, RuntimeError):
            self._add("app", at, read_server(self.app_pid).cpu_seconds)
        for name, process in (
            ("mysqld", self.mysqld),
            ("prometheus", self.prometheus),
            ("bench", self.me),
        ):
            if process is not None:
                with suppress(psutil.Error):
                    self._add(name, at, _cpu(process))
        busy, total = _machine()
        self._add("busy", at, busy)
        self._add("total", at, total)

    def seconds(self, name: str, start: float, end: float) -> float:
        """CPU seconds ``name`` spent between ``start`` and ``end``."""
        series = self.series.get(name, [])
        return _interpolate(series, end) - _interpolate(series, start)

    def shares(self, start: float, end: float) -> dict[str, float]:
        """Each part's share of the machine (all cores) over the window, 0..1; ``rest`` is
        the busy time nobody above accounts for (this script, other work on the machine)."""
        total = self.seconds("total", start, end) or (end - start) * CORES
        parts = ("locust", "app", "mysqld", "prometheus")
        out = {name: self.seconds(name, start, end) / total for name in (*parts, "bench")}
        out["busy"] = self.seconds("busy", start, end) / total
        out["rest"] = max(0.0, out["busy"] - sum(out[name] for name in parts))
        out["idle"] = max(0.0, 1 - out["busy"])
        return out

    def busiest_locust(self, start: float, end: float) -> float:
        """The busiest Locust process's CPU over the window, as a share of one core."""
        wall = end - start
        return max(
            ((_interpolate(s, end) - _interpolate(s, start)) / wall for s in self.locust.values()),
            default=0.0,
        )


# --------------------------------------------------------------------------- the stack


def mysql_execute(statement: str) -> None:
    import pymysql

    connection = pymysql.connect(**MYSQL)  # type: ignore[arg-type]
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def _run_sre(argv: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(
        [SRE, *argv], env=env, capture_output=True, text=True, check=False, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


def app_env(database: str) -> dict[str, str]:
    """This environment without service settings, plus the benchmark database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SRE_", "PROMETHEUS_"))}
    env["DATABASE_URL"] = f"mysql://root@{MYSQL['host']}:{MYSQL['port']}/{database}"
    env["SRE_ACCESS_LOG"] = "false"
    return env


def start_app(
    args: argparse.Namespace, env: dict[str, str], work: Path, cleanup: ExitStack
) -> tuple[subprocess.Popen[bytes], str]:
    """``sre app serve`` in a session of its own (so every worker can be reached)."""
    port = free_port()
    argv = [SRE, "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(args.workers), "--threads", str(args.threads)]
    argv += ["--metrics-dir", str(work / "app-metrics")]
    (work / "app-metrics").mkdir()
    with (work / "app.log").open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    cleanup.callback(stop_app, process)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/api/ready", process, timeout_s=60)
    return process, url


def stop_app(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the gunicorn master; SIGKILL its whole session if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def start_prometheus(
    work: Path, app_url: str, cleanup: ExitStack
) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus scraping the app every second, as the gate's test stack does."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed (Debian package prometheus)")
    target = urllib.parse.urlsplit(app_url).netloc
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": APP_JOB, "static_configs": [{"targets": [target]}]}],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    argv = [
        binary,
        f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with (work / "prometheus.log").open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    cleanup.callback(stop_process, process)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/-/ready", process, timeout_s=60)
    query = urllib.parse.urlencode({"query": f'up{{job="{APP_JOB}"}}'})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as answer:
            result = json.loads(answer.read())["data"]["result"]
        if result and result[0]["value"][1] == "1":
            return process, url
        time.sleep(0.5)
    raise RuntimeError("Prometheus has not scraped the app within 30 s")


def hash_cost_ms(repeats: int = 5) -> float:
    """CPU ms of one password check as the app does it (scrypt; a registration hashes once
    too), in this process: the median of a few."""
    from app.auth import check_password, hash_password

    stored = hash_password("bench password")
    costs = []
    for _ in range(repeats):
        started = time.thread_time()
        check_password(stored, "bench password")
        costs.append((time.thread_time() - started) * 1000)
    return statistics.median(costs)


# --------------------------------------------------------------------------- one step


@dataclass
class Step:
    """One offered rate: what the client, the server, the CPUs and the gate saw."""

    #: ``locust`` (the project's pacing) or ``spread``
    pacing: str
    offered: int
    #: the run time played (ramp included)
    seconds: int
    requests: int
    window_s: float
    #: requests / (last answer - first request): what the gate compares with the target
    achieved: float
    #: requests started after the ramp, per second
    steady: float
    client_p95_ms: float | None
    steady_p95_ms: float | None
    server_p95_ms: float | None
    #: 5xx answers and requests without an answer (the SLA's errors)
    errors: int
    error_ratio: float
    errors_by_route: dict[str, int]
    server_error_ratio: float | None
    #: requests Locust counted as failed (any status the API does not document)
    failures: int
    #: share of the steady requests sent in the busiest tenth of a second (0.1: even)
    burst: float
    #: registrations and logins: each hashes a password once
    hashes: int
    #: of those, sent before the steady window (users start by registering, logging in)
    ramp_hashes: int
    shares: dict[str, float]
    busiest_locust: float
    ms_per_request: dict[str, float]
    hashing_share_of_app: float
    cpu_warning: bool
    gate_verdict: str
    gate_exit: int
    gate_s: float
    end_to_exit_s: float
    gate_reason: str
    #: why the steady state misses the rate or a p95 (empty: the machine carries the rate)
    capacity_problems: list[str] = field(default_factory=list)
    #: why the whole run misses the SLA as the gate judges it (empty: holds)
    sla_problems: list[str] = field(default_factory=list)

    @property
    def keeps_up(self) -> bool:
        return not self.capacity_problems

    @property
    def holds(self) -> bool:
        return not self.sla_problems


def _p95_ms(latencies: list[float]) -> float | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[max(1, math.ceil(0.95 * len(ordered) - 1e-9)) - 1]


def _gate_figures(report: GateReport) -> tuple[float | None, float | None, str]:
    """Server p95 of the latency SLO, server 5xx ratio of the error-ratio SLO counting the
    most requests, and the reason of the first judgement as bad as the verdict when the
    gate does not pass."""
    p95 = ratio = None
    counted = -1
    for slo in report.slos:
        if slo.server is None:
            continue
        names = " ".join(objective.name for objective in slo.objectives)
        if p95 is None and "p95" in names:
            p95 = slo.server.p95_s
        if "error" in names and slo.server.requests > counted:
            ratio, counted = slo.server.error_ratio, slo.server.requests
    reason = ""
    if report.verdict not in (Verdict.PASS, Verdict.WARN):
        worst = [
            (slo.name, judgement)
            for slo in report.slos
            for objective in slo.objectives
            for judgement in objective.judgements
            if judgement.verdict == report.verdict
        ]
        if worst:
            name, judgement = worst[0]
            reason = f"{name} {judgement.kind}: {judgement.reason}"
    return p95, ratio, reason


def run_step(rate: int, pacing: str, args: argparse.Namespace, ctx: dict[str, Any]) -> Step:
    """Offer ``rate`` requests/s, judge the run with the gate, read every figure."""
    out: Path = ctx["work"] / f"step-{pacing}-{rate}"
    seconds = step_seconds(rate, args)
    ramp = min(args.ramp, seconds / 4)
    log(f"step {rate} req/s, {pacing} pacing: {rate} users, ramp {ramp:g} s, {seconds} s")
    # run_loadtest reads the locustfile's path from its module when it builds the commands
    loadtests.run.LOCUSTFILE = PACINGS[pacing]
    with Sampler(ctx["app_pid"], ctx["prometheus_pid"]) as sampler:
        result = run_loadtest(
            "load",
            ctx["app_url"],
            out,
            users=rate,
            spawn_rate=rate / ramp,
            run_time_s=seconds,
            processes=args.processes,
            env=ctx["admin_env"],
            progress=log,
        )
        began = time.monotonic()
        report = judge_run(ctx["slos"], out / "locust", ctx["prometheus_url"], None, None, None)
        exit_code = report.exit_code
        gate_s = time.monotonic() - began
        end_to_exit_s = time.time() - result.end
    (out / "gate.txt").write_text(render_table(report))
    start, end = result.start, result.end
    steady_from, steady_to = start + ramp + 2, min(end, start + seconds) - 1
    latencies, steady_latencies = [], []
    phases = [0] * 10
    errors_by_route: dict[str, int] = {}
    failures = hashes = ramp_hashes = 0
    with (out / "locust_requests.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            latency = float(row["response_time_ms"])
            sent = float(row["start_time"])
            latencies.append(latency)
            if steady_from <= sent < steady_to:
                steady_latencies.append(latency)
                phases[int(sent % 1 * 10) % 10] += 1
            status = int(row["status"])
            if status == 0 or status >= 500:
                key = f"{row['request_type']} {row['name']} {status or 'no answer'}"
                errors_by_route[key] = errors_by_route.get(key, 0) + 1
            failures += row["success"] != "1"
            hashing = row["request_type"] == "POST" and row["name"] in (MEMBERS, TOKEN)
            hashes += hashing
            ramp_hashes += hashing and sent < steady_from
    n = len(latencies)
    errors = sum(errors_by_route.values())
    window = end - start
    server_p95, server_ratio, reason = _gate_figures(report)
    shares = sampler.shares(start, end)
    cpu_s = {name: share * window * CORES for name, share in shares.items()}
    per_request = {
        name: 1000 * cpu_s[name] / n if n else math.nan
        for name in ("locust", "app", "mysqld", "prometheus")
    }
    per_request["total"] = sum(per_request.values())
    steady_s = steady_to - steady_from
    step = Step(
        pacing=pacing,
        offered=rate,
        seconds=seconds,
        requests=n,
        window_s=window,
        achieved=n / window if window > 0 else 0.0,
        steady=len(steady_latencies) / steady_s if steady_s > 0 else math.nan,
        client_p95_ms=_p95_ms(latencies),
        steady_p95_ms=_p95_ms(steady_latencies),
        server_p95_ms=server_p95 * 1000 if server_p95 is not None else None,
        errors=errors,
        error_ratio=errors / n if n else math.nan,
        errors_by_route=errors_by_route,
        server_error_ratio=server_ratio,
        failures=failures,
        burst=max(phases) / sum(phases) if sum(phases) else math.nan,
        hashes=hashes,
        ramp_hashes=ramp_hashes,
        shares=shares,
        busiest_locust=sampler.busiest_locust(start, end),
        ms_per_request=per_request,
        hashing_share_of_app=hashes * ctx["hash_ms"] / (1000 * cpu_s["app"])
        if cpu_s["app"] > 0
        else math.nan,
        cpu_warning=result.cpu_warning,
        gate_verdict=str(report.verdict),
        gate_exit=exit_code,
        gate_s=gate_s,
        end_to_exit_s=end_to_exit_s,
        gate_reason=reason,
    )
    step.capacity_problems = capacity_problems(step)
    step.sla_problems = sla_problems(step)
    log(
        f"step {rate} ({pacing}): {step.achieved:.0f} req/s achieved, client p95 "
        f"{_fmt(step.client_p95_ms)} ms, server p95 {_fmt(step.server_p95_ms)} ms, errors "
        f"{_pct(step.error_ratio, 2)} %, gate {step.gate_verdict} in {gate_s:.2f} s: "
        + ("holds the SLA" if step.holds else "; ".join(step.sla_problems))
    )
    return step


def gate_evidence_requests(settings: GateSettings | None = None) -> int:
    """Requests a run without errors needs for the gate to show a ratio below the SLA's
    0.1 % (one-sided Clopper-Pearson bound, as the gate computes it): 2995 at 95 %."""
    confidence = (settings or GateSettings()).confidence
    return math.ceil(math.log(1 - confidence) / math.log(1 - SLA_ERROR_RATIO))


def step_seconds(rate: int, args: argparse.Namespace) -> int:
    """``--seconds``, or longer when the rate would not give the gate enough requests to
    pass the error ratio (5 % to spare, the ramp counted at half)."""
    needed = gate_evidence_requests() * 1.05 / rate + min(args.ramp, args.seconds / 4) / 2
    return max(args.seconds, math.ceil(needed))


def capacity_problems(step: Step) -> list[str]:
    """Why the step's steady state (after the ramp) misses its rate or the p95 (the
    client's after the ramp; the server's over the run, which is lower): what the machine
    cannot carry, whatever the start of the run did."""
    problems = []
    floor = step.offered * (1 - RATE_TOLERANCE)
    if not step.steady >= floor:
        problems.append(f"steady {_fmt(step.steady)} < {floor:.0f} req/s")
    limit = SLA_P95_S * 1000
    if step.steady_p95_ms is None or step.steady_p95_ms > limit:
        problems.append(f"steady p95 {_fmt(step.steady_p95_ms)} > {limit:g} ms")
    if step.server_p95_ms is None or step.server_p95_ms > limit:
        problems.append(f"server p95 {_fmt(step.server_p95_ms)} > {limit:g} ms")
    return problems


def sla_problems(step: Step) -> list[str]:
    """Why the run as a whole, as the gate judges it, misses the SLA: the rate (the gate's
    rule), both p95s, errors under 0.1 %, and the gate passing."""
    problems = []
    floor = step.offered * (1 - RATE_TOLERANCE)
    if step.achieved < floor:
        problems.append(f"achieved {step.achieved:.0f} < {floor:.0f} req/s")
    limit = SLA_P95_S * 1000
    if step.client_p95_ms is None or step.client_p95_ms > limit:
        problems.append(f"client p95 {_fmt(step.client_p95_ms)} > {limit:g} ms")
    if step.server_p95_ms is None or step.server_p95_ms > limit:
        problems.append(f"server p95 {_fmt(step.server_p95_ms)} > {limit:g} ms")
    if not step.error_ratio < SLA_ERROR_RATIO:
        problems.append(f"errors {_pct(step.error_ratio, 2)} % >= {SLA_ERROR_RATIO:.1%}")
    if step.gate_exit != 0:
        problems.append(f"gate {step.gate_verdict} (exit {step.gate_exit})")
    return problems


# --------------------------------------------------------------------------- one Locust


@dataclass
class Ceiling:
    """One Locust process sending GET /api/health back to back."""

    variant: str
    users: int
    requests: int
    window_s: float
    rate: float
    #: the process's CPU over the load's window, as a share of one core
    core_share: float
    #: requests per CPU second of the process: its rate with a whole core
    per_cpu_second: float
    cpu_warning: bool


def run_ceiling(variant: str, args: argparse.Namespace, ctx: dict[str, Any]) -> Ceiling:
    """One Locust process (no master) against GET /api/health, back to back."""
    out: Path = ctx["work"] / f"ceiling-{variant.replace(' ', '-')}"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    if variant == "with request log":
        env["SRE_LOADTEST_REQUESTS_DIR"] = str(out / "parts")
    users = args.ceiling_users
    argv = [sys.executable, "-m", "locust", "-f", str(BENCH / "locust_health.py")]
    argv += ["--headless", "--only-summary", "--loglevel", "INFO", "--host", ctx["app_url"]]
    argv += ["-u", str(users), "-r", str(users), "-t", f"{args.ceiling_seconds}s"]
    argv += ["--stop-timeout", "5", "--csv", str(out / "locust")]
    log(f"one Locust process, GET /api/health back to back, {variant}: {users} users")
    with (
        Sampler(ctx["app_pid"], ctx["prometheus_pid"]) as sampler,
        (out / "locust.log").open("wb") as handle,
    ):
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
        try:
            process.wait(args.ceiling_seconds + 60)
        finally:
            stop_process(process)
    text = (out / "locust.log").read_text(errors="replace")
    marks: dict[str, float] = {}
    for line in text.splitlines():
        for mark in (WINDOW_STARTED, WINDOW_STOPPED):
            if mark in line:
                marks.setdefault(mark, float(line.split(mark, 1)[1].split()[0]))
    if len(marks) < 2:
        raise RuntimeError(f"Locust did not run; {out / 'locust.log'} ends:\n{text[-2000:]}")
    start, end = marks[WINDOW_STARTED], marks[WINDOW_STOPPED]
    with (out / "locust_stats.csv").open(newline="", encoding="utf-8") as handle:
        count = next(
            int(row["Request Count"])
            for row in csv.DictReader(handle)
            if row["Name"] == "Aggregated"
        )
    window = end - start
    own = sampler.locust.get(process.pid, [])
    cpu = _interpolate(own, end) - _interpolate(own, start)
    result = Ceiling(
        variant=variant,
        users=users,
        requests=count,
        window_s=window,
        rate=count / window,
        core_share=cpu / window,
        per_cpu_second=count / cpu if cpu > 0 else math.nan,
        cpu_warning=bool(_CPU_WARNING.search(text)),
    )
    log(
        f"{variant}: {result.rate:.0f} req/s at {result.core_share:.0%} of a core, "
        f"{result.per_cpu_second:.0f} requests per CPU second"
    )
    return result


# --------------------------------------------------------------------------- the report


def _fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _pct(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.{digits}f}"


def print_report(
    args: argparse.Namespace, steps: list[Step], ceilings: list[Ceiling], facts: dict[str, Any]
) -> str:
    """Print the tables and the verdict; the verdict line."""
    print(
        f"SLA: > {SLA_RPS:,} requests/s, p95 < {SLA_P95_S * 1000:g} ms, errors < "
        f"{SLA_ERROR_RATIO:.1%}; this machine: {CORES} cores. The app on MariaDB under gunicorn"
        f" ({args.workers} workers x {args.threads} threads), Prometheus scraping it every 1 s,"
        f" Locust (the load profile's journeys, 1 request/s per user) as a master and"
        f" {args.processes} worker processes beside them; {args.seconds} s per step, a"
        f" {args.ramp:g} s ramp included (longer where a rate needs it to give the gate"
        f" {gate_evidence_requests()} requests). Seeded {facts['seed']}. 1-minute load average"
        f" before: {facts['load_before']:.2f}. Pacing of the users' requests:"
    )
    for pacing in args.pacing_list:
        print(f"  {pacing}: {PACING_NAMES[pacing]}")
    print(
        "\n== load steps: rates in requests/s, latencies in ms (client: the per-request log;"
        " server: Prometheus, as the gate read it) =="
    )
    print(
        f"{'pacing':<7} {'offered':>7} {'steady':>7} {'steady p95':>11} {'carried':>8}"
        f" {'achieved':>9} {'client p95':>11} {'server p95':>11} {'errors %':>9}"
        f" {'failed':>7} {'burst %':>8}  {'gate':<13} {'gate s':>7} {'end->exit s':>12}  SLA"
    )
    for s in steps:
        verdict = "holds" if s.holds else "no: " + "; ".join(s.sla_problems)
        print(
            f"{s.pacing:<7} {s.offered:>7} {_fmt(s.steady):>7} {_fmt(s.steady_p95_ms):>11}"
            f" {'yes' if s.keeps_up else 'no':>8} {s.achieved:>9.0f}"
            f" {_fmt(s.client_p95_ms):>11} {_fmt(s.server_p95_ms):>11}"
            f" {_pct(s.error_ratio, 3):>9} {s.failures:>7} {_pct(s.burst):>8}"
            f"  {s.gate_verdict:<13} {s.gate_s:>7.2f} {s.end_to_exit_s:>12.1f}  {verdict}"
        )
    print(
        "  steady: requests sent from 2 s after the ramp to 1 s before the end, per second,"
        " and their p95; carried: steady >= 90 % of offered and steady and server p95 <= 200"
        " ms; achieved: requests / (last answer - first request), the whole run as the gate"
        " counts it; client p95: the whole run; errors: 5xx or no answer; failed: any status"
        " the API does not document; burst: share of the steady requests sent in the busiest"
        " tenth of a second (10: spread evenly); gate s: judge_run to the exit code;"
        " end->exit s: from the run's last answer, Locust's shutdown and log merge included;"
        " SLA: the whole run: achieved, both p95s, errors, and the gate passing"
    )
    for s in steps:
        if s.errors_by_route:
            listed = ", ".join(f"{k}: {v}" for k, v in sorted(s.errors_by_route.items()))
            print(f"  errors, {s.pacing} {s.offered}: {listed}")
        if s.gate_reason:
            print(f"  gate, {s.pacing} {s.offered}: {s.gate_reason}")
    print(f"\n== CPU over each run's window: % of the machine's {CORES} cores; ms per request ==")
    print(
        f"{'pacing':<7} {'offered':>7} {'Locust':>7} {'busiest':>8} {'app':>5} {'mysqld':>7}"
        f" {'Prom':>5} {'rest':>5} {'idle':>5}  {'Locust ms':>9} {'app ms':>7}"
        f" {'mysqld ms':>9} {'total ms':>9} {'hashing %':>10} {'max req/s':>10}"
        f" {'unhashed':>9}"
    )
    for s in steps:
        sh, ms = s.shares, s.ms_per_request
        print(
            f"{s.pacing:<7} {s.offered:>7} {_pct(sh['locust']):>7} {_pct(s.busiest_locust):>8}"
            f" {_pct(sh['app']):>5} {_pct(sh['mysqld']):>7} {_pct(sh['prometheus']):>5}"
            f" {_pct(sh['rest']):>5} {_pct(sh['idle']):>5}  {ms['locust']:>9.2f}"
            f" {ms['app']:>7.2f} {ms['mysqld']:>9.2f} {ms['total']:>9.2f}"
            f" {_pct(s.hashing_share_of_app):>10} {_machine_ceiling(s):>10.0f}"
            f" {_machine_ceiling(s, hashing=False):>9.0f}"
        )
    print(
        "  Locust: master and workers; busiest: the busiest Locust process, % of ONE core;"
        " mysqld: the whole MariaDB server; rest: all other busy time (this script, other work"
        " on the machine); hashing: the app's CPU spent hashing passwords for the run's"
        f" registrations and logins (scrypt, {facts['hash_ms']:.0f} ms of CPU each, measured"
        " here); max req/s: cores x 1000 / total ms, the most this mix could reach with the"
        " whole machine for Locust, the app, MariaDB and Prometheus; unhashed: the same"
        " without the hashing's CPU (derived, as if passwords cost nothing)"
    )
    if ceilings:
        print(
            "\n== one Locust process, GET /api/health back to back (bench/locust_health.py,"
            f" FastHttpUser, {ceilings[0].users} users, {args.ceiling_seconds} s) =="
        )
        print(
            f"{'variant':<18} {'requests':>9} {'req/s':>7} {'% of a core':>12}"
            f" {'req per CPU s':>14}  CPU warning"
        )
        for c in ceilings:
            print(
                f"{c.variant:<18} {c.requests:>9} {c.rate:>7.0f} {_pct(c.core_share):>12}"
                f" {c.per_cpu_second:>14.0f}  {'yes' if c.cpu_warning else 'no'}"
            )
        print(
            "  req per CPU s: requests / the process's CPU seconds, the rate it reaches with a"
            " whole core to itself; the app answers on the same cores, so a process below 90 %"
            " of a core was waiting for the app"
        )
    if steps:
        slowest = max(s.gate_s for s in steps)
        met = "met" if slowest < GATE_BUDGET_S else "MISSED"
        print(
            f"\ngate time: {min(s.gate_s for s in steps):.2f}-{slowest:.2f} s from the call to"
            f" the exit code (target < {GATE_BUDGET_S:g} s: {met});"
            f" {min(s.end_to_exit_s for s in steps):.1f}-{max(s.end_to_exit_s for s in steps):.1f}"
            " s from the run's last answer, Locust's own shutdown and log merge included"
        )
    print(f"total time: {time.monotonic() - facts['started']:.0f} s")
    verdict = verdict_line(steps, ceilings, args, facts["hash_ms"])
    print("\nverdict: " + verdict)
    print(
        "command: "
        + shlex.join([os.path.relpath(sys.executable, ROOT), "bench/load_sla.py", *sys.argv[1:]])
    )
    return verdict


def _machine_ceiling(step: Step, hashing: bool = True) -> float:
    """Requests/s the machine's cores carry at the step's CPU per request (with or without
    the app's password hashing)."""
    ms = step.ms_per_request
    total = ms["total"]
    if not hashing and not math.isnan(step.hashing_share_of_app):
        total -= ms["app"] * min(1.0, step.hashing_share_of_app)
    return CORES * 1000 / total if total > 0 else math.nan


def _highest(steps: list[Step], test: str) -> str:
    chosen = [s.offered for s in steps if getattr(s, test)]
    return f"{max(chosen)} req/s" if chosen else "none"


def verdict_line(
    steps: list[Step], ceilings: list[Ceiling], args: argparse.Namespace, hash_ms: float
) -> str:
    """holds 1,000 req/s: yes/no; the highest rates holding, per pacing; the bottleneck."""
    if not steps:
        return "no step ran"
    at_sla = any(s.holds and s.achieved >= SLA_RPS for s in steps)
    parts = [f"holds {SLA_RPS:,} req/s: {'yes' if at_sla else 'no'}"]
    by_pacing = {p: [s for s in steps if s.pacing == p] for p in args.pacing_list}
    parts.append(
        "highest rate holding the SLA over a whole run, as the gate judges it: "
        + ", ".join(f"{_highest(ss, 'holds')} ({p} pacing)" for p, ss in by_pacing.items())
    )
    parts.append(
        "highest rate carried after the ramp (rate and p95 met, errors aside): "
        + ", ".join(f"{_highest(ss, 'keeps_up')} ({p} pacing)" for p, ss in by_pacing.items())
    )
    for p, ss in by_pacing.items():
        not_run = [r for r in args.rate_list if r not in {s.offered for s in ss}]
        if not_run:
            parts.append(f"not run with {p} pacing: {', '.join(map(str, not_run))}")
    # the bottleneck where the most load was carried: the highest rate achieved
    top = max(steps, key=lambda s: s.achieved)
    sh, ms = top.shares, top.ms_per_request
    causes = [
        f"{'CPU: ' if sh['busy'] >= 0.85 else ''}at {top.offered} req/s ({top.pacing} pacing)"
        f" the cores were {sh['busy']:.0%} busy (app {sh['app']:.0%}, Locust"
        f" {sh['locust']:.0%}, MariaDB {sh['mysqld']:.0%}, Prometheus {sh['prometheus']:.0%},"
        f" rest {sh['rest']:.0%}); the mix costs {ms['total']:.1f} ms of CPU per request (app"
        f" {ms['app']:.1f}, {_pct(top.hashing_share_of_app)} % of that hashing passwords;"
        f" Locust {ms['locust']:.1f}; MariaDB {ms['mysqld']:.1f}), so {CORES} cores carry at"
        f" most ~{_machine_ceiling(top):.0f} req/s of it, ~"
        f"{_machine_ceiling(top, hashing=False):.0f} if passwords cost nothing"
    ]
    bursty = [s for s in steps if s.burst >= 0.3 and not s.keeps_up]
    if bursty:
        s = bursty[0]
        causes.append(
            f"with {s.pacing} pacing the load comes in bursts ({s.burst:.0%} of the requests"
            f" in the same tenth of each second) and the p95 misses at {s.offered} req/s with"
            f" the cores {s.shares['busy']:.0%} busy"
        )
    ramps = [
        s
        for s in steps
        if s.keeps_up and (s.client_p95_ms or 0) > SLA_P95_S * 1000 and s.ramp_hashes
    ]
    if ramps:
        s = max(ramps, key=lambda s: s.offered)
        causes.append(
            f"the start of a run: at {s.offered} req/s ({s.pacing} pacing) the users' first"
            f" registrations and logins ({s.ramp_hashes} password hashes, ~"
            f"{s.ramp_hashes * hash_ms / 1000:.0f} s of CPU) arrive within the ramp and push"
            " the whole run's p95 to"
            f" {_fmt(s.client_p95_ms)} ms; after the ramp it is {_fmt(s.steady_p95_ms)} ms"
        )
    errors = [s for s in steps if not s.error_ratio < SLA_ERROR_RATIO]
    if errors:
        routes: dict[str, int] = {}
        for s in errors:
            for route, count in s.errors_by_route.items():
                routes[route] = routes.get(route, 0) + count
        worst = max(routes.items(), key=lambda kv: kv[1])
        causes.append(
            f"errors >= 0.1 % in {len(errors)} of {len(steps)} steps (most: {worst[0]},"
            f" {worst[1]} in all)"
        )
    generator = [s for s in steps if s.busiest_locust >= 0.9 or s.cpu_warning]
    if generator:
        causes.append(
            "the load generator: a Locust process at "
            f"{max(s.busiest_locust for s in generator):.0%} of a core"
        )
    elif ceilings:
        per_core = max(c.per_cpu_second for c in ceilings)
        causes.append(
            f"not the generator: one Locust process drives ~{per_core:.0f} health checks/s"
            f" and ~{1000 / ms['locust']:.0f} req/s of this mix with a core to itself (its"
            f" busiest process used {top.busiest_locust:.0%} of one)"
        )
    return "; ".join(parts) + "; bottleneck: " + "; ".join(causes)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates",
        default="100,200,400,700,1000",
        help="offered requests/s, comma-separated (100,200,400,700,1000)",
    )
    parser.add_argument(
        "--seconds",
        type=int,
        default=35,
        help="run time per step (35); longer where a rate needs it for 2995 requests",
    )
    parser.add_argument("--ramp", type=float, default=5, help="seconds to start every user (5)")
    parser.add_argument(
        "--refine", type=int, default=1, help="steps halving the gap below the first rate missed"
    )
    parser.add_argument(
        "--pacing",
        default="locust,spread",
        help="locust (the project's locustfile) and/or spread (bench/locust_spread.py)",
    )
    parser.add_argument(
        "--workers", type=int, default=2 * CORES + 1, help="gunicorn workers (2 x cores + 1)"
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (4)")
    parser.add_argument("--processes", type=int, default=2, help="Locust worker processes (2)")
    parser.add_argument("--warmup", type=int, default=8, help="seconds of unmeasured load (8)")
    parser.add_argument("--ceiling-seconds", type=int, default=10, help="per ceiling run (10)")
    parser.add_argument("--ceiling-users", type=int, default=32, help="users of a ceiling run")
    parser.add_argument("--skip-ceiling", action="store_true", help="leave the ceiling out")
    parser.add_argument("--books", type=int, default=5000, help="seeded books (5000)")
    parser.add_argument("--members", type=int, default=2000, help="seeded members (2000)")
    parser.add_argument("--loans", type=int, default=50_000, help="seeded loans (50000)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    try:
        args.rate_list = sorted({int(r) for r in args.rates.split(",") if r.strip()})
    except ValueError:
        parser.error(f"--rates must be whole numbers, not {args.rates!r}")
    if not args.rate_list or min(args.rate_list) < 1:
        parser.error("--rates must be at least 1")
    args.pacing_list = [p.strip() for p in args.pacing.split(",") if p.strip()]
    if not args.pacing_list or set(args.pacing_list) - set(PACINGS):
        parser.error(f"--pacing takes {' and/or '.join(PACINGS)}, not {args.pacing!r}")
    if args.seconds < 10 or args.ramp <= 0 or args.processes < 1 or args.refine < 0:
        parser.error("--seconds >= 10, --ramp > 0, --processes >= 1, --refine >= 0")
    return args


def stepped(pacing: str, args: argparse.Namespace, ctx: dict[str, Any]) -> list[Step]:
    """The rates in turn until one is not carried (after the ramp, its rate or a p95 is
    missed); then ``--refine`` steps, each halving the gap between the highest rate carried
    and the lowest one not."""
    steps: list[Step] = []
    for rate in args.rate_list:
        steps.append(run_step(rate, pacing, args, ctx))
        time.sleep(3)  # let the queues drain
        if not steps[-1].keeps_up:
            break
    for _ in range(args.refine):
        kept = [s.offered for s in steps if s.keeps_up]
        short = [s.offered for s in steps if not s.keeps_up]
        if not short:
            break
        low, high = max(kept, default=0), min(short)
        rate = int(round((low + high) / 2, -1)) if high - low >= 40 else (low + high) // 2
        if rate in (low, high) or rate < 1:
            break
        steps.append(run_step(rate, pacing, args, ctx))
        time.sleep(3)
    return sorted(steps, key=lambda s: s.offered)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: everything is stopped
    database = f"sre_bench_{secrets.token_hex(4)}"
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    steps: list[Step] = []
    ceilings: list[Ceiling] = []
    try:
        with ExitStack() as cleanup:
            work = Path(tempfile.mkdtemp(prefix="sre-load-sla-"))
            if args.keep:
                log(f"work directory kept: {work}")
            else:
                cleanup.callback(shutil.rmtree, work, ignore_errors=True)
            log(f"creating database {database} and seeding it")
            mysql_execute(
                f"CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            cleanup.callback(mysql_execute, f"DROP DATABASE IF EXISTS {database}")
            env = app_env(database)
            seeded = _run_sre(
                ["app", "seed", "--books", str(args.books), "--members", str(args.members),
                 "--loans", str(args.loans)],
                env,
                "seeding",
            )  # fmt: skip
            log(seeded.splitlines()[-1] if seeded else "seeded")
            password_file = work / "admin-password"
            password_file.write_text(secrets.token_hex(16))
            _run_sre(
                ["app", "users", "add", "--email", _ADMIN_EMAIL, "--role", "admin",
                 "--password-file", str(password_file)],
                env,
                "creating the admin",
            )  # fmt: skip
            app, app_url = start_app(args, env, work, cleanup)
            prometheus, prometheus_url = start_prometheus(work, app_url, cleanup)
            log(f"app at {app_url} (pid {app.pid}), Prometheus at {prometheus_url}")
            ctx: dict[str, Any] = {
                "work": work,
                "app_url": app_url,
                "app_pid": app.pid,
                "prometheus_pid": prometheus.pid,
                "prometheus_url": prometheus_url,
                "slos": [slo for doc in load_specs([SPECS_DIR]) for slo in doc.slos],
                "admin_env": {
                    "SRE_LOADTEST_ADMIN_EMAIL": _ADMIN_EMAIL,
                    "SRE_LOADTEST_ADMIN_PASSWORD_FILE": str(password_file),
                },
                "hash_ms": hash_cost_ms(),
            }
            if args.warmup:
                log(f"warm-up: {args.warmup} s at 50 req/s, not measured")
                run_loadtest(
                    "load",
                    app_url,
                    work / "warmup",
                    users=50,
                    spawn_rate=25,
                    run_time_s=args.warmup,
                    env=ctx["admin_env"],
                )
            for pacing in args.pacing_list:
                steps += stepped(pacing, args, ctx)
            if not args.skip_ceiling:
                for variant in ("plain Locust", "with request log"):
                    ceilings.append(run_ceiling(variant, args, ctx))
            facts = {
                "seed": f"{args.books} books, {args.members} members, {args.loans} loans",
                "load_before": load_before,
                "hash_ms": ctx["hash_ms"],
                "started": started,
            }
            verdict = print_report(args, steps, ceilings, facts)
            log(f"done in {time.monotonic() - started:.0f} s; stopping everything")
    except KeyboardInterrupt:
        log("interrupted; everything it started is stopped and its database dropped")
        return 130
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        loadtests.run.LOCUSTFILE = PACINGS["locust"]
    if args.json:
        data = {
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "cores": CORES,
            "steps": [{**asdict(s), "keeps_up": s.keeps_up, "holds": s.holds} for s in steps],
            "ceilings": [asdict(c) for c in ceilings],
            "hash_ms": facts["hash_ms"],
            "load_before": load_before,
            "verdict": verdict,
        }
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
