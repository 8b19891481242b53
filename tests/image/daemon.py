"""A private Docker daemon for the image tests, and the tools they need.

The daemon has its own data root, exec root, socket, pid file and (empty) configuration
under one temporary directory, so it neither sees nor disturbs a Docker the machine may
already run. It creates no network: ``--bridge=none`` and no iptables rules, so builds and
containers use ``--network host``. It is stopped by its PID and its directory removed, with
whatever it left mounted there, however the tests end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import IN_CI

#: Debian packages the image tests need, by the program they provide.
PACKAGES = {"dockerd": "docker.io", "debootstrap": "debootstrap"}
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_START_TIMEOUT_S = 60
_STOP_TIMEOUT_S = 60


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI=true where everything must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def program(name: str) -> str | None:
    """A program on PATH or in the sbin directories a non-root PATH may lack."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN:
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def ensure_programs(names: list[str]) -> dict[str, str]:
    """Paths of ``names``, installing the Debian packages of the missing ones when root."""
    missing = [name for name in names if program(name) is None]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = sorted({PACKAGES[name] for name in missing})
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        ):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                unavailable(f"`{' '.join(argv)}` failed: {done.stderr.strip()[-2000:]}")
        # The package starts the machine's own daemon where systemd runs; these tests never
        # use it, so leave the machine as it was.
        subprocess.run(
            ["systemctl", "stop", "docker.service", "docker.socket"],
            capture_output=True,
            check=False,
        )
        missing = [name for name in names if program(name) is None]
    if missing:
        unavailable(
            f"{', '.join(missing)} missing: apt-get install "
            + " ".join(sorted({PACKAGES[name] for name in missing}))
        )
    return {name: str(program(name)) for name in names}


@dataclass
class Docker:
    """The docker CLI pointed at one private daemon; every call is bounded in time."""

    cli: str
    root: Path
    process: subprocess.Popen[bytes] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def env(self) -> dict[str, str]:
        """The client's environment: this daemon, no user configuration, the classic builder.

        The classic builder behaves the same with every client version; BuildKit would
        need the buildx plugin with a recent client. The Dockerfile uses nothing that only
        one of them understands.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        return {
            **env,
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": str(self.root / "client"),
            "DOCKER_BUILDKIT": "0",
        }

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no daemon log)"
        return "daemon log, last lines:\n" + "\n".join(text.splitlines()[-lines:])

    def __call__(
        self, *args: str, timeout_s: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``docker --host unix://… ARGS``; a failure or a timeout fails the test."""
        argv = [self.cli, "--host", self.host, *args]
        shown = " ".join(["docker", *args])
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_s, env=self.env
            )
        except subprocess.TimeoutExpired as exc:
            output = exc.stdout or ""
            if isinstance(output, bytes):
                output = output.decode(errors="replace")
            output = output[-3000:]
            pytest.fail(f"`{shown}` took more than {timeout_s:.0f}s\n{output}\n{self.log_tail()}")
        if check and done.returncode != 0:
            pytest.fail(
                f"`{shown}` exited {done.returncode}\n"
                f"{(done.stdout + done.stderr)[-4000:]}\n{self.log_tail()}"
            )
        return done


def _wait_started(docker: Docker) -> None:
    assert docker.process is not None
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if docker.process.poll() is not None:
            pytest.fail(f"dockerd exited with {docker.process.returncode}\n{docker.log_tail()}")
        if docker.socket.exists():
            done = docker("version", "--format", "{{.Server.Version}}", timeout_s=10, check=False)
            if done.returncode == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"dockerd did not answer within {_START_TIMEOUT_S}s\n{docker.log_tail()}")


def _kill_pidfile(path: Path) -> None:
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _unmount_below(root: Path) -> None:
    """Lazily unmount what a killed daemon left mounted (overlays, shm) under ``root``."""
    prefix = str(root) + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        points = [line.split()[4] for line in mounts]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _stop(docker: Docker) -> None:
    process = docker.process
    if process is not None and process.poll() is None:
        # SIGTERM by PID: the daemon stops its containers and its containerd, then exits.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            # a killed dockerd leaves the containerd it started running
            _kill_pidfile(docker.root / "exec" / "containerd" / "containerd.pid")
    _unmount_below(docker.root)
    shutil.rmtree(docker.root, ignore_errors=True)


@contextmanager
def private_docker() -> Iterator[Docker]:
    """A running private dockerd, stopped and removed when the block ends."""
    if os.geteuid() != 0:
        unavailable("the image tests run a private dockerd and debootstrap, which need root")
    paths = ensure_programs(["dockerd"])
    cli = program("docker")
    if cli is None:
        unavailable("the docker client is missing: apt-get install docker.io")
        raise AssertionError("unreachable")
    # Short, so the sockets below it stay within the 108 bytes a socket path may have.
    root = Path(tempfile.mkdtemp(prefix="sre-docker-"))
    docker = Docker(cli=cli, root=root)
    (root / "client").mkdir()
    (root / "daemon.json").write_text(json.dumps({}), encoding="utf-8")
    try:
        with docker.log.open("wb") as log:
            docker.process = subprocess.Popen(
                [
                    paths["dockerd"],
                    f"--data-root={root / 'data'}",
                    f"--exec-root={root / 'exec'}",
                    f"--host={docker.host}",
                    f"--pidfile={root / 'docker.pid'}",
                    f"--config-file={root / 'daemon.json'}",
                    "--iptables=false",
                    "--ip6tables=false",
                    "--bridge=none",
                    "--shutdown-timeout=10",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # its own session: a Ctrl-C meant for pytest does not reach it half-way
                start_new_session=True,
            )
        _wait_started(docker)
        yield docker
    finally:
        _stop(docker)
