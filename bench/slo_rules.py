"""What the generated SLO rules cost a real Prometheus: optimized period SLI against raw.

For 1, 10 and 100 SLOs (copies of the project's SLOs in slo/specs/elibrary.yaml under
distinct names, all reading the real app's series) the script builds the rule file twice
with slo.rules: ``optimized`` (the period SLI ``slo:sli_error:ratio_rate30d`` as
``sum_over_time`` of the 5m ratio over 30 days divided by its ``count_over_time``) and
``raw`` (the period SLI as the ``rate(...[30d])`` ratio). For each size, three
Prometheus 2.42 run side by side, so that whatever else the machine does weighs on all
alike: one per form and one without rules (the CPU baseline), all scraping the same
``sre app serve`` (SQLite, 1 worker) that a bounded loopback client keeps busy. The
script reads each Prometheus' own /metrics repeatedly
(``prometheus_rule_group_last_duration_seconds`` with the group's
``..._last_evaluation_timestamp_seconds``, so each evaluation counts once),
/api/v1/rules (each rule's ``evaluationTime``, for the period rule alone) and, at the
end, the query statistics of the period rules (samples read). It reports per
configuration the summed median evaluation time of all SLO groups, per SLO, of the
SLI-recording groups and of the period rules; Prometheus' CPU above the baseline per
evaluation round; optimized/raw ratios; and the growth 1->10 and 10->100 (linear: 10x).

With live data only, the 30d range holds minutes of samples, which understates what the
raw form costs after 30 days. ``--backfill-days D`` first writes D days of synthetic
history (the app's SLO series as Prometheus stores them, and every SLO's
``slo:sli_error:ratio_rate5m``, one sample per ``--history-step``) with ``promtool tsdb
create-blocks-from openmetrics`` in 54h blocks, and copies the blocks into every
Prometheus, so the 30d range reads real data. Everything lives in one temporary
directory, removed at the end.

Prints figures; asserts nothing. Needs ``prometheus`` and ``promtool`` (2.42).

    .venv/bin/python bench/slo_rules.py [--slos 1,10,100] [--seconds 40] [--json FILE]
    .venv/bin/python bench/slo_rules.py --backfill-days 30 --interval 30s --seconds 90
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from slo import BuildOptions, SpecDocument, build_documents
from slo.render import render_documents
from slo.rules import sli_error_metric
from slo.spec import load_specs
from slo.windows import load_windows
from sre.conventions import APP_JOB
from sre.durations import parse_duration
from sre.stack import free_port, stop_process, wait_http

ROOT = Path(__file__).resolve().parent.parent
SRE = str(Path(sys.executable).parent / "sre")
SPEC = ROOT / "slo" / "specs" / "elibrary.yaml"
FORMS = ("optimized", "raw")
KINDS = ("sli", "meta", "alerts")
_GROUP_KIND = re.compile(r"^sloth-slo-(sli|meta)-recordings-|^sloth-slo-(alerts)-")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)")
_RULE_GROUP = re.compile(r'rule_group="[^;"]*;([^"]*)"')
#: promtool writes blocks of the largest 2h * 3^n not over this; 54h blocks are what a
#: Prometheus with a month of retention compacts to, and it never compacts them further
_BLOCK_S = 54 * 3600
_BLOCK_FLAG = ("--max-block-duration=54h",)
#: families of the app that the SLO queries read (every series of them is backfilled)
_FAMILIES = ("http_requests", "http_request_duration_seconds")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- rules


def slo_copies(count: int) -> SpecDocument:
    """The project's spec document with ``count`` SLOs: its SLOs in turn, renamed."""
    (document,) = load_specs([SPEC], catalog=load_windows())
    base = document.slos
    slos = []
    for index in range(count):
        slo = base[index % len(base)]
        name = f"{slo.name}-{index:03d}"
        slos.append(replace(slo, name=name, id=f"{slo.service}-{name}"))
    return replace(document, slos=tuple(slos))


