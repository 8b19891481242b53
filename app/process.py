"""Process metrics of the whole server (gunicorn master and workers), read at scrape time.

prometheus-client's ``ProcessCollector`` describes the one process that answers the scrape;
in multiprocess mode that is a random worker, so ``sre app serve`` would report a fraction of
its CPU and memory, or nothing. Here the answering worker reads ``/proc`` for the master and
every live worker and adds them up (DESIGN.md, metric contract), next to the limits those
numbers are judged against: the cgroup's CPU quota and memory limit where one is set (a
Kubernetes container, a systemd unit), else the machine's CPUs and memory.

``process_cpu_seconds_total`` must never go down, although workers come and go: a worker's
CPU time moves into the master's ``cutime``/``cstime`` when the master reaps it. Reading
the master, then the workers, then the master again, and starting over when a worker was
reaped in between, counts every worker exactly once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = [
    "SERVER_PID_ENV",
    "ProcessStat",
    "ResourceLimits",
    "ServerProcessCollector",
    "ServerUsage",
    "read_limits",
    "read_server",
    "server_pid",
]

#: set by ``sre app serve`` to the gunicorn master's pid, for the workers to find it
SERVER_PID_ENV = "SRE_SERVER_PID"

log = logging.getLogger("elibrary.metrics")

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096
#: cgroup v1 writes "no limit" as a huge number rounded down to the page size
_NO_MEMORY_LIMIT = 1 << 62
_ATTEMPTS = 5


@dataclass(frozen=True)
class ProcessStat:
    """What /proc/<pid>/stat says about one process; times in clock ticks."""

    utime: int
    stime: int
    cutime: int
    cstime: int
    start_ticks: int
    rss_pages: int

    @classmethod
    def parse(cls, text: str) -> ProcessStat:
        # the command name may hold spaces and parentheses: fields start after the last ')'
        fields = text[text.rindex(")") + 2 :].split()
        return cls(
            utime=int(fields[11]),
            stime=int(fields[12]),
            cutime=int(fields[13]),
            cstime=int(fields[14]),
            start_ticks=int(fields[19]),
            rss_pages=int(fields[21]),
        )


@dataclass(frozen=True)
class ServerUsage:
    """The server's processes added up."""

    cpu_seconds: float
    resident_bytes: int
    open_fds: int
    start_time_seconds: float


@dataclass(frozen=True)
class ResourceLimits:
    """What the server may use: CPU cores and bytes of memory."""

    cpu_cores: float
    memory_bytes: int


def _stat(pid: int, proc: Path) -> ProcessStat:
    return ProcessStat.parse((proc / str(pid) / "stat").read_text())


def _children(pid: int, proc: Path) -> list[int]:
    if not (proc / str(pid) / "task" / str(pid) / "children").exists():
        return _children_by_scan(pid, proc)  # a kernel without CONFIG_PROC_CHILDREN
    kids: list[int] = []
    for task in (proc / str(pid) / "task").iterdir():
        with open(task / "children") as handle:
            kids.extend(int(child) for child in handle.read().split())
    return kids


