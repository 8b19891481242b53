"""Grafana's dashboard-linter rules (github.com/grafana/dashboard-linter), in Python, as pure
functions over a dashboard's JSON.

Every rule carries the linter's own name, so a finding can be looked up in its docs
(``docs/rules/<name>.md``) and the two tools can be compared. Where we check more or less
than the linter, the rule's ``difference`` says so and why; in short:

- Rules apply to every panel that queries (has targets), not only to the linter's short
  list of panel types; units stay on the linter's list (other types keep units elsewhere).
- Queries are read the way the linter reads them: variables substituted outside string
  literals only, so ``job=~"$job"`` is seen as written, and ``$__rate_interval`` becomes a
  duration nobody writes by hand (``_SENTINELS``), which tells ``[$__rate_interval]`` from a
  literal ``[5m]`` after parsing. Whether a query parses is judged on the query Grafana
  really sends (``dashboards.queries.expand``, every variable substituted).
- Recording-rule series (names with a colon, per Prometheus' naming rules) and the few
  series written by the rule engine itself (``sloth_slo_info``, ``ALERTS``) carry no
  ``job``/``instance``: ``sum(rate(...))`` drops them. ``job=~".+"`` would select nothing,
  so target-job-rule and target-instance-rule leave those selectors alone. The linter has
  no such exemption.
- Counters are names ending in ``_total``, ``_count``, ``_sum`` or ``_bucket`` (the linter
  tests ``_total`` on the selector's text, so ``x_total{job="a"}`` slips through it).
- The linter's warnings (variable labels such as "Job") are not checked.

Exceptions live in a YAML file (``DEFAULT_EXCEPTIONS``), a list of entries naming the rule,
the dashboard uid, optionally a panel title and a query's refId, and a required reason.
An exception that silences nothing is reported as stale, so the file cannot rot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import promql_parser
import yaml
from grafana_foundation_sdk.models import units as _sdk_units

from dashboards.queries import BUILTIN_DEFAULTS, expand, panels, variable_values
from sre.errors import SreError

__all__ = [
    "DEFAULT_EXCEPTIONS",
    "RULES",
    "Finding",
    "LintException",
    "Rule",
    "apply_exceptions",
    "lint_dashboard",
    "load_exceptions",
]

DEFAULT_EXCEPTIONS = Path(__file__).with_name("lint-exceptions.yaml")


@dataclass(frozen=True)
class Rule:
    """One lint rule: ``name`` is the dashboard-linter rule it mirrors, word for word."""

    name: str
    description: str
    #: the linter's source of the rule, under github.com/grafana/dashboard-linter
    mirrors: str
    #: where we deliberately check other than the linter does, and why; "" when we do not
    difference: str = ""


@dataclass(frozen=True)
class Finding:
    """One problem: which rule, where (dashboard, panel, query) and what."""

    rule: str
    dashboard_uid: str
    #: None for a finding about the whole dashboard (its variables, its editability)
    panel_title: str | None
    #: the query's refId; None for a finding about a panel or the dashboard
    ref_id: str | None
    message: str

    def __str__(self) -> str:
        where = self.dashboard_uid
        if self.panel_title is not None:
            where += f': panel "{self.panel_title}"'
        if self.ref_id is not None:
            where += f" query {self.ref_id}"
        return f"{where}: {self.message} [{self.rule}]"


@dataclass(frozen=True)
class LintException:
    """A finding accepted on purpose, with the reason; panel and target narrow it down."""

    rule: str
    #: the dashboard's uid
    dashboard: str
    reason: str
    #: a panel title; None matches every panel and the dashboard-level findings
    panel: str | None = None
    #: a query's refId within ``panel``; None matches every query of the panel
    target: str | None = None
    #: where the entry stands in its file (``[3]``), for messages
    entry: str = field(default="", compare=False)

    def matches(self, finding: Finding) -> bool:
        """Whether this exception silences ``finding``."""
        return (
            self.rule == finding.rule
            and self.dashboard == finding.dashboard_uid
            and (self.panel is None or self.panel == finding.panel_title)
            and (self.target is None or self.target == finding.ref_id)
        )

    def __str__(self) -> str:
        where = f"{self.rule} on {self.dashboard}"
        if self.panel is not None:
            where += f' panel "{self.panel}"'
        if self.target is not None:
            where += f" query {self.target}"
        return f"{self.entry} {where}".strip()


# ---------------------------------------------------------------------------------------
# What the rules know.

#: panel types the linter lints (union of its per-rule lists); other panels are linted
#: when they have targets
_QUERY_PANEL_TYPES = frozenset({"stat", "singlestat", "graph", "table", "timeseries", "gauge"})
#: panel-units-rule's list: these keep their unit in fieldConfig.defaults.unit
_UNIT_PANEL_TYPES = _QUERY_PANEL_TYPES
#: panel-datasource-rule's list, before our widening to every panel with targets
_DATASOURCE_PANEL_TYPES = frozenset({"singlestat", "graph", "table", "timeseries"})

#: the unit ids Grafana 11.6 offers (grafana-foundation-sdk's generated list), plus the
#: older ids the linter knows and Grafana still resolves
_UNITS = frozenset(
    value
    for name, value in vars(_sdk_units).items()
    if not name.startswith("_") and isinstance(value, str)
) | {"decbits", "flowcfm", "flowcfs", "µfarad"}
#: Grafana's custom units, ``suffix: loans`` and the like (valueFormats.ts getValueFormat)
_CUSTOM_UNIT = re.compile(r"^(prefix|suffix|si|count|currency|time|bool):.+", re.S)

#: what a datasource variable's uid may be for the job and instance templates (the linter's)
_TEMPLATE_DATASOURCES = frozenset(
    {"$datasource", "${datasource}", "$prometheus_datasource", "${prometheus_datasource}"}
)
#: Grafana's Prometheus variable-query functions
_VARIABLE_FUNCTIONS = frozenset({"label_names", "label_values", "metrics", "query_result"})
_VARIABLE_QUERY = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.S)
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

#: functions whose range must be $__rate_interval (increase may also span $__range)
_RATE_FUNCTIONS = frozenset({"rate", "irate", "increase"})
_COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
#: series the rule engine writes itself, without the scrape's job and instance
_RULE_ENGINE_SERIES = frozenset({"sloth_slo_info", "ALERTS", "ALERTS_FOR_STATE"})

# Grafana's interval variables become durations no one writes by hand, so that after
# parsing ``[$__rate_interval]`` is told from a literal ``[5m]`` by the range alone. (The
# linter uses values like 8869990787ms, which overflow this parser's 32-bit milliseconds.)
_SENTINELS: Mapping[str, str] = {
    **BUILTIN_DEFAULTS,
    "__rate_interval": "3h3m3s333ms",
    "__interval": "4h4m4s444ms",
    "__range": "5h5m5s555ms",
}
_SENTINEL_NAMES = {
    promql_parser.parse_duration(_SENTINELS[name]): f"${name}"
    for name in ("__rate_interval", "__interval", "__range")
}
_RATE_INTERVAL = promql_parser.parse_duration(_SENTINELS["__rate_interval"])
_RANGE = promql_parser.parse_duration(_SENTINELS["__range"])

# PromQL string literals: double- and single-quoted with backslash escapes, and raw `...`.
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', re.S)

# MatchOp is not hashable: a list of pairs, not a dict
_MATCH_OPS = (
    (promql_parser.MatchOp.Equal, "="),
    (promql_parser.MatchOp.NotEqual, "!="),
    (promql_parser.MatchOp.Re, "=~"),
    (promql_parser.MatchOp.NotRe, "!~"),
)


# ---------------------------------------------------------------------------------------
# The dashboard, read once for all rules.


@dataclass(frozen=True)
class _Target:
    panel_title: str
    ref_id: str
    raw: Mapping[str, Any]
    expr: str
    #: the parser's complaint about the query as Grafana sends it; None when it parses
    error: str | None
    #: the query as the linter reads it (see _structural); None when it does not parse
    ast: promql_parser.Expr | None


@dataclass(frozen=True)
class _Dashboard:
    uid: str
    raw: Mapping[str, Any]
    variables: Sequence[Mapping[str, Any]]
    values: Mapping[str, str]
    panels: Sequence[Mapping[str, Any]]
    targets: Sequence[_Target]

    @property
    def datasource_variables(self) -> list[Mapping[str, Any]]:
        return [v for v in self.variables if str(v.get("type", "")).lower() == "datasource"]

    def finding(self, rule: str, message: str) -> Finding:
        return Finding(rule, self.uid, None, None, message)


def _read(dashboard: Mapping[str, Any]) -> _Dashboard:
    variables = [
        v for v in (dashboard.get("templating") or {}).get("list") or [] if isinstance(v, Mapping)
    ]
    values = variable_values(dashboard)
    all_panels = list(panels(dashboard))
    datasource_types = {
        str(v.get("name")): str(v.get("query", "")).lower()
        for v in variables
        if str(v.get("type", "")).lower() == "datasource"
    }
    targets = []
    for panel in all_panels:
        for raw in panel.get("targets") or []:
            expr = str(raw.get("expr") or "")
            prometheus = _is_prometheus(
                raw.get("datasource") or panel.get("datasource"), datasource_types
            )
            # only Prometheus queries (by their datasource, else the panel's) are parsed
            error: str | None = None
            ast: promql_parser.Expr | None = None
            if prometheus:
                error = _parse_error(expand(expr, values))
                if error is None:
                    ast = _structural(expr, values)
            targets.append(
                _Target(
                    panel_title=str(panel.get("title", "")),
                    ref_id=str(raw.get("refId", "")),
                    raw=raw,
                    expr=expr,
                    error=error,
                    ast=ast,
                )
            )
    return _Dashboard(
        uid=str(dashboard.get("uid", "")),
        raw=dashboard,
        variables=variables,
        values=values,
        panels=all_panels,
        targets=targets,
    )


def _is_prometheus(datasource: Any, datasource_types: Mapping[str, str]) -> bool:
    """A datasource reference is Prometheus' unless it says otherwise; none at all means
    Grafana's default, which for our dashboards is Prometheus."""
    if isinstance(datasource, Mapping) and datasource.get("type"):
        return str(datasource["type"]) == "prometheus"
    uid = _datasource_uid(datasource)
    if uid is None or uid == "":
        return True
    match = re.fullmatch(r"\$\{?(\w+)\}?", uid)
    if match and match.group(1) in datasource_types:
        return datasource_types[match.group(1)] == "prometheus"
    # "-- Grafana --", "-- Dashboard --", "-- Mixed --": not a Prometheus query
    return not uid.startswith("--")


