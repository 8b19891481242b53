"""The load profile's journeys with spread pacing, for ``bench/load_sla.py --pacing spread``.

Locust starts each batch of users (``spawn_rate`` of them, once a second) at the same
instant, and ``constant_throughput(1)`` keeps every user on the phase it started with: all
users of a run send their request within the same few milliseconds of each second, and a
user that waited longer than a second sends at once, so a stall ends in a burst too. The
offered rate is right, but it arrives as one burst a second.

Here each user keeps the same mean rate (the profile's ``user_rps``) with a random phase and
a jittered period (uniform between 0.5 and 1.5 times the mean), so requests arrive spread
over the second, as independent clients would send them; a user that is behind sends at once
(no catching up), as with ``constant_throughput``. Everything else is the project's
locustfile: the same journeys, shape, per-request log and run files.
"""

from __future__ import annotations

import random
import time
from typing import Any

import loadtests.locustfile as journeys
from loadtests.locustfile import Borrower, Browser, Librarian, Newcomer, Reader, RunShape
from loadtests.profiles import get_profile

__all__ = ["Borrower", "Browser", "Librarian", "Newcomer", "Reader", "RunShape"]

_RNG = random.Random()


def _spread(user: Any) -> float:
    """Seconds until this user's next request: a random phase first, then jittered periods
    around 1 / user_rps."""
    now = time.monotonic()
    due = getattr(user, "_bench_due", None)
    if due is None:
        options = user.environment.parsed_options
        rate = get_profile(getattr(options, "sre_profile", None) or "smoke").user_rps
        user._bench_period = 1.0 / rate
        due = now + _RNG.random() * user._bench_period
    else:
        due += user._bench_period * _RNG.uniform(0.5, 1.5)
        if due < now:
            due = now  # behind: send now, no burst to catch up
    user._bench_due = due
    return max(0.0, due - now)


journeys._ApiUser.wait_time = _spread  # type: ignore[assignment]
