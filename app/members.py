"""Members: registration, tokens, and the admin's member list."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app import db as sql
from app.auth import check_password, hash_password, issue_token, require_admin
from app.problems import ApiError
from app.state import state
from app.validation import BLANK, json_body, page_params

__all__ = ["blueprint", "member_json"]

blueprint = Blueprint("members", __name__)


def member_json(row: dict[str, Any]) -> dict[str, Any]:
    """A member as the API shows it (never the password hash)."""
    return {
        "id": row["id"],
        "email": row["email"],
        "name": row["name"],
        "role": row["role"],
        "status": row["status"],
        "active_loans": int(row["active_loans"]),
        "created_at": sql.iso(row["created_at"]),
    }


@blueprint.post("/api/members")
def register() -> tuple[dict[str, Any], int, dict[str, str]]:
    body = json_body("MemberCreate")
    email = body["email"].strip(BLANK).lower()
    password_hash = hash_password(body["password"])
    st = state()
    try:
        with st.db.transaction() as s:
            member_id = sql.create_member(
                s, email, body["name"].strip(BLANK), password_hash, "member", st.clock()
            )
            row = sql.get_member(s, member_id)
    except sql.IntegrityViolation:
        raise ApiError(409, "Conflict", "A member with this email exists already.") from None
    assert row is not None
    return member_json(row), 201, {"Location": f"/api/members/{member_id}"}


@blueprint.post("/api/auth/token")
def token() -> dict[str, Any]:
    body = json_body("TokenRequest")
    with state().db.session() as s:
        creds = sql.get_credentials(s, body["email"].strip(BLANK).lower())
    stored = creds["password_hash"] if creds else None
    if not check_password(stored, body["password"]) or creds is None:
        raise ApiError(
            401,
            "Unauthorized",
            "Unknown email or wrong password.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if creds["status"] != "active":
        raise ApiError(
            401,
            "Unauthorized",
            "This membership is suspended.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return {
        "access_token": issue_token(int(creds["id"]), creds["role"]),
        "token_type": "Bearer",
        "expires_in": state().config.token_ttl_s,
    }


@blueprint.get("/api/members")
@require_admin
def list_members() -> dict[str, Any]:
    page = page_params()
    with state().db.session() as s:
        rows, total = sql.list_members(s, page.per_page, page.offset)
    return page.envelope([member_json(r) for r in rows], total)
