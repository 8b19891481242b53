"""A local monitoring stack for end-to-end tests and demos, on free loopback ports.

Starts what is asked of: the app (``sre app serve``), the exporter, Prometheus with a
generated scrape config and the generated rules (time-scaled so alerts fire in seconds),
Alertmanager with the generated config pointed at local Slack-compatible and PagerDuty
(Events API v2) receivers that record every message. Every process is stopped when the
``Stack`` context ends, also when the test fails.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from alerts import TEMPLATES_DIR, AlertmanagerSettings, render_alertmanager
from sre.conventions import APP_JOB, EXPORTER_JOB

__all__ = [
    "PagerDutyReceiver",
    "SlackReceiver",
    "Stack",
    "free_port",
    "pagerduty_event_errors",
    "scale_durations",
    "start_alertmanager",
    "stop_process",
    "wait_http",
]

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scaled(match: re.Match[str], factor: float) -> str:
    seconds = max(1.0, int(match.group(1)) * _SECONDS[match.group(2)] / factor)
    return f"{int(seconds)}s"


def scale_durations(rules_yaml: str, factor: float) -> str:
    """The rule file with every range, offset and ``for`` divided by ``factor`` (min 1s).

    Only for test stacks: production rules are generated unscaled.
    """
    data = yaml.safe_load(rules_yaml)
    for group in data["groups"]:
        for rule in group["rules"]:
            rule["expr"] = re.sub(
                r"(\[|offset )(\d+(?:ms|s|m|h|d))",
                lambda m: m.group(1) + _DURATION.sub(lambda d: _scaled(d, factor), m.group(2)),
                rule["expr"],
            )
            if "for" in rule:
                rule["for"] = _DURATION.sub(lambda d: _scaled(d, factor), rule["for"])
    return yaml.safe_dump(data, sort_keys=False, width=10_000)


class _Recorder:
    """A local HTTP server that records every JSON body POSTed to it, in a thread."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = None
                status, answer = recorder.receive(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def receive(self, path: str, body: Any) -> tuple[int, Any]:
        """Record one request; the status and JSON to answer."""
        if not isinstance(body, dict):
            return 400, {"error": "the body is not a JSON object"}
        self.messages.append({"path": path, "at": time.time(), **body})
        return 200, {"ok": True}

    def wait_for(self, predicate: Any, timeout_s: float) -> dict[str, Any]:
        """The first recorded message matching ``predicate``; AssertionError after timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in list(self.messages):
                if predicate(message):
                    return message
            time.sleep(0.2)
        raise AssertionError(
            f"no matching {type(self).__name__} message in {timeout_s}s; got {self.messages}"
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class SlackReceiver(_Recorder):
    """Records what Alertmanager posts to Slack webhooks; the path names the channel file."""

    def url(self, name: str) -> str:
        """The webhook URL for one (fake) Slack channel."""
        return f"http://127.0.0.1:{self.port}/{name}"


#: what PagerDuty's Events API v2 accepts (developer.pagerduty.com, "Send an Alert Event")
_PD_ACTIONS = ("trigger", "acknowledge", "resolve")
_PD_SEVERITIES = ("critical", "error", "warning", "info")


def pagerduty_event_errors(event: Any) -> list[str]:
    """Why PagerDuty would refuse an Events API v2 event; empty when it is valid."""
    if not isinstance(event, dict):
        return ["the body is not a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("routing_key must be a 32-character integration key")
    if event.get("event_action") not in _PD_ACTIONS:
        errors.append(f"event_action must be one of {', '.join(_PD_ACTIONS)}")
    dedup = event.get("dedup_key")
    if event.get("event_action") != "trigger" and not dedup:
        errors.append("dedup_key is required to acknowledge or resolve")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("dedup_key must be a string of at most 255 characters")
    if event.get("event_action") == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "payload is required to trigger"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not 0 < len(summary) <= 1024:
            errors.append("payload.summary must be 1 to 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            errors.append("payload.source is required")
        if payload.get("severity") not in _PD_SEVERITIES:
            errors.append(f"payload.severity must be one of {', '.join(_PD_SEVERITIES)}")
    return errors


class PagerDutyReceiver(_Recorder):
    """A local stand-in for PagerDuty's Events API v2: validates each event as PagerDuty
    does, answers as PagerDuty answers (202, or 400 naming the errors), records the valid."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/enqueue"

    def receive(self, path: str, body: Any) -> tuple[int, Any]:
        if path != "/v2/enqueue":
            return 404, {"status": "not found"}
        errors = pagerduty_event_errors(body)
        if errors:
            invalid = {"status": "invalid event", "message": "Event object is invalid"}
            return 400, {**invalid, "errors": errors}
        self.messages.append({"path": path, "at": time.time(), **body})
        accepted = {"status": "success", "message": "Event processed"}
        return 202, {**accepted, "dedup_key": body.get("dedup_key")}


def wait_http(
    url: str, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 30
) -> None:
    """Poll url until it answers 200; fail early if ``process`` (when given) exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{url} never answered: the process exited with {process.returncode}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout_s}s")


def stop_process(
    process: subprocess.Popen[bytes], kill: bool = False, timeout_s: float = 15
) -> None:
    """SIGTERM (or SIGKILL when ``kill``), then SIGKILL if it lingers; waits for the exit."""
    if process.poll() is None:
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class Stack:
    """Processes of one test stack, their URLs and logs."""

    workdir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    _launches: dict[str, tuple[list[str], str, int, dict[str, str] | None]] = field(
        default_factory=dict
    )

    def start(
        self,
        name: str,
        argv: list[str],
        ready_path: str,
        port: int,
        env: dict[str, str] | None = None,
    ) -> str:
        """Start one process logging to workdir/<name>.log; return its base URL."""
        self._launches[name] = (argv, ready_path, port, env)
        log = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.processes[name] = process
        url = f"http://127.0.0.1:{port}"
        wait_http(url + ready_path, process)
        self.urls[name] = url
        return url

    def stop(self, name: str, kill: bool = False) -> None:
        """Stop one process (SIGKILL when ``kill``), waiting for it."""
        stop_process(self.processes[name], kill=kill)

    def restart(self, name: str, env: dict[str, str] | None = None) -> str:
        """Start a stopped process again, same command and port (and ``env`` if given)."""
        argv, ready_path, port, old_env = self._launches[name]
        return self.start(name, argv, ready_path, port, env if env is not None else old_env)

    def stop_all(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name)

    def prometheus_config(
        self,
        app_port: int | None,
        exporter_port: int | None,
        alertmanager_port: int,
        rule_files: Sequence[Path],
        interval: str = "1s",
    ) -> Path:
        """prometheus.yml scraping what runs, evaluating ``rule_files``, alerting AM."""
        jobs = []
        if app_port:
            jobs.append(
                {"job_name": APP_JOB, "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]}
            )
        if exporter_port:
            jobs.append(
                {
                    "job_name": EXPORTER_JOB,
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                }
            )
        config = {
            "global": {
                "scrape_interval": interval,
                "evaluation_interval": interval,
                "scrape_timeout": interval,
            },
            "rule_files": [str(path) for path in rule_files],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
                ]
            },
            "scrape_configs": jobs,
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path


def start_alertmanager(
    running: Stack,
    program: str,
    slack: SlackReceiver,
    pagerduty: PagerDutyReceiver,
    routing_key: str,
    group_interval: str = "5s",
) -> int:
    """Alertmanager 0.25 with the generated routing, its secret files pointing at the local
    Slack and PagerDuty receivers, waiting seconds instead of minutes; its port."""
    workdir = running.workdir
    secrets_dir = workdir / "secrets"
    secrets_dir.mkdir(exist_ok=True)
    for name, channel in (
        ("slack-incidents-url", "incidents"),
        ("slack-alerts-url", "alerts"),
        ("slack-info-url", "info"),
    ):
        (secrets_dir / name).write_text(slack.url(channel))
    (secrets_dir / "pagerduty-routing-key").write_text(routing_key + "\n")
    settings = AlertmanagerSettings(
        secrets_dir=str(secrets_dir),
        templates_dir=str(TEMPLATES_DIR),
        pagerduty_url=pagerduty.url,
        group_wait="1s",
        page_group_wait="1s",
        group_interval=group_interval,
        repeat_interval="1h",
        page_repeat_interval="1h",
    )
    config = workdir / "alertmanager.yml"
    config.write_text(render_alertmanager(settings))
    port = free_port()
    running.start(
        "alertmanager",
        [
            program,
            f"--config.file={config}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            f"--web.external-url=http://127.0.0.1:{port}",
        ],
        "/-/ready",
        port,
    )
    return port


@contextmanager
def stack(workdir: Path) -> Iterator[Stack]:
    """A Stack whose processes are all stopped when the block ends."""
    running = Stack(workdir)
    with ExitStack() as cleanup:
        cleanup.callback(running.stop_all)
        yield running


def binary(name: str) -> str:
    """Path of a program the stack needs, or RuntimeError naming the package."""
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"{name} is not installed (Debian packages prometheus and prometheus-alertmanager)"
        )
    return found


SRE = str(Path(sys.executable).parent / "sre")
