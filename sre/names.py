"""The names check: which series the generated artifacts read, and whether they exist.

An alert that reads a series nobody exports never pages anyone, and promtool's unit tests
cannot tell: they feed hand-made series. So every expression of every artifact (rule files,
PrometheusRule manifests, dashboards) and every input series of the promtool unit tests is
parsed with a real PromQL parser (``promql-parser``) into the metric names it selects and
the label names it relies on:

- the labels of its matchers;
- ``by``/``without`` and ``on``/``ignoring``/``group_left``/``group_right`` labels, charged
  to every selector beneath them;
- the source labels of ``label_replace``/``label_join`` and ``le`` under
  ``histogram_quantile``;
- the ``$labels.x`` an alert's annotations and labels print.

An ``Inventory`` of series that really exist (scraped from running software, recorded by a
committed rule, or on a short list of other software's series) then names every read that
would select nothing. A label required above an aggregation or a one-to-one match that
drops it is reported without any inventory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import promql_parser as promql
import yaml
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "OTHER_SOFTWARE",
    "STATE_SERIES",
    "TARGET_LABELS",
    "Inventory",
    "KnownSeries",
    "Read",
    "Reads",
    "check",
    "output_labels",
    "reads_in_artifact",
    "reads_in_expr",
    "reads_in_unit_tests",
    "recording_rules",
]

#: labels Prometheus attaches to every series it scrapes
TARGET_LABELS = frozenset({"job", "instance"})
_TEMPLATE_LABEL = re.compile(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)")
# Grafana's interval variables stand where PromQL needs a duration; any valid one will do.
_GRAFANA_DURATION = re.compile(r"\$__(?:rate_interval|interval|range)\b|\$\{__[a-z_]+\}")
_GRAFANA_RANGE = re.compile(r"\[\$\{?[A-Za-z_][A-Za-z0-9_]*\}?\]")
_LABEL_VALUES = re.compile(
    r"^\s*label_values\((?:(?P<sel>.+),\s*)?(?P<label>[A-Za-z_]\w*)\s*\)\s*$"
)
# Aggregations whose output keeps each input series' labels.
_KEEPS_LABELS = frozenset({"topk", "bottomk", "limitk", "limit_ratio"})
# Functions whose vector argument's labels say nothing about their output.
_OPAQUE_CALLS = frozenset({"absent", "absent_over_time", "scalar", "vector", "time"})


@dataclass(frozen=True)
class Read:
    """One metric name an expression selects, and the label names it relies on."""

    name: str
    labels: frozenset[str]
    where: str
    #: the name is a regular expression over metric names (``{__name__=~"..."}``)
    pattern: bool = False


@dataclass
class Reads:
    """What some artifacts read, and the problems visible without an inventory."""

    reads: list[Read] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def extend(self, other: Reads) -> Reads:
        self.reads.extend(other.reads)
        self.problems.extend(other.problems)
        return self


@dataclass(frozen=True)
class KnownSeries:
    """A series the check cannot scrape in its default state, and who vouches for it."""

    #: who exports it (other software), or the state and the test that proves it
    source: str
    labels: frozenset[str]


#: Series of software the tests cannot run here, each with what exports it. Prometheus and
#: Alertmanager are not listed: the names test scrapes the real ones. Keep it short: every
#: entry must be read by some artifact (tests/test_names_live.py checks).
OTHER_SOFTWARE: dict[str, KnownSeries] = {}

_REPLICA = (
    "a MariaDB replica: tests/exporter/test_replica.py::test_replica_status_matches_mysqld_exporter"
)
_REPLICA_LABELS = frozenset(
    {"job", "instance", "master_host", "master_uuid", "channel_name", "connection_name"}
)
#: Series that exist only in a state a test sets up, with the test that proves them there.
STATE_SERIES: dict[str, KnownSeries] = {
    name: KnownSeries(_REPLICA, _REPLICA_LABELS)
    for name in (
        "mysql_slave_status_slave_io_running",
        "mysql_slave_status_slave_sql_running",
        "mysql_slave_status_seconds_behind_master",
        "mysql_slave_status_sql_delay",
    )
}
STATE_SERIES["ALERTS"] = KnownSeries(
    "Prometheus while an alert is pending or firing: tests/alerts/test_e2e.py::"
    "test_5xx_pages_with_a_runbook_then_resolves_and_normal_traffic_stays_quiet (sloth_id: the "
    "SLO alerts' exp_labels in tests/slo/testdata/slo-alerts.test.yaml)",
    frozenset({"alertname", "alertstate", "severity", "service", "sloth_id"}),
)


# --------------------------------------------------------------------------- PromQL


def _kind(node: Any) -> str:
    return type(node).__name__


def _is_scalar(node: Any) -> bool:
    kind = _kind(node)
    if kind == "NumberLiteral":
        return True
    if kind in ("ParenExpr", "UnaryExpr"):
        return _is_scalar(node.expr)
    if kind == "Call":
        return str(node.func.return_type) == "ValueType.Scalar"
    if kind == "BinaryExpr":
        return _is_scalar(node.lhs) and _is_scalar(node.rhs)
    return False


def _matching(node: Any) -> tuple[str, frozenset[str], str, frozenset[str]]:
    """(on|ignoring|"", matching labels, cardinality, group_left/right extra labels)."""
    modifier = node.modifier
    if modifier is None:
        return "", frozenset(), "OneToOne", frozenset()
    matching = modifier.matching
    how, labels = "", frozenset[str]()
    if matching is not None:
        how = "on" if str(matching.type).endswith("Include") else "ignoring"
        labels = frozenset(matching.labels)
    card = str(modifier.card).rsplit(".", 1)[-1]
    return how, labels, card, frozenset(modifier.group_labels or ())


def _selector_name(node: Any) -> tuple[str | None, bool]:
    if node.name:
        return str(node.name), False
    for matcher in node.matchers.matchers:
        if matcher.name == "__name__":
            return str(matcher.value), str(matcher.op).endswith(".Re")
    return None, False


def _matcher_labels(node: Any) -> frozenset[str]:
    groups = [node.matchers.matchers, *node.matchers.or_matchers]
    return frozenset(m.name for group in groups for m in group if m.name != "__name__")


class _Walker:
    """Collects reads top-down, carrying the labels required from above."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.found = Reads()

    def dropped(self, labels: Iterable[str], by: str) -> None:
        for label in sorted(labels):
            self.found.problems.append(f"{self.where}: label {label} is used above {by}")

    def visit(self, node: Any, required: frozenset[str]) -> None:
        kind = _kind(node)
        if kind == "VectorSelector":
            self.selector(node, required)
        elif kind == "MatrixSelector":
            self.selector(node.vector_selector, required)
        elif kind in ("SubqueryExpr", "ParenExpr", "UnaryExpr"):
            self.visit(node.expr, required)
        elif kind == "AggregateExpr":
            self.aggregate(node, required)
        elif kind == "BinaryExpr":
            self.binary(node, required)
        elif kind == "Call":
            self.call(node, required)
        # NumberLiteral and StringLiteral select nothing

    def selector(self, node: Any, required: frozenset[str]) -> None:
        name, pattern = _selector_name(node)
        if name is None:
            self.found.problems.append(f"{self.where}: a selector without a metric name")
            return
        labels = _matcher_labels(node) | required
        self.found.reads.append(Read(name, labels, self.where, pattern))

    def aggregate(self, node: Any, required: frozenset[str]) -> None:
        op = str(node.op)
        modifier = node.modifier
        grouping = frozenset(modifier.labels) if modifier is not None else frozenset()
        without = modifier is not None and str(modifier.type).endswith("Without")
        made = frozenset({node.param.val}) if op == "count_values" else frozenset()
        if op in _KEEPS_LABELS:
            inner = required | grouping
        elif without:
            self.dropped(required & grouping, f"{op} without ({', '.join(sorted(grouping))})")
            inner = (required - made) | grouping
        else:
            self.dropped(required - grouping - made, f"{op} by ({', '.join(sorted(grouping))})")
            inner = grouping
        self.visit(node.expr, inner)
        if node.param is not None and op != "count_values":
            self.visit(node.param, frozenset())

    def binary(self, node: Any, required: frozenset[str]) -> None:
        lhs, rhs = node.lhs, node.rhs
        if _is_scalar(lhs) or _is_scalar(rhs):
            self.visit(lhs, frozenset() if _is_scalar(lhs) else required)
            self.visit(rhs, frozenset() if _is_scalar(rhs) else required)
            return
        op = str(node.op)
        how, matched, card, extra = _matching(node)
        if op in ("and", "unless"):
            self.visit(lhs, required | matched)
            self.visit(rhs, matched)
        elif op == "or":
            self.visit(lhs, required | matched)
            self.visit(rhs, required | matched)
        elif card == "ManyToOne":  # group_left: the result is the left side plus `extra`
            self.visit(lhs, (required - extra) | matched)
            self.visit(rhs, matched | extra)
        elif card == "OneToMany":
            self.visit(lhs, matched | extra)
            self.visit(rhs, (required - extra) | matched)
        else:  # one-to-one: `on` keeps only its labels, `ignoring` drops its own
            if how == "on":
                self.dropped(required - matched, f"{op} on ({', '.join(sorted(matched))})")
                kept = required & matched
            else:
                self.dropped(required & matched, f"{op} ignoring ({', '.join(sorted(matched))})")
                kept = required - matched
            self.visit(lhs, kept | matched)
            self.visit(rhs, matched)

    def call(self, node: Any, required: frozenset[str]) -> None:
        name = node.func.name
        args = list(node.args)
        if name == "label_replace":
            made, used = args[1].val, {args[3].val} - {""}
            self.visit(args[0], (required - {made}) | frozenset(used))
        elif name == "label_join":
            made, used = args[1].val, {a.val for a in args[3:]}
            self.visit(args[0], (required - {made}) | frozenset(used))
        elif name == "histogram_quantile":
            self.dropped(required & {"le"}, "histogram_quantile")
            self.visit(args[0], frozenset())
            self.visit(args[1], (required - {"le"}) | {"le"})
        elif name in _OPAQUE_CALLS:
            for arg in args:
                self.visit(arg, frozenset())
        else:  # rate, increase, *_over_time, clamp, abs…: labels pass through
            for arg in args:
                self.visit(arg, frozenset() if _is_scalar(arg) else required)


