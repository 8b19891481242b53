"""The SLO model every input format maps to, and the alert windows that go with a period.

Whatever the spec's format (Sloth ``prometheus/v1``, Sloth's Kubernetes
``PrometheusServiceLevel``, OpenSLO), the loader returns these frozen values; the rule
builder, the simulator, the report and the gate read nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "SLO",
    "AlertMeta",
    "AlertWindow",
    "EventsSLI",
    "GateBaseline",
    "GateSpec",
    "PeriodWindows",
    "RawSLI",
    "SpecDocument",
    "go_hours",
]


@dataclass(frozen=True)
class EventsSLI:
    """Error and total event rates; each query holds ``{{.window}}`` where its range goes."""

    error_query: str
    total_query: str


@dataclass(frozen=True)
class RawSLI:
    """One query giving the error ratio (0..1) over ``{{.window}}``."""

    error_ratio_query: str


@dataclass(frozen=True)
class AlertMeta:
    """An enabled page or ticket alert: its name and the labels and annotations it adds."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GateBaseline:
    """Limits relative to a baseline run (the gate issue reads them)."""

    #: the p95 may grow by at most this fraction of the baseline's (0.2 = 20 %)
    max_p95_increase: float | None = None
    #: the error ratio may grow by at most this much (absolute, 0..1)
    max_error_ratio_increase: float | None = None


@dataclass(frozen=True)
class GateSpec:
    """The project's ``gate:`` extension: how one load-test run is judged against this SLO."""

    #: Locust request names (``"POST /api/loans"``) the verdict covers; empty means all
    requests: tuple[str, ...] = ()
    #: fewer requests than this and the verdict is inconclusive
    min_requests: int = 100
    #: highest acceptable error ratio over the run (0..1)
    max_error_ratio: float | None = None
    #: highest acceptable 95th-percentile latency over the run, in seconds
    max_p95_seconds: float | None = None
    baseline: GateBaseline | None = None


@dataclass(frozen=True)
class SLO:
    """One service level objective, ready to become rules."""

    id: str
    name: str
    service: str
    #: percent of good events over the period, 0 < objective < 100
    objective: float
    #: the SLO period in seconds (30 days unless the spec or the CLI says otherwise)
    period_s: int
    sli: EventsSLI | RawSLI
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    page_alert: AlertMeta | None = None
    ticket_alert: AlertMeta | None = None
    gate: GateSpec | None = None
    #: where the spec declares it (``slos[0]``), for error messages only
    entry: str = field(default="", compare=False)


@dataclass(frozen=True)
class SpecDocument:
    """One YAML document of a spec file and the SLOs it declares.

    Sloth writes one output document per input document; ``kind`` decides whether that is
    a rule file or a PrometheusRule (``k8s_name``/``k8s_namespace`` from its metadata).
    """

    file: str
    kind: str
    slos: tuple[SLO, ...]
    k8s_name: str = ""
    k8s_namespace: str = ""
    #: copied onto the PrometheusRule, as Sloth does
    k8s_labels: Mapping[str, str] = field(default_factory=dict)
    k8s_annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_kubernetes(self) -> bool:
        return self.kind == "sloth.slok.dev/v1"


@dataclass(frozen=True)
class AlertWindow:
    """One burn-rate condition: the budget share it spends over ``long_s``, and its windows."""

    budget_percent: float
    short_s: int
    long_s: int


@dataclass(frozen=True)
class PeriodWindows:
    """The four multiwindow, multi-burn-rate conditions for one SLO period."""

    period_s: int
    page_quick: AlertWindow
    page_slow: AlertWindow
    ticket_quick: AlertWindow
    ticket_slow: AlertWindow

    def burn_factor(self, window: AlertWindow) -> float:
        """How many times faster than "exactly on budget" this condition fires.

        The same arithmetic, in the same order, as Sloth's ``getBurnRateFactor`` so the
        thresholds print identically (28 days gives 13.44 and 5.6000000000000005).
        """
        hours_to_consume = window.budget_percent * go_hours(self.period_s) / 100
        return hours_to_consume / go_hours(window.long_s)

    def windows(self) -> tuple[int, ...]:
        """Every distinct window the alerts read, shortest first."""
        found = {
            w
            for cond in (self.page_quick, self.page_slow, self.ticket_quick, self.ticket_slow)
            for w in (cond.short_s, cond.long_s)
        }
        return tuple(sorted(found))


def go_hours(seconds: int) -> float:
    """``time.Duration.Hours()`` as Go computes it (whole hours plus the remainder)."""
    hours, rest = divmod(seconds, 3600)
    return float(hours) + float(rest * 1_000_000_000) / (60 * 60 * 1e9)
