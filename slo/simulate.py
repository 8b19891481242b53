"""How fast the generated burn-rate alerts react, measured with ``promtool test rules``.

For each SLO and burn rate the page and ticket alerts built by :mod:`slo.rules` run over a
synthetic incident; the report gives when each alert starts firing after the burn starts
and when it stops after the burn ends, beside the SRE Workbook's expectation:

- start: the earliest, over the alert's two conditions whose factor is below the burn
  rate, of long window x factor / burn rate ("never" when no factor is below it);
- stop, after a burn long enough to fill every window: the latest, over the conditions
  that fire, of short window x (1 - factor / burn rate), when the short window's ratio
  falls back to the threshold.

A measured time more than one evaluation interval from its expectation is flagged.

Timing depends on the objective, the period's windows and the burn rate, never on the
SLI's query, so every SLO keeps its objective, windows and alert expressions and gets a
synthetic SLI: the burn's error ratio (``burn rate x error budget``, or 1 for a full
outage) times the share of the window that lies inside the incident. The shares come
from one clock counter through ``rate()``, recorded once per window
(``sre_simulated:incident:ratio``), so the cost hardly grows with the number of burn
rates; a pair of error and request counters per burn rate, with the 3-day warm-up their
long windows need, costs about two minutes per SLO instead of seconds for the lot. The
figures agree with such counters to one evaluation interval, except at a burn rate equal
to a factor: there the SLI sits exactly on the threshold, which the rules compare with
``>``, so the condition does not fire, as the Workbook's "exceeds" reads. Real counters
tip that tie by rounding (Sloth writes 99.9%'s budget as 0.0009999999999999432, so an
error ratio of exactly 1.44% pages after 1h).

The unit test has two test groups over the same rules, told apart by the
``sre_simulation_phase`` label: ``onset`` (each burn starts at 0 and lasts until its
latest expected start plus an hour; gives the start times) and ``recovery`` (a burn that
has filled every window ends at ``incident_end_s``; gives the stop times, and whether the
alert fires at the steady state, which proves "never": the share only grows in an onset).

promtool prints only failing tests, so the run records, per alert, the first and last
firing evaluation and the number of firing evaluations in recording rules, and one test
per test group that must fail prints them at the end ("got: ..."), parsed by
:func:`parse_promtool_output`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from slo.errors import SpecError
from slo.model import SLO, AlertMeta, AlertWindow, EventsSLI, PeriodWindows
from slo.rules import BuildOptions, Rule, RuleGroup, build_slo_groups, go_float
from sre.durations import format_duration

__all__ = [
    "DEFAULT_BURN_RATES",
    "OUTAGE",
    "AlertTiming",
    "BurnResult",
    "SLOSimulation",
    "SimulationPlan",
    "SimulationReport",
    "build_plan",
    "build_report",
    "expected_start_s",
    "expected_stop_s",
    "parse_promtool_output",
    "render_json",
    "render_markdown",
    "run_promtool",
    "simulate",
]

#: a full outage: every request fails (error ratio 1, burn rate 1 / error budget)
OUTAGE = math.inf
#: the burn rates simulated unless the caller names others
DEFAULT_BURN_RATES: tuple[float, ...] = (0.5, 1.0, 2.0, 6.0, 14.4, 30.0, OUTAGE)

_SEVERITIES = ("page", "ticket")
#: Prometheus' default lookback: a recorded series older than this is not read any more
_LOOKBACK_S = 300
#: extra run time after the latest expected start or stop, to see late alerts
_MARGIN_S = 3600
#: evaluations at the steady state before the recovery phase's burn ends
_STEADY_STEPS = 10
_PROMTOOL_TIMEOUT_S = 900

_SLO_LABEL = "sre_simulation_slo"
_CASE_LABEL = "sre_simulation_case"
_PHASE_LABEL = "sre_simulation_phase"
_CLOCK = "sre_simulated_clock_seconds_total"
_ERROR_RATIO = "sre_simulated_error_ratio"
_SHARE = "sre_simulated:incident:ratio"
_WINDOW_LABEL = "sre_simulation_window"
_FIRST = "sre_simulated:alert_first_firing:timestamp"
_LAST = "sre_simulated:alert_last_firing:timestamp"
_COUNT = "sre_simulated:alert_firing:evaluations"
_HELPER_GROUP = "sre-simulate-incident"
_TRACKER_GROUP = "sre-simulate-alert-tracking"
_GOT = re.compile(r"^\s*got: (.*)$", re.MULTILINE)
_SAMPLE = re.compile(r'\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\} (\S+?)(?:, (?=\{)|$)')
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class AlertTiming:
    """When one alert started firing after the burn started, and stopped after it ended.

    Times are seconds; ``None`` means never (start) or not firing at the burn's end (stop).
    """

    severity: str
    expected_start_s: float | None
    measured_start_s: int | None
    expected_stop_s: float | None
    measured_stop_s: int | None
    #: what disagrees with the expectation, one sentence each; empty when all agrees
    problems: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        """True when a measured time is off its expectation (or the alert misbehaved)."""
        return bool(self.problems)


@dataclass(frozen=True)
class BurnResult:
    """One burn rate for one SLO: the page and ticket timings (``None`` when not run)."""

    #: the burn rate in multiples of "exactly on budget"; a full outage's is 1 / budget
    burn_rate: float
    outage: bool
    #: share of failing events during the burn, 0..1
    error_ratio: float
    page: AlertTiming | None
    ticket: AlertTiming | None
    #: why the burn was not simulated (a burn rate above a full outage), else empty
    note: str = ""

    @property
    def label(self) -> str:
        """``14.4x``, or ``outage (1000x)``."""
        if self.outage:
            return f"outage ({_number(self.burn_rate)}x)"
        return f"{_number(self.burn_rate)}x"


@dataclass(frozen=True)
class SLOSimulation:
    """Every burn rate's result for one SLO."""

    slo_id: str
    service: str
    name: str
    objective: float
    period_s: int
    page_enabled: bool
    ticket_enabled: bool
    burns: tuple[BurnResult, ...]


