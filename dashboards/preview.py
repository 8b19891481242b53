"""Previews of Grafana dashboards without a Grafana server: every panel drawn with
matplotlib from a live Prometheus's data, one PNG per panel, laid out on the dashboard's
24-column grid in one HTML page per dashboard, plus an index page.

Grafana 11.6 is the reference for what a reader compares: unit formats, legend templates,
threshold and value-mapping colours (the dark theme's palette), the query step and
``$__rate_interval``, the "merge" of table queries. The drawing itself approximates each
panel type; what it leaves out is said where it is left out.

Layout: pure helpers first (units, legends, steps, thresholds, table merge, the grid and
the pages), held to tables by the tests; then querying, drawing, and ``render_previews``,
which queries Prometheus and writes the files.
"""

from __future__ import annotations

import html
import math
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Literal

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib import colors as mcolors
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle, Wedge
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

from dashboards.queries import PanelQuery, expand, panel_queries, panels, variable_values
from sre.durations import format_duration
from sre.prometheus import PrometheusClient, PrometheusError, QueryRejected, one_line

__all__ = [
    "DashboardPreview",
    "GridItem",
    "PanelPreview",
    "PreviewResult",
    "QueryPreview",
    "Table",
    "build_builtins",
    "build_dashboard_html",
    "build_index_html",
    "choose_step",
    "format_legend",
    "format_value",
    "grafana_color",
    "grid_positions",
    "heatmap_buckets",
    "map_value",
    "merge_tables",
    "panel_pixels",
    "rate_interval",
    "reduce_values",
    "render_previews",
    "slug",
    "threshold_color",
    "time_locator",
]

FloatArray = npt.NDArray[np.float64]

# ---------------------------------------------------------------------------------------
# Colours: Grafana's dark theme (packages/grafana-data/src/themes/createVisualizationColors.ts)

_HUES = {
    "red": ("#FFA6B0", "#FF7383", "#F2495C", "#E02F44", "#C4162A"),
    "orange": ("#FFCB7D", "#FFB357", "#FF9830", "#FF780A", "#FA6400"),
    "yellow": ("#FFF899", "#FFEE52", "#FADE2A", "#F2CC0C", "#E0B400"),
    "green": ("#C8F2C2", "#96D98D", "#73BF69", "#56A64B", "#37872D"),
    "blue": ("#C0D8FF", "#8AB8FF", "#5794F2", "#3274D9", "#1F60C4"),
    "purple": ("#DEB6F2", "#CA95E5", "#B877D9", "#A352CC", "#8F3BB8"),
}
_SHADES = ("super-light-{}", "light-{}", "{}", "semi-dark-{}", "dark-{}")
_TEXT = "#CCCCDC"  # the dark theme's primary text, also what the colour name "text" means
_TEXT_WEAK = "#9FA0AE"
_PAGE_BG = "#111217"
_PANEL_BG = "#181B1F"
_LINE = "#2C3235"  # grid lines, borders, the unfilled part of a bar gauge
_ERROR = "#F2495C"
_FALLBACK_COLOR = "#808080"  # Grafana's FALLBACK_COLOR
_NAMED_COLORS: dict[str, str] = {
    shade.format(hue): color
    for hue, colors in _HUES.items()
    for shade, color in zip(_SHADES, colors, strict=True)
} | {"text": _TEXT, "transparent": "#00000000", "panel-bg": _PANEL_BG}

# "palette-classic", the default colour scheme of a series: Grafana's getClassicPalette()
_CLASSIC = (
    *("green", "yellow", "blue", "orange", "red", "purple"),
    *("dark-green", "dark-yellow", "dark-blue", "dark-orange", "dark-red", "dark-purple"),
    *("super-light-green", "super-light-yellow", "super-light-blue", "super-light-orange"),
    *("super-light-red", "super-light-purple", "#447EBC", "#C15C17", "#890F02", "#0A437C"),
    *("#6D1F62", "#584477", "#B7DBAB", "#F4D598", "#70DBED", "#F9BA8F", "#F29191", "#82B5D8"),
)

_HEX = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_RGB = re.compile(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(?:,\s*([\d.]+)\s*)?\)")


def grafana_color(name: str | None) -> str:
    """The ``#RRGGBB`` (or ``#RRGGBBAA``) a Grafana colour name, hex or ``rgb()`` stands for;
    Grafana's fallback grey for what it is not."""
    if not name:
        return _FALLBACK_COLOR
    text = str(name).strip()
    if text in _NAMED_COLORS:
        return _NAMED_COLORS[text]
    if _HEX.fullmatch(text):
        return text
    rgb = _RGB.fullmatch(text)
    if rgb:
        red, green, blue = (min(255, round(float(rgb.group(i)))) for i in (1, 2, 3))
        hex_color = f"#{red:02X}{green:02X}{blue:02X}"
        if rgb.group(4) is not None and float(rgb.group(4)) < 1:
            hex_color += f"{round(float(rgb.group(4)) * 255):02X}"
        return hex_color
    css = text.lower()
    return str(mcolors.CSS4_COLORS[css]).upper() if css in mcolors.CSS4_COLORS else _FALLBACK_COLOR


def _palette(index: int) -> str:
    return grafana_color(_CLASSIC[index % len(_CLASSIC)])


# ---------------------------------------------------------------------------------------
# Numbers: Grafana's value formats (packages/grafana-data/src/valueFormats)


def _js_string(number: float) -> str:
    """What JavaScript's String(number) gives for a number rounded to few decimals."""
    if number == int(number) and abs(number) < 1e21:
        return str(int(number))
    return repr(number)


def _auto_decimals(value: float) -> int:
    # getDecimalsForValue(), quirks included: about three significant digits.
    if value % 1 == 0:
        return 0
    log10 = math.floor(math.log10(abs(value)))
    decimals = -log10 + 1
    if value / 10.0**-decimals > 2.25:
        decimals += 1
    return max(0, decimals)


def _to_fixed(value: float, decimals: int | None) -> str:
    """Grafana's toFixed(): the number with ``decimals`` places, or about three significant
    digits when None, zero-padded."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if decimals is None:
        decimals = _auto_decimals(value)
    if value == 0:
        return f"{0:.{decimals}f}"
    factor = 10 ** max(0, decimals) if decimals else 1
    text = _js_string(math.floor(value * factor + 0.5) / factor)  # Math.round
    if "e" in text:
        return text
    precision = len(text) - text.index(".") - 1 if "." in text else 0
    if precision < decimals:
        text = (text if precision else text + ".") + "0" * (decimals - precision)
    return text


_Formatted = tuple[str, str, str]  # prefix, number, suffix


def _scaled(
    value: float, decimals: int | None, factor: float, units: Sequence[str], offset: int = 0
) -> _Formatted:
    # scaledUnits(): the unit is picked by the power of ``factor``; ``offset`` is the index of
    # the unscaled unit.
    if not math.isfinite(value) or value == 0:
        return "", _to_fixed(value, decimals), units[offset] if value == 0 else ""
    power = math.floor(math.log10(abs(value)) / math.log10(factor))
    index = min(max(offset + power, 0), len(units) - 1)
    return "", _to_fixed(value / factor ** (index - offset), decimals), units[index]


_SHORT = ("", " K", " Mil", " Bil", " Tri", " Quadr", " Quint", " Sext", " Sept")
_COUNT = ("", "K", "M", "B", "T")
_BINARY = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi")
_SI = ("n", "µ", "m", "", "k", "M", "G", "T", "P", "E")
# unit id: (symbol, offset into the prefixes) for the data units
_BINARY_UNITS = {
    "bits": ("b", 0),
    "bytes": ("B", 0),
    "kbytes": ("B", 1),
    "mbytes": ("B", 2),
    "gbytes": ("B", 3),
    "tbytes": ("B", 4),
    "binBps": ("B/s", 0),
    "binbps": ("b/s", 0),
}
_SI_UNITS = {
    "decbits": ("b", 0),
    "decbytes": ("B", 0),
    "deckbytes": ("B", 1),
    "decmbytes": ("B", 2),
    "decgbytes": ("B", 3),
    "dectbytes": ("B", 4),
    "pps": ("pps", 0),
    "bps": ("bps", 0),
    "Bps": ("B/s", 0),
    "KBs": ("B/s", 1),
    "Kbits": ("bps", 1),
    "MBs": ("B/s", 2),
    "Mbits": ("bps", 2),
    "GBs": ("B/s", 3),
    "Gbits": ("bps", 3),
    "hertz": ("Hz", 0),
    "watt": ("W", 0),
    "volt": ("V", 0),
    "amp": ("A", 0),
}
_DATA_SYMBOLS = {"b", "B", "bps", "B/s", "pps"}
# throughput: unit id → symbol (Grafana 11 spells "reqps" as "req/s")
_COUNTS = {
    **{"cps": "c/s", "ops": "ops/s", "reqps": "req/s", "rps": "rd/s", "wps": "wr/s"},
    **{"iops": "io/s", "eps": "evt/s", "mps": "msg/s", "recps": "rec/s", "rowsps": "rows/s"},
    **{"cpm": "c/m", "opm": "ops/m", "reqpm": "req/m", "rpm": "rd/m", "wpm": "wr/m"},
}
# (limit in the unit, divisor, suffix): the largest scale whose limit the value stays under
_TIME_SCALES: dict[str, tuple[tuple[float, float, str], ...]] = {
    "ns": (
        *((1e3, 1, " ns"), (1e6, 1e3, " µs"), (1e9, 1e6, " ms"), (6e10, 1e9, " s")),
        (math.inf, 6e10, " min"),
    ),
    "µs": ((1e3, 1, " µs"), (1e6, 1e3, " ms"), (math.inf, 1e6, " s")),
    "ms": (
        *((1e3, 1, " ms"), (6e4, 1e3, " s"), (3.6e6, 6e4, " min")),
        *((8.64e7, 3.6e6, " hour"), (3.1536e10, 8.64e7, " day"), (math.inf, 3.1536e10, " year")),
    ),
    "s": (
        *((1e-6, 1e-9, " ns"), (1e-3, 1e-6, " µs"), (1, 1e-3, " ms"), (60, 1, " s")),
        *((3600, 60, " min"), (86400, 3600, " hour"), (604800, 86400, " day")),
        *((31536000, 604800, " week"), (math.inf, 3.15569e7, " year")),
    ),
    "m": (
        *((60, 1, " min"), (1440, 60, " hour"), (10080, 1440, " day")),
        *((604800, 10080, " week"), (math.inf, 5.25948e5, " year")),
    ),
    "h": ((24, 1, " hour"), (168, 24, " day"), (8760, 168, " week"), (math.inf, 8760, " year")),
    "d": ((7, 1, " day"), (365, 7, " week"), (math.inf, 365, " year")),
}
_TIME_SCALES["us"] = _TIME_SCALES["µs"]
_DURATION_UNITS = (
    ("year", 31536000),
    ("month", 2592000),
    ("week", 604800),
    ("day", 86400),
    ("hour", 3600),
    ("minute", 60),
    ("second", 1),
    ("millisecond", 0.001),
)


def _time_scaled(
    value: float, decimals: int | None, scales: Sequence[tuple[float, float, str]]
) -> _Formatted:
    # the first scale whose limit the value stays under; the last has no limit
    if value == 0:  # "0 s", not "0 ns"
        return "", _to_fixed(0, decimals), next(s for _, d, s in scales if d == 1)
    for limit, divisor, suffix in scales:
        if abs(value) < limit:
            return "", _to_fixed(value / divisor, decimals), suffix
    return "", _to_fixed(value / scales[-1][1], decimals), scales[-1][2]


def _duration(seconds: float, decimals: int | None) -> str:
    # toDuration(): the two largest whole units by default, "1 hour, 2 minutes".
    if seconds == 0:
        return "0 seconds"
    if seconds < 0:
        return _duration(-seconds, decimals) + " ago"
    parts: list[str] = []
    rest = seconds
    wanted = 2 if decimals is None else decimals + 1
    for name, size in _DURATION_UNITS:
        if size < 1 and seconds >= 1:  # milliseconds only for what is under a second
            break
        count = rest / size
        if count >= 1 or parts:
            whole = math.floor(count)
            parts.append(f"{whole} {name}{'' if whole == 1 else 's'}")
            rest -= whole * size
            if len(parts) == wanted:
                break
    return ", ".join(parts) if parts else f"{_to_fixed(seconds * 1000, decimals)} milliseconds"


def _clock(seconds: float, with_days: bool) -> str:
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    whole = math.floor(seconds)
    days, rest = divmod(whole, 86400) if with_days else (0, whole)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{sign}{days} d {clock}" if days else sign + clock


def _formatted(value: float, unit: str, decimals: int | None) -> _Formatted:
    if not math.isfinite(value):
        return "", _to_fixed(value, decimals), ""
    if unit in ("", "none"):
        return "", _to_fixed(value, decimals), ""
    if unit == "short":
        return _scaled(value, decimals, 1000, _SHORT)
    if unit == "sishort":
        return _scaled(value, decimals, 1000, [f" {p}".rstrip() for p in _SI], _SI.index(""))
    if unit == "percent":
        return "", _to_fixed(value, decimals), "%"
    if unit == "percentunit":
        return "", _to_fixed(value * 100, decimals), "%"
    if unit in _TIME_SCALES:
        return _time_scaled(value, decimals, _TIME_SCALES[unit])
    if unit == "dtdurations":
        return "", _duration(value, decimals), ""
    if unit == "dtdurationms":
        return "", _duration(value / 1000, decimals), ""
    if unit in ("dthms", "dtdhms"):
        return "", _clock(value, unit == "dtdhms"), ""
    if unit in _BINARY_UNITS:
        symbol, offset = _BINARY_UNITS[unit]
        return _scaled(value, decimals, 1024, [f" {p}{symbol}" for p in _BINARY], offset)
    if unit in _SI_UNITS:
        symbol, offset = _SI_UNITS[unit]
        # no millibytes: data units start at the unprefixed one
        prefixes = _SI[_SI.index("") :] if symbol in _DATA_SYMBOLS else _SI
        units = [f" {p}{symbol}" for p in prefixes]
        return _scaled(value, decimals, 1000, units, prefixes.index("") + offset)
    if unit in _COUNTS:
        prefix, number, suffix = _scaled(value, decimals, 1000, _COUNT)
        return prefix, number, f"{suffix} {_COUNTS[unit]}"
    kind, _, rest = unit.partition(":")
    if rest and kind == "prefix":
        return rest, _to_fixed(value, decimals), ""
    if rest and kind == "suffix":
        return "", _to_fixed(value, decimals), rest
    if rest and kind == "count":
        prefix, number, suffix = _scaled(value, decimals, 1000, _COUNT)
        return prefix, number, f"{suffix} {rest}"
    return "", _to_fixed(value, decimals), f" {unit}"


def format_value(value: float | None, unit: str = "", decimals: int | None = None) -> str:
    """``value`` as Grafana shows it in unit ``unit`` (``s``, ``percentunit``, ``bytes``, …),
    with ``decimals`` places or Grafana's automatic ones; ``-`` for no value."""
    if value is None:
        return "-"
    return "".join(_formatted(float(value), unit or "", decimals))


