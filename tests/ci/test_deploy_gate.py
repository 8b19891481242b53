"""scripts/deploy-gate against a recording ``kubectl`` and ``sre``: what it runs, in which
order, and when it rolls back (docs/pipeline.md "Gate and rollback").

The fakes are small Python scripts first on PATH. The kubectl keeps a deployment's
revision the way the Deployment controller does (an apply that changes the pod template
and an undo each make a new one); the sre writes the files a load test leaves and exits
from ``slo gate`` with the code the test sets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from sre.cli import main
from tests.conftest import REPO, require_tool

SCRIPT = REPO / "scripts" / "deploy-gate"

FAKE_KUBECTL = """\
import json, os, subprocess, sys
from pathlib import Path

import yaml

home = Path(os.environ["FAKE_HOME"])
config = json.loads((home / "config.json").read_text())
state_file = home / "state.json"
state = json.loads(state_file.read_text()) if state_file.exists() else {
    "revision": config["revision"], "status_calls": 0}
args = sys.argv[1:]
entry = {"tool": "kubectl", "argv": args}
code = 0
if args[0] == "apply":
    folder = Path(args[args.index("-k") + 1])
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    entry["kustomization"] = kustomization
    entry["resources"] = {
        r: yaml.safe_load((folder / r / "kustomization.yaml").read_text())
        for r in kustomization.get("resources", [])
        if (folder / r / "kustomization.yaml").is_file()
    }
    if os.environ.get("REAL_KUBECTL"):  # what the real kustomize makes of it
        rendered = subprocess.run([os.environ["REAL_KUBECTL"], "kustomize", str(folder)],
                                  capture_output=True, text=True)
        entry["rendered"] = rendered.stdout
        entry["render_error"] = rendered.stderr if rendered.returncode else ""
    if config["apply_changes"]:
        state["revision"] = str(int(state["revision"] or 0) + 1)
    code = config["apply_exit"]
elif args[0] == "get":
    code = config["get_exit"]
    if code == 0:
        print(state["revision"], end="")
elif args[:2] == ["rollout", "status"]:
    exits = config["rollout_status_exits"]
    code = exits[state["status_calls"]] if state["status_calls"] < len(exits) else 0
    state["status_calls"] += 1
elif args[:2] == ["rollout", "undo"]:
    code = config["undo_exit"]
    if code == 0:
        state["revision"] = str(int(state["revision"]) + 1)
with open(home / "calls.jsonl", "a") as log:
    log.write(json.dumps(entry) + "\\n")
state_file.write_text(json.dumps(state))
sys.exit(code)
"""

FAKE_SRE = """\
import json, os, sys
from pathlib import Path

home = Path(os.environ["FAKE_HOME"])
config = json.loads((home / "config.json").read_text())
args = sys.argv[1:]
with open(home / "calls.jsonl", "a") as log:
    log.write(json.dumps({"tool": "sre", "argv": args}) + "\\n")

def value(flag):
    return args[args.index(flag) + 1] if flag in args else None

