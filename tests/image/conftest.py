"""Fixtures of the image tests: one private dockerd, one base image and one build per run.

The base image is scripts/make-base-image's (debootstrap, cached between runs in
``~/.cache/elibrary-sre/base-image``), or ``SRE_TEST_BASE_IMAGE`` pulled into the private
daemon where a registry is reachable (``python:3.11.14-slim-bookworm``, say). What each
step took and the image's size are printed at the end of the run.
"""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import REPO
from tests.image.daemon import Docker, ensure_programs, private_docker

BASE_TAG = "elibrary-base:bookworm-py311"
IMAGE_TAG = "elibrary-sre:image-test"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]
# Only checked to arrive in the label unchanged.
SOURCE = "https://git.example.org/elibrary/elibrary-sre"
_BASE_TIMEOUT_S = 600
_BUILD_TIMEOUT_S = 900

#: step -> seconds, and the image size, for the summary at the end of the run
REPORT: dict[str, str] = {}


def project_packages() -> list[str]:
    """The top-level packages pyproject.toml's [tool.setuptools.packages.find] takes."""
    patterns = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(
        path.name
        for path in REPO.iterdir()
        if (path / "__init__.py").exists()
        and any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)
    )


def _revision() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else "0" * 40


REVISION = _revision()


@dataclass(frozen=True)
class Image:
    """The image built from the working tree, as ``docker image inspect`` describes it."""

    tag: str
    size_bytes: int
    inspect: dict[str, Any]


def _run_bounded(
    argv: list[str], env: dict[str, str], timeout_s: float, docker: Docker
) -> subprocess.CompletedProcess[str]:
    """Run argv in its own process group; on timeout the whole group is killed."""
    process = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(
            f"{argv[0]} took more than {timeout_s:.0f}s\n{err[-3000:]}\n{docker.log_tail()}"
        )
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    """The private daemon every image test talks to."""
    with private_docker() as daemon:
        yield daemon


@pytest.fixture(scope="session")
def base_image(docker: Docker) -> str:
    """The base image in the private daemon: pulled when named, else debootstrapped."""
    started = time.monotonic()
    wanted = os.environ.get("SRE_TEST_BASE_IMAGE")
    if wanted:
        docker("pull", wanted, timeout_s=_BASE_TIMEOUT_S)
        REPORT["base image"] = f"{wanted} pulled in {time.monotonic() - started:.0f} s"
        return wanted
    ensure_programs(["debootstrap"])
    done = _run_bounded(
        [str(REPO / "scripts" / "make-base-image"), "--tag", BASE_TAG],
        {**docker.env, "DOCKER": docker.cli},
        _BASE_TIMEOUT_S,
        docker,
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/make-base-image exited {done.returncode}\n{done.stderr[-4000:]}")
    if "reusing" in done.stderr:
        how = "already in the daemon"
    elif "debootstrap " in done.stderr:
        how = "debootstrapped and imported"
    else:
        how = "imported from the cached root filesystem"
    REPORT["base image"] = f"{BASE_TAG} {how} in {time.monotonic() - started:.0f} s"
    return BASE_TAG


@pytest.fixture(scope="session")
def image(docker: Docker, base_image: str) -> Image:
    """The Dockerfile built from the working tree on the base image, once per run."""
    started = time.monotonic()
    docker(
        "build",
        "--network=host",  # the daemon has no bridge; RUN steps reach PyPI through the host
        f"--build-arg=BASE_IMAGE={base_image}",
        f"--build-arg=VERSION={VERSION}",
        f"--build-arg=REVISION={REVISION}",
        f"--build-arg=SOURCE={SOURCE}",
        f"--tag={IMAGE_TAG}",
        str(REPO),
        timeout_s=_BUILD_TIMEOUT_S,
    )
    REPORT["build"] = f"{time.monotonic() - started:.0f} s"
    inspect = json.loads(docker("image", "inspect", IMAGE_TAG).stdout)[0]
    size = int(inspect["Size"])
    REPORT["image size"] = f"{size / 1e6:.0f} MB ({size} bytes)"
    return Image(tag=IMAGE_TAG, size_bytes=size, inspect=inspect)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.write_sep("-", "container image")
        for step, what in REPORT.items():
            terminalreporter.write_line(f"{step}: {what}")
