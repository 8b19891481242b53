"""What one app instance shares between requests: settings, database, clock, metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flask import current_app
from itsdangerous import URLSafeTimedSerializer

from app.config import Config
from app.db import Database

if TYPE_CHECKING:
    from app.metrics import AppMetrics

__all__ = ["AppState", "state", "utc_now"]


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


@dataclass
class AppState:
    """Held in ``app.extensions['elibrary']``."""

    config: Config
    db: Database
    clock: Callable[[], datetime]
    metrics: AppMetrics | None = None
    signing_key: str | None = None
    token_serializer: URLSafeTimedSerializer | None = None


def state() -> AppState:
    """The state of the app handling the current request."""
    return current_app.extensions["elibrary"]