@dataclass(frozen=True)
class SimulationReport:
    """The whole simulation: one entry per SLO, in the order given."""

    evaluation_interval_s: int
    #: simulated time promtool evaluated, in seconds
    run_s: int
    slos: tuple[SLOSimulation, ...]

    @property
    def flagged(self) -> bool:
        """True when any measured time is more than one interval off its expectation."""
        return any(
            timing.flagged
            for slo in self.slos
            for burn in slo.burns
            for timing in (burn.page, burn.ticket)
            if timing is not None
        )


@dataclass(frozen=True)
class SimulationPlan:
    """One promtool run covering every SLO and burn rate: its files and how to read them.

    The unit test has two test groups, run one after the other on the same rules: the
    onset (each burn's series lasts until its latest expected start plus a margin) and the
    recovery (every burn ends at ``incident_end_s``).
    """

    slos: tuple[SLO, ...]
    windows: tuple[PeriodWindows, ...]
    burn_rates: tuple[float, ...]
    evaluation_interval_s: int
    #: per SLO, per burn rate: when the onset's burn stops being simulated (0: not run)
    onset_ends_s: tuple[tuple[int, ...], ...]
    #: when the recovery phase's burn ends, and how long that phase runs
    incident_end_s: int
    recovery_run_s: int
    #: the rule file (``rules.yaml``) and the unit test file that reads it
    rules_yaml: str
    test_yaml: str

    @property
    def run_s(self) -> int:
        """Simulated time promtool evaluates, both phases together."""
        return max((end for ends in self.onset_ends_s for end in ends), default=0) + (
            self.recovery_run_s
        )


# --- expectations (SRE Workbook) ---------------------------------------------------------


def _conditions(windows: PeriodWindows, severity: str) -> tuple[AlertWindow, AlertWindow]:
    if severity == "page":
        return windows.page_quick, windows.page_slow
    return windows.ticket_quick, windows.ticket_slow


