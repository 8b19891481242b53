"""The README stays true: every setting documented, both quick-start commands exist."""

from __future__ import annotations

import os
import re

from app.config import _ENV
from exporter.config import _env_name
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_environment_variable_is_documented() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, flags=re.MULTILINE))
    assert set(_ENV.values()) | {"SRE_APP_PORT", "SRE_METRICS_DIR"} <= documented


def test_every_exporter_variable_is_documented() -> None:
    # the exporter's variables share rows; every one it reads must be in the table
    source = (REPO / "exporter" / "config.py").read_text(encoding="utf-8")
    read = set(re.findall(r"SRE_MYSQL_[A-Z_]+", source))
    read |= {_env_name(option) for option in ("ssl-ca", "ssl-cert", "ssl-key")}
    table = "\n".join(line for line in README.splitlines() if line.startswith("| `SRE_MYSQL"))
    assert read <= set(re.findall(r"`(SRE_MYSQL_[A-Z_]+)`", table))


def test_the_quick_start_commands_exist_and_ci_runs_the_test_command() -> None:
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["./scripts/demo", "./scripts/test"]
    for command in commands:
        assert os.access(REPO / command, os.X_OK), command
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "exec ./scripts/test" in ci