def _axis_label(value: float, unit: str) -> str:
    # On an axis the padding zeros of toFixed() ("1.50 s") only add noise.
    prefix, number, suffix = _formatted(value, unit, None)
    if "." in number and "e" not in number:
        number = number.rstrip("0").rstrip(".")
    if number == "-0":
        number = "0"
    return prefix + number + suffix


# ---------------------------------------------------------------------------------------
# Names, steps, intervals

_LEGEND_LABEL = re.compile(r"\{\{\s*(.+?)\s*\}\}")


def format_legend(legend_format: str, labels: Mapping[str, str], expr: str = "") -> str:
    """A series' name as Grafana's Prometheus data source gives it: ``{{label}}`` replaced by
    the label's value (empty when missing); with no legend (or ``__auto``) the metric name
    and labels, ``up{job="app"}``; for a series without labels the query itself."""
    text = ""
    if legend_format and legend_format != "__auto":
        text = _LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), legend_format)
    if text:
        return text
    others = [f'{k}="{v}"' for k, v in labels.items() if k != "__name__"]
    name = labels.get("__name__", "")
    if not others:
        return name or one_line(expr)
    return f"{name}{{{', '.join(others)}}}"


# Round steps; each at most twice the one before, so the first giving no more than 400 points
# gives at least 200 wherever the range allows.
_NICE_STEPS_S = (
    *(1, 2, 3, 4, 5, 6, 10, 15, 20, 30, 40, 60, 90, 120, 180, 240, 300, 600, 900),
    *(1200, 1800, 2700, 3600, 5400, 7200, 10800, 14400, 21600, 43200, 86400),
)
_MAX_POINTS = 400


def choose_step(range_s: float, min_step_s: float = 1) -> int:
    """The step (s) of a range query over ``range_s`` seconds: the smallest round step giving
    at most 400 points (so 200 to 400 on any range over 200 s), never under ``min_step_s``
    (a panel's "Min interval") nor 1 s."""
    floor = max(1, math.ceil(min_step_s))
    for step in sorted({*_NICE_STEPS_S, floor}):
        if step >= floor and range_s / step <= _MAX_POINTS:
            return step
    return max(floor, math.ceil(range_s / 300))


def rate_interval(step_s: float, scrape_interval_s: float) -> float:
    """Grafana's ``$__rate_interval`` in seconds: max(4 scrape intervals, step + 1 scrape)."""
    return max(4 * scrape_interval_s, step_s + scrape_interval_s)


def _duration_text(seconds: float) -> str:
    if seconds == int(seconds):
        return format_duration(int(seconds))
    return f"{round(seconds * 1000)}ms"


def build_builtins(
    start: datetime, end: datetime, step_s: int, scrape_interval_s: float
) -> dict[str, str]:
    """Grafana's built-in variables for one query: ``$__interval`` (the step),
    ``$__rate_interval``, ``$__range`` (``3600s``), their ``_ms``/``_s`` forms, ``$__from``
    and ``$__to`` (Unix ms)."""
    range_ms = round((end - start).total_seconds() * 1000)
    rate_s = rate_interval(step_s, scrape_interval_s)
    return {
        "__interval": _duration_text(step_s),
        "__interval_ms": str(step_s * 1000),
        "__rate_interval": _duration_text(rate_s),
        "__rate_interval_ms": str(round(rate_s * 1000)),
        "__range": f"{round(range_ms / 1000)}s",
        "__range_s": str(round(range_ms / 1000)),
        "__range_ms": str(range_ms),
        "__from": str(round(start.timestamp() * 1000)),
        "__to": str(round(end.timestamp() * 1000)),
    }


def slug(text: str) -> str:
    """``text`` for a file name: lower case, runs of anything but letters and digits as one
    ``-``, at most 60 characters; ``panel`` when nothing is left."""
    cut = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].rstrip("-")
    return cut or "panel"


# ---------------------------------------------------------------------------------------
# Thresholds, mappings, reducers


def _steps(thresholds: Mapping[str, Any] | None) -> list[tuple[float, str]]:
    steps = (thresholds or {}).get("steps") or [{"color": "green", "value": None}]
    found = []
    for step in steps:
        raw = step.get("value")
        value = -math.inf if raw is None else float(raw)
        found.append((value, grafana_color(step.get("color"))))
    found.sort(key=lambda step: step[0])
    return found


def _percent(
    value: float, thresholds: Mapping[str, Any] | None, minimum: float | None, maximum: float | None
) -> float:
    # A "percentage" threshold is a share of the min..max range, absolute is the value itself.
    if (thresholds or {}).get("mode") != "percentage":
        return value
    if minimum is None or maximum is None or maximum <= minimum:
        return value
    return (value - minimum) / (maximum - minimum) * 100


