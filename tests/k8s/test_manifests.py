"""What the rendered manifests promise, a table per rule: the restricted Pod Security
profile on every pod, the app's probes, resources and rollout, the sizes per environment,
selectors that select, labels, and the commands each container runs."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from sre.cli import main
from tests.k8s.conftest import (
    APP_IMAGE,
    K8S,
    OVERLAYS,
    Rendered,
    containers,
    pod_specs,
    selects,
    target_names,
)

NAME = "app.kubernetes.io/name"
RECOMMENDED = tuple(
    f"app.kubernetes.io/{k}"
    for k in ("name", "instance", "component", "part-of", "version", "managed-by")
)
#: the volume types the restricted profile allows
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def workloads(build: Rendered) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(workload, pod metadata, pod spec) of every pod template in the build."""
    return [(w, m, s) for w in build.objects for m, s in pod_specs(w)]


def where(workload: dict[str, Any], container: dict[str, Any] | None = None) -> str:
    name = f"{workload['kind']} {workload['metadata']['name']}"
    return f"{name}/{container['name']}" if container else name


# --- the restricted Pod Security Standard, on every pod -------------------------------------


@pytest.mark.parametrize("target", target_names())
def test_every_pod_meets_the_restricted_profile(rendered: dict[str, Rendered], target: str) -> None:
    problems = []
    for workload, _, pod in workloads(rendered[target]):
        context = pod.get("securityContext", {})
        expected = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        for key, value in expected.items():
            if context.get(key) != value:
                problems.append(f"{where(workload)}: securityContext.{key}")
        for key in ("runAsUser", "runAsGroup", "fsGroup"):
            # numeric and not root: runAsNonRoot can be checked without the image's passwd
            if not isinstance(context.get(key), int) or context[key] < 10000:
                problems.append(f"{where(workload)}: securityContext.{key} {context.get(key)}")
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(key):
                problems.append(f"{where(workload)}: {key}")
        for volume in pod.get("volumes", []):
            kinds = set(volume) - {"name"}
            if not kinds <= RESTRICTED_VOLUMES:
                problems.append(f"{where(workload)}: volume {volume['name']} is {kinds}")
        for container in containers(pod):
            security = container.get("securityContext", {})
            wanted = {
                "runAsNonRoot": True,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }
            for key, value in wanted.items():
                if security.get(key) != value:
                    problems.append(f"{where(workload, container)}: securityContext.{key}")
            if security.get("privileged"):
                problems.append(f"{where(workload, container)}: privileged")
            if any("hostPort" in port for port in container.get("ports", [])):
                problems.append(f"{where(workload, container)}: hostPort")
    assert problems == []


@pytest.mark.parametrize("target", target_names())
def test_only_prometheus_holds_an_api_token(rendered: dict[str, Rendered], target: str) -> None:
    build = rendered[target]
    for account in build.of_kind("ServiceAccount"):
        assert account.get("automountServiceAccountToken") is False, account["metadata"]["name"]
    holders = []
    for workload, _, pod in workloads(build):
        assert pod.get("automountServiceAccountToken") is False, where(workload)
        assert pod.get("serviceAccountName") not in (None, "default"), where(workload)
        tokens = {
            v["name"]
            for v in pod.get("volumes", [])
            for source in v.get("projected", {}).get("sources", [])
            if "serviceAccountToken" in source
        }
        for container in containers(pod):
            if {m["name"] for m in container.get("volumeMounts", [])} & tokens:
                holders.append(where(workload, container))
    assert holders == ["StatefulSet prometheus/prometheus"]
    (role,) = build.of_kind("Role")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    assert build.of_kind("ClusterRole", "ClusterRoleBinding") == []


@pytest.mark.parametrize("target", target_names())
def test_every_container_is_sized_and_pinned(rendered: dict[str, Rendered], target: str) -> None:
    for workload, _, pod in workloads(rendered[target]):
        for container in containers(pod):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert set(resources.get(kind, {})) >= {"cpu", "memory"}, where(workload, container)
            image = container["image"]
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{image}: no pinned tag"
            assert not image.endswith(":latest")


