"""House style for the dashboards: grafanalib underneath, current Grafana on the way out.

Every ``*.dashboard.py`` builds its panels with the helpers here, so every dashboard gets
the same variables (a ``datasource`` variable every query uses, ``job`` and ``instance``),
the same links, units and descriptions required by signature, and a grid laid out row by
row. grafanalib 0.7 still writes keys Grafana 12 no longer reads (``span``, ``error``,
``cacheTimeout``, ``rows``, the pre-9 heatmap's ``cards``…) and ``null`` for everything
unset; :func:`dashboard` keeps only the keys of the current schema (Grafana 11.6,
``schemaVersion`` 41) and drops the nulls, so the committed JSON reads like what Grafana
itself exports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grafanalib.core as g
from grafanalib._gen import DashboardEncoder

from dashboards.slos import SloInfo

__all__ = [
    "DATASOURCE",
    "SCHEMA_VERSION",
    "Inputs",
    "Panel",
    "Row",
    "bargauge",
    "dashboard",
    "deployments_annotation",
    "heatmap",
    "query_variable",
    "selector",
    "stat",
    "state_timeline",
    "steps",
    "sum_rate",
    "table",
    "target",
    "timeseries",
    "value_mapping",
]

#: Grafana 11.6's dashboard schema (grafana-foundation-sdk's default for that build).
SCHEMA_VERSION = 41
#: Every panel and query reads the dashboard's datasource variable.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: All values of a multi-value variable, as one regex (instead of a|b|c of every value).
ALL = ".+"
TAGS = ["elibrary"]

# Grafana's palette; the thresholds of every dashboard use these names.
GREEN, YELLOW, ORANGE, RED, BLUE = "green", "yellow", "orange", "red", "blue"

_DASHBOARD_KEYS = (
    "uid", "title", "description", "tags", "timezone", "editable", "graphTooltip", "time",
    "timepicker", "refresh", "schemaVersion", "links", "annotations", "templating", "panels",
)  # fmt: skip
_PANEL_KEYS = (
    "id", "type", "title", "description", "datasource", "gridPos", "collapsed", "panels",
    "targets", "fieldConfig", "options", "transformations", "links",
)  # fmt: skip
_TARGET_KEYS = (
    "refId", "datasource", "expr", "legendFormat", "format", "instant", "range", "hide",
)  # fmt: skip
# Options grafanalib still writes that the panel's current model has no place for.
_LEGACY_OPTIONS = {"bargauge": ("fieldOptions", "showThresholdLabels", "showThresholdMarkers")}
_VARIABLE_KEYS = (
    "name", "label", "description", "type", "datasource", "query", "definition", "refresh",
    "regex", "sort", "multi", "includeAll", "allValue", "current", "options", "hide",
)  # fmt: skip


@dataclass(frozen=True)
class Inputs:
    """What the dashboards are built from besides their own code: the SLOs the generated
    rules record (one row each on the SLO dashboard, thresholds on the service one)."""

    slos: tuple[SloInfo, ...] = ()


# --------------------------------------------------------------------------- queries


def selector(*matchers: str, route: bool = False) -> str:
    """The label matchers every selector of a dashboard carries: its job and instance
    variables (and route where the dashboard has one), then ``matchers``."""
    parts = ['job=~"$job"', 'instance=~"$instance"']
    if route:
        parts.append('route=~"$route"')
    parts.extend(matchers)
    return "{" + ", ".join(parts) + "}"


def sum_rate(series: str, by: str = "") -> str:
    """``sum [by (labels)] (rate(series[$__rate_interval]))``: a counter as a per-second rate."""
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}(rate({series}[$__rate_interval]))"


def target(
    expr: str, legend: str = "", ref_id: str = "A", *, instant: bool = False, fmt: str = ""
) -> g.Target:
    """One Prometheus query of a panel. ``fmt`` is ``table`` or ``heatmap`` where the panel
    needs that frame shape."""
    return g.Target(
        expr=" ".join(expr.split()),
        legendFormat=legend,
        refId=ref_id,
        instant=instant,
        format=fmt or g.TIME_SERIES_TARGET_FORMAT,
        datasource=DATASOURCE,
    )


def _targets(queries: Sequence[g.Target]) -> list[g.Target]:
    """Queries lettered A, B, C… in order, whatever they were given."""
    return [
        g.Target(**{**_target_fields(q), "refId": chr(ord("A") + i)}) for i, q in enumerate(queries)
    ]


def _target_fields(query: g.Target) -> dict[str, Any]:
    return {
        "expr": query.expr,
        "legendFormat": query.legendFormat,
        "instant": query.instant,
        "format": query.format,
        "datasource": query.datasource,
    }


def steps(base: str, *above: tuple[float, str]) -> list[dict[str, Any]]:
    """Threshold steps: ``base`` colour below the first value, then each (value, colour)."""
    return [{"color": base, "value": None}] + [{"color": c, "value": v} for v, c in above]


# --------------------------------------------------------------------------- panels


@dataclass
class Panel:
    """A grafanalib panel with its size on the 24-column grid (height in grid units)."""

    panel: Any
    width: int
    height: int


@dataclass
class Row:
    """A titled row of panels, laid out left to right and wrapped at 24 columns."""

    title: str
    panels: Sequence[Panel]
    collapsed: bool = False


def _field_defaults(
    unit: str, thresholds: list[dict[str, Any]] | None, **extra: Any
) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit, **{k: v for k, v in extra.items() if v is not None}}
    defaults["thresholds"] = {"mode": "absolute", "steps": thresholds or steps(GREEN)}
    return defaults


def _built(
    kind: type,
    title: str,
    description: str,
    queries: Sequence[g.Target],
    defaults: dict[str, Any],
    options: dict[str, Any],
    size: tuple[int, int],
    overrides: Sequence[dict[str, Any]] = (),
    **fields: Any,
) -> Panel:
    """A grafanalib panel of ``kind`` on the datasource variable, its field defaults and
    options given whole (grafanalib's own are for older Grafana), ``size`` (width, height)."""
    built = kind(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries),
        extraJson={
            "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
            "options": options,
        },
        **fields,
    )
    return Panel(built, *size)