def reads_in_expr(expr: str, where: str, printed: Iterable[str] = ()) -> Reads:
    """What one PromQL expression reads; ``printed`` are labels its templates show."""
    try:
        tree = promql.parse(expr)
    except ValueError as exc:
        return Reads(problems=[f"{where}: does not parse: {exc}"])
    walker = _Walker(where)
    walker.visit(tree, frozenset(printed))
    return walker.found


def output_labels(expr: str, labels_of: Callable[[str], frozenset[str] | None]) -> frozenset[str]:
    """The label names of the series an expression returns, given its inputs' labels."""
    return _output(promql.parse(expr), labels_of)


def _output(node: Any, labels_of: Callable[[str], frozenset[str] | None]) -> frozenset[str]:
    kind = _kind(node)
    if kind == "VectorSelector":
        name, _ = _selector_name(node)
        return (labels_of(name) if name else None) or frozenset()
    if kind == "MatrixSelector":
        return _output(node.vector_selector, labels_of)
    if kind in ("SubqueryExpr", "ParenExpr", "UnaryExpr"):
        return _output(node.expr, labels_of)
    if kind == "AggregateExpr":
        op, modifier = str(node.op), node.modifier
        inner = _output(node.expr, labels_of)
        grouping = frozenset(modifier.labels) if modifier is not None else frozenset()
        if op in _KEEPS_LABELS:
            return inner
        if modifier is not None and str(modifier.type).endswith("Without"):
            return inner - grouping
        made = frozenset({node.param.val}) if op == "count_values" else frozenset()
        return grouping | made
    if kind == "BinaryExpr":
        lhs, rhs = node.lhs, node.rhs
        if _is_scalar(lhs) or _is_scalar(rhs):
            return _output(rhs if _is_scalar(lhs) else lhs, labels_of)
        op = str(node.op)
        left, right = _output(lhs, labels_of), _output(rhs, labels_of)
        how, matched, card, extra = _matching(node)
        if op in ("and", "unless"):
            return left
        if op == "or":
            return left | right
        if card == "ManyToOne":
            return left | extra
        if card == "OneToMany":
            return right | extra
        return left & matched if how == "on" else left - matched
    if kind == "Call":
        name, args = node.func.name, list(node.args)
        if name in ("label_replace", "label_join"):
            return _output(args[0], labels_of) | {args[1].val}
        if name == "histogram_quantile":
            return _output(args[1], labels_of) - {"le"}
        if name in _OPAQUE_CALLS:
            return frozenset()
        vectors = [a for a in args if not _is_scalar(a) and _kind(a) != "StringLiteral"]
        return _output(vectors[0], labels_of) if vectors else frozenset()
    return frozenset()


