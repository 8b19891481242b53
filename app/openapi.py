"""The OpenAPI 3.0 document of the library service, and the schemas requests are checked by.

Paths are written out here as data; a test walks Flask's URL map and this document both
ways, so a route without documentation (or documentation without a route) fails CI.
"""

from __future__ import annotations

from typing import Any

from app.db import MAX_ID

__all__ = ["SCHEMAS", "build_openapi"]

# Regex classes are spelled out: "\s" means different characters in Python's re (which
# validates requests) and in ECMA regexes (which OpenAPI tools use).
_NOT_BLANK = r"[^ \t\r\n]"
_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_EMAIL = {
    "type": "string",
    "minLength": 3,
    "maxLength": 254,
    "pattern": r"^[^@ \t\r\n]+@[^@ \t\r\n]+\.[^@ \t\r\n]+$",
}
_PASSWORD = {"type": "string", "minLength": 8, "maxLength": 128}
_TITLE = {"type": "string", "minLength": 1, "maxLength": 300, "pattern": _NOT_BLANK}
_AUTHOR = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": _NOT_BLANK}
_ISBN = {
    "type": "string",
    "minLength": 10,
    "maxLength": 17,
    "pattern": r"^[0-9][0-9 -]{8,15}[0-9Xx]$",
    "description": "ISBN-10 or ISBN-13 with a valid check digit; hyphens and spaces allowed",
}
_COPIES = {"type": "integer", "minimum": 0, "maximum": 10_000}

#: request bodies, validated by app.validation and published under components/schemas
SCHEMAS: dict[str, dict[str, Any]] = {
    "MemberCreate": {
        "type": "object",
        "required": ["email", "name", "password"],
        "additionalProperties": False,
        "properties": {
            "email": _EMAIL,
            "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": _NOT_BLANK},
            "password": _PASSWORD,
        },
    },
    "TokenRequest": {
        "type": "object",
        "required": ["email", "password"],
        "additionalProperties": False,
        "properties": {"email": _EMAIL, "password": {"type": "string", "maxLength": 128}},
    },
    "BookCreate": {
        "type": "object",
        "required": ["title", "author", "isbn", "copies"],
        "additionalProperties": False,
        "properties": {"title": _TITLE, "author": _AUTHOR, "isbn": _ISBN, "copies": _COPIES},
    },
    "BookUpdate": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {"title": _TITLE, "author": _AUTHOR, "isbn": _ISBN, "copies": _COPIES},
    },
    "LoanCreate": {
        "type": "object",
        "required": ["book_id"],
        "additionalProperties": False,
        "properties": {"book_id": _ID},
    },
}

_RESPONSES_SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "request_id": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
    "Member": {
        "type": "object",
        "required": ["id", "email", "name", "role", "status", "active_loans", "created_at"],
        "properties": {
            "id": _ID,
            "email": {"type": "string"},
            "name": {"type": "string"},
            "role": {"type": "string", "enum": ["member", "admin"]},
            "status": {"type": "string", "enum": ["active", "suspended"]},
            "active_loans": {"type": "integer", "minimum": 0},
            "created_at": _TIMESTAMP,
        },
    },
    "Token": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer", "description": "seconds"},
        },
    },
    "Book": {
        "type": "object",
        "required": ["id", "title", "author", "isbn", "copies", "available", "created_at"],
        "properties": {
            "id": _ID,
            "title": {"type": "string"},
            "author": {"type": "string"},
            "isbn": {"type": "string"},
            "copies": {"type": "integer", "minimum": 0},
            "available": {"type": "integer", "minimum": 0},
            "created_at": _TIMESTAMP,
            "updated_at": _TIMESTAMP,
        },
    },
    "Loan": {
        "type": "object",
        "required": ["id", "book_id", "member_id", "borrowed_at", "due_at", "status"],
        "properties": {
            "id": _ID,
            "book_id": _ID,
            "member_id": _ID,
            "borrowed_at": _TIMESTAMP,
            "due_at": _TIMESTAMP,
            "returned_at": {**_TIMESTAMP, "nullable": True},
            "renewed": {"type": "boolean"},
            "status": {"type": "string", "enum": ["active", "overdue", "returned"]},
        },
    },
    "Stats": {
        "type": "object",
        "required": ["books", "members", "loans"],
        "properties": {
            "books": {"type": "object"},
            "members": {"type": "object"},
            "loans": {"type": "object"},
        },
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "page", "per_page", "total"],
        "properties": {
            "items": {"type": "array", "items": _ref(name)},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
            "total": {"type": "integer", "minimum": 0},
        },
    }


_PROBLEM_TEXT = {
    400: "Malformed request or query parameter",
    401: "Missing, invalid or expired bearer token",
    403: "Authenticated, but not allowed",
    404: "No such resource",
    409: "Conflicts with the current state",
    415: "Body is not application/json",
    422: "Body is JSON but its fields are invalid",
    503: "Database unavailable; retry after the Retry-After header",
}


def _responses(ok: int, body: dict[str, Any] | None, *problems: int) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if body is None:
        responses[str(ok)] = {"description": "Done, no content"}
    else:
        responses[str(ok)] = {
            "description": "Success",
            "content": {"application/json": {"schema": body}},
        }
    for status in sorted({*problems, 503}):
        response: dict[str, Any] = {
            "description": _PROBLEM_TEXT[status],
            "content": {"application/problem+json": {"schema": _ref("Problem")}},
        }
        if status == 503:
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        responses[str(status)] = response
    return responses


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _ID}


