"""The HTTP API's behaviour and errors, on SQLite and on MariaDB (DESIGN.md "HTTP API")."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from app.seed import isbn13
from tests.app.conftest import Auth, Clock

PROBLEM = "application/problem+json"


def add_book(client: FlaskClient, admin: dict[str, Any], n: int = 1, **fields: Any) -> dict:
    body = {"title": f"Book {n}", "author": "Ann Author", "isbn": isbn13(n), "copies": 1}
    body.update(fields)
    answer = client.post("/api/books", json=body, headers=admin["headers"])
    assert answer.status_code == 201, answer.json
    return answer.json


def assert_problem(answer: Any, status: int, detail_part: str = "") -> None:
    assert answer.status_code == status, answer.json
    assert answer.mimetype == PROBLEM
    assert answer.json["status"] == status
    assert answer.json["title"]
    assert detail_part in answer.json.get("detail", "")


# --------------------------------------------------------------------------- members, auth


def test_registering_a_member_returns_it_without_the_password(client: FlaskClient) -> None:
    answer = client.post(
        "/api/members", json={"email": "Ada@Example.org", "name": "Ada", "password": "12345678"}
    )
    assert answer.status_code == 201
    assert answer.json["email"] == "ada@example.org"
    assert answer.json["role"] == "member"
    assert "password" not in answer.json and "password_hash" not in answer.json
    assert answer.headers["Location"] == f"/api/members/{answer.json['id']}"


def test_a_taken_email_is_a_conflict(client: FlaskClient) -> None:
    body = {"email": "ada@example.org", "name": "Ada", "password": "12345678"}
    assert client.post("/api/members", json=body).status_code == 201
    assert_problem(client.post("/api/members", json={**body, "email": "ADA@example.org"}), 409)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "name": "A", "password": "12345678"}, "email"),
        ({"email": "a@b.org", "name": "A", "password": "short"}, "password"),
        ({"email": "a@b.org", "name": "   ", "password": "12345678"}, "name"),
        ({"email": "a@b.org", "password": "12345678"}, "(body)"),
        ({"email": "a@b.org", "name": "A", "password": "12345678", "role": "admin"}, "(body)"),
    ],
    ids=["bad email", "short password", "blank name", "missing name", "role is not settable"],
)
def test_invalid_registrations_name_the_field(client: FlaskClient, body: dict, field: str) -> None:
    answer = client.post("/api/members", json=body)
    assert_problem(answer, 422)
    assert field in [e["field"] for e in answer.json["errors"]]


def test_wrong_password_and_unknown_email_get_the_same_401(client: FlaskClient, auth: Auth) -> None:
    auth.member("ada@example.org", "right password")
    wrong = client.post("/api/auth/token", json={"email": "ada@example.org", "password": "nope"})
    unknown = client.post("/api/auth/token", json={"email": "bob@example.org", "password": "x"})
    assert_problem(wrong, 401)
    assert_problem(unknown, 401)
    assert wrong.json["detail"] == unknown.json["detail"]


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "Authorization: Bearer"),
        ("Basic abc", "Authorization: Bearer"),
        ("Bearer not-a-token", "not valid"),
    ],
    ids=["no header", "wrong scheme", "forged token"],
)
def test_protected_routes_need_a_valid_token(
    client: FlaskClient, header: str | None, detail: str
) -> None:
    headers = {"Authorization": header} if header else {}
    answer = client.get("/api/loans", headers=headers)
    assert_problem(answer, 401, detail)
    assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_a_token_expires(client: FlaskClient, auth: Auth, clock: Clock) -> None:
    member = auth.member()
    assert client.get("/api/loans", headers=member["headers"]).status_code == 200
    clock.advance(seconds=3599)
    assert client.get("/api/loans", headers=member["headers"]).status_code == 200
    clock.advance(seconds=2)
    assert_problem(client.get("/api/loans", headers=member["headers"]), 401, "expired")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/books", {"title": "T", "author": "A", "isbn": isbn13(5), "copies": 1}),
        ("patch", "/api/books/1", {"title": "T"}),
        ("delete", "/api/books/1", None),
        ("get", "/api/members", None),
        ("get", "/api/admin/stats", None),
    ],
    ids=["create book", "update book", "delete book", "list members", "stats"],
)
def test_admin_routes_refuse_members_and_strangers(
    client: FlaskClient, auth: Auth, method: str, path: str, body: dict | None
) -> None:
    member = auth.member()
    call = getattr(client, method)
    assert_problem(call(path, json=body), 401)
    assert_problem(call(path, json=body, headers=member["headers"]), 403)


def test_admin_lists_members_paginated(client: FlaskClient, auth: Auth) -> None:
    admin = auth.admin()
    for _ in range(3):
        auth.member()
    answer = client.get("/api/members?per_page=2&page=2", headers=admin["headers"])
    assert answer.status_code == 200
    assert answer.json["total"] == 4 and answer.json["page"] == 2
    assert len(answer.json["items"]) == 2


# --------------------------------------------------------------------------- books


def test_a_book_is_created_read_updated_and_deleted(client: FlaskClient, auth: Auth) -> None:
    admin = auth.admin()
    book = add_book(
        client, admin, title="Dune", author="Frank Herbert", copies=3, isbn="978-0-441-17271-9"
    )
    assert book["isbn"] == "9780441172719"
    assert (book["copies"], book["available"]) == (3, 3)
    assert client.get(f"/api/books/{book['id']}").json["title"] == "Dune"

    changed = client.patch(
        f"/api/books/{book['id']}", json={"copies": 5, "title": "Dune II"}, headers=admin["headers"]
    )
    assert changed.status_code == 200
    assert (changed.json["copies"], changed.json["available"]) == (5, 5)
    assert client.get("/api/books?q=dune").json["items"][0]["title"] == "Dune II"

    assert client.delete(f"/api/books/{book['id']}", headers=admin["headers"]).status_code == 204
    assert_problem(client.get(f"/api/books/{book['id']}"), 404)


@pytest.mark.parametrize(
    "isbn",
    ["9780441172710", "0441172718", "97804411727", "abcdefghij"],
    ids=["ISBN-13 bad check digit", "ISBN-10 bad check digit", "wrong length", "letters"],
)
def test_invalid_isbns_are_refused(client: FlaskClient, auth: Auth, isbn: str) -> None:
    admin = auth.admin()
    body = {"title": "T", "author": "A", "isbn": isbn, "copies": 1}
    answer = client.post("/api/books", json=body, headers=admin["headers"])
    assert_problem(answer, 422)
    assert answer.json["errors"][0]["field"] == "isbn"


def test_a_duplicate_isbn_is_a_conflict(client: FlaskClient, auth: Auth) -> None:
    admin = auth.admin()
    add_book(client, admin, 1)
    body = {"title": "Other", "author": "B", "isbn": isbn13(1), "copies": 1}
    assert_problem(client.post("/api/books", json=body, headers=admin["headers"]), 409)


def test_search_filters_and_pagination(client: FlaskClient, auth: Auth) -> None:
    admin = auth.admin()
    add_book(client, admin, 1, title="The Silent River", author="Ada Berg")
    add_book(client, admin, 2, title="Silent Storm", author="Bruno Castillo", copies=0)
    add_book(client, admin, 3, title="Garden of Rivers", author="Ada Berg")

    def titles(query: str) -> list[str]:
        answer = client.get(f"/api/books?{query}")
        assert answer.status_code == 200, answer.json
        return [b["title"] for b in answer.json["items"]]

    assert titles("q=silent") == ["The Silent River", "Silent Storm"]
    assert titles("q=riv") == ["The Silent River", "Garden of Rivers"]  # word prefixes
    assert titles("q=SILENT+riv") == ["The Silent River"]  # every word must match
    assert titles("q=berg") == ["The Silent River", "Garden of Rivers"]  # author words too
    assert titles("author=ada+berg") == ["The Silent River", "Garden of Rivers"]
    assert titles("available=true&q=silent") == ["The Silent River"]
    assert titles("q=nothing") == []
    assert titles("q=%21%21") == []  # no words at all
    page = client.get("/api/books?per_page=2&page=2").json
    assert (page["total"], page["page"], page["per_page"]) == (3, 2, 2)
    assert [b["title"] for b in page["items"]] == ["Garden of Rivers"]


@pytest.mark.parametrize(
    "query",
    [
        "per_page=101",
        "per_page=0",
        "page=0",
        "page=abc",
        "available=maybe",
        "page=99999999999999999999",
    ],
    ids=[
        "page too large",
        "empty page",
        "page zero",
        "page not a number",
        "bad boolean",
        "page overflows",
    ],
)
def test_bad_query_parameters_are_400(client: FlaskClient, query: str) -> None:
    assert_problem(client.get(f"/api/books?{query}"), 400)


def test_unknown_ids_are_404_even_when_huge(client: FlaskClient) -> None:
    assert_problem(client.get("/api/books/12345"), 404)
    assert_problem(client.get(f"/api/books/{2**70}"), 404)


def test_copies_cannot_drop_below_those_on_loan(client: FlaskClient, auth: Auth) -> None:
    admin, member = auth.admin(), auth.member()
    book = add_book(client, admin, copies=2)
    assert (
        client.post(
            "/api/loans", json={"book_id": book["id"]}, headers=member["headers"]
        ).status_code
        == 201
    )
    too_few = client.patch(f"/api/books/{book['id']}", json={"copies": 0}, headers=admin["headers"])
    assert_problem(too_few, 409)
    fine = client.patch(f"/api/books/{book['id']}", json={"copies": 1}, headers=admin["headers"])
    assert (fine.json["copies"], fine.json["available"]) == (1, 0)
    assert_problem(client.delete(f"/api/books/{book['id']}", headers=admin["headers"]), 409)


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("[1, 2]", "application/json", 422),
        ("title=x", "application/x-www-form-urlencoded", 415),
    ],
    ids=["malformed JSON", "JSON that is not an object", "not JSON at all"],
)
def test_malformed_bodies_are_client_errors(
    client: FlaskClient, auth: Auth, data: str, content_type: str, status: int
) -> None:
    admin = auth.admin()
    answer = client.post(
        "/api/books", data=data, content_type=content_type, headers=admin["headers"]
    )
    assert_problem(answer, status)


def test_unknown_urls_and_methods_are_problems(client: FlaskClient) -> None:
    assert_problem(client.get("/no/such/thing"), 404)
    not_allowed = client.put("/api/books")
    assert_problem(not_allowed, 405)
    assert "GET" in not_allowed.headers["Allow"]


# --------------------------------------------------------------------------- loans


def test_borrow_return_and_the_counts(client: FlaskClient, auth: Auth, clock: Clock) -> None:
    admin, member = auth.admin(), auth.member()
    book = add_book(client, admin, copies=1)
    loan = client.post("/api/loans", json={"book_id": book["id"]}, headers=member["headers"])
    assert loan.status_code == 201
    assert loan.json["status"] == "active" and loan.json["returned_at"] is None
    assert loan.json["due_at"] == "2026-03-16T09:00:00Z"  # 14 days
    assert client.get(f"/api/books/{book['id']}").json["available"] == 0
    assert_problem(
        client.post("/api/loans", json={"book_id": book["id"]}, headers=member["headers"]),
        409,
        "No copy",
    )

    back = client.post(f"/api/loans/{loan.json['id']}/return", headers=member["headers"])
    assert back.status_code == 200 and back.json["status"] == "returned"
    assert_problem(
        client.post(f"/api/loans/{loan.json['id']}/return", headers=member["headers"]),
        409,
        "returned already",
    )
    assert client.get(f"/api/books/{book['id']}").json["available"] == 1
    stats = client.get("/api/admin/stats", headers=admin["headers"]).json
    assert stats["loans"]["active"] == 0
    assert stats["books"] == {"titles": 1, "copies": 1, "available_copies": 1, "copies_on_loan": 0}


def test_borrowing_a_missing_book_is_404(client: FlaskClient, auth: Auth) -> None:
    member = auth.member()
    assert_problem(client.post("/api/loans", json={"book_id": 999}, headers=member["headers"]), 404)
    # the refused borrow left the member's count alone
    assert client.get("/api/loans", headers=member["headers"]).json["total"] == 0


def test_the_loan_limit_holds(client: FlaskClient, auth: Auth, app: Any) -> None:
    admin, member = auth.admin(), auth.member()
    limit = app.extensions["elibrary"].config.loan_limit
    for n in range(limit + 1):
        add_book(client, admin, n + 1)
    for n in range(limit):
        assert (
            client.post(
                "/api/loans", json={"book_id": n + 1}, headers=member["headers"]
            ).status_code
            == 201
        )
    over = client.post("/api/loans", json={"book_id": limit + 1}, headers=member["headers"])
    assert_problem(over, 409, "most loans")
    assert client.get(f"/api/books/{limit + 1}").json["available"] == 1


def test_members_act_only_on_their_own_loans(client: FlaskClient, auth: Auth) -> None:
    admin, ada, bob = auth.admin(), auth.member(), auth.member()
    book = add_book(client, admin, copies=2)
    loan = client.post("/api/loans", json={"book_id": book["id"]}, headers=ada["headers"]).json
    assert_problem(client.post(f"/api/loans/{loan['id']}/return", headers=bob["headers"]), 403)
    assert_problem(client.post(f"/api/loans/{loan['id']}/renew", headers=bob["headers"]), 403)
    assert client.get("/api/loans", headers=bob["headers"]).json["total"] == 0
    assert_problem(client.get(f"/api/loans?member_id={ada['id']}", headers=bob["headers"]), 403)
    everyone = client.get(f"/api/loans?member_id={ada['id']}", headers=admin["headers"]).json
    assert [item["id"] for item in everyone["items"]] == [loan["id"]]
    # an admin may return anyone's loan, but renewing is the owner's call
    assert_problem(client.post(f"/api/loans/{loan['id']}/renew", headers=admin["headers"]), 403)
    assert (
        client.post(f"/api/loans/{loan['id']}/return", headers=admin["headers"]).status_code == 200
    )
    assert_problem(client.post("/api/loans/424242/return", headers=admin["headers"]), 404)


def test_renew_once_and_never_when_overdue(client: FlaskClient, auth: Auth, clock: Clock) -> None:
    admin, member = auth.admin(), auth.member()
    add_book(client, admin, 1, copies=2)
    first = client.post("/api/loans", json={"book_id": 1}, headers=member["headers"]).json
    second = client.post("/api/loans", json={"book_id": 1}, headers=member["headers"]).json

    renewed = client.post(f"/api/loans/{first['id']}/renew", headers=member["headers"])
    assert renewed.status_code == 200
    assert renewed.json["due_at"] == "2026-03-30T09:00:00Z" and renewed.json["renewed"] is True
    assert_problem(
        client.post(f"/api/loans/{first['id']}/renew", headers=member["headers"]), 409, "only once"
    )

    clock.advance(days=15)
    member["headers"] = auth.login(member["email"], "correct horse")  # tokens last an hour
    admin["headers"] = auth.login(admin["email"], "admin password")
    overdue = client.get("/api/loans?status=overdue", headers=member["headers"]).json
    assert [item["id"] for item in overdue["items"]] == [second["id"]]
    assert overdue["items"][0]["status"] == "overdue"
    assert_problem(
        client.post(f"/api/loans/{second['id']}/renew", headers=member["headers"]), 409, "overdue"
    )
    stats = client.get("/api/admin/stats", headers=admin["headers"]).json
    assert stats["loans"]["overdue"] == 1
    assert stats["loans"]["oldest_overdue_seconds"] == 86400


def test_loan_listing_filters_by_status(client: FlaskClient, auth: Auth) -> None:
    admin, member = auth.admin(), auth.member()
    add_book(client, admin, 1, copies=2)
    kept = client.post("/api/loans", json={"book_id": 1}, headers=member["headers"]).json
    back = client.post("/api/loans", json={"book_id": 1}, headers=member["headers"]).json
    client.post(f"/api/loans/{back['id']}/return", headers=member["headers"])

    def ids(status: str) -> list[int]:
        answer = client.get(f"/api/loans?status={status}", headers=member["headers"])
        return [item["id"] for item in answer.json["items"]]

    assert ids("active") == [kept["id"]]
    assert ids("returned") == [back["id"]]
    assert_problem(client.get("/api/loans?status=lost", headers=member["headers"]), 400)


# --------------------------------------------------------------------------- operations


def test_health_ready_and_request_ids(client: FlaskClient) -> None:
    assert client.get("/api/health").json == {"status": "ok"}
    ready = client.get("/api/ready", headers={"X-Request-ID": "trace-123"})
    assert ready.json == {"status": "ready"}
    assert ready.headers["X-Request-ID"] == "trace-123"
    generated = client.get("/api/books/999", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["X-Request-ID"] != "bad id with spaces"
    assert generated.json["request_id"] == generated.headers["X-Request-ID"]