def rule_file(document: SpecDocument, optimized: bool) -> str:
    """The rule file Sloth would write for the document, in one of the two forms."""
    built = build_documents([document], load_windows(), BuildOptions(optimized=optimized))
    return render_documents(built)


def period_rule_name(document: SpecDocument) -> str:
    return sli_error_metric(document.slos[0].period_s)


# ---------------------------------------------------------------- the app and its traffic


class Traffic:
    """A loopback client sending a realistic API mix at a bounded rate, in a thread."""

    def __init__(self, url: str, rps: float, seed: int = 1) -> None:
        self.url = url
        self.rps = rps
        self.sent = 0
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._tokens: list[str] = []
        self._loans: list[tuple[str, int]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _call(self, method: str, path: str, body: Any = None, token: str = "") -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        self.sent += 1
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            exc.read()
            return None
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        for number in range(3):
            email = f"bench-{number}@example.org"
            login = {"email": email, "password": "bench password"}
            self._call("POST", "/api/members", {**login, "name": f"Bench {number}"})
            for _ in range(5):  # the injected faults may refuse the first tries
                answer = self._call("POST", "/api/auth/token", login)
                if isinstance(answer, dict) and "access_token" in answer:
                    self._tokens.append(answer["access_token"])
                    break
        if not self._tokens:
            raise RuntimeError("no member could log in to the app")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def _one(self) -> None:
        rng = self._rng
        token = rng.choice(self._tokens)
        pick = rng.random()
        if pick < 0.30:
            self._call("GET", f"/api/books?page={rng.randint(1, 8)}")
        elif pick < 0.40:
            self._call("GET", f"/api/books?q={rng.choice(['the', 'of', 'a', 'zz'])}")
        elif pick < 0.65:
            self._call("GET", f"/api/books/{rng.randint(1, 220)}")  # some 404s
        elif pick < 0.73:
            loan = self._call("POST", "/api/loans", {"book_id": rng.randint(1, 200)}, token)
            if isinstance(loan, dict) and "id" in loan:
                self._loans.append((token, int(loan["id"])))
        elif pick < 0.79:
            if self._loans:
                owner, loan_id = self._loans.pop(0)
                self._call("POST", f"/api/loans/{loan_id}/return", None, owner)
        elif pick < 0.85:
            self._call("GET", "/api/loans", token=token)
        elif pick < 0.88:
            self._call("POST", "/api/auth/token", {"email": "x@example.org", "password": "no"})
        elif pick < 0.90:
            self._call("GET", "/api/admin/stats", token=token)  # 403
        elif pick < 0.95:
            self._call("GET", "/api/health")
        elif pick < 0.97:
            self._call("GET", "/api/no-such-thing")
        else:
            self._call("POST", "/api/members", {"email": "bench-0@example.org"})

    def _run(self) -> None:
        period = 1 / self.rps
        due = time.monotonic()
        while not self._stop.is_set():
            self._one()
            due += period
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                due = time.monotonic()  # behind: no burst to catch up


def start_app(tmp: Path, cleanup: ExitStack, error_ratio: float) -> tuple[int, str]:
    """Seed a SQLite library and serve it with `sre app serve`; its port and URL."""
    database = f"sqlite:///{tmp / 'library.db'}"
    env = {**os.environ, "DATABASE_URL": database, "SRE_ACCESS_LOG": "false"}
    subprocess.run(
        [SRE, "app", "seed", "--books", "200", "--members", "20", "--loans", "200"],
        env=env,
        check=True,
        capture_output=True,
    )
    fault = tmp / "fault.json"
    fault.write_text(json.dumps({"error_ratio": error_ratio}))
    port = free_port()
    argv = [SRE, "app", "serve", "--port", str(port), "--workers", "1", "--threads", "4"]
    argv += ["--metrics-dir", str(tmp / "app-metrics")]
    with (tmp / "app.log").open("ab") as out:
        app = subprocess.Popen(
            argv, env={**env, "SRE_FAULT_FILE": str(fault)}, stdout=out, stderr=out
        )
    cleanup.callback(stop_process, app)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/api/ready", app)
    return port, url


# ---------------------------------------------------------------- synthetic history


@dataclass(frozen=True)
class _Series:
    """One backfilled series: its text up to the value, and what each step adds to the
    counter (or, for a gauge, its values), repeated as long as the history lasts."""

    prefix: str
    steps: tuple[float, ...]
    gauge: bool = False


def _series_text(name: str, labels: Mapping[str, str]) -> str:
    """``name{a="1",b="2"} `` as OpenMetrics writes a sample's start."""

    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    pairs = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{pairs}}} "


