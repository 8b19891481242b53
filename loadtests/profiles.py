"""Load profiles (smoke, load, stress, soak) and the load shape that plays them.

A profile is pure data: how many users, how fast they arrive, how long the run lasts and
how many requests each user sends per second. Every task of every journey sends exactly one
request (``loadtests/locustfile.py``), and users pace themselves with Locust's
``constant_throughput``, so a profile's intended request rate at full load is simply
``users * user_rps``: the number the gate compares the measured rate with.

``ProfileShape`` holds the shape's logic without importing Locust (importing Locust patches
the interpreter with gevent); the locustfile mixes it into a ``LoadTestShape``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sre.errors import SreError

__all__ = ["PROFILES", "Profile", "ProfileShape", "get_profile", "with_overrides"]


@dataclass(frozen=True)
class Profile:
    """One load profile; ``users``, ``spawn_rate`` and ``run_time_s`` can be overridden."""

    name: str
    #: what the profile is for, one line
    purpose: str
    #: peak number of concurrent users (Locust ``--users``), at least 1
    users: int
    #: users started per second while ramping up (Locust ``--spawn-rate``), > 0
    spawn_rate: float
    #: the whole run, ramp-up included, in seconds (Locust ``--run-time``), at least 1
    run_time_s: int
    #: requests per second each user sends (``constant_throughput``); 1.0 is 1 s think time
    user_rps: float = 1.0
    #: equal steps the run is cut into; step k of n holds ceil(users * k / n) users
    steps: int = 1

    @property
    def peak_rps(self) -> float:
        """The intended total request rate with every user running."""
        return round(self.users * self.user_rps, 6)

    @property
    def target_rps(self) -> float:
        """The intended mean request rate over the whole run (run.json's ``target_rps``).

        The gate compares the achieved rate with this, so it counts what the profile itself
        holds back: each step's share of the run, and the ramp at ``spawn_rate`` to each
        step's users (a ramp of ``d`` users misses ``d * d / (2 * spawn_rate)`` user-seconds).
        A stress run must not look short of its peak, nor a fast ramp of its users.
        """
        step_s = self.run_time_s / self.steps
        user_seconds, before = 0.0, 0
        for k in range(1, self.steps + 1):
            users = math.ceil(self.users * k / self.steps)
            ramp_s = min(step_s, (users - before) / self.spawn_rate)
            # users grow linearly from ``before`` during the ramp, then hold for the step
            ramping = ramp_s * (before + min(users, before + self.spawn_rate * ramp_s)) / 2
            user_seconds += ramping + users * (step_s - ramp_s)
            before = users
        return round(user_seconds / self.run_time_s * self.user_rps, 6)

    @property
    def think_time_s(self) -> float:
        """Seconds between the starts of two requests of one user."""
        return 1.0 / self.user_rps

    def users_at(self, elapsed_s: float) -> int | None:
        """Users wanted ``elapsed_s`` seconds into the run; None once the run is over."""
        if elapsed_s >= self.run_time_s or elapsed_s < 0:
            return None
        step = min(self.steps, int(elapsed_s * self.steps // self.run_time_s) + 1)
        return max(1, math.ceil(self.users * step / self.steps))

    def tick(self, elapsed_s: float) -> tuple[int, float] | None:
        """What a Locust load shape answers at ``elapsed_s``: (users, spawn rate) or None."""
        users = self.users_at(elapsed_s)
        return None if users is None else (users, self.spawn_rate)


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            "smoke",
            "every journey once or twice: does the API answer at all, after each deploy",
            users=5,
            spawn_rate=5,
            run_time_s=30,
        ),
        Profile(
            "load",
            "the expected busy-hour traffic, long enough for a p95 and the 5m SLO windows",
            users=50,
            spawn_rate=5,
            run_time_s=600,
        ),
        Profile(
            "stress",
            "five equal steps up to four times the load profile: where does it break",
            users=200,
            spawn_rate=10,
            run_time_s=600,
            steps=5,
        ),
        Profile(
            "soak",
            "steady moderate traffic for an hour: leaks, pool exhaustion, slow drift",
            users=30,
            spawn_rate=2,
            run_time_s=3600,
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; SreError naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise SreError(None, "--profile", f"unknown profile {name!r}; known: {known}") from None


def with_overrides(
    profile: Profile,
    users: int | None = None,
    spawn_rate: float | None = None,
    run_time_s: int | None = None,
) -> Profile:
    """``profile`` with the given values replaced; SreError listing every bad one."""
    problems = []
    if users is not None and (isinstance(users, bool) or not isinstance(users, int) or users < 1):
        problems.append(SreError(None, "--users", f"must be a whole number >= 1, not {users!r}"))
    if spawn_rate is not None and not (
        isinstance(spawn_rate, int | float)
        and not isinstance(spawn_rate, bool)
        and math.isfinite(spawn_rate)
        and spawn_rate > 0
    ):
        problems.append(SreError(None, "--spawn-rate", f"must be > 0 users/s, not {spawn_rate!r}"))
    if run_time_s is not None and (
        isinstance(run_time_s, bool) or not isinstance(run_time_s, int) or run_time_s < 1
    ):
        problems.append(
            SreError(
                None, "--run-time", f"must be a whole number of seconds >= 1, not {run_time_s!r}"
            )
        )
    if problems:
        raise SreError(problems[0].file, problems[0].entry, problems[0].problem, problems[1:])
    return replace(
        profile,
        users=profile.users if users is None else users,
        spawn_rate=profile.spawn_rate if spawn_rate is None else float(spawn_rate),
        run_time_s=profile.run_time_s if run_time_s is None else run_time_s,
    )


class ProfileShape:
    """The logic of the run's load shape; the locustfile adds Locust's ``LoadTestShape``.

    The profile comes from the locustfile's ``--sre-profile`` option, users, spawn rate and
    run time from Locust's own ``--users``, ``--spawn-rate`` and ``--run-time`` (the runner
    always passes all three), so Locust's names are the override names.
    """

    #: let the shape read --users, --spawn-rate and --run-time (Locust ignores them otherwise)
    use_common_options = True
    _effective: Profile | None = None
    # provided by LoadTestShape, which comes after this class in the locustfile's bases
    runner: Any
    get_run_time: Callable[[], float]

    def profile(self) -> Profile:
        """The profile this run plays, overrides applied (read once, at the first tick)."""
        if self._effective is None:
            options = self.runner.environment.parsed_options
            base = get_profile(getattr(options, "sre_profile", None) or "smoke")
            run_time = getattr(options, "run_time", None)
            self._effective = with_overrides(
                base,
                users=getattr(options, "num_users", None),
                spawn_rate=getattr(options, "spawn_rate", None),
                run_time_s=int(run_time) if run_time else None,
            )
        return self._effective

    def tick(self) -> tuple[int, float] | None:
        """(users, spawn rate) now, or None to end the run."""
        return self.profile().tick(self.get_run_time())
