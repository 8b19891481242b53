"""Books: search and listing for anyone, changes for admins."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app import db as sql
from app.auth import require_admin
from app.problems import ApiError
from app.state import state
from app.validation import (
    BLANK,
    is_valid_isbn,
    json_body,
    normalize_isbn,
    page_params,
    query_bool,
    query_text,
)

__all__ = ["blueprint", "book_json"]

blueprint = Blueprint("books", __name__)

#: more words than this in ?q= are not searched for (each one costs a subquery)
MAX_SEARCH_TERMS = 8


def book_json(row: dict[str, Any]) -> dict[str, Any]:
    """A book as the API shows it."""
    return {
        "id": row["id"],
        "title": row["title"],
        "author": row["author"],
        "isbn": row["isbn"],
        "copies": int(row["copies"]),
        "available": int(row["available_copies"]),
        "created_at": sql.iso(row["created_at"]),
        "updated_at": sql.iso(row["updated_at"]),
    }


def _not_found(book_id: int) -> ApiError:
    return ApiError(404, "Not Found", f"No book with id {book_id}.")


def _checked_isbn(raw: str) -> str:
    isbn = normalize_isbn(raw)
    if not is_valid_isbn(isbn):
        raise ApiError(
            422,
            "Unprocessable Content",
            "The ISBN is not valid.",
            errors=[{"field": "isbn", "message": f"{raw!r} has a wrong length or check digit"}],
        )
    return isbn


def _duplicate_isbn() -> ApiError:
    return ApiError(409, "Conflict", "A book with this ISBN exists already.")


@blueprint.get("/api/books")
def list_books() -> dict[str, Any]:
    page = page_params()
    query = query_text("q", 200)
    terms = sql.book_terms(query)[:MAX_SEARCH_TERMS] if query else []
    author = query_text("author", 200)
    available = query_bool("available")
    if query and not terms:  # only punctuation or symbols: no title can match
        return page.envelope([], 0)
    with state().db.session() as s:
        rows, total = sql.list_books(
            s,
            search_terms=terms,
            author=author,
            available_only=available,
            limit=page.per_page,
            offset=page.offset,
        )
    return page.envelope([book_json(r) for r in rows], total)


@blueprint.get("/api/books/<int:book_id>")
def get_book(book_id: int) -> dict[str, Any]:
    with state().db.session() as s:
        row = sql.get_book(s, book_id)
    if row is None:
        raise _not_found(book_id)
    return book_json(row)


@blueprint.post("/api/books")
@require_admin
def create_book() -> tuple[dict[str, Any], int, dict[str, str]]:
    body = json_body("BookCreate")
    isbn = _checked_isbn(body["isbn"])
    st = state()

    def create(s: Any) -> tuple[int, Any]:
        book_id = sql.create_book(
            s,
            body["title"].strip(BLANK),
            body["author"].strip(BLANK),
            isbn,
            body["copies"],
            st.clock(),
        )
        return book_id, sql.get_book(s, book_id)

    try:
        # run_transaction: InnoDB may pick this insert as a deadlock victim under
        # concurrent writes (the copies rows); it is rolled back whole and retried
        book_id, row = st.db.run_transaction(create)
    except sql.IntegrityViolation:
        raise _duplicate_isbn() from None
    assert row is not None
    return book_json(row), 201, {"Location": f"/api/books/{book_id}"}


@blueprint.patch("/api/books/<int:book_id>")
@require_admin
def update_book(book_id: int) -> dict[str, Any]:
    body = json_body("BookUpdate")
    changes: dict[str, Any] = {
        k: v.strip(BLANK) if isinstance(v, str) else v for k, v in body.items()
    }
    if "isbn" in changes:
        changes["isbn"] = _checked_isbn(body["isbn"])
    st = state()

    def update(s: Any) -> Any:
        outcome = sql.update_book(s, book_id, changes, st.clock())
        if outcome == "missing":
            raise _not_found(book_id)
        if outcome == "on_loan":
            raise ApiError(409, "Conflict", "Copies cannot go below the number on loan right now.")
        return sql.get_book(s, book_id)

    try:
        row = st.db.run_transaction(update)
    except sql.IntegrityViolation:
        raise _duplicate_isbn() from None
    assert row is not None
    return book_json(row)


@blueprint.delete("/api/books/<int:book_id>")
@require_admin
def delete_book(book_id: int) -> tuple[str, int]:
    def delete(s: Any) -> None:
        outcome = sql.delete_book(s, book_id)
        if outcome == "missing":
            raise _not_found(book_id)
        if outcome == "on_loan":
            raise ApiError(409, "Conflict", "The book has copies on loan; wait for returns.")

    state().db.run_transaction(delete)
    return "", 204