def timeseries(
    title: str,
    description: str,
    queries: Sequence[g.Target],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    thresholds: list[dict[str, Any]] | None = None,
    threshold_style: str = "off",
    stack: bool = False,
    bars: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    legend_calcs: Sequence[str] = (),
    overrides: Sequence[dict[str, Any]] = (),
) -> Panel:
    """A time series; ``threshold_style`` "line" or "dashed" draws the thresholds (an SLO's
    objective) over the data."""
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 25 if (stack or bars) else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": threshold_style},
        "axisSoftMin": 0,
    }
    defaults = {
        **_field_defaults(unit, thresholds, min=minimum, max=maximum),
        "color": {"mode": "palette-classic"},
        "custom": custom,
    }
    options = {
        "legend": {
            "displayMode": "table" if legend_calcs else "list",
            "placement": "bottom",
            "showLegend": True,
            "calcs": list(legend_calcs),
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return _built(
        g.TimeSeries, title, description, queries, defaults, options, (width, height), overrides
    )


def stat(
    title: str,
    description: str,
    queries: Sequence[g.Target],
    *,
    unit: str,
    width: int = 6,
    height: int = 4,
    thresholds: list[dict[str, Any]] | None = None,
    mappings: Sequence[dict[str, Any]] = (),
    decimals: int | None = None,
    calc: str = "lastNotNull",
    graph: bool = True,
    text_mode: str = "auto",
    color_mode: str = "background",
) -> Panel:
    """One number per series, coloured by its threshold step."""
    defaults = {
        **_field_defaults(unit, thresholds, decimals=decimals),
        "color": {"mode": "thresholds"},
        "mappings": list(mappings),
    }
    options = {
        "reduceOptions": {"calcs": [calc], "fields": "", "values": False},
        "colorMode": color_mode,
        "graphMode": "area" if graph else "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": text_mode,
        "wideLayout": True,
        "showPercentChange": False,
    }
    return _built(g.Stat, title, description, queries, defaults, options, (width, height))


def bargauge(
    title: str,
    description: str,
    queries: Sequence[g.Target],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    thresholds: list[dict[str, Any]] | None = None,
    minimum: float | None = 0,
    maximum: float | None = None,
) -> Panel:
    """Horizontal bars of each series' last value, coloured by threshold."""
    defaults = {
        **_field_defaults(unit, thresholds, min=minimum, max=maximum),
        "color": {"mode": "thresholds"},
    }
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "displayMode": "gradient",
        "orientation": "horizontal",
        "showUnfilled": True,
        "valueMode": "color",
        "namePlacement": "auto",
        "sizing": "auto",
        "minVizHeight": 16,
        "minVizWidth": 8,
        "maxVizHeight": 300,
    }
    return _built(g.BarGauge, title, description, queries, defaults, options, (width, height))


def table(
    title: str,
    description: str,
    queries: Sequence[g.Target],
    *,
    unit: str,
    width: int = 24,
    height: int = 8,
    columns: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    sort_by: str | None = None,
    thresholds: list[dict[str, Any]] | None = None,
) -> Panel:
    """Instant queries (one column each) merged on their labels into one table.

    ``columns`` renames the frame's fields (``Value #A`` → "Requests/s") and drops every
    field not named, in the order given; ``units`` sets a unit per renamed column.
    """
    overrides = [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [{"id": "unit", "value": field_unit}],
        }
        for name, field_unit in (units or {}).items()
    ]
    transformations: list[dict[str, Any]] = [{"id": "merge", "options": {}}]
    if columns:
        transformations.append(
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "includeByName": {name: True for name in columns},
                    "indexByName": {name: i for i, name in enumerate(columns)},
                    "renameByName": dict(columns),
                },
            }
        )
    defaults = {
        **_field_defaults(unit, thresholds),
        "color": {"mode": "thresholds"},
        "custom": {"align": "auto", "cellOptions": {"type": "auto"}},
    }
    options = {
        "showHeader": True,
        "cellHeight": "sm",
        "footer": {"show": False, "reducer": ["sum"], "fields": ""},
        "sortBy": [{"displayName": sort_by, "desc": True}] if sort_by else [],
    }
    return _built(
        g.Table,
        title,
        description,
        queries,
        defaults,
        options,
        (width, height),
        overrides,
        transformations=transformations,
    )


