"""Request parsing: JSON bodies against the OpenAPI schemas, query parameters, ISBNs.

The schemas in ``app.openapi`` are the single source: the same objects validate requests
here and are published at ``/api/openapi.json``, so the document cannot drift from the code.
"""

from __future__ import annotations

import re
from typing import Any

from flask import request
from jsonschema import Draft7Validator

from app.db import MAX_ID
from app.openapi import SCHEMAS
from app.problems import ApiError

__all__ = [
    "BLANK",
    "MAX_PAGE",
    "MAX_PER_PAGE",
    "Page",
    "is_valid_isbn",
    "json_body",
    "normalize_isbn",
    "page_params",
    "query_bool",
    "query_choice",
    "query_id",
    "query_text",
]

#: the whitespace the schemas treat as blank; ECMA and Python disagree on the rest of \s
BLANK = " \t\r\n"
MAX_PER_PAGE = 100
MAX_PAGE = 100_000

_VALIDATORS = {name: Draft7Validator(schema) for name, schema in SCHEMAS.items()}


def json_body(schema_name: str) -> dict[str, Any]:
    """The request's JSON object, checked against a named schema (400 or 422 otherwise)."""
    if not request.is_json:
        raise ApiError(415, "Unsupported Media Type", "Send the body as application/json.")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "Bad Request", "The body is not valid JSON.")
    if not isinstance(body, dict):
        raise ApiError(422, "Unprocessable Content", "The body must be a JSON object.")
    problems = sorted(_VALIDATORS[schema_name].iter_errors(body), key=lambda e: list(e.path))
    if problems:
        errors = [
            {"field": "/".join(str(p) for p in e.path) or "(body)", "message": e.message}
            for e in problems[:20]
        ]
        raise ApiError(422, "Unprocessable Content", "The body has invalid fields.", errors=errors)
    return body


def _bad_query(name: str, problem: str) -> ApiError:
    return ApiError(
        400,
        "Bad Request",
        f"Query parameter {name!r} {problem}.",
        errors=[{"field": name, "message": problem}],
    )


def query_int(name: str, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within bounds."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"[0-9]{1,19}", raw):
        raise _bad_query(name, "must be a whole number")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise _bad_query(name, f"must be between {minimum} and {maximum}")
    return value


def query_id(name: str) -> int | None:
    """An optional id query parameter."""
    if request.args.get(name) in (None, ""):
        return None
    return query_int(name, 0, 1, MAX_ID)


def query_bool(name: str) -> bool:
    """A true/false query parameter, false when absent."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return False
    lowered = raw.lower()
    if lowered not in ("true", "false", "1", "0"):
        raise _bad_query(name, "must be true or false")
    return lowered in ("true", "1")


def query_choice(name: str, choices: tuple[str, ...]) -> str | None:
    """An optional query parameter from a fixed set."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise _bad_query(name, f"must be one of {', '.join(choices)}")
    return raw


def query_text(name: str, max_length: int) -> str | None:
    """An optional free-text query parameter, stripped, bounded in length."""
    raw = request.args.get(name)
    if raw is None or not raw.strip():
        return None
    if len(raw) > max_length:
        raise _bad_query(name, f"must be at most {max_length} characters")
    return raw.strip()


class Page:
    """Which slice of a list to return."""

    def __init__(self, page: int, per_page: int) -> None:
        self.page = page
        self.per_page = per_page
        self.offset = (page - 1) * per_page

    def envelope(self, items: list[dict[str, Any]], total: int) -> dict[str, Any]:
        """The list shape every collection answers with."""
        return {"items": items, "page": self.page, "per_page": self.per_page, "total": total}


def page_params() -> Page:
    """``?page=`` (from 1) and ``?per_page=`` (1 to 100, default 20)."""
    return Page(query_int("page", 1, 1, MAX_PAGE), query_int("per_page", 20, 1, MAX_PER_PAGE))


def normalize_isbn(raw: str) -> str:
    """An ISBN without hyphens or spaces, with an upper-case X check digit."""
    return re.sub(r"[\s-]", "", raw).upper()


def is_valid_isbn(isbn: str) -> bool:
    """True for a normalized ISBN-10 or ISBN-13 whose check digit is right."""
    if re.fullmatch(r"[0-9]{9}[0-9X]", isbn):
        digits = [10 if c == "X" else int(c) for c in isbn]
        return sum((10 - i) * d for i, d in enumerate(digits)) % 11 == 0
    if re.fullmatch(r"[0-9]{13}", isbn):
        total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(isbn))
        return total % 10 == 0
    return False
