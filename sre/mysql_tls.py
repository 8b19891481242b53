"""pymysql connections that share one TLS context instead of building one each.

Left to itself, pymysql 1.2 uses TLS when the server offers it ("preferred") and builds a
new SSL context, with the system's CA store loaded, for every connection: about 0.8 MiB
of memory apiece, for a context that then verifies nothing. A pool of them in every
process adds up, so the app and the exporter build one context and pass it here.
"""

from __future__ import annotations

import ssl
from typing import Any

import pymysql

__all__ = ["connect", "unverified_context"]


def unverified_context() -> ssl.SSLContext:
    """Encryption without verification: what "preferred" and "required" promise."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def connect(tls: ssl.SSLContext | None, require_tls: bool, **options: Any) -> Any:
    """A pymysql connection: plain without ``tls``; with it, encrypted when the server
    offers TLS, or (``require_tls``) refused when it does not."""
    if tls is None or require_tls:
        return pymysql.connect(ssl=tls, ssl_disabled=tls is None, **options)
    # An SSLContext passed to pymysql makes TLS mandatory; "preferred" sets it on a
    # connection that has TLS switched off, before connecting, as pymysql does itself.
    conn = pymysql.connect(ssl_disabled=True, defer_connect=True, **options)
    conn.ssl, conn.ctx = True, tls  # type: ignore[attr-defined]
    conn.connect()
    return conn
