"""flaskr-style fixtures: an app on a fresh database, its client, an auth helper, a clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app, load_config
from app.auth import hash_password
from app.db import create_member, migrate

START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(database_url: str, clock: Clock) -> Iterator[Flask]:
    flask_app = create_app(
        load_config(env={}, database_url=database_url, access_log=False), clock=clock
    )
    migrate(flask_app.extensions["elibrary"].db, clock())
    yield flask_app
    flask_app.extensions["elibrary"].db.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Auth:
    """Makes members and admins and hands out their Authorization headers."""

    app: Flask
    client: FlaskClient
    _count: list[int] = field(default_factory=lambda: [0])

    def member(self, email: str | None = None, password: str = "correct horse") -> dict[str, Any]:
        self._count[0] += 1
        email = email or f"member{self._count[0]}@example.org"
        created = self.client.post(
            "/api/members", json={"email": email, "name": "Test Member", "password": password}
        )
        assert created.status_code == 201, created.json
        return {
            "id": created.json["id"],
            "email": email,
            "headers": self.login(email, password),
        }

    def admin(self) -> dict[str, Any]:
        self._count[0] += 1
        email = f"admin{self._count[0]}@example.org"
        state = self.app.extensions["elibrary"]
        with state.db.transaction() as s:
            admin_id = create_member(
                s, email, "Admin", hash_password("admin password"), "admin", state.clock()
            )
        return {"id": admin_id, "email": email, "headers": self.login(email, "admin password")}

    def login(self, email: str, password: str) -> dict[str, str]:
        answer = self.client.post("/api/auth/token", json={"email": email, "password": password})
        assert answer.status_code == 200, answer.json
        return {"Authorization": f"Bearer {answer.json['access_token']}"}


@pytest.fixture
def auth(app: Flask, client: FlaskClient) -> Auth:
    return Auth(app, client)