# --------------------------------------------------------------------------- artifacts


def _rule_groups(data: Any) -> list[dict[str, Any]] | None:
    if not isinstance(data, dict):
        return None
    if data.get("kind") == "PrometheusRule":
        return list((data.get("spec") or {}).get("groups") or [])
    if "groups" in data:
        return list(data["groups"] or [])
    return None


def _printed_labels(rule: Mapping[str, Any]) -> frozenset[str]:
    texts = [*(rule.get("annotations") or {}).values(), *(rule.get("labels") or {}).values()]
    return frozenset(label for text in texts for label in _TEMPLATE_LABEL.findall(str(text)))


def recording_rules(text: str) -> list[tuple[str, str, frozenset[str]]]:
    """(record name, expression, static label names) of every recording rule in a file."""
    groups = _rule_groups(yaml.safe_load(text)) or []
    return [
        (str(rule["record"]), str(rule["expr"]), frozenset(rule.get("labels") or {}))
        for group in groups
        for rule in group.get("rules") or []
        if "record" in rule
    ]


def _reads_in_rules(path: str, groups: list[dict[str, Any]]) -> Reads:
    found = Reads()
    for group in groups:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or f"record {rule.get('record')}"
            printed = _printed_labels(rule) if "alert" in rule else frozenset()
            found.extend(reads_in_expr(str(rule["expr"]), f"{path}: {name}", printed))
    return found


