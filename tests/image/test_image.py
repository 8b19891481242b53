"""The image built from the Dockerfile and run as production runs it, on a private dockerd.

Every container runs as user 10001 on a read-only root filesystem with every capability
dropped and no new privileges, writing only to tmpfs mounts; builds and containers use
the host's network (the daemon has no bridge), so servers bind free loopback ports.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sre.stack import free_port
from tests.conftest import MYSQL_HOST, MYSQL_PORT, MYSQL_USER, REPO
from tests.image.conftest import (
    PYPROJECT,
    REPORT,
    REVISION,
    SOURCE,
    VERSION,
    Image,
    project_packages,
)
from tests.image.daemon import Docker

pytestmark = pytest.mark.integration

#: 461 MB measured on the debootstrap base (numpy, scipy and matplotlib are most of it);
#: the bound leaves room for dependency updates, not for a compiler or a second copy.
SIZE_BOUND_BYTES = 600_000_000
TMPFS = "rw,noexec,nosuid,nodev,size=64m"
OWNED_TMPFS = f"{TMPFS},uid=10001,gid=10001,mode=0700"
#: how production runs the image (docs/image.md)
PRODUCTION = (
    "--network=host",
    "--user=10001:10001",
    "--read-only",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    f"--tmpfs=/tmp:{TMPFS}",
    f"--tmpfs=/run/elibrary:{OWNED_TMPFS}",
)
SQLITE_ON_TMPFS = f"--tmpfs=/var/lib/elibrary:{OWNED_TMPFS}"
FAST_HEALTHCHECK = ("--health-interval=1s", "--health-start-period=60s", "--health-retries=3")
_READY_TIMEOUT_S = 60


class Containers:
    """Containers of one test, from the built image; all removed when the test ends."""

    def __init__(self, docker: Docker, image: Image) -> None:
        self.docker = docker
        self.image = image
        self.names: list[str] = []

    def once(
        self, *args: str, env: dict[str, str] | None = None, options: tuple[str, ...] = ()
    ) -> Any:
        """Run a one-off container to its end; its exit code and output."""
        return self.docker(
            "run",
            "--rm",
            *PRODUCTION,
            *_env(env),
            *options,
            self.image.tag,
            *args,
            timeout_s=120,
            check=False,
        )

    def start(
        self, *args: str, env: dict[str, str] | None = None, options: tuple[str, ...] = ()
    ) -> str:
        """Start a detached container; its name."""
        name = f"sre-image-test-{secrets.token_hex(4)}"
        self.names.append(name)
        self.docker(
            "run",
            "--detach",
            f"--name={name}",
            *PRODUCTION,
            *_env(env),
            *options,
            self.image.tag,
            *args,
        )
        return name

    def state(self, name: str) -> dict[str, Any]:
        return json.loads(self.docker("inspect", "--format={{json .State}}", name).stdout)

    def logs(self, name: str) -> str:
        done = self.docker("logs", "--tail=60", name, check=False)
        return f"container {name} log, last lines:\n{done.stdout}{done.stderr}"

    def wait_http(self, name: str, url: str) -> None:
        """Poll url until it answers 200; fail with the log if the container stops."""
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if not self.state(name)["Running"]:
                pytest.fail(f"{name} stopped before {url} answered\n{self.logs(name)}")
            time.sleep(0.25)
        pytest.fail(f"{url} did not answer within {_READY_TIMEOUT_S}s\n{self.logs(name)}")

    def wait_healthy(self, name: str) -> None:
        """Wait for Docker's own HEALTHCHECK to report the container healthy."""
        deadline = time.monotonic() + _READY_TIMEOUT_S
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            health = self.state(name).get("Health") or {}
            if health.get("Status") == "healthy":
                return
            time.sleep(0.5)
        probes = json.dumps(health.get("Log", [])[-3:], indent=1)
        pytest.fail(f"{name} is {health.get('Status')}, not healthy: {probes}\n{self.logs(name)}")

    def stop(self, name: str) -> int:
        """Stop as an orchestrator does (SIGTERM, then a grace period); the exit code."""
        self.docker("stop", "--time=20", name, timeout_s=60)
        return int(self.state(name)["ExitCode"])

    def remove_all(self) -> None:
        for name in self.names:
            self.docker("rm", "--force", "--volumes", name, check=False)


def _env(env: dict[str, str] | None) -> list[str]:
    return [f"--env={key}={value}" for key, value in (env or {}).items()]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except HTTPError as exc:
        return exc.code, exc.read().decode()


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _samples(url: str) -> dict[str, list[Any]]:
    status, text = _get(url)
    assert status == 200, text
    found: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


@pytest.fixture
def containers(docker: Docker, image: Image) -> Iterator[Containers]:
    running = Containers(docker, image)
    yield running
    running.remove_all()


# --- what the image is ----------------------------------------------------------------------


