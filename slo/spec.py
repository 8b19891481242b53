"""Load SLO specs from any of the three formats into the frozen model, checking everything.

- Sloth ``version: prometheus/v1`` files, unchanged (snake_case keys);
- Sloth's Kubernetes ``PrometheusServiceLevel`` (``sloth.slok.dev/v1``, camelCase keys);
- OpenSLO ``kind: SLO`` documents, ``openslo/v1`` (``ratioMetric`` with good or bad over
  total) and ``openslo/v1alpha`` (Sloth's ``ratioMetrics``).

Files may hold several YAML documents; directories are searched for ``*.yaml``/``*.yml``.
Every problem in every file is collected and raised together as one :class:`SpecError`,
each as ``file: slos[i].field: problem``. The project's extension ``gate:`` (DESIGN.md)
is read from each SLO entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from slo.errors import SpecError
from slo.model import (
    SLO,
    AlertMeta,
    EventsSLI,
    GateBaseline,
    GateSpec,
    PeriodWindows,
    RawSLI,
    SpecDocument,
)
from sre.durations import format_duration

__all__ = [
    "DEFAULT_PERIOD_S",
    "SPECS_DIR",
    "WINDOW_VARIABLE",
    "load_specs",
    "render_query",
    "spec_files",
]

SPECS_DIR = Path(__file__).resolve().parent / "specs"
DEFAULT_PERIOD_S = 30 * 86400
#: how a query marks where its range goes: ``{{.window}}`` or ``{{ .window }}`` (Sloth's rule)
WINDOW_VARIABLE = re.compile(r"{{ *\.window *}}")
_ANY_ACTION = re.compile(r"{{.*?}}", re.DOTALL)
_NAME = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ALERT_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_REQUEST_NAME = re.compile(r"^[A-Z]+ /\S*$")

_SLOTH_KEYS = {
    "top": ("version", "service", "labels", "slo_plugins", "slos"),
    "slo": ("name", "description", "objective", "plugins", "labels", "sli", "alerting", "gate"),
    "sli": ("raw", "events", "plugin"),
    "raw": ("error_ratio_query",),
    "events": ("error_query", "total_query"),
    "alerting": ("name", "labels", "annotations", "page_alert", "ticket_alert"),
    "alert": ("disable", "labels", "annotations"),
    "page_alert": "page_alert",
    "ticket_alert": "ticket_alert",
    "error_ratio_query": "error_ratio_query",
    "error_query": "error_query",
    "total_query": "total_query",
    "slo_plugins": "slo_plugins",
}
_K8S_KEYS = {
    "top": ("service", "labels", "sloPlugins", "slos"),
    "slo": ("name", "description", "objective", "plugins", "labels", "sli", "alerting", "gate"),
    "sli": ("raw", "events", "plugin"),
    "raw": ("errorRatioQuery",),
    "events": ("errorQuery", "totalQuery"),
    "alerting": ("name", "labels", "annotations", "pageAlert", "ticketAlert"),
    "alert": ("disable", "labels", "annotations"),
    "page_alert": "pageAlert",
    "ticket_alert": "ticketAlert",
    "error_ratio_query": "errorRatioQuery",
    "error_query": "errorQuery",
    "total_query": "totalQuery",
    "slo_plugins": "sloPlugins",
}
_OBJECTIVE_KEYS = (
    *("displayName", "op", "value", "target", "targetPercent", "timeSliceTarget"),
    *("timeSliceWindow", "indicator", "compositeWeight", "ratioMetrics"),
)
_GATE_KEYS = ("requests", "min_requests", "max_error_ratio", "max_p95_seconds", "baseline")
_BASELINE_KEYS = ("max_p95_increase", "max_error_ratio_increase")
# Sloth's mapping of an OpenSLO good/total ratio to an error-ratio query, kept verbatim so
# the rules match what Sloth generates for the same OpenSLO file.
_GOOD_OVER_TOTAL = """
  1 - (
    (
      {good}
    )
    /
    (
      {total}
    )
  )
