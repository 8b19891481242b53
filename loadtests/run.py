"""Run a profile with Locust, headless, in subprocesses, and write the run's files.

Locust runs as ``python -m locust -f loadtests/locustfile.py`` in processes of its own:
importing Locust patches the interpreter with gevent, which the caller (``sre`` itself, a
test) must not get. The run stops by itself when the profile's time is up; a deadline
well after that stops a run that hangs.

Files written into ``out`` (a contract with ``sre slo gate``; docs/loadtests.md):
``locust_stats.csv``, ``locust_stats_history.csv``, ``locust_failures.csv``,
``locust_exceptions.csv``, ``report.html``, ``locust.json`` (Locust's own),
``locust_requests.csv`` (every request with its exact timing, merged from one part per
Locust process and sorted by start time), ``run.json`` (what was run, when, and whether
the load generator kept up), and Locust's logs ``locust.log`` / ``locust-worker-<n>.log``.
"""

from __future__ import annotations

import csv
import heapq
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from loadtests.profiles import Profile, get_profile, with_overrides
from sre.durations import parse_duration
from sre.errors import SreError

__all__ = [
    "LOCUSTFILE",
    "REQUEST_LOG_HEADER",
    "RUN_JSON_KEYS",
    "WINDOW_STARTED",
    "WINDOW_STOPPED",
    "LoadTestFailed",
    "RunPlan",
    "RunResult",
    "build_commands",
    "merge_request_logs",
    "parse_run_time",
    "plan_run",
    "run_loadtest",
]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
#: the per-request log's header; the same tuple the locustfile writes
REQUEST_LOG_HEADER = (
    "start_time",
    "request_type",
    "name",
    "response_time_ms",
    "response_length",
    "status",
    "success",
)
#: what the locustfile logs (with Unix seconds) when the load starts and stops
WINDOW_STARTED = "sre-loadtest: load started at"
WINDOW_STOPPED = "sre-loadtest: load stopped at"
#: run.json's keys, in the order they are written
RUN_JSON_KEYS = (
    "profile",
    "host",
    "users",
    "spawn_rate",
    "run_time_s",
    "target_rps",
    "start",
    "end",
    "processes",
    "cpu_warning",
    "locust_version",
    "locust_exit_code",
    "requests",
)
#: users get this long to finish the request they are in when the run ends; above the
#: locustfile's network timeout, so no request is cut off that the server then counts
STOP_TIMEOUT_S = 30
#: how long a master waits for its workers to connect before it gives up
EXPECT_WORKERS_MAX_WAIT_S = 60
#: a worker started alone waits this long beyond the profile's run time for its master
WORKER_PATIENCE_S = 600
DEFAULT_MASTER_PORT = 5557
_ADMIN_EMAIL = "SRE_LOADTEST_ADMIN_EMAIL"
_ADMIN_PASSWORD_FILE = "SRE_LOADTEST_ADMIN_PASSWORD_FILE"
_REQUESTS_DIR = "SRE_LOADTEST_REQUESTS_DIR"
_USER_CLASSES = ("Browser", "Reader", "Borrower", "Newcomer")
_ADMIN_CLASS = "Librarian"
_PARTS = "requests-parts"
_CPU_WARNINGS = re.compile(
    r"CPU usage above \d+%|exceeded cpu threshold|CPU usage threshold was exceeded"
    r"|CPU usage was too high"
)
_LOCUST_FILES = (
    "locust_stats.csv",
    "locust_stats_history.csv",
    "locust_failures.csv",
    "locust_exceptions.csv",
    "report.html",
    "locust.json",
)


class LoadTestFailed(Exception):
    """Locust did not run (it crashed or wrote no statistics); the message says where its
    log is. Input was fine, so this is exit 1, not 2."""


@dataclass(frozen=True)
class RunPlan:
    """A checked request to run: the effective profile and how Locust is laid out."""

    profile: Profile
    host: str
    out: Path
    #: "local" (one process), "master" (waits for workers) or "worker" (serves a master)
    mode: str
    #: workers this machine starts itself (``processes``)
    local_workers: int
    #: workers the master waits for
    workers: int
    master_host: str
    master_port: int
    #: Locust user classes to run (Librarian only with admin credentials)
    user_classes: tuple[str, ...]
    env: Mapping[str, str]