def _grafana_to_promql(expr: str) -> str:
    return _GRAFANA_RANGE.sub("[5m]", _GRAFANA_DURATION.sub("5m", expr))


def _reads_in_dashboard(path: str, dashboard: Any) -> Reads:
    found = Reads()

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            title = node.get("title")
            here = f"{where} / {title}" if isinstance(title, str) and title else where
            for target in node.get("targets") or []:
                if isinstance(target, dict) and isinstance(target.get("expr"), str):
                    found.extend(reads_in_expr(_grafana_to_promql(target["expr"]), here))
            for key, value in node.items():
                if key != "targets":
                    walk(value, here)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk({k: v for k, v in dashboard.items() if k not in ("templating", "annotations")}, path)
    for annotation in (dashboard.get("annotations") or {}).get("list") or []:
        if isinstance(annotation.get("expr"), str):
            where = f"{path}: annotation {annotation.get('name')}"
            found.extend(reads_in_expr(_grafana_to_promql(annotation["expr"]), where))
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") != "query" or not isinstance(query, str):
            continue
        where = f"{path}: variable {variable.get('name')}"
        match = _LABEL_VALUES.match(query)
        if match and match.group("sel"):
            found.extend(
                reads_in_expr(_grafana_to_promql(match.group("sel")), where, [match["label"]])
            )
        elif not match:
            found.extend(reads_in_expr(_grafana_to_promql(query), where))
    return found