def _increments(rng: random.Random, mean: float, count: int = 251) -> list[float]:
    """Poisson-like event counts per step (normal approximation, never negative)."""
    return [max(0.0, round(rng.gauss(mean, math.sqrt(mean)))) for _ in range(count)]


def history_series(
    exposition: str, instance: str, document: SpecDocument, step_s: int, rps: float
) -> list[_Series]:
    """The app's SLO families as Prometheus would hold them, plus each SLO's 5m ratio.

    Rates follow the shares of the app's live counters, ``rps`` requests per second in
    all; histogram buckets keep their live proportions, so they stay cumulative.
    """
    rng = random.Random(7)
    requests: dict[str, float] = {}
    histogram: dict[tuple[str, str], dict[str, float]] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name not in _FAMILIES:
            continue
        for sample in family.samples:
            labels = {**sample.labels, "job": APP_JOB, "instance": instance}
            if sample.name == "http_requests_total":
                requests[_series_text(sample.name, labels)] = sample.value
            elif sample.name.startswith("http_request_duration_seconds_"):
                key = (labels["method"], labels["route"])
                suffix = sample.name.rsplit("_", 1)[1]
                le = labels.get("le", "")
                histogram.setdefault(key, {})[f"{suffix}|{le}"] = sample.value
    total = sum(requests.values()) or 1.0
    series = []
    for prefix, value in sorted(requests.items()):
        steps = _increments(rng, rps * step_s * value / total)
        series.append(_Series(prefix, tuple(steps)))
    counted = sum(h.get("count|", 0.0) for h in histogram.values()) or 1.0
    for (method, route), values in sorted(histogram.items()):
        count = values.get("count|", 0.0)
        if count <= 0:
            continue
        base = {"job": APP_JOB, "instance": instance, "method": method, "route": route}
        counts = _increments(rng, rps * step_s * count / counted)
        mean_s = values.get("sum|", 0.0) / count
        name = "http_request_duration_seconds"
        series.append(_Series(_series_text(name + "_count", base), tuple(counts)))
        sums = tuple(round(c * mean_s, 6) for c in counts)
        series.append(_Series(_series_text(name + "_sum", base), sums))
        for entry, value in sorted(values.items()):
            if entry.startswith("bucket|"):
                share = value / count
                prefix = _series_text(name + "_bucket", {**base, "le": entry[7:]})
                series.append(_Series(prefix, tuple(math.floor(c * share) for c in counts)))
    built = build_documents([document], load_windows(), BuildOptions())
    short = sli_error_metric(min(load_windows()[document.slos[0].period_s].windows()))
    for _, groups in built:
        for group in groups:
            for rule in group.rules:
                if rule.record == short:
                    prefix = _series_text(rule.record, rule.labels)
                    level = rng.uniform(0.0005, 0.05)
                    ratios = tuple(round(level * rng.uniform(0.5, 1.5), 6) for _ in range(251))
                    series.append(_Series(prefix, ratios, gauge=True))
    return series