def expected_start_s(windows: PeriodWindows, severity: str, burn_rate: float) -> float | None:
    """The Workbook's detection time in seconds: ``None`` if no factor is below the burn."""
    times = [
        cond.long_s * windows.burn_factor(cond) / burn_rate
        for cond in _conditions(windows, severity)
        if windows.burn_factor(cond) < burn_rate
    ]
    return min(times) if times else None


def expected_stop_s(windows: PeriodWindows, severity: str, burn_rate: float) -> float | None:
    """Seconds from the end of a window-filling burn until the alert resets (None: never fired)."""
    times = [
        cond.short_s * (1 - windows.burn_factor(cond) / burn_rate)
        for cond in _conditions(windows, severity)
        if windows.burn_factor(cond) < burn_rate
    ]
    return max(times) if times else None


# --- the plan: rules, series and the test promtool runs ----------------------------------


def build_plan(
    slos: Sequence[SLO],
    catalog: Mapping[int, PeriodWindows],
    burn_rates: Sequence[float] | None = None,
    evaluation_interval_s: int = 60,
) -> SimulationPlan:
    """The rule file and unit test that measure every SLO at every burn rate (pure)."""
    rates = _check_burn_rates(DEFAULT_BURN_RATES if burn_rates is None else burn_rates)
    windows = tuple(_windows_for(slo, catalog) for slo in slos)
    ids = [slo.id for slo in slos]
    for slo_id in ids:
        if ids.count(slo_id) > 1:
            raise SpecError(None, slo_id, "the same SLO id is given twice")
    step = _check_interval(evaluation_interval_s, windows)

    margin = _ceil(_MARGIN_S, step)
    incident_end = _STEADY_STEPS * step
    cases: list[_Case] = []
    onset_ends: list[tuple[int, ...]] = []
    for index, (slo, slo_windows) in enumerate(zip(slos, windows, strict=True)):
        ends = []
        for number, rate in enumerate(rates):
            case = _case(index, number, slo, slo_windows, rate, step, margin)
            if case is not None:
                cases.append(case)
            ends.append(0 if case is None else case.onset_end_s)
        onset_ends.append(tuple(ends))
    onset_run = max((case.onset_end_s for case in cases), default=0)
    longest_stop = max((case.stop_s for case in cases), default=0)
    recovery_run = incident_end + longest_stop + margin

    groups = [_helper_group(windows)]
    for index, (slo, slo_windows) in enumerate(zip(slos, windows, strict=True)):
        groups.extend(_slo_groups(index, slo, slo_windows))
    groups.append(_tracker_group())
    rest = recovery_run // step - _STEADY_STEPS - 1
    tests = [
        _test_group("onset", f"0+{step}x{onset_run // step}", cases, onset_run, step),
        _test_group(
            "recovery", f"0+0x{_STEADY_STEPS} {step}+{step}x{rest}", cases, recovery_run, step
        ),
    ]
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": format_duration(step),
        # promtool evaluates groups in a random order unless told: the shares first, then
        # each SLO's SLI before its alerts, then the trackers that read ALERTS
        "group_eval_order": [group.name for group in groups],
        "tests": tests if cases else [],
    }
    return SimulationPlan(
        slos=tuple(slos),
        windows=windows,
        burn_rates=rates,
        evaluation_interval_s=step,
        onset_ends_s=tuple(onset_ends),
        incident_end_s=incident_end,
        recovery_run_s=recovery_run,
        rules_yaml=_dump({"groups": [_group_dict(group) for group in groups]}),
        test_yaml=_dump(test),
    )


@dataclass(frozen=True)
class _Case:
    """One SLO at one burn rate, as the unit test's series carry it."""

    labels: str
    error_ratio: float
    #: when its onset series ends: its latest expected start, plus the margin
    onset_end_s: int
    #: its latest expected stop, rounded up to an evaluation
    stop_s: int


def _case(
    index: int, number: int, slo: SLO, windows: PeriodWindows, rate: float, step: int, margin: int
) -> _Case | None:
    burn = _burn(slo, rate)
    severities = _enabled(slo)
    if burn is None or not severities:
        return None
    start = max(expected_start_s(windows, s, burn) or 0.0 for s in severities)
    stop = max(expected_stop_s(windows, s, burn) or 0.0 for s in severities)
    labels = f'{_CASE_LABEL}="{number}", {_SLO_LABEL}="{index}"'
    return _Case(labels, _error_ratio(slo, rate), _ceil(start, step) + margin, _ceil(stop, step))