@dataclass(frozen=True)
class RunResult:
    """What ``run_loadtest`` did; ``run_json()`` is what it wrote to run.json."""

    out: Path
    mode: str
    profile: str
    host: str
    users: int
    spawn_rate: float
    run_time_s: int
    target_rps: float
    start: float
    end: float
    processes: int
    cpu_warning: bool
    locust_version: str
    locust_exit_code: int
    requests: int
    #: rows in locust_requests.csv (equal to ``requests`` unless workers ran elsewhere)
    logged_requests: int

    def run_json(self) -> dict[str, Any]:
        """run.json's content, keys in the documented order."""
        return {key: getattr(self, key) for key in RUN_JSON_KEYS}


def parse_run_time(text: str) -> int:
    """Seconds in a run time: a number of seconds (``90``) or a duration (``30s``, ``5m``,
    ``1h30m``); SreError for ``--run-time`` otherwise."""
    raw = str(text).strip()
    try:
        seconds = int(raw) if raw.isdigit() else parse_duration(raw)
    except ValueError as exc:
        raise SreError(None, "--run-time", str(exc)) from None
    if seconds < 1:
        raise SreError(None, "--run-time", f"{text!r} must be at least 1 second")
    return seconds


def _check_host(host: str) -> str:
    parts = urlsplit(host.strip())
    good = (
        parts.scheme in ("http", "https")
        and parts.hostname
        and not parts.query
        and not parts.fragment
        and not any(c.isspace() for c in host.strip())
    )
    if good:
        try:
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            good = False
    if not good:
        raise SreError(
            None, "--host", f"{host!r} is not an http(s) base URL such as http://127.0.0.1:8000"
        )
    return host.strip().rstrip("/")


def plan_run(
    profile: str,
    host: str,
    out: Path,
    users: int | None = None,
    spawn_rate: float | None = None,
    run_time_s: int | None = None,
    processes: int = 0,
    master: bool = False,
    worker: bool = False,
    expect_workers: int | None = None,
    master_host: str = "127.0.0.1",
    master_port: int = DEFAULT_MASTER_PORT,
    env: Mapping[str, str] | None = None,
) -> RunPlan:
    """Check every input and settle the run; SreError listing all problems at once."""
    problems: list[SreError] = []

    def check(step: Callable[[], Any]) -> Any:
        try:
            return step()
        except SreError as exc:
            problems.extend([exc, *exc.details])
            return None

    base = check(lambda: get_profile(profile))
    effective = check(
        lambda: with_overrides(base or get_profile("smoke"), users, spawn_rate, run_time_s)
    )
    checked_host = host.strip().rstrip("/") if worker else check(lambda: _check_host(host))
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 0:
        problems.append(
            SreError(None, "--processes", f"must be 0 or more workers, not {processes!r}")
        )
        processes = 0
    if master and worker:
        problems.append(SreError(None, "--master", "cannot be combined with --worker"))
    if processes and (master or worker):
        problems.append(
            SreError(
                None,
                "--processes",
                "starts a master and its workers here; leave out --master/--worker",
            )
        )
    if expect_workers is not None:
        if (
            isinstance(expect_workers, bool)
            or not isinstance(expect_workers, int)
            or expect_workers < 1
        ):
            problems.append(
                SreError(None, "--expect-workers", f"must be 1 or more, not {expect_workers!r}")
            )
        elif not master and not processes:
            problems.append(SreError(None, "--expect-workers", "only goes with --master"))
        elif processes and expect_workers != processes:
            problems.append(
                SreError(None, "--expect-workers", f"must equal --processes ({processes})")
            )
    elif master:
        problems.append(SreError(None, "--expect-workers", "is required with --master"))
    if not master_host.strip():
        problems.append(SreError(None, "--master-host", "must not be empty"))
    if not 1 <= master_port <= 65535:
        problems.append(
            SreError(None, "--master-port", f"must be a port 1-65535, not {master_port}")
        )
    if out.exists() and not out.is_dir():
        problems.append(SreError(str(out), "--out", "exists and is not a directory"))
    merged = {**os.environ, **(env or {})}
    classes: tuple[str, ...] = _USER_CLASSES
    email, password_file = merged.get(_ADMIN_EMAIL, ""), merged.get(_ADMIN_PASSWORD_FILE, "")
    if bool(email) != bool(password_file):
        missing = _ADMIN_PASSWORD_FILE if email else _ADMIN_EMAIL
        problems.append(
            SreError(None, missing, "admin credentials need both the email and the password file")
        )
    elif password_file:
        try:
            if not Path(password_file).read_text(encoding="utf-8").strip():
                problems.append(SreError(password_file, _ADMIN_PASSWORD_FILE, "the file is empty"))
        except OSError as exc:
            problems.append(
                SreError(password_file, _ADMIN_PASSWORD_FILE, f"cannot be read: {exc.strerror}")
            )
        classes = (*_USER_CLASSES, _ADMIN_CLASS)
    if problems:
        first = problems[0]
        raise SreError(first.file, first.entry, first.problem, problems[1:])
    assert effective is not None
    mode = "worker" if worker else "master" if (master or processes) else "local"
    return RunPlan(
        profile=effective,
        host=checked_host,
        out=out,
        mode=mode,
        local_workers=processes,
        workers=processes or (expect_workers or 0 if master else 0),
        master_host=master_host.strip(),
        master_port=master_port,
        user_classes=classes,
        env=merged,
    )