def backfill(
    tmp: Path, series: list[_Series], days: float, step_s: int, end_s: int, max_gib: float
) -> tuple[Path, dict[str, Any]]:
    """TSDB blocks holding ``days`` of ``series`` up to ``end_s``, one promtool run per block."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise RuntimeError("promtool is not installed (Debian package prometheus)")
    start_s = end_s - int(days * 86400)
    start_s -= start_s % step_s
    steps = (end_s - start_s) // step_s
    samples = steps * len(series)
    window_bytes = 130 * len(series) * (_BLOCK_S // step_s)
    free = shutil.disk_usage(tmp).free
    if window_bytes * 2 > min(free, max_gib * 2**30):
        raise RuntimeError(
            f"backfill needs about {window_bytes * 2 / 2**30:.1f} GiB of temporary files "
            f"({free / 2**30:.1f} GiB free, --max-temp-gib {max_gib}): fewer series or a "
            "longer --history-step"
        )
    log(f"backfill: {len(series)} series x {steps} steps = {samples / 1e6:.1f}M samples")
    blocks = tmp / "blocks"
    blocks.mkdir()
    started = time.monotonic()
    values = [0.0] * len(series)
    first_window = start_s - start_s % _BLOCK_S
    for window in range(first_window, end_s, _BLOCK_S):
        lo = max(start_s, window)
        lo += (start_s - lo) % step_s
        hi = min(end_s, window + _BLOCK_S)
        first_step = (lo - start_s) // step_s
        count = (hi - lo + step_s - 1) // step_s
        if count <= 0:
            continue
        text = tmp / "history.om"
        with text.open("w") as out:
            for index, one in enumerate(series):
                value = values[index]
                cycle = len(one.steps)
                lines = []
                for k in range(count):
                    step = one.steps[(first_step + k) % cycle]
                    value = step if one.gauge else value + step
                    lines.append(f"{one.prefix}{value:.10g} {lo + k * step_s}\n")
                values[index] = value
                out.write("".join(lines))
            out.write("# EOF\n")
        argv = [promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet"]
        done = subprocess.run(
            [*argv, *_BLOCK_FLAG, str(text), str(blocks)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"promtool failed: {done.stderr.strip()[-2000:]}")
        text.unlink()
    size = sum(p.stat().st_size for p in blocks.rglob("*") if p.is_file())
    info = {
        "days": days,
        "step_s": step_s,
        "series": len(series),
        "samples": samples,
        "blocks": len([p for p in blocks.iterdir() if p.is_dir()]),
        "block_mib": round(size / 2**20, 1),
        "seconds": round(time.monotonic() - started, 1),
    }
    log(f"backfill: {info['blocks']} blocks, {info['block_mib']} MiB, in {info['seconds']} s")
    return blocks, info


# ---------------------------------------------------------------- one Prometheus


@dataclass
class Readings:
    """What one configuration's polls saw, each evaluation once."""

    #: group name -> {evaluation timestamp: seconds it took}
    groups: dict[str, dict[float, float]] = field(default_factory=dict)
    #: group name -> {rule lastEvaluation: the period rule's evaluationTime}
    period: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu: list[tuple[float, float]] = field(default_factory=list)
    iterations: list[float] = field(default_factory=list)
    missed: list[float] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)
    #: samples the period rules of all SLOs read, once, at the end (query statistics)
    period_samples: int = 0


def _get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        data: bytes = answer.read()
        return data


def poll_metrics(url: str, since: float, readings: Readings) -> None:
    """One read of Prometheus' /metrics: rule group durations, iterations, CPU."""
    text = _get(url + "/metrics").decode()
    durations: dict[str, float] = {}
    stamps: dict[str, float] = {}
    iterations = missed = 0.0
    cpu = math.nan
    for line in text.splitlines():
        if not line.startswith(("prometheus_rule_group", "process_cpu_seconds_total")):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        group = _RULE_GROUP.search(labels)
        if name == "process_cpu_seconds_total":
            cpu = value
        elif name == "prometheus_rule_group_duration_seconds" and "quantile" in labels:
            readings.summary[labels.split('"')[1]] = value
        elif group is None:
            continue
        elif name == "prometheus_rule_group_last_duration_seconds":
            durations[group.group(1)] = value
        elif name == "prometheus_rule_group_last_evaluation_timestamp_seconds":
            stamps[group.group(1)] = value
        elif name == "prometheus_rule_group_iterations_total":
            iterations += value
        elif name == "prometheus_rule_group_iterations_missed_total":
            missed += value
    readings.cpu.append((time.monotonic(), cpu))
    readings.iterations.append(iterations)
    readings.missed.append(missed)
    for name, stamp in stamps.items():
        if stamp >= since and name in durations:
            readings.groups.setdefault(name, {})[stamp] = durations[name]


