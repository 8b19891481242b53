"""Folding dead workers' metric files: counts are kept exactly, scrapes stay cheap.

Workers are simulated with prometheus-client's own multiprocess value class under chosen
pids, so the files are the library's real format; the gunicorn test in test_server.py
covers real worker processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

from app.multiproc import CompactingCollector, fold_dead_worker, prepare_directory

BUCKETS = (0.1, 0.2, 1.0)


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "metrics"
    prepare_directory(str(directory))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    yield directory


@pytest.fixture
def run_worker(metrics_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable]:
    """Run a fake worker with a given pid that counts requests and observes durations."""
    current = {"pid": 0}
    value_class = values.MultiProcessValue(process_identifier=lambda: current["pid"])
    monkeypatch.setattr(values, "ValueClass", value_class)

    def run(pid: int, requests: int, seconds: float = 0.15) -> None:
        current["pid"] = pid
        counter = Counter("demo_requests_total", "Requests.", ["route"], registry=None)
        histogram = Histogram("demo_seconds", "Latency.", ["route"], buckets=BUCKETS, registry=None)
        live = Gauge("demo_in_progress", "Live.", registry=None, multiprocess_mode="livesum")
        live.set(1)
        for _ in range(requests):
            counter.labels("/a").inc()
            histogram.labels("/a").observe(seconds)

    yield run
    value_class.close_all_files()


def scrape(directory: Path) -> dict[str, float]:
    registry = CollectorRegistry()
    CompactingCollector(str(directory), registry=registry)
    samples = {}
    for metric in registry.collect():
        for sample in metric.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def test_folding_keeps_every_count_and_drops_the_dead_files(
    metrics_dir: Path, run_worker: Callable
) -> None:
    for pid, requests in ((101, 3), (102, 5), (103, 7)):
        run_worker(pid, requests)
    before = scrape(metrics_dir)
    assert before["demo_requests_total{route=/a}"] == 15

    assert fold_dead_worker(str(metrics_dir), 101) == 2  # counter and histogram files
    assert fold_dead_worker(str(metrics_dir), 102) == 2
    after = scrape(metrics_dir)
    assert after["demo_requests_total{route=/a}"] == 15
    assert after["demo_seconds_bucket{le=0.1,route=/a}"] == 0
    assert after["demo_seconds_bucket{le=0.2,route=/a}"] == 15
    assert after["demo_seconds_count{route=/a}"] == 15
    assert after["demo_seconds_sum{route=/a}"] == pytest.approx(15 * 0.15)
    # the live gauge of the dead workers is gone, the one still running stays
    assert after["demo_in_progress{}"] == 1
    assert sorted(p.name for p in metrics_dir.glob("*.db")) == [
        "counter_103.db",
        "gauge_livesum_103.db",
        "histogram_103.db",
    ]


def test_hundreds_of_recycled_workers_leave_a_bounded_number_of_files(
    metrics_dir: Path, run_worker: Callable
) -> None:
    for pid in range(1000, 1300):
        run_worker(pid, 2)
        fold_dead_worker(str(metrics_dir), pid)
    files = [p for p in metrics_dir.rglob("*.db")]
    assert len(files) <= 4  # two archive generations of counters and histograms
    assert scrape(metrics_dir)["demo_requests_total{route=/a}"] == 600


def test_a_scrape_during_folding_never_sees_counts_move(
    metrics_dir: Path, run_worker: Callable
) -> None:
    pids = range(2000, 2150)
    for pid in pids:
        run_worker(pid, 1)
    seen: list[float] = []
    done = threading.Event()

    def scrape_repeatedly() -> None:
        while not done.is_set():
            seen.append(scrape(metrics_dir)["demo_requests_total{route=/a}"])

    reader = threading.Thread(target=scrape_repeatedly)
    reader.start()
    try:
        for pid in pids:
            fold_dead_worker(str(metrics_dir), pid)
    finally:
        done.set()
        reader.join()
    assert len(seen) > 5
    assert set(seen) == {150.0}


def test_preparing_the_directory_wipes_only_metric_files(tmp_path: Path) -> None:
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"old")
    (directory / "notes.txt").write_text("keep me")
    prepare_directory(str(directory))
    assert [p.name for p in directory.iterdir()] == ["notes.txt"]


def test_a_worker_file_caught_before_its_first_write_is_no_crash(
    metrics_dir: Path, run_worker: Callable
) -> None:
    # prometheus-client opens a worker's file, then truncates it to its full size: for an
    # instant it is empty, and reading it raised struct.error (a scrape, or the master
    # folding a worker that died while booting, took the server down in CI).
    run_worker(pid=1, requests=3)
    (metrics_dir / "counter_2.db").touch()
    (metrics_dir / "histogram_2.db").touch()
    assert scrape(metrics_dir)["demo_requests_total{route=/a}"] == 3
    assert fold_dead_worker(str(metrics_dir), 2) == 0
    assert scrape(metrics_dir)["demo_requests_total{route=/a}"] == 3
