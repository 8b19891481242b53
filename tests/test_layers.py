"""DESIGN.md "Layers": the import-linter contract holds and leaves no module of sre/ out."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO

CONTRACTS = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "importlinter"
]


def test_every_module_of_sre_sits_in_a_layer() -> None:
    named = {
        module
        for contract in CONTRACTS["contracts"]
        for layer in contract.get("layers", [])
        for module in re.split(r"\s*[|:]\s*", layer.strip("() "))
    }
    modules = {f"sre.{p.stem}" for p in (REPO / "sre").glob("*.py") if p.stem != "__init__"}
    assert modules - named == set(), "add the new module to a layer in pyproject.toml"


def test_the_layer_contract_is_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_dashboard_sources_import_only_the_dashboards_component() -> None:
    # import-linter skips "service.dashboard.py" (a dot too many for a module name), so the
    # layer rule for these files is checked here: dashboards/ and libraries, no component.
    import ast

    components = {"app", "exporter", "alerts", "slo", "loadtests", "sre"}
    sources = sorted((REPO / "dashboards").glob("*.dashboard.py"))
    assert len(sources) >= 5
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in components, f"{source.name} imports {name}"
