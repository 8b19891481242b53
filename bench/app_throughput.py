"""Throughput of the library service with and without instrumentation (prints figures).

One run measures requests per second of a realistic request mix (``bench/mix.lua``)
against the service on MariaDB under gunicorn, three ways, interleaved round by round:

* ``off``: ``sre app serve`` with ``SRE_METRICS_ENABLED=false``;
* ``sre``: ``sre app serve`` with this project's instrumentation (the default);
* ``pfe``: the uninstrumented app wrapped by prometheus-flask-exporter's
  ``GunicornPrometheusMetrics`` (``bench/pfe_wsgi.py``, ``bench/pfe_gunicorn.py``).

Gunicorn is pinned to one core and wrk to another. Before that it measures the in-process
cost of the instrumentation per request with Flask's test client. See bench/README.md.

Usage: ``.venv/bin/python bench/app_throughput.py [--duration 15] [--repeats 3] ...``
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sre.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.prefix) / "bin"
MYSQL_HOST = "127.0.0.1"
MYSQL_PORT = 3306
DB_NAME = "sre_bench"
DATABASE_URL = f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{DB_NAME}"
MODES = ("off", "sre", "pfe")
SEARCH_WORDS = ("silent", "garden", "river", "harbour", "storm", "golden", "winter", "atlas")
PER_PAGE = 20
MEMBER_PASSWORD = "bench-password-1"
#: in-process cost per request the project aims to stay under
TARGET_US = 10.0


@dataclass(frozen=True)
class RunResult:
    """What one measured wrk run against one server produced."""

    mode: str
    round: int
    rps: float
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    error_rate: float
    conflicts: int
    counters: dict[str, int]
    #: CPU time the server (gunicorn master and workers) spent per answered request
    server_cpu_us: float = 0.0


@dataclass(frozen=True)
class MicroResult:
    """Per-request time of GET /api/health in-process, metrics off vs on, per repeat (µs)."""

    off_us: list[float]
    on_us: list[float]

    @property
    def diff_us(self) -> float:
        """Median over repeats of the paired difference on - off."""
        return statistics.median(on - off for on, off in zip(self.on_us, self.off_us, strict=True))


# --------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    """Progress line on stderr, so stdout holds only the figures."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def http_json(
    method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, Any]:
    """Send one request; return the status and the decoded JSON body (None if not JSON)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def pinned(cpu: int | None, argv: Sequence[str]) -> list[str]:
    """The command, prefixed with ``taskset -c CPU`` when a CPU is given."""
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else list(argv)


def base_env() -> dict[str, str]:
    """This environment without any service or metrics setting, plus the benchmark's own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SRE_", "PROMETHEUS_", "prometheus_")) and k != "DATABASE_URL"
    }
    env["DATABASE_URL"] = DATABASE_URL
    env["SRE_ACCESS_LOG"] = "false"
    return env


# --------------------------------------------------------------------------- database