def _datasource_uid(datasource: Any) -> str | None:
    """The uid a panel, target or variable names; None when the reference is malformed."""
    if datasource is None:
        return ""
    if isinstance(datasource, str):
        return datasource
    if isinstance(datasource, Mapping) and isinstance(datasource.get("uid"), str):
        return str(datasource["uid"])
    return None


def _parse_error(expr: str) -> str | None:
    try:
        promql_parser.parse(expr)
    except ValueError as exc:
        return str(exc)
    return None


def _structural(expr: str, values: Mapping[str, str]) -> promql_parser.Expr | None:
    """The query as the linter reads it: variables substituted outside string literals only
    (so matchers keep ``$job`` as written), interval variables as sentinel durations."""
    parts = []
    start = 0
    for literal in _STRING_LITERAL.finditer(expr):
        parts.append(expand(expr[start : literal.start()], values, _SENTINELS))
        parts.append(literal.group(0))
        start = literal.end()
    parts.append(expand(expr[start:], values, _SENTINELS))
    try:
        return promql_parser.parse("".join(parts))
    except ValueError:
        # Only a variable's value holding a quote could make the difference; the query
        # Grafana sends parsed, so there is nothing to report, and nothing to inspect.
        return None


def _walk(ast: promql_parser.Expr) -> Iterator[tuple[promql_parser.Expr, list[Any]]]:
    """Every node of ``ast`` with its ancestors, nearest last."""
    visited: list[tuple[Any, list[Any]]] = []
    stack: list[Any] = []

    def pre(node: Any) -> bool:
        visited.append((node, list(stack)))
        stack.append(node)
        return True

    def post(node: Any) -> bool:
        stack.pop()
        return True

    promql_parser.walk(ast, pre, post)
    yield from visited


