"""Load profiles and the shape that plays them: pure, no Locust imported."""

from __future__ import annotations

from argparse import Namespace
from types import SimpleNamespace

import pytest

from loadtests.profiles import PROFILES, Profile, ProfileShape, get_profile, with_overrides
from sre.errors import SreError


@pytest.mark.parametrize(
    ("name", "users", "spawn_rate", "run_time_s", "target_rps", "steps"),
    [
        ("smoke", 5, 5, 30, 4.916667, 1),
        ("load", 50, 5, 600, 49.583333, 1),
        ("stress", 200, 10, 600, 119.333333, 5),
        ("soak", 30, 2, 3600, 29.9375, 1),
    ],
    ids=[
        "smoke is five users for half a minute",
        "load is fifty users for ten minutes",
        "stress climbs to two hundred users in five steps over ten minutes (mean rate 119/s)",
        "soak is thirty users for an hour",
    ],
)
def test_the_profiles(
    name: str, users: int, spawn_rate: float, run_time_s: int, target_rps: float, steps: int
) -> None:
    profile = PROFILES[name]
    assert (profile.users, profile.spawn_rate, profile.run_time_s, profile.steps) == (
        users,
        spawn_rate,
        run_time_s,
        steps,
    )
    assert profile.target_rps == target_rps
    assert profile.think_time_s == 1.0


def test_smoke_is_short_and_light_enough_for_every_deploy() -> None:
    smoke = PROFILES["smoke"]
    assert smoke.run_time_s <= 30
    assert smoke.users <= 10
    assert smoke.users / smoke.spawn_rate <= 2, "everyone is running within two seconds"


def test_every_profile_is_named_by_its_key_and_says_what_it_is_for() -> None:
    assert sorted(PROFILES) == ["load", "smoke", "soak", "stress"]
    for name, profile in PROFILES.items():
        assert profile.name == name
        assert profile.purpose


@pytest.mark.parametrize(
    ("profile", "elapsed_s", "expected"),
    [
        (PROFILES["smoke"], 0, (5, 5.0)),
        (PROFILES["smoke"], 29.9, (5, 5.0)),
        (PROFILES["smoke"], 30, None),
        (PROFILES["smoke"], 31, None),
        (PROFILES["stress"], 0, (40, 10.0)),
        (PROFILES["stress"], 119.9, (40, 10.0)),
        (PROFILES["stress"], 120, (80, 10.0)),
        (PROFILES["stress"], 300, (120, 10.0)),
        (PROFILES["stress"], 480, (200, 10.0)),
        (PROFILES["stress"], 599.9, (200, 10.0)),
        (PROFILES["stress"], 600, None),
        (Profile("tiny", "", users=2, spawn_rate=1, run_time_s=50, steps=5), 0, (1, 1.0)),
        (Profile("tiny", "", users=2, spawn_rate=1, run_time_s=50, steps=5), 49, (2, 1.0)),
    ],
    ids=[
        "smoke asks for all its users from the start (the spawn rate ramps them)",
        "and keeps them until the last moment",
        "and ends exactly at its run time",
        "and stays ended",
        "stress starts at a fifth of its users",
        "and holds the first step for a fifth of the run",
        "the second step holds two fifths",
        "the middle of the run is the third step",
        "the last step has every user",
        "until the very end",
        "stress ends at its run time",
        "a step never asks for zero users",
        "the last step of a small run still reaches every user",
    ],
)
def test_the_shape_over_time(
    profile: Profile, elapsed_s: float, expected: tuple[int, float] | None
) -> None:
    assert profile.tick(elapsed_s) == expected


def test_overrides_replace_users_spawn_rate_and_run_time_and_nothing_else() -> None:
    stress = with_overrides(PROFILES["stress"], users=10, spawn_rate=2.5, run_time_s=100)
    assert (stress.users, stress.spawn_rate, stress.run_time_s) == (10, 2.5, 100)
    assert (stress.steps, stress.user_rps, stress.name) == (5, 1.0, "stress")
    # steps of 2, 4, 6, 8, 10 users, each reached after a 0.8 s ramp at 2.5 users/s
    assert (stress.peak_rps, stress.target_rps) == (10, 5.96)
    assert [stress.users_at(t) for t in (0, 20, 40, 60, 80, 99)] == [2, 4, 6, 8, 10, 10]
    assert with_overrides(PROFILES["load"]) == PROFILES["load"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"users": 0}, "--users: must be a whole number >= 1, not 0"),
        ({"users": 2.5}, "--users: must be a whole number >= 1, not 2.5"),
        ({"users": True}, "--users: must be a whole number >= 1, not True"),
        ({"spawn_rate": 0}, "--spawn-rate: must be > 0 users/s, not 0"),
        ({"spawn_rate": float("inf")}, "--spawn-rate: must be > 0 users/s, not inf"),
        ({"run_time_s": 0}, "--run-time: must be a whole number of seconds >= 1, not 0"),
        (
            {"users": -1, "spawn_rate": -2.0, "run_time_s": -3},
            "--users: must be a whole number >= 1, not -1\n"
            "--spawn-rate: must be > 0 users/s, not -2.0\n"
            "--run-time: must be a whole number of seconds >= 1, not -3",
        ),
    ],
    ids=[
        "no users",
        "a fraction of a user",
        "a flag passed as a number of users",
        "a spawn rate of zero would never start anyone",
        "an infinite spawn rate",
        "a run of no time",
        "every bad override is reported at once",
    ],
)
def test_bad_overrides_name_the_option(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(SreError) as caught:
        with_overrides(PROFILES["smoke"], **overrides)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(SreError) as caught:
        get_profile("spike")
    assert (
        str(caught.value) == "--profile: unknown profile 'spike'; known: load, smoke, soak, stress"
    )


class _Shape(ProfileShape):
    """ProfileShape as the locustfile's LoadTestShape uses it, with a clock of the test's."""

    def __init__(self, **options: object) -> None:
        self.runner = SimpleNamespace(
            environment=SimpleNamespace(parsed_options=Namespace(**options))
        )
        self.now = 0.0
        self.get_run_time = lambda: self.now


def test_the_shape_reads_the_profile_and_locusts_own_options() -> None:
    shape = _Shape(sre_profile="stress", num_users=10, spawn_rate=2.0, run_time=100)
    assert shape.use_common_options, "else Locust ignores --users/--spawn-rate/--run-time"
    seen = []
    for shape.now in (0, 25, 50, 99, 100):
        seen.append(shape.tick())
    assert seen == [(2, 2.0), (4, 2.0), (6, 2.0), (10, 2.0), None]


def test_without_a_run_time_the_shape_plays_the_profiles_own() -> None:
    shape = _Shape(sre_profile="smoke", num_users=5, spawn_rate=5.0, run_time=None)
    shape.now = 29
    assert shape.tick() == (5, 5.0)
    shape.now = 30
    assert shape.tick() is None


@pytest.mark.parametrize(
    ("users", "spawn_rate", "run_time_s", "target_rps"),
    [(30, 30, 15, 29.0), (30, 6, 15, 25.0), (30, 1, 15, 7.5)],
    ids=[
        "thirty users started in a second miss half a second of load",
        "thirty users ramped over five seconds average twenty-five",
        "a ramp longer than the run never reaches its users",
    ],
)
def test_the_target_rate_counts_the_ramp(
    users: int, spawn_rate: float, run_time_s: int, target_rps: float
) -> None:
    smoke = with_overrides(
        PROFILES["smoke"], users=users, spawn_rate=spawn_rate, run_time_s=run_time_s
    )
    assert smoke.target_rps == target_rps
