"""The SLO component's one error class (STYLE.md "Errors")."""

from __future__ import annotations

from sre.errors import SreError

__all__ = ["SpecError"]


class SpecError(SreError):
    """A spec, a windows catalog or an option that cannot become rules: exit 2."""