if args[:2] == ["loadtest", "run"]:
    out = Path(value("--out"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "locust_stats.csv").write_text("Type,Name,Request Count,Failure Count\\n")
    (out / "locust_requests.csv").write_text("start_time,request_type,name\\n")
    (out / "run.json").write_text(json.dumps({"profile": value("--profile")}))
    sys.exit(config["loadtest_exit"])
if args[:2] == ["slo", "gate"]:
    if not Path(value("--locust-stats") + "_stats.csv").exists():
        sys.exit(2)  # what the real gate says about a run with no files
    for flag, text in (("--markdown", "## SLO gate\\n"), ("--json", "{}\\n"),
                       ("--junit", "<testsuites/>\\n")):
        if value(flag):
            Path(value(flag)).write_text(text)
    sys.exit(config["gate_exit"])
sys.exit(0)
"""

#: what the script reads from the environment; cleared so the caller's cannot leak in
SCRIPT_VARIABLES = [
    "DEPLOY_ENV",
    "IMAGE_TAG",
    "APP_URL",
    "PROMETHEUS_URL",
    "NAMESPACE",
    "DEPLOYMENT",
    "IMAGE_NAME",
    "OUT_DIR",
    "ROLLOUT_TIMEOUT",
    "K8S_DIR",
    "PYTHON",
    "IMAGE_DIGEST",
    "REVISION",
    "LOADTEST_PROFILE",
    "LOADTEST_USERS",
    "LOADTEST_RUN_TIME",
    "GATE_SPEC",
    "GATE_BASELINE",
    "ROLLBACK_ON_UNUSABLE",
]

STANDARD_ARGS = [
    "--env", "staging",
    "--image-tag", "3f2c1d0",
    "--app-url", "https://staging.elibrary.example",
    "--prometheus-url", "http://prometheus.staging:9090",
    "--namespace", "elibrary-staging",
]  # fmt: skip


@dataclass
class Cluster:
    """The fake cluster's behaviour: see FAKE_KUBECTL."""

    revision: str = "3"
    apply_exit: int = 0
    apply_changes: bool = True
    get_exit: int = 0
    rollout_status_exits: list[int] = field(default_factory=list)
    undo_exit: int = 0
    loadtest_exit: int = 0
    gate_exit: int = 0


@dataclass
class Run:
    code: int
    stderr: str
    calls: list[dict[str, Any]]
    out: Path

    @property
    def steps(self) -> list[str]:
        """The calls that change something or judge, in order (reads left out)."""
        names = {
            ("kubectl", "apply"): "apply",
            ("kubectl", "rollout", "status"): "rollout status",
            ("kubectl", "rollout", "undo"): "rollout undo",
            ("sre", "loadtest", "run"): "loadtest",
            ("sre", "slo", "gate"): "gate",
        }
        steps = []
        for call in self.calls:
            for key, name in names.items():
                if (call["tool"], *call["argv"][: len(key) - 1]) == key:
                    steps.append(name)
        return steps

    def called(self, tool: str, *prefix: str) -> list[list[str]]:
        return [
            c["argv"]
            for c in self.calls
            if c["tool"] == tool and c["argv"][: len(prefix)] == list(prefix)
        ]

    @property
    def result(self) -> dict[str, str]:
        lines = (self.out / "result.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)


@dataclass
class Deployer:
    """Runs scripts/deploy-gate with the fakes first on PATH against a Cluster."""

    bin_dir: Path
    fake_home: Path
    k8s: Path
    out: Path

    def __call__(
        self, cluster: Cluster | None = None, args: list[str] | None = None, **env: str
    ) -> Run:
        self.fake_home.mkdir(exist_ok=True)
        for stale in ("calls.jsonl", "state.json"):
            (self.fake_home / stale).unlink(missing_ok=True)
        config = (cluster or Cluster()).__dict__
        (self.fake_home / "config.json").write_text(json.dumps(config))
        environment = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARIABLES}
        environment.update(
            PATH=f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}",
            FAKE_HOME=str(self.fake_home),
            K8S_DIR=str(self.k8s),
            PYTHON=sys.executable,
            OUT_DIR=str(self.out),
            **env,
        )
        done = subprocess.run(
            [str(SCRIPT), *(STANDARD_ARGS if args is None else args)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        log = self.fake_home / "calls.jsonl"
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return Run(done.returncode, done.stderr, calls, self.out)


@pytest.fixture
def deploy(tmp_path: Path) -> Deployer:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, source in (("kubectl", FAKE_KUBECTL), ("sre", FAKE_SRE)):
        fake = bin_dir / name
        fake.write_text(f"#!{sys.executable}\n{source}")
        fake.chmod(0o755)
    k8s = tmp_path / "k8s"
    (k8s / "base").mkdir(parents=True)
    for env in ("dev", "staging", "prod"):
        (k8s / "overlays" / env).mkdir(parents=True)
        (k8s / "overlays" / env / "kustomization.yaml").write_text(OVERLAY.format(env=env))
    return Deployer(bin_dir, tmp_path / "fake", k8s, tmp_path / "out")


#: the shape of the project's overlays, as far as the script reads them
OVERLAY = """\
namespace: elibrary-{env}
resources: [../../base]
images:
  - name: ghcr.io/elibrary/sre-toolkit
    newTag: 0.1.0
configMapGenerator:
  - name: elibrary-build
    behavior: merge
    literals: [revision=unknown]
"""


DEPLOYED = ["apply", "rollout status", "loadtest", "gate"]
ROLLED_BACK = [*DEPLOYED, "rollout undo", "rollout status"]


@dataclass(frozen=True)
class Case:
    cluster: Cluster
    code: int
    steps: list[str]
    verdict: str
    rolled_back: str
    env: dict[str, str] = field(default_factory=dict)


CASES = {
    "a pass keeps the new version": Case(Cluster(gate_exit=0), 0, DEPLOYED, "pass", "false"),
    "a failed gate rolls back to the revision before": Case(
        Cluster(gate_exit=1), 1, ROLLED_BACK, "fail", "true"
    ),
    "an inconclusive gate rolls back too: only a pass keeps a release": Case(
        Cluster(gate_exit=3), 3, ROLLED_BACK, "inconclusive", "true"
    ),
    "an unusable gate rolls back by default: a release can blind its own gate": Case(
        Cluster(gate_exit=2), 2, ROLLED_BACK, "unusable", "true"
    ),
    "ROLLBACK_ON_UNUSABLE=false keeps the unjudged version": Case(
        Cluster(gate_exit=2), 2, DEPLOYED, "unusable", "false", {"ROLLBACK_ON_UNUSABLE": "false"}
    ),
    "a gate exit code outside 0-3 counts as unusable": Case(
        Cluster(gate_exit=70), 2, ROLLED_BACK, "unusable", "true"
    ),
    "a failed load test still goes to the gate, which decides": Case(
        Cluster(loadtest_exit=1, gate_exit=1), 1, ROLLED_BACK, "fail", "true"
    ),
    "a version that does not become ready is rolled back without a load test": Case(
        Cluster(rollout_status_exits=[1]),
        4,
        ["apply", "rollout status", "rollout undo", "rollout status"],
        "rollout-failed",
        "true",
    ),
    "a failed apply that changed the deployment is rolled back": Case(
        Cluster(apply_exit=1),
        4,
        ["apply", "rollout undo", "rollout status"],
        "apply-failed",
        "true",
    ),
    "a failed apply that changed nothing leaves the deployment alone": Case(
        Cluster(apply_exit=1, apply_changes=False), 4, ["apply"], "apply-failed", "false"
    ),
    "the first deploy has no revision to roll back to": Case(
        Cluster(revision="", gate_exit=1), 1, DEPLOYED, "fail", "false"
    ),
    "re-applying the running version makes no revision, so nothing is undone": Case(
        Cluster(apply_changes=False, gate_exit=1), 1, DEPLOYED, "fail", "false"
    ),
    "a rollback that kubectl refuses exits 5": Case(
        Cluster(gate_exit=1, undo_exit=1),
        5,
        [*DEPLOYED, "rollout undo"],
        "rollback-failed",
        "false",
    ),
    "a rollback that does not roll out exits 5": Case(
        Cluster(gate_exit=3, rollout_status_exits=[0, 1]),
        5,
        ROLLED_BACK,
        "rollback-failed",
        "false",
    ),
    "an unreachable cluster gets nothing applied": Case(
        Cluster(get_exit=1), 4, [], "unreachable", "false"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_verdicts_exit_codes_and_the_order_of_calls(deploy: Deployer, case: Case) -> None:
    run = deploy(case.cluster, **case.env)
    assert run.code == case.code, run.stderr
    assert run.steps == case.steps, run.stderr
    assert run.result["verdict"] == case.verdict
    assert run.result["rolled_back"] == case.rolled_back
    assert run.result["exit_code"] == str(case.code)


def test_the_rollback_goes_back_to_the_revision_that_ran_before(deploy: Deployer) -> None:
    run = deploy(Cluster(revision="7", gate_exit=1))
    assert run.called("kubectl", "rollout", "undo") == [
        ["rollout", "undo", "deployment/app", "--namespace", "elibrary-staging", "--to-revision=7"]
    ]
    assert run.result["revision_before"] == "7"
    assert run.result["revision_deployed"] == "8"


def test_every_kubectl_call_names_the_namespace_and_waits_with_a_timeout(deploy: Deployer) -> None:
    run = deploy(Cluster(gate_exit=1), [*STANDARD_ARGS, "--rollout-timeout", "90s"])
    for argv in run.called("kubectl"):
        if argv[0] != "apply":  # the overlay sets the namespace of what it applies
            assert argv[argv.index("--namespace") + 1] == "elibrary-staging", argv
    statuses = run.called("kubectl", "rollout", "status")
    assert len(statuses) == 2
    assert all("--timeout=90s" in argv for argv in statuses)


def _apply(run: Run) -> dict[str, Any]:
    (apply,) = [c for c in run.calls if c["argv"][0] == "apply"]
    return apply


def test_the_overlay_sets_the_release_in_a_copy_and_the_checkout_stays(deploy: Deployer) -> None:
    overlay = deploy.k8s / "overlays" / "staging" / "kustomization.yaml"
    before = overlay.read_text()
    run = deploy(Cluster(), [*STANDARD_ARGS, "--revision", "3f2c1d0abc"])
    assert run.code == 0, run.stderr
    apply = _apply(run)
    assert apply["argv"][:3] == ["apply", "--server-side", "--force-conflicts"]
    applied = apply["kustomization"]
    assert applied["images"] == [{"name": "ghcr.io/elibrary/sre-toolkit", "newTag": "3f2c1d0"}]
    assert applied["configMapGenerator"][0]["literals"] == ["revision=3f2c1d0abc"]
    assert applied["resources"] == ["../../base"]
    assert overlay.read_text() == before
    assert run.result["image"] == "ghcr.io/elibrary/sre-toolkit:3f2c1d0"


def test_a_tag_of_digits_stays_a_string_and_is_the_revision_by_default(deploy: Deployer) -> None:
    args = [*STANDARD_ARGS]
    args[args.index("--image-tag") + 1] = "1234567"
    run = deploy(Cluster(), args)
    applied = _apply(run)["kustomization"]
    assert applied["images"][0]["newTag"] == "1234567"
    assert applied["configMapGenerator"][0]["literals"] == ["revision=1234567"]


def test_a_digest_is_pinned_on_top_of_the_tagged_overlay(deploy: Deployer) -> None:
    digest = "sha256:" + "ab" * 32
    run = deploy(Cluster(), [*STANDARD_ARGS, "--image-digest", digest])
    assert run.code == 0, run.stderr
    apply = _apply(run)
    assert apply["kustomization"]["resources"] == ["../overlays/staging"]
    assert apply["kustomization"]["images"] == [
        {"name": "ghcr.io/elibrary/sre-toolkit", "digest": digest}
    ]
    overlay = apply["resources"]["../overlays/staging"]
    assert overlay["images"] == [{"name": "ghcr.io/elibrary/sre-toolkit", "newTag": "3f2c1d0"}]
    assert run.result["image"] == f"ghcr.io/elibrary/sre-toolkit:3f2c1d0@{digest}"


def test_the_namespace_is_the_overlays_unless_given(deploy: Deployer) -> None:
    args = STANDARD_ARGS[: STANDARD_ARGS.index("--namespace")]
    run = deploy(Cluster(gate_exit=1), args)
    assert run.code == 1, run.stderr
    for argv in run.called("kubectl"):
        if argv[0] != "apply":
            assert argv[argv.index("--namespace") + 1] == "elibrary-staging", argv
    run = deploy(Cluster(), [*args, "--namespace", "elsewhere"])
    assert run.called("kubectl", "rollout", "status")[0][3:5] == ["--namespace", "elsewhere"]


def test_an_overlay_without_the_image_is_refused_before_the_cluster(deploy: Deployer) -> None:
    (deploy.k8s / "overlays" / "staging" / "kustomization.yaml").write_text(
        "namespace: x\nresources: [../../base]\n"
    )
    run = deploy(Cluster())
    assert run.code == 2
    assert "sets no image named ghcr.io/elibrary/sre-toolkit" in run.stderr
    assert run.calls == []


def test_the_projects_overlays_render_with_the_release_set(
    deploy: Deployer, tmp_path: Path
) -> None:
    """The real overlays through the real kustomize (kubectl's): the tag reaches the app's
    image and the version labels the overlay derives from it, the revision its ConfigMap."""
    kubectl = require_tool("kubectl", "kubectl")
    k8s = tmp_path / "project-k8s"
    shutil.copytree(REPO / "k8s", k8s, ignore=shutil.ignore_patterns("secrets"))
    subprocess.run(
        [
            str(REPO / "k8s" / "make-secrets"),
            "--placeholders",
            "--dir",
            str(k8s / "base" / "secrets"),
        ],
        check=True,
        capture_output=True,
    )
    for secret in (REPO / "k8s" / "base" / "secrets").glob("*.example"):
        shutil.copy(secret, k8s / "base" / "secrets")
    deploy.k8s = k8s
    sha = "0123456789abcdef0123456789abcdef01234567"
    for env, namespace in (
        ("dev", "elibrary-dev"),
        ("staging", "elibrary-staging"),
        ("prod", "elibrary"),
    ):
        args = ["--apply-only", "--env", env, "--image-tag", sha]
        run = deploy(Cluster(), args, REAL_KUBECTL=kubectl)
        assert run.code == 0, run.stderr
        apply = _apply(run)
        assert apply["render_error"] == ""
        objects = {
            (o["kind"], o["metadata"]["name"]): o
            for o in yaml.safe_load_all(apply["rendered"])
            if o
        }
        app = objects[("Deployment", "app")]
        assert app["metadata"]["namespace"] == namespace
        pod = app["spec"]["template"]
        (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "app"]
        assert container["image"] == f"ghcr.io/elibrary/sre-toolkit:{sha}"
        assert pod["metadata"]["labels"]["app.kubernetes.io/version"] == sha
        assert app["metadata"]["labels"]["app.kubernetes.io/version"] == sha
        builds = [o for (kind, name), o in objects.items() if name.startswith("elibrary-build")]
        assert [b["data"]["revision"] for b in builds] == [sha]
        assert run.called("kubectl", "rollout", "status")[0][3:5] == ["--namespace", namespace]

    digest = "sha256:" + "ef" * 32
    args = ["--apply-only", "--env", "staging", "--image-tag", sha, "--image-digest", digest]
    run = deploy(Cluster(), args, REAL_KUBECTL=kubectl)
    assert run.code == 0, run.stderr
    objects = [o for o in yaml.safe_load_all(_apply(run)["rendered"]) if o]
    (app,) = [o for o in objects if (o["kind"], o["metadata"]["name"]) == ("Deployment", "app")]
    pod = app["spec"]["template"]
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "app"]
    assert container["image"] == f"ghcr.io/elibrary/sre-toolkit@{digest}"
    assert pod["metadata"]["labels"]["app.kubernetes.io/version"] == sha  # from the tag


def test_the_load_test_and_the_gate_get_the_settings_and_write_into_out(deploy: Deployer) -> None:
    run = deploy(
        Cluster(),
        LOADTEST_USERS="50",
        LOADTEST_RUN_TIME="5m",
        GATE_BASELINE="/runs/previous",
        GATE_SPEC="/specs",
    )
    assert run.code == 0, run.stderr
    out = str(run.out)
    (loadtest,) = run.called("sre", "loadtest")
    assert loadtest == [
        "loadtest", "run", "--profile", "smoke", "--host", "https://staging.elibrary.example",
        "--out", f"{out}/loadtest", "--users", "50", "--run-time", "5m",
    ]  # fmt: skip
    (gate,) = run.called("sre", "slo", "gate")
    assert gate == [
        "slo", "gate", "--spec", "/specs", "--locust-stats", f"{out}/loadtest/locust",
        "--markdown", f"{out}/gate.md", "--json", f"{out}/gate.json", "--junit", f"{out}/gate.xml",
        "--prometheus", "http://prometheus.staging:9090", "--baseline", "/runs/previous",
    ]  # fmt: skip
    for report in ("gate.md", "gate.json", "gate.xml"):
        assert (run.out / report).is_file()


def test_without_a_prometheus_the_gate_judges_the_client_side_only(deploy: Deployer) -> None:
    args = STANDARD_ARGS[: STANDARD_ARGS.index("--prometheus-url")] + STANDARD_ARGS[-2:]
    run = deploy(Cluster(), args)
    assert run.code == 0, run.stderr
    (gate,) = run.called("sre", "slo", "gate")
    assert "--prometheus" not in gate


def test_every_option_has_its_environment_variable(deploy: Deployer) -> None:
    overlay = deploy.k8s / "overlays" / "prod" / "kustomization.yaml"
    overlay.write_text(
        overlay.read_text().replace("ghcr.io/elibrary/sre-toolkit", "reg.example/app")
    )
    digest = "sha256:" + "cd" * 32
    run = deploy(
        Cluster(gate_exit=1),
        [],
        DEPLOY_ENV="prod",
        IMAGE_TAG="v1.2.3",
        IMAGE_DIGEST=digest,
        REVISION="abc",
        APP_URL="https://elibrary.example",
        PROMETHEUS_URL="https://prometheus.example",
        NAMESPACE="elibrary",
        DEPLOYMENT="api",
        IMAGE_NAME="reg.example/app",
        ROLLOUT_TIMEOUT="3m",
        LOADTEST_PROFILE="load",
    )
    assert run.code == 1, run.stderr
    assert run.called("kubectl", "rollout", "undo")[0][2:5] == [
        "deployment/api", "--namespace", "elibrary",
    ]  # fmt: skip
    apply = _apply(run)
    assert apply["kustomization"]["images"] == [{"name": "reg.example/app", "digest": digest}]
    overlay_applied = apply["resources"]["../overlays/prod"]
    assert overlay_applied["images"] == [{"name": "reg.example/app", "newTag": "v1.2.3"}]
    assert overlay_applied["configMapGenerator"][0]["literals"] == ["revision=abc"]
    assert run.called("sre", "loadtest")[0][3] == "load"
    assert "--timeout=3m" in run.called("kubectl", "rollout", "status")[0]


def test_apply_only_waits_for_the_rollout_and_judges_nothing(deploy: Deployer) -> None:
    args = ["--apply-only", "--env", "dev", "--image-tag", "ci-abc", "--namespace", "elibrary-dev"]
    run = deploy(Cluster(revision=""), args)
    assert run.code == 0, run.stderr
    assert run.steps == ["apply", "rollout status"]
    assert run.result["verdict"] == "deployed"


BAD_INPUT = [
    ("--env", "qa", "no "),
    ("--env", "../staging", "--env"),
    ("--image-tag", "x; kubectl delete ns prod", "--image-tag"),
    ("--image-tag", "sha256:abc", "--image-tag"),
    ("--image-tag", "a" * 64, "--image-tag"),
    ("--image-tag", "-rc1", "--image-tag"),
    ("--image-digest", "sha256:abc", "--image-digest"),
    ("--revision", "a b", "--revision"),
    ("--namespace", "Prod", "--namespace"),
    ("--app-url", "staging.elibrary.example", "--app-url"),
    ("--prometheus-url", "ftp://prometheus", "--prometheus-url"),
    ("--rollout-timeout", "ten minutes", "--rollout-timeout"),
]


@pytest.mark.parametrize(
    ("flag", "value", "message"), BAD_INPUT, ids=[f"{f} {v!r}" for f, v, _ in BAD_INPUT]
)
def test_bad_input_exits_2_before_any_kubectl_call(
    deploy: Deployer, flag: str, value: str, message: str
) -> None:
    args = [*STANDARD_ARGS]
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    run = deploy(Cluster(), args)
    assert run.code == 2
    assert message in run.stderr
    assert run.calls == []


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([*STANDARD_ARGS, "--colour"], {}, "unknown argument: --colour"),
        ([*STANDARD_ARGS, "--out"], {}, "--out needs a value"),
        (STANDARD_ARGS, {"ROLLBACK_ON_UNUSABLE": "maybe"}, "ROLLBACK_ON_UNUSABLE"),
        ([], {}, "--env"),
    ],
    ids=["an unknown option", "an option without its value", "a bad switch", "nothing"],
)
def test_bad_usage_exits_2_before_any_kubectl_call(
    deploy: Deployer, args: list[str], env: dict[str, str], message: str
) -> None:
    run = deploy(Cluster(), args, **env)
    assert run.code == 2
    assert message in run.stderr
    assert run.calls == []


def test_help_lists_every_option_and_exits_0() -> None:
    run = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=False)
    assert run.returncode == 0
    source = SCRIPT.read_text()
    for option in sorted(set(re.findall(r"^\s+(--[a-z-]+)\)", source, flags=re.MULTILINE))):
        assert option in run.stdout, option
    for variable in SCRIPT_VARIABLES:
        assert variable in run.stdout, variable