def poll_rules(url: str, since: float, rule: str, readings: Readings) -> None:
    """One read of /api/v1/rules: the period rule's own evaluation time in each group."""
    data = json.loads(_get(url + "/api/v1/rules?type=record"))
    for group in data["data"]["groups"]:
        for one in group["rules"]:
            if one["name"] != rule or not one.get("lastEvaluation"):
                continue
            stamp = one["lastEvaluation"]
            if _rfc3339(stamp) >= since:
                readings.period.setdefault(group["name"], {})[stamp] = one["evaluationTime"]


def period_samples(url: str, rules: str, period_rule: str) -> int:
    """Samples the period rules read in one evaluation, from Prometheus' query statistics.

    Unlike times, the count does not depend on what else the machine is doing."""
    total = 0
    for document in yaml.safe_load_all(rules):
        for group in (document or {}).get("groups", []):
            for rule in group["rules"]:
                if rule.get("record") == period_rule:
                    query = urllib.parse.urlencode({"query": rule["expr"], "stats": "all"})
                    answer = json.loads(_get(f"{url}/api/v1/query?{query}"))
                    total += int(answer["data"]["stats"]["samples"]["totalQueryableSamples"])
    return total


def _rfc3339(text: str) -> float:
    # Prometheus writes 2023-07-01T12:00:00.123456789Z (or an offset); microseconds suffice
    whole = re.sub(r"(\.\d{1,6})\d*", r"\1", text).replace("Z", "+00:00")
    return datetime.fromisoformat(whole).timestamp()


