"""The generated artifacts reach their programs unchanged and where those look for them:
Prometheus' rule files and scrape jobs (the job names every rule selects on), Alertmanager's
secret files and template, Grafana's datasource and dashboards. And no secret is committed."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from sre.cli import all_artifacts
from sre.conventions import APP_JOB, EXPORTER_JOB
from tests.conftest import IN_CI, REPO, require_tool
from tests.k8s.conftest import K8S, Rendered, built, containers, pod_specs

GENERATED_PREFIX = "k8s/base/generated/"
#: the hand-written files the base's ConfigMaps read (everything else comes from generated/)
HAND_WRITTEN = {"monitoring/prometheus.yml", "mysql/initdb/10-elibrary-users.sh", "mysql/backup.sh"}


@cache
def generated() -> dict[str, str]:
    """`sre generate`'s files under k8s/base/generated/: relative path → text."""
    return {
        path.removeprefix(GENERATED_PREFIX): text
        for path, text in all_artifacts().items()
        if path.startswith(GENERATED_PREFIX)
    }


def base_kustomization() -> dict[str, Any]:
    return dict(yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text(encoding="utf-8")))


def generator_files(entry: dict[str, Any]) -> dict[str, str]:
    """key → file of one generator's files: list (``key=path`` or ``path``)."""
    files = {}
    for item in entry.get("files", []):
        key, _, path = item.rpartition("=")
        files[key or PurePosixPath(path).name] = path
    return files


def mount(pod: dict[str, Any], container: dict[str, Any], volume: str) -> str:
    (path,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume]
    return str(path)


def volume_config_maps(pod: dict[str, Any], volume: str) -> list[str]:
    """The ConfigMap generator names behind a volume (projected or not)."""
    (spec,) = [v for v in pod["volumes"] if v["name"] == volume]
    if "configMap" in spec:
        return [spec["configMap"]["name"].rsplit("-", 1)[0]]
    return [s["configMap"]["name"].rsplit("-", 1)[0] for s in spec["projected"]["sources"]]


# --- every generated file, byte for byte, from generated/ ----------------------------------


def test_every_generated_file_feeds_exactly_one_config_map() -> None:
    assert generated(), "sre generate writes nothing under k8s/base/generated/"
    used: dict[str, str] = {}
    for entry in base_kustomization()["configMapGenerator"]:
        for path in generator_files(entry).values():
            if path.startswith("generated/"):
                assert path.removeprefix("generated/") in generated(), f"{path}: not generated"
                assert path not in used, f"{path} in {used.get(path)} and {entry['name']}"
                used[path] = entry["name"]
            else:
                assert path in HAND_WRITTEN, f"{entry['name']}: {path} is outside generated/"
    assert {p.removeprefix("generated/") for p in used} == set(generated())


def test_the_config_maps_hold_the_generated_bytes(rendered: dict[str, Rendered]) -> None:
    build = rendered["prod"]
    for entry in base_kustomization()["configMapGenerator"]:
        for key, path in generator_files(entry).items():
            data = build.get("ConfigMap", entry["name"])["data"]
            if path.startswith("generated/"):
                assert data[key] == generated()[path.removeprefix("generated/")], path
            else:
                assert data[key] == (K8S / "base" / path).read_text(encoding="utf-8"), path


def test_the_operator_component_applies_the_generated_prometheus_rules() -> None:
    folder = K8S / "components" / "prometheus-operator"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    rules = [r for r in kustomization["resources"] if r.startswith("prometheusrule-")]
    assert rules == ["prometheusrule-alerts.yaml", "prometheusrule-slos.yaml"]
    artifacts = all_artifacts()
    for name in rules:
        path = f"k8s/components/prometheus-operator/{name}"
        assert path in artifacts, f"{path} is not written by `sre generate`"
    base = base_kustomization()
    assert not any(r.startswith("prometheusrule-") for r in base["resources"]), (
        "the base runs its own Prometheus: PrometheusRules need the operator's CRDs"
    )


# --- Prometheus -----------------------------------------------------------------------------


