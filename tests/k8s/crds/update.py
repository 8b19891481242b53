"""Rewrite the CRD schemas beside this file from the Prometheus Operator's CRD manifests.

    python tests/k8s/crds/update.py PROMETHEUS_OPERATOR_CHECKOUT/example/prometheus-operator-crd

Each ``<kind>.json`` is the ``v1`` openAPIV3Schema of one CRD with its descriptions removed
(they are most of the bytes and no rule), and the source version recorded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CRDS = {
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
}


def strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main(source: Path) -> None:
    for kind, name in CRDS.items():
        crd = yaml.safe_load((source / name).read_text(encoding="utf-8"))
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        schema = strip(version["schema"]["openAPIV3Schema"])
        schema["x-source"] = {
            "file": f"example/prometheus-operator-crd/{name}",
            "operator.prometheus.io/version": crd["metadata"]["annotations"][
                "operator.prometheus.io/version"
            ],
        }
        text = json.dumps(schema, indent=1, sort_keys=True) + "\n"
        (HERE / f"{kind}.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
