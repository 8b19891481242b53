"""prometheus-client internals this project relies on, checked so that an upgrade fails here,
loudly, rather than in production (pyproject.toml bounds the version: raise the bound only
after these pass).

- app/metrics.py swaps ``values.ValueClass`` for ``MultiProcessValue`` with a cached pid;
- app/multiproc.py writes archive files with ``MmapedDict``/``mmap_key`` and merges with
  ``MultiProcessCollector.merge``;
- exporter/exposition.py formats numbers with ``utils.floatToGoString``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from prometheus_client import multiprocess, utils, values
from prometheus_client.mmap_dict import MmapedDict, mmap_key


def test_the_value_class_is_a_replaceable_module_attribute_built_from_a_pid_function() -> None:
    assert hasattr(values, "ValueClass")
    assert "process_identifier" in inspect.signature(values.MultiProcessValue).parameters
    value_class = values.MultiProcessValue(process_identifier=lambda: 4242)
    assert {"inc", "set", "get"} <= set(dir(value_class))


def test_mmap_files_are_written_and_merged_as_app_multiproc_expects(tmp_path: Path) -> None:
    key = mmap_key("c_total", "c_total", ["route"], ["/"], "Help.")
    store = MmapedDict(str(tmp_path / "counter_1.db"))
    store.write_value(key, 3.0, 0.0)
    store.close()
    merged = multiprocess.MultiProcessCollector.merge(
        [str(tmp_path / "counter_1.db")], accumulate=True
    )
    samples = [(s.name, s.labels, s.value) for m in merged for s in m.samples]
    assert ("c_total", {"route": "/"}, 3.0) in samples
    assert "accumulate" in inspect.signature(multiprocess.MultiProcessCollector.merge).parameters
    assert callable(multiprocess.mark_process_dead)


def test_go_style_float_formatting_is_available() -> None:
    assert utils.floatToGoString(1.0) == "1.0"
    assert utils.floatToGoString(float("inf")) == "+Inf"
