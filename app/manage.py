"""Offline operations the CLI runs: migrate the schema, add users."""

from __future__ import annotations

from app import db as sql
from app.auth import hash_password
from app.config import Config, ConfigError, database_password
from app.db import Database
from app.state import utc_now

__all__ = ["add_user", "migrate_database", "open_database"]

MIN_PASSWORD = 8


def open_database(config: Config) -> Database:
    """A Database for the configured URL, with the configured timeouts."""
    return Database(
        config.database_url,
        connect_timeout_s=config.db_connect_timeout_s,
        query_timeout_s=config.db_query_timeout_s,
        pool_size=1,
        password=database_password(config),
    )


def migrate_database(config: Config) -> list[int]:
    """Bring the schema to the latest version; return the versions applied now."""
    database = open_database(config)
    try:
        return sql.migrate(database, utc_now())
    finally:
        database.close()


def add_user(config: Config, email: str, name: str, role: str, password: str) -> int:
    """Create a member or admin; ConfigError when the input is unusable."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise ConfigError("--email", None, f"{email!r} is not an email address")
    if not MIN_PASSWORD <= len(password) <= 128:
        raise ConfigError("password", None, f"must be {MIN_PASSWORD} to 128 characters long")
    database = open_database(config)
    try:
        with database.transaction() as s:
            return sql.create_member(s, email, name, hash_password(password), role, utc_now())
    except sql.IntegrityViolation:
        raise ConfigError("--email", None, f"a member with email {email} exists already") from None
    finally:
        database.close()