def _metric_name(selector: promql_parser.VectorSelector) -> str | None:
    if selector.name:
        return selector.name
    for matcher in selector.matchers.matchers:
        if matcher.name == "__name__" and matcher.op == promql_parser.MatchOp.Equal:
            return matcher.value
    return None


def _variable_query(variable: Mapping[str, Any]) -> str:
    query = variable.get("query")
    if isinstance(query, Mapping):
        query = query.get("query")
    return query if isinstance(query, str) else ""


def _queries(panel: Mapping[str, Any]) -> bool:
    """Whether a panel draws query results (and so owes a datasource, title, description)."""
    return panel.get("type") in _QUERY_PANEL_TYPES or bool(panel.get("targets"))


# ---------------------------------------------------------------------------------------
# The rules, in the linter's order (lint/rules.go NewRuleSet).


def _template_datasource(d: _Dashboard) -> Iterator[Finding]:
    rule = "template-datasource-rule"
    found = d.datasource_variables
    if not found:
        yield d.finding(rule, "does not have a templated data source")
    for variable in found:
        name = str(variable.get("name", ""))
        query = str(variable.get("query", ""))
        specific = f"{query.lower()}_datasource"
        allowed = {specific, "datasource"} if len(found) == 1 else {specific}
        if name not in allowed:
            alternative = ", or 'datasource'" if len(found) == 1 else ""
            yield d.finding(
                rule,
                f"templated data source variable named '{name}', "
                f"should be named '{specific}'{alternative}",
            )
        if query.lower() != "prometheus":
            yield d.finding(
                rule,
                f"templated data source variable '{name}' is for '{query}', "
                "should be for 'prometheus'",
            )


