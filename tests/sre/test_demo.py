"""``sre demo``: the main job, end to end on the real stack, and everything stopped after."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from sre.stack import SRE
from tests.conftest import require_tool


def _no_leftovers(workdir: Path) -> None:
    """No process started by the demo survives it (they all ran from files in workdir)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
        left = [line for line in ps.stdout.splitlines() if str(workdir) in line]
        if not left:
            return
        time.sleep(0.5)
    raise AssertionError(f"still running after the demo: {left}")


@pytest.mark.integration
def test_the_demo_with_injected_errors_fails_the_gate_and_pages_slack(tmp_path: Path) -> None:
    require_tool("prometheus", "prometheus")
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [SRE, "demo", "--fault", "errors", "--run-time", "40", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "requests-availability" in output
    assert "slack /incidents" in output or "slack #elibrary-incidents" in output, output
    assert (workdir / "gate" / "gate.xml").is_file()
    assert (workdir / "loadtest" / "locust_requests.csv").is_file()
    # every dashboard panel drawn from the run's data
    assert f"dashboards: {workdir / 'dashboards' / 'index.html'}" in output
    assert len(list((workdir / "dashboards" / "elibrary-service").glob("*.png"))) > 10
    _no_leftovers(workdir)
