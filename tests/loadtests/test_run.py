"""``run_loadtest``: input checks and files (pure), then real Locust runs against the real
app under gunicorn, locally and distributed, with client and server counts compared."""

from __future__ import annotations

import collections
import csv
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import loadtests.run
from loadtests.routes import ROUTES
from loadtests.run import (
    REQUEST_LOG_HEADER,
    RUN_JSON_KEYS,
    LoadTestFailed,
    RunResult,
    _cpu_warned,
    build_commands,
    merge_request_logs,
    parse_run_time,
    plan_run,
    run_loadtest,
)
from slo.gate import load_client_run
from sre.errors import SreError
from sre.stack import free_port, stop_process, wait_http
from tests.conftest import REPO, SRE

LOCUST_FILES = (
    "locust_stats.csv",
    "locust_stats_history.csv",
    "locust_failures.csv",
    "locust_exceptions.csv",
    "report.html",
    "locust.json",
    "locust_requests.csv",
    "run.json",
)
UNKNOWN = "--profile: unknown profile 'spike'; known: load, smoke, soak, stress"
NOT_A_URL = "is not an http(s) base URL such as http://127.0.0.1:8000"
NO_ADMIN = {"SRE_LOADTEST_ADMIN_EMAIL": "", "SRE_LOADTEST_ADMIN_PASSWORD_FILE": ""}


# --- input, commands, files (no Locust run) ---------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "spike"}, UNKNOWN),
        ({"host": "127.0.0.1:8000"}, f"--host: '127.0.0.1:8000' {NOT_A_URL}"),
        ({"host": "ftp://127.0.0.1"}, f"--host: 'ftp://127.0.0.1' {NOT_A_URL}"),
        ({"host": "http://127.0.0.1:99999"}, f"--host: 'http://127.0.0.1:99999' {NOT_A_URL}"),
        ({"host": "http://h/?a=1"}, f"--host: 'http://h/?a=1' {NOT_A_URL}"),
        ({"users": 0}, "--users: must be a whole number >= 1, not 0"),
        ({"run_time_s": 0}, "--run-time: must be a whole number of seconds >= 1, not 0"),
        ({"processes": -1}, "--processes: must be 0 or more workers, not -1"),
        (
            {"master": True, "worker": True},
            "--master: cannot be combined with --worker\n"
            "--expect-workers: is required with --master",
        ),
        ({"master": True}, "--expect-workers: is required with --master"),
        ({"expect_workers": 2}, "--expect-workers: only goes with --master"),
        (
            {"processes": 2, "worker": True},
            "--processes: starts a master and its workers here; leave out --master/--worker",
        ),
        ({"processes": 2, "expect_workers": 3}, "--expect-workers: must equal --processes (2)"),
        ({"master": True, "expect_workers": 0}, "--expect-workers: must be 1 or more, not 0"),
        (
            {"profile": "spike", "host": "nowhere", "users": 0},
            f"{UNKNOWN}\n--users: must be a whole number >= 1, not 0\n"
            f"--host: 'nowhere' {NOT_A_URL}",
        ),
    ],
    ids=[
        "an unknown profile names the known ones",
        "a host without a scheme",
        "a host that is not HTTP",
        "a port out of range",
        "a host with a query string",
        "no users",
        "no run time",
        "a negative number of worker processes",
        "master and worker at once",
        "a master that does not know how many workers to wait for",
        "waiting for workers without being the master",
        "local processes with a role for another machine",
        "local processes waiting for a different number of workers",
        "a master waiting for no workers",
        "every problem is reported at once",
    ],
)
def test_bad_input_is_refused_before_anything_runs(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"profile": "smoke", "host": "http://127.0.0.1:8000"}
    arguments.update(kwargs)
    with pytest.raises(SreError) as caught:
        run_loadtest(out=tmp_path / "out", env=NO_ADMIN, **arguments)  # type: ignore[arg-type]
    assert str(caught.value) == message
    assert not (tmp_path / "out").exists()


def test_admin_credentials_need_a_readable_password_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    env = {
        "SRE_LOADTEST_ADMIN_EMAIL": "a@example.org",
        "SRE_LOADTEST_ADMIN_PASSWORD_FILE": str(missing),
    }
    with pytest.raises(SreError) as caught:
        plan_run("smoke", "http://127.0.0.1:1", tmp_path, env=env)
    problem = "SRE_LOADTEST_ADMIN_PASSWORD_FILE: cannot be read: No such file or directory"
    assert str(caught.value) == f"{missing}: {problem}"
    with pytest.raises(SreError) as caught:
        plan_run(
            "smoke",
            "http://127.0.0.1:1",
            tmp_path,
            env={**env, "SRE_LOADTEST_ADMIN_PASSWORD_FILE": ""},
        )
    assert str(caught.value) == (
        "SRE_LOADTEST_ADMIN_PASSWORD_FILE: "
        "admin credentials need both the email and the password file"
    )