def _check_template(d: _Dashboard, name: str) -> Iterator[Finding]:
    rule = f"template-{name}-rule"
    variable = next((v for v in d.variables if v.get("name") == name), None)
    if variable is None:
        yield d.finding(rule, f"is missing the {name} template")
        return
    uid = _datasource_uid(variable.get("datasource"))
    if uid is None:
        yield d.finding(rule, f"{name} template has invalid datasource {variable['datasource']!r}")
    elif uid not in _TEMPLATE_DATASOURCES:
        yield d.finding(
            rule, f"{name} template should use datasource '$datasource', is currently '{uid}'"
        )
    if variable.get("type") != "query":
        yield d.finding(
            rule,
            f"{name} template should be a Prometheus query, "
            f"is currently '{variable.get('type', '')}'",
        )
    if not variable.get("multi"):
        yield d.finding(rule, f"{name} template should be a multi select")
    if not variable.get("includeAll"):
        yield d.finding(rule, f"{name} template should include an All option")
    if variable.get("allValue") != ".+":
        yield d.finding(
            rule,
            f"{name} template allValue should be '.+', "
            f"is currently '{variable.get('allValue') or ''}'",
        )


def _template_job(d: _Dashboard) -> Iterator[Finding]:
    yield from _check_template(d, "job")


def _template_instance(d: _Dashboard) -> Iterator[Finding]:
    yield from _check_template(d, "instance")


def _template_label_promql(d: _Dashboard) -> Iterator[Finding]:
    for variable in d.variables:
        if variable.get("type") != "query":
            continue
        query = _variable_query(variable)
        problem = _variable_query_problem(query, d.values)
        if problem:
            yield d.finding(
                "template-label-promql-rule",
                f"template '{variable.get('name', '')}' invalid templated label "
                f"'{query}': {problem}",
            )


def _variable_query_problem(query: str, values: Mapping[str, str]) -> str | None:
    """What is wrong with a Prometheus variable query (Grafana's four functions)."""
    call = _VARIABLE_QUERY.match(query)
    if call is None:
        return f"invalid 'query': {query}"
    function, argument = call.group(1), call.group(2).strip()
    if function not in _VARIABLE_FUNCTIONS:
        return f"invalid 'function': {function}"
    if function == "metrics":
        return None  # its argument is a regex over metric names, not PromQL
    selector, label = argument, None
    if function == "label_values":
        selector, label = _split_last_argument(argument)
        if not _LABEL_NAME.match(expand(label, values)):
            return f"invalid label name '{label}'"
    if not selector and function != "query_result":
        return None  # label_values(job), label_names()
    return _parse_error(expand(selector, values))


def _split_last_argument(argument: str) -> tuple[str, str]:
    """``up{a="b,c"}, job`` → (``up{a="b,c"}``, ``job``): the last comma outside brackets
    and strings; a lone argument is the label."""
    masked = _STRING_LITERAL.sub(lambda m: "_" * len(m.group(0)), argument)
    depth = 0
    for index in range(len(masked) - 1, -1, -1):
        char = masked[index]
        if char in ")}]":
            depth += 1
        elif char in "({[":
            depth -= 1
        elif char == "," and depth == 0:
            return argument[:index].strip(), argument[index + 1 :].strip()
    return "", argument.strip()


