"""How a failure is told in a log line: its type, its message without the password and,
for an exception that is a bug rather than a database error, where it was raised."""

from __future__ import annotations

import traceback
from collections.abc import Callable

from exporter.db import QueryFailed

__all__ = ["failure_fields"]


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    if kind.__module__ == "builtins" or kind.__module__.startswith("exporter."):
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"  # struct.error says little as "error"


def failure_fields(exc: BaseException, redact: Callable[[str], str]) -> dict[str, str]:
    """Log fields ``error_type``, ``error`` and, for anything but QueryFailed, ``raised_at``.

    QueryFailed messages are written by exporter.db and never hold credentials; any other
    message is passed through ``redact`` (MySQLTarget.redact) because nobody vetted it.
    """
    fields = {"error_type": _type_name(exc), "error": redact(str(exc))}
    if not isinstance(exc, QueryFailed) and exc.__traceback__ is not None:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        fields["raised_at"] = f"{frame.filename}:{frame.lineno} in {frame.name}"
    return fields