def test_the_image_is_labelled_runs_as_user_10001_and_stays_under_the_size_bound(
    image: Image,
) -> None:
    config = image.inspect["Config"]
    labels = config["Labels"]
    assert {key: labels.get(key) for key in _OCI_LABELS} == {
        "org.opencontainers.image.title": "elibrary-sre",
        "org.opencontainers.image.version": VERSION,
        "org.opencontainers.image.revision": REVISION,
        "org.opencontainers.image.source": SOURCE,
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["sre"]
    assert config["Cmd"] == ["app", "serve", "--host", "0.0.0.0"]
    assert f"SRE_BUILD_REVISION={REVISION}" in config["Env"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert set(config["ExposedPorts"]) == {"8000/tcp", "9207/tcp"}
    assert image.size_bytes < SIZE_BOUND_BYTES, (
        f"the image is {image.size_bytes / 1e6:.0f} MB, over {SIZE_BOUND_BYTES / 1e6:.0f} MB"
    )


_OCI_LABELS = [
    "org.opencontainers.image.title",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.source",
    "org.opencontainers.image.licenses",
]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--help"], "Commands:", id="sre --help lists the commands"),
        pytest.param(["--version"], VERSION, id="sre --version is the package's version"),
        pytest.param(
            ["exporter", "serve", "--help"], "--my-cnf", id="sre exporter serve --help answers"
        ),
        pytest.param(["app", "serve", "--help"], "--metrics-dir", id="sre app serve --help"),
    ],
)
def test_the_sre_command_answers_in_the_image(
    containers: Containers, args: list[str], expected: str
) -> None:
    done = containers.once(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert expected in done.stdout


def test_the_image_carries_no_compiler_pip_wheels_sources_or_test_suites(
    containers: Containers,
) -> None:
    # as root, so nothing is hidden by permissions; prints what should not be there
    script = """
        for p in gcc cc c++ g++ make; do command -v "$p"; done
        for d in /src /wheels /opt/build /root/.cache /home/elibrary/.cache; do
            [ -e "$d" ] && echo "$d"
        done
        find /opt/venv -type d -name tests -print
        for m in pip tests; do
            python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('$m') is None)" \
                && echo "python module $m"
        done
        true
    """
    done = containers.once("-c", script, options=("--user=0", "--entrypoint=sh"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == [""], done.stdout


def test_every_module_and_data_file_of_the_package_is_in_the_image(
    containers: Containers,
) -> None:
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    done = containers.once(
        "/opt/check/in_image.py",
        json.dumps(project_packages()),
        json.dumps(package_data),
        options=(
            f"--volume={Path(__file__).parent / 'in_image.py'}:/opt/check/in_image.py:ro",
            "--entrypoint=python3",
        ),
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    for module in ("app.wsgi", "exporter.server", "loadtests.locustfile", "sre.cli"):
        assert module in found["modules"]
    assert found["data"] == {
        package: sorted(
            str(path.relative_to(REPO / package))
            for pattern in patterns
            for path in (REPO / package).glob(pattern)
            if path.is_file() and "__pycache__" not in path.parts
        )
        for package, patterns in package_data.items()
    }


# --- running as production does ---------------------------------------------------------------


def test_the_app_serves_from_a_read_only_root_and_docker_reports_it_healthy(
    containers: Containers,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    name = containers.start(
        "app",
        "serve",
        "--host",
        "127.0.0.1",
        "--workers",
        "2",
        env={"SRE_APP_PORT": str(port)},
        options=(SQLITE_ON_TMPFS, *FAST_HEALTHCHECK),
    )
    containers.wait_http(name, f"{base}/api/health")
    REPORT["app ready"] = f"{time.monotonic() - started:.1f} s after docker run"

    status, member = _post(
        f"{base}/api/members",
        {"email": "image@example.org", "name": "Image Test", "password": "s3cret-enough"},
    )
    assert status == 201, member
    assert _get(f"{base}/api/books")[0] == 200
    assert _get(f"{base}/api/ready")[0] == 200

    samples = _samples(f"{base}/metrics")
    assert [s.labels for s in samples["elibrary_build_info"]] == [
        {"version": VERSION, "revision": REVISION}
    ]
    created = [
        s.value
        for s in samples["http_requests_total"]
        if s.labels == {"method": "POST", "route": "/api/members", "status": "201"}
    ]
    assert created == [1.0]

    containers.wait_healthy(name)
    assert containers.stop(name) == 0, containers.logs(name)


@pytest.mark.mysql
def test_the_app_migrates_serves_and_the_exporter_scrapes_mariadb(
    containers: Containers, mysql_url: str
) -> None:
    database = urlsplit(mysql_url).path.lstrip("/")
    migrated = containers.once("app", "migrate", env={"DATABASE_URL": mysql_url})
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "applied migrations" in migrated.stdout

    app_port, exporter_port = free_port(), free_port()
    app = containers.start(
        "app",
        "serve",
        "--host",
        "127.0.0.1",
        "--workers",
        "2",
        "--no-migrate",
        env={"SRE_APP_PORT": str(app_port), "DATABASE_URL": mysql_url},
        options=FAST_HEALTHCHECK,
    )
    exporter = containers.start(
        "exporter",
        "serve",
        "--host",
        "127.0.0.1",
        env={
            "SRE_EXPORTER_PORT": str(exporter_port),
            "SRE_HEALTHCHECK_URL": f"http://127.0.0.1:{exporter_port}/healthz",
            "SRE_MYSQL_HOST": MYSQL_HOST,
            "SRE_MYSQL_PORT": str(MYSQL_PORT),
            "SRE_MYSQL_USER": MYSQL_USER,
            "SRE_MYSQL_DATABASE": database,
        },
        options=FAST_HEALTHCHECK,
    )
    containers.wait_http(app, f"http://127.0.0.1:{app_port}/api/ready")
    containers.wait_http(exporter, f"http://127.0.0.1:{exporter_port}/healthz")

    samples = _samples(f"http://127.0.0.1:{exporter_port}/metrics")
    assert [s.value for s in samples["mysql_up"]] == [1.0]
    assert [s.value for s in samples["elibrary_book_titles"]] == [0.0]

    containers.wait_healthy(app)
    containers.wait_healthy(exporter)
    assert containers.stop(app) == 0, containers.logs(app)