def _template_on_time_change_reload(d: _Dashboard) -> Iterator[Finding]:
    for variable in d.variables:
        if variable.get("type") != "query":
            continue
        refresh = variable.get("refresh", 0)
        if refresh != 2:
            yield d.finding(
                "template-on-time-change-reload-rule",
                f"template variable named '{variable.get('name', '')}' should be refreshed "
                f"'On time range change' (refresh: 2), is currently {refresh!r}",
            )


def _panel_datasource(d: _Dashboard) -> Iterator[Finding]:
    rule = "panel-datasource-rule"
    allowed = set()
    for variable in d.datasource_variables:
        allowed |= {f"${variable.get('name')}", f"${{{variable.get('name')}}}"}

    def problem(datasource: Any) -> str | None:
        uid = _datasource_uid(datasource)
        if uid is None:
            return f"has invalid datasource: {datasource!r}"
        if uid not in allowed:
            return f"does not use a templated datasource, uses '{uid}'"
        return None

    for panel in d.panels:
        if not (panel.get("type") in _DATASOURCE_PANEL_TYPES or _queries(panel)):
            continue
        title = str(panel.get("title", ""))
        message = problem(panel.get("datasource"))
        if message:
            yield Finding(rule, d.uid, title, None, message)
        for target in panel.get("targets") or []:
            if "datasource" not in target:
                continue  # inherits the panel's
            message = problem(target["datasource"])
            if message:
                yield Finding(rule, d.uid, title, str(target.get("refId", "")), message)


def _panel_title_description(d: _Dashboard) -> Iterator[Finding]:
    for panel in d.panels:
        if not _queries(panel):
            continue
        title = str(panel.get("title") or "").strip()
        description = str(panel.get("description") or "").strip()
        missing = [
            what for what, text in (("title", title), ("description", description)) if not text
        ]
        if missing:
            yield Finding(
                "panel-title-description-rule",
                d.uid,
                str(panel.get("title", "")),
                None,
                "has no " + " and no ".join(missing),
            )


def _panel_units(d: _Dashboard) -> Iterator[Finding]:
    rule = "panel-units-rule"
    for panel in d.panels:
        if panel.get("type") not in _UNIT_PANEL_TYPES:
            continue
        title = str(panel.get("title", ""))
        if panel.get("type") == "stat":
            reduce = ((panel.get("options") or {}).get("reduceOptions")) or {}
            if reduce.get("fields"):
                continue  # shows a label's value or another non-numeric field
        config = panel.get("fieldConfig") or {}
        defaults = config.get("defaults") or {}
        overrides = [
            prop
            for override in config.get("overrides") or []
            for prop in override.get("properties") or []
        ]
        if defaults.get("mappings") or any(
            p.get("id") == "mappings" and p.get("value") for p in overrides
        ):
            continue  # value mappings say what a number means
        unit = defaults.get("unit")
        if not unit:
            yield Finding(rule, d.uid, title, None, "has no unit (fieldConfig.defaults.unit)")
        elif not _known_unit(unit):
            yield Finding(rule, d.uid, title, None, f"has unknown unit '{unit}'")
        for prop in overrides:
            if prop.get("id") == "unit" and not _known_unit(prop.get("value")):
                yield Finding(
                    rule, d.uid, title, None, f"has unknown unit '{prop.get('value')}' in overrides"
                )


def _known_unit(unit: Any) -> bool:
    return isinstance(unit, str) and (unit in _UNITS or bool(_CUSTOM_UNIT.match(unit)))


def _panel_no_targets(d: _Dashboard) -> Iterator[Finding]:
    for panel in d.panels:
        if panel.get("type") in _QUERY_PANEL_TYPES and not panel.get("targets"):
            yield Finding(
                "panel-no-targets-rule", d.uid, str(panel.get("title", "")), None, "has no targets"
            )