@pytest.mark.parametrize("target", target_names())
def test_every_long_running_container_has_probes(
    rendered: dict[str, Rendered], target: str
) -> None:
    for workload, _, pod in workloads(rendered[target]):
        if workload["kind"] in ("Job", "CronJob"):
            continue
        for container in pod["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                assert probe in container, f"{where(workload, container)}: no {probe}"


# --- the app ------------------------------------------------------------------------------

#: overlay → app replicas, HPA bounds, the app container's resources
SIZES = {
    "base": (2, 2, 10, ("250m", "256Mi", "500m", "512Mi")),
    "dev": (2, 2, 3, ("100m", "128Mi", "250m", "256Mi")),
    "staging": (2, 2, 5, ("250m", "256Mi", "500m", "512Mi")),
    "prod": (3, 2, 10, ("250m", "256Mi", "500m", "512Mi")),
}


@pytest.mark.parametrize(("overlay", "sizes"), SIZES.items())
def test_the_app_is_sized_per_environment(
    rendered: dict[str, Rendered], overlay: str, sizes: tuple[Any, ...]
) -> None:
    replicas, low, high, (cpu, memory, cpu_limit, memory_limit) = sizes
    build = rendered[overlay]
    deployment = build.get("Deployment", "app")
    hpa = build.get("HorizontalPodAutoscaler", "app")
    assert deployment["spec"]["replicas"] == replicas
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (low, high)
    assert low >= 2, "two app pods at least, always"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "app",
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    app = deployment["spec"]["template"]["spec"]["containers"][0]
    assert app["resources"] == {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


@pytest.mark.parametrize("target", target_names())
def test_the_app_rolls_out_without_losing_capacity(
    rendered: dict[str, Rendered], target: str
) -> None:
    build = rendered[target]
    spec = build.get("Deployment", "app")["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in pod["topologySpreadConstraints"]:
        assert selects(constraint["labelSelector"], spec["template"]["metadata"]["labels"])
    pdb = build.get("PodDisruptionBudget", "app")
    assert selects(pdb["spec"]["selector"], spec["template"]["metadata"]["labels"])
    assert pdb["spec"]["maxUnavailable"] == 1


def test_the_app_serves_as_the_local_stack_does(rendered: dict[str, Rendered]) -> None:
    build = rendered["prod"]
    pod = build.get("Deployment", "app")["spec"]["template"]["spec"]
    (migrate,) = pod["initContainers"]
    (app,) = pod["containers"]
    assert migrate["args"] == ["app", "migrate"]
    args = app["args"]
    assert args[:2] == ["app", "serve"]
    options = dict(zip(args[2::2], args[3::2], strict=False))
    assert options["--host"] == "0.0.0.0"
    assert options["--port"] == "8000"
    assert "--no-migrate" in args
    assert args[args.index("--metrics-dir") + 1] == "/var/run/elibrary-metrics"
    mounts = {m["mountPath"]: m["name"] for m in app["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/var/run/elibrary-metrics"]]
    assert "emptyDir" in volumes[mounts["/tmp"]]
    (port,) = app["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 8000)
    probes = {
        kind: (app[kind]["httpGet"]["path"], app[kind]["httpGet"]["port"])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes == {
        "startupProbe": ("/api/health", "http"),
        "livenessProbe": ("/api/health", "http"),
        "readinessProbe": ("/api/ready", "http"),
    }


@pytest.mark.parametrize("target", target_names())
def test_the_database_password_is_a_file_never_a_variable(
    rendered: dict[str, Rendered], target: str
) -> None:
    build = rendered[target]
    pod = build.get("Deployment", "app")["spec"]["template"]["spec"]
    for container in containers(pod):
        env = {e["name"]: e for e in container["env"]}
        url = urlsplit(env["DATABASE_URL"]["value"])
        assert (url.scheme, url.hostname, url.port, url.username) == (
            "mysql",
            "mysql",
            3306,
            "elibrary",
        )
        assert url.password is None
        password_file = env["SRE_DATABASE_PASSWORD_FILE"]["value"]
        assert mounted_secret_key(build, pod, container, password_file) == ("mysql", "app-password")
        revision = env["SRE_BUILD_REVISION"]["valueFrom"]["configMapKeyRef"]
        assert revision["name"].startswith("elibrary-build-")
        assert revision["key"] in build.get("ConfigMap", "elibrary-build")["data"]
    for workload, _, other in workloads(build):
        for container in containers(other):
            for variable in container.get("env", []):
                assert "secretKeyRef" not in variable.get("valueFrom", {}), where(workload)
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, where(workload)


def mounted_secret_key(
    build: Rendered, pod: dict[str, Any], container: dict[str, Any], path: str
) -> tuple[str, str]:
    """(Secret generator name, key) of the file at ``path`` in ``container``."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        relative = path.removeprefix(prefix)
        volume = volumes[mount["name"]]
        sources = (
            volume["projected"]["sources"]
            if "projected" in volume
            else [{"secret": {"name": volume["secret"]["secretName"], **volume["secret"]}}]
        )
        for source in sources:
            secret = source.get("secret")
            if secret is None:
                continue
            data = build.get("Secret", secret["name"].rsplit("-", 1)[0])["data"]
            items = secret.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                if item["path"] == relative:
                    assert item["key"] in data
                    return secret["name"].rsplit("-", 1)[0], item["key"]
    raise AssertionError(f"{path} is not a file of a mounted Secret")


# --- the other workloads ------------------------------------------------------------------


def test_mariadb_keeps_its_data_and_reads_its_passwords_from_files(
    rendered: dict[str, Rendered],
) -> None:
    build = rendered["prod"]
    statefulset = build.get("StatefulSet", "mysql")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert build.get("Service", "mysql")["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == "mysql"
    pod = statefulset["spec"]["template"]["spec"]
    (mariadb,) = pod["containers"]
    assert mariadb["image"].startswith("mariadb:10.11.")
    env = {e["name"]: e.get("value") for e in mariadb["env"]}
    for variable, key in {
        "MARIADB_ROOT_PASSWORD_FILE": "root-password",
        "MARIADB_PASSWORD_FILE": "app-password",
    }.items():
        assert mounted_secret_key(build, pod, mariadb, env[variable]) == ("mysql", key)
    assert not any(v.endswith("PASSWORD") for v in env)
    assert env["MARIADB_USER"] == "elibrary" and env["MARIADB_DATABASE"] == "elibrary"


def test_the_backup_runs_nightly_and_records_itself(rendered: dict[str, Rendered]) -> None:
    build = rendered["prod"]
    cronjob = build.get("CronJob", "mysql-backup")
    assert cronjob["spec"]["schedule"] == "0 2 * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (backup,) = pod["containers"]
    server = build.get("StatefulSet", "mysql")["spec"]["template"]["spec"]["containers"][0]
    assert backup["image"] == server["image"], "the client of the server's own version"
    script = build.get("ConfigMap", "mysql-backup-script")["data"]["backup.sh"]
    assert script == (K8S / "base" / "mysql" / "backup.sh").read_text(encoding="utf-8")
    insert = "INSERT INTO backup_runs (finished_at, bytes, path)"
    assert f"{insert} VALUES (UTC_TIMESTAMP(), $bytes, '$file')" in script
    env = {e["name"]: e["value"] for e in backup["env"]}
    assert mounted_secret_key(build, pod, backup, env["BACKUP_PASSWORD_FILE"]) == (
        "mysql",
        "backup-password",
    )
    mounts = {m["mountPath"]: m["name"] for m in backup["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts[env["BACKUP_DIR"]]]["persistentVolumeClaim"]["claimName"]
    assert build.get("PersistentVolumeClaim", claim)


def test_the_exporter_reads_its_my_cnf_from_a_secret(rendered: dict[str, Rendered]) -> None:
    build = rendered["prod"]
    pod = build.get("Deployment", "exporter")["spec"]["template"]["spec"]
    (exporter,) = pod["containers"]
    args = exporter["args"]
    assert args[:2] == ["exporter", "serve"]
    options = dict(zip(args[2::2], args[3::2], strict=False))
    assert options["--host"] == "0.0.0.0" and options["--port"] == "9207"
    assert mounted_secret_key(build, pod, exporter, options["--my-cnf"]) == (
        "exporter-my-cnf",
        "my.cnf",
    )
    assert exporter["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_daily_slo_email(rendered: dict[str, Rendered]) -> None:
    build = rendered["prod"]
    cronjob = build.get("CronJob", "slo-report")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (report,) = pod["containers"]
    args = report["args"]
    assert args[:2] == ["slo", "report"]
    assert args[args.index("--prometheus") + 1] == "http://prometheus:9090"
    assert args[args.index("--since") + 1] == "24h"
    assert args[args.index("--email-to") + 1] == "$(SRE_REPORT_EMAIL_TO)"
    settings = build.get("ConfigMap", "slo-report-settings")["data"]
    assert {"SRE_SMTP_HOST", "SRE_SMTP_PORT", "SRE_SMTP_USER"} <= set(settings)
    env = {e["name"]: e["value"] for e in report["env"]}
    assert mounted_secret_key(build, pod, report, env["SRE_SMTP_PASSWORD_FILE"]) == (
        "smtp",
        "smtp-password",
    )
    assert rendered["dev"].get("CronJob", "slo-report")["spec"].get("suspend") is True
    assert "suspend" not in cronjob["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_distributed_load_test_adds_up(rendered: dict[str, Rendered], overlay: str) -> None:
    build = rendered[f"{overlay}+loadtest"]
    master = build.get("Job", "loadtest-master")["spec"]
    worker = build.get("Job", "loadtest-worker")["spec"]
    (run,) = master["template"]["spec"]["initContainers"]
    (gate,) = master["template"]["spec"]["containers"]
    (work,) = worker["template"]["spec"]["containers"]
    flags = option_values(run["args"])
    assert "--master" in run["args"] and "--worker" in work["args"]
    assert int(flags["--expect-workers"]) == worker["parallelism"] == worker["completions"]
    service = build.get("Service", "loadtest-master")
    assert option_values(work["args"])["--master-host"] == service["metadata"]["name"]
    (port,) = service["spec"]["ports"]
    assert (
        int(flags["--master-port"])
        == port["port"]
        == int(option_values(work["args"])["--master-port"])
    )
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert selects(
        {"matchLabels": service["spec"]["selector"]}, master["template"]["metadata"]["labels"]
    )
    assert flags["--host"] == "http://app:8000"
    gate_flags = option_values(gate["args"])
    assert gate["args"][:2] == ["slo", "gate"]
    assert gate_flags["--locust-stats"] == f"{flags['--out']}/locust"
    assert gate_flags["--prometheus"] == "http://prometheus:9090"
    out = {m["mountPath"]: m["name"] for m in run["volumeMounts"]}[flags["--out"]]
    assert {m["mountPath"]: m["name"] for m in gate["volumeMounts"]}[flags["--out"]] == out


def option_values(args: list[str]) -> dict[str, str]:
    """--flag value pairs of an argument list (flags without a value are left out)."""
    values = {}
    for index, word in enumerate(args[:-1]):
        following = args[index + 1]
        if word.startswith("--") and not following.startswith("--"):
            values[word] = following
    return values


# --- commands ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", target_names())
def test_every_sre_command_and_option_exists(rendered: dict[str, Rendered], target: str) -> None:
    """The image's entrypoint is `sre`: its args must be a command with known options, and
    each $(VARIABLE) must be one the container defines."""
    checked = 0
    for workload, _, pod in workloads(rendered[target]):
        for container in containers(pod):
            if not container["image"].startswith(f"{APP_IMAGE}:"):
                continue
            assert "command" not in container, where(workload, container)
            args = container["args"]
            command: click.Command = main
            words = list(args)
            while isinstance(command, click.Group):
                found = command.get_command(click.Context(command), words.pop(0))
                assert found is not None, f"{where(workload, container)}: sre {args[:2]}"
                command = found
            known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            used = {w for w in words if w.startswith("--")}
            assert used <= known, f"{where(workload, container)}: {sorted(used - known)}"
            defined = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                name = source["configMapRef"]["name"].rsplit("-", 1)[0]
                defined |= set(rendered[target].get("ConfigMap", name)["data"])
            for word in words:
                for variable in re.findall(r"\$\((\w+)\)", word):
                    assert variable in defined, f"{where(workload, container)}: $({variable})"
            checked += 1
    assert checked >= 4


# --- services, selectors, ports -------------------------------------------------------------

#: Service → port (DESIGN.md "Ports"), and the pods it must reach
SERVICES = {
    "app": (8000, "elibrary-app"),
    "exporter": (9207, "elibrary-exporter"),
    "prometheus": (9090, "prometheus"),
    "alertmanager": (9093, "alertmanager"),
    "grafana": (3000, "grafana"),
    "mysql": (3306, "mysql"),
}


@pytest.mark.parametrize("target", target_names())
def test_every_service_reaches_its_pods_on_a_served_port(
    rendered: dict[str, Rendered], target: str
) -> None:
    build = rendered[target]
    services = {s["metadata"]["name"]: s for s in build.of_kind("Service")}
    assert set(SERVICES) <= set(services)
    for name, service in services.items():
        pods = [
            (m, s)
            for _, m, s in workloads(build)
            if selects({"matchLabels": service["spec"]["selector"]}, m["labels"])
        ]
        assert pods, f"Service {name} selects no pod"
        for port in service["spec"]["ports"]:
            for _, spec in pods:
                # a port name resolves among the regular containers only (not init ones)
                named = {
                    p.get("name"): p["containerPort"]
                    for c in spec["containers"]
                    for p in c.get("ports", [])
                }
                numbers = {p["containerPort"] for c in containers(spec) for p in c.get("ports", [])}
                target = port["targetPort"]
                number = named.get(target) if isinstance(target, str) else target
                assert number in numbers, f"Service {name}: {target}"
                assert number == port["port"], f"Service {name}"
        if name in SERVICES:
            expected_port, pod_name = SERVICES[name]
            assert [p["port"] for p in service["spec"]["ports"]] == [expected_port]
            assert {m["labels"][NAME] for m, _ in pods} == {pod_name}


@pytest.mark.parametrize("target", target_names())
def test_every_workload_selects_its_own_pods_only(
    rendered: dict[str, Rendered], target: str
) -> None:
    build = rendered[target]
    for workload, metadata, _ in workloads(build):
        if workload["kind"] in ("Job", "CronJob"):
            continue
        selector = workload["spec"]["selector"]
        assert selects(selector, metadata["labels"])
        others = [
            m
            for w, m, _ in workloads(build)
            if w is not workload and selects(selector, m["labels"])
        ]
        assert others == [], where(workload)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingresses_route_to_services_by_name(
    rendered: dict[str, Rendered], overlay: str
) -> None:
    build = rendered[overlay]
    hosts = {}
    for ingress in build.of_kind("Ingress"):
        (rule,) = ingress["spec"]["rules"]
        (tls,) = ingress["spec"]["tls"]
        assert tls["hosts"] == [rule["host"]]
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = build.get("Service", backend["name"])
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
        hosts[ingress["metadata"]["name"]] = rule["host"]
    prefix = "" if overlay == "prod" else f"{overlay}."
    assert hosts == {
        "app": f"{prefix}elibrary.example",
        "grafana": f"grafana.{prefix}elibrary.example",
    }
    assert (
        build.get("ConfigMap", "grafana-settings")["data"]["GF_SERVER_ROOT_URL"]
        == f"https://{hosts['grafana']}/"
    )


# --- labels and versions ------------------------------------------------------------------


@pytest.mark.parametrize("target", target_names())
def test_every_object_carries_the_recommended_labels(
    rendered: dict[str, Rendered], target: str
) -> None:
    build = rendered[target]
    instance = "elibrary" if target == "base" else f"elibrary-{target.split('+')[0]}"
    for obj in build.objects:
        labels = obj["metadata"].get("labels", {})
        missing = [k for k in RECOMMENDED if k not in labels]
        assert missing == [], f"{obj['kind']} {obj['metadata']['name']}: {missing}"
        assert labels["app.kubernetes.io/part-of"] == "elibrary"
        assert labels["app.kubernetes.io/managed-by"] == "kustomize"
        assert labels["app.kubernetes.io/instance"] == instance
    for workload, metadata, _ in workloads(build):
        for key in RECOMMENDED:
            assert metadata["labels"].get(key) == workload["metadata"]["labels"][key], (
                f"{where(workload)}: pod label {key}"
            )


@pytest.mark.parametrize("target", target_names())
def test_versions_are_the_image_tags(rendered: dict[str, Rendered], target: str) -> None:
    """A workload's version is its image's tag; the app image's tag is the release, which
    every eLibrary object carries. Persistent volume claim templates carry no version: a
    StatefulSet cannot change them, so a release must not."""
    build = rendered[target]
    app = build.get("Deployment", "app")["spec"]["template"]["spec"]["containers"][0]
    release = app["image"].split(":", 1)[1]
    versions: dict[str, str] = {}
    for workload, _, pod in workloads(build):
        images = {c["image"] for c in containers(pod)}
        assert len(images) == 1, where(workload)
        tag = images.pop().split(":", 1)[1]
        name = workload["metadata"]["labels"][NAME]
        assert workload["metadata"]["labels"]["app.kubernetes.io/version"] == tag, where(workload)
        versions.setdefault(name, tag)
        for claim in workload["spec"].get("volumeClaimTemplates", []):
            assert "app.kubernetes.io/version" not in claim["metadata"].get("labels", {})
    versions["elibrary"] = release
    for obj in build.objects:
        labels = obj["metadata"]["labels"]
        expected = versions.get(labels[NAME])
        if expected is None:  # a loadtest object without pods of its own name
            expected = release
        assert labels["app.kubernetes.io/version"] == expected, (
            f"{obj['kind']} {obj['metadata']['name']}"
        )


def test_the_overlays_share_one_version_replacement() -> None:
    """It reads the version from the image's tag: a tag, never a digest, in an overlay (a
    digest would put "1.2.3@sha256" in a label, which the API refuses)."""
    blocks = {}
    for overlay in OVERLAYS:
        text = (K8S / "overlays" / overlay / "kustomization.yaml").read_text(encoding="utf-8")
        kustomization = yaml.safe_load(text)
        blocks[overlay] = kustomization["replacements"]
        (image,) = kustomization["images"]
        assert set(image) == {"name", "newTag"}, overlay
        assert re.fullmatch(r"[\w][\w.-]{0,62}", image["newTag"]), overlay
    assert blocks["dev"] == blocks["staging"] == blocks["prod"]