def threshold_color(
    value: float | None,
    thresholds: Mapping[str, Any] | None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> str:
    """The colour of the threshold step ``value`` falls in: the last step whose value is at
    most ``value`` (the base step, value null, below all). ``mode: percentage`` thresholds
    are shares of ``minimum``..``maximum``; no value gets the base colour."""
    steps = _steps(thresholds)
    if value is None or math.isnan(value):
        return steps[0][1]
    where = _percent(value, thresholds, minimum, maximum)
    color = steps[0][1]
    for limit, step_color in steps:
        if where >= limit:
            color = step_color
    return color


def _mapping_key(value: float) -> str:
    return _js_string(value) if math.isfinite(value) else str(value)


def _mapped(result: Mapping[str, Any] | None) -> tuple[str | None, str | None] | None:
    if not result:
        return None
    color = result.get("color")
    text = result.get("text")
    return (str(text) if text is not None else None), (grafana_color(color) if color else None)


def _special(match: str, value: float | None) -> bool:
    if match == "null":
        return value is None
    if match == "nan":
        return value is not None and math.isnan(value)
    if match == "null+nan":
        return value is None or math.isnan(value)
    if match == "true":
        return value is not None and value == 1
    if match == "false":
        return value is not None and value == 0
    return False


def map_value(
    value: float | None, mappings: Sequence[Mapping[str, Any]] | None
) -> tuple[str | None, str | None] | None:
    """The (text, colour) the first matching value mapping gives ``value`` (types ``value``,
    ``range``, ``special``, ``regex``, and the pre-8.0 ``type: 1|2`` forms), either may be
    None; None when no mapping matches."""
    number = None if value is None or math.isnan(value) else value
    for mapping in mappings or []:
        kind = mapping.get("type")
        options = mapping.get("options") or {}
        found: tuple[str | None, str | None] | None = None
        if kind == "value" and number is not None:
            found = _mapped(options.get(_mapping_key(number)))
        elif kind == "range" and number is not None:
            low, high = options.get("from"), options.get("to")
            inside = (low is None or number >= float(low)) and (
                high is None or number <= float(high)
            )
            found = _mapped(options.get("result")) if inside else None
        elif kind == "special":
            found = (
                _mapped(options.get("result"))
                if _special(str(options.get("match")), value)
                else None
            )
        elif kind == "regex" and value is not None:
            pattern = options.get("pattern") or "(?!)"
            hit = re.search(pattern, _mapping_key(value)) is not None
            found = _mapped(options.get("result")) if hit else None
        elif kind == 1 and number is not None:  # the pre-8.0 value-to-text mapping
            if str(mapping.get("value")) == _mapping_key(number):
                found = (str(mapping.get("text")), None)
        elif kind == 2 and number is not None:  # the pre-8.0 range-to-text mapping
            low = float(mapping.get("from") or -math.inf)
            high = float(mapping.get("to") or math.inf)
            found = (str(mapping.get("text")), None) if low <= number <= high else None
        if found:
            return found
    return None


def _present(values: Sequence[float] | FloatArray) -> FloatArray:
    array = np.asarray(values, dtype=float)
    return array[~np.isnan(array)]


def reduce_values(values: Sequence[float] | FloatArray, calc: str = "lastNotNull") -> float | None:
    """One number for a series as Grafana's reducer ``calc`` makes it (``lastNotNull``,
    ``last``, ``firstNotNull``, ``first``, ``min``, ``max``, ``mean``, ``median``, ``sum``,
    ``count``, ``range``, ``diff``, ``delta``); NaN counts as null; None when nothing is left.
    An unknown reducer is ``lastNotNull``."""
    array = np.asarray(values, dtype=float)
    present = _present(array)
    if calc == "count":
        return float(present.size)
    if calc in ("last", "first"):
        if not array.size:
            return None
        picked = float(array[-1] if calc == "last" else array[0])
        return None if math.isnan(picked) else picked
    if not present.size:
        return None
    if calc == "firstNotNull":
        return float(present[0])
    if calc in ("min", "max", "mean", "median", "sum"):
        return float(getattr(np, calc)(present))
    if calc == "range":
        return float(present.max() - present.min())
    if calc == "diff":
        return float(present[-1] - present[0])
    if calc == "delta":  # the increase, counting a drop as a counter reset
        steps = np.diff(present)
        return float(np.where(steps >= 0, steps, present[1:]).sum())
    return float(present[-1])


# ---------------------------------------------------------------------------------------
# Tables and heatmaps


@dataclass(frozen=True)
class Table:
    """A table as drawn: column names and rows of cells (label text, or a number or None)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str | float | None, ...], ...]


def merge_tables(
    frames: Sequence[tuple[str, Sequence[tuple[Mapping[str, str], float | None]]]],
) -> Table:
    """One table from each query's (ref id, [(labels, value)]) as Grafana's "merge"
    transformation makes it: a row joins an earlier one when they agree on every label they
    share (at least one) and that row has no value of this query yet. Columns: the labels
    whose values vary between rows (all of them for a single row), then ``Value`` (one query)
    or ``Value #A``, ``Value #B``…; rows sorted by those labels."""
    names = [f"Value #{ref}" if len(frames) > 1 else "Value" for ref, _ in frames]
    rows: list[tuple[dict[str, str], dict[str, float | None]]] = []
    label_order: list[str] = []
    for (_, series), column in zip(frames, names, strict=True):
        for labels, value in sorted(series, key=lambda item: sorted(item[0].items())):
            label_order.extend(k for k in labels if k not in label_order)
            for row_labels, row_values in rows:
                shared = row_labels.keys() & labels.keys()
                agree = all(row_labels[k] == labels[k] for k in shared)
                joinable = shared or not (row_labels or labels)
                if column not in row_values and agree and joinable:
                    row_labels.update(labels)
                    row_values[column] = value
                    break
            else:
                rows.append((dict(labels), {column: value}))
    if len(rows) > 1:
        label_order = [k for k in label_order if len({r.get(k, "") for r, _ in rows}) > 1]
    rows.sort(key=lambda row: tuple(row[0].get(k, "") for k in label_order))
    cells = tuple(
        tuple([*(labels.get(k, "") for k in label_order), *(values.get(c) for c in names)])
        for labels, values in rows
    )
    return Table(tuple(label_order + names), cells)


def _organize(table: Table, transformations: Sequence[Mapping[str, Any]]) -> Table:
    # Grafana's "organize" transformation: hide, order and rename columns.
    for transformation in transformations:
        if transformation.get("id") != "organize" or transformation.get("disabled"):
            continue
        options = transformation.get("options") or {}
        excluded = {k for k, hide in (options.get("excludeByName") or {}).items() if hide}
        index = options.get("indexByName") or {}
        renames = options.get("renameByName") or {}
        keep = [i for i, c in enumerate(table.columns) if c not in excluded]
        keep.sort(key=lambda i: (index.get(table.columns[i], math.inf), i))
        table = Table(
            tuple(renames.get(table.columns[i]) or table.columns[i] for i in keep),
            tuple(tuple(row[i] for i in keep) for row in table.rows),
        )
    return table


def _bound(le: str) -> float:
    try:
        return float(le)
    except ValueError:
        return math.inf


def heatmap_buckets(
    buckets: Mapping[str, Sequence[float] | FloatArray],
) -> tuple[list[str], FloatArray]:
    """Prometheus's cumulative histogram buckets (``le`` → values over time) as Grafana's
    "heatmap" format draws them: bounds sorted by value (``+Inf`` last) and a matrix of each
    bucket's own count per time (row per bucket; a missing sample counts 0, and a drop, from
    a scrape falling between the buckets' samples, 0 too)."""
    bounds = sorted(buckets, key=_bound)
    if not bounds:
        return [], np.zeros((0, 0))
    cumulative = np.nan_to_num(np.array([np.asarray(buckets[b], dtype=float) for b in bounds]))
    counts = np.diff(cumulative, axis=0, prepend=np.zeros((1, cumulative.shape[1])))
    return bounds, np.clip(counts, 0, None)


# ---------------------------------------------------------------------------------------
# The grid


def _grid_pos(panel: Mapping[str, Any]) -> tuple[int, int, int, int]:
    pos = panel.get("gridPos") or {}
    row = panel.get("type") == "row"
    x = min(max(int(pos.get("x", 0)), 0), 23)
    w = min(max(int(pos.get("w", 24 if row else 12)), 1), 24 - x)
    return x, max(int(pos.get("y", 0)), 0), w, max(int(pos.get("h", 1 if row else 8)), 1)


def grid_positions(
    dashboard: Mapping[str, Any],
) -> list[tuple[Mapping[str, Any], tuple[int, int, int, int]]]:
    """Every panel and row of a dashboard with its (x, y, w, h) on the 24-column grid, top
    to bottom. A collapsed row's panels are placed under it as Grafana places them when the
    row is opened, and what follows moves down by their height."""
    top = list(dashboard.get("panels") or [])
    placed: list[tuple[Mapping[str, Any], tuple[int, int, int, int]]] = []
    shift = 0
    for panel in sorted(top, key=lambda p: _grid_pos(p)[1::-1]):
        x, y, w, h = _grid_pos(panel)
        placed.append((panel, (x, y + shift, w, h)))
        inner = panel.get("panels") or []
        if panel.get("type") == "row" and panel.get("collapsed") and inner:
            first = min(_grid_pos(p)[1] for p in inner)
            for child in sorted(inner, key=lambda p: _grid_pos(p)[1::-1]):
                cx, cy, cw, ch = _grid_pos(child)
                placed.append((child, (cx, y + shift + h + cy - first, cw, ch)))
            shift += max(_grid_pos(p)[1] + _grid_pos(p)[3] for p in inner) - first
    return placed


_COLUMN_PX = 64  # a grid column and the 8 px gap after it: 24 columns are 1528 px wide
_ROW_PX = 38  # Grafana: 30 px a height unit, 8 px between units
_GAP_PX = 8
_DPI = 100


def panel_pixels(w: int, h: int) -> tuple[int, int]:
    """The size in pixels of a panel ``w`` columns wide and ``h`` units high, as the page
    lays it out (Grafana's 30 px units with 8 px gaps)."""
    return w * _COLUMN_PX - _GAP_PX, h * _ROW_PX - _GAP_PX


# ---------------------------------------------------------------------------------------
# Pages


@dataclass(frozen=True)
class GridItem:
    """One thing on a dashboard page: a panel's image (its path relative to the page), or a
    row title when ``image`` is None."""

    title: str
    x: int
    y: int
    w: int
    h: int
    image: str | None = None
    note: str = ""


_PAGE_CSS = f"""
body {{ background: {_PAGE_BG}; color: {_TEXT}; margin: 16px;
  font: 14px/1.4 Inter, "Helvetica Neue", Arial, sans-serif; }}
a {{ color: #6E9FFF; }}
h1 {{ font-size: 20px; font-weight: 500; margin: 0 0 4px; }}
.meta {{ color: {_TEXT_WEAK}; margin: 0 0 12px; }}
table.variables {{ border-collapse: collapse; margin-bottom: 16px; font-size: 13px; }}
table.variables th, table.variables td {{ padding: 2px 12px 2px 0; text-align: left; }}
table.variables td {{ font-family: monospace; }}
.grid {{ display: grid; grid-template-columns: repeat(24, {_COLUMN_PX - _GAP_PX}px);
  grid-auto-rows: {_ROW_PX - _GAP_PX}px; gap: {_GAP_PX}px; }}
.panel {{ margin: 0; background: {_PANEL_BG}; border: 1px solid {_LINE}; border-radius: 2px;
  overflow: hidden; box-sizing: border-box; }}
.panel img {{ display: block; width: 100%; height: 100%; }}
.row {{ margin: 0; align-self: end; font-size: 16px; font-weight: 500;
  border-bottom: 1px solid {_LINE}; }}
.row small {{ color: {_TEXT_WEAK}; font-weight: 400; font-size: 12px; }}
"""


def _time_range(start: datetime, end: datetime) -> str:
    length = format_duration(round((end - start).total_seconds()))
    shown = [t.isoformat(sep=" ", timespec="seconds") for t in (start, end)]
    return f"{shown[0]} to {shown[1]} ({length})"


def build_dashboard_html(
    title: str,
    start: datetime,
    end: datetime,
    variables: Mapping[str, str],
    items: Sequence[GridItem],
) -> str:
    """The page of one dashboard: its title, time range, variable values, and every item at
    its grid position (CSS grid: 24 columns, 30 px units)."""
    e = html.escape
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(title)} (preview)</title>",
        f"<style>{_PAGE_CSS}</style>",
        "</head>",
        "<body>",
        '<p><a href="index.html">All dashboards</a></p>',
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">{e(_time_range(start, end))}</p>',
    ]
    if variables:
        lines.append('<table class="variables">')
        lines.append("<tr><th>Variable</th><th>Value</th></tr>")
        for name, value in sorted(variables.items()):
            lines.append(f"<tr><th>${e(name)}</th><td>{e(value)}</td></tr>")
        lines.append("</table>")
    lines.append('<main class="grid">')
    for item in items:
        place = f"grid-column: {item.x + 1} / span {item.w}; grid-row: {item.y + 1} / span {item.h}"
        if item.image is None:
            note = f" <small>{e(item.note)}</small>" if item.note else ""
            lines.append(f'<h2 class="row" style="{place}">{e(item.title)}{note}</h2>')
            continue
        width, height = panel_pixels(item.w, item.h)
        lines.append(
            f'<figure class="panel" style="{place}"><img src="{e(item.image)}" '
            f'alt="{e(item.title)}" title="{e(item.title)}" width="{width}" height="{height}">'
            "</figure>"
        )
    lines += ["</main>", "</body>", "</html>", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class QueryPreview:
    """What one query of a panel returned."""

    ref_id: str
    #: the query as sent, variables substituted
    expr: str
    instant: bool
    #: seconds between points of a range query; 0 for an instant one
    step_s: int
    #: how many series Prometheus returned
    series: int
    #: Prometheus's reason when it rejected the query
    error: str | None = None


@dataclass(frozen=True)
class PanelPreview:
    """One drawn panel."""

    panel_id: int
    title: str
    type: str
    png: Path
    queries: tuple[QueryPreview, ...]
    #: why the panel could not be drawn (its JSON is not what the type expects)
    problem: str | None = None

    @property
    def series(self) -> dict[str, int]:
        """Series returned, by query ref id."""
        return {q.ref_id: q.series for q in self.queries}

    @property
    def errors(self) -> tuple[str, ...]:
        """``query A rejected: …`` for each query Prometheus rejected; the drawing problem."""
        rejected = tuple(f"query {q.ref_id} rejected: {q.error}" for q in self.queries if q.error)
        return rejected + ((self.problem,) if self.problem else ())

    @property
    def no_data(self) -> bool:
        """The panel has queries, none failed, and none returned a series."""
        return bool(self.queries) and not self.errors and all(q.series == 0 for q in self.queries)


@dataclass(frozen=True)
class DashboardPreview:
    """One dashboard's page and panels."""

    uid: str
    title: str
    html: Path
    #: the template variables' values used, by name
    variables: Mapping[str, str]
    panels: tuple[PanelPreview, ...]


@dataclass(frozen=True)
class PreviewResult:
    """Every dashboard previewed, and the index page linking them."""

    index: Path
    dashboards: tuple[DashboardPreview, ...]

    @property
    def errors(self) -> list[str]:
        """Every rejected query and undrawable panel: ``uid: panel "title" (id) query A …``."""
        return [
            f'{d.uid}: panel "{p.title}" ({p.panel_id}) {error}'
            for d in self.dashboards
            for p in d.panels
            for error in p.errors
        ]

    def summary_lines(self) -> list[str]:
        """What the CLI prints: a line per dashboard, each panel without data, each error,
        and the index page."""
        lines = []
        for d in self.dashboards:
            empty = sum(p.no_data for p in d.panels)
            errors = sum(len(p.errors) for p in d.panels)
            lines.append(
                f"{d.uid}: {len(d.panels)} panels drawn, {empty} without data, "
                f"{errors} errors: {d.html}"
            )
        lines += [
            f'no data: {d.uid}: panel "{p.title}" ({p.panel_id})'
            for d in self.dashboards
            for p in d.panels
            if p.no_data
        ]
        lines += [f"error: {error}" for error in self.errors]
        lines.append(f"index: {self.index}")
        return lines


def build_index_html(dashboards: Sequence[DashboardPreview], start: datetime, end: datetime) -> str:
    """The page linking every dashboard's page, with its panel count and problems."""
    e = html.escape
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        "<title>Dashboard previews</title>",
        f"<style>{_PAGE_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>Dashboard previews</h1>",
        f'<p class="meta">{e(_time_range(start, end))}</p>',
        "<ul>",
    ]
    for dashboard in dashboards:
        count = len(dashboard.panels)
        problems = sum(len(p.errors) for p in dashboard.panels)
        empty = sum(p.no_data for p in dashboard.panels)
        notes = [f"{count} panel{'s' if count != 1 else ''}"]
        if empty:
            notes.append(f"{empty} with no data")
        if problems:
            notes.append(f"{problems} error{'s' if problems != 1 else ''}")
        lines.append(
            f'<li><a href="{e(dashboard.html.name)}">{e(dashboard.title)}</a> '
            f"<code>{e(dashboard.uid)}</code>: {e(', '.join(notes))}</li>"
        )
    lines += ["</ul>", "</body>", "</html>", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Querying


@dataclass(frozen=True)
class _Series:
    ref_id: str
    labels: Mapping[str, str]
    name: str
    times: FloatArray  # Unix seconds
    values: FloatArray  # NaN where Prometheus had no sample
    step_s: int  # 0: an instant result


@dataclass(frozen=True)
class _Frame:
    """What one query returned."""

    ref_id: str
    expr: str
    instant: bool
    step_s: int
    series: tuple[_Series, ...]
    error: str | None = None


@dataclass(frozen=True)
class _Context:
    start: datetime
    end: datetime
    scrape_interval_s: float

    @property
    def zone(self) -> tzinfo:
        return self.start.tzinfo or UTC


def _seconds(text: Any) -> float:
    """A Grafana interval ("30s", "1m", ">10s") in seconds; 0 when unset or a variable."""
    match = re.fullmatch(r">?\s*(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", str(text or "").strip())
    if not match:
        return 0
    size = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return float(match.group(1)) * size


def _targets(uid: str, panel: Mapping[str, Any]) -> list[tuple[PanelQuery, Mapping[str, Any]]]:
    return [(query, query.target) for query in panel_queries({"uid": uid, "panels": [panel]})]


def _rejection(error: PrometheusError, expr: str) -> str | None:
    """Prometheus's reason when it rejected the query (HTTP 400/422), None when the error is
    Prometheus being unreachable or failing (which must stop the whole preview)."""
    return error.reason if isinstance(error, QueryRejected) else None


def _parse(
    raw: list[Any], ref_id: str, legend: str, expr: str, grid: FloatArray | None, step: int
) -> tuple[_Series, ...]:
    """The series of a query result; a range result's values placed on ``grid`` (the
    step's times), NaN where Prometheus had no sample, as Grafana leaves a gap."""
    if raw and not isinstance(raw[0], dict):  # a scalar or string result: [time, "value"]
        raw = [{"metric": {}, "value": raw}]
    found = []
    for item in raw:
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        points = item.get("values") or ([item["value"]] if "value" in item else [])
        times = np.array([float(t) for t, _ in points], dtype=float)
        values = np.array([float(v) for _, v in points], dtype=float)
        if grid is not None and step:
            aligned = np.full(grid.shape, np.nan)
            index = np.rint((times - grid[0]) / step).astype(int)
            inside = (index >= 0) & (index < grid.size)
            aligned[index[inside]] = values[inside]
            times, values = grid, aligned
        name = format_legend(legend, labels, expr)
        found.append(_Series(ref_id, labels, name, times, values, step if grid is not None else 0))
    return tuple(found)


def _fetch(
    client: PrometheusClient,
    uid: str,
    panel: Mapping[str, Any],
    variables: Mapping[str, str],
    ctx: _Context,
) -> list[_Frame]:
    frames = []
    range_s = (ctx.end - ctx.start).total_seconds()
    for number, (query, target) in enumerate(_targets(uid, panel)):
        if query.hidden:
            continue
        ref_id = query.ref_id or chr(ord("A") + number % 26)
        min_step = max(1.0, _seconds(panel.get("interval")), _seconds(target.get("interval")))
        step = choose_step(range_s, min_step)
        expr = expand(
            query.expr, variables, build_builtins(ctx.start, ctx.end, step, ctx.scrape_interval_s)
        )
        instant = target.get("instant") is True and target.get("range") is not True
        step_s = 0 if instant else step
        # Grafana aligns both ends down to a multiple of the step, so panels agree.
        first = math.floor(ctx.start.timestamp() / step) * step
        last = max(first, math.floor(ctx.end.timestamp() / step) * step)
        try:
            if instant:
                raw = client.instant(expr, ctx.end.timestamp())
            else:
                start, end = (datetime.fromtimestamp(t, UTC) for t in (first, last))
                raw = client.span(expr, start, end, step)
        except PrometheusError as exc:
            reason = _rejection(exc, expr)
            if reason is None:
                raise
            frames.append(_Frame(ref_id, expr, instant, step_s, (), reason))
            continue
        grid = None if instant else first + step * np.arange((last - first) // step + 1.0)
        series = _parse(raw, ref_id, query.legend, expr, grid, step_s)
        frames.append(_Frame(ref_id, expr, instant, step_s, series))
    return frames


# ---------------------------------------------------------------------------------------
# Field config


def _defaults(panel: Mapping[str, Any]) -> Mapping[str, Any]:
    return (panel.get("fieldConfig") or {}).get("defaults") or {}


def _options(panel: Mapping[str, Any]) -> Mapping[str, Any]:
    return panel.get("options") or {}


def _overrides(panel: Mapping[str, Any], name: str, ref_id: str) -> dict[str, Any]:
    """The properties Grafana's field overrides set on the field named ``name`` of query
    ``ref_id`` (matchers byName, byRegexp, byFrameRefID, byType)."""
    found: dict[str, Any] = {}
    for override in (panel.get("fieldConfig") or {}).get("overrides") or []:
        matcher = override.get("matcher") or {}
        kind, option = matcher.get("id"), matcher.get("options")
        if kind == "byName":
            hit = option == name
        elif kind == "byRegexp":
            try:
                hit = re.fullmatch(str(option), name) is not None
            except re.error:
                hit = False
        elif kind == "byFrameRefID":
            hit = option == ref_id
        else:
            hit = kind == "byType" and option == "number"
        if hit:
            for prop in override.get("properties") or []:
                found[str(prop.get("id"))] = prop.get("value")
    return found


def _decimals(config: Mapping[str, Any]) -> int | None:
    value = config.get("decimals")
    return int(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class _Trace:
    """A series with what the panel's field config says about it."""

    series: _Series
    name: str
    color: str
    unit: str
    decimals: int | None
    in_legend: bool
    negative: bool
    mappings: Sequence[Mapping[str, Any]]
    thresholds: Mapping[str, Any] | None


def _traces(panel: Mapping[str, Any], frames: Sequence[_Frame]) -> list[_Trace]:
    defaults = _defaults(panel)
    color_mode = (defaults.get("color") or {}).get("mode", "palette-classic")
    fixed = (defaults.get("color") or {}).get("fixedColor")
    found = []
    index = 0
    for frame in frames:
        for series in frame.series:
            props = _overrides(panel, series.name, series.ref_id)
            hide = props.get("custom.hideFrom") or {}
            name = str(props.get("displayName") or _display_name(defaults, series))
            thresholds = props.get("thresholds") or defaults.get("thresholds")
            color_prop = props.get("color") or {}
            if color_prop.get("mode") == "fixed" and color_prop.get("fixedColor"):
                color = grafana_color(color_prop["fixedColor"])
            elif color_mode == "fixed" and fixed:
                color = grafana_color(fixed)
            elif color_mode == "thresholds":
                color = threshold_color(reduce_values(series.values), thresholds)
            else:
                color = _palette(index)
            index += 1
            if hide.get("viz"):
                continue
            found.append(
                _Trace(
                    series=series,
                    name=name,
                    color=color,
                    unit=str(props.get("unit", defaults.get("unit", "")) or ""),
                    decimals=_decimals(props) if "decimals" in props else _decimals(defaults),
                    in_legend=not hide.get("legend"),
                    negative=props.get("custom.transform") == "negative-Y",
                    mappings=props.get("mappings") or defaults.get("mappings") or [],
                    thresholds=thresholds,
                )
            )
    return found


def _display_name(defaults: Mapping[str, Any], series: _Series) -> str:
    template = defaults.get("displayName")
    if not template:
        return series.name
    text = re.sub(
        r"\$\{__field\.labels\.(\w+)\}", lambda m: series.labels.get(m.group(1), ""), template
    )
    return re.sub(r"\$\{__(?:series|field)\.name\}", series.name, text)


# ---------------------------------------------------------------------------------------
# Drawing

_STYLE: dict[Any, Any] = {
    "text.parse_math": False,  # a "$" in a title or legend is a dollar, not TeX
    "font.size": 7.5,
    "text.color": _TEXT,
    "axes.labelcolor": _TEXT,
    "axes.edgecolor": _LINE,
    "axes.facecolor": _PANEL_BG,
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": _LINE,
    "ytick.color": _LINE,
    "xtick.labelcolor": _TEXT_WEAK,
    "ytick.labelcolor": _TEXT_WEAK,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "grid.color": _LINE,
    "grid.linewidth": 0.6,
    "figure.facecolor": _PANEL_BG,
    "savefig.facecolor": _PANEL_BG,
    "legend.frameon": False,
    "legend.fontsize": 7,
    "legend.labelcolor": _TEXT,
}
_CHAR_PX = 5.3  # about how wide a 7 pt character is at 100 dpi
_TITLE_PX = 26  # the band the title takes at the top


def _points(pixels: float) -> float:
    return pixels * 72 / _DPI


def _fit(text: str, width_px: float, char_px: float = _CHAR_PX) -> str:
    room = max(1, int(width_px / char_px))
    return text if len(text) <= room else text[: max(0, room - 1)] + "…"


class _Canvas:
    """A panel's figure, with placement in pixels from its edges."""

    def __init__(self, width_px: int, height_px: int) -> None:
        self.w = width_px
        self.h = height_px
        self.fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI)
        FigureCanvasAgg(self.fig)

    def axes(self, left: float, bottom: float, right: float, top: float) -> Axes:
        width = max(1.0, self.w - left - right)
        height = max(1.0, self.h - bottom - top)
        return self.fig.add_axes((left / self.w, bottom / self.h, width / self.w, height / self.h))

    def place(self, ax: Axes, left: float, bottom: float, right: float, top: float) -> None:
        width = max(1.0, self.w - left - right)
        height = max(1.0, self.h - bottom - top)
        ax.set_position((left / self.w, bottom / self.h, width / self.w, height / self.h))

    def pixel_axes(self, left: float, bottom: float, right: float, top: float) -> Axes:
        """Axes without decorations whose data units are pixels, y down from the top."""
        ax = self.axes(left, bottom, right, top)
        width = max(1.0, self.w - left - right)
        height = max(1.0, self.h - bottom - top)
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_axis_off()
        return ax

    def text(self, x: float, y_from_top: float, text: str, **style: Any) -> None:
        self.fig.text(x / self.w, 1 - y_from_top / self.h, text, **style)

    def title(self, title: str) -> None:
        self.text(
            8,
            6,
            _fit(title, self.w - 16, 6.2),
            ha="left",
            va="top",
            fontsize=8.5,
            fontweight="bold",
            color=_TEXT,
        )

    def message(self, text: str, color: str = _TEXT, size: float = 11) -> None:
        top = _TITLE_PX
        self.text(
            self.w / 2,
            top + (self.h - top) / 2,
            text,
            ha="center",
            va="center",
            fontsize=size,
            color=color,
        )


def _days(times: FloatArray | Sequence[float]) -> FloatArray:
    """Unix seconds as matplotlib's date numbers (days since its 1970 epoch)."""
    stamps = np.rint(np.asarray(times, dtype=float) * 1000).astype("int64").astype("datetime64[ms]")
    return np.asarray(mdates.date2num(stamps), dtype=float)


def time_locator(zone: tzinfo, most_ticks: int) -> mdates.AutoDateLocator:
    """Ticks at round times, at most ``most_ticks``. matplotlib's own second and minute
    steps stop at 30 and 15: a 95-second range on a narrow panel found no step and warned
    on every panel, so longer round steps are added."""
    locator = mdates.AutoDateLocator(tz=zone, minticks=2, maxticks=most_ticks)
    locator.intervald[mdates.SECONDLY] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600]
    locator.intervald[mdates.MINUTELY] = [1, 2, 5, 10, 15, 30, 60, 120, 240, 360]
    return locator


def _time_axis(ax: Axes, canvas: _Canvas, ctx: _Context) -> None:
    span_s = (ctx.end - ctx.start).total_seconds()
    pattern = "%H:%M" if span_s <= 86400 else "%m/%d %H:%M" if span_s <= 7 * 86400 else "%m/%d"
    if span_s <= 600:
        pattern = "%H:%M:%S"
    most = max(3, int(canvas.w / 110))
    ax.xaxis.set_major_locator(time_locator(ctx.zone, most))
    ax.xaxis.set_major_formatter(mdates.DateFormatter(pattern, tz=ctx.zone))
    ax.set_xlim(*_days([ctx.start.timestamp(), ctx.end.timestamp()]))
    ax.tick_params(axis="x", length=0, pad=3)


def _legend_entries(
    canvas: _Canvas, entries: Sequence[tuple[str, str]], right: bool, room_px: float
) -> tuple[float, str | None]:
    """Draws a Grafana-style list legend at the bottom (or right); returns the pixels it
    takes and where."""
    if not entries:
        return 0, None
    longest = max(len(label) for label, _ in entries)
    handles = [Line2D([], [], color=color, linewidth=3) for _, color in entries]
    labels = [label for label, _ in entries]
    if right:
        width = min(canvas.w * 0.35, longest * _CHAR_PX + 28)
        rows = max(1, int((canvas.h - _TITLE_PX - 8) / 13))
        labels = [_fit(label, width - 24) for label in labels]
        if len(labels) > rows:
            handles, labels = (
                handles[: rows - 1],
                [*labels[: rows - 1], f"+{len(labels) - rows + 1} more"],
            )
            handles.append(Line2D([], [], linewidth=0))
        canvas.fig.legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=((canvas.w - width) / canvas.w, 1 - _TITLE_PX / canvas.h),
            ncol=1,
            handlelength=1.0,
            handletextpad=0.5,
            borderaxespad=0,
            borderpad=0,
            labelspacing=0.3,
        )
        return width, "right"
    column = min(canvas.w - 16, longest * _CHAR_PX + 30)
    ncol = max(1, int((canvas.w - 16) // column))
    rows = math.ceil(len(labels) / ncol)
    fit_rows = max(1, int(room_px / 13))
    if rows > fit_rows:
        keep = fit_rows * ncol - 1
        labels = [*labels[:keep], f"+{len(labels) - keep} more"]
        handles = [*handles[:keep], Line2D([], [], linewidth=0)]
        rows = fit_rows
    labels = [_fit(label, column - 24) for label in labels]
    height = rows * 13 + 4
    canvas.fig.legend(
        handles,
        labels,
        loc="lower left",
        bbox_to_anchor=(8 / canvas.w, 4 / canvas.h),
        ncol=ncol,
        handlelength=1.0,
        handletextpad=0.5,
        columnspacing=1.4,
        borderaxespad=0,
        borderpad=0,
        labelspacing=0.3,
    )
    return height, "bottom"


def _draw_thresholds(ax: Axes, thresholds: Mapping[str, Any] | None, style: str) -> None:
    low, high = ax.get_ylim()
    steps = _steps(thresholds)
    percentage = (thresholds or {}).get("mode") == "percentage"
    levels = [
        low + (high - low) * v / 100 if percentage and math.isfinite(v) else v for v, _ in steps
    ]
    if "area" in style:
        for i, (_, color) in enumerate(steps):
            bottom = max(levels[i], low)
            top = min(levels[i + 1] if i + 1 < len(steps) else math.inf, high)
            if top > bottom:
                ax.axhspan(bottom, top, color=color, alpha=0.15, linewidth=0, zorder=0)
    if "line" in style or "dashed" in style:
        for level, (_, color) in zip(levels[1:], steps[1:], strict=True):
            if low <= level <= high:
                ax.axhline(
                    level,
                    color=color,
                    linewidth=1,
                    zorder=1.9,  # over the grid (1.5), under the series (2)
                    linestyle=(0, (4, 3)) if "dashed" in style else "-",
                )
    ax.set_ylim(low, high)


def _y_axis(ax: Axes, unit: str, defaults: Mapping[str, Any], stacking: str) -> None:
    custom = defaults.get("custom") or {}
    scale = custom.get("scaleDistribution") or {}
    if scale.get("type") == "log":
        ax.set_yscale("log", base=float(scale.get("log", 10)))
    label_unit = "percentunit" if stacking == "percent" else unit
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _axis_label(v, label_unit)))
    ax.yaxis.set_major_locator(MaxNLocator(nbins="auto", min_n_ticks=3))
    ax.tick_params(axis="y", length=0, pad=4)
    ax.grid(True, axis="both")
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    low, high = ax.get_ylim()
    soft_min, soft_max = custom.get("axisSoftMin"), custom.get("axisSoftMax")
    if scale.get("type") != "log":
        if low >= 0 and high > 0:  # Grafana starts a non-negative axis at zero
            low = 0
        if soft_min is not None:
            low = min(low, float(soft_min))
        if soft_max is not None:
            high = max(high, float(soft_max))
    if defaults.get("min") is not None:
        low = float(defaults["min"])
    if defaults.get("max") is not None:
        high = float(defaults["max"])
    if high <= low:
        high = low + 1
    ax.set_ylim(low, high)
    if label_unit in _BINARY_UNITS and scale.get("type") != "log" and high > 1024:
        # round ticks in the unit shown (256 MiB, not 268 MB as 255.9 MiB)
        size = 1024.0 ** math.floor(math.log(max(abs(low), abs(high)), 1024))
        ticks = MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 4, 5, 10]).tick_values(
            low / size, high / size
        )
        ax.yaxis.set_major_locator(
            FixedLocator([t * size for t in ticks if low <= t * size <= high])
        )
    if custom.get("axisLabel"):
        ax.set_ylabel(str(custom["axisLabel"]), fontsize=7, color=_TEXT_WEAK)


