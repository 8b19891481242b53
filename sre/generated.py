"""Committed generated files: write them atomically, or say which ones are stale."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["REPO_ROOT", "stale_files", "write_files"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def stale_files(artifacts: Mapping[str, str], root: Path = REPO_ROOT) -> list[str]:
    """Paths whose committed content differs from what generation gives now."""
    stale = []
    for path, content in sorted(artifacts.items()):
        target = root / path
        if not target.is_file() or target.read_text(encoding="utf-8") != content:
            stale.append(path)
    return stale


def write_files(artifacts: Mapping[str, str], root: Path = REPO_ROOT) -> list[str]:
    """Write every file whose content changed (temp file + rename: never half-written)."""
    written = []
    for path in stale_files(artifacts, root):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(artifacts[path])
        os.replace(tmp, target)
        written.append(path)
    return written