def _target_promql(d: _Dashboard) -> Iterator[Finding]:
    ids = {panel.get("id") for panel in d.panels}
    for t in d.targets:
        panel_id = t.raw.get("panelId")
        if not t.expr and panel_id:
            if panel_id not in ids:
                yield _target_finding(
                    "target-promql-rule", d, t, f"references panel {panel_id}, which does not exist"
                )
        elif t.error is not None:
            yield _target_finding(
                "target-promql-rule", d, t, f"invalid PromQL query '{t.expr}': {t.error}"
            )


def _target_rate_interval(d: _Dashboard) -> Iterator[Finding]:
    for t in d.targets:
        for node, _ in _walk(t.ast) if t.ast is not None else ():
            if not isinstance(node, promql_parser.Call) or node.func.name not in _RATE_FUNCTIONS:
                continue
            argument = node.args[0] if node.args else None
            if not isinstance(argument, promql_parser.MatrixSelector | promql_parser.SubqueryExpr):
                continue
            span = argument.range
            allowed = {_RATE_INTERVAL, _RANGE} if node.func.name == "increase" else {_RATE_INTERVAL}
            if span in allowed:
                continue
            wanted = "[$__rate_interval] or [$__range]" if node.func.name == "increase" else ""
            yield _target_finding(
                "target-rate-interval-rule",
                d,
                t,
                f"{node.func.name}() over [{_show_range(span)}] should use "
                f"{wanted or '[$__rate_interval]'}",
            )


def _show_range(span: timedelta | None) -> str:
    if span is None:
        return ""
    return _SENTINEL_NAMES.get(span) or promql_parser.display_duration(span)


def _target_matcher(d: _Dashboard, label: str) -> Iterator[Finding]:
    for t in d.targets:
        for node, _ in _walk(t.ast) if t.ast is not None else ():
            if not isinstance(node, promql_parser.VectorSelector):
                continue
            name = _metric_name(node)
            if name is not None and (":" in name or name in _RULE_ENGINE_SERIES):
                continue  # recorded without the scrape's labels: see the module docstring
            problem = _matcher_problem(node, label)
            if problem:
                yield _target_finding(f"target-{label}-rule", d, t, f"'{node}': {problem}")


def _matcher_problem(selector: promql_parser.VectorSelector, label: str) -> str | None:
    """The linter's checkForMatcher: some ``label=~"$label"`` must be there."""
    matchers = selector.matchers
    groups = [matchers.matchers + group for group in matchers.or_matchers] or [matchers.matchers]
    for group in groups:
        problem = f"{label} selector not found"
        for matcher in group:
            if matcher.name != label:
                continue
            if matcher.op == promql_parser.MatchOp.Re and matcher.value in (
                f"${label}",
                f"${{{label}}}",
            ):
                problem = ""
                break
            if matcher.op != promql_parser.MatchOp.Re:
                op = next((text for known, text in _MATCH_OPS if known == matcher.op), "?")
                problem = f"{label} selector is {op}, not =~"
            if matcher.value not in (f"${label}", f"${{{label}}}"):
                problem = f"{label} selector is {matcher.value}, not ${label}"
        if problem:
            return problem
    return None


def _target_job(d: _Dashboard) -> Iterator[Finding]:
    yield from _target_matcher(d, "job")


def _target_instance(d: _Dashboard) -> Iterator[Finding]:
    yield from _target_matcher(d, "instance")


def _target_counter_agg(d: _Dashboard) -> Iterator[Finding]:
    for t in d.targets:
        for node, parents in _walk(t.ast) if t.ast is not None else ():
            if not isinstance(node, promql_parser.VectorSelector):
                continue
            name = _metric_name(node)
            if name is None or not name.endswith(_COUNTER_SUFFIXES):
                continue
            if (
                len(parents) >= 2
                and isinstance(parents[-1], promql_parser.MatrixSelector)
                and isinstance(parents[-2], promql_parser.Call)
                and parents[-2].func.name in _RATE_FUNCTIONS
            ):
                continue
            yield _target_finding(
                "target-counter-agg-rule",
                d,
                t,
                f"counter metric '{name}' is not aggregated with rate, irate, or increase",
            )


def _uneditable(d: _Dashboard) -> Iterator[Finding]:
    # Grafana treats a dashboard without the key as editable (editable !== false).
    if d.raw.get("editable", True) is not False:
        yield d.finding(
            "uneditable-dashboard", "is editable, it should be set to 'editable: false'"
        )


def _target_finding(rule: str, d: _Dashboard, t: _Target, message: str) -> Finding:
    return Finding(rule, d.uid, t.panel_title, t.ref_id, message)


