"""The requests the journeys send, named as the server names them.

Each request is reported to Locust with ``request_type`` = the HTTP method and ``name`` =
the Flask route template, which is also the ``route`` label of ``http_requests_total``
(DESIGN.md "HTTP API"), so client and server statistics line up row for row. Kept apart
from the locustfile so tests can read it without importing Locust.
"""

from __future__ import annotations

__all__ = [
    "ADMIN_STATS",
    "BOOK",
    "BOOKS",
    "EXPECTED",
    "LOANS",
    "LOAN_RENEW",
    "LOAN_RETURN",
    "MEMBERS",
    "ROUTES",
    "TOKEN",
]

BOOKS = "/api/books"
BOOK = "/api/books/<int:book_id>"
MEMBERS = "/api/members"
TOKEN = "/api/auth/token"
LOANS = "/api/loans"
LOAN_RETURN = "/api/loans/<int:loan_id>/return"
LOAN_RENEW = "/api/loans/<int:loan_id>/renew"
ADMIN_STATS = "/api/admin/stats"

#: every (method, route) a journey sends, and the statuses that count as success: the
#: answers DESIGN.md documents for a well-formed request (409 "no copy free", "at the loan
#: limit", "renewed already" and so on are the API working, not failing)
EXPECTED: dict[tuple[str, str], frozenset[int]] = {
    ("GET", BOOKS): frozenset({200}),
    ("GET", BOOK): frozenset({200}),
    ("POST", BOOKS): frozenset({201, 409}),
    ("POST", MEMBERS): frozenset({201, 409}),
    ("GET", MEMBERS): frozenset({200}),
    ("POST", TOKEN): frozenset({200}),
    ("GET", LOANS): frozenset({200}),
    ("POST", LOANS): frozenset({201, 409}),
    ("POST", LOAN_RETURN): frozenset({200, 409}),
    ("POST", LOAN_RENEW): frozenset({200, 409}),
    ("GET", ADMIN_STATS): frozenset({200}),
}

#: every (method, route) the journeys may send, sorted
ROUTES: tuple[tuple[str, str], ...] = tuple(sorted(EXPECTED))
