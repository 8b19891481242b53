"""prometheus-client multiprocess mode that stays fast when workers are recycled.

In plain multiprocess mode every worker that ever lived leaves ``counter_<pid>.db`` and
``histogram_<pid>.db`` behind (they must stay, or counters would go backwards), and every
scrape reads them all: with gunicorn's ``max_requests`` that is hundreds of files after a
day. Here the gunicorn master folds a dead worker's files into one archive generation as
the worker exits, so a scrape reads one file per live worker plus the archive.

Folding is made safe for concurrent scrapes by its order: write the new archive files,
then atomically replace ``archive/manifest.json`` (which names those files and the pids they
absorbed), and only then delete the dead worker's files. A scrape lists the worker files
first and reads the manifest second, so it counts each dead worker exactly once; a file
that vanishes between the two steps makes it start over.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = [
    "CompactingCollector",
    "fold_dead_worker",
    "prepare_directory",
]

_ARCHIVE = "archive"
_MANIFEST = "manifest.json"
# Gauges are per process by design (live* modes are deleted on death); only these add up.
_CUMULATIVE = ("counter", "histogram", "summary")
_COLLECT_DEADLINE_S = 5.0


def _file_type_and_pid(path: str) -> tuple[str, str]:
    parts = os.path.basename(path)[: -len(".db")].split("_")
    return parts[0], parts[-1]


def _has_header(path: str) -> bool:
    """Whether the file holds at least prometheus-client's 8-byte header. A worker's file
    exists empty for an instant between its open() and its truncate() to full size, and
    reading one then fails with struct.error (a worker's first scrape, or the master folding
    a worker that died while booting, crashed on it); an empty file holds no samples."""
    try:
        return os.path.getsize(path) >= 8
    except FileNotFoundError:
        return True  # folded meanwhile: the read fails and collect() starts over


def _read_manifest(directory: Path) -> dict[str, Any]:
    try:
        with open(directory / _ARCHIVE / _MANIFEST, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {"generation": 0, "files": [], "absorbed_pids": []}


class CompactingCollector(Collector):
    """Reads live worker files plus the archive of dead ones, like MultiProcessCollector."""

    def __init__(self, path: str, registry: CollectorRegistry | None = None) -> None:
        if not os.path.isdir(path):
            raise ValueError(f"metrics directory {path} does not exist")
        self._path = Path(path)
        if registry is not None:
            registry.register(self)

    def _files(self) -> list[str]:
        worker_files = [f for f in glob.glob(str(self._path / "*.db")) if _has_header(f)]
        manifest = _read_manifest(self._path)  # after the glob: see the module docstring
        absorbed = set(manifest["absorbed_pids"])
        files = [
            f
            for f in worker_files
            if not (
                _file_type_and_pid(f)[0] in _CUMULATIVE and _file_type_and_pid(f)[1] in absorbed
            )
        ]
        files.extend(str(self._path / _ARCHIVE / name) for name in manifest["files"])
        return files

    def collect(self) -> Iterable[Metric]:
        # A file that vanished was folded meanwhile; the next listing is consistent again.
        # Folds happen once per worker exit, so a retry is rare and the deadline generous.
        deadline = time.monotonic() + _COLLECT_DEADLINE_S
        while True:
            try:
                return list(MultiProcessCollector.merge(self._files(), accumulate=True))
            except FileNotFoundError:
                if time.monotonic() > deadline:
                    raise


def prepare_directory(path: str) -> None:
    """Create the directory, or empty it of what an earlier run left (only our files)."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    shutil.rmtree(directory / _ARCHIVE, ignore_errors=True)


def _archive_samples(metrics: Iterable[Metric]) -> Iterator[tuple[str, str, float]]:
    for metric in metrics:
        for sample in metric.samples:
            key = mmap_key(
                metric.name,
                sample.name,
                list(sample.labels.keys()),
                list(sample.labels.values()),
                metric.documentation,
            )
            yield metric.type, key, sample.value


def fold_dead_worker(path: str, pid: int) -> int:
    """Mark a worker dead and fold its cumulative files into the archive.

    Must be called from one process only (the gunicorn master). Returns how many worker
    files were folded.
    """
    mark_process_dead(pid, path)
    directory = Path(path)
    dead = [
        f
        for f in glob.glob(str(directory / f"*_{pid}.db"))
        if _file_type_and_pid(f)[0] in _CUMULATIVE and _has_header(f)
    ]
    if not dead:
        return 0
    archive = directory / _ARCHIVE
    archive.mkdir(exist_ok=True)
    manifest = _read_manifest(directory)
    previous = [str(archive / name) for name in manifest["files"]]
    merged = MultiProcessCollector.merge(previous + dead, accumulate=False)
    generation = int(manifest["generation"]) + 1

    by_type: dict[str, list[tuple[str, float]]] = {}
    for typ, key, value in _archive_samples(merged):
        by_type.setdefault(typ, []).append((key, value))
    names = []
    for typ, samples in sorted(by_type.items()):
        name = f"{typ}_g{generation}.db"
        tmp = archive / f".{name}.tmp"
        store = MmapedDict(str(tmp))
        for key, value in samples:
            store.write_value(key, value, 0.0)
        store.close()
        os.replace(tmp, archive / name)
        names.append(name)

    # Pids folded one generation ago have had their files deleted already; a scrape that
    # still lists one of those files finds it gone and starts over, so they can be dropped.
    new_manifest = {
        "generation": generation,
        "files": names,
        "absorbed_pids": [str(pid)],
        "previous_files": manifest["files"],
    }
    tmp_manifest = archive / f".{_MANIFEST}.tmp"
    tmp_manifest.write_text(json.dumps(new_manifest), encoding="utf-8")
    os.replace(tmp_manifest, archive / _MANIFEST)
    for f in dead:
        os.unlink(f)
    # Keep the generation just replaced for scrapes that read the old manifest a moment
    # ago; delete the one before it.
    for old in manifest.get("previous_files", []):
        if old not in names and old not in manifest["files"]:
            (archive / old).unlink(missing_ok=True)
    return len(dead)
