"""Every kustomization renders, each overlay into its own namespace, and every object is
one the cluster accepts: the Kubernetes 1.30 schemas (kubernetes-validate, strict) and, for
the Prometheus Operator's kinds, the schemas of its CRDs (tests/k8s/crds)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import IN_CI
from tests.k8s.conftest import (
    COMPONENTS,
    OVERLAYS,
    Rendered,
    built,
    overlay_of,
    target_names,
)

#: the version of Kubernetes the manifests are written for (the restricted profile's too)
KUBERNETES_VERSION = "1.30.0"
CRDS = Path(__file__).resolve().parent / "crds"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
#: what the base deploys, by kind
BASE_KINDS = {
    "Namespace": 1,
    "NetworkPolicy": 10,
    "ServiceAccount": 8,
    "Role": 1,
    "RoleBinding": 1,
    "ConfigMap": 16,
    "Secret": 6,
    "Service": 6,
    "PersistentVolumeClaim": 1,
    "Deployment": 3,
    "StatefulSet": 3,
    "CronJob": 2,
    "HorizontalPodAutoscaler": 1,
    "PodDisruptionBudget": 1,
    "Ingress": 2,
}
COMPONENT_KINDS = {
    "prometheus-operator": {"PrometheusRule": 2, "ServiceMonitor": 2, "NetworkPolicy": 1},
    "loadtest": {"ServiceAccount": 1, "Service": 1, "Job": 2, "NetworkPolicy": 4},
}


@pytest.mark.parametrize("target", target_names())
def test_it_renders_what_the_stack_needs(rendered: dict[str, Rendered], target: str) -> None:
    kinds = Counter(o["kind"] for o in rendered[target].objects)
    expected = Counter(BASE_KINDS)
    if "+" in target:
        expected.update(COMPONENT_KINDS[target.split("+")[1]])
    assert kinds == expected


@pytest.mark.parametrize("target", target_names())
def test_everything_lands_in_the_overlays_namespace(
    rendered: dict[str, Rendered], target: str
) -> None:
    build = rendered[target]
    (namespace,) = build.of_kind("Namespace")
    assert namespace["metadata"]["name"] == build.namespace
    for obj in build.objects:
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in obj["metadata"]
        else:
            assert obj["metadata"].get("namespace") == build.namespace, obj["metadata"]["name"]
    for binding in build.of_kind("RoleBinding"):
        for subject in binding["subjects"]:
            assert subject.get("namespace") == build.namespace, binding["metadata"]["name"]


def test_the_overlays_differ_only_where_they_mean_to(rendered: dict[str, Rendered]) -> None:
    """Same objects by kind and name everywhere (generated names aside)."""

    def names(build: Rendered) -> set[tuple[str, str]]:
        return {
            (o["kind"], o["metadata"]["name"].rsplit("-", 1)[0])
            if o["kind"] in ("ConfigMap", "Secret")
            else (o["kind"], o["metadata"]["name"])
            for o in build.objects
            if o["kind"] != "Namespace"
        }

    base = names(rendered["base"])
    for overlay in OVERLAYS:
        assert names(rendered[overlay]) == base, overlay
        for component in COMPONENTS:
            with_it = built(rendered).get(f"{overlay}+{component}")
            if with_it is not None:  # else its test_it_renders… fails
                assert base < names(with_it)


# --- schemas -------------------------------------------------------------------------------


def validator() -> Any:
    """The kubernetes_validate module: skipped without it, failed in CI."""
    try:
        import kubernetes_validate
    except ImportError:
        if IN_CI:
            pytest.fail("kubernetes-validate is required in CI (a dev dependency)")
        pytest.skip("kubernetes-validate is not installed")
    return kubernetes_validate


def unique_objects(rendered: dict[str, Rendered]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each distinct object once (most are the same in every build): text → (where, object)."""
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for target, build in built(rendered).items():
        for obj in build.objects:
            key = json.dumps(obj, sort_keys=True)
            seen.setdefault(key, (f"{target}: {obj['kind']} {obj['metadata']['name']}", obj))
    return seen


def test_every_object_is_valid_for_kubernetes_1_30_strictly(
    rendered: dict[str, Rendered],
) -> None:
    kubernetes_validate = validator()
    problems = []
    checked = 0
    for where, obj in unique_objects(rendered).values():
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # no bundled schema: test_operator_objects_match_their_crds
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
        checked += 1
    assert problems == []
    assert checked > 60


@cache
def crd_schema(kind: str) -> dict[str, Any]:
    """The CRD's schema, made strict the way the API server's field validation is: a field
    the schema does not declare is an error, unless the schema keeps unknown fields."""

    def strict(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: strict(v) for k, v in node.items()}
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            return node
        if isinstance(node, list):
            return [strict(v) for v in node]
        return node

    schema = json.loads((CRDS / f"{kind}.json").read_text(encoding="utf-8"))
    schema.pop("x-source")
    return dict(strict(copy.deepcopy(schema)))


def validate_crd(obj: dict[str, Any]) -> None:
    """OpenAPI v3 schemas are JSON Schema draft 4 at heart; their patterns are Go's (RE2),
    so the schema itself is not checked as a draft 2020-12 one would be."""
    jsonschema.Draft4Validator(crd_schema(obj["kind"])).validate(obj)


METADATA_FIELDS = {"name", "namespace", "labels", "annotations"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_operator_objects_match_their_crds(rendered: dict[str, Rendered], overlay: str) -> None:
    build = rendered[f"{overlay}+prometheus-operator"]
    objects = build.of_kind("PrometheusRule", "ServiceMonitor")
    assert len(objects) == 4
    for obj in objects:
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        validate_crd(obj)
        metadata = obj["metadata"]
        assert set(metadata) <= METADATA_FIELDS
        assert {"name", "namespace"} <= set(metadata)
        for field in ("labels", "annotations"):
            assert all(isinstance(v, str) for v in metadata.get(field, {}).values())


def test_the_crd_schemas_are_strict_enough_to_catch_a_typo() -> None:
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "x"},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "1", "fro": "5m"}]}]},
    }
    with pytest.raises(jsonschema.ValidationError, match="fro"):
        validate_crd(rule)
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "interval": "soon"}]},
    }
    with pytest.raises(jsonschema.ValidationError, match="soon"):
        validate_crd(monitor)


def test_kubernetes_validate_catches_a_typo() -> None:
    kubernetes_validate = validator()
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80, "targetPrt": 8000}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)


def test_overlay_of() -> None:
    assert overlay_of("prod+loadtest") == "prod"
    assert overlay_of("base") == "base"
