"""The Kubernetes manifests of k8s/, rendered once per test session with ``kubectl kustomize``.

The tree is copied to a temporary folder first: the secrets the secretGenerators read are
git-ignored, so the copy gets placeholder ones from ``k8s/make-secrets --placeholders`` (a
developer's real ones never reach a test), and each optional component is tried in each
overlay the way an operator adds it (``components:`` in the overlay's kustomization). Without
kubectl the tests skip, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import IN_CI, REPO

K8S = REPO / "k8s"
GENERATED = K8S / "base" / "generated"
OVERLAYS = ("dev", "staging", "prod")
COMPONENTS = ("prometheus-operator", "loadtest")
#: the namespace each overlay deploys to (the base's is elibrary)
NAMESPACES = {"base": "elibrary", "dev": "elibrary-dev", "staging": "elibrary-staging"}
NAMESPACES["prod"] = "elibrary"
APP_IMAGE = "ghcr.io/elibrary/sre-toolkit"
#: libyaml's loader where PyYAML has it: the builds are some 4 MB of YAML
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def target_names() -> list[str]:
    """base, each overlay, and each overlay with each component (``prod+loadtest``)."""
    return [
        "base",
        *OVERLAYS,
        *(f"{overlay}+{component}" for overlay in OVERLAYS for component in COMPONENTS),
    ]


def overlay_of(target: str) -> str:
    return target.split("+")[0]


@dataclass(frozen=True)
class Rendered:
    """One kustomize build: its file and its objects, or why kustomize refused it."""

    target: str
    path: Path
    parsed: tuple[dict[str, Any], ...]
    error: str | None = None

    @property
    def objects(self) -> tuple[dict[str, Any], ...]:
        if self.error is not None:
            pytest.fail(f"kubectl kustomize {self.target} failed:\n{self.error}")
        return self.parsed

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in kinds]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        """The object of that kind whose name is ``name`` (or ``name-<hash>``)."""
        found = [
            o
            for o in self.objects
            if o["kind"] == kind
            and (
                o["metadata"]["name"] == name
                or (
                    o["kind"] in ("ConfigMap", "Secret")
                    and o["metadata"]["name"].rsplit("-", 1)[0] == name
                )
            )
        ]
        assert len(found) == 1, f"{self.target}: {len(found)} {kind} called {name}"
        return found[0]

    @property
    def namespace(self) -> str:
        return NAMESPACES[overlay_of(self.target)]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        if IN_CI:
            pytest.fail("kubectl is required in CI (it renders the kustomizations)")
        pytest.skip("kubectl is not installed: the manifests cannot be rendered")
    return found


def copy_tree(destination: Path) -> Path:
    """k8s/ without its real secrets, with placeholder ones instead."""
    tree = destination / "k8s"
    shutil.copytree(
        K8S,
        tree,
        ignore=lambda folder, names: (
            [n for n in names if not n.endswith(".example")]
            if Path(folder).name == "secrets"
            else []
        ),
    )
    done = subprocess.run(
        [str(tree / "make-secrets"), "--placeholders"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for target in target_names():
        if "+" not in target:
            continue
        overlay, component = target.split("+")
        text = (tree / "overlays" / overlay / "kustomization.yaml").read_text(encoding="utf-8")
        assert "\ncomponents: []\n" in text, f"overlays/{overlay}: no `components: []` line"
        text = text.replace(
            "\ncomponents: []\n", f"\ncomponents:\n  - ../../components/{component}\n"
        )
        folder = tree / "overlays" / target
        folder.mkdir()
        (folder / "kustomization.yaml").write_text(text, encoding="utf-8")
    return tree


def build(tree: Path, target: str, out: Path) -> None:
    """``out/<target>.yaml``, or ``out/<target>.error`` with what kustomize said."""
    folder = tree / "base" if target == "base" else tree / "overlays" / target
    done = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    if done.returncode == 0:
        (out / f"{target}.yaml").write_text(done.stdout, encoding="utf-8")
    else:
        (out / f"{target}.error").write_text(done.stderr, encoding="utf-8")


@pytest.fixture(scope="session")
def rendered_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder with ``<target>.yaml`` for every target that kustomize builds (the others
    leave ``<target>.error``: their own tests fail, the rest still run)."""
    kubectl()
    root = tmp_path_factory.mktemp("k8s")
    tree = copy_tree(root)
    out = root / "rendered"
    out.mkdir()
    for target in target_names():
        build(tree, target, out)
    yield out


@pytest.fixture(scope="session")
def rendered(rendered_dir: Path) -> dict[str, Rendered]:
    """Every target's build; those kustomize refused fail the tests that read them."""
    builds = {}
    for target in target_names():
        path = rendered_dir / f"{target}.yaml"
        if not path.exists():
            error = (rendered_dir / f"{target}.error").read_text(encoding="utf-8")
            builds[target] = Rendered(target, path, (), error)
            continue
        text = path.read_text(encoding="utf-8")
        objects = tuple(o for o in yaml.load_all(text, Loader=LOADER) if o)
        builds[target] = Rendered(target, path, objects)
    return builds


def built(rendered: dict[str, Rendered]) -> dict[str, Rendered]:
    """The builds kustomize made (test_render fails for the others)."""
    return {t: b for t, b in rendered.items() if b.error is None}


def pod_specs(obj: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod template metadata, pod spec) of a workload; none for other kinds."""
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        template = spec["jobTemplate"]["spec"]["template"]
    elif obj["kind"] in WORKLOADS:
        template = spec["template"]
    else:
        return []
    return [(template.get("metadata", {}), template["spec"])]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects ``labels``."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True