def recreate_database() -> None:
    """Drop and create the ``sre_bench`` database (and only that one)."""
    import pymysql

    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="")
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
            cursor.execute(
                f"CREATE DATABASE {DB_NAME} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
    finally:
        conn.close()


def seed_database(books: int, members: int, loans: int) -> None:
    """Load the sample data with the project's own seeder."""
    argv = [str(BIN / "sre"), "app", "seed", "--books", str(books), "--members", str(members)]
    argv += ["--loans", str(loans)]
    done = subprocess.run(argv, env=base_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed ({done.returncode}): {done.stderr.strip()}")
    log(done.stdout.strip())


def max_book_id() -> int:
    """The highest book id in the benchmark database."""
    import pymysql

    conn = pymysql.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="", database=DB_NAME
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT COALESCE(MAX(id), 0) FROM books")
            row = cursor.fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------- servers


class Server:
    """One gunicorn master serving the app on a loopback port; its log goes to a file."""

    def __init__(self, mode: str, argv: list[str], env: dict[str, str], port: int, logs: Path):
        self.mode = mode
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = logs / f"server-{mode}.log"
        self._argv = argv
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        """Launch the server and wait until GET /api/ready answers 200."""
        with open(self.log_path, "wb") as log_file:
            self._proc = subprocess.Popen(
                self._argv,
                env=self._env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches every worker
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.mode} server exited early; log:\n{self.log_tail()}")
            try:
                if http_json("GET", f"{self.url}/api/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.mode} server not ready in {timeout_s:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the master and wait; SIGKILL its process group if it lingers."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def cpu_seconds(self) -> float:
        """CPU time of the master and its live workers, and of the workers it reaped."""
        from app.process import read_server

        assert self._proc is not None
        return read_server(self._proc.pid).cpu_seconds

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def server_for(mode: str, args: argparse.Namespace, work: Path) -> Server:
    """The server of one mode, configured alike except for the instrumentation."""
    port = free_port()
    env = base_env()
    common = ["--workers", str(args.workers), "--threads", str(args.threads)]
    common += ["--max-requests", str(args.max_requests)]
    common += ["--max-requests-jitter", str(args.max_requests // 10)]
    if mode in ("off", "sre"):
        if mode == "off":
            env["SRE_METRICS_ENABLED"] = "false"
        argv = [str(BIN / "sre"), "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
        argv += common
    else:
        multiproc = work / "pfe-multiproc"
        shutil.rmtree(multiproc, ignore_errors=True)
        multiproc.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
        argv = [str(BIN / "gunicorn"), "-c", str(BENCH / "pfe_gunicorn.py")]
        argv += ["--bind", f"127.0.0.1:{port}", *common, "--worker-class", "gthread"]
        argv += ["--pythonpath", str(BENCH), "pfe_wsgi:application"]
    return Server(mode, pinned(args.server_cpu, argv), env, port, work)


# --------------------------------------------------------------------------- members


def create_members(url: str, count: int) -> list[tuple[int, str]]:
    """Register members through the API and log each in; (member id, token) pairs."""
    stamp = f"{os.getpid()}-{int(time.time())}"

    def one(i: int) -> tuple[int, str]:
        email = f"bench-{stamp}-{i}@example.com"
        status, member = http_json(
            "POST",
            f"{url}/api/members",
            {"email": email, "name": f"Bench Reader {i}", "password": MEMBER_PASSWORD},
        )
        if status != 201:
            raise RuntimeError(f"POST /api/members answered {status}: {member}")
        status, token = http_json(
            "POST", f"{url}/api/auth/token", {"email": email, "password": MEMBER_PASSWORD}
        )
        if status != 200:
            raise RuntimeError(f"POST /api/auth/token answered {status}: {token}")
        return int(member["id"]), str(token["access_token"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def return_open_loans(url: str, members: Sequence[tuple[int, str]]) -> int:
    """Return every loan the benchmark members still hold (left over when a run ends)."""
    returned = 0
    for _member_id, token in members:
        status, page = http_json("GET", f"{url}/api/loans?status=active&per_page=100", None, token)
        if status != 200:
            raise RuntimeError(f"GET /api/loans answered {status}: {page}")
        for loan in page["items"]:
            if http_json("POST", f"{url}/api/loans/{loan['id']}/return", None, token)[0] == 200:
                returned += 1
    return returned


def write_mix_config(
    path: Path, members: Sequence[tuple[int, str]], book_ids: int, seed: int
) -> None:
    """The Lua table bench/mix.lua reads: tokens, member ids, book id range, words."""

    def lua_list(values: Sequence[object]) -> str:
        return "{" + ", ".join(json.dumps(v) for v in values) + "}"

    path.write_text(
        "return {\n"
        f"  member_ids = {lua_list([m for m, _ in members])},\n"
        f"  tokens = {lua_list([t for _, t in members])},\n"
        f"  max_book_id = {book_ids},\n"
        f"  pages = {max(1, book_ids // PER_PAGE)},\n"
        f"  words = {lua_list(list(SEARCH_WORDS))},\n"
        f"  seed = {seed},\n"
        "}\n",
        encoding="utf-8",
    )


# --------------------------------------------------------------------------- wrk


def wrk_argv(args: argparse.Namespace, url: str, seconds: float) -> list[str]:
    """The wrk command line for one run against one server."""
    argv = ["wrk", "-t1", f"-c{args.connections}", f"-d{seconds:g}s", "--latency"]
    argv += ["-s", str(BENCH / "mix.lua"), url]
    return pinned(args.client_cpu, argv)


def run_wrk(args: argparse.Namespace, url: str, seconds: float, config: Path) -> dict[str, Any]:
    """Run wrk with the mix; return the BENCH_RESULT numbers that mix.lua's done() prints."""
    env = dict(os.environ, BENCH_MIX_CONFIG=str(config))
    done = subprocess.run(
        wrk_argv(args, url, seconds),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return dict(json.loads(line[len("BENCH_RESULT ") :]))
    raise RuntimeError(f"wrk gave no result ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def to_result(mode: str, round_no: int, raw: dict[str, Any]) -> RunResult:
    """Turn mix.lua's numbers into one RunResult."""
    socket_errors = sum(raw[k] for k in ("err_connect", "err_read", "err_write", "err_timeout"))
    errors = int(raw["n_5xx"]) + socket_errors
    attempts = int(raw["requests"]) + socket_errors
    counters = {k: int(v) for k, v in raw.items() if k.startswith(("n_", "err_"))}
    return RunResult(
        mode=mode,
        round=round_no,
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        requests=int(raw["requests"]),
        p50_ms=raw["lat_p50_us"] / 1000,
        p95_ms=raw["lat_p95_us"] / 1000,
        p99_ms=raw["lat_p99_us"] / 1000,
        errors=errors,
        error_rate=errors / attempts if attempts else 0.0,
        conflicts=int(raw["n_409"]),
        counters=counters,
    )


# --------------------------------------------------------------------------- in-process cost


def _instrumented(flavour: str, config: Any) -> Any:
    """The app with one instrumentation: "off", "sre" (this project's) or "pfe"."""
    from app import create_app

    if flavour == "sre":
        return create_app(config)
    flask_app = create_app(replace(config, metrics_enabled=False))
    if flavour == "pfe":
        # As bench/pfe_wsgi.py does under gunicorn, or the single-process class without it.
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics

            GunicornPrometheusMetrics(flask_app, group_by="url_rule")
        else:
            from prometheus_flask_exporter import PrometheusMetrics

            PrometheusMetrics(flask_app, group_by="url_rule")
    return flask_app


def _health_client(flavour: str, folder: str) -> Any:
    """A Flask test client of the app instrumented by ``flavour``, on SQLite in ``folder``."""
    from app.config import load_config
    from app.db import migrate
    from app.state import utc_now

    config = load_config(
        env={}, database_url=f"sqlite:///{folder}/micro-{flavour}.sqlite3", access_log=False
    )
    flask_app = _instrumented(flavour, config)
    migrate(flask_app.extensions["elibrary"].db, utc_now())
    return flask_app.test_client()


def _health_requests(client: Any, n: int) -> None:
    for _ in range(n):
        response = client.get("/api/health")
        if response.status_code != 200:
            raise RuntimeError(f"/api/health answered {response.status_code}")


def measure_inprocess(requests: int, repeats: int, flavour: str = "sre") -> MicroResult:
    """Time GET /api/health through Flask's test client on two apps: uninstrumented, and
    instrumented by ``flavour``."""
    with tempfile.TemporaryDirectory(prefix="sre-bench-micro-") as tmp:
        clients = {
            enabled: _health_client(flavour if enabled else "off", tmp) for enabled in (False, True)
        }

        def batch(enabled: bool, n: int) -> float:
            # CPU time of this thread, not wall time: on a shared machine the time other
            # tenants take would otherwise dwarf the few microseconds measured here.
            gc.collect()
            started = time.thread_time()
            _health_requests(clients[enabled], n)
            return (time.thread_time() - started) / n * 1e6

        for enabled in (False, True):  # warm both up: imports, caches, label children
            batch(enabled, min(2000, requests))
        timings: dict[bool, list[float]] = {False: [], True: []}
        for repeat in range(repeats):
            order = (False, True) if repeat % 2 == 0 else (True, False)
            for enabled in order:
                timings[enabled].append(batch(enabled, requests))
    return MicroResult(off_us=timings[False], on_us=timings[True])


def measure_inprocess_child(
    requests: int, repeats: int, cpu: int | None, flavour: str, multiprocess: bool
) -> MicroResult:
    """The same in a fresh process, with PROMETHEUS_MULTIPROC_DIR set when ``multiprocess``.

    Each instrumentation gets a process of its own: prometheus-client's value class is
    process-wide, and this project replaces it (a cached pid), which must not speed up
    the reference.
    """
    with tempfile.TemporaryDirectory(prefix="sre-bench-multiproc-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = tmp
        argv = [sys.executable, str(Path(__file__).resolve()), "--micro-child", flavour]
        argv += ["--micro-requests", str(requests), "--micro-repeats", str(repeats)]
        done = subprocess.run(
            pinned(cpu, argv), env=env, capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"in-process micro-benchmark ({flavour}) failed:\n{done.stderr}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return MicroResult(off_us=data["off_us"], on_us=data["on_us"])


#: requests of the short and the long counted run; their difference cancels start-up
COUNT_REQUESTS = (200, 1200)
#: the same for the request mix, whose requests are heavier
COUNT_MIX_REQUESTS = (100, 400)


def _mix_client(flavour: str, folder: str) -> tuple[Any, dict[str, str]]:
    """The app instrumented by ``flavour`` on a seeded SQLite library, and a member's token."""
    from app.seed import write_seed
    from app.state import utc_now

    client = _health_client(flavour, folder)
    state = client.application.extensions["elibrary"]
    write_seed(
        state.db, books=500, members=50, loans=500, loan_limit=5, loan_days=14, now=utc_now()
    )
    member = {"email": "mix@example.org", "name": "Mix", "password": MEMBER_PASSWORD}
    if client.post("/api/members", json=member).status_code != 201:
        raise RuntimeError("cannot register the mix's member")
    login = {"email": member["email"], "password": MEMBER_PASSWORD}
    token = client.post("/api/auth/token", json=login).get_json()["access_token"]
    return client, {"Authorization": f"Bearer {token}"}


def _mix_requests(client: Any, headers: dict[str, str], n: int) -> None:
    """``n`` requests of bench/mix.lua's mix (40% list pages, 20% searches, 25% single
    books, 15% a borrow and its return), the same sequence in every run."""
    import random

    rng = random.Random(7)
    for _ in range(n):
        r = rng.random()
        if r < 0.40:
            answer = client.get(f"/api/books?page={rng.randint(1, 25)}&per_page={PER_PAGE}")
        elif r < 0.60:
            answer = client.get(f"/api/books?q={rng.choice(SEARCH_WORDS)}&per_page={PER_PAGE}")
        elif r < 0.85:
            answer = client.get(f"/api/books/{rng.randint(1, 500)}")
        else:
            answer = client.post(
                "/api/loans", json={"book_id": rng.randint(1, 500)}, headers=headers
            )
            if answer.status_code == 201:
                loan = answer.get_json()["id"]
                answer = client.post(f"/api/loans/{loan}/return", headers=headers)
            elif answer.status_code == 409:
                continue
        if answer.status_code >= 400:
            raise RuntimeError(f"the mix got {answer.status_code}: {answer.get_data()!r}")


def count_instructions(flavour: str, requests: int, workload: str = "health") -> int:
    """Instructions (valgrind's callgrind) that a child building the app instrumented by
    ``flavour``, in multiprocess mode, and answering ``requests`` of ``workload`` (health
    checks, or the request mix) executes."""
    with tempfile.TemporaryDirectory(prefix="sre-bench-count-") as tmp:
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=tmp, PYTHONHASHSEED="0")
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        argv += [sys.executable, str(Path(__file__).resolve()), "--count-child", flavour]
        argv += ["--micro-requests", str(requests), "--count-workload", workload]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    collected = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or collected is None:
        raise RuntimeError(f"counting instructions ({flavour}) failed:\n{done.stderr[-2000:]}")
    return int(collected.group(1))


def instructions_per_request(flavour: str, workload: str = "health") -> float:
    """Instructions per request of ``workload``, start-up excluded."""
    sizes = COUNT_REQUESTS if workload == "health" else COUNT_MIX_REQUESTS
    short, long = (count_instructions(flavour, n, workload) for n in sizes)
    return (long - short) / (sizes[1] - sizes[0])


# --------------------------------------------------------------------------- the run


def run_throughput(
    args: argparse.Namespace, work: Path
) -> tuple[list[RunResult], dict[str, int], str]:
    """Start the three servers, load each in turn, round by round; stop them whatever happens."""
    results: list[RunResult] = []
    with ExitStack() as stack:
        servers: dict[str, Server] = {}
        for mode in MODES:
            server = server_for(mode, args, work)
            stack.callback(server.stop)
            log(f"starting {mode} server on {server.url}")
            server.start()
            servers[mode] = server

        setup_url = servers["off"].url
        member_count = args.members or 2 * args.connections
        log(f"creating {member_count} members through the API")
        members = create_members(setup_url, member_count)
        book_ids = max_book_id()
        mix_config = work / "mix_config.lua"
        write_mix_config(mix_config, members, book_ids, seed=args.seed)

        for round_no in range(1, args.repeats + 1):
            for mode in MODES:
                server = servers[mode]
                return_open_loans(server.url, members)
                if args.warmup > 0:
                    run_wrk(args, server.url, args.warmup, mix_config)
                return_open_loans(server.url, members)
                cpu_before = server.cpu_seconds()
                raw = run_wrk(args, server.url, args.duration, mix_config)
                cpu_used = server.cpu_seconds() - cpu_before
                result = replace(
                    to_result(mode, round_no, raw),
                    server_cpu_us=cpu_used / max(int(raw["requests"]), 1) * 1e6,
                )
                results.append(result)
                log(
                    f"round {round_no} {mode}: {result.rps:8.1f} rps  p50 {result.p50_ms:.1f} ms"
                    f"  p95 {result.p95_ms:.1f} ms  p99 {result.p99_ms:.1f} ms"
                    f"  errors {result.errors}  409s {result.conflicts}"
                )
        leftover = return_open_loans(setup_url, members)
        log(f"returned {leftover} loans left open by the last run")
        check = check_instrumentation(servers, work)
        log(f"{check}; stopping servers")
    return results, {"members": member_count, "book_ids": book_ids}, check


def check_instrumentation(servers: dict[str, Server], work: Path) -> str:
    """Confirm each mode measured what it should: off nothing, sre and pfe every request."""
    off_status = http_json("GET", f"{servers['off'].url}/metrics")[0]
    if off_status != 404:
        raise RuntimeError(f"off server answered /metrics with {off_status}, expected 404")
    with urllib.request.urlopen(f"{servers['sre'].url}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    sre_series = sum(1 for line in text.splitlines() if line.startswith("http_requests_total{"))
    pfe_files = [f for f in (work / "pfe-multiproc").glob("*.db") if f.stat().st_size > 0]
    if not sre_series or not pfe_files:
        raise RuntimeError(f"instrumentation missing: sre {sre_series} series, pfe {pfe_files}")
    return (
        f"instrumentation check: off /metrics 404, sre /metrics {sre_series} "
        f"http_requests_total series, pfe {len(pfe_files)} multiprocess files"
    )


# --------------------------------------------------------------------------- report


def report_throughput(
    args: argparse.Namespace, results: list[RunResult], facts: dict[str, int]
) -> None:
    """The per-mode table, the costs against ``off`` and the request mix."""
    by_mode = {mode: [r for r in results if r.mode == mode] for mode in MODES}
    median_rps = {mode: statistics.median(r.rps for r in runs) for mode, runs in by_mode.items()}

    def med(runs: list[RunResult], attr: str) -> float:
        return statistics.median(float(getattr(r, attr)) for r in runs)

    print()
    print("== Throughput: library service on MariaDB under gunicorn, request mix bench/mix.lua ==")
    print(
        f"gunicorn {args.workers} workers x {args.threads} threads (gthread), "
        f"max-requests {args.max_requests}, on CPU {args.server_cpu}; "
        f"wrk -t1 -c{args.connections} on CPU {args.client_cpu}; "
        f"{args.repeats} x {args.duration:g}s per mode (after {args.warmup:g}s warm-up), "
        f"interleaved; {facts['members']} members, books 1..{facts['book_ids']}"
    )
    print("per-run rps:")
    for mode, runs in by_mode.items():
        print(f"  {mode:<4} " + "  ".join(f"{r.rps:8.1f}" for r in runs))
    print()
    header = (
        f"{'mode':<5}{'rps (median)':>13}{'min..max':>17}{'cost vs off':>13}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}{'err rate':>10}{'409s':>7}"
    )
    print(header)
    print("-" * len(header))
    for mode, runs in by_mode.items():
        rps = median_rps[mode]
        spread = f"{min(r.rps for r in runs):.0f}..{max(r.rps for r in runs):.0f}"
        cost = "-" if mode == "off" else f"{(1 - rps / median_rps['off']) * 100:+.1f}%"
        errors = sum(r.errors for r in runs)
        requests = sum(r.requests for r in runs)
        print(
            f"{mode:<5}{rps:>13.1f}{spread:>17}{cost:>13}"
            f"{med(runs, 'p50_ms'):>9.1f}{med(runs, 'p95_ms'):>9.1f}{med(runs, 'p99_ms'):>9.1f}"
            f"{errors:>8}{errors / max(requests, 1) * 100:>9.2f}%"
            f"{sum(r.conflicts for r in runs):>7}"
        )
    print(
        "(latency columns: median over runs of each run's percentile; errors = 5xx + socket "
        "errors, summed; 409s = expected refusals of a borrow)"
    )
    print()
    for mode in ("sre", "pfe"):
        paired = [1 - r.rps / o.rps for r, o in zip(by_mode[mode], by_mode["off"], strict=True)]
        print(
            f"cost {mode} = 1 - rps({mode})/rps(off) = "
            f"{(1 - median_rps[mode] / median_rps['off']) * 100:+.1f}% "
            f"(per round: {', '.join(f'{c * 100:+.1f}%' for c in paired)})"
        )
    cpu = {mode: med(runs, "server_cpu_us") for mode, runs in by_mode.items()}
    for mode in ("sre", "pfe"):
        print(
            f"server CPU per request, {mode}: {cpu[mode]:.0f} us against {cpu['off']:.0f} us "
            f"off, so the instrumentation costs {cpu[mode] - cpu['off']:+.0f} us "
            f"({(cpu[mode] / cpu['off'] - 1) * 100:+.1f}%; per round: "
            + ", ".join(
                f"{r.server_cpu_us - o.server_cpu_us:+.0f}"
                for r, o in zip(by_mode[mode], by_mode["off"], strict=True)
            )
            + " us)"
        )
    for mode in MODES:
        runs = by_mode[mode]
        print(
            f"rate held, {mode}: {median_rps[mode]:.0f} rps with p95 "
            f"{med(runs, 'p95_ms'):.1f} ms and {med(runs, 'error_rate') * 100:.2f}% errors"
        )
    totals = {k: sum(r.counters.get(k, 0) for r in results) for k in results[0].counters}
    sent = sum(totals[k] for k in ("n_list", "n_search", "n_get", "n_borrow", "n_return"))
    print(
        "mix sent (all measured runs): "
        + ", ".join(
            f"{label} {totals[key] / max(sent, 1) * 100:.1f}%"
            for label, key in (
                ("list", "n_list"),
                ("search", "n_search"),
                ("get", "n_get"),
                ("borrow", "n_borrow"),
                ("return", "n_return"),
            )
        )
        + f"; borrows answered 201: {totals['n_borrowed']}, returns answered 200: "
        f"{totals['n_returned']}, 404s: {totals['n_404']}, other 4xx: {totals['n_4xx_other']}"
    )


def report(
    args: argparse.Namespace,
    results: list[RunResult],
    micro: dict[tuple[str, str], MicroResult],
    instructions: dict[tuple[str, str], float],
    facts: dict[str, int],
    check: str,
    elapsed_s: float,
) -> None:
    """Print the figures: per-mode table, costs, in-process cost, and the command."""
    if results:
        report_throughput(args, results, facts)
    if micro:
        print()
        print(
            f"== In-process cost of the instrumentation: GET /api/health via Flask test client, "
            f"{args.micro_requests} requests x {args.micro_repeats} repeats, interleaved with "
            "the uninstrumented app in the same process; a process per instrumentation =="
        )
    for (store, flavour), result in micro.items():
        diff = result.diff_us
        verdict = "OK" if diff < TARGET_US else "OVER TARGET"
        label = f"{flavour} {store}"
        print(
            f"{label:<26} off {statistics.median(result.off_us):7.1f} us/req  "
            f"on {statistics.median(result.on_us):7.1f} us/req  "
            f"cost {diff:+6.2f} us/req  (target < {TARGET_US:g} us: {verdict})"
        )
        per_repeat = ", ".join(
            f"{on - off:+.1f}" for on, off in zip(result.on_us, result.off_us, strict=True)
        )
        print(f"{'':<26} per repeat: {per_repeat} us/req")
    for store in ("multiprocess", "single-process"):
        if (store, "sre") in micro and (store, "pfe") in micro:
            ours, theirs = micro[(store, "sre")].diff_us, micro[(store, "pfe")].diff_us
            print(
                f"{store}: sre costs {ours:.2f} us/req, prometheus-flask-exporter "
                f"{theirs:.2f} us/req (ratio sre/pfe {ours / theirs:.2f})"
            )
    if instructions:
        print()
        print(
            "== Instructions per request in-process, multiprocess files, counted by valgrind "
            "--tool=callgrind (a long run minus a short one; counted, not timed, so other work "
            "on the machine does not change them) =="
        )
        per_us = statistics.median(micro[("multiprocess", "sre")].off_us) if micro else 0.0
        for workload, label in (
            ("health", f"GET /api/health ({COUNT_REQUESTS[1]} - {COUNT_REQUESTS[0]} requests)"),
            ("mix", f"the request mix on SQLite ({COUNT_MIX_REQUESTS[1]} - "
             f"{COUNT_MIX_REQUESTS[0]} requests): a CPU-bound server's throughput cost"),
        ):  # fmt: skip
            off = instructions[(workload, "off")]
            print(f"{label}: {off:,.0f} instructions uninstrumented")
            for flavour in ("sre", "pfe"):
                extra = instructions[(workload, flavour)] - off
                as_us = (
                    f", about {extra / (off / per_us):.1f} us at this run's speed"
                    if workload == "health" and per_us
                    else ""
                )
                print(f"  {flavour}: {extra:+,.0f} per request ({extra / off * 100:+.2f}%{as_us})")
            ratio = (instructions[(workload, "sre")] - off) / (
                instructions[(workload, "pfe")] - off
            )
            print(f"  ratio of the instrumentation's instructions, sre/pfe: {ratio:.2f}")
    print()
    print(check)
    print(
        f"total time {elapsed_s:.0f}s; 1-minute load average at start "
        f"{facts['load_before_x100'] / 100:.2f} on {os.cpu_count()} CPUs "
        "(other work on the machine competes with the servers and adds noise)"
    )
    print("command: " + shlex.join([os.path.relpath(sys.executable, ROOT), *sys.argv]))
    print(
        "wrk per run: "
        + shlex.join(wrk_argv(args, "http://127.0.0.1:PORT", args.duration))
        + "  (env BENCH_MIX_CONFIG=<generated Lua table>)"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command-line options."""
    cpus = sorted(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per run")
    parser.add_argument("--repeats", type=int, default=3, help="measured runs per mode")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=10_000,
        help="recycle a worker after this many requests, jitter a tenth (0: never)",
    )
    parser.add_argument(
        "--members", type=int, default=0, help="members borrowing [default: 2 x connections]"
    )
    parser.add_argument("--books", type=int, default=5000, help="seeded books")
    parser.add_argument("--seed-members", type=int, default=2000, help="seeded members")
    parser.add_argument("--loans", type=int, default=100_000, help="seeded loans")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the request mix")
    parser.add_argument("--server-cpu", type=int, default=cpus[0], help="CPU gunicorn is pinned to")
    parser.add_argument(
        "--client-cpu", type=int, default=cpus[1 % len(cpus)], help="CPU wrk is pinned to"
    )
    parser.add_argument("--micro-requests", type=int, default=20_000, help="in-process requests")
    parser.add_argument("--micro-repeats", type=int, default=5, help="in-process repeats")
    parser.add_argument("--skip-micro", action="store_true", help="skip the in-process part")
    parser.add_argument(
        "--skip-throughput", action="store_true", help="measure the in-process cost only"
    )
    parser.add_argument("--micro-child", choices=("sre", "pfe"), help=argparse.SUPPRESS)
    parser.add_argument("--count-child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--count-workload", choices=("health", "mix"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--skip-instructions", action="store_true", help="skip counting instructions (valgrind)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.duration <= 0 or args.connections < 1:
        parser.error("--repeats, --duration and --connections must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run everything and print the figures; 1 when a step fails."""
    args = parse_args(argv)
    if args.micro_child:
        result = measure_inprocess(args.micro_requests, args.micro_repeats, args.micro_child)
        print(json.dumps({"off_us": result.off_us, "on_us": result.on_us}))
        return 0
    if args.count_child:
        with tempfile.TemporaryDirectory(prefix="sre-bench-count-") as tmp:
            if args.count_workload == "mix":
                _mix_requests(*_mix_client(args.count_child, tmp), args.micro_requests)
            else:
                _health_requests(_health_client(args.count_child, tmp), args.micro_requests)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: servers get stopped
    for tool in ("taskset",) if args.skip_throughput else ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed", file=sys.stderr)
            return 1
    if args.server_cpu == args.client_cpu:
        log(f"warning: server and wrk share CPU {args.server_cpu}; figures will be lower")

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="sre-bench-") as tmp:
            log(f"recreating database {DB_NAME} and seeding it")
            recreate_database()
            seed_database(args.books, args.seed_members, args.loans)
            micro: dict[tuple[str, str], MicroResult] = {}
            if not args.skip_micro:
                for store in ("multiprocess", "single-process"):
                    for flavour in ("sre", "pfe"):
                        log(f"measuring the in-process cost of {flavour} ({store})")
                        micro[(store, flavour)] = measure_inprocess_child(
                            args.micro_requests,
                            args.micro_repeats,
                            args.server_cpu,
                            flavour,
                            store == "multiprocess",
                        )
            instructions: dict[tuple[str, str], float] = {}
            if not (args.skip_micro or args.skip_instructions):
                if shutil.which("valgrind") is None:
                    raise RuntimeError("valgrind is not installed (or pass --skip-instructions)")
                for workload in ("health", "mix"):
                    for flavour in MODES:
                        log(f"counting instructions per {workload} request of {flavour}")
                        instructions[(workload, flavour)] = instructions_per_request(
                            flavour, workload
                        )
            results: list[RunResult] = []
            facts: dict[str, int] = {}
            check = "throughput not measured (--skip-throughput)"
            if not args.skip_throughput:
                results, facts, check = run_throughput(args, Path(tmp))
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    facts["load_before_x100"] = round(load_before * 100)
    report(args, results, micro, instructions, facts, check, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