"""


def spec_files(paths: Iterable[Path]) -> list[Path]:
    """The spec files named, with directories searched recursively; SpecError if missing."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
            if not found:
                raise SpecError(str(path), None, "holds no spec file (*.yaml, *.yml)")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise SpecError(str(path), None, "no such file or directory")
    return files


def load_specs(
    paths: Sequence[Path],
    period_s: int = DEFAULT_PERIOD_S,
    catalog: dict[int, PeriodWindows] | None = None,
) -> list[SpecDocument]:
    """Every document of every spec file, validated; all problems raised at once.

    ``period_s`` is the SLO period for specs that do not state one (Sloth's
    ``--default-slo-period``); ``catalog`` the alert windows per period, used to reject a
    period that has none.
    """
    documents: list[SpecDocument] = []
    problems: list[SpecError] = []
    for path in spec_files(paths):
        reader = _Reader(str(path), problems)
        documents.extend(reader.read_file(path, period_s))
    seen: dict[str, str] = {}
    for document in documents:
        for slo in document.slos:
            where = f"{document.file}: {slo.entry}"
            if slo.id in seen:
                also = f'SLO id "{slo.id}" is also defined at {seen[slo.id]}'
                problems.append(SpecError(document.file, f"{slo.entry}.name", also))
            seen.setdefault(slo.id, where)
            if catalog is not None and slo.period_s not in catalog:
                known = ", ".join(format_duration(p) for p in sorted(catalog))
                problems.append(
                    SpecError(
                        document.file,
                        slo.entry,
                        f"no alert windows for an SLO period of {format_duration(slo.period_s)}"
                        f" (the catalog has: {known})",
                    )
                )
    if problems:
        first, rest = problems[0], problems[1:]
        raise SpecError(first.file, first.entry, first.problem, rest)
    return documents


def render_query(query: str, window_s: int) -> str:
    """The query with its window variable replaced by a Prometheus duration."""
    return WINDOW_VARIABLE.sub(format_duration(window_s), query)