def _y_label_px(ax: Axes, unit: str) -> float:
    low, high = ax.get_ylim()
    ticks = [t for t in ax.get_yticks() if low <= t <= high]
    longest = max((len(_axis_label(t, unit)) for t in ticks), default=3)
    return longest * 4.8 + 14 + (12 if ax.get_ylabel() else 0)


_LINE_STEPS = {"stepAfter": "steps-post", "stepBefore": "steps-pre"}
_FILL_STEPS: dict[str, Literal["pre", "post"]] = {"steps-post": "post", "steps-pre": "pre"}


def _draw_timeseries(
    canvas: _Canvas, panel: Mapping[str, Any], frames: Sequence[_Frame], ctx: _Context
) -> None:
    defaults = _defaults(panel)
    custom = defaults.get("custom") or {}
    options = _options(panel)
    traces = _traces(panel, frames)
    unit = str(defaults.get("unit", "") or "")
    stacking = (custom.get("stacking") or {}).get("mode", "none")
    style = custom.get("drawStyle", "line")
    fill = float(custom.get("fillOpacity", 0) or 0) / 100
    width = float(custom.get("lineWidth", 1) or 1)
    drawstyle = _LINE_STEPS.get(custom.get("lineInterpolation", ""), "default")

    legend = options.get("legend") or {}
    calcs = [str(c) for c in legend.get("calcs") or []]
    show_legend = legend.get("showLegend", True) and legend.get("displayMode") != "hidden"
    entries = []
    for trace in traces if show_legend else []:
        if not trace.in_legend:
            continue
        label = trace.name
        for calc in calcs:
            label += (
                f"  {calc}: {format_value(reduce_values(trace.series.values, calc), trace.unit)}"
            )
        entries.append((label, trace.color))
    room = canvas.h - _TITLE_PX - 18 - 50
    used, where = _legend_entries(canvas, entries, legend.get("placement") == "right", room)
    bottom = 20 + (used if where == "bottom" else 0)
    right = 10 + (used if where == "right" else 0)

    ax = canvas.axes(50, bottom, right, _TITLE_PX + 2)
    base: FloatArray | None = None
    totals = None
    if stacking == "percent":
        totals = np.nansum([np.abs(np.nan_to_num(t.series.values)) for t in traces], axis=0)
    for trace in traces:
        series = trace.series
        x = _days(series.times)
        values = -series.values if trace.negative else series.values.copy()
        floor = np.zeros_like(values)
        if stacking in ("normal", "percent"):
            level = np.nan_to_num(values)
            if totals is not None:
                level = np.divide(level, totals, out=np.zeros_like(level), where=totals > 0)
            floor = np.zeros_like(values) if base is None else base
            top = floor + level
            values = np.where(np.isnan(values), np.nan, top)
            base = top
        if style == "bars" and series.step_s:
            bar_width = series.step_s / 86400 * 0.8
            ax.bar(
                x,
                values - floor,
                bottom=floor,
                width=bar_width,
                color=trace.color,
                alpha=max(fill, 0.8),
                linewidth=0,
            )
        elif style == "points" or values.size == 1:
            ax.plot(x, values, linestyle="none", marker="o", markersize=2.5, color=trace.color)
        else:
            ax.plot(x, values, color=trace.color, linewidth=width, drawstyle=drawstyle)
            if fill > 0:
                where_step: Literal["pre", "post"] | None = _FILL_STEPS.get(drawstyle)
                ax.fill_between(
                    x, floor, values, color=trace.color, alpha=fill, linewidth=0, step=where_step
                )
    _time_axis(ax, canvas, ctx)
    _y_axis(ax, unit, defaults, stacking)
    threshold_style = (custom.get("thresholdsStyle") or {}).get("mode", "off")
    if threshold_style != "off":
        _draw_thresholds(ax, defaults.get("thresholds"), threshold_style)
    canvas.place(ax, _y_label_px(ax, unit), bottom, right, _TITLE_PX + 2)