def reads_in_artifact(path: str, text: str) -> Reads:
    """What a generated file reads: a rule file, a PrometheusRule or a dashboard JSON.

    Files of other kinds (an Alertmanager configuration and its template, provisioning)
    read no series.
    """
    if path.endswith(".json"):
        return _reads_in_dashboard(path, json.loads(text))
    if not path.endswith((".yaml", ".yml")):
        return Reads()  # a notification template
    groups = _rule_groups(yaml.safe_load(text))
    return _reads_in_rules(path, groups) if groups is not None else Reads()


def reads_in_unit_tests(path: str, text: str) -> Reads:
    """The series a promtool unit-test file feeds: each must be one that really exists."""
    found = Reads()
    for t, case in enumerate(yaml.safe_load(text).get("tests") or []):
        for s, series in enumerate(case.get("input_series") or []):
            where = f"{path}: tests[{t}] ({case.get('name', '')}) input_series[{s}]"
            found.extend(reads_in_expr(str(series["series"]), where))
    return found


# --------------------------------------------------------------------------- inventory


class Inventory:
    """Series that really exist: name → label names, and where each was seen."""

    def __init__(self) -> None:
        self._labels: dict[str, set[str]] = {}
        self._sources: dict[str, set[str]] = {}
        self.source_names: list[str] = []

    def add(self, name: str, labels: Iterable[str], source: str) -> None:
        """Record that ``source`` exports ``name`` with these label names."""
        self._labels.setdefault(name, set()).update(labels)
        self._sources.setdefault(name, set()).add(source)
        if source not in self.source_names:
            self.source_names.append(source)

    def add_exposition(
        self, text: str, source: str, target_labels: Iterable[str] = TARGET_LABELS
    ) -> None:
        """Every sample of a /metrics answer, with the labels scraping adds to each."""
        added = frozenset(target_labels)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.add(sample.name, added | set(sample.labels), source)

    def add_recording_rules(self, path: str, text: str) -> None:
        """Series that the file's recording rules record, with the labels they carry."""
        rules = recording_rules(text)
        for _ in range(len(rules) + 1):  # rules may read each other: until nothing changes
            before = {name: set(labels) for name, labels in self._labels.items()}
            for record, expr, static in rules:
                self.add(record, output_labels(expr, self.labels) | static, f"{path} (rule)")
            if before == self._labels:
                return

    def add_known(self, series: Mapping[str, KnownSeries]) -> None:
        """Series from a list such as ``OTHER_SOFTWARE`` or ``STATE_SERIES``."""
        for name, known in series.items():
            self.add(name, known.labels, known.source)

    def labels(self, name: str) -> frozenset[str] | None:
        """The label names seen on a series, or None when nothing exports it."""
        found = self._labels.get(name)
        return frozenset(found) if found is not None else None

    def sources(self, name: str) -> frozenset[str]:
        return frozenset(self._sources.get(name, ()))

    def names(self) -> frozenset[str]:
        return frozenset(self._labels)


def check(found: Reads, inventory: Inventory) -> list[str]:
    """Every problem: unparsable or dropped labels, unknown names, labels a series lacks."""
    problems = list(found.problems)
    everywhere = ", ".join(inventory.source_names) or "nothing"
    for read in found.reads:
        if read.pattern:
            regex = re.compile(read.name)
            names = [n for n in inventory.names() if regex.fullmatch(n)]
            if not any(read.labels <= (inventory.labels(n) or set()) for n in names):
                problems.append(
                    f"{read.where}: no series matching {read.name!r} with labels "
                    f"{', '.join(sorted(read.labels)) or '(none)'} is exported"
                )
            continue
        have = inventory.labels(read.name)
        if have is None:
            problems.append(f"{read.where}: {read.name} is exported by none of: {everywhere}")
        elif not read.labels <= have:
            problems.append(
                f"{read.where}: {read.name} has no label "
                f"{', '.join(sorted(read.labels - have))} (it has: {', '.join(sorted(have))})"
            )
    return sorted(set(problems), key=problems.index)
