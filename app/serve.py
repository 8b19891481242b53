"""Run the service under gunicorn with metrics that add up across workers.

The master prepares prometheus-client's multiprocess directory before any worker starts
(wiping what a previous run left) and folds each exiting worker's counters into the
archive (``app.multiproc``), so worker recycling neither loses counts nor slows scrapes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication

__all__ = ["ServerOptions", "run_server"]


@dataclass(frozen=True)
class ServerOptions:
    """How gunicorn runs the app; see ``sre app serve --help`` for each field."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2 * (os.cpu_count() or 1) + 1
    threads: int = 4
    max_requests: int = 10_000
    max_requests_jitter: int = 1_000
    timeout_s: int = 30
    metrics_dir: str | None = None


class _Gunicorn(BaseApplication):
    def __init__(self, settings: dict[str, Any]) -> None:
        self._settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._settings.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from app.wsgi import application

        return application


def run_server(options: ServerOptions) -> None:
    """Serve until SIGTERM/SIGINT; returns when gunicorn has stopped."""
    own_dir = options.metrics_dir is None
    metrics_dir = options.metrics_dir or tempfile.mkdtemp(prefix="sre-app-metrics-")
    # Must be set before prometheus_client is imported anywhere in this process or a worker.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from app.multiproc import fold_dead_worker, prepare_directory
    from app.process import SERVER_PID_ENV

    # gunicorn's master runs in this process; its workers add it up with themselves
    os.environ[SERVER_PID_ENV] = str(os.getpid())

    def on_starting(server: Any) -> None:
        prepare_directory(metrics_dir)

    def child_exit(server: Any, worker: Any) -> None:
        fold_dead_worker(metrics_dir, worker.pid)

    def on_exit(server: Any) -> None:
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)

    _Gunicorn(
        {
            "bind": f"{options.host}:{options.port}",
            "workers": options.workers,
            "worker_class": "gthread" if options.threads > 1 else "sync",
            "threads": options.threads,
            "max_requests": options.max_requests,
            "max_requests_jitter": options.max_requests_jitter,
            "timeout": options.timeout_s,
            "graceful_timeout": 10,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            # gunicorn's own lines (boot, worker exits, timeouts) as JSON like the app's
            "logconfig_dict": {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"json": {"()": "app.logs.JsonFormatter"}},
                "handlers": {
                    "stderr": {
                        "class": "logging.StreamHandler",
                        "formatter": "json",
                        "stream": "ext://sys.stderr",
                    }
                },
                "root": {"level": "INFO", "handlers": ["stderr"]},
                "loggers": {
                    "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
                },
            },
            "proc_name": "elibrary",
            # One control socket per user home would make parallel servers collide.
            "control_socket_disable": True,
            "on_starting": on_starting,
            "child_exit": child_exit,
            "on_exit": on_exit,
        }
    ).run()
