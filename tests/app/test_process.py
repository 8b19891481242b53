"""The whole server's process metrics: real processes, real cgroups, real gunicorn."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from app.process import ProcessStat, read_limits, read_server
from tests.app.test_server import Server, samples
from tests.app.test_server import start_server as start_server  # the fixture
from tests.conftest import limited_cgroup

BUSY = "import time\nend = time.process_time() + {cpu}\nwhile time.process_time() < end: pass\n"


@pytest.mark.parametrize(
    ("line", "utime", "rss_pages"),
    [
        ("42 (python3) S 1 42 42 0 -1 0 0 0 0 0 7 3 2 1 20 0 1 0 500 100 25", 7, 25),
        ("42 (a b) c) S 1 42 42 0 -1 0 0 0 0 0 8 3 2 1 20 0 1 0 500 100 26", 8, 26),
        ("42 ((x)) R 1 42 42 0 -1 0 0 0 0 0 9 3 2 1 20 0 1 0 500 100 27", 9, 27),
    ],
    ids=["a plain name", "a name with a space and a parenthesis", "a name in parentheses"],
)
def test_stat_lines_are_read_after_the_command_name(line: str, utime: int, rss_pages: int) -> None:
    stat = ProcessStat.parse(line)
    assert (stat.utime, stat.stime, stat.cutime, stat.cstime) == (utime, 3, 2, 1)
    assert (stat.start_ticks, stat.rss_pages) == (500, rss_pages)


def _ps(field: str, pid: int) -> int:
    """One numeric field of ``ps`` for one process: a reading independent of ours."""
    done = subprocess.run(
        ["ps", "-o", f"{field}=", "-p", str(pid)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


@contextmanager
def children(count: int, cpu_s: float) -> Iterator[list[subprocess.Popen[bytes]]]:
    code = BUSY.format(cpu=cpu_s) + "import sys; sys.stdin.read()\n"
    kids = [
        subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE) for _ in range(count)
    ]
    try:
        yield kids
    finally:
        for kid in kids:
            kid.kill()
            kid.wait()


def test_the_server_is_its_main_process_and_children_added_up() -> None:
    with children(3, cpu_s=0.3) as kids:
        time.sleep(1.0)  # each has burnt its 0.3 s and waits
        usage = read_server(os.getpid())
        rss_kib = _ps("rss", os.getpid()) + sum(_ps("rss", kid.pid) for kid in kids)
        children_cpu = sum(
            (s.utime + s.stime) / os.sysconf("SC_CLK_TCK")
            for s in (ProcessStat.parse(Path(f"/proc/{k.pid}/stat").read_text()) for k in kids)
        )
    assert children_cpu >= 0.8  # each child really burnt ~0.3 s
    assert usage.cpu_seconds >= children_cpu
    assert abs(usage.resident_bytes - rss_kib * 1024) < 0.1 * rss_kib * 1024
    assert usage.open_fds >= 3 * 3  # at least stdin, stdout and stderr of each child
    assert usage.start_time_seconds == pytest.approx(
        time.time() - _ps("etimes", os.getpid()), abs=2
    )


def test_cpu_seconds_never_go_down_while_children_exit_and_are_reaped() -> None:
    """A reaped child's CPU time moves into its parent's cutime: counted once, never lost."""
    stop = threading.Event()

    def churn() -> None:  # children that burn CPU, exit and are reaped, one after another
        while not stop.is_set():
            kid = subprocess.Popen([sys.executable, "-c", BUSY.format(cpu=0.15)])
            time.sleep(0.1)
            kid.wait()

    workers = [threading.Thread(target=churn) for _ in range(2)]
    for worker in workers:
        worker.start()
    readings = []
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            readings.append(read_server(os.getpid()).cpu_seconds)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    drops = [(a, b) for a, b in itertools.pairwise(readings) if b < a]
    assert len(readings) > 100
    assert drops == []
    assert readings[-1] - readings[0] > 1.0  # the children's CPU time was counted


def test_limits_are_the_machines_outside_a_limited_cgroup() -> None:
    limits = read_limits(os.getpid())
    meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()
    own = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert limits.cpu_cores <= len(os.sched_getaffinity(0))
    assert limits.memory_bytes <= int(meminfo[1]) * 1024
    if not own.exists() or int(own.read_text()) > 1 << 62:
        assert limits.memory_bytes == int(meminfo[1]) * 1024


def test_limits_are_the_cgroups_inside_a_limited_one() -> None:
    with limited_cgroup(cpu_cores=0.25, memory_bytes=300 << 20) as cgroup:
        sleeper = subprocess.Popen([*cgroup.prefix, "sleep", "30"])
        try:
            deadline = time.monotonic() + 5
            while Path(f"/proc/{sleeper.pid}/cmdline").read_bytes().split(b"\0")[0] != b"sleep":
                assert time.monotonic() < deadline, "the process never entered the cgroup"
                time.sleep(0.05)
            limits = read_limits(sleeper.pid)
        finally:
            sleeper.kill()
            sleeper.wait()
    assert limits.cpu_cores == pytest.approx(0.25)
    assert limits.memory_bytes == 300 << 20


@pytest.mark.integration
def test_sre_app_serve_reports_master_and_workers_together(
    start_server: Callable[..., Server],
    tmp_path: Path,
) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'lib.sqlite3'}", workers=3, max_requests=25)
    master = server.process.pid
    cpu: list[float] = []
    for _ in range(40):  # scrapes and requests recycle workers every 25 requests
        for _ in range(5):
            requests.get(f"{server.url}/api/books", timeout=10)
        cpu.append(samples(server.url, "process_cpu_seconds_total")[()])
    assert all(b >= a for a, b in itertools.pairwise(cpu)), cpu
    # Scrapes are requests too and may recycle a worker between two readings: a few tries.
    for _ in range(5):
        kids = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        rss = sum(_ps("rss", pid) for pid in (master, *map(int, kids))) * 1024
        reported = samples(server.url, "process_resident_memory_bytes")[()]
        if len(kids) == 3 and abs(reported - rss) < 0.15 * rss:
            break
    else:
        raise AssertionError(f"reported {reported} bytes, ps says {rss} for {len(kids)} workers")
    assert samples(server.url, "process_open_fds")[()] > 3 * 4
    start = samples(server.url, "process_start_time_seconds")[()]
    elapsed = _ps("etimes", master)
    assert start == pytest.approx(time.time() - elapsed, abs=3)
    assert samples(server.url, "elibrary_server_cpu_limit_cores")[()] == pytest.approx(
        read_limits(master).cpu_cores
    )