def _command(argv: list[str]) -> tuple[click.Command, list[str]]:
    command: click.Command = main
    words = list(argv)
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        found = command.get_command(click.Context(command), words[0])
        assert found is not None, f"sre has no command {argv[: argv.index(words[0]) + 1]}"
        command, words = found, words[1:]
    return command, words


def test_what_it_asks_of_sre_the_real_cli_accepts(deploy: Deployer, tmp_path: Path) -> None:
    run = deploy(
        Cluster(), LOADTEST_USERS="50", LOADTEST_RUN_TIME="5m", GATE_BASELINE=str(tmp_path)
    )
    calls = run.called("sre")
    assert len(calls) == 2
    for argv in calls:
        command, rest = _command(argv)
        # click parses it as `sre` would: unknown options, missing values, bad choices fail
        command.make_context(" ".join(argv[: len(argv) - len(rest)]), rest)


def test_the_script_is_executable_and_strict() -> None:
    assert os.access(SCRIPT, os.X_OK)
    lines = SCRIPT.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines


def test_the_result_file_is_the_verdict_of_the_last_run_only(deploy: Deployer) -> None:
    first = deploy(Cluster(gate_exit=1))
    assert first.result["verdict"] == "fail"
    again = deploy(Cluster(), [*STANDARD_ARGS, "--namespace", "Bad"])
    assert again.code == 2
    assert not (again.out / "result.env").exists()
