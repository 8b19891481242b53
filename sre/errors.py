"""The one error shape every component raises for bad input.

A message reads ``file: entry: problem`` so that the person who wrote the input can find
the spot without a traceback; further problems found in the same pass go in ``details``
so a user fixes everything in one round.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["SreError", "Unavailable"]


class SreError(Exception):
    """Bad input (config, spec, flag, environment) found before any work was done."""

    def __init__(
        self,
        file: str | None,
        entry: str | None,
        problem: str,
        details: Sequence[SreError] | None = None,
    ) -> None:
        self.file = file
        self.entry = entry
        self.problem = problem
        self.details = list(details or [])
        super().__init__(self._line())

    def _line(self) -> str:
        return ": ".join(part for part in (self.file, self.entry, self.problem) if part)

    def __str__(self) -> str:
        lines = [self._line()]
        lines.extend(detail._line() for detail in self.details)
        return "\n".join(lines)


class Unavailable(Exception):
    """A dependency (a database, a server) did not answer: exit 1, not 2; input was fine."""
