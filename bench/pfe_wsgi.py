"""WSGI module for the "pfe" benchmark mode: the app, metrics off, under prometheus-flask-exporter.

This is the reference point for what instrumentation usually costs: the service is built
exactly as ``app.wsgi`` builds it but with its own metrics switched off, and wrapped by
``GunicornPrometheusMetrics`` (multiprocess mode, one series per URL rule). Gunicorn
imports it as ``pfe_wsgi:application`` with ``--pythonpath bench``;
``PROMETHEUS_MULTIPROC_DIR`` must name an empty directory before the import.
"""

from __future__ import annotations

from flask import Flask
from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics

import app
import app.config
from app.logs import configure_logging

__all__ = ["application", "metrics"]


def build() -> tuple[Flask, GunicornPrometheusMetrics]:
    """The uninstrumented service wrapped by prometheus-flask-exporter."""
    config = app.config.load_config(metrics_enabled=False)
    configure_logging(config.log_level)
    flask_app = app.create_app(config)
    return flask_app, GunicornPrometheusMetrics(flask_app, group_by="url_rule")


application, metrics = build()