_PAGING = [
    _query("page", {"type": "integer", "minimum": 1, "maximum": 100_000}, "Page, from 1"),
    _query("per_page", {"type": "integer", "minimum": 1, "maximum": 100}, "Items per page"),
]
_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]
_BODY_ERRORS = (400, 415, 422)


def _paths() -> dict[str, Any]:
    book_id = [_path_id("book_id")]
    loan_id = [_path_id("loan_id")]
    return {
        "/api/members": {
            "post": {
                "operationId": "registerMember",
                "summary": "Register a member",
                "requestBody": _body("MemberCreate"),
                "responses": _responses(201, _ref("Member"), *_BODY_ERRORS, 409),
            },
            "get": {
                "operationId": "listMembers",
                "summary": "List members (admin)",
                "security": _AUTH,
                "parameters": _PAGING,
                "responses": _responses(200, _list_of("Member"), 400, 401, 403),
            },
        },
        "/api/auth/token": {
            "post": {
                "operationId": "issueToken",
                "summary": "Exchange email and password for a bearer token",
                "requestBody": _body("TokenRequest"),
                "responses": _responses(200, _ref("Token"), *_BODY_ERRORS, 401),
            }
        },
        "/api/books": {
            "get": {
                "operationId": "listBooks",
                "summary": "Search and list books",
                "parameters": [
                    _query(
                        "q",
                        {"type": "string", "maxLength": 200},
                        "Words that title or author words start with",
                    ),
                    _query("author", {"type": "string", "maxLength": 200}, "Exact author"),
                    _query("available", {"type": "boolean"}, "Only books with a free copy"),
                    *_PAGING,
                ],
                "responses": _responses(200, _list_of("Book"), 400),
            },
            "post": {
                "operationId": "createBook",
                "summary": "Add a book (admin)",
                "security": _AUTH,
                "requestBody": _body("BookCreate"),
                "responses": _responses(201, _ref("Book"), *_BODY_ERRORS, 401, 403, 409),
            },
        },
        "/api/books/{book_id}": {
            "parameters": book_id,
            "get": {
                "operationId": "getBook",
                "summary": "One book with its copies and free copies",
                "responses": _responses(200, _ref("Book"), 404),
            },
            "patch": {
                "operationId": "updateBook",
                "summary": "Change a book (admin)",
                "security": _AUTH,
                "requestBody": _body("BookUpdate"),
                "responses": _responses(200, _ref("Book"), *_BODY_ERRORS, 401, 403, 404, 409),
            },
            "delete": {
                "operationId": "deleteBook",
                "summary": "Delete a book with no copy on loan (admin)",
                "security": _AUTH,
                "responses": _responses(204, None, 401, 403, 404, 409),
            },
        },
        "/api/loans": {
            "get": {
                "operationId": "listLoans",
                "summary": "A member's own loans; every loan for an admin",
                "security": _AUTH,
                "parameters": [
                    _query(
                        "status",
                        {"type": "string", "enum": ["active", "returned", "overdue"]},
                        "Filter by state",
                    ),
                    _query("member_id", _ID, "Only this member's loans (admin)"),
                    *_PAGING,
                ],
                "responses": _responses(200, _list_of("Loan"), 400, 401, 403),
            },
            "post": {
                "operationId": "borrowBook",
                "summary": "Borrow a free copy of a book",
                "security": _AUTH,
                "requestBody": _body("LoanCreate"),
                "responses": _responses(201, _ref("Loan"), *_BODY_ERRORS, 401, 403, 404, 409),
            },
        },
        "/api/loans/{loan_id}/return": {
            "parameters": loan_id,
            "post": {
                "operationId": "returnLoan",
                "summary": "Return a loan (owner or admin)",
                "security": _AUTH,
                "responses": _responses(200, _ref("Loan"), 401, 403, 404, 409),
            },
        },
        "/api/loans/{loan_id}/renew": {
            "parameters": loan_id,
            "post": {
                "operationId": "renewLoan",
                "summary": "Renew a loan once, before it is overdue (owner)",
                "security": _AUTH,
                "responses": _responses(200, _ref("Loan"), 401, 403, 404, 409),
            },
        },
        "/api/admin/stats": {
            "get": {
                "operationId": "adminStats",
                "summary": "Counts of books, copies, members and loans (admin)",
                "security": _AUTH,
                "responses": _responses(200, _ref("Stats"), 401, 403),
            }
        },
        "/api/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness: the process answers",
                "responses": {
                    "200": {
                        "description": "Alive",
                        "content": {"application/json": {"schema": _ref("Status")}},
                    }
                },
            }
        },
        "/api/ready": {
            "get": {
                "operationId": "ready",
                "summary": "Readiness: the database answers within the timeout",
                "responses": _responses(200, _ref("Status")),
            }
        },
        **{
            path: {
                "get": {
                    "operationId": operation,
                    "summary": "Prometheus metrics in the text exposition format",
                    "responses": {
                        "200": {
                            "description": "Metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            }
            for path, operation in (("/metrics", "metrics"), ("/api/metrics", "apiMetrics"))
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3 document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def build_openapi(version: str) -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "eLibrary service",
            "version": version,
            "description": "Books, members and loans. Errors are RFC 9457 problem documents.",
        },
        "paths": _paths(),
        "components": {
            "schemas": {**SCHEMAS, **_RESPONSES_SCHEMAS},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