def _children_by_scan(pid: int, proc: Path) -> list[int]:
    kids = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _open_fds(pid: int, proc: Path) -> int:
    try:
        return len(os.listdir(proc / str(pid) / "fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0


def _boot_time(proc: Path) -> float:
    with open(proc / "stat", "rb") as handle:
        for line in handle:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    return 0.0


def read_server(master: int, proc: Path = _PROC) -> ServerUsage:
    """CPU, memory, open files and start time of ``master`` and its child processes."""
    for _ in range(_ATTEMPTS):
        before = _stat(master, proc)
        try:
            workers = {pid: _stat(pid, proc) for pid in _children(master, proc)}
        except (FileNotFoundError, ProcessLookupError):  # a worker was reaped while being read
            continue
        after = _stat(master, proc)
        if (after.cutime, after.cstime) == (before.cutime, before.cstime):
            break
    else:
        raise RuntimeError(f"workers of {master} kept exiting while being read")
    ticks = after.utime + after.stime + after.cutime + after.cstime
    ticks += sum(w.utime + w.stime for w in workers.values())
    return ServerUsage(
        cpu_seconds=ticks / _TICKS,
        resident_bytes=(after.rss_pages + sum(w.rss_pages for w in workers.values())) * _PAGE,
        open_fds=sum(_open_fds(pid, proc) for pid in (master, *workers)),
        start_time_seconds=_boot_time(proc) + after.start_ticks / _TICKS,
    )


# --------------------------------------------------------------------------- limits


def _cgroup_dirs(pid: int, proc: Path) -> dict[str, list[Path]]:
    """For each controller ("" for cgroup v2), the process's cgroup folder and its parents."""
    membership: dict[str, str] = {}
    for line in (proc / str(pid) / "cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            membership[controller] = path
    found: dict[str, list[Path]] = {}
    for line in (proc / str(pid) / "mountinfo").read_text().splitlines():
        before, after = line.split(" - ", 1)
        root, mount_point = before.split()[3:5]
        fstype, _, options = after.split()[:3]
        if fstype == "cgroup2":
            mounted = [""]
        elif fstype == "cgroup":
            mounted = options.split(",")
        else:
            continue
        for controller in mounted:
            if controller not in membership:
                continue
            relative = os.path.relpath(membership[controller], root)
            leaf = Path(mount_point) / relative if not relative.startswith("..") else None
            # In a cgroup namespace the path may not exist as written: the mount is the leaf.
            leaf = leaf if leaf is not None and leaf.is_dir() else Path(mount_point)
            found[controller] = [leaf, *[p for p in leaf.parents if p.is_relative_to(mount_point)]]
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_cpu(dirs: dict[str, list[Path]]) -> Iterator[float]:
    for folder in dirs.get("", []):
        raw = _read(folder / "cpu.max")
        if raw and not raw.startswith("max"):
            quota, period = raw.split()
            yield int(quota) / int(period)
    for folder in dirs.get("cpu", []):
        v1_quota, v1_period = (
            _read(folder / "cpu.cfs_quota_us"),
            _read(folder / "cpu.cfs_period_us"),
        )
        if v1_quota and v1_period and int(v1_quota) > 0:
            yield int(v1_quota) / int(v1_period)


def _cgroup_memory(dirs: dict[str, list[Path]]) -> Iterator[int]:
    for folder in dirs.get("", []):
        raw = _read(folder / "memory.max")
        if raw and raw != "max":
            yield int(raw)
    for folder in dirs.get("memory", []):
        raw = _read(folder / "memory.limit_in_bytes")
        if raw and int(raw) < _NO_MEMORY_LIMIT:
            yield int(raw)


def _machine_memory(proc: Path) -> int:
    for line in (proc / "meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def read_limits(pid: int, proc: Path = _PROC) -> ResourceLimits:
    """The tightest CPU and memory limits of ``pid``: its cgroups', else the machine's."""
    try:
        dirs = _cgroup_dirs(pid, proc)
    except FileNotFoundError:
        dirs = {}
    cpus = float(len(os.sched_getaffinity(pid)))
    return ResourceLimits(
        cpu_cores=min([cpus, *_cgroup_cpu(dirs)]),
        memory_bytes=min([_machine_memory(proc), *_cgroup_memory(dirs)]),
    )


# --------------------------------------------------------------------------- collector


def server_pid() -> int:
    """The server's main process: the gunicorn master under ``sre app serve``, else this."""
    return int(os.environ.get(SERVER_PID_ENV) or os.getpid())


class ServerProcessCollector(Collector):
    """The DESIGN.md process metrics for the server whose master is ``master``."""

    def __init__(self, master: int, registry: CollectorRegistry | None, proc: Path = _PROC) -> None:
        self._master = master
        self._proc = proc
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        try:
            usage = read_server(self._master, self._proc)
            limits = read_limits(self._master, self._proc)
        except (OSError, RuntimeError, ValueError) as exc:
            # the rest of /metrics is worth more than these five series
            log.warning("process metrics not read", extra={"error": str(exc)})
            return
        scope = "the server (gunicorn master and workers)"
        cpu = CounterMetricFamily(
            "process_cpu_seconds_total", f"User and system CPU time of {scope} in seconds."
        )
        cpu.add_metric([], usage.cpu_seconds)
        yield cpu
        gauges = [
            ("process_resident_memory_bytes", usage.resident_bytes, f"Resident memory of {scope}."),
            ("process_open_fds", usage.open_fds, f"Open file descriptors of {scope}."),
            (
                "process_start_time_seconds",
                usage.start_time_seconds,
                "Start time of the server (its gunicorn master) since the epoch in seconds.",
            ),
            (
                "elibrary_server_cpu_limit_cores",
                limits.cpu_cores,
                "CPU cores the server may use: its cgroup's quota, else the machine's CPUs.",
            ),
            (
                "elibrary_server_memory_limit_bytes",
                limits.memory_bytes,
                "Memory the server may use in bytes: its cgroup's limit, else the machine's.",
            ),
        ]
        for name, value, help_text in gauges:
            gauge = GaugeMetricFamily(name, help_text)
            gauge.add_metric([], value)
            yield gauge
