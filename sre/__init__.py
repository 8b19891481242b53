"""eLibrary SRE toolkit: the shared pieces and the `sre` command line."""

from sre.errors import SreError

__all__ = ["SreError"]
