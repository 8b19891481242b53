"""The NetworkPolicies, evaluated: a table of connections that must work and of connections
that must not, answered from the rendered policies the way the API's NetworkPolicy rules
define (a pod selected by a policy of a direction is isolated in it; allowed is the union of
the rules; a connection needs the sender's egress and the receiver's ingress)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.k8s.conftest import OVERLAYS, Rendered, pod_specs, selects, target_names

NAME = "app.kubernetes.io/name"


@dataclass(frozen=True)
class Peer:
    """One end of a connection: a pod (its labels and namespace) or an address outside."""

    what: str
    labels: dict[str, str] = field(default_factory=dict)
    namespace: str | None = None  # None: the build's own namespace
    ip: str = "10.244.1.10"  # pod addresses are private

    def namespace_labels(self, own: str) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace or own}


def pod(name: str) -> Peer:
    return Peer(name, {NAME: name})


INGRESS = Peer(
    "the ingress controller", {"app.kubernetes.io/name": "ingress-nginx"}, "ingress-nginx"
)
DNS = Peer("cluster DNS", {"k8s-app": "kube-dns"}, "kube-system")
OPERATOR_PROMETHEUS = Peer("the operator's Prometheus", {NAME: "prometheus"}, "monitoring")
STRANGER = Peer("a pod of another namespace", {NAME: "elibrary-app"}, "other")
SLACK = Peer("Slack / PagerDuty / SMTP", ip="34.120.1.1", namespace="")
API_SERVER = Peer("the API server", ip="10.0.0.1", namespace="")
PRIVATE = Peer("a private address", ip="10.1.2.3", namespace="")

APP, EXPORTER, MYSQL = pod("elibrary-app"), pod("elibrary-exporter"), pod("mysql")
BACKUP, REPORT = pod("mysql-backup"), pod("elibrary-slo-report")
PROMETHEUS, ALERTMANAGER, GRAFANA = pod("prometheus"), pod("alertmanager"), pod("grafana")
MASTER, WORKER = pod("elibrary-loadtest-master"), pod("elibrary-loadtest-worker")

#: (from, to, port, protocol): what the stack needs, in every build
NEEDED = [
    (INGRESS, APP, 8000, "TCP"),
    (INGRESS, GRAFANA, 3000, "TCP"),
    (APP, MYSQL, 3306, "TCP"),
    (EXPORTER, MYSQL, 3306, "TCP"),
    (BACKUP, MYSQL, 3306, "TCP"),
    (PROMETHEUS, APP, 8000, "TCP"),
    (PROMETHEUS, EXPORTER, 9207, "TCP"),
    (PROMETHEUS, ALERTMANAGER, 9093, "TCP"),
    (PROMETHEUS, API_SERVER, 443, "TCP"),
    (GRAFANA, PROMETHEUS, 9090, "TCP"),
    (REPORT, PROMETHEUS, 9090, "TCP"),
    (REPORT, SLACK, 587, "TCP"),
    (ALERTMANAGER, SLACK, 443, "TCP"),
    *((p, DNS, 53, proto) for p in (APP, MYSQL, PROMETHEUS, GRAFANA) for proto in ("UDP", "TCP")),
]
#: what nobody needs: refused in every build
REFUSED = [
    (INGRESS, PROMETHEUS, 9090, "TCP"),
    (INGRESS, MYSQL, 3306, "TCP"),
    (INGRESS, EXPORTER, 9207, "TCP"),
    (STRANGER, APP, 8000, "TCP"),
    (STRANGER, MYSQL, 3306, "TCP"),
    (APP, PROMETHEUS, 9090, "TCP"),
    (APP, SLACK, 443, "TCP"),
    (APP, EXPORTER, 9207, "TCP"),
    (EXPORTER, APP, 8000, "TCP"),
    (GRAFANA, MYSQL, 3306, "TCP"),
    (GRAFANA, SLACK, 443, "TCP"),
    (MYSQL, SLACK, 443, "TCP"),
    (MYSQL, APP, 8000, "TCP"),
    (BACKUP, APP, 8000, "TCP"),
    (BACKUP, SLACK, 443, "TCP"),
    (ALERTMANAGER, PRIVATE, 443, "TCP"),
    (ALERTMANAGER, MYSQL, 3306, "TCP"),
    (REPORT, MYSQL, 3306, "TCP"),
    (PROMETHEUS, MYSQL, 3306, "TCP"),
    (OPERATOR_PROMETHEUS, APP, 8000, "TCP"),
    (WORKER, APP, 8000, "TCP"),
    (MASTER, PROMETHEUS, 9090, "TCP"),
]
#: what a component adds: needed with it, refused without it
BY_COMPONENT = {
    "loadtest": [
        (WORKER, MASTER, 5557, "TCP"),
        (WORKER, APP, 8000, "TCP"),
        (MASTER, APP, 8000, "TCP"),
        (MASTER, PROMETHEUS, 9090, "TCP"),
    ],
    "prometheus-operator": [
        (OPERATOR_PROMETHEUS, APP, 8000, "TCP"),
        (OPERATOR_PROMETHEUS, EXPORTER, 9207, "TCP"),
    ],
}


def peer_matches(rule_peers: list[dict[str, Any]] | None, peer: Peer, own: str) -> bool:
    if rule_peers is None:
        return True  # no from/to: everyone
    for entry in rule_peers:
        if "ipBlock" in entry:
            if peer.namespace != "":
                # pods are matched by selectors; ipBlock is for traffic leaving the cluster
                continue
            block = entry["ipBlock"]
            address = ipaddress.ip_address(peer.ip)
            if address in ipaddress.ip_network(block["cidr"]) and not any(
                address in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
            ):
                return True
            continue
        if peer.namespace == "":
            continue  # a selector never matches an address outside the cluster
        namespaces = entry.get("namespaceSelector")
        pods = entry.get("podSelector")
        in_namespace = (
            selects(namespaces, peer.namespace_labels(own))
            if namespaces is not None
            else (peer.namespace or own) == own
        )
        if in_namespace and (pods is None or selects(pods, peer.labels)):
            return True
    return False


def port_matches(rule_ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    return any(
        p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in rule_ports
    )


def allowed(build: Rendered, direction: str, me: Peer, other: Peer, port: int, proto: str) -> bool:
    """Whether ``me`` (a pod of the build's namespace) may send (Egress) to / receive
    (Ingress) from ``other``."""
    key = "egress" if direction == "Egress" else "ingress"
    peers_key = "to" if direction == "Egress" else "from"
    policies = [
        p
        for p in build.of_kind("NetworkPolicy")
        if direction in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], me.labels)
    ]
    if not policies:
        return True  # not isolated
    return any(
        peer_matches(rule.get(peers_key), other, build.namespace)
        and port_matches(rule.get("ports"), port, proto)
        for policy in policies
        for rule in policy["spec"].get(key) or []
    )


def connects(build: Rendered, source: Peer, target: Peer, port: int, proto: str) -> bool:
    ours = build.namespace
    ok = True
    if source.namespace in (None, ours):
        ok &= allowed(build, "Egress", source, target, port, proto)
    if target.namespace in (None, ours):
        ok &= allowed(build, "Ingress", target, source, port, proto)
    return ok


def where(source: Peer, target: Peer, port: int, proto: str) -> str:
    return f"{source.what} -> {target.what}:{port}/{proto}"


@pytest.mark.parametrize("target", target_names())
def test_what_the_stack_needs_is_allowed(rendered: dict[str, Rendered], target: str) -> None:
    build = rendered[target]
    component = target.split("+")[1] if "+" in target else None
    needed = NEEDED + BY_COMPONENT.get(component or "", [])
    blocked = [where(*c) for c in needed if not connects(build, *c)]
    assert blocked == []


@pytest.mark.parametrize("target", target_names())
def test_everything_else_is_refused(rendered: dict[str, Rendered], target: str) -> None:
    build = rendered[target]
    component = target.split("+")[1] if "+" in target else None
    refused = [c for c in REFUSED if c not in BY_COMPONENT.get(component or "", [])]
    for other, extra in BY_COMPONENT.items():
        if other != component:
            refused += [c for c in extra if c not in NEEDED]
    open_ = [where(*c) for c in refused if connects(build, *c)]
    assert open_ == []


@pytest.mark.parametrize("target", target_names())
def test_every_pod_is_isolated_both_ways(rendered: dict[str, Rendered], target: str) -> None:
    build = rendered[target]
    (deny,) = [
        p for p in build.of_kind("NetworkPolicy") if p["metadata"]["name"] == "default-deny-all"
    ]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for workload in build.objects:
        for metadata, _ in pod_specs(workload):
            labels = metadata["labels"]
            own = [
                p["metadata"]["name"]
                for p in build.of_kind("NetworkPolicy")
                if p["spec"]["podSelector"] and selects(p["spec"]["podSelector"], labels)
            ]
            assert own, f"{workload['metadata']['name']}: no policy of its own"


@pytest.mark.parametrize("target", target_names())
def test_every_selector_in_a_policy_selects_a_pod_of_the_stack(
    rendered: dict[str, Rendered], target: str
) -> None:
    """A selector with a typo selects nothing, silently: here it fails."""
    build = rendered[target]
    labels = [m["labels"] for w in build.objects for m, _ in pod_specs(w)]
    for policy in build.of_kind("NetworkPolicy"):
        spec = policy["spec"]
        selectors = [spec["podSelector"]] if spec["podSelector"] else []
        for rule in [*spec.get("ingress", []), *spec.get("egress", [])]:
            for peer in [*rule.get("from", []), *rule.get("to", [])]:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    selectors.append(peer["podSelector"])
        for selector in selectors:
            assert any(selects(selector, pod) for pod in labels), (
                f"{policy['metadata']['name']}: {selector} selects no pod"
            )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ports_the_policies_open_are_the_ports_the_pods_serve(
    rendered: dict[str, Rendered], overlay: str
) -> None:
    build = rendered[f"{overlay}+loadtest"]
    served: list[tuple[dict[str, str], set[int]]] = []
    for workload in build.objects:
        for metadata, spec in pod_specs(workload):
            ports = {
                p["containerPort"]
                for c in [*spec.get("initContainers", []), *spec["containers"]]
                for p in c.get("ports", [])
            }
            served.append((metadata["labels"], ports))
    for policy in build.of_kind("NetworkPolicy"):
        spec = policy["spec"]
        if not spec["podSelector"]:
            continue
        for rule in spec.get("ingress", []):
            for port in rule.get("ports", []):
                targets = [
                    ports for labels, ports in served if selects(spec["podSelector"], labels)
                ]
                assert targets and all(port["port"] in ports for ports in targets), (
                    f"{policy['metadata']['name']} opens {port['port']}: not served"
                )
