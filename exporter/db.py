"""The exporter's only database code: a small pool of pymysql connections with timeouts.

Every statement carries a server-side time limit (``max_statement_time`` on MariaDB,
``max_execution_time`` on MySQL) set on its connection only when it changes, plus a client
socket timeout a second later as a backstop, so a slow query is cut off by the server and
a dead server is noticed by the client. A failed connection is dropped, never reused.

TLS follows the MySQL client's ``ssl-mode``; one context is built per client and shared
by its connections (``sre.mysql_tls``): pymysql would build one for every connection,
about 0.8 MiB each, most of this exporter's memory growth.
"""

from __future__ import annotations

import collections
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pymysql

from exporter.config import ConfigError, MySQLTarget, TLSSettings
from sre.mysql_tls import connect, unverified_context

__all__ = ["MySQLClient", "QueryFailed", "QueryTimeout", "tls_context"]

# Error numbers of statements the server stopped for taking too long.
_TIMEOUT_ERRORS = {1969, 3024, 1317}


class QueryFailed(Exception):
    """A statement failed; the message holds the server's error number, never credentials."""


class QueryTimeout(QueryFailed):
    """A statement ran past its time limit."""


def _describe(exc: BaseException) -> str:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    kind = type(exc).__name__
    return f"{kind} {code}" if code is not None else kind


class MySQLClient:
    """Connections to one server, reused across scrapes; safe to share between threads."""

    def __init__(self, target: MySQLTarget, connect_timeout_s: float = 2.0, pool_size: int = 8):
        self.target = target
        self._connect_timeout = connect_timeout_s
        self._pool_size = pool_size
        self._idle: collections.deque[_Connection] = collections.deque()
        self._lock = threading.Lock()
        self._tls = tls_context(target.tls)

    def _open(self) -> _Connection:
        t = self.target
        try:
            raw = connect(
                self._tls,
                require_tls=t.tls.mode != "PREFERRED",
                host=t.host,
                port=t.port,
                user=t.user,
                password=t.password,
                unix_socket=t.unix_socket,
                database=t.database,
                connect_timeout=self._connect_timeout,
                read_timeout=self._connect_timeout,
                write_timeout=self._connect_timeout,
                autocommit=True,
                charset="utf8mb4",
            )
        except (pymysql.err.MySQLError, OSError) as exc:
            raise QueryFailed(f"cannot connect to {t.address}: {_describe_link(exc)}") from None
        except RuntimeError as exc:
            # pymysql's word for an authentication method it cannot speak without an extra
            # package (caching_sha2_password over plain TCP on MySQL 8, MariaDB's ed25519);
            # the message names the package and the method, never the password.
            raise QueryFailed(f"cannot connect to {t.address}: {exc}") from None
        except Exception as exc:
            # Whatever else the handshake raises (struct.error from a peer that is not
            # MySQL, an encoding error) is still no connection; its message was never vetted.
            kind = type(exc)
            raise QueryFailed(
                f"cannot connect to {t.address}: {kind.__module__}.{kind.__qualname__}: "
                f"{t.redact(str(exc))}"
            ) from None
        return _Connection(raw)

    @contextmanager
    def connection(self, verify: bool = False) -> Iterator[_Connection]:
        """A connection for the length of the block; dropped if anything failed on it.

        ``verify`` pings a pooled connection first (as mysqld_exporter pings before every
        scrape) and, when the server dropped it meanwhile, replaces it and empties the pool.
        """
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None and verify and not conn.alive(self._connect_timeout):
            # One dead connection means the server went away: the idle ones are dead too.
            conn.close()
            conn = None
            self.close()
        if conn is None:
            conn = self._open()
        ok = False
        try:
            yield conn
            ok = True
        finally:
            with self._lock:
                keep = ok and not conn.broken and len(self._idle) < self._pool_size
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = list(self._idle), collections.deque()
        for conn in idle:
            conn.close()


def tls_context(settings: TLSSettings) -> ssl.SSLContext | None:
    """The context every connection of a client shares; None when TLS is DISABLED.

    ConfigError names the file when a CA bundle, certificate or key cannot be loaded.
    """
    if settings.mode == "DISABLED":
        return None
    context = unverified_context()
    if settings.verifies:
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = settings.mode == "VERIFY_IDENTITY"
    try:
        if settings.verifies and settings.ca:
            context.load_verify_locations(cafile=settings.ca)
        elif settings.verifies:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    except (ssl.SSLError, OSError) as exc:
        raise _unloadable(settings.ca or "the system CA store", "ssl-ca", exc) from None
    if settings.cert:
        try:
            context.load_cert_chain(settings.cert, settings.key)
        except (ssl.SSLError, OSError) as exc:
            raise _unloadable(settings.cert, "ssl-cert", exc) from None
    return context


def _unloadable(path: str, option: str, exc: OSError) -> ConfigError:
    reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
    return ConfigError(path, option, f"cannot be loaded: {reason}")


class _Connection:
    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.is_mariadb = "mariadb" in raw.get_server_info().lower()
        self._limit: float | None = None
        #: the connection itself failed (not just a statement): never reuse it
        self.broken = False

    def query(self, sql: str, timeout_s: float) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of one statement, cut off after ``timeout_s``."""
        try:
            if self._limit != timeout_s:
                setting = (
                    f"max_statement_time = {timeout_s:.3f}"
                    if self.is_mariadb
                    else f"max_execution_time = {int(timeout_s * 1000)}"
                )
                with self._raw.cursor() as cursor:
                    cursor.execute(f"SET SESSION {setting}")
                self._limit = timeout_s
            # pymysql has one socket timeout for every read; a second past the server's
            # limit, so the server's clean error normally comes first.
            self._raw._read_timeout = timeout_s + 1
            with self._raw.cursor() as cursor:
                cursor.execute(sql)
                columns = [d[0] for d in cursor.description or ()]
                rows = list(cursor.fetchall())
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            # 1xxx are the server refusing a statement; 2xxx and the rest, the link failing
            self.broken = not (isinstance(code, int) and 1000 <= code < 2000)
            if code in _TIMEOUT_ERRORS or (
                isinstance(exc, pymysql.err.OperationalError) and code == 2013
            ):
                raise QueryTimeout(f"ran past {timeout_s:g}s ({_describe(exc)})") from None
            raise QueryFailed(_describe_with_message(exc)) from None
        except OSError as exc:
            self.broken = True
            raise QueryFailed(_describe(exc)) from None
        return columns, rows

    def alive(self, timeout_s: float) -> bool:
        """Whether the server still answers on this connection."""
        try:
            self._raw._read_timeout = timeout_s
            self._raw.ping(reconnect=False)
        except (pymysql.err.MySQLError, OSError):
            self.broken = True
            return False
        return True

    def close(self) -> None:
        with suppress(Exception):
            self._raw.close()


def _describe_link(exc: BaseException) -> str:
    # A refused TLS handshake or a failed verification is the one case where the
    # operator needs the reason (which holds no credentials), not just the number.
    if isinstance(exc, ssl.SSLError) or (
        len(exc.args) >= 2 and isinstance(exc.args[1], str) and "SSL" in exc.args[1]
    ):
        detail = getattr(exc, "reason", None) or exc.args[-1]
        return f"{_describe(exc)}: TLS: {detail}"
    return _describe(exc)


def _describe_with_message(exc: pymysql.err.MySQLError) -> str:
    # Server messages name tables and columns (useful) and never the connecting password.
    if len(exc.args) >= 2 and isinstance(exc.args[1], str):
        return f"{_describe(exc)}: {exc.args[1]}"
    return _describe(exc)
