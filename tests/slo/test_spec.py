"""Spec loading: three formats into one model, and every bad input named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from slo.errors import SpecError
from slo.model import EventsSLI, RawSLI
from slo.spec import SPECS_DIR, load_specs, render_query
from slo.windows import load_windows
from sre.conventions import APP_JOB

TESTDATA = Path(__file__).parent / "testdata"
BAD = sorted((TESTDATA / "bad").glob("*.yaml"))


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_specs_give_the_expected_errors(path: Path) -> None:
    relative = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    header = [line for line in path.read_text().splitlines() if line.startswith("# error")]
    with pytest.raises(SpecError) as caught:
        load_specs([relative], catalog=load_windows())
    got = str(caught.value).splitlines()
    assert len(got) == len(header), str(caught.value)
    for line, expected in zip(got, header, strict=True):
        kind, _, text = expected.partition(": ")
        if kind == "# error-prefix":
            assert line.startswith(f"{relative}: {text}")
        else:
            assert line == f"{relative}: {text}"


def test_every_bad_file_of_a_directory_is_reported_in_one_error() -> None:
    with pytest.raises(SpecError) as caught:
        load_specs([TESTDATA / "bad"])
    files = {line.split(": ")[0] for line in str(caught.value).splitlines()}
    assert files == {str(p) for p in BAD}


def test_a_period_without_alert_windows_is_refused() -> None:
    with pytest.raises(SpecError, match=r"no alert windows for an SLO period of 1w"):
        load_specs([SPECS_DIR], period_s=7 * 86400, catalog=load_windows())


def test_a_missing_path_is_named() -> None:
    with pytest.raises(SpecError, match=r"^nowhere\.yaml: no such file or directory$"):
        load_specs([Path("nowhere.yaml")])


@pytest.mark.parametrize(
    ("window_s", "expected"),
    [(300, "5m"), (86400, "1d"), (28 * 86400, "4w"), (30 * 86400, "30d"), (5400, "1h30m")],
    ids=["minutes", "a day", "four weeks print as weeks", "thirty days", "mixed units"],
)
def test_the_window_variable_takes_prometheus_spelling(window_s: int, expected: str) -> None:
    assert render_query("rate(x[{{.window}}]) / rate(y[{{ .window }}])", window_s) == (
        f"rate(x[{expected}]) / rate(y[{expected}])"
    )


def test_openslo_v1_good_over_total_and_bad_over_total() -> None:
    documents = load_specs([TESTDATA / "in-openslo-v1.yaml"])
    (good,), (bad,) = (d.slos for d in documents)
    assert (good.id, good.objective, good.period_s) == ("checkout-availability-0", 99.9, 28 * 86400)
    assert isinstance(good.sli, RawSLI)
    assert "1 - (" in good.sli.error_ratio_query
    assert (bad.id, bad.objective, bad.period_s) == ("checkout-errors-0", 99.5, 30 * 86400)
    assert isinstance(bad.sli, EventsSLI)
    assert 'status=~"5.."' in bad.sli.error_query


def test_the_project_specs_have_three_gated_slos_on_the_apps_job() -> None:
    (document,) = load_specs([SPECS_DIR], catalog=load_windows())
    by_name = {slo.name: slo for slo in document.slos}
    assert set(by_name) == {"requests-availability", "requests-latency", "borrow-availability"}
    for slo in document.slos:
        assert slo.gate is not None, slo.name
        assert isinstance(slo.sli, EventsSLI)
        assert f'job="{APP_JOB}"' in slo.sli.error_query + slo.sli.total_query
        assert slo.page_alert is not None and slo.page_alert.labels["severity"] == "critical"
        assert slo.ticket_alert is not None and slo.ticket_alert.labels["severity"] == "warning"
    assert 'le="0.2"' in by_name["requests-latency"].sli.error_query  # type: ignore[union-attr]
    assert by_name["borrow-availability"].gate.requests == ("POST /api/loans",)  # type: ignore[union-attr]