class _Reader:
    """Walks one file's documents, collecting problems instead of stopping at the first."""

    def __init__(self, file: str, problems: list[SpecError]) -> None:
        self.file = file
        self.problems = problems
        self.prefix = ""

    def problem(self, entry: str, text: str) -> None:
        self.problems.append(SpecError(self.file, self.prefix + entry, text))

    def read_file(self, path: Path, period_s: int) -> list[SpecDocument]:
        try:
            raw_documents = [
                d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None
            ]
        except yaml.YAMLError as exc:
            self.problems.append(SpecError(self.file, None, _yaml_problem(exc)))
            return []
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(SpecError(self.file, None, f"cannot be read: {exc}"))
            return []
        if not raw_documents:
            self.problems.append(SpecError(self.file, None, "holds no SLO spec"))
            return []
        documents = []
        for index, data in enumerate(raw_documents):
            self.prefix = f"documents[{index}]." if len(raw_documents) > 1 else ""
            document = self.read_document(data, period_s)
            if document is not None:
                documents.append(document)
        return documents

    # --- formats ---------------------------------------------------------------------

    def read_document(self, data: Any, period_s: int) -> SpecDocument | None:
        if not isinstance(data, dict):
            self.problem("", "a spec document must be a YAML mapping")
            return None
        api, kind = data.get("apiVersion"), data.get("kind")
        if data.get("version") == "prometheus/v1":
            return self.read_sloth(data, period_s)
        if api == "sloth.slok.dev/v1" and kind == "PrometheusServiceLevel":
            return self.read_k8s(data, period_s)
        if api in ("openslo/v1", "openslo/v1alpha") and kind == "SLO":
            return self.read_openslo(data, period_s, api)
        found = f"version {data['version']!r}" if "version" in data else f"{api!r} {kind!r}"
        self.problem(
            "version" if "version" in data else "apiVersion",
            f"unknown spec type {found}; expected version: prometheus/v1 (Sloth), apiVersion "
            "sloth.slok.dev/v1 kind PrometheusServiceLevel, or apiVersion openslo/v1 kind SLO",
        )
        return None

    def read_sloth(self, data: dict[str, Any], period_s: int) -> SpecDocument:
        return SpecDocument(
            self.file, "prometheus/v1", tuple(self.read_slos(data, "", _SLOTH_KEYS, period_s))
        )

    def read_k8s(self, data: dict[str, Any], period_s: int) -> SpecDocument:
        self.keys(data, "", ("apiVersion", "kind", "metadata", "spec", "status"))
        metadata = self.mapping(data.get("metadata"), "metadata") or {}
        name = self.string(metadata.get("name"), "metadata.name", required=True)
        namespace = self.string(metadata.get("namespace"), "metadata.namespace")
        labels = self.string_map(metadata.get("labels"), "metadata.labels")
        annotations = self.string_map(metadata.get("annotations"), "metadata.annotations")
        spec = self.mapping(data.get("spec"), "spec", required=True) or {}
        slos = self.read_slos(spec, "spec.", _K8S_KEYS, period_s)
        return SpecDocument(
            self.file, "sloth.slok.dev/v1", tuple(slos), name, namespace, labels, annotations
        )

    def read_slos(
        self, top: dict[str, Any], at: str, keys: dict[str, Any], period_s: int
    ) -> list[SLO]:
        self.keys(top, at.rstrip("."), keys["top"] + (("version",) if not at else ()))
        service = self.name(top.get("service"), f"{at}service")
        labels = self.labels(top.get("labels"), f"{at}labels")
        if top.get(keys["slo_plugins"]):
            self.problem(
                f"{at}{keys['slo_plugins']}",
                f"Sloth SLO plugins cannot run here ({self.plugin_ids(top[keys['slo_plugins']])})",
            )
        entries = top.get("slos")
        if not isinstance(entries, list) or not entries:
            self.problem(f"{at}slos", "at least one SLO is required")
            return []
        slos = []
        for i, entry in enumerate(entries):
            slo = self.read_slo(entry, f"{at}slos[{i}]", keys, service, labels, period_s)
            if slo is not None:
                slos.append(slo)
        return slos

    def read_slo(
        self,
        entry: Any,
        at: str,
        keys: dict[str, Any],
        service: str,
        group_labels: dict[str, str],
        period_s: int,
    ) -> SLO | None:
        entry = self.mapping(entry, at, required=True)
        if entry is None:
            return None
        before = len(self.problems)
        self.keys(entry, at, keys["slo"])
        name = self.name(entry.get("name"), f"{at}.name")
        objective = self.objective(entry.get("objective"), f"{at}.objective")
        description = self.string(entry.get("description"), f"{at}.description")
        labels = {**group_labels, **self.labels(entry.get("labels"), f"{at}.labels")}
        if entry.get("plugins"):
            self.problem(
                f"{at}.plugins",
                f"Sloth SLO plugins cannot run here ({self.plugin_ids(entry['plugins'])})",
            )
        sli = self.read_sli(entry.get("sli"), f"{at}.sli", keys)
        page, ticket = self.read_alerting(entry.get("alerting"), f"{at}.alerting", keys)
        gate = self.read_gate(entry.get("gate"), f"{at}.gate")
        if len(self.problems) > before or sli is None:
            return None
        return SLO(
            id=f"{service}-{name}",
            name=name,
            service=service,
            objective=objective,
            period_s=period_s,
            sli=sli,
            description=description,
            labels=labels,
            page_alert=page,
            ticket_alert=ticket,
            gate=gate,
            entry=self.prefix + at,
        )

    def read_sli(self, raw: Any, at: str, keys: dict[str, Any]) -> EventsSLI | RawSLI | None:
        sli = self.mapping(raw, at, required=True)
        if sli is None:
            return None
        self.keys(sli, at, keys["sli"])
        kinds = [k for k in ("events", "raw", "plugin") if sli.get(k) is not None]
        if "plugin" in kinds:
            plugin = sli["plugin"] if isinstance(sli["plugin"], dict) else {}
            self.problem(
                f"{at}.plugin",
                f"Sloth SLI plugins cannot run here (plugin id {plugin.get('id')!r}); "
                "write the SLI as events (error and total queries) or a raw error-ratio query",
            )
            return None
        if len(kinds) != 1:
            self.problem(at, "needs exactly one of events or raw")
            return None
        if kinds[0] == "raw":
            raw_sli = self.mapping(sli["raw"], f"{at}.raw") or {}
            self.keys(raw_sli, f"{at}.raw", keys["raw"])
            key = keys["error_ratio_query"]
            query = self.query(raw_sli.get(key), f"{at}.raw.{key}")
            return RawSLI(query) if query else None
        events = self.mapping(sli["events"], f"{at}.events") or {}
        self.keys(events, f"{at}.events", keys["events"])
        error_key, total_key = keys["error_query"], keys["total_query"]
        error = self.query(events.get(error_key), f"{at}.events.{error_key}")
        total = self.query(events.get(total_key), f"{at}.events.{total_key}")
        if error and total and error.strip() == total.strip():
            self.problem(f"{at}.events.{total_key}", "is the same query as the error query")
            return None
        return EventsSLI(error, total) if error and total else None

    def read_alerting(
        self, raw: Any, at: str, keys: dict[str, Any]
    ) -> tuple[AlertMeta | None, AlertMeta | None]:
        alerting = self.mapping(raw, at) or {}
        self.keys(alerting, at, keys["alerting"])
        name = alerting.get("name")
        labels = self.labels(alerting.get("labels"), f"{at}.labels")
        annotations = self.annotations(alerting.get("annotations"), f"{at}.annotations")
        metas: list[AlertMeta | None] = []
        for which in ("page_alert", "ticket_alert"):
            key = keys[which]
            alert = self.mapping(alerting.get(key), f"{at}.{key}") or {}
            self.keys(alert, f"{at}.{key}", keys["alert"])
            disable = alert.get("disable", False)
            if not isinstance(disable, bool):
                self.problem(f"{at}.{key}.disable", "must be true or false")
            if disable:
                metas.append(None)
                continue
            if not isinstance(name, str) or not name:
                self.problem(
                    f"{at}.name",
                    f"required while {key} is enabled (or set {key}.disable: true)",
                )
                metas.append(None)
                continue
            if not _ALERT_NAME.match(name):
                self.problem(f"{at}.name", f"{name!r} is not a valid Prometheus alert name")
            metas.append(
                AlertMeta(
                    name,
                    {**labels, **self.labels(alert.get("labels"), f"{at}.{key}.labels")},
                    {
                        **annotations,
                        **self.annotations(alert.get("annotations"), f"{at}.{key}.annotations"),
                    },
                )
            )
        return metas[0], metas[1]

    def read_gate(self, raw: Any, at: str) -> GateSpec | None:
        if raw is None:
            return None
        gate = self.mapping(raw, at)
        if gate is None:
            return None
        self.keys(gate, at, _GATE_KEYS)
        requests = gate.get("requests", [])
        if isinstance(requests, str):
            requests = [requests]
        if not isinstance(requests, list) or not all(
            isinstance(r, str) and _REQUEST_NAME.match(r) for r in requests
        ):
            self.problem(f"{at}.requests", 'must be request names such as "POST /api/loans"')
            requests = []
        min_requests = gate.get("min_requests", 100)
        if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 1:
            self.problem(f"{at}.min_requests", "must be a whole number of at least 1")
        max_error_ratio = self.fraction(gate.get("max_error_ratio"), f"{at}.max_error_ratio")
        max_p95 = self.positive(gate.get("max_p95_seconds"), f"{at}.max_p95_seconds")
        if max_error_ratio is None and max_p95 is None:
            self.problem(at, "needs max_error_ratio or max_p95_seconds (or both)")
        baseline = None
        if gate.get("baseline") is not None:
            raw_baseline = self.mapping(gate["baseline"], f"{at}.baseline") or {}
            self.keys(raw_baseline, f"{at}.baseline", _BASELINE_KEYS)
            baseline = GateBaseline(
                self.positive(
                    raw_baseline.get("max_p95_increase"), f"{at}.baseline.max_p95_increase", True
                ),
                self.fraction(
                    raw_baseline.get("max_error_ratio_increase"),
                    f"{at}.baseline.max_error_ratio_increase",
                ),
            )
        return GateSpec(
            tuple(requests),
            min_requests if isinstance(min_requests, int) else 100,
            max_error_ratio,
            max_p95,
            baseline,
        )

    def read_openslo(self, data: dict[str, Any], period_s: int, api: str) -> SpecDocument | None:
        self.keys(data, "", ("apiVersion", "kind", "metadata", "spec"))
        metadata = self.mapping(data.get("metadata"), "metadata", required=True) or {}
        self.keys(metadata, "metadata", ("name", "displayName", "labels", "annotations"))
        name = self.name(metadata.get("name"), "metadata.name")
        spec = self.mapping(data.get("spec"), "spec", required=True) or {}
        v1 = api == "openslo/v1"
        allowed: tuple[str, ...]
        common = ("description", "service", "budgetingMethod", "objectives")
        if v1:
            allowed = (*common, "indicator", "indicatorRef", "timeWindow", "alertPolicies")
        else:
            allowed = (*common, "timeWindows")
        self.keys(spec, "spec", allowed)
        service = self.name(spec.get("service"), "spec.service")
        description = self.string(spec.get("description"), "spec.description")
        method = spec.get("budgetingMethod", "Occurrences")
        if method != "Occurrences":
            self.problem("spec.budgetingMethod", f"{method!r} is not supported (only Occurrences)")
        if spec.get("alertPolicies"):
            self.problem(
                "spec.alertPolicies",
                "not supported: alerts come from the burn-rate windows; use a Sloth spec to "
                "name page and ticket alerts",
            )
        slo_period = self.openslo_period(spec, v1, period_s)
        shared_sli = self.openslo_indicator(spec) if v1 else None
        objectives = spec.get("objectives")
        if not isinstance(objectives, list) or not objectives:
            self.problem("spec.objectives", "at least one objective is required")
            return None
        before = len(self.problems)
        slos = []
        for i, objective in enumerate(objectives):
            at = f"spec.objectives[{i}]"
            entry = self.mapping(objective, at, required=True) or {}
            self.keys(
                entry,
                at,
                _OBJECTIVE_KEYS,
            )
            target = self.openslo_target(entry, at)
            sli = shared_sli if v1 else self.openslo_ratio_metrics(entry.get("ratioMetrics"), at)
            if sli is None or target is None:
                continue
            slos.append(
                SLO(
                    id=f"{service}-{name}-{i}",
                    name=f"{name}-{i}",
                    service=service,
                    objective=target,
                    period_s=slo_period,
                    sli=sli,
                    description=description,
                    entry=self.prefix + at,
                )
            )
        if len(self.problems) > before:
            return None
        return SpecDocument(self.file, api, tuple(slos))

    def openslo_period(self, spec: dict[str, Any], v1: bool, period_s: int) -> int:
        key = "timeWindow" if v1 else "timeWindows"
        windows = spec.get(key)
        if windows is None:
            return period_s
        if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
            self.problem(f"spec.{key}", "must hold exactly one time window")
            return period_s
        window = windows[0]
        if v1:
            self.keys(window, f"spec.{key}[0]", ("duration", "isRolling", "calendar"))
            duration = str(window.get("duration", ""))
            match = re.fullmatch(r"(\d+)([dw])", duration)
            if window.get("calendar") or window.get("isRolling") is False or not match:
                self.problem(
                    f"spec.{key}[0]", "only a rolling window of whole days or weeks is supported"
                )
                return period_s
            return int(match.group(1)) * (7 if match.group(2) == "w" else 1) * 86400
        self.keys(window, f"spec.{key}[0]", ("count", "unit", "isRolling", "calendar"))
        count = window.get("count")
        if str(window.get("unit", "")).lower() != "day" or not isinstance(count, int) or count < 1:
            self.problem(f"spec.{key}[0]", "only a count of days (unit: Day) is supported")
            return period_s
        return count * 86400

    def openslo_target(self, entry: dict[str, Any], at: str) -> float | None:
        if "targetPercent" in entry:
            return self.objective(entry["targetPercent"], f"{at}.targetPercent")
        target = entry.get("target")
        if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target < 1:
            self.problem(f"{at}.target", "must be a ratio between 0 and 1 (exclusive)")
            return None
        return float(target) * 100

    def openslo_indicator(self, spec: dict[str, Any]) -> EventsSLI | RawSLI | None:
        if "indicatorRef" in spec:
            self.problem("spec.indicatorRef", "not supported: define the indicator inline")
            return None
        indicator = self.mapping(spec.get("indicator"), "spec.indicator", required=True) or {}
        self.keys(indicator, "spec.indicator", ("metadata", "spec"))
        ind_spec = self.mapping(indicator.get("spec"), "spec.indicator.spec", required=True) or {}
        self.keys(ind_spec, "spec.indicator.spec", ("ratioMetric", "thresholdMetric"))
        at = "spec.indicator.spec.ratioMetric"
        ratio = self.mapping(ind_spec.get("ratioMetric"), at, required=True)
        if ratio is None:
            return None
        self.keys(ratio, at, ("counter", "good", "bad", "total", "rawType", "raw"))
        total = self.openslo_source(ratio.get("total"), f"{at}.total")
        if ("good" in ratio) == ("bad" in ratio):
            self.problem(at, "needs exactly one of good or bad, over total")
            return None
        if "bad" in ratio:
            bad = self.openslo_source(ratio["bad"], f"{at}.bad")
            if bad and total and bad.strip() == total.strip():
                self.problem(f"{at}.total", "is the same query as the bad query")
                return None
            return EventsSLI(bad, total) if bad and total else None
        good = self.openslo_source(ratio["good"], f"{at}.good")
        if not (good and total):
            return None
        return self.good_over_total(good, total, at)

    def openslo_source(self, raw: Any, at: str) -> str:
        source = self.mapping(raw, at, required=True) or {}
        self.keys(source, at, ("metricSource",))
        metric = self.mapping(source.get("metricSource"), f"{at}.metricSource", required=True)
        if metric is None:
            return ""
        self.keys(metric, f"{at}.metricSource", ("metricSourceRef", "type", "spec"))
        if str(metric.get("type", "")).lower() != "prometheus":
            self.problem(f"{at}.metricSource.type", "must be Prometheus")
            return ""
        spec = self.mapping(metric.get("spec"), f"{at}.metricSource.spec", required=True) or {}
        self.keys(spec, f"{at}.metricSource.spec", ("query",))
        return self.query(spec.get("query"), f"{at}.metricSource.spec.query")

    def openslo_ratio_metrics(self, raw: Any, at: str) -> RawSLI | None:
        ratio = self.mapping(raw, f"{at}.ratioMetrics", required=True)
        if ratio is None:
            return None
        self.keys(ratio, f"{at}.ratioMetrics", ("good", "total", "counter"))
        queries = {}
        for part in ("good", "total"):
            where = f"{at}.ratioMetrics.{part}"
            source = self.mapping(ratio.get(part), where, required=True) or {}
            self.keys(source, where, ("source", "queryType", "query", "metadata"))
            if source.get("source") not in ("prometheus", "sloth"):
                self.problem(f"{where}.source", "must be prometheus or sloth")
            if source.get("queryType") != "promql":
                self.problem(f"{where}.queryType", "must be promql")
            queries[part] = self.query(source.get("query"), f"{where}.query")
        if not all(queries.values()):
            return None
        return self.good_over_total(queries["good"], queries["total"], f"{at}.ratioMetrics")

    def good_over_total(self, good: str, total: str, at: str) -> RawSLI | None:
        if good.strip() == total.strip():
            self.problem(f"{at}.total", "is the same query as the good query")
            return None
        return RawSLI(_GOOD_OVER_TOTAL.format(good=good, total=total))

    # --- values ----------------------------------------------------------------------

    def keys(self, data: dict[str, Any], at: str, allowed: Sequence[str]) -> None:
        for key in data:
            if key not in allowed:
                where = f"{at}.{key}" if at else str(key)
                self.problem(where, f"unknown key (expected one of: {', '.join(allowed)})")

    def mapping(self, raw: Any, at: str, required: bool = False) -> dict[str, Any] | None:
        if raw is None:
            if required:
                self.problem(at, "required")
            return None
        if not isinstance(raw, dict):
            self.problem(at, "must be a mapping")
            return None
        return raw

    def string(self, raw: Any, at: str, required: bool = False) -> str:
        if raw is None or raw == "":
            if required:
                self.problem(at, "required")
            return ""
        if not isinstance(raw, str):
            self.problem(at, "must be a string")
            return ""
        return raw

    def name(self, raw: Any, at: str) -> str:
        value = self.string(raw, at, required=True)
        if value and not _NAME.match(value):
            self.problem(
                at,
                f"{value!r} must start and end with a letter or digit and hold only letters, "
                "digits, '.', '_' and '-'",
            )
        return value

    def objective(self, raw: Any, at: str) -> float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            self.problem(at, "required: the percent of good events, such as 99.9")
            return 0.0
        if not 0 < raw < 100:
            self.problem(
                at, f"{raw} is out of range: a percent above 0 and below 100 (100 leaves no budget)"
            )
        return float(raw)

    def fraction(self, raw: Any, at: str) -> float | None:
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw < 1:
            self.problem(at, "must be a ratio from 0 up to (not including) 1")
            return None
        return float(raw)

    def positive(self, raw: Any, at: str, zero_ok: bool = False) -> float | None:
        if raw is None:
            return None
        bad = isinstance(raw, bool) or not isinstance(raw, int | float)
        if bad or raw < 0 or (raw == 0 and not zero_ok):
            self.problem(at, "must be a positive number")
            return None
        return float(raw)

    def labels(self, raw: Any, at: str) -> dict[str, str]:
        found = self.mapping(raw, at) or {}
        labels = {}
        for key, value in found.items():
            if not isinstance(key, str) or not _LABEL_NAME.match(key) or key.startswith("__"):
                self.problem(f"{at}.{key}", "is not a valid Prometheus label name")
            elif not isinstance(value, str) or not value:
                self.problem(f"{at}.{key}", 'must be a non-empty string (quote numbers: "2")')
            else:
                labels[key] = value
        return labels

    def annotations(self, raw: Any, at: str) -> dict[str, str]:
        found = self.mapping(raw, at) or {}
        annotations = {}
        for key, value in found.items():
            if not isinstance(key, str) or not _LABEL_NAME.match(key):
                self.problem(f"{at}.{key}", "is not a valid annotation name")
            elif not isinstance(value, str) or not value:
                self.problem(f"{at}.{key}", "must be a non-empty string")
            else:
                annotations[key] = value
        return annotations

    def string_map(self, raw: Any, at: str) -> dict[str, str]:
        found = self.mapping(raw, at) or {}
        for key, value in found.items():
            if not isinstance(key, str) or not isinstance(value, str):
                self.problem(f"{at}.{key}", "must be a string")
        return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str)}

    def query(self, raw: Any, at: str) -> str:
        query = self.string(raw, at, required=True)
        if not query:
            return ""
        if not WINDOW_VARIABLE.search(query):
            self.problem(at, "must use the window variable {{.window}} for its range")
            return ""
        others = [a for a in _ANY_ACTION.findall(query) if not WINDOW_VARIABLE.fullmatch(a)]
        if others:
            self.problem(at, f"only {{{{.window}}}} can be templated, not {others[0]}")
            return ""
        try:
            promql_parser.parse(render_query(query, 60))
        except ValueError as exc:
            self.problem(at, f"is not valid PromQL (with the window set to 1m): {exc}")
            return ""
        return query

    @staticmethod
    def plugin_ids(raw: Any) -> str:
        chain = raw.get("chain") if isinstance(raw, dict) else None
        ids = [str(p.get("id")) for p in chain or [] if isinstance(p, dict)]
        return "plugin ids: " + ", ".join(ids) if ids else "no plugin ids given"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A parser error on one line: where it is and what is wrong."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"not valid YAML{where}: {what}"
