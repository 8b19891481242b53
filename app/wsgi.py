"""The WSGI entry point gunicorn imports in each worker: ``app.wsgi:application``."""

from app import create_app
from app.config import load_config
from app.logs import configure_logging

_config = load_config()
configure_logging(_config.log_level)
application = create_app(_config)