def _stat_values(
    panel: Mapping[str, Any], traces: Sequence[_Trace]
) -> list[tuple[_Trace, float | None, str, str]]:
    """Each trace with its reduced value, the text shown and the colour."""
    reduce_options = _options(panel).get("reduceOptions") or {}
    calc = (reduce_options.get("calcs") or ["lastNotNull"])[0]
    color_mode = (_defaults(panel).get("color") or {}).get("mode", "thresholds")
    found = []
    for trace in traces:
        value = reduce_values(trace.series.values, calc)
        mapped = map_value(value, trace.mappings)
        text = mapped[0] if mapped and mapped[0] is not None else None
        color = mapped[1] if mapped and mapped[1] else None
        if color is None:
            if color_mode in ("thresholds", "continuous-GrYlRd") or color_mode.startswith("shades"):
                color = threshold_color(value, trace.thresholds, *_min_max(panel, [value]))
            else:
                color = trace.color
        shown = text if text is not None else format_value(value, trace.unit, trace.decimals)
        found.append((trace, value, shown, color))
    return found


def _min_max(panel: Mapping[str, Any], values: Iterable[float | None]) -> tuple[float, float]:
    defaults = _defaults(panel)
    present = [v for v in values if v is not None and math.isfinite(v)]
    low = float(defaults["min"]) if defaults.get("min") is not None else min([0.0, *present])
    high = float(defaults["max"]) if defaults.get("max") is not None else max([low, *present])
    if high <= low:
        high = low + 1
    return low, high


