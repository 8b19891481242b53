"""Bearer tokens, password hashing and the role checks the views use.

Tokens are signed (itsdangerous), not stored: checking one costs no database round trip.
The signing key comes from ``SRE_SECRET_KEY_FILE`` or, without it, is generated once and
kept in the database so every worker and every restart agrees on it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import g, request
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from werkzeug.security import check_password_hash, generate_password_hash

from app import db as sql
from app.problems import ApiError
from app.state import state as app_state

__all__ = [
    "Principal",
    "check_password",
    "hash_password",
    "issue_token",
    "require_admin",
    "require_member",
]

F = TypeVar("F", bound=Callable[..., Any])
_SALT = "elibrary-access-token"
_key_lock = threading.Lock()
# Checking a password for an unknown email costs the same as for a known one.
_DUMMY_HASH = generate_password_hash("not-a-real-password-" + secrets.token_hex(8))


@dataclass(frozen=True)
class Principal:
    """Who is calling."""

    member_id: int
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_password(password: str) -> str:
    """A salted hash to store instead of the password."""
    return generate_password_hash(password)


def check_password(stored_hash: str | None, password: str) -> bool:
    """True when the password matches; constant work whether or not the member exists."""
    return check_password_hash(stored_hash or _DUMMY_HASH, password) and stored_hash is not None


def _signing_key() -> str:
    state = app_state()
    if state.signing_key is None:
        with _key_lock:
            if state.signing_key is None:
                path = state.config.secret_key_file
                if path:
                    with open(path, encoding="utf-8") as handle:
                        state.signing_key = handle.read().strip()
                else:
                    with state.db.session() as s:
                        state.signing_key = sql.put_setting_once(
                            s, "token_signing_key", secrets.token_urlsafe(48)
                        )
    return str(state.signing_key)


def _serializer() -> URLSafeTimedSerializer:
    state = app_state()
    if state.token_serializer is None:
        clock = state.clock

        class _AppClockSigner(TimestampSigner):
            # Token age follows the app's clock, so tests and the app agree on "now".
            def get_timestamp(self) -> int:
                return int(clock().timestamp())

        state.token_serializer = URLSafeTimedSerializer(
            _signing_key(), salt=_SALT, signer=_AppClockSigner
        )
    return state.token_serializer


def issue_token(member_id: int, role: str) -> str:
    """A signed token naming the member and role."""
    return str(_serializer().dumps({"sub": member_id, "role": role}))


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def current_principal() -> Principal:
    """The caller named by the bearer token; 401 without a valid one."""
    cached = g.get("principal")
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Send 'Authorization: Bearer <token>'.")
    ttl = app_state().config.token_ttl_s
    try:
        claims = _serializer().loads(token.strip(), max_age=ttl)
    except SignatureExpired:
        raise _unauthorized("The token has expired.") from None
    except BadSignature:
        raise _unauthorized("The token is not valid.") from None
    principal = Principal(int(claims["sub"]), str(claims["role"]))
    g.principal = principal
    return principal


def require_member(view: F) -> F:
    """Any authenticated caller."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current_principal()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def require_admin(view: F) -> F:
    """Admins only: 401 without a token, 403 for members."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_principal().is_admin:
            raise ApiError(403, "Forbidden", "Only an admin may do this.")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