def _test_group(
    phase: str, clock: str, cases: Sequence[_Case], run: int, step: int
) -> dict[str, Any]:
    series = [{"series": f'{_CLOCK}{{{_PHASE_LABEL}="{phase}"}}', "values": clock}]
    for case in cases:
        steps = (case.onset_end_s if phase == "onset" else run) // step
        name = f'{_ERROR_RATIO}{{{case.labels}, {_PHASE_LABEL}="{phase}"}}'
        series.append({"series": name, "values": f"{case.error_ratio!r}+0x{steps}"})
    return {
        "name": f"sre slo simulate: {phase}",
        "interval": format_duration(step),
        "input_series": series,
        "promql_expr_test": [
            {
                # fails on purpose: promtool prints what it got, the trackers' values
                "expr": f'{{__name__=~"{_tracker_names()}"}}',
                "eval_time": format_duration(run),
                "exp_samples": [{"labels": '{sre_simulation="expected to fail"}', "value": -1}],
            }
        ],
    }


def _check_burn_rates(rates: Sequence[float]) -> tuple[float, ...]:
    unique: list[float] = []
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or math.isnan(rate):
            raise SpecError(None, "burn rates", f"{rate!r} is not a number")
        if rate <= 0:
            raise SpecError(None, "burn rates", f"{go_float(rate)} must be above 0")
        if float(rate) not in unique:
            unique.append(float(rate))
    if not unique:
        raise SpecError(None, "burn rates", "at least one is needed")
    return tuple(unique)


def _windows_for(slo: SLO, catalog: Mapping[int, PeriodWindows]) -> PeriodWindows:
    if slo.period_s not in catalog:
        known = ", ".join(format_duration(p) for p in sorted(catalog)) or "none"
        period = format_duration(slo.period_s)
        raise SpecError(None, slo.id, f"no alert windows for a {period} period (known: {known})")
    return catalog[slo.period_s]


def _check_interval(step: int, windows: Sequence[PeriodWindows]) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or not 0 < step <= _LOOKBACK_S:
        raise SpecError(
            None, "evaluation interval", f"{step!r} must be a whole number of seconds, 1 to 300"
        )
    for period in windows:
        for window in period.windows():
            if window % step:
                raise SpecError(
                    None,
                    "evaluation interval",
                    f"{format_duration(step)} must divide every alert window "
                    f"({format_duration(window)} does not)",
                )
    return step


def _ceil(seconds: float, step: int) -> int:
    return math.ceil(seconds / step) * step


def _budget(slo: SLO) -> float:
    # the same arithmetic as the alert's threshold (factor x budget): at a steady burn equal
    # to a factor the SLI equals the threshold exactly, and the rule (">") does not fire, as
    # the Workbook's "exceeds" reads, instead of firing or not by a rounding error
    return (100 - slo.objective) / 100


def _burn(slo: SLO, rate: float) -> float | None:
    """The numeric burn rate for this SLO; None when it exceeds a full outage."""
    outage = 1 / _budget(slo)
    if math.isinf(rate):
        return outage
    return rate if rate * _budget(slo) <= 1 else None


def _error_ratio(slo: SLO, rate: float) -> float:
    return 1.0 if math.isinf(rate) else rate * _budget(slo)


def _enabled(slo: SLO) -> tuple[str, ...]:
    return tuple(
        severity
        for severity, meta in zip(_SEVERITIES, (slo.page_alert, slo.ticket_alert), strict=True)
        if meta is not None
    )