def build_commands(plan: RunPlan, python: str = sys.executable) -> list[tuple[str, list[str]]]:
    """(log name, argv) of every Locust process the plan starts on this machine, master or
    local process first (pure)."""
    locust = [python, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "INFO"]
    worker = [
        *locust,
        "--worker",
        "--master-host",
        plan.master_host,
        "--master-port",
        str(plan.master_port),
    ]
    if plan.mode == "worker":
        return [("locust-worker-1", worker)]
    profile = plan.profile
    prefix = str(plan.out / "locust")
    head = [
        *locust,
        "--headless",
        "--only-summary",
        "--host",
        plan.host,
        "--sre-profile",
        profile.name,
        "--users",
        str(profile.users),
        "--spawn-rate",
        f"{profile.spawn_rate:g}",
        "--run-time",
        f"{profile.run_time_s}s",
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--csv",
        prefix,
        "--html",
        str(plan.out / "report.html"),
        "--sre-json-file",  # not Locust's --json-file: see the locustfile
        str(plan.out / "locust.json"),
    ]
    if plan.mode == "master":
        bind = "127.0.0.1" if plan.local_workers else plan.master_host
        head += [
            "--master",
            "--master-bind-host",
            bind,
            "--master-bind-port",
            str(plan.master_port),
            "--expect-workers",
            str(plan.workers),
            "--expect-workers-max-wait",
            str(EXPECT_WORKERS_MAX_WAIT_S),
        ]
    commands = [("locust", [*head, *plan.user_classes])]
    if plan.local_workers:
        worker[worker.index("--master-host") + 1] = "127.0.0.1"
        commands += [(f"locust-worker-{n}", list(worker)) for n in range(1, plan.local_workers + 1)]
    return commands


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sort_key(row: list[str]) -> float:
    return float(row[0])


