"""The eLibrary service: a Flask app for books, members and loans (DESIGN.md "HTTP API")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask, abort

from app.config import Config, ConfigError, database_password, load_config
from app.db import MAX_ID, Database
from app.state import AppState, utc_now

__all__ = ["Config", "ConfigError", "create_app", "load_config"]


def _ids_in_range(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """An id no database column can hold names nothing: 404, rather than an overflow."""
    if values and any(isinstance(v, int) and v > MAX_ID for v in values.values()):
        abort(404)


def create_app(config: Config | None = None, *, clock: Callable[[], datetime] = utc_now) -> Flask:
    """Build the service; settings come from the environment unless given."""
    from app import books, loans, members, ops
    from app.faults import init_faults
    from app.logs import init_request_logging
    from app.metrics import AppMetrics, init_metrics
    from app.problems import init_problems

    config = config or load_config()
    app = Flask(__name__)
    app.url_value_preprocessor(_ids_in_range)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    metrics = None
    if config.metrics_enabled:
        metrics = AppMetrics(config.build_version, config.build_revision)
        init_metrics(app, metrics)  # first, so every later hook's failures are counted
    db = Database(
        config.database_url,
        connect_timeout_s=config.db_connect_timeout_s,
        query_timeout_s=config.db_query_timeout_s,
        pool_size=config.db_pool_size,
        on_checkout=metrics.on_db_checkout if metrics else None,
        password=database_password(config),
    )
    app.extensions["elibrary"] = AppState(config=config, db=db, clock=clock, metrics=metrics)
    app.config["SRE"] = config

    init_request_logging(app, config.access_log)
    if config.fault_file:
        init_faults(app, config.fault_file)
    init_problems(app)
    for blueprint in (members.blueprint, books.blueprint, loans.blueprint, ops.blueprint):
        app.register_blueprint(blueprint)
    return app
