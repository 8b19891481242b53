"""Operational endpoints: liveness, readiness, metrics, the OpenAPI document, admin stats."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from app import db as sql
from app.auth import require_admin
from app.db import DatabaseUnavailable
from app.openapi import build_openapi
from app.problems import ApiError
from app.state import state

__all__ = ["blueprint"]

blueprint = Blueprint("ops", __name__)


@blueprint.get("/api/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@blueprint.get("/api/ready")
def ready() -> dict[str, str]:
    st = state()
    try:
        st.db.ping(st.config.ready_timeout_s)
    except DatabaseUnavailable:
        raise ApiError(
            503,
            "Service Unavailable",
            "The database did not answer in time.",
            headers={"Retry-After": str(st.config.retry_after_s)},
        ) from None
    return {"status": "ready"}


@blueprint.get("/metrics")
@blueprint.get("/api/metrics")
def metrics() -> Response:
    st = state()
    if st.metrics is None:
        raise ApiError(404, "Not Found", "Metrics are switched off (SRE_METRICS_ENABLED).")
    body, content_type = st.metrics.exposition()
    return Response(body, mimetype=None, content_type=content_type)


@blueprint.get("/api/openapi.json")
def openapi() -> dict[str, Any]:
    return build_openapi(state().config.build_version)


@blueprint.get("/api/admin/stats")
@require_admin
def stats() -> dict[str, Any]:
    st = state()
    with st.db.session() as s:
        return sql.stats(s, st.clock())
