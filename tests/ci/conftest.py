"""What the pipeline tests share: the workflow files and the lint tools they run.

The tools are Python packages (dev dependencies), so they are looked for beside the
interpreter first; without one the test skips, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def load_workflow(path: Path) -> dict[str, Any]:
    """A workflow as YAML 1.1 reads it, with the ``on`` key kept as the string ``on``."""
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    if True in data:  # YAML 1.1 reads the bare key `on` as the boolean true
        data["on"] = data.pop(True)
    return data