def _tiles(count: int, width: float, height: float, vertical: bool) -> tuple[int, int]:
    if vertical or (height > width and count > 1):
        rows = min(count, max(1, int(height // 48)))
        return math.ceil(count / rows), rows
    columns = min(count, max(1, int(width // 90)))
    return columns, math.ceil(count / columns)


def _draw_stat(
    canvas: _Canvas, panel: Mapping[str, Any], frames: Sequence[_Frame], ctx: _Context, gauge: bool
) -> None:
    options = _options(panel)
    values = _stat_values(panel, _traces(panel, frames))
    if not values:
        canvas.message("No data")
        return
    ax = canvas.pixel_axes(4, 4, 4, _TITLE_PX)
    area_w, area_h = canvas.w - 8, canvas.h - 4 - _TITLE_PX
    columns, rows = _tiles(len(values), area_w, area_h, options.get("orientation") == "vertical")
    tile_w, tile_h = area_w / columns, area_h / rows
    color_mode = options.get("colorMode", "value")
    text_mode = options.get("textMode", "auto")
    graph = options.get("graphMode", "area") != "none" and not gauge
    low, high = _min_max(panel, [v for _, v, _, _ in values])
    for i, (trace, value, text, color) in enumerate(values):
        x0, y0 = (i % columns) * tile_w, (i // columns) * tile_h
        # textMode "name" shows the series name where the value would be
        name_shown = text_mode == "value_and_name" or (text_mode == "auto" and len(values) > 1)
        value_shown = text_mode != "none"
        if text_mode == "name":
            text = trace.name
        text_color = color
        if color_mode in ("background", "background_solid"):
            ax.add_patch(
                Rectangle((x0 + 2, y0 + 2), tile_w - 4, tile_h - 4, color=color, linewidth=0)
            )
            text_color = "#FFFFFF"
        elif color_mode == "none":
            text_color = _TEXT
        top = y0
        if name_shown:
            ax.text(
                x0 + tile_w / 2,
                y0 + 4,
                _fit(trace.name, tile_w - 8),
                ha="center",
                va="top",
                fontsize=7.5,
                color=text_color if color_mode.startswith("background") else _TEXT,
            )
            top += 16
        body = y0 + tile_h - top
        if gauge:
            _draw_gauge(canvas, ax, (x0, top, tile_w, body), value, text, color, trace, (low, high))
            continue
        spark = graph and trace.series.values.size > 1 and body > 40
        number_h = body * (0.6 if spark else 1)
        if value_shown:
            size_px = min(number_h * 0.55, (tile_w - 8) / max(1, 0.62 * len(text)), 60)
            ax.text(
                x0 + tile_w / 2,
                top + number_h / 2 + 2,
                text,
                ha="center",
                va="center",
                fontsize=_points(size_px),
                fontweight="bold",
                color=text_color,
            )
        if spark:
            _sparkline(
                canvas,
                trace,
                text_color if color_mode == "background" else color,
                (x0 + 4, y0 + tile_h - 4, tile_w - 8, body * 0.4),
                ctx,
            )


def _sparkline(
    canvas: _Canvas,
    trace: _Trace,
    color: str,
    box: tuple[float, float, float, float],
    ctx: _Context,
) -> None:
    left, bottom_from_top, width, height = box
    ax = canvas.axes(
        4 + left,
        canvas.h - (_TITLE_PX + bottom_from_top),
        canvas.w - 4 - left - width,
        _TITLE_PX + bottom_from_top - height,
    )
    ax.set_axis_off()
    x = _days(trace.series.times)
    values = trace.series.values
    ax.plot(x, values, color=color, linewidth=1)
    present = _present(values)
    floor = float(present.min()) if present.size else 0.0
    ax.fill_between(x, floor, values, color=color, alpha=0.18, linewidth=0)
    if present.size and present.max() == present.min():  # a constant: a line across the middle
        ax.set_ylim(floor - 1, floor + 1)
    ax.set_xlim(*_days([ctx.start.timestamp(), ctx.end.timestamp()]))


def _draw_gauge(
    canvas: _Canvas,
    ax: Axes,
    box: tuple[float, float, float, float],
    value: float | None,
    text: str,
    color: str,
    trace: _Trace,
    limits: tuple[float, float],
) -> None:
    x0, top, width, height = box
    # a 240 degree arc (with the threshold ring at 1.1 r) is 1.65 r high
    radius = max(8.0, min(width * 0.4, (height - 8) / 1.65))
    cx, cy = x0 + width / 2, top + 4 + radius * 1.1
    low, high = limits
    sweep = 240.0  # degrees, from lower left over the top to lower right

    def angle(v: float) -> float:
        return 210 - sweep * min(max((v - low) / (high - low), 0), 1)

    # pixel axes have y pointing down: mirror the angles
    def wedge(a_from: float, a_to: float, r: float, w: float, c: str) -> None:
        ax.add_patch(Wedge((cx, cy), r, -a_from, -a_to, width=w, color=c, linewidth=0))

    wedge(210, -30, radius, radius * 0.22, _LINE)
    if value is not None and math.isfinite(value):
        wedge(210, angle(value), radius, radius * 0.22, color)
    steps = _steps(trace.thresholds)
    for i, (limit, step_color) in enumerate(steps):
        start = low if i == 0 else max(low, limit)
        end = steps[i + 1][0] if i + 1 < len(steps) else high
        if end > start:
            wedge(angle(start), angle(min(end, high)), radius * 1.1, radius * 0.06, step_color)
    size_px = min(radius * 0.45, radius * 1.3 / max(1, 0.62 * len(text)))
    ax.text(
        cx,
        cy,
        text,
        ha="center",
        va="center",
        fontsize=_points(size_px),
        fontweight="bold",
        color=color,
    )


def _draw_bargauge(
    canvas: _Canvas, panel: Mapping[str, Any], frames: Sequence[_Frame], ctx: _Context
) -> None:
    options = _options(panel)
    values = _stat_values(panel, _traces(panel, frames))
    if not values:
        canvas.message("No data")
        return
    low, high = _min_max(panel, [v for _, v, _, _ in values])
    unfilled = options.get("showUnfilled", True)
    longest_value = max(len(text) for _, _, text, _ in values)
    if options.get("orientation") == "vertical":
        ax = canvas.pixel_axes(8, 8, 8, _TITLE_PX)
        width, height = canvas.w - 16, canvas.h - 8 - _TITLE_PX
        slot = width / len(values)
        for i, (trace, value, text, color) in enumerate(values):
            share = 0.0 if value is None else min(max((value - low) / (high - low), 0), 1)
            bar_w, bar_x = min(slot * 0.8, 80), i * slot + slot * 0.5 - min(slot * 0.8, 80) / 2
            bar_top, bar_bottom = 18, height - 16
            if unfilled:
                ax.add_patch(Rectangle((bar_x, bar_top), bar_w, bar_bottom - bar_top, color=_LINE))
            filled = (bar_bottom - bar_top) * share
            ax.add_patch(Rectangle((bar_x, bar_bottom - filled), bar_w, filled, color=color))
            ax.text(
                i * slot + slot / 2,
                14,
                _fit(text, slot),
                ha="center",
                va="bottom",
                fontsize=8,
                fontweight="bold",
                color=color,
            )
            ax.text(
                i * slot + slot / 2,
                height - 2,
                _fit(trace.name, slot),
                ha="center",
                va="bottom",
                fontsize=7,
                color=_TEXT,
            )
        return
    longest_name = max(len(trace.name) for trace, _, _, _ in values)
    name_w = min(canvas.w * 0.35, longest_name * _CHAR_PX + 10)
    ax = canvas.pixel_axes(8, 6, 8, _TITLE_PX)
    width, height = canvas.w - 16, canvas.h - 6 - _TITLE_PX
    slot = height / len(values)
    bar_h = min(slot * 0.75, 32)
    value_px = min(bar_h * 0.6, 16)
    value_w = longest_value * value_px * 0.68 + 10  # bold digits are about 0.65 em wide
    bar_room = max(1.0, width - name_w - value_w)
    for i, (trace, value, text, color) in enumerate(values):
        middle = i * slot + slot / 2
        share = 0.0 if value is None else min(max((value - low) / (high - low), 0), 1)
        if unfilled:
            ax.add_patch(Rectangle((name_w, middle - bar_h / 2), bar_room, bar_h, color=_LINE))
        ax.add_patch(Rectangle((name_w, middle - bar_h / 2), bar_room * share, bar_h, color=color))
        ax.text(
            name_w - 6,
            middle,
            _fit(trace.name, name_w - 6),
            ha="right",
            va="center",
            fontsize=7.5,
            color=_TEXT,
        )
        ax.text(
            name_w + bar_room + 6,
            middle,
            text,
            ha="left",
            va="center",
            fontsize=_points(value_px),
            fontweight="bold",
            color=color,
        )


def _table_of(panel: Mapping[str, Any], frames: Sequence[_Frame]) -> Table:
    calc = ((_options(panel).get("reduceOptions") or {}).get("calcs") or ["lastNotNull"])[0]
    parts = [
        (frame.ref_id, [(s.labels, reduce_values(s.values, calc)) for s in frame.series])
        for frame in frames
        if frame.error is None
    ]
    return _organize(merge_tables(parts), panel.get("transformations") or [])


def _draw_table(
    canvas: _Canvas, panel: Mapping[str, Any], frames: Sequence[_Frame], ctx: _Context
) -> None:
    table = _table_of(panel, frames)
    if not table.rows or not table.columns:
        canvas.message("No data")
        return
    defaults = _defaults(panel)
    custom = defaults.get("custom") or {}
    cell_type = (custom.get("cellOptions") or {}).get("type") or custom.get("displayMode", "auto")
    refs = {f"Value #{f.ref_id}": f.ref_id for f in frames}
    texts: list[list[str]] = []
    colors: list[list[str | None]] = []
    for row in table.rows:
        row_texts, row_colors = [], []
        for column, cell in zip(table.columns, row, strict=True):
            if not isinstance(cell, str):  # a query's value; labels are text
                props = {**defaults, **_overrides(panel, column, refs.get(column, ""))}
                number = None if cell is None else float(cell)
                mapped = map_value(number, props.get("mappings"))
                text = mapped[0] if mapped and mapped[0] is not None else None
                unit = str(props.get("unit", "") or "")
                shown = text or (
                    "" if number is None else format_value(number, unit, _decimals(props))
                )
                color = mapped[1] if mapped and mapped[1] else None
                if color is None and cell_type in ("color-background", "color-text"):
                    color = threshold_color(number, props.get("thresholds"))
                row_texts.append(shown)
                row_colors.append(color)
            else:
                row_texts.append("" if cell is None else str(cell))
                row_colors.append(None)
        texts.append(row_texts)
        colors.append(row_colors)
    ax = canvas.pixel_axes(4, 4, 4, _TITLE_PX)
    width, height = canvas.w - 8, canvas.h - 4 - _TITLE_PX
    chars = [
        max([len(column), *(len(row[i]) for row in texts)])
        for i, column in enumerate(table.columns)
    ]
    weights = [min(max(c, 4), 40) for c in chars]
    widths = [width * w / sum(weights) for w in weights]
    lefts = np.concatenate([[0.0], np.cumsum(widths)[:-1]])
    row_h, header_h = 20.0, 22.0
    ax.add_patch(Rectangle((0, 0), width, header_h, color="#22252B", linewidth=0))
    for left, column_w, column in zip(lefts, widths, table.columns, strict=True):
        ax.text(
            left + 6,
            header_h / 2,
            _fit(column, column_w - 10),
            va="center",
            ha="left",
            fontsize=7.5,
            fontweight="bold",
            color="#6E9FFF",
        )
    room = max(0, int((height - header_h) // row_h))
    visible = texts if len(texts) <= room else texts[: max(0, room - 1)]
    for r, row_texts in enumerate(visible):
        y = header_h + r * row_h
        ax.plot([0, width], [y + row_h, y + row_h], color=_LINE, linewidth=0.6)
        for c, (left, column_w) in enumerate(zip(lefts, widths, strict=True)):
            color = colors[r][c]
            cell = table.rows[r][c]
            numeric = isinstance(cell, float)
            text_color = _TEXT
            if color and cell_type == "color-background":
                ax.add_patch(Rectangle((left, y), column_w, row_h, color=color, linewidth=0))
                text_color = "#FFFFFF"
            elif color:
                text_color = color
            ax.text(
                left + column_w - 6 if numeric else left + 6,
                y + row_h / 2,
                _fit(row_texts[c], column_w - 10),
                va="center",
                ha="right" if numeric else "left",
                fontsize=7.5,
                color=text_color,
            )
    if len(visible) < len(texts):
        y = header_h + len(visible) * row_h + row_h / 2
        ax.text(
            6,
            y,
            f"+{len(texts) - len(visible)} more rows",
            va="center",
            fontsize=7.5,
            color=_TEXT_WEAK,
        )


_SCHEMES = {
    "Oranges": "Oranges",
    "Reds": "Reds",
    "Greens": "Greens",
    "Blues": "Blues",
    "Purples": "Purples",
    "Greys": "Greys",
    "Spectral": "Spectral_r",
    "RdYlGn": "RdYlGn",
    "RdYlBu": "RdYlBu",
    "YlOrRd": "YlOrRd",
    "YlGnBu": "YlGnBu",
    "Viridis": "viridis",
    "Magma": "magma",
    "Inferno": "inferno",
    "Plasma": "plasma",
    "Cividis": "cividis",
    "Turbo": "turbo",
    "Warm": "autumn",
    "Cool": "cool",
}


def _heatmap_colors(options: Mapping[str, Any]) -> Colormap:
    color = options.get("color") or {}
    if color.get("mode") == "opacity":
        base = grafana_color(color.get("fill", "dark-orange"))
        return LinearSegmentedColormap.from_list("opacity", [base + "10", base[:7]])
    scheme = _SCHEMES.get(str(color.get("scheme", "Oranges")), "Oranges")
    colormap = matplotlib.colormaps[scheme]
    # Grafana's dark theme runs a scheme from dark (few) to bright (many)
    return colormap if color.get("reverse") else colormap.reversed()


def _draw_heatmap(
    canvas: _Canvas, panel: Mapping[str, Any], frames: Sequence[_Frame], ctx: _Context
) -> None:
    options = _options(panel)
    defaults = _defaults(panel)
    unit = str((options.get("yAxis") or {}).get("unit") or defaults.get("unit", "") or "")
    series = [s for f in frames for s in f.series if s.step_s]
    if not series:  # only instant results: nothing over time
        canvas.message("No data")
        return
    grid = series[0].times
    bucketed = [s for s in series if "le" in s.labels and s.times.size == grid.size]
    if bucketed:
        sums: dict[str, FloatArray] = {}
        for s in bucketed:  # several groups: summed per bucket, as "sum by (le)" would
            sums[s.labels["le"]] = sums.get(s.labels["le"], np.zeros(grid.size)) + np.nan_to_num(
                s.values
            )
        bounds, counts = heatmap_buckets(sums)
        names = [
            _axis_label(_bound(b), unit) if math.isfinite(_bound(b)) else "+Inf" for b in bounds
        ]
    else:
        same = [s for s in series if s.times.size == grid.size]
        names = [s.name for s in same]
        counts = np.array([np.nan_to_num(s.values) for s in same])
    shown = np.ma.masked_less_equal(counts, 1e-9)  # Grafana hides empty cells
    legend = (options.get("legend") or {}).get("show", True)
    bottom = 20 + (26 if legend else 0)
    left = min(canvas.w * 0.3, max(len(n) for n in names) * 4.8 + 14)
    ax = canvas.axes(left, bottom, 10, _TITLE_PX + 2)
    step = series[0].step_s / 86400
    x = _days(grid)
    edges_x = np.concatenate([x - step / 2, [x[-1] + step / 2]])
    edges_y = np.arange(len(names) + 1, dtype=float)
    mesh = ax.pcolormesh(edges_x, edges_y, shown, cmap=_heatmap_colors(options), shading="flat")
    every = max(1, math.ceil(len(names) / max(1, (canvas.h - bottom - _TITLE_PX) / 12)))
    ticks = list(range(0, len(names), every))
    ax.set_yticks([t + 0.5 for t in ticks], [names[t] for t in ticks])
    ax.tick_params(axis="y", length=0, pad=4)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    _time_axis(ax, canvas, ctx)
    if legend and counts.size and float(counts.max()) > 0:
        scale = canvas.axes(left, 14, max(10.0, canvas.w * 0.5), canvas.h - 21)
        bar = canvas.fig.colorbar(mesh, cax=scale, orientation="horizontal")
        bar.outline.set_visible(False)
        scale.tick_params(labelsize=6, length=0, pad=1)


def _states(trace: _Trace) -> list[tuple[str, str] | None]:
    found: list[tuple[str, str] | None] = []
    for raw in trace.series.values:
        value = None if math.isnan(raw) else float(raw)
        if value is None:
            found.append(None)
            continue
        mapped = map_value(value, trace.mappings)
        text = mapped[0] if mapped and mapped[0] is not None else None
        color = mapped[1] if mapped and mapped[1] else threshold_color(value, trace.thresholds)
        found.append((text or format_value(value, trace.unit, trace.decimals), color))
    return found


def _draw_state_timeline(
    canvas: _Canvas, panel: Mapping[str, Any], frames: Sequence[_Frame], ctx: _Context
) -> None:
    options = _options(panel)
    traces = [t for t in _traces(panel, frames) if t.series.step_s]
    if not traces:
        canvas.message("No data")
        return
    merge = options.get("mergeValues", True)
    height = float(options.get("rowHeight", 0.9) or 0.9)
    custom = _defaults(panel).get("custom") or {}
    opacity = float(custom.get("fillOpacity", 70)) / 100  # Grafana's default: 70
    seen: dict[tuple[str, str], None] = {}
    rows = [(_states(t), t) for t in traces]
    for states, _ in rows:
        seen.update((s, None) for s in states if s is not None)
    legend = (options.get("legend") or {}).get("showLegend", True)
    entries = [(text, color) for text, color in seen] if legend else []
    used, _ = _legend_entries(canvas, entries[:24], False, (canvas.h - _TITLE_PX) * 0.3)
    left = min(canvas.w * 0.3, max(len(t.name) for t in traces) * _CHAR_PX + 14)
    ax = canvas.axes(left, 20 + used, 10, _TITLE_PX + 2)
    x_span = (ctx.end - ctx.start).total_seconds() / 86400
    px_per_day = (canvas.w - left - 10) / max(x_span, 1e-9)
    for row, (states, trace) in enumerate(rows):
        x = _days(trace.series.times)
        step = trace.series.step_s / 86400
        runs: list[tuple[int, int]] = []
        for i, state in enumerate(states):
            if state is None:
                continue
            if merge and runs and runs[-1][1] == i and states[runs[-1][0]] == state:
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
        for first, after in runs:
            state = states[first]
            assert state is not None
            begin, length = x[first], x[after - 1] + step - x[first]
            ax.broken_barh(
                [(begin, length)],
                (row - height / 2, height),
                facecolors=state[1],
                alpha=opacity,
                edgecolor=_PANEL_BG,
                linewidth=0.4,
            )
            if (
                length * px_per_day > len(state[0]) * 5.5 + 6
                and options.get("showValue") != "never"
            ):
                ax.text(
                    begin + length / 2,
                    row,
                    state[0],
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="#000000",
                    clip_on=True,
                )
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_yticks(range(len(rows)), [_fit(t.name, left - 10) for t in traces])
    ax.tick_params(axis="y", length=0, pad=4)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    _time_axis(ax, canvas, ctx)


def _draw_pie(
    canvas: _Canvas, panel: Mapping[str, Any], frames: Sequence[_Frame], ctx: _Context
) -> None:
    values = [(t, v) for t, v, _, _ in _stat_values(panel, _traces(panel, frames)) if v and v > 0]
    if not values:
        canvas.message("No data")
        return
    entries = [(f"{t.name}  {format_value(v, t.unit, t.decimals)}", t.color) for t, v in values]
    used, _ = _legend_entries(canvas, entries, True, 0)
    ax = canvas.axes(8, 8, 8 + used, _TITLE_PX)
    donut = _options(panel).get("pieType") == "donut"
    ax.pie(
        [v for _, v in values],
        colors=[t.color for t, _ in values],
        wedgeprops={"width": 0.45 if donut else 1, "edgecolor": _PANEL_BG, "linewidth": 1},
    )
    ax.set_aspect("equal")


def _plain_text(content: str, mode: str) -> str:
    text = content
    if mode == "html" or "<" in text:
        text = re.sub(r"<br\s*/?>|</p>|</h\d>|</li>", "\n", text)
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
    if mode != "code":
        text = re.sub(r"^\s{0,3}#{1,6}\s*", "", text, flags=re.MULTILINE)
        text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
        text = re.sub(r"(\*\*|__|`)", "", text)
    return text.strip()


def _draw_text(canvas: _Canvas, panel: Mapping[str, Any]) -> None:
    options = _options(panel)
    content = str(options.get("content") or panel.get("content") or "")
    text = _plain_text(content, str(options.get("mode", "markdown")))
    if not text:
        return
    room = max(10, int((canvas.w - 16) / 5.6))
    lines = [w for line in text.splitlines() for w in (textwrap.wrap(line, room) or [""])]
    fit = max(1, int((canvas.h - _TITLE_PX - 6) / 12))
    if len(lines) > fit:
        lines = [*lines[: fit - 1], "…"]
    canvas.text(
        8,
        _TITLE_PX + 2,
        "\n".join(lines),
        ha="left",
        va="top",
        fontsize=8,
        color=_TEXT,
        linespacing=1.25,
    )


def _draw_errors(canvas: _Canvas, errors: Sequence[str], full: bool) -> None:
    if not full:  # data from the other queries is drawn: one line at the top right
        canvas.text(
            canvas.w - 8,
            6,
            _fit(errors[0], canvas.w * 0.5),
            ha="right",
            va="top",
            fontsize=7.5,
            color=_ERROR,
        )
        return
    room = max(10, int((canvas.w - 16) / 5.6))
    lines = [w for error in errors for w in textwrap.wrap(error, room)]
    fit = max(1, int((canvas.h - _TITLE_PX - 6) / 12))
    canvas.text(
        8,
        _TITLE_PX + 4,
        "\n".join(lines[:fit]),
        ha="left",
        va="top",
        fontsize=8,
        color=_ERROR,
        linespacing=1.25,
    )


_DRAWERS = {
    "timeseries": _draw_timeseries,
    "graph": _draw_timeseries,  # the pre-8.0 panel
    "bargauge": _draw_bargauge,
    "table": _draw_table,
    "heatmap": _draw_heatmap,
    "state-timeline": _draw_state_timeline,
    "status-history": _draw_state_timeline,
    "piechart": _draw_pie,
}


def _draw(
    panel: Mapping[str, Any],
    frames: Sequence[_Frame],
    ctx: _Context,
    size: tuple[int, int],
    png: Path,
) -> str | None:
    """Draws one panel into ``png``; the problem when its JSON could not be drawn."""
    kind = str(panel.get("type", ""))
    problem = None
    with matplotlib.rc_context(_STYLE):
        canvas = _Canvas(*size)
        canvas.title(str(panel.get("title", "")))
        errors = [f"query {f.ref_id} rejected: {f.error}" for f in frames if f.error]
        has_data = any(f.series for f in frames)
        try:
            if kind == "text":
                _draw_text(canvas, panel)
            elif errors and not has_data:
                _draw_errors(canvas, errors, full=True)
            elif not frames:
                canvas.message(
                    f"{kind or 'this'} panel: no Prometheus query to draw", _TEXT_WEAK, 9
                )
            elif not has_data:
                canvas.message("No data")
            elif kind in ("stat", "singlestat", "gauge"):
                _draw_stat(canvas, panel, frames, ctx, gauge=kind == "gauge")
            else:
                _DRAWERS.get(kind, _draw_timeseries)(canvas, panel, frames, ctx)
                if kind not in _DRAWERS:
                    canvas.text(
                        canvas.w - 8,
                        6,
                        f"{kind} drawn as a time series",
                        ha="right",
                        va="top",
                        fontsize=7,
                        color=_TEXT_WEAK,
                    )
            if errors and has_data:
                _draw_errors(canvas, errors, full=False)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            # A hand-edited panel can hold anything; one bad panel must not stop the rest.
            problem = f"not drawn: {type(exc).__name__}: {exc}"
            canvas.fig.clear()
            canvas.title(str(panel.get("title", "")))
            _draw_errors(canvas, [problem], full=True)
        canvas.fig.savefig(png, dpi=_DPI, format="png", metadata={"Software": None})
    return problem


# ---------------------------------------------------------------------------------------
# The shell


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "dashboard"


def _unique(name: str, taken: set[str]) -> str:
    found, number = name, 1
    while found in taken:
        number += 1
        found = f"{name}-{number}"
    taken.add(found)
    return found


def _render_dashboard(
    dashboard: Mapping[str, Any],
    client: PrometheusClient,
    out_dir: Path,
    ctx: _Context,
    overrides: Mapping[str, str],
    taken: set[str],
) -> DashboardPreview:
    title = str(dashboard.get("title", "") or "")
    uid = _unique(_file_name(str(dashboard.get("uid") or slug(title))), taken)
    declared = variable_values(dashboard)
    values = {**declared, **overrides}
    folder = out_dir / uid
    folder.mkdir(parents=True, exist_ok=True)
    places = {id(panel): place for panel, place in grid_positions(dashboard)}
    files: set[str] = set()
    images: dict[int, str] = {}
    previews = []
    for panel in panels(dashboard):
        panel_id = int(panel.get("id", 0) or 0)
        panel_title = str(panel.get("title", "") or "")
        x, y, w, h = places.get(id(panel), _grid_pos(panel))
        name = _unique(f"{panel_id}-{slug(panel_title)}", files) + ".png"
        frames = _fetch(client, uid, panel, values, ctx)
        problem = _draw(panel, frames, ctx, panel_pixels(w, h), folder / name)
        images[id(panel)] = f"{uid}/{name}"
        queries = tuple(
            QueryPreview(f.ref_id, f.expr, f.instant, f.step_s, len(f.series), f.error)
            for f in frames
        )
        previews.append(
            PanelPreview(
                panel_id, panel_title, str(panel.get("type", "")), folder / name, queries, problem
            )
        )
    items = []
    for placed, (x, y, w, h) in grid_positions(dashboard):
        title_text = str(placed.get("title", "") or "")
        if placed.get("type") == "row":
            note = "(collapsed in Grafana)" if placed.get("collapsed") else ""
            items.append(GridItem(title_text, x, y, w, 1, None, note))
        elif id(placed) in images:
            items.append(GridItem(title_text, x, y, w, h, images[id(placed)]))
    shown = {name: values[name] for name in declared}
    page = out_dir / f"{uid}.html"
    page.write_text(build_dashboard_html(title, ctx.start, ctx.end, shown, items), encoding="utf-8")
    return DashboardPreview(uid, title, page, shown, tuple(previews))


def render_previews(
    dashboards: Sequence[Mapping[str, Any]],
    prometheus: PrometheusClient,
    out_dir: Path,
    start: datetime,
    end: datetime,
    *,
    variables: Mapping[str, str] | None = None,
    scrape_interval_s: float = 15,
) -> PreviewResult:
    """Draws every panel of every dashboard from ``prometheus`` over ``start``..``end``
    (timezone-aware) into ``out_dir``: ``<uid>/<panel id>-<title>.png``, ``<uid>.html`` and
    ``index.html``. ``variables`` override the template variables' all-values;
    ``scrape_interval_s`` sizes ``$__rate_interval``.

    A query Prometheus rejects is drawn and recorded as an error; Prometheus unreachable
    (or failing) raises PrometheusError."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware datetimes")
    if end <= start:
        raise ValueError(f"the time range is empty: {start.isoformat()} to {end.isoformat()}")
    if scrape_interval_s <= 0:
        raise ValueError(f"scrape_interval_s must be positive, not {scrape_interval_s}")
    ctx = _Context(start, end, scrape_interval_s)
    out_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = {"index"}
    previews = tuple(
        _render_dashboard(dashboard, prometheus, out_dir, ctx, variables or {}, taken)
        for dashboard in dashboards
    )
    index = out_dir / "index.html"
    index.write_text(build_index_html(previews, start, end), encoding="utf-8")
    return PreviewResult(index, previews)
