"""Access logs are JSON lines that carry the request id the client sees."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import create_app, load_config
from app.logs import JsonFormatter


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("elibrary.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


def test_each_request_logs_one_json_line_with_its_id(
    tmp_path: Path, log_lines: io.StringIO
) -> None:
    config = load_config(env={}, database_url=f"sqlite:///{tmp_path / 'l.sqlite3'}")
    client = create_app(config).test_client()
    answer = client.get("/api/books/5?x=1", headers={"X-Request-ID": "abc-123"})
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert len(lines) == 1
    entry = lines[0]
    assert entry["request_id"] == "abc-123" == answer.headers["X-Request-ID"]
    assert entry["route"] == "/api/books/<int:book_id>"
    assert entry["status"] == answer.status_code
    assert entry["method"] == "GET" and entry["level"] == "info"
    assert entry["duration_ms"] >= 0


def test_access_logs_can_be_switched_off(tmp_path: Path, log_lines: io.StringIO) -> None:
    config = load_config(
        env={}, database_url=f"sqlite:///{tmp_path / 'l.sqlite3'}", access_log=False
    )
    create_app(config).test_client().get("/api/health")
    assert log_lines.getvalue() == ""