def test_the_librarian_runs_only_with_admin_credentials(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret-s3cret\n")
    admin = {
        "SRE_LOADTEST_ADMIN_EMAIL": "a@example.org",
        "SRE_LOADTEST_ADMIN_PASSWORD_FILE": str(secret),
    }
    with_admin = plan_run("smoke", "http://127.0.0.1:1/", tmp_path, env=admin)
    without = plan_run("smoke", "http://127.0.0.1:1", tmp_path, env=NO_ADMIN)
    assert with_admin.user_classes == ("Browser", "Reader", "Borrower", "Newcomer", "Librarian")
    assert without.user_classes == ("Browser", "Reader", "Borrower", "Newcomer")
    assert with_admin.host == "http://127.0.0.1:1", "a trailing slash is dropped"


def test_commands_for_each_layout(tmp_path: Path) -> None:
    local = build_commands(plan_run("load", "http://h:1", tmp_path, users=7, env=NO_ADMIN), "py")
    assert [name for name, _ in local] == ["locust"]
    argv = local[0][1]
    assert argv[:5] == ["py", "-m", "locust", "-f", str(REPO / "loadtests" / "locustfile.py")]
    for option, value in [
        ("--host", "http://h:1"),
        ("--sre-profile", "load"),
        ("--users", "7"),
        ("--spawn-rate", "5"),
        ("--run-time", "600s"),
        ("--csv", str(tmp_path / "locust")),
        ("--html", str(tmp_path / "report.html")),
        ("--sre-json-file", str(tmp_path / "locust.json")),
    ]:
        assert argv[argv.index(option) + 1] == value, option
    assert "--headless" in argv and "--master" not in argv
    assert argv[-4:] == ["Browser", "Reader", "Borrower", "Newcomer"]

    spread = build_commands(
        plan_run("smoke", "http://h:1", tmp_path, processes=2, master_port=6000, env=NO_ADMIN), "py"
    )
    assert [name for name, _ in spread] == ["locust", "locust-worker-1", "locust-worker-2"]
    master = spread[0][1]
    assert master[master.index("--expect-workers") + 1] == "2"
    assert master[master.index("--master-bind-host") + 1] == "127.0.0.1"
    assert spread[1][1][-5:] == ["--worker", "--master-host", "127.0.0.1", "--master-port", "6000"]

    alone = build_commands(
        plan_run("smoke", "", tmp_path, worker=True, master_host="10.0.0.5", env=NO_ADMIN), "py"
    )
    assert alone[0][1][-5:] == ["--worker", "--master-host", "10.0.0.5", "--master-port", "5557"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30s", 30), ("5m", 300), ("1h30m", 5400)],
    ids=["plain seconds", "seconds", "minutes", "hours and minutes"],
)
def test_run_times_read_like_locusts(text: str, seconds: int) -> None:
    assert parse_run_time(text) == seconds


def test_a_bad_run_time_names_the_option() -> None:
    with pytest.raises(SreError, match=r"^--run-time: 'soon' is not a duration"):
        parse_run_time("soon")


def test_request_logs_merge_in_start_time_order_and_skip_a_torn_last_line(tmp_path: Path) -> None:
    header = ",".join(REQUEST_LOG_HEADER)
    (tmp_path / "a.csv").write_text(
        f"{header}\n3.5,GET,/api/books,1.250,10,200,1\n1.0,GET,/api/books,0.500,10,200,1\n"
    )
    (tmp_path / "b.csv").write_text(f"{header}\n2.0,POST,/api/loans,12.000,0,0,0\n4.0,GET,/api/bo")
    target = tmp_path / "merged.csv"
    assert merge_request_logs([tmp_path / "a.csv", tmp_path / "b.csv"], target) == 3
    assert target.read_text() == (
        f"{header}\n1.0,GET,/api/books,0.500,10,200,1\n"
        "2.0,POST,/api/loans,12.000,0,0,0\n3.5,GET,/api/books,1.250,10,200,1\n"
    )


def test_a_cpu_warning_in_any_locust_log_is_noticed(tmp_path: Path) -> None:
    quiet, busy = tmp_path / "locust.log", tmp_path / "locust-worker-2.log"
    quiet.write_text("[..] INFO/locust.main: Starting Locust 2.47.0\n")
    busy.write_text(
        "[..] WARNING/root: CPU usage above 90%! This may constrain your throughput and may even "
        "give inconsistent response time measurements!\n"
    )
    assert not _cpu_warned([quiet])
    assert _cpu_warned([quiet, busy])


def test_the_runner_never_imports_locust_or_gevent() -> None:
    code = (
        "import sys, loadtests, loadtests.run, loadtests.profiles, loadtests.routes\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent'))\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- real runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Library:
    url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    """The app under gunicorn on SQLite, seeded, with an admin for the librarian journey."""
    root = tmp_path_factory.mktemp("library")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{root / 'library.sqlite3'}"}
    seed = ["--books", "300", "--members", "20", "--loans", "200"]
    subprocess.run([SRE, "app", "seed", *seed], env=env, check=True, capture_output=True)
    secret = root / "admin-password"
    secret.write_text("load-test-admin-password\n")
    subprocess.run(
        [SRE, "app", "users", "add", "--email", "librarian@example.org", "--role", "admin",
         "--password-file", str(secret)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    log = (root / "app.log").open("wb")
    server = subprocess.Popen(
        [SRE, "app", "serve", "--port", str(port), "--workers", "2",
         "--metrics-dir", str(root / "metrics")],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/api/ready", server)
        yield Library(
            url,
            {
                "SRE_LOADTEST_ADMIN_EMAIL": "librarian@example.org",
                "SRE_LOADTEST_ADMIN_PASSWORD_FILE": str(secret),
            },
        )
    finally:
        stop_process(server)
        log.close()


def server_counts(url: str) -> collections.Counter[tuple[str, str]]:
    """http_requests_total by (method, route) from the app's /metrics, /metrics left out."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    pattern = r'^http_requests_total\{method="([^"]*)",route="([^"]*)",status="\d+"\} (\S+)$'
    for method, route, value in re.findall(pattern, text, flags=re.MULTILINE):
        if route != "/metrics":
            counts[(method, route)] += int(float(value))
    return counts


def logged(out: Path) -> list[dict[str, str]]:
    with (out / "locust_requests.csv").open(newline="") as handle:
        assert handle.readline().rstrip("\n") == ",".join(REQUEST_LOG_HEADER)
        handle.seek(0)
        return list(csv.DictReader(handle))


def locust_counts(out: Path) -> tuple[collections.Counter[tuple[str, str]], int]:
    """Request counts per (method, name) from locust_stats.csv, and the Aggregated total."""
    per_name: collections.Counter[tuple[str, str]] = collections.Counter()
    total = -1
    with (out / "locust_stats.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "Aggregated":
                total = int(row["Request Count"])
            else:
                per_name[(row["Type"], row["Name"])] = int(row["Request Count"])
    return per_name, total


def check_outputs(
    out: Path, result: RunResult, own_requests: bool = True
) -> collections.Counter[tuple[str, str]]:
    """Every file is there and the three client-side counts agree; the log's counts."""
    for name in LOCUST_FILES:
        assert (out / name).is_file(), name
    rows = logged(out)
    per_name, total = locust_counts(out)
    counts = collections.Counter((row["request_type"], row["name"]) for row in rows)
    assert len(rows) == total == result.requests > 0
    assert counts == per_name
    from_json = {
        (e["method"], e["name"]): e["num_requests"]
        for e in json.loads((out / "locust.json").read_text())
    }
    assert from_json == dict(per_name)
    starts = [float(row["start_time"]) for row in rows]
    assert starts == sorted(starts)
    ends = [float(row["start_time"]) + float(row["response_time_ms"]) / 1000 for row in rows]
    if own_requests:  # the window is the requests'
        assert result.start <= starts[0] < result.start + 0.001, "the first request starts it"
        assert result.end - 0.001 < max(ends) <= result.end, "the last answer ends it"
    else:  # the window is the master's, from starting the load to stopping it
        assert result.start <= starts[0] < result.start + 1
        assert result.end - 2 < max(ends) <= result.end
    for row in rows:
        assert re.fullmatch(r"\d+\.\d{3}", row["response_time_ms"]), row
        assert row["success"] in ("0", "1") and row["status"].isdigit()
    run = json.loads((out / "run.json").read_text())
    assert tuple(run) == RUN_JSON_KEYS
    assert run == result.run_json()
    return counts


@pytest.mark.integration
def test_smoke_runs_by_itself_and_names_requests_as_the_server_does(
    library: Library, tmp_path: Path
) -> None:
    out = tmp_path / "smoke"
    lines: list[str] = []
    began = time.monotonic()
    result = run_loadtest(
        "smoke", library.url, out, users=5, spawn_rate=5, run_time_s=12,
        env=library.env, progress=lines.append,
    )  # fmt: skip
    took = time.monotonic() - began
    assert 12 <= took < 12 + 10, "stops by itself, soon after its run time"
    counts = check_outputs(out, result)
    assert (result.profile, result.users, result.run_time_s) == ("smoke", 5, 12)
    assert result.processes == 0
    assert result.target_rps == 4.791667  # 5 users, less the 1 s ramp at 5 users/s, over 12 s
    assert result.locust_exit_code == 0
    failures = (out / "locust_failures.csv").read_text()
    assert all(row["success"] == "1" for row in logged(out)), failures
    # each journey ran: browse and search, view, register and log in, borrow, the librarian
    assert {
        ("GET", "/api/books"),
        ("GET", "/api/books/<int:book_id>"),
        ("POST", "/api/members"),
        ("POST", "/api/auth/token"),
        ("POST", "/api/loans"),
        ("POST", "/api/books"),
    } <= set(counts)
    assert set(counts) <= set(ROUTES)
    assert set(counts) <= set(server_counts(library.url)), "names are the server's route labels"
    # 5 users at 1 request/s for 12 s, plus logins at the start: near the target, not above it
    assert 5 * 12 * 0.7 <= result.requests <= 5 * 12 + 15
    assert any(" users, " in line and "requests" in line for line in lines), lines
    assert lines[-1].startswith("smoke: done in ")


@pytest.mark.integration
def test_two_local_workers_count_exactly_what_the_server_counts(
    library: Library, tmp_path: Path
) -> None:
    out = tmp_path / "distributed"
    before = server_counts(library.url)
    result = run_loadtest(
        "smoke", library.url, out, users=6, spawn_rate=6, run_time_s=10, processes=2,
        env=library.env,
    )  # fmt: skip
    after = server_counts(library.url)
    counts = check_outputs(out, result)
    assert result.processes == 2 and result.mode == "master"
    assert (out / "locust-worker-1.log").is_file() and (out / "locust-worker-2.log").is_file()
    served = after - before
    assert counts == served, "client and server must agree per (method, route)"


@pytest.mark.integration
def test_a_master_and_a_worker_started_apart_run_together(library: Library, tmp_path: Path) -> None:
    port = free_port()
    results: dict[str, RunResult] = {}

    def worker() -> None:
        results["worker"] = run_loadtest(
            "smoke", "", tmp_path / "worker", worker=True, master_port=port, env=library.env
        )

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        results["master"] = run_loadtest(
            "smoke", library.url, tmp_path / "master", users=3, spawn_rate=3, run_time_s=6,
            master=True, expect_workers=1, master_port=port, env=library.env,
        )  # fmt: skip
    finally:
        thread.join(60)
    master, worker_result = results["master"], results["worker"]
    assert not (tmp_path / "worker" / "run.json").exists(), "only the master describes the run"
    assert worker_result.logged_requests == master.requests > 0
    merged = tmp_path / "master" / "locust_requests.csv"
    # the requests were made on the worker's machine: no empty log that would tell the gate
    # the run made none; it judges Locust's statistics instead
    assert not merged.exists()
    assert load_client_run(tmp_path / "master" / "locust").total_requests == master.requests
    merge_request_logs([tmp_path / "worker" / "locust_requests.csv"], merged)
    check_outputs(tmp_path / "master", master, own_requests=False)


@pytest.mark.integration
def test_a_master_whose_workers_never_come_fails_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loadtests.run, "EXPECT_WORKERS_MAX_WAIT_S", 1)
    began = time.monotonic()
    with pytest.raises(LoadTestFailed, match=r"(?s)Locust exited with 1 and made no requests.*"
                       r"Gave up waiting for workers to connect"):  # fmt: skip
        run_loadtest(
            "smoke", "http://127.0.0.1:9", tmp_path, master=True, expect_workers=1,
            master_port=free_port(), env=NO_ADMIN,
        )  # fmt: skip
    assert time.monotonic() - began < 15
    assert not (tmp_path / "run.json").exists()