_Check = Callable[[_Dashboard], Iterable[Finding]]


def _rule(name: str, description: str, mirrors: str, difference: str = "") -> Rule:
    return Rule(name, description, f"lint/{mirrors}", difference)


_CHECKS: tuple[tuple[Rule, _Check], ...] = (
    (
        _rule(
            "template-datasource-rule",
            "One datasource variable, named datasource, for Prometheus.",
            "rule_template_datasource.go",
            "also requires the variable's query to be prometheus; the label warning is not checked",
        ),
        _template_datasource,
    ),
    (
        _rule(
            "template-job-rule",
            "A job variable: a multi-select query on $datasource, All = .+.",
            "rule_template_job.go",
            "also requires includeAll (allValue means nothing without it); runs when the "
            "datasource variable is missing; the label warning is not checked",
        ),
        _template_job,
    ),
    (
        _rule(
            "template-instance-rule",
            "An instance variable: a multi-select query on $datasource, All = .+.",
            "rule_template_instance.go",
            "as template-job-rule",
        ),
        _template_instance,
    ),
    (
        _rule(
            "template-label-promql-rule",
            "Query variables call label_values, label_names, metrics or query_result on "
            "valid PromQL.",
            "rule_template_label_promql.go",
            "label_values' selector and label are checked apart (the linter parses "
            "'selector, label' whole and accepts any partial parse)",
        ),
        _template_label_promql,
    ),
    (
        _rule(
            "template-on-time-change-reload-rule",
            "Query variables refresh on time range change (refresh: 2).",
            "rule_template_on_time_change_reload.go",
        ),
        _template_on_time_change_reload,
    ),
    (
        _rule(
            "panel-datasource-rule",
            "Every panel and every query uses the datasource variable.",
            "rule_panel_datasource.go",
            "every panel with targets, and each target naming its own datasource (the linter: "
            "graph, singlestat, table and timeseries panels)",
        ),
        _panel_datasource,
    ),
    (
        _rule(
            "panel-title-description-rule",
            "Every panel has a title and a description.",
            "rule_panel_title_description.go",
            "also every other panel with targets",
        ),
        _panel_title_description,
    ),
    (
        _rule(
            "panel-units-rule",
            "Every panel has a unit Grafana knows, unless value mappings say what numbers mean.",
            "rule_panel_units.go",
            "fieldConfig.defaults.unit is required even when an override sets one, override "
            "units must be known too, Grafana 11.6's units and custom ones (suffix:, prefix:, "
            "si:, count:, currency:, time:, bool:) are known, and only non-empty value "
            "mappings excuse a panel (grafanalib writes mappings: [] on every panel)",
        ),
        _panel_units,
    ),
    (
        _rule(
            "panel-no-targets-rule",
            "Every graph, table, stat or gauge panel has a query.",
            "rule_panel_no_targets.go",
            "targets: [] counts as no targets",
        ),
        _panel_no_targets,
    ),
    (
        _rule(
            "target-promql-rule",
            "Every Prometheus query parses, with the dashboard's variables substituted.",
            "rule_target_promql.go",
            "every Prometheus target of every panel type",
        ),
        _target_promql,
    ),
    (
        _rule(
            "target-rate-interval-rule",
            "rate, irate and increase run over [$__rate_interval] (increase: or [$__range]).",
            "rule_target_rate_interval.go",
            "also checks increase, as its docs say (its code does not), which may span "
            "$__range too; subqueries count as ranges",
        ),
        _target_rate_interval,
    ),
    (
        _rule(
            "target-job-rule",
            'Every selector has job=~"$job" (recording-rule series excepted).',
            "rule_target_job_instance.go",
            'also accepts "${job}"; skips recording-rule and rule-engine series',
        ),
        _target_job,
    ),
    (
        _rule(
            "target-instance-rule",
            'Every selector has instance=~"$instance" (recording-rule series excepted).',
            "rule_target_job_instance.go",
            "as target-job-rule",
        ),
        _target_instance,
    ),
    (
        _rule(
            "target-counter-agg-rule",
            "Counters (_total, _count, _sum, _bucket) appear only in rate, irate or increase.",
            "rule_target_counter_agg.go",
            "_count, _sum and _bucket are counters too, and the metric name is tested, not "
            "the selector's text",
        ),
        _target_counter_agg,
    ),
    (
        _rule(
            "uneditable-dashboard",
            "The dashboard says editable: false (it is provisioned from files).",
            "rule_uneditable.go",
            "a dashboard without the editable key is editable, as in Grafana",
        ),
        _uneditable,
    ),
)

