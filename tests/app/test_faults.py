"""Fault injection: off without SRE_FAULT_FILE, switched on and off by editing the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app import create_app, load_config
from app.db import migrate
from app.faults import parse_fault
from app.state import utc_now


def make_client(tmp_path: Path, fault_file: Path | None):  # type: ignore[no-untyped-def]
    config = load_config(
        env={},
        database_url=f"sqlite:///{tmp_path / 'f.sqlite3'}",
        access_log=False,
        fault_file=str(fault_file) if fault_file else None,
    )
    flask_app = create_app(config)
    migrate(flask_app.extensions["elibrary"].db, utc_now())
    return flask_app.test_client()


def write(path: Path, fault: dict) -> None:
    path.write_text(json.dumps(fault))
    stamp = path.stat().st_mtime_ns + 10_000_000  # make each edit visible to mtime checks
    os.utime(path, ns=(stamp, stamp))


def test_errors_are_injected_only_while_the_file_says_so(tmp_path: Path) -> None:
    fault_file = tmp_path / "fault.json"
    client = make_client(tmp_path, fault_file)
    assert client.get("/api/books").status_code == 200  # no file: no fault

    write(fault_file, {"error_ratio": 1.0, "route": "/api/books"})
    broken = client.get("/api/books")
    assert broken.status_code == 500 and "Injected fault" in broken.json["detail"]
    assert client.get("/api/health").status_code == 200  # another route is untouched

    write(fault_file, {"error_ratio": 0.0})
    assert client.get("/api/books").status_code == 200
    fault_file.unlink()
    assert client.get("/api/books").status_code == 200


def test_an_error_ratio_is_roughly_honoured(tmp_path: Path) -> None:
    fault_file = tmp_path / "fault.json"
    client = make_client(tmp_path, fault_file)
    write(fault_file, {"error_ratio": 0.3})
    failures = sum(client.get("/api/health").status_code == 500 for _ in range(1000))
    assert 200 < failures < 400


def test_a_malformed_fault_file_is_ignored(tmp_path: Path) -> None:
    fault_file = tmp_path / "fault.json"
    client = make_client(tmp_path, fault_file)
    fault_file.write_text("{not json")
    assert client.get("/api/books").status_code == 200


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"error_ratio": 2}', "error_ratio must be between 0 and 1"),
        ('{"latency_ms": -1}', "latency_ms must be between"),
        ('{"oops": 1}', "unknown keys: oops"),
        ("[1]", "must be a JSON object"),
        ('{"cpu_ms": 20000}', "cpu_ms must be between 0 and 10000"),
        ('{"memory_mb": 1.5}', "memory_mb must be a whole number"),
        ('{"memory_mb": 5000}', "memory_mb must be a whole number between 0 and 4096"),
    ],
    ids=[
        "ratio above one",
        "negative latency",
        "unknown key",
        "not an object",
        "too much CPU",
        "a fraction of a MiB",
        "too much memory",
    ],
)
def test_fault_files_are_validated(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(text)


def test_latency_is_injected(tmp_path: Path) -> None:
    fault_file = tmp_path / "fault.json"
    client = make_client(tmp_path, fault_file)
    write(fault_file, {"latency_ms": 150})
    import time

    started = time.monotonic()
    client.get("/api/health")
    assert time.monotonic() - started >= 0.15


def test_cpu_is_burnt_in_matching_requests_only(tmp_path: Path) -> None:
    import time

    fault_file = tmp_path / "fault.json"
    client = make_client(tmp_path, fault_file)
    write(fault_file, {"cpu_ms": 200, "route": "/api/books"})
    started = time.thread_time()
    client.get("/api/books")
    assert time.thread_time() - started >= 0.2  # CPU time, not sleep
    started = time.thread_time()
    client.get("/api/health")
    assert time.thread_time() - started < 0.1


def _resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGESIZE")


def test_memory_is_held_while_the_fault_lasts(tmp_path: Path) -> None:
    fault_file = tmp_path / "fault.json"
    client = make_client(tmp_path, fault_file)
    client.get("/api/health")
    before = _resident_bytes()
    write(fault_file, {"memory_mb": 64})
    client.get("/api/health")
    assert _resident_bytes() - before > 60 << 20
    write(fault_file, {"memory_mb": 0})
    client.get("/api/health")
    assert _resident_bytes() - before < 16 << 20