def heatmap(
    title: str,
    description: str,
    queries: Sequence[g.Target],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
) -> Panel:
    """Histogram buckets over time (queries in ``heatmap`` format), Grafana 9+'s heatmap:
    grafanalib writes the pre-9 one, so the options are given here whole."""
    defaults = {
        "unit": unit,
        "custom": {
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            "scaleDistribution": {"type": "linear"},
        },
    }
    options = {
        "calculate": False,
        "cellGap": 1,
        "color": {
            "mode": "scheme",
            "scheme": "Oranges",
            "fill": "dark-orange",
            "scale": "exponential",
            "exponent": 0.5,
            "steps": 64,
            "reverse": False,
        },
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": False},
        "yAxis": {"axisPlacement": "left", "reverse": False, "unit": unit},
    }
    return _built(g.Heatmap, title, description, queries, defaults, options, (width, height))


def state_timeline(
    title: str,
    description: str,
    queries: Sequence[g.Target],
    *,
    unit: str,
    mappings: Sequence[dict[str, Any]],
    thresholds: list[dict[str, Any]] | None = None,
    width: int = 24,
    height: int = 8,
) -> Panel:
    """One band per series, coloured by value mapping (up/down, firing/quiet)."""
    defaults = {
        **_field_defaults(unit, thresholds),
        "color": {"mode": "thresholds"},
        "custom": {"fillOpacity": 70, "lineWidth": 0},
        "mappings": list(mappings),
    }
    options = {
        "mergeValues": True,
        "showValue": "never",
        "alignValue": "left",
        "rowHeight": 0.9,
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return _built(g.StateTimeline, title, description, queries, defaults, options, (width, height))


def value_mapping(value: int, text: str, color: str) -> dict[str, Any]:
    """Show ``value`` as ``text`` in ``color`` (0 → "down" in red)."""
    return {
        "type": "value",
        "options": {str(value): {"text": text, "color": color, "index": value}},
    }


# --------------------------------------------------------------------------- variables


def datasource_variable() -> g.Template:
    return g.Template(
        name="datasource",
        label="Data source",
        query="prometheus",
        type="datasource",
        default="default",
    )


def query_variable(
    name: str, title: str, metric: str, *, label: str = "", after: Sequence[str] = ()
) -> g.Template:
    """A multi-value variable of the values of ``label`` (default: ``name``) on ``metric``,
    narrowed by the variables ``after`` it (instance by job, route by job and instance);
    "All" is ``.+``."""
    matchers = ", ".join(f'{v}=~"${v}"' for v in after)
    series = f"{metric}{{{matchers}}}" if matchers else metric
    definition = f"label_values({series}, {label or name})"
    variable = g.Template(
        name=name,
        label=title,
        query={"query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        dataSource=DATASOURCE,
        includeAll=True,
        multi=True,
        allValue=ALL,
        default="$__all",
        refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
        sort=g.SORT_ALPHA_IGNORE_CASE_ASC,
    )
    variable._current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def deployments_annotation(job_metric: str = "elibrary_build_info") -> dict[str, Any]:
    """A marker wherever a new version or revision of the service starts reporting."""
    series = f"{job_metric}{selector()}"
    # Only the keys of Grafana's AnnotationQuery schema: the Prometheus-only extras
    # (titleFormat, tagKeys, step) do not survive Grafana's own models (dashboards/schema.py);
    # the marker's time is the point, the "Running versions" table says what runs.
    return {
        "name": "Deployments",
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": "#5794F2",
        "expr": (
            f"count by (version, revision) ({series}) unless "
            f"count by (version, revision) ({series} offset 5m)"
        ),
    }


# --------------------------------------------------------------------------- dashboard


def dashboard(
    uid: str,
    title: str,
    description: str,
    rows: Sequence[Row],
    *,
    variables: Sequence[g.Template],
    annotations: Sequence[dict[str, Any]] = (),
    time_from: str = "now-6h",
    refresh: str = "30s",
) -> dict[str, Any]:
    """The dashboard as current Grafana JSON: panels numbered and laid out row by row."""
    built = g.Dashboard(
        title=title,
        uid=uid,
        description=description,
        tags=TAGS,
        editable=False,  # provisioned from files: edits in the UI would be lost
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        timezone="browser",
        refresh=refresh,
        time=g.Time(time_from, "now"),
        panels=_layout(rows),
        links=[
            g.DashboardLink(
                title="eLibrary",
                type="dashboards",
                tags=TAGS,
                asDropdown=True,
                includeVars=False,
                keepTime=True,
            )
        ],
        templating=g.Templating(list=[datasource_variable(), *variables]),
    )
    raw = json.loads(json.dumps(built.to_json_data(), cls=DashboardEncoder))
    return _current_schema(raw, list(annotations))


def _layout(rows: Sequence[Row]) -> list[Any]:
    panels: list[Any] = []
    y = 0
    next_id = 1
    for row in rows:
        panels.append(
            g.RowPanel(
                id=next_id,
                title=row.title,
                collapsed=row.collapsed,
                gridPos=g.GridPos(h=1, w=24, x=0, y=y),
            )
        )
        next_id += 1
        y += 1
        x = 0
        line_height = 0
        for item in row.panels:
            if x + item.width > 24:
                y += line_height
                x = 0
                line_height = 0
            item.panel.id = next_id
            item.panel.gridPos = g.GridPos(h=item.height, w=item.width, x=x, y=y)
            panels.append(item.panel)
            next_id += 1
            x += item.width
            line_height = max(line_height, item.height)
        y += line_height
    return panels


def _keep(obj: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {k: obj[k] for k in keys if k in obj and obj[k] is not None}


def _current_schema(raw: dict[str, Any], annotations: list[dict[str, Any]]) -> dict[str, Any]:
    out = _keep(raw, _DASHBOARD_KEYS)
    out["schemaVersion"] = SCHEMA_VERSION
    out["timepicker"] = {"refresh_intervals": ["10s", "30s", "1m", "5m", "15m", "30m", "1h"]}
    out["annotations"] = {
        "list": [
            {
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            },
            *annotations,
        ]
    }
    out["links"] = [_drop_nulls(link) for link in raw.get("links", [])]
    out["templating"] = {"list": [_variable(v) for v in raw.get("templating", {}).get("list", [])]}
    out["panels"] = [_panel(p) for p in raw.get("panels", [])]
    return out


def _variable(raw: Mapping[str, Any]) -> dict[str, Any]:
    variable = _keep(raw, _VARIABLE_KEYS)
    if variable.get("type") == "datasource":
        for key in ("datasource", "includeAll", "multi", "allValue", "sort", "refresh"):
            variable.pop(key, None)
        variable["current"] = {}
        variable["options"] = []
        variable["regex"] = ""
    else:
        variable["options"] = []
        variable["regex"] = ""
    return variable


def _panel(raw: Mapping[str, Any]) -> dict[str, Any]:
    panel = _keep(raw, _PANEL_KEYS)
    if panel.get("type") == "row":
        for key in ("datasource", "targets", "fieldConfig", "options", "transformations", "links"):
            panel.pop(key, None)
        panel["panels"] = [_panel(p) for p in raw.get("panels", [])]
        return panel
    panel["targets"] = [_target(t) for t in raw.get("targets", [])]
    panel["fieldConfig"] = _drop_nulls(panel.get("fieldConfig", {}), keep_threshold_base=True)
    defaults = panel["fieldConfig"].get("defaults", {})
    defaults.pop("noValue", None)  # grafanalib's "none" would print the word "none"
    if not defaults.get("custom"):
        defaults.pop("custom", None)
    panel["options"] = _drop_nulls(panel.get("options", {}))
    for legacy in _LEGACY_OPTIONS.get(panel["type"], ()):
        panel["options"].pop(legacy, None)
    if not panel.get("transformations"):
        panel.pop("transformations", None)
    if not panel.get("links"):
        panel.pop("links", None)
    return panel


def _target(raw: Mapping[str, Any]) -> dict[str, Any]:
    query = _keep(raw, _TARGET_KEYS)
    if not query.get("hide"):
        query.pop("hide", None)
    if query.get("instant"):
        query["range"] = False
    else:
        query.pop("instant", None)
        query["range"] = True
    if query.get("format") == g.TIME_SERIES_TARGET_FORMAT:
        query.pop("format")
    if not query.get("legendFormat"):
        query["legendFormat"] = "__auto"
    return query


def _drop_nulls(value: Any, keep_threshold_base: bool = False) -> Any:
    """``value`` without null entries; the first threshold step keeps ``"value": null``
    because that is how Grafana's schema says "from minus infinity"."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if v is None and not (keep_threshold_base and k == "value"):
                continue
            out[k] = _drop_nulls(
                v, keep_threshold_base and k in ("thresholds", "steps", "defaults")
            )
        return out
    if isinstance(value, list):
        return [_drop_nulls(v, keep_threshold_base) for v in value]
    return value
