"""Loans: borrow, return, renew, list. The counting happens in ``app.db`` transactions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint

from app import db as sql
from app.auth import current_principal, require_member
from app.problems import ApiError
from app.state import state
from app.validation import json_body, page_params, query_choice, query_id

__all__ = ["blueprint", "loan_json"]

blueprint = Blueprint("loans", __name__)

_REFUSALS = {
    "member_inactive": (403, "Forbidden", "This membership is suspended or gone."),
    "loan_limit": (409, "Conflict", "The member holds the most loans allowed."),
    "missing_book": (404, "Not Found", "No such book."),
    "no_copy": (409, "Conflict", "No copy of this book is free."),
}


def loan_json(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A loan as the API shows it, with its derived status."""
    if row["returned_at"] is not None:
        status = "returned"
    elif sql.loan_due(row) < now:
        status = "overdue"
    else:
        status = "active"
    return {
        "id": row["id"],
        "book_id": row["book_id"],
        "member_id": row["member_id"],
        "borrowed_at": sql.iso(row["borrowed_at"]),
        "due_at": sql.iso(row["due_at"]),
        "returned_at": sql.iso(row["returned_at"]),
        "renewed": bool(row["renewed"]),
        "status": status,
    }


def _count(event: str) -> None:
    metrics = state().metrics
    if metrics is not None:
        metrics.count_loan_event(event)


@blueprint.get("/api/loans")
@require_member
def list_loans() -> dict[str, Any]:
    who = current_principal()
    page = page_params()
    status = query_choice("status", ("active", "returned", "overdue"))
    member_id = query_id("member_id")
    if not who.is_admin:
        if member_id is not None and member_id != who.member_id:
            raise ApiError(403, "Forbidden", "Members see only their own loans.")
        member_id = who.member_id
    st = state()
    now = st.clock()
    with st.db.session() as s:
        rows, total = sql.list_loans(
            s, sql.LoanFilter(member_id, status), now, page.per_page, page.offset
        )
    return page.envelope([loan_json(r, now) for r in rows], total)


@blueprint.post("/api/loans")
@require_member
def borrow() -> tuple[dict[str, Any], int, dict[str, str]]:
    who = current_principal()
    body = json_body("LoanCreate")
    st = state()
    now = st.clock()
    due = now + timedelta(days=st.config.loan_days)

    def lend(s: sql.Session) -> dict[str, Any]:
        outcome, loan_id = sql.borrow(
            s, who.member_id, body["book_id"], st.config.loan_limit, now, due
        )
        if loan_id is None:
            raise ApiError(*_REFUSALS[outcome])
        return _reread(s, loan_id)

    row = st.db.run_transaction(lend)
    _count("created")
    return loan_json(row, now), 201, {"Location": f"/api/loans/{row['id']}"}


def _own_loan(s: sql.Session, loan_id: int, admin_may: bool) -> dict[str, Any]:
    who = current_principal()
    loan = sql.get_loan(s, loan_id)
    if loan is None:
        raise ApiError(404, "Not Found", f"No loan with id {loan_id}.")
    if loan["member_id"] != who.member_id and not (admin_may and who.is_admin):
        raise ApiError(403, "Forbidden", "This loan belongs to another member.")
    return loan


def _reread(s: sql.Session, loan_id: int) -> dict[str, Any]:
    row = sql.get_loan(s, loan_id)
    assert row is not None, "a loan just written inside this transaction"
    return row


@blueprint.post("/api/loans/<int:loan_id>/return")
@require_member
def return_loan(loan_id: int) -> dict[str, Any]:
    st = state()
    now = st.clock()

    def give_back(s: sql.Session) -> dict[str, Any]:
        loan = _own_loan(s, loan_id, admin_may=True)
        if not sql.return_loan(s, loan, now):
            raise ApiError(409, "Conflict", "This loan was returned already.")
        return _reread(s, loan_id)

    row = st.db.run_transaction(give_back)
    _count("returned")
    return loan_json(row, now)


@blueprint.post("/api/loans/<int:loan_id>/renew")
@require_member
def renew(loan_id: int) -> dict[str, Any]:
    st = state()
    now = st.clock()

    def extend(s: sql.Session) -> dict[str, Any]:
        loan = _own_loan(s, loan_id, admin_may=False)
        if loan["returned_at"] is not None:
            raise ApiError(409, "Conflict", "A returned loan cannot be renewed.")
        if loan["renewed"]:
            raise ApiError(409, "Conflict", "A loan can be renewed only once.")
        due = sql.loan_due(loan)
        if due < now:
            raise ApiError(409, "Conflict", "An overdue loan cannot be renewed; return it.")
        if not sql.renew_loan(s, loan, due + timedelta(days=st.config.loan_days), now):
            raise ApiError(409, "Conflict", "The loan changed meanwhile; try again.")
        return _reread(s, loan_id)

    return loan_json(st.db.run_transaction(extend), now)