def _helper_group(windows: Sequence[PeriodWindows]) -> RuleGroup:
    """One rule recording, per window and phase, the share of the window in the incident.

    One rule rather than one per window: promtool's cost is mostly per rule evaluated.
    """
    every = sorted({w for period in windows for w in period.windows()})
    parts = []
    for window in every:
        span = format_duration(window)
        # onset: share of the window since the burn started; recovery: one minus the share
        # since it ended (a burn that had filled every window before the run began)
        share = (
            f'rate({_CLOCK}{{{_PHASE_LABEL}="onset"}}[{span}])'
            f' or (1 - rate({_CLOCK}{{{_PHASE_LABEL}="recovery"}}[{span}]))'
        )
        parts.append(f'label_replace({share}, "{_WINDOW_LABEL}", "{span}", "", "")')
    return RuleGroup(_HELPER_GROUP, (Rule("\nor\n".join(parts) + "\n", record=_SHARE),))


def _slo_groups(index: int, slo: SLO, windows: PeriodWindows) -> list[RuleGroup]:
    """The SLO's own SLI and alert rules, over the synthetic SLI; only what alerts need."""
    selector = f'{_ERROR_RATIO}{{{_SLO_LABEL}="{index}"}}'
    sli = EventsSLI(
        error_query=(
            f"{selector} * on ({_PHASE_LABEL}) group_left () "
            f'{_SHARE}{{{_WINDOW_LABEL}="{{{{.window}}}}"}}'
        ),
        total_query=f"{selector} * 0 + 1",
    )
    own = {_SLO_LABEL, _CASE_LABEL, _PHASE_LABEL, _WINDOW_LABEL}

    def bare(meta: AlertMeta | None) -> AlertMeta | None:
        # labels could override sloth_severity; annotations are templates expanded on every
        # evaluation: neither changes when an alert fires
        return None if meta is None else AlertMeta(meta.name)

    synthetic = dataclasses.replace(
        slo,
        sli=sli,
        labels={k: v for k, v in slo.labels.items() if k not in own},
        page_alert=bare(slo.page_alert),
        ticket_alert=bare(slo.ticket_alert),
    )
    groups = build_slo_groups(synthetic, windows, BuildOptions(), "prometheus/v1", "cli-gen-prom")
    every = [rule for group in groups for rule in group.rules]
    needed = _needed_records([r for r in every if r.alert], [r for r in every if r.record])
    kept = []
    for group in groups:
        rules = tuple(
            dataclasses.replace(rule, annotations={}) if rule.alert else rule
            for rule in group.rules
            if rule.alert or rule.record in needed
        )
        if rules:
            kept.append(RuleGroup(group.name, rules))
    return kept


def _needed_records(alerts: Sequence[Rule], records: Sequence[Rule]) -> set[str]:
    """Names of the recording rules the alerts read, directly or through other rules."""
    needed: set[str] = set()
    readers = list(alerts)
    while readers:
        reader = readers.pop()
        for rule in records:
            name = re.escape(rule.record)
            if rule.record not in needed and re.search(rf"(?<![\w:]){name}(?![\w:])", reader.expr):
                needed.add(rule.record)
                readers.extend(r for r in records if r.record == rule.record)
    return needed


def _tracker_group() -> RuleGroup:
    by = f"{_SLO_LABEL}, {_CASE_LABEL}, {_PHASE_LABEL}, sloth_severity"
    firing = f'count by ({by}) (ALERTS{{alertstate="firing", {_SLO_LABEL}!=""}})'
    now = f"({firing} * 0 + time())"
    # each reads its own previous value (one interval old, inside the lookback)
    return RuleGroup(
        _TRACKER_GROUP,
        (
            Rule(f"{_FIRST}\nor\n{now}\n", record=_FIRST),
            Rule(f"{now}\nor\n{_LAST}\n", record=_LAST),
            Rule(f"({_COUNT} + {firing})\nor\n{_COUNT}\nor\n{firing}\n", record=_COUNT),
        ),
    )


def _tracker_names() -> str:
    return "|".join(re.escape(name) for name in (_FIRST, _LAST, _COUNT))


def _group_dict(group: RuleGroup) -> dict[str, Any]:
    rules = []
    for rule in group.rules:
        out: dict[str, Any] = {"record": rule.record} if rule.record else {"alert": rule.alert}
        out["expr"] = rule.expr
        if rule.labels:
            out["labels"] = dict(rule.labels)
        rules.append(out)
    return {"name": group.name, "rules": rules}


