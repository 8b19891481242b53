"""Fault injection for alert, gate and demo tests (DESIGN.md "Fault injection").

Only installed when ``SRE_FAULT_FILE`` is set. The file is JSON such as
``{"error_ratio": 0.05, "latency_ms": 250, "route": "/api/books"}``; every worker re-reads it
when its modification time changes, so a test turns a fault on and off without a restart.
A missing or empty file means no fault; a malformed one is logged and ignored.

Two faults stand for saturation: ``cpu_ms`` burns CPU in every matching request (a costly
regression) and ``memory_mb`` makes each worker hold that much memory, from its next request
until the fault changes (a leak), so the CPU and memory alerts can be shown firing.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import dataclass

from flask import Flask, request

from app.problems import ApiError

__all__ = ["Fault", "init_faults", "parse_fault"]

log = logging.getLogger("elibrary.faults")


@dataclass(frozen=True)
class Fault:
    """What to do to matching requests."""

    #: share of matching requests answered with 500, 0 to 1
    error_ratio: float = 0.0
    #: milliseconds added to every matching request, 0 to 60000
    latency_ms: float = 0.0
    #: a route template (DESIGN.md names) to limit the fault to; None means every route
    route: str | None = None
    #: milliseconds of CPU burnt in every matching request, 0 to 10000
    cpu_ms: float = 0.0
    #: MiB each worker holds while the fault lasts, 0 to 4096
    memory_mb: int = 0


_NO_FAULT = Fault()


def parse_fault(text: str) -> Fault:
    """A Fault from the file's text; ValueError naming the bad field otherwise."""
    if not text.strip():
        return _NO_FAULT
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object")
    unknown = set(data) - {"error_ratio", "latency_ms", "route", "cpu_ms", "memory_mb"}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    ratio = float(data.get("error_ratio", 0.0))
    latency = float(data.get("latency_ms", 0.0))
    route = data.get("route")
    cpu = float(data.get("cpu_ms", 0.0))
    memory = data.get("memory_mb", 0)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError("error_ratio must be between 0 and 1")
    if not 0.0 <= latency <= 60_000:
        raise ValueError("latency_ms must be between 0 and 60000")
    if route is not None and not isinstance(route, str):
        raise ValueError("route must be a string")
    if not 0.0 <= cpu <= 10_000:
        raise ValueError("cpu_ms must be between 0 and 10000")
    if not isinstance(memory, int) or not 0 <= memory <= 4096:
        raise ValueError("memory_mb must be a whole number between 0 and 4096")
    return Fault(ratio, latency, route, cpu, memory)


def _burn_cpu(milliseconds: float) -> None:
    """Keep this thread on the CPU for ``milliseconds`` of its own CPU time."""
    end = time.thread_time() + milliseconds / 1000
    while time.thread_time() < end:
        pass


class _FaultFile:
    def __init__(self, path: str) -> None:
        self._path = path
        self._mtime: float | None = None
        self._fault = _NO_FAULT
        #: what ``memory_mb`` makes this worker hold; dropped when the fault changes
        self.held = bytearray()

    def current(self) -> Fault:
        try:
            mtime = os.stat(self._path).st_mtime_ns
        except FileNotFoundError:
            self._mtime, self._fault, self.held = None, _NO_FAULT, bytearray()
            return self._fault
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                with open(self._path, encoding="utf-8") as handle:
                    self._fault = parse_fault(handle.read())
                log.warning("fault injection changed", extra={"fault": str(self._fault)})
            except (OSError, ValueError) as exc:
                log.error("fault file ignored", extra={"path": self._path, "error": str(exc)})
                self._fault = _NO_FAULT
            # Let go of the old block before taking the new one: holding both at once could
            # push a worker near its memory limit over it. Written to, not only allocated,
            # so the pages are really resident.
            self.held = bytearray()
            self.held = bytearray(b"\x01") * (self._fault.memory_mb << 20)
        return self._fault


def init_faults(app: Flask, path: str) -> None:
    """Apply the faults described in ``path`` to matching requests."""
    faults = _FaultFile(path)

    @app.before_request
    def _inject() -> None:
        fault = faults.current()
        if fault is _NO_FAULT:
            return
        rule = request.url_rule
        if fault.route is not None and (rule is None or rule.rule != fault.route):
            return
        if fault.latency_ms:
            time.sleep(fault.latency_ms / 1000)
        if fault.cpu_ms:
            _burn_cpu(fault.cpu_ms)
        if fault.error_ratio and random.random() < fault.error_ratio:
            raise ApiError(500, "Internal Server Error", "Injected fault (SRE_FAULT_FILE).")