def prometheus(build: Rendered) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(prometheus.yml, pod spec, container)."""
    pod = build.get("StatefulSet", "prometheus")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    text = build.get("ConfigMap", "prometheus-config")["data"]["prometheus.yml"]
    return yaml.safe_load(text), pod, container


def flag(container: dict[str, Any], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in container["args"] if a.startswith(f"{name}=")]
    return str(value)


def test_prometheus_scrapes_the_jobs_every_rule_selects_on(rendered: dict[str, Rendered]) -> None:
    build = rendered["prod"]
    config, _, _ = prometheus(build)
    assert config["global"]["scrape_interval"] == "15s"
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    pods = {
        m["labels"]["app.kubernetes.io/name"]: s for w in build.objects for m, s in pod_specs(w)
    }
    for job, pod_name in ((APP_JOB, "elibrary-app"), (EXPORTER_JOB, "elibrary-exporter")):
        relabel = jobs[job]["relabel_configs"]
        keep = {r["source_labels"][0]: r["regex"] for r in relabel if r.get("action") == "keep"}
        assert keep["__meta_kubernetes_pod_label_app_kubernetes_io_name"] == pod_name
        port_names = {p["name"] for c in containers(pods[pod_name]) for p in c.get("ports", [])}
        assert keep["__meta_kubernetes_pod_container_port_name"] in port_names
        (sd,) = jobs[job]["kubernetes_sd_configs"]
        # the fields of Prometheus 2.42's kubernetes_sd_config these use
        # (discovery/kubernetes/kubernetes.go: role, namespaces.own_namespace, selectors)
        assert sd["role"] == "pod"
        assert sd["namespaces"] == {"own_namespace": True}
        assert {tuple(sorted(s)) for s in sd["selectors"]} == {("label", "role")}
        assert pod_name in sd["selectors"][0]["label"]
    assert {"prometheus", "alertmanager"} <= set(jobs)
    (alerting,) = config["alerting"]["alertmanagers"]
    assert alerting["static_configs"] == [{"targets": ["alertmanager:9093"]}]


def test_prometheus_loads_the_generated_rule_files(rendered: dict[str, Rendered]) -> None:
    build = rendered["prod"]
    config, pod, container = prometheus(build)
    rule_files = [PurePosixPath(p) for p in config["rule_files"]]
    expected = sorted(name for name in generated() if name.endswith(".rules.yaml"))
    assert sorted(p.name for p in rule_files) == expected
    assert {str(p.parent) for p in rule_files} == {mount(pod, container, "rules")}
    assert volume_config_maps(pod, "rules") == ["prometheus-rules"]
    assert sorted(build.get("ConfigMap", "prometheus-rules")["data"]) == expected
    config_file = PurePosixPath(flag(container, "--config.file"))
    assert str(config_file.parent) == mount(pod, container, "config")
    assert config_file.name in build.get("ConfigMap", "prometheus-config")["data"]
    assert flag(container, "--storage.tsdb.retention.time") == "200h"
    assert flag(container, "--storage.tsdb.path") == mount(pod, container, "data")
    assert container["image"] == "prom/prometheus:v2.42.0"


def test_promtool_accepts_the_configuration_and_its_rules(
    rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    """Debian's promtool is built without Kubernetes discovery: the pod discovery becomes a
    static target here (its fields are checked above against Prometheus 2.42's)."""
    promtool = require_tool("promtool", "prometheus")
    config, _, _ = prometheus(rendered["prod"])
    rules = []
    for path in config["rule_files"]:
        local = tmp_path / PurePosixPath(path).name
        local.write_text(generated()[local.name], encoding="utf-8")
        rules.append(str(local))
    config["rule_files"] = rules
    for job in config["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": ["127.0.0.1:1"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    done = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") >= 1 + len(rules)


# --- Alertmanager ---------------------------------------------------------------------------


def test_alertmanager_finds_its_config_template_and_secret_files(
    rendered: dict[str, Rendered],
) -> None:
    build = rendered["prod"]
    pod = build.get("StatefulSet", "alertmanager")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config_file = PurePosixPath(flag(container, "--config.file"))
    assert str(config_file.parent) == mount(pod, container, "config")
    config = yaml.safe_load(build.get("ConfigMap", "alertmanager-config")["data"][config_file.name])
    assert config == yaml.safe_load(generated()["alertmanager.yml"])

    files: set[PurePosixPath] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("_file") and isinstance(value, str):
                    files.add(PurePosixPath(value))
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(config)
    secrets_dir = mount(pod, container, "secrets")
    assert {str(f.parent) for f in files} == {secrets_dir}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "secrets"]
    secret = build.get("Secret", volume["secret"]["secretName"].rsplit("-", 1)[0])
    assert {f.name for f in files} == set(secret["data"])
    assert {f.name for f in files} == {
        "slack-incidents-url",
        "slack-alerts-url",
        "slack-info-url",
        "pagerduty-routing-key",
    }
    (template,) = [PurePosixPath(t) for t in config["templates"]]
    assert str(template.parent) == mount(pod, container, "templates")
    templates = build.get("ConfigMap", "alertmanager-templates")["data"]
    assert templates[template.name] == generated()["elibrary.tmpl"]


# --- Grafana --------------------------------------------------------------------------------


def test_grafana_provisions_the_generated_datasource_and_dashboards(
    rendered: dict[str, Rendered],
) -> None:
    build = rendered["prod"]
    pod = build.get("Deployment", "grafana")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    provisioning = PurePosixPath(env["GF_PATHS_PROVISIONING"])
    assert mount(pod, container, "datasources") == str(provisioning / "datasources")
    assert mount(pod, container, "dashboard-providers") == str(provisioning / "dashboards")

    datasources = build.get("ConfigMap", "grafana-datasources")["data"]
    (source,) = yaml.safe_load(datasources["prometheus.yaml"])["datasources"]
    assert (source["url"], source["uid"]) == ("http://prometheus:9090", "prometheus")
    (port,) = build.get("Service", "prometheus")["spec"]["ports"]
    assert port["port"] == 9090

    providers = build.get("ConfigMap", "grafana-dashboard-providers")["data"]
    (provider,) = yaml.safe_load(providers["elibrary.yaml"])["providers"]
    folder = PurePosixPath(provider["options"]["path"])
    assert provider["options"]["foldersFromFilesStructure"] is True
    dashboards_dir = PurePosixPath(mount(pod, container, "dashboards"))
    assert dashboards_dir == folder / "eLibrary"
    assert str(folder).startswith(mount(pod, container, "data"))

    mounted = {}
    for name in volume_config_maps(pod, "dashboards"):
        mounted.update(build.get("ConfigMap", name)["data"])
    expected = {
        PurePosixPath(p).name: text
        for p, text in generated().items()
        if p.startswith("grafana/dashboards/")
    }
    assert len(expected) == 5
    assert mounted == expected
    assert container["image"].startswith("grafana/grafana:11.6.")


# --- secrets --------------------------------------------------------------------------------


def committed_files() -> list[Path]:
    """Files under k8s/ that git tracks or would add (not ignored)."""
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "k8s"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if done.returncode != 0:
        if IN_CI:
            pytest.fail(f"CI runs in a git clone: {done.stderr.strip()}")
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    return [REPO / line for line in done.stdout.splitlines() if (REPO / line).is_file()]


def test_no_secret_value_is_committed() -> None:
    files = committed_files()
    assert files
    for path in files:
        relative = path.relative_to(K8S)
        if relative.parts[:2] == ("base", "secrets"):
            assert path.name.endswith(".example"), f"{relative} would be committed"
        if path.suffix in (".yaml", ".yml"):
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if isinstance(doc, dict) and doc.get("kind") == "Secret":
                    raise AssertionError(f"{relative}: a Secret object; use a secretGenerator")


def test_the_real_secret_files_are_ignored_by_git() -> None:
    names = [
        "k8s/base/secrets/mysql.env",
        "k8s/base/secrets/exporter.my.cnf",
        "k8s/base/secrets/anything-new.env",
    ]
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *names],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if done.returncode == 128:
        if IN_CI:
            pytest.fail(f"CI runs in a git clone: {done.stderr.strip()}")
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    assert done.stdout.split() == names
    kept = subprocess.run(
        ["git", "check-ignore", "--no-index", "k8s/base/secrets/mysql.env.example"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert kept.returncode == 1, "the examples must be committed"


def example_keys(path: Path) -> list[str]:
    keys = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith(("#", "[")):
            continue
        key, separator, value = line.partition("=")
        assert separator, f"{path.name}: {line!r}"
        if path.suffix == ".example" and ".env" in path.name:
            assert value == "", f"{path.name}: {key.strip()} has a value: names only"
        keys.append(key.strip())
    return keys


def test_every_secret_comes_from_a_git_ignored_file_and_its_example_lists_the_keys(
    rendered: dict[str, Rendered], rendered_dir: Path
) -> None:
    made = rendered_dir.parent / "k8s" / "base" / "secrets"  # by make-secrets --placeholders
    generators = base_kustomization()["secretGenerator"]
    names = set()
    for entry in generators:
        names.add(entry["name"])
        sources = [*entry.get("envs", []), *generator_files(entry).values()]
        assert sources
        for source in sources:
            assert source.startswith("secrets/"), f"{entry['name']}: {source}"
            example = K8S / "base" / f"{source}.example"
            assert example.is_file(), f"{source}: no {example.name} beside it"
            assert example_keys(example) == example_keys(made / PurePosixPath(source).name)
        if "envs" in entry:
            data = rendered["prod"].get("Secret", entry["name"])["data"]
            (env,) = entry["envs"]
            assert sorted(data) == sorted(example_keys(K8S / "base" / f"{env}.example"))
    for build in built(rendered).values():
        found = {s["metadata"]["name"].rsplit("-", 1)[0] for s in build.of_kind("Secret")}
        assert found == names, build.target
    cnf = (K8S / "base" / "secrets" / "exporter.my.cnf.example").read_text(encoding="utf-8")
    assert "password =\n" in cnf