class _Dumper(yaml.SafeDumper):
    """Multi-line expressions as literal blocks, so the rule file reads like Sloth's."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


# --- running promtool (the only I/O) -----------------------------------------------------


def run_promtool(plan: SimulationPlan, promtool: str = "promtool") -> str:
    """Run the plan's unit test; promtool's combined output (SpecError if it cannot run)."""
    found = shutil.which(promtool)
    if found is None:
        raise SpecError(
            None,
            "promtool",
            f"{promtool!r} not found: install Prometheus' promtool (Debian package "
            "prometheus) or put it on PATH",
        )
    with tempfile.TemporaryDirectory(prefix="sre-slo-simulate-") as tmp:
        (Path(tmp) / "rules.yaml").write_text(plan.rules_yaml, encoding="utf-8")
        (Path(tmp) / "test.yaml").write_text(plan.test_yaml, encoding="utf-8")
        try:
            result = subprocess.run(
                [found, "test", "rules", "test.yaml"],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=False,
                timeout=_PROMTOOL_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise SpecError(
                None, "promtool", f"did not finish within {_PROMTOOL_TIMEOUT_S} s"
            ) from None
        except OSError as exc:
            raise SpecError(None, "promtool", f"cannot run {found}: {exc}") from None
    return result.stdout + result.stderr


def parse_promtool_output(output: str) -> list[tuple[dict[str, str], float]]:
    """The samples of the failing ``promql_expr_test`` cases (their ``got:`` lines), in order.

    promtool 2.42 prints ``got: {a="1", b="2"} 6.6E+03, {...} 1E+00`` or ``got: nil``;
    anything else (a rule that failed to evaluate, another format) is a SpecError.
    """
    lines = _GOT.findall(output)
    if not lines:
        tail = output.strip()[-2000:]
        raise SpecError(None, "promtool", f"unexpected output (no 'got:' line):\n{tail}")
    samples = []
    for line in lines:
        text = line.strip()
        if text == "nil":
            continue
        position = 0
        for sample in _SAMPLE.finditer(text):
            if sample.start() != position:
                break
            labels = {k: json.loads(f'"{v}"') for k, v in _LABEL.findall(sample.group(1))}
            samples.append((labels, float(sample.group(2))))
            position = sample.end()
        if position != len(text):
            raise SpecError(None, "promtool", f"cannot read the samples in: {text[:500]}")
    return samples


# --- the report ------------------------------------------------------------------------


def build_report(
    plan: SimulationPlan, samples: Sequence[tuple[Mapping[str, str], float]]
) -> SimulationReport:
    """Measured and expected times side by side, with what disagrees (pure)."""
    stats: dict[tuple[str, str, str, str], dict[str, float]] = {}
    names = {_FIRST: "first", _LAST: "last", _COUNT: "count"}
    for labels, value in samples:
        stat = names.get(labels.get("__name__", ""))
        if stat is None:
            continue
        key = (
            labels.get(_SLO_LABEL, ""),
            labels.get(_CASE_LABEL, ""),
            labels.get(_PHASE_LABEL, ""),
            labels.get("sloth_severity", ""),
        )
        stats.setdefault(key, {})[stat] = value

    results = []
    for index, (slo, windows) in enumerate(zip(plan.slos, plan.windows, strict=True)):
        burns = []
        for case, rate in enumerate(plan.burn_rates):
            burn = _burn(slo, rate)
            if burn is None:
                outage = go_float(round(1 / _budget(slo), 6))
                note = f"above a full outage ({outage}x) for a {go_float(slo.objective)}% objective"
                burns.append(BurnResult(rate, False, rate * _budget(slo), None, None, note))
                continue
            timings: dict[str, AlertTiming | None] = {s: None for s in _SEVERITIES}
            for severity in _enabled(slo):
                onset = stats.get((str(index), str(case), "onset", severity), {})
                recovery = stats.get((str(index), str(case), "recovery", severity), {})
                onset_end = plan.onset_ends_s[index][case]
                timings[severity] = _timing(
                    plan, windows, severity, burn, onset_end, onset, recovery
                )
            burns.append(
                BurnResult(
                    burn,
                    math.isinf(rate),
                    _error_ratio(slo, rate),
                    timings["page"],
                    timings["ticket"],
                )
            )
        results.append(
            SLOSimulation(
                slo_id=slo.id,
                service=slo.service,
                name=slo.name,
                objective=slo.objective,
                period_s=slo.period_s,
                page_enabled=slo.page_alert is not None,
                ticket_enabled=slo.ticket_alert is not None,
                burns=tuple(burns),
            )
        )
    return SimulationReport(plan.evaluation_interval_s, plan.run_s, tuple(results))


def _timing(
    plan: SimulationPlan,
    windows: PeriodWindows,
    severity: str,
    burn: float,
    onset_end: int,
    onset: Mapping[str, float],
    recovery: Mapping[str, float],
) -> AlertTiming:
    step, end, run = plan.evaluation_interval_s, plan.incident_end_s, plan.recovery_run_s
    expected_start = expected_start_s(windows, severity, burn)
    expected_stop = expected_stop_s(windows, severity, burn)
    problems: list[str] = []

    start: int | None = None
    if "first" in onset:
        start, last = int(onset["first"]), int(onset["last"])
        if last < onset_end:
            problems.append(f"stopped firing {_span(last + step)} into the burn")
        elif int(onset["count"]) != (last - start) // step + 1:
            problems.append("flapped during the burn")
    problems.extend(_compare("starts", start, expected_start, step, onset_end))

    # the recovery phase: firing before the burn ends means firing at the steady state
    stop: int | None = None
    first = int(recovery["first"]) if "first" in recovery else None
    steady = first is not None and first <= end
    if first is not None and first > end:
        problems.append(f"started firing {_span(first - end)} after the burn ended")
    if steady and expected_start is None:
        problems.append("fires once a burn has filled every window, expected never")
    if not steady and expected_start is not None:
        problems.append("silent once a burn has filled every window")
    if steady and first is not None:
        last = int(recovery["last"])
        if last >= run:
            problems.append(f"still firing {_span(run - end)} after the burn ended")
        elif int(recovery["count"]) != (last - first) // step + 1:
            problems.append("flapped after the burn ended")
        else:
            stop = last + step - end
            if expected_stop is not None:
                problems.extend(_compare("stops", stop, expected_stop, step, run - end))
    return AlertTiming(severity, expected_start, start, expected_stop, stop, tuple(problems))


def _off(measured: int | None, expected: float | None, step: int) -> bool:
    """More than one evaluation interval apart (or only one of them never)."""
    if measured is None or expected is None:
        return measured is not expected
    return abs(measured - expected) > step


def _compare(
    what: str, measured: int | None, expected: float | None, step: int, within: int
) -> list[str]:
    if not _off(measured, expected, step):
        return []
    if measured is None:
        return [f"{what}: not within {_span(within)}, expected after {_span(expected)}"]
    return [f"{what} after {_span(measured)}, expected {_span(expected)}"]


# --- rendering -------------------------------------------------------------------------


def _span(seconds: float | None) -> str:
    """A time as Prometheus writes durations (``2h30m``), to the second; ``never``."""
    if seconds is None:
        return "never"
    return format_duration(round(seconds))


def _number(value: float) -> str:
    return go_float(round(value, 4))


def _percent(ratio: float) -> str:
    return f"{go_float(round(ratio * 100, 6))}%"


def _cell(timing: AlertTiming | None, which: str, enabled: bool, step: int) -> str:
    if timing is None:
        return "n/a" if enabled else "disabled"
    if which == "start":
        measured, expected = timing.measured_start_s, timing.expected_start_s
    else:
        measured, expected = timing.measured_stop_s, timing.expected_stop_s
        if measured is None and expected is None:
            return "—"
    text = f"{_span(measured)} (exp. {_span(expected)})"
    return f"⚠ {text}" if _off(measured, expected, step) else text


def render_markdown(report: SimulationReport) -> str:
    """The report as Markdown: one table per SLO, measured (expected) times, ⚠ on a flag."""
    step = format_duration(report.evaluation_interval_s)
    lines = [
        "# SLO alert simulation",
        "",
        f"Measured with `promtool test rules` (rules evaluated every {step} over "
        f"{_span(report.run_s)} of simulated time), in parentheses the SRE Workbook's expectation: "
        "starts after long window * factor / burn rate (the earliest condition whose factor "
        "is below the burn rate), stops after short window * (1 - factor / burn rate) once "
        f"a burn that filled every window ends. ⚠: more than {step} from the expectation.",
        "",
        "A burn rate equal to a condition's factor puts the SLI exactly on its threshold, "
        "which the rules compare with `>`: that condition does not fire.",
    ]
    for slo in report.slos:
        lines += [
            "",
            f"## {slo.service}/{slo.name}: {go_float(slo.objective)}% over "
            f"{format_duration(slo.period_s)}",
            "",
            "| burn rate | error ratio | page starts | page stops | ticket starts | ticket stops |",
            "|---|---:|---|---|---|---|",
        ]
        notes = []
        for burn in slo.burns:
            if burn.note:
                lines.append(f"| {burn.label} | {_percent(burn.error_ratio)} | {burn.note} | | | |")
                continue
            cells = [
                _cell(burn.page, "start", slo.page_enabled, report.evaluation_interval_s),
                _cell(burn.page, "stop", slo.page_enabled, report.evaluation_interval_s),
                _cell(burn.ticket, "start", slo.ticket_enabled, report.evaluation_interval_s),
                _cell(burn.ticket, "stop", slo.ticket_enabled, report.evaluation_interval_s),
            ]
            lines.append(
                f"| {burn.label} | {_percent(burn.error_ratio)} | " + " | ".join(cells) + " |"
            )
            for timing in (burn.page, burn.ticket):
                if timing is not None:
                    notes += [f"- {burn.label} {timing.severity}: {p}" for p in timing.problems]
        if notes:
            lines += ["", *notes]
    return "\n".join(lines) + "\n"


def _timing_dict(timing: AlertTiming | None) -> dict[str, Any] | None:
    if timing is None:
        return None
    return {
        "expected_start_seconds": timing.expected_start_s,
        "measured_start_seconds": timing.measured_start_s,
        "expected_stop_seconds": timing.expected_stop_s,
        "measured_stop_seconds": timing.measured_stop_s,
        "problems": list(timing.problems),
    }


def render_json(report: SimulationReport) -> str:
    """The report as JSON (seconds; ``null`` for never), keys sorted, final newline."""
    data = {
        "evaluation_interval_seconds": report.evaluation_interval_s,
        "run_seconds": report.run_s,
        "flagged": report.flagged,
        "slos": [
            {
                "id": slo.slo_id,
                "service": slo.service,
                "name": slo.name,
                "objective": slo.objective,
                "period_seconds": slo.period_s,
                "burns": [
                    {
                        "burn_rate": burn.burn_rate,
                        "outage": burn.outage,
                        "error_ratio": burn.error_ratio,
                        "note": burn.note,
                        "page": _timing_dict(burn.page),
                        "ticket": _timing_dict(burn.ticket),
                    }
                    for burn in slo.burns
                ],
            }
            for slo in report.slos
        ],
    }
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


# --- the one call the CLI makes ---------------------------------------------------------


def simulate(
    slos: Sequence[SLO],
    catalog: dict[int, PeriodWindows],
    burn_rates: Sequence[float] | None = None,
    evaluation_interval_s: int = 60,
    *,
    promtool: str = "promtool",
) -> SimulationReport:
    """Measure every SLO's alerts at every burn rate (default :data:`DEFAULT_BURN_RATES`)."""
    plan = build_plan(slos, catalog, burn_rates, evaluation_interval_s)
    if not any(end for ends in plan.onset_ends_s for end in ends):
        return build_report(plan, [])  # nothing to run: no alert, or no possible burn rate
    return build_report(plan, parse_promtool_output(run_promtool(plan, promtool)))
