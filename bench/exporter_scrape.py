"""Scrape time and memory of this exporter against mysqld_exporter, and its scaling.

In one run against the same MariaDB (127.0.0.1:3306), as the same least-privilege user,
default collectors on both:

1. median and p99 scrape time over N scrapes (interleaved in blocks) and resident memory
   of `sre exporter serve` and of Debian's prometheus-mysqld-exporter (0.14);
2. this exporter's median scrape time with 10,000 loans and again after `sre app seed`
   has grown the database to 1,000,000 loans (target: within 2x).

Prints figures; asserts nothing. Needs MariaDB and prometheus-mysqld-exporter.

    .venv/bin/python bench/exporter_scrape.py [--scrapes 200] [--big-loans 1000000]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pymysql

from sre.stack import free_port, stop_process, wait_http

ROOT = Path(__file__).resolve().parent.parent
SRE = str(Path(sys.executable).parent / "sre")
DB = "sre_bench_exporter"
USER = "sre_bench_exporter"


def admin() -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)


def prepare(password: str) -> None:
    """Recreate the bench database and its least-privilege user."""
    with admin().cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {DB}")
        cursor.execute(f"CREATE DATABASE {DB}")
        cursor.execute(f"DROP USER IF EXISTS '{USER}'@'127.0.0.1'")
        cursor.execute(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
        cursor.execute(
            f"GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO '{USER}'@'127.0.0.1'"
        )
        cursor.execute(f"GRANT SELECT ON {DB}.* TO '{USER}'@'127.0.0.1'")


def seed(books: int, members: int, loans: int) -> str:
    env = {**os.environ, "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{DB}"}
    done = subprocess.run(
        [
            SRE,
            "app",
            "seed",
            "--books",
            str(books),
            "--members",
            str(members),
            "--loans",
            str(loans),
            "--seed",
            str(loans),
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def scrape_times(url: str, count: int) -> list[float]:
    """Milliseconds per full scrape, body read."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as answer:
            answer.read()
        times.append((time.perf_counter() - started) * 1000)
    return times


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory now (VmRSS) or at its highest so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def p99(data: list[float]) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--small-loans", type=int, default=10_000)
    parser.add_argument("--big-loans", type=int, default=1_000_000)
    args = parser.parse_args()
    reference_bin = shutil.which("prometheus-mysqld-exporter")
    if reference_bin is None:
        print("error: prometheus-mysqld-exporter is not installed", file=sys.stderr)
        return 1
    password = secrets.token_urlsafe(12)
    prepare(password)
    print(seed(2_000, 1_000, args.small_loans), file=sys.stderr)
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cnf = Path(tmp, "my.cnf")
        cnf.write_text(
            f"[client]\nuser={USER}\npassword={password}\nhost=127.0.0.1\n"
            f"port=3306\ndatabase={DB}\n"
        )
        try:
            ours_port, ref_port = free_port(), free_port()
            ours = subprocess.Popen(
                [SRE, "exporter", "serve", "--port", str(ours_port), "--my-cnf", str(cnf)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            reference = subprocess.Popen(
                [
                    reference_bin,
                    f"--config.my-cnf={cnf}",
                    f"--web.listen-address=127.0.0.1:{ref_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes += [ours, reference]
            urls = {
                "sre": f"http://127.0.0.1:{ours_port}/metrics",
                "mysqld_exporter": f"http://127.0.0.1:{ref_port}/metrics",
            }
            for url in urls.values():
                wait_http(url)
                scrape_times(url, 10)  # warm-up
            times: dict[str, list[float]] = {name: [] for name in urls}
            block = max(1, args.scrapes // 10)
            for _ in range(10):
                for name, url in urls.items():
                    times[name] += scrape_times(url, block)
            memory = {"sre": rss_mib(ours.pid), "mysqld_exporter": rss_mib(reference.pid)}
            peak = {
                "sre": rss_mib(ours.pid, "VmHWM"),
                "mysqld_exporter": rss_mib(reference.pid, "VmHWM"),
            }

            print(
                f"\n== scrape time, {len(times['sre'])} scrapes each, {args.small_loans} loans =="
            )
            print(f"{'exporter':>16} {'median ms':>10} {'p99 ms':>8} {'RSS MiB':>8} {'peak':>6}")
            for name in urls:
                print(
                    f"{name:>16} {statistics.median(times[name]):>10.2f} "
                    f"{p99(times[name]):>8.2f} {memory[name]:>8.1f} {peak[name]:>6.1f}"
                )
            ratio = statistics.median(times["sre"]) / statistics.median(times["mysqld_exporter"])
            mem_ratio = memory["sre"] / memory["mysqld_exporter"]
            print(
                f"median ratio sre/mysqld_exporter = {ratio:.2f} (target <= 1.0); "
                f"memory ratio = {mem_ratio:.2f} (target <= 2.0), "
                f"peak {peak['sre'] / peak['mysqld_exporter']:.2f}"
            )

            small = statistics.median(scrape_times(urls["sre"], args.scrapes // 2))
            grown = args.big_loans - args.small_loans
            print(seed(2_000, 1_000, grown), file=sys.stderr)
            scrape_times(urls["sre"], 5)
            big = statistics.median(scrape_times(urls["sre"], args.scrapes // 2))
            print(
                f"\n== scale: sre median scrape {small:.2f} ms with {args.small_loans} loans, "
                f"{big:.2f} ms with {args.big_loans} loans: ratio {big / small:.2f} "
                f"(target <= 2.0)"
            )
        finally:
            for process in processes:
                stop_process(process)
            with admin().cursor() as cursor:
                cursor.execute(f"DROP USER IF EXISTS '{USER}'@'127.0.0.1'")
    print("command: .venv/bin/python bench/exporter_scrape.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
