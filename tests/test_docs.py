"""The README stays true: every setting documented, both quick-start commands exist."""

from __future__ import annotations

import itertools
import os
import re

import click

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


def _readme_commands() -> list[tuple[list[str], list[str]]]:
    """(command words, option names) of every `sre ...` code span in the README."""
    found = []
    for span in re.findall(r"`(sre [^`]+)`", README):
        words = span.split()[1:]
        command = list(itertools.takewhile(lambda w: re.fullmatch(r"[a-z][a-z-]*", w), words))
        options = re.findall(r"(--[a-z][a-z-]*)", span)
        found.append((command, options))
    return found


def test_every_sre_command_and_option_the_readme_names_exists() -> None:
    from click.testing import CliRunner

    from sre.cli import main

    commands = _readme_commands()
    assert len(commands) > 10
    for words, options in commands:
        command = main
        for word in words:
            assert isinstance(command, click.Group), f"sre {' '.join(words)}: no such group"
            found = command.get_command(click.Context(command), word)
            assert found is not None, f"README names `sre {' '.join(words)}`: no such command"
            command = found
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        known |= {"--help"}  # every command has it (context_settings)
        assert set(options) - known == set(), f"sre {' '.join(words)}: unknown options"
        result = CliRunner().invoke(main, [*words, "--help"])
        assert result.exit_code == 0, result.output
