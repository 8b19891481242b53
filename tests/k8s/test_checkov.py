"""checkov's Kubernetes checks pass on every rendered build, but for the skips of
.checkov/kubernetes.yaml: each explained, each still needed (a skip of a check that passes
anyway is stale and fails the test)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, lint_tool

SKIPS = REPO / ".checkov" / "kubernetes.yaml"


def checkov() -> str:
    return lint_tool("checkov", "checkov")


def start_checkov(folder: Path, *extra: str) -> subprocess.Popen[str]:
    args = ["--framework", "kubernetes", "-d", str(folder), "--skip-download", "--compact"]
    return subprocess.Popen(
        [checkov(), *args, "--quiet", "-o", "json", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )


def report_of(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode in (0, 1), stdout[-2000:] + stderr[-2000:]
    report = json.loads(stdout)
    assert isinstance(report, dict), "one framework gives one report"
    return report


def skips() -> list[dict[str, str]]:
    entries = yaml.safe_load(SKIPS.read_text(encoding="utf-8")) or []
    assert isinstance(entries, list)
    return entries


def test_every_skip_names_a_check_and_says_why() -> None:
    entries = skips()
    for entry in entries:
        assert set(entry) == {"id", "reason"}, entry
        assert re.fullmatch(r"CKV2?_K8S_\d+", entry["id"]), entry
        assert len(str(entry["reason"]).split()) >= 5, f"{entry['id']}: say why"
    ids = [entry["id"] for entry in entries]
    assert len(ids) == len(set(ids))


def test_checkov_finds_nothing_but_the_listed_skips(rendered_dir: Path) -> None:
    ids = [entry["id"] for entry in skips()]
    # both at once: the run with the skips, and the skipped checks alone without them
    main = start_checkov(rendered_dir, *(["--skip-check", ",".join(ids)] if ids else []))
    alone = start_checkov(rendered_dir, "--check", ",".join(ids)) if ids else None
    report = report_of(main)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({Path(c['file_path']).name}) {c['check_name']}"
        for c in report["results"].get("failed_checks", [])
    ]
    assert failed == []
    assert summary["parsing_errors"] == 0
    # every build is read (some 60 objects each; a workload alone has some 30 checks)
    builds = len(list(rendered_dir.glob("*.yaml")))
    assert summary["resource_count"] >= 60 * builds
    assert summary["passed"] >= 500 * builds
    skipped: list[str] = []
    if alone is not None:
        # each skipped check must still find something, or its skip is stale
        skipped = [c["check_id"] for c in report_of(alone)["results"].get("failed_checks", [])]
        assert set(ids) <= set(skipped), f"stale skips: {sorted(set(ids) - set(skipped))}"
    print(
        f"checkov: {summary['passed']} passed, {summary['failed']} failed, "
        f"{len(skipped)} skipped ({', '.join(ids)})"
    )