def _read_part(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or tuple(rows[0]) != REQUEST_LOG_HEADER:
        raise LoadTestFailed(f"{path}: not a per-request log (header {rows[:1]})")
    good = []
    for row in rows[1:]:
        if len(row) != len(REQUEST_LOG_HEADER):
            continue  # a line cut short when a process was killed
        try:
            _sort_key(row)
        except ValueError:
            continue
        good.append(row)
    good.sort(key=_sort_key)
    return good


def merge_request_logs(parts: Iterable[Path], target: Path) -> int:
    """Merge per-request logs (one per Locust process or machine) into ``target``, sorted
    by start time; the number of requests written."""
    sorted_parts = [_read_part(Path(part)) for part in parts]
    temporary = target.with_name(target.name + ".tmp")
    count = 0
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(REQUEST_LOG_HEADER)
        for row in heapq.merge(*sorted_parts, key=_sort_key):
            writer.writerow(row)
            count += 1
    temporary.replace(target)
    return count


def _request_window(path: Path) -> tuple[float, float] | None:
    """(first request's start, last answer's end) in a per-request log; None if empty."""
    first, last = math.inf, -math.inf
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            started = float(row["start_time"])
            first = min(first, started)
            last = max(last, started + float(row["response_time_ms"]) / 1000)
    return None if first == math.inf else (first, last)


def _logged_window(log: Path) -> tuple[float, float] | None:
    """(load started, load stopped) from the master's log lines, None without both."""
    marks: dict[str, float] = {}
    try:
        with log.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                for mark in (WINDOW_STARTED, WINDOW_STOPPED):
                    if mark in line:
                        marks.setdefault(mark, float(line.split(mark, 1)[1].split()[0]))
    except (OSError, ValueError, IndexError):
        return None
    if len(marks) < 2:
        return None
    return marks[WINDOW_STARTED], marks[WINDOW_STOPPED]


def _stats_total(path: Path) -> int | None:
    """The "Aggregated" request count in locust_stats.csv, None without one."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("Name") == "Aggregated":
                    return int(row["Request Count"])
    except (OSError, ValueError, KeyError):
        return None
    return None


def _last_history_row(path: Path) -> dict[str, str] | None:
    """The newest "Aggregated" line of locust_stats_history.csv (read from its tail)."""
    try:
        with path.open("rb") as handle:
            header = handle.readline().decode("utf-8", "replace")
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            tail = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    names = next(csv.reader([header]), [])
    for line in reversed(tail):
        values = next(csv.reader([line]), [])
        if len(values) == len(names) and values[names.index("Name")] == "Aggregated":
            return dict(zip(names, values, strict=True))
    return None


def _progress_line(plan: RunPlan, elapsed: float, out: Path) -> str:
    profile = plan.profile
    head = f"{profile.name}: {elapsed:.0f}s of {profile.run_time_s}s"
    row = _last_history_row(out / "locust_stats_history.csv")
    if plan.mode == "worker":
        return f"{head}, worker of {plan.master_host}:{plan.master_port}"
    if row is None:
        return f"{head}, starting"
    return (
        f"{head}, {row.get('User Count', '?')} users, "
        f"{row.get('Total Request Count', '?')} requests, "
        f"{row.get('Total Failure Count', '?')} failures, "
        f"{float(row.get('Requests/s') or 0):.1f} req/s (target {profile.target_rps:g})"
    )


def _cpu_warned(logs: Iterable[Path]) -> bool:
    for log in logs:
        try:
            with log.open(encoding="utf-8", errors="replace") as handle:
                if any(_CPU_WARNINGS.search(line) for line in handle):
                    return True
        except OSError:
            continue
    return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is None:
        process.terminate()  # Locust writes its statistics on SIGTERM
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _clean(out: Path) -> None:
    """Remove what an earlier run left, so no stale file passes for this run's."""
    for name in (*_LOCUST_FILES, "locust_requests.csv", "run.json"):
        (out / name).unlink(missing_ok=True)
    for log in out.glob("locust*.log"):
        log.unlink()
    shutil.rmtree(out / _PARTS, ignore_errors=True)


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]


def _start(plan: RunPlan, commands: list[tuple[str, list[str]]]) -> Iterator[_Process]:
    env = {**plan.env, _REQUESTS_DIR: str(plan.out / _PARTS), "PYTHONUNBUFFERED": "1"}
    for name, argv in commands:
        log = plan.out / f"{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env)
        yield _Process(name, popen, log, handle)


