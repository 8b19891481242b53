"""Scrape time of /metrics with hundreds of dead gunicorn workers behind it.

Measures, in one run, the time to render the exposition (what a scrape of /metrics costs
in a worker) from a prometheus-client multiprocess directory in which N workers have lived
and died, two ways:

- reference: prometheus-client's MultiProcessCollector reading every dead worker's files,
  which is what plain multiprocess mode does;
- sre: app.multiproc.CompactingCollector after the master folded each dead worker.

Each simulated worker writes the service's real metric set (the http_* families with the
label values the service produces) through prometheus-client's own multiprocess value
class, so the files are what gunicorn workers leave behind.

    .venv/bin/python bench/metrics_scrape.py [--workers 100 300 1000] [--scrapes 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from app.metrics import HTTP_BUCKETS
from app.multiproc import CompactingCollector, fold_dead_worker, prepare_directory

ROUTES = (
    "/api/books",
    "/api/books/<int:book_id>",
    "/api/loans",
    "/api/loans/<int:loan_id>/return",
    "/api/loans/<int:loan_id>/renew",
    "/api/members",
    "/api/auth/token",
    "/api/health",
    "/api/ready",
    "/metrics",
    "/api/admin/stats",
    "unmatched",
)
STATUSES = ("200", "201", "404", "409")
TARGET_P99_MS = 100.0


def simulate_workers(directory: Path, count: int) -> None:
    """Let `count` workers with pids 10000.. serve a little traffic and die."""
    current = {"pid": 0}
    value_class = values.MultiProcessValue(process_identifier=lambda: current["pid"])
    original = values.ValueClass
    values.ValueClass = value_class
    try:
        for pid in range(10_000, 10_000 + count):
            current["pid"] = pid
            requests = Counter(
                "http_requests_total", "Requests.", ["method", "route", "status"], registry=None
            )
            duration = Histogram(
                "http_request_duration_seconds",
                "Latency.",
                ["method", "route"],
                buckets=HTTP_BUCKETS,
                registry=None,
            )
            in_progress = Gauge(
                "http_requests_in_progress",
                "In progress.",
                registry=None,
                multiprocess_mode="livesum",
            )
            in_progress.set(0)
            for route in ROUTES:
                for status in STATUSES:
                    requests.labels("GET", route, status).inc()
                duration.labels("GET", route).observe(0.02)
    finally:
        value_class.close_all_files()
        values.ValueClass = original


def time_scrapes(registry: CollectorRegistry, scrapes: int) -> list[float]:
    """Milliseconds per exposition render."""
    timings = []
    for _ in range(scrapes):
        started = time.perf_counter()
        generate_latest(registry)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def percentile(data: list[float], share: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()

    print(f"{'dead workers':>12} {'collector':>10} {'files':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for count in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            plain, folded = Path(tmp, "plain"), Path(tmp, "folded")
            for directory in (plain, folded):
                prepare_directory(str(directory))
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
                simulate_workers(directory, count)
            for pid in range(10_000, 10_000 + count):
                mark_process_dead(pid, str(plain))  # what the standard gunicorn recipe does
                fold_dead_worker(str(folded), pid)

            reference = CollectorRegistry()
            MultiProcessCollector(reference, path=str(plain))
            ours = CollectorRegistry()
            CompactingCollector(str(folded), registry=ours)
            # interleave so drift on a busy machine hits both equally
            ref_times: list[float] = []
            our_times: list[float] = []
            for _ in range(4):
                ref_times += time_scrapes(reference, args.scrapes // 4)
                our_times += time_scrapes(ours, args.scrapes // 4)
            rows = (
                ("reference", len(list(plain.rglob("*.db"))), ref_times),
                ("sre", len(list(folded.rglob("*.db"))), our_times),
            )
            for name, files, timings in rows:
                print(
                    f"{count:>12} {name:>10} {files:>6} "
                    f"{statistics.median(timings):>8.2f} {percentile(timings, 0.99):>8.2f}"
                )
            ratio = statistics.median(our_times) / statistics.median(ref_times)
            verdict = "ok" if percentile(our_times, 0.99) < TARGET_P99_MS else "OVER TARGET"
            print(
                f"{'':>12} median ratio sre/reference = {ratio:.3f}; "
                f"sre p99 target < {TARGET_P99_MS:.0f} ms: {verdict}"
            )
    print("command: .venv/bin/python bench/metrics_scrape.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
