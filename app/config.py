"""Service settings, read once from the environment (twelve-factor).

Every setting has a default on the dataclass; secrets come from files named by
``*_FILE`` variables so they never sit in the environment or a process listing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import metadata

from sre.errors import SreError

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Config",
    "ConfigError",
    "database_password",
    "installed_version",
    "load_config",
]

DEFAULT_DATABASE_URL = "sqlite:///var/elibrary.sqlite3"


class ConfigError(SreError):
    """A setting of the service is missing or malformed."""


@functools.cache  # reading the package metadata scans site-packages: once is enough
def installed_version() -> str:
    """The version of the installed ``elibrary-sre`` package, as its metadata says."""
    try:
        return metadata.version("elibrary-sre")
    except metadata.PackageNotFoundError:  # running from a source tree nobody installed
        return "0+unknown"


@dataclass(frozen=True)
class Config:
    """Settings of one service instance; units are in the field names."""

    database_url: str = DEFAULT_DATABASE_URL
    #: file holding the MySQL password, used instead of any password in ``database_url``
    database_password_file: str | None = None
    #: seconds to wait for a database connection to open
    db_connect_timeout_s: float = 2.0
    #: seconds one statement may run before the database or the client cuts it off
    db_query_timeout_s: float = 5.0
    #: connections kept open per worker process
    db_pool_size: int = 8
    #: seconds the readiness probe waits for the database
    ready_timeout_s: float = 1.0
    #: seconds an access token stays valid
    token_ttl_s: int = 3600
    #: file holding the token signing key; without it the key lives in the database
    secret_key_file: str | None = None
    #: active loans a member may hold at once
    loan_limit: int = 5
    #: days a loan lasts, and what one renewal adds
    loan_days: int = 14
    metrics_enabled: bool = True
    access_log: bool = True
    log_level: str = "INFO"
    #: where a fault-injection JSON file lives; unset means no fault code runs
    fault_file: str | None = None
    #: the installed package's version (``elibrary_build_info``'s ``version`` label)
    build_version: str = field(default_factory=installed_version)
    #: the source revision the build was made from, ``SRE_BUILD_REVISION``
    build_revision: str = "unknown"
    #: seconds a client should wait before retrying when the database is down
    retry_after_s: int = 5


_ENV = {
    "database_url": "DATABASE_URL",
    "database_password_file": "SRE_DATABASE_PASSWORD_FILE",
    "db_connect_timeout_s": "SRE_DB_CONNECT_TIMEOUT",
    "db_query_timeout_s": "SRE_DB_QUERY_TIMEOUT",
    "db_pool_size": "SRE_DB_POOL_SIZE",
    "ready_timeout_s": "SRE_READY_TIMEOUT",
    "token_ttl_s": "SRE_TOKEN_TTL",
    "secret_key_file": "SRE_SECRET_KEY_FILE",
    "loan_limit": "SRE_LOAN_LIMIT",
    "loan_days": "SRE_LOAN_DAYS",
    "metrics_enabled": "SRE_METRICS_ENABLED",
    "access_log": "SRE_ACCESS_LOG",
    "log_level": "SRE_LOG_LEVEL",
    "fault_file": "SRE_FAULT_FILE",
    "build_revision": "SRE_BUILD_REVISION",
    "retry_after_s": "SRE_RETRY_AFTER",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}


def _convert(name: str, kind: type, raw: str) -> object:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("expected true or false")
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    return raw


def load_config(env: Mapping[str, str] | None = None, **overrides: object) -> Config:
    """Build a Config from environment variables, then apply explicit overrides."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    problems: list[ConfigError] = []
    kinds = {f.name: f.type for f in fields(Config)}
    type_names = {"float": float, "int": int, "bool": bool, "str": str, "str | None": str}
    for name, var in _ENV.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        kind = type_names.get(str(kinds[name]), str)
        try:
            values[name] = _convert(name, kind, raw)
        except ValueError as exc:
            problems.append(ConfigError("environment", var, f"{raw!r} is not valid: {exc}"))
    values.update(overrides)
    config = Config(**values)  # type: ignore[arg-type]
    problems.extend(_check(config))
    if problems:
        raise ConfigError(problems[0].file, problems[0].entry, problems[0].problem, problems[1:])
    return config


def _check(config: Config) -> list[ConfigError]:
    problems = []

    def bad(var: str, problem: str) -> None:
        problems.append(ConfigError("environment", var, problem))

    if not config.database_url.startswith(("sqlite://", "mysql://", "mariadb://")):
        bad("DATABASE_URL", "must start with sqlite:/// or mysql://")
    for name in ("db_connect_timeout_s", "db_query_timeout_s", "ready_timeout_s"):
        if not 0 < getattr(config, name) <= 300:
            bad(_ENV[name], "must be between 0 and 300 seconds")
    if not 1 <= config.db_pool_size <= 256:
        bad("SRE_DB_POOL_SIZE", "must be between 1 and 256")
    if not 60 <= config.token_ttl_s <= 86400 * 7:
        bad("SRE_TOKEN_TTL", "must be between 60 and 604800 seconds")
    if not 1 <= config.loan_limit <= 100:
        bad("SRE_LOAN_LIMIT", "must be between 1 and 100")
    if not 1 <= config.loan_days <= 365:
        bad("SRE_LOAN_DAYS", "must be between 1 and 365")
    if config.log_level.upper() not in _LEVELS:
        bad("SRE_LOG_LEVEL", f"must be one of {', '.join(sorted(_LEVELS))}")
    if not 1 <= config.retry_after_s <= 3600:
        bad("SRE_RETRY_AFTER", "must be between 1 and 3600 seconds")
    for name in ("secret_key_file", "database_password_file"):
        path = getattr(config, name)
        if path is not None and not os.path.isfile(path):
            bad(_ENV[name], f"{path}: no such file")
    return problems


def database_password(config: Config) -> str | None:
    """The MySQL password from ``SRE_DATABASE_PASSWORD_FILE``, or None to use the URL's."""
    if config.database_password_file is None:
        return None
    try:
        with open(config.database_password_file, encoding="utf-8") as handle:
            return handle.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            "environment", "SRE_DATABASE_PASSWORD_FILE", f"cannot read: {exc.strerror}"
        ) from None