#: every rule, by name, in the order they run (the linter's, lint/rules.go NewRuleSet)
RULES: Mapping[str, Rule] = MappingProxyType({rule.name: rule for rule, _ in _CHECKS})


def lint_dashboard(dashboard: Mapping[str, Any]) -> list[Finding]:
    """Every finding of every rule on one dashboard's JSON, rule by rule in RULES order."""
    read = _read(dashboard)
    findings: list[Finding] = []
    for _, check in _CHECKS:
        findings.extend(check(read))
    return list(dict.fromkeys(findings))  # a selector repeated in a query is one finding


# ---------------------------------------------------------------------------------------
# Exceptions.

_EXCEPTION_KEYS = ("rule", "dashboard", "panel", "target", "reason")
_REQUIRED_KEYS = ("rule", "dashboard", "reason")


def load_exceptions(path: str | Path) -> list[LintException]:
    """Read an exceptions file; SreError names every malformed entry."""
    label = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SreError(label, None, f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise SreError(label, where, "is not valid YAML") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise SreError(
            label, None, "must be a list of exceptions (rule, dashboard, panel, target, reason)"
        )
    problems: list[tuple[str, str]] = []
    found: list[LintException] = []
    seen: dict[tuple[str | None, ...], str] = {}
    for index, entry in enumerate(data):
        exception = _check_exception(entry, f"[{index}]", problems)
        if exception is None:
            continue
        place = (exception.rule, exception.dashboard, exception.panel, exception.target)
        if place in seen:
            problems.append((exception.entry, f"repeats {seen[place]}"))
            continue
        seen[place] = exception.entry
        found.append(exception)
    if problems:
        errors = [SreError(label, entry, problem) for entry, problem in problems]
        raise SreError(label, errors[0].entry, errors[0].problem, errors[1:])
    return found


def _check_exception(
    entry: Any, where: str, problems: list[tuple[str, str]]
) -> LintException | None:
    if not isinstance(entry, Mapping):
        problems.append((where, f"must be a mapping with keys {', '.join(_EXCEPTION_KEYS)}"))
        return None
    before = len(problems)
    unknown = sorted(str(key) for key in entry if key not in _EXCEPTION_KEYS)
    if unknown:
        problems.append((where, f"unknown key(s) {', '.join(unknown)}"))
    for key in _EXCEPTION_KEYS:
        value = entry.get(key)
        if key not in entry:
            if key in _REQUIRED_KEYS:
                hint = ": say why the rule does not apply here" if key == "reason" else ""
                problems.append((f"{where}.{key}", f"is required{hint}"))
        elif not isinstance(value, str) or not value.strip():
            problems.append((f"{where}.{key}", "must be a non-empty string"))
    rule = entry.get("rule")
    if isinstance(rule, str) and rule.strip() and rule not in RULES:
        problems.append((f"{where}.rule", f"unknown rule {rule!r}; known: {', '.join(RULES)}"))
    if "target" in entry and "panel" not in entry:
        problems.append((f"{where}.target", "needs a panel: a refId names a query of one panel"))
    if len(problems) > before:
        return None
    return LintException(
        rule=entry["rule"],
        dashboard=entry["dashboard"],
        reason=entry["reason"],
        panel=entry.get("panel"),
        target=entry.get("target"),
        entry=where,
    )


def apply_exceptions(
    findings: Iterable[Finding], exceptions: Iterable[LintException]
) -> tuple[list[Finding], list[LintException]]:
    """The findings no exception covers, and the exceptions that cover no finding (stale:
    the problem is gone, or the entry names the wrong place). Pass the findings of every
    dashboard the exceptions are written for, or some will look stale."""
    exceptions = list(exceptions)
    used: set[int] = set()
    remaining = []
    for finding in findings:
        covering = [i for i, exception in enumerate(exceptions) if exception.matches(finding)]
        used.update(covering)
        if not covering:
            remaining.append(finding)
    stale = [exception for i, exception in enumerate(exceptions) if i not in used]
    return remaining, stale