def start_prometheus(
    tmp: Path,
    name: str,
    rules: str | None,
    app_port: int,
    interval_s: int,
    blocks: Path | None,
    cleanup: ExitStack,
) -> str:
    """Start a Prometheus scraping the app and evaluating ``rules`` (None: no rules, the
    baseline), its data directory holding a copy of ``blocks``; its URL once ready.

    ``cleanup`` stops it and removes its directory."""
    workdir = tmp / name
    data = workdir / "data"
    data.mkdir(parents=True)
    cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
    if blocks is not None:
        for block in blocks.iterdir():
            if block.is_dir():
                shutil.copytree(block, data / block.name)
    rule_files = []
    if rules is not None:
        rule_files.append(str(workdir / "rules.yml"))
        (workdir / "rules.yml").write_text(rules)
    config = {
        "global": {
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "evaluation_interval": f"{interval_s}s",
        },
        "rule_files": rule_files,
        "scrape_configs": [
            {"job_name": APP_JOB, "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]}
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed (Debian package prometheus)")
    port = free_port()
    argv = [
        binary,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={data}",
        "--storage.tsdb.retention.time=60d",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with (workdir / "prometheus.log").open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=out)
    cleanup.callback(stop_process, process)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/-/ready", process, timeout_s=120)
    return url


def poll(
    urls: dict[str, str], interval_s: int, seconds: float, period_rule: str
) -> dict[str, Readings]:
    """Poll every Prometheus in turn for ``seconds``; evaluations from now on count."""
    since = time.time()
    readings = {name: Readings() for name in urls}
    poll_every = min(1.0, interval_s / 2)
    rules_every = max(3.0, interval_s / 2)
    end = time.monotonic() + seconds
    next_rules = time.monotonic()
    while True:
        last = time.monotonic() >= end
        rules_due = last or time.monotonic() >= next_rules
        for name, url in urls.items():
            poll_metrics(url, since, readings[name])
            if rules_due:
                poll_rules(url, since, period_rule, readings[name])
        if last:
            return readings
        if rules_due:
            next_rules = time.monotonic() + rules_every
        time.sleep(poll_every)


# ---------------------------------------------------------------- figures


def _kind(group: str) -> str:
    match = _GROUP_KIND.match(group)
    return (match.group(1) or match.group(2)) if match else "other"


def cpu_cores(readings: Readings) -> float:
    """Prometheus' CPU over the polls, in cores (1.0 = one core busy)."""
    (t0, cpu0), (t1, cpu1) = readings.cpu[0], readings.cpu[-1]
    return (cpu1 - cpu0) / (t1 - t0) if t1 > t0 else math.nan


def figures(readings: Readings, slos: int, baseline_cores: float) -> dict[str, Any]:
    """Per-evaluation costs (ms): each group's median evaluation, summed by kind.

    ``rule_cpu_ms_per_round`` is Prometheus' CPU above the baseline's (the same
    Prometheus scraping the same app without rules) per evaluation round of all groups.
    """
    by_kind = dict.fromkeys(KINDS, 0.0)
    evaluations = 0
    for group, evals in readings.groups.items():
        kind = _kind(group)
        by_kind[kind] = by_kind.get(kind, 0.0) + statistics.median(evals.values())
        evaluations += len(evals)
    period = sum(statistics.median(v.values()) for v in readings.period.values() if v)
    wall = readings.cpu[-1][0] - readings.cpu[0][0]
    rounds = (readings.iterations[-1] - readings.iterations[0]) / (len(readings.groups) or 1)
    cores = cpu_cores(readings)
    all_ms = sum(by_kind.values()) * 1000
    return {
        "slos": slos,
        "groups": len(readings.groups),
        "evaluations": evaluations,
        "all_ms": all_ms,
        "per_slo_ms": all_ms / slos,
        **{f"{kind}_ms": by_kind[kind] * 1000 for kind in KINDS},
        "period_rule_ms": period * 1000,
        "identical_rules_ms": all_ms - period * 1000,
        "period_rule_groups": sum(1 for v in readings.period.values() if v),
        "period_rule_samples": readings.period_samples,
        "cpu_percent": 100 * cores,
        "rule_cpu_ms_per_round": (
            1000 * (cores - baseline_cores) * wall / rounds if rounds > 0 else math.nan
        ),
        "missed_iterations": readings.missed[-1] - readings.missed[0],
        "group_duration_summary_ms": {q: v * 1000 for q, v in sorted(readings.summary.items())},
    }


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, int | float) and key != "slos":
            out[key] = statistics.median(run[key] for run in runs)
    out["repeats"] = len(runs)
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


_RATIOS = {
    "period rule": "period_rule_ms",
    "period samples": "period_rule_samples",
    "all groups": "all_ms",
    "sli-recs": "sli_ms",
    "identical rules": "identical_rules_ms",
    "rule CPU": "rule_cpu_ms_per_round",
}


def report(
    results: dict[tuple[int, str], dict[str, Any]], sizes: list[int], baseline_percent: float
) -> dict[str, Any]:
    """Print the tables and the verdict; the same figures for --json."""
    print(
        "\n== per-evaluation cost (ms): each group's median evaluation time, summed ==\n"
        "  SLOs form        all groups  per SLO  sli-recs  period rule  period samples"
        "  Prom CPU %  rule CPU/round  missed"
    )
    for size in sizes:
        for form in FORMS:
            r = results[(size, form)]
            print(
                f"{size:>6} {form:<10} {r['all_ms']:>11.2f} {r['per_slo_ms']:>8.2f}"
                f" {r['sli_ms']:>9.2f} {r['period_rule_ms']:>12.3f}"
                f" {int(r['period_rule_samples']):>15,} {r['cpu_percent']:>11.1f}"
                f" {r['rule_cpu_ms_per_round']:>15.1f} {r['missed_iterations']:>7.0f}"
            )
    print(
        f"  (a Prometheus with no rules beside them, same scrapes: {baseline_percent:.1f} % CPU;"
        " rule CPU: ms of CPU above it per evaluation round of all groups)"
    )
    print(
        "\n== optimized / raw (below 1: the optimized form is cheaper) ==\n"
        "  SLOs" + "".join(f"{label:>17}" for label in _RATIOS)
    )
    ratios = {}
    for size in sizes:
        opt, raw = results[(size, "optimized")], results[(size, "raw")]
        ratios[size] = {key: _ratio(opt[key], raw[key]) for key in _RATIOS.values()}
        print(f"{size:>6}" + "".join(f"{ratios[size][key]:>17.2f}" for key in _RATIOS.values()))
    print(
        "  (identical rules: every rule but the period SLI, the same in both forms; its"
        " distance from 1 is the noise of the measurement)"
    )
    growth: dict[str, dict[str, float]] = {}
    per_slo: dict[str, float] = {}
    steps = list(itertools.pairwise(sizes))
    figures_grown = (
        ("group time", "all_ms"),
        ("period rule", "period_rule_ms"),
        ("rule CPU", "rule_cpu_ms_per_round"),
    )
    if steps:
        print("\n== growth with the number of SLOs (linear: x the size ratio) ==")
        print(" " * 24 + "".join(f"{f'{a}->{b}':>14}" for a, b in steps))
        for form in FORMS:
            for label, key in figures_grown:
                cells = growth.setdefault(f"{form} {label}", {})
                for a, b in steps:
                    cells[f"{a}->{b}"] = _ratio(results[(b, form)][key], results[(a, form)][key])
                shown = "".join(f"{cells[f'{a}->{b}']:>8.1f}x /{b / a:>3g}" for a, b in steps)
                print(f"  {form + ' ' + label:<22}{shown}")
                if key != "period_rule_ms":
                    a, b = steps[-1]
                    per_slo[f"{form} {label}"] = cells[f"{a}->{b}"] / (b / a)
    verdict = []
    linear = None
    if per_slo:
        a, b = steps[-1]
        linear = all(x <= 1.5 for x in per_slo.values())
        shown = ", ".join(f"{label} {x:.2f}" for label, x in per_slo.items())
        verdict.append(
            f"{'linear' if linear else 'NOT linear'}: cost per SLO at {b} / at {a}: {shown}"
            " (linear: 1, target <= 1.5)"
        )
    # Two runs of the very same rules differ by the noise; the identical rules show how much.
    noise = {size: max(0.05, abs(r["identical_rules_ms"] - 1)) for size, r in ratios.items()}
    cheaper = all(
        r["period_rule_ms"] <= 1 + noise[size] and r["all_ms"] <= 1 + noise[size]
        for size, r in ratios.items()
    )
    shown = ", ".join(
        f"{size}: {r['period_rule_ms']:.2f} period rule, {r['all_ms']:.2f} all groups"
        f" (noise {noise[size]:.2f})"
        for size, r in ratios.items()
    )
    verdict.append(f"optimized {'<=' if cheaper else 'NOT <='} raw: opt/raw at {shown}")
    print("\nverdict: " + "; ".join(verdict))
    return {
        "results": [results[(s, f)] | {"form": f} for s in sizes for f in FORMS],
        "baseline_cpu_percent": baseline_percent,
        "ratios_optimized_over_raw": {str(s): r for s, r in ratios.items()},
        "noise": {str(s): n for s, n in noise.items()},
        "growth": growth,
        "per_slo_growth_last_step": per_slo,
        "linear": linear,
        "optimized_no_costlier": cheaper,
    }


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slos", default="1,10,100", help="SLO counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=40, help="measured per size (40)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds before measuring")
    parser.add_argument("--interval", default="2s", help="rule evaluation interval (2s)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of all configurations")
    parser.add_argument("--rps", type=float, default=20, help="requests/s sent to the app")
    parser.add_argument("--error-ratio", type=float, default=0.02, help="injected 5xx share")
    parser.add_argument(
        "--backfill-days", type=float, default=0, help="days of synthetic history (0: none)"
    )
    parser.add_argument("--history-step", default="60s", help="sample spacing of the history")
    parser.add_argument(
        "--history-rps", type=float, default=20, help="requests/s the history counts"
    )
    parser.add_argument(
        "--max-temp-gib", type=float, default=4, help="refuse a backfill needing more"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    try:
        sizes = sorted({int(s) for s in args.slos.split(",")})
        interval_s = parse_duration(args.interval)
        step_s = parse_duration(args.history_step)
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 <= args.backfill_days <= 30:
        parser.error("--backfill-days must be between 0 and 30 (the SLO period)")
    if min(sizes) < 1 or args.repeats < 1 or args.seconds <= 0:
        parser.error("--slos, --repeats and --seconds must be positive")
    document = slo_copies(max(sizes))
    period_rule = period_rule_name(document)
    rule_files = {
        (size, form): rule_file(slo_copies(size), form == "optimized")
        for size in sizes
        for form in FORMS
    }
    readings: dict[tuple[int, str], list[tuple[Readings, float]]] = {k: [] for k in rule_files}
    baselines: list[float] = []
    history: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="slo-rules-bench-") as name, ExitStack() as cleanup:
        tmp = Path(name)
        app_port, app_url = start_app(tmp, cleanup, args.error_ratio)
        traffic = Traffic(app_url, args.rps)
        traffic.start()
        cleanup.callback(traffic.stop)
        time.sleep(5)  # every route the mix reaches has series before the history copies them
        blocks = None
        if args.backfill_days > 0:
            exposition = _get(app_url + "/metrics").decode()
            series = history_series(
                exposition, f"127.0.0.1:{app_port}", document, step_s, args.history_rps
            )
            end_s = int(time.time()) - 60
            blocks, history = backfill(
                tmp, series, args.backfill_days, step_s, end_s, args.max_temp_gib
            )

        # For each size, the two forms and a Prometheus without rules run side by side,
        # so whatever else the machine does weighs on all three alike.
        for repeat in range(args.repeats):
            for size in sizes if repeat % 2 == 0 else sizes[::-1]:
                log(f"run {repeat + 1}/{args.repeats}: {size} SLOs, both forms and baseline")
                with ExitStack() as running:
                    urls = {
                        form: start_prometheus(
                            tmp,
                            f"prom-{size}-{form}",
                            rule_files.get((size, form)),
                            app_port,
                            interval_s,
                            blocks,
                            running,
                        )
                        for form in (*FORMS, "baseline")
                    }
                    # every group's first evaluation (cold caches) is left out
                    time.sleep(max(args.warmup, 1.5 * interval_s))
                    got = poll(urls, interval_s, args.seconds, period_rule)
                    for form in FORMS:
                        got[form].period_samples = period_samples(
                            urls[form], rule_files[(size, form)], period_rule
                        )
                baselines.append(cpu_cores(got["baseline"]))
                for form in FORMS:
                    readings[(size, form)].append((got[form], cpu_cores(got["baseline"])))
        sent = traffic.sent
    baseline = statistics.median(baselines)
    results = {
        key: _median_of([figures(one, key[0], base) for one, base in runs])
        for key, runs in readings.items()
    }
    mode = (
        f"backfilled history: {history['days']:g} days, one sample per {args.history_step}, "
        f"{history['series']} series, {history['samples'] / 1e6:.1f}M samples, "
        f"{history['blocks']} blocks ({history['block_mib']} MiB), written in "
        f"{history['seconds']} s"
        if history
        else "live data only: the 30d range holds minutes of samples, so this understates "
        "the raw form's cost after 30 days (see --backfill-days)"
    )
    print(
        f"SLO rule evaluation on Prometheus 2.42, evaluation every {args.interval}, scrape 1s;"
        f" {args.seconds:g} s measured per configuration after {args.warmup:g} s,"
        f" {args.repeats} repeat(s), medians; app at {args.rps:g} req/s"
        f" ({args.error_ratio:.0%} injected 5xx), {sent} requests sent.\n{mode}"
    )
    out = report(results, sizes, 100 * baseline)
    print("command: .venv/bin/python bench/slo_rules.py " + " ".join(sys.argv[1:]))
    if args.json:
        out["history"] = history
        out["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.json.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