def run_loadtest(
    profile: str,
    host: str,
    out: Path,
    users: int | None = None,
    spawn_rate: float | None = None,
    run_time_s: int | None = None,
    processes: int = 0,
    master: bool = False,
    worker: bool = False,
    expect_workers: int | None = None,
    master_host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    master_port: int = DEFAULT_MASTER_PORT,
) -> RunResult:
    """Run ``profile`` against ``host`` headless, stop by itself, write the files into
    ``out``; SreError for bad input, LoadTestFailed when Locust did not run.

    ``processes=N`` runs a master and N workers here; ``master=True, expect_workers=N`` or
    ``worker=True`` runs one side of a run spread over machines (``master_host`` and
    ``master_port``: the address the master binds to, or the worker connects to).
    """
    out = Path(out)
    plan = plan_run(
        profile, host, out, users, spawn_rate, run_time_s, processes, master, worker,
        expect_workers, master_host, master_port, env,
    )  # fmt: skip
    if plan.local_workers:
        plan = replace(plan, master_port=_free_port())
    say = progress or (lambda line: None)
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)
    if _ADMIN_CLASS not in plan.user_classes and plan.mode != "worker":
        say(f"no {_ADMIN_EMAIL}/{_ADMIN_PASSWORD_FILE}: the librarian (admin) journey is left out")
    run_time = plan.profile.run_time_s
    patience = {"master": EXPECT_WORKERS_MAX_WAIT_S, "worker": WORKER_PATIENCE_S}.get(plan.mode, 0)
    deadline_s = run_time + patience + STOP_TIMEOUT_S + 60
    every = min(30.0, max(2.0, run_time / 10))
    started = time.time()
    processes_: list[_Process] = []
    try:
        for process in _start(plan, build_commands(plan)):
            processes_.append(process)
        main = processes_[0]
        shown = time.monotonic()
        while main.popen.poll() is None:
            elapsed = time.time() - started
            if elapsed > deadline_s:
                say(f"{plan.profile.name}: still running after {elapsed:.0f}s; stopping Locust")
                _stop(main.popen, 30)
                break
            if time.monotonic() - shown >= every:
                shown = time.monotonic()
                say(_progress_line(plan, elapsed, out))
            time.sleep(0.25)
        for process in processes_[1:]:  # workers quit when their master does
            try:
                process.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _stop(process.popen, 15)
    finally:
        for process in processes_:
            _stop(process.popen, 15)
            process.handle.close()
    ended = time.time()
    exit_code = processes_[0].popen.returncode
    parts = sorted((out / _PARTS).glob("*.csv"))
    logged = merge_request_logs(parts, out / "locust_requests.csv")
    shutil.rmtree(out / _PARTS, ignore_errors=True)
    # the load's own window: from the requests when this machine sent them, else from
    # when the master started and stopped the load, else the processes' lives
    window = (
        _request_window(out / "locust_requests.csv")
        or _logged_window(processes_[0].log)
        or (started, ended)
    )
    if logged == 0 and plan.mode == "master":
        # Every worker ran elsewhere (a Kubernetes Job, another machine) and kept its own
        # log: an empty one here would tell the gate the run made no requests at all.
        (out / "locust_requests.csv").unlink(missing_ok=True)
    total = logged
    if plan.mode != "worker":
        stats_total = _stats_total(out / "locust_stats.csv")
        if stats_total is None or (stats_total == 0 and exit_code != 0):
            log = processes_[0].log
            raise LoadTestFailed(
                f"Locust exited with {exit_code} and made no requests; its log {log} ends:\n"
                + _tail(log)
            )
        total = stats_total
    result = RunResult(
        out=out,
        mode=plan.mode,
        profile=plan.profile.name,
        host=plan.host,
        users=plan.profile.users,
        spawn_rate=plan.profile.spawn_rate,
        run_time_s=plan.profile.run_time_s,
        target_rps=plan.profile.target_rps,
        start=math.floor(window[0] * 1000) / 1000,  # to the ms, never inside the window
        end=math.ceil(window[1] * 1000) / 1000,
        processes=plan.workers if plan.mode == "master" else 0,
        cpu_warning=_cpu_warned(p.log for p in processes_),
        locust_version=metadata.version("locust"),
        locust_exit_code=int(exit_code if exit_code is not None else -1),
        requests=total,
        logged_requests=logged,
    )
    if plan.mode != "worker":
        text = json.dumps(result.run_json(), indent=2) + "\n"
        (out / "run.json").write_text(text, encoding="utf-8")
    say(
        f"{plan.profile.name}: done in {ended - started:.0f}s, {total} requests, "
        f"Locust exit code {result.locust_exit_code}"
        + (", CPU above 90% in a Locust process: rates may be low" if result.cpu_warning else "")
    )
    return result
