"""All of the service's SQL, for SQLite and MySQL/MariaDB, and the connections it runs on.

Statements are written once with ``?`` placeholders and translated for pymysql, so the two
dialects share every query that they can. Every call has a connect timeout and a statement
timeout (server-side on MySQL, a progress handler on SQLite): a slow or dead database turns
into ``DatabaseUnavailable`` (HTTP 503) instead of a hung worker.

Counters on ``members.active_loans`` and ``books.available_copies`` are only changed by
conditional ``UPDATE … WHERE counter bound`` statements, taken in the order members → books
→ loans, which is what keeps borrowing the last copy atomic without table locks.
"""

from __future__ import annotations

import collections
import functools
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import pymysql
import pymysql.cursors

from app.config import ConfigError
from sre.errors import Unavailable
from sre.mysql_tls import connect, unverified_context

__all__ = [
    "MAX_ID",
    "Database",
    "DatabaseUnavailable",
    "Deadlock",
    "IntegrityViolation",
    "LoanFilter",
    "Session",
    "book_terms",
    "migrate",
    "schema_version",
]

Row = dict[str, Any]
_T = TypeVar("_T")

_TS_FORMAT = "%Y-%m-%d %H:%M:%S"
#: the largest id a row can have (signed 64-bit columns); larger ones name nothing
MAX_ID = 2**63 - 1
_MYSQL_DEADLOCK = 1213
#: how often a transaction the database chose as a deadlock victim is run again
DEADLOCK_ATTEMPTS = 3
# Error numbers that mean "the server did not answer in time or is not there"; anything
# else from the driver is a programming error and should surface as one.
_MYSQL_UNAVAILABLE = {
    1040,  # too many connections
    1053,  # server shutdown in progress
    1205,  # lock wait timeout
    1317,  # query interrupted
    1969,  # MariaDB max_statement_time exceeded
    3024,  # MySQL max_execution_time exceeded
    1146,  # table does not exist: schema not migrated yet
    1049,  # unknown database
    1045,  # access denied
}


class DatabaseUnavailable(Unavailable):
    """The database did not answer: down, unreachable, timed out, locked or not migrated."""


class Deadlock(DatabaseUnavailable):
    """The database rolled a transaction back to break a lock cycle; running it again is safe."""


class IntegrityViolation(Exception):
    """A unique or check constraint refused a write."""


@dataclass(frozen=True)
class _Target:
    dialect: str
    path: str = ""
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = ""
    database: str = ""


def _parse_url(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy spells them
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path:
            raise ConfigError("environment", "DATABASE_URL", "sqlite URL needs a path")
        return _Target("sqlite", path=path)
    if parts.scheme in ("mysql", "mariadb"):
        database = parts.path.lstrip("/")
        if not database:
            raise ConfigError("environment", "DATABASE_URL", "mysql URL needs a database name")
        try:
            port = parts.port or 3306
        except ValueError:
            raise ConfigError("environment", "DATABASE_URL", "port is not a number") from None
        return _Target(
            "mysql",
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=database,
        )
    raise ConfigError("environment", "DATABASE_URL", "must start with sqlite:/// or mysql://")


@functools.lru_cache(maxsize=512)
def _to_pyformat(sql: str) -> str:
    if "%" in sql:
        raise ValueError("SQL must not contain a literal %: pass patterns as parameters")
    return sql.replace("?", "%s")


def to_text(moment: datetime) -> str:
    """The storage form of a timestamp: UTC, second precision, sortable as text."""
    return moment.astimezone(UTC).strftime(_TS_FORMAT)


def _from_db(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    return datetime.strptime(str(value), _TS_FORMAT).replace(tzinfo=UTC)


def iso(value: Any) -> str | None:
    """A stored timestamp as RFC 3339 text, or None."""
    if value is None:
        return None
    return _from_db(value).strftime("%Y-%m-%dT%H:%M:%SZ")


class _SqliteConnection:
    """A sqlite3 connection whose statements stop at a deadline."""

    def __init__(self, path: str, busy_timeout_s: float) -> None:
        self.deadline = float("inf")
        self.raw = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self.raw.row_factory = _dict_row
        self.raw.execute("PRAGMA foreign_keys = ON")
        self.raw.execute("PRAGMA synchronous = NORMAL")
        self.raw.set_progress_handler(self._past_deadline, 2000)

    def _past_deadline(self) -> int:
        return 1 if time.monotonic() > self.deadline else 0

    def close(self) -> None:
        self.raw.close()


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class Session:
    """One checked-out connection; run statements, optionally inside a transaction."""

    def __init__(self, conn: Any, dialect: str, query_timeout_s: float) -> None:
        self._conn = conn
        self.dialect = dialect
        self._timeout = query_timeout_s
        self.in_transaction = False

    def _run(self, sql: str, params: Sequence[Any], many: bool = False) -> Any:
        try:
            if self.dialect == "sqlite":
                self._conn.deadline = time.monotonic() + self._timeout
                raw = self._conn.raw
                return raw.executemany(sql, params) if many else raw.execute(sql, params)
            # pymysql has one socket timeout for the handshake and every read; it is set
            # per statement so the handshake waits connect_timeout and a statement waits
            # for its own budget (a little past the server-side limit, which fires first).
            self._conn._read_timeout = self._timeout + 1
            cursor = self._conn.cursor()
            statement = _to_pyformat(sql)
            if many:
                cursor.executemany(statement, params)
            else:
                cursor.execute(statement, params)
            return cursor
        except (sqlite3.IntegrityError, pymysql.err.IntegrityError) as exc:
            raise IntegrityViolation(str(exc)) from exc
        except sqlite3.OperationalError as exc:
            raise DatabaseUnavailable(f"sqlite: {exc}") from exc
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
            if exc.args and exc.args[0] == _MYSQL_DEADLOCK:
                raise Deadlock(_mysql_reason(exc)) from exc
            raise DatabaseUnavailable(_mysql_reason(exc)) from exc
        except (pymysql.err.ProgrammingError, pymysql.err.InternalError) as exc:
            if exc.args and exc.args[0] in _MYSQL_UNAVAILABLE:
                raise DatabaseUnavailable(_mysql_reason(exc)) from exc
            raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        return int(self._run(sql, params).rowcount)

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT; return the new row's id."""
        return int(self._run(sql, params).lastrowid)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows (pymysql batches INSERTs)."""
        if rows:
            self._run(sql, rows, many=True)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row, or None."""
        row = self._run(sql, params).fetchone()
        return dict(row) if row is not None else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Every row."""
        return [dict(row) for row in self._run(sql, params).fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.one(sql, params)
        return next(iter(row.values())) if row else None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """BEGIN … COMMIT, rolled back when the block raises."""
        # SQLite takes the write lock up front so two writers queue instead of deadlocking.
        self._run("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN", ())
        self.in_transaction = True
        try:
            yield self
        except BaseException:
            self._rollback()
            raise
        else:
            self._run("COMMIT", ())
        finally:
            self.in_transaction = False

    def _rollback(self) -> None:
        with suppress(DatabaseUnavailable):  # the connection is discarded either way
            self._run("ROLLBACK", ())


def _mysql_reason(exc: Exception) -> str:
    code = exc.args[0] if exc.args else "?"
    return f"mysql error {code}"


class Database:
    """Connection settings and a small per-process pool of open connections."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 2.0,
        query_timeout_s: float = 5.0,
        pool_size: int = 8,
        on_checkout: Callable[[int], None] | None = None,
        idle_check_s: float = 30.0,
        password: str | None = None,
    ) -> None:
        self._target = _parse_url(url)
        if password is not None:  # from a file: it wins over one written in the URL
            self._target = replace(self._target, password=password)
        self.dialect = self._target.dialect
        self._connect_timeout = connect_timeout_s
        self._query_timeout = query_timeout_s
        self._pool_size = pool_size
        self._idle: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._on_checkout = on_checkout or (lambda delta: None)
        self._is_mariadb: bool | None = None
        #: TLS when the server offers it, as pymysql's default, but one context for all
        self._tls = unverified_context() if self.dialect == "mysql" else None
        # A connection idle this long is pinged before use: the server may have closed it
        # (wait_timeout, restart) and the request should not be the one to find out.
        self._idle_check = idle_check_s

    @property
    def description(self) -> str:
        """Where the data lives, without credentials, for logs."""
        t = self._target
        if t.dialect == "sqlite":
            return f"sqlite:///{t.path}"
        return f"mysql://{t.host}:{t.port}/{t.database}"

    def _open(self) -> Any:
        if self.dialect == "sqlite":
            return self._open_sqlite()
        return self._open_mysql()

    def _open_sqlite(self) -> _SqliteConnection:
        Path(self._target.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = _SqliteConnection(self._target.path, self._query_timeout)
            # WAL lets readers run beside the one writer; it is a property of the file.
            conn.raw.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"sqlite: {exc}") from exc
        return conn

    def _open_mysql(self) -> Any:
        t = self._target
        try:
            conn = connect(
                self._tls,
                require_tls=False,
                host=t.host,
                port=t.port,
                user=t.user,
                password=t.password,
                database=t.database,
                connect_timeout=self._connect_timeout,
                read_timeout=self._connect_timeout,
                write_timeout=self._query_timeout + 1,
                autocommit=True,
                charset="utf8mb4",
                cursorclass=pymysql.cursors.DictCursor,
            )
            if self._is_mariadb is None:
                self._is_mariadb = "mariadb" in conn.get_server_info().lower()
            timeout = (
                f"max_statement_time = {self._query_timeout:.3f}"
                if self._is_mariadb
                else f"max_execution_time = {int(self._query_timeout * 1000)}"
            )
            lock_wait = max(1, int(self._query_timeout))
            with conn.cursor() as cursor:
                cursor.execute(
                    f"SET SESSION {timeout}, SESSION innodb_lock_wait_timeout = {lock_wait},"
                    " SESSION time_zone = '+00:00'"
                )
        except (pymysql.err.MySQLError, OSError) as exc:
            raise DatabaseUnavailable(_mysql_reason(exc)) from exc
        return conn

    @contextmanager
    def session(self, timeout_s: float | None = None) -> Iterator[Session]:
        """Check a connection out of the pool for the length of the block.

        ``timeout_s`` shortens the statement budget for this session (readiness probes).
        """
        conn = self._checkout()
        self._on_checkout(1)
        broken = False
        session = Session(conn, self.dialect, timeout_s or self._query_timeout)
        try:
            yield session
        except DatabaseUnavailable:
            broken = True
            raise
        finally:
            self._on_checkout(-1)
            if session.in_transaction:
                broken = True
            with self._lock:
                keep = not broken and len(self._idle) < self._pool_size
                if keep:
                    self._idle.append((conn, time.monotonic()))
            if not keep:
                _close_quietly(conn)

    def _checkout(self) -> Any:
        while True:
            with self._lock:
                conn, idle_since = self._idle.pop() if self._idle else (None, 0.0)
            if conn is None:
                return self._open()
            if time.monotonic() - idle_since < self._idle_check or self._alive(conn):
                return conn
            _close_quietly(conn)

    def _alive(self, conn: Any) -> bool:
        try:
            if self.dialect == "sqlite":
                conn.raw.execute("SELECT 1")
            else:
                conn._read_timeout = self._connect_timeout
                conn.ping(reconnect=False)
        except (sqlite3.Error, pymysql.err.MySQLError, OSError):
            return False
        return True

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session with one transaction around the block."""
        with self.session() as session, session.transaction():
            yield session

    def run_transaction(self, work: Callable[[Session], _T]) -> _T:
        """Run ``work`` in a transaction; run it again if the database picked it as a
        deadlock victim (InnoDB rolls it back whole, so nothing is applied twice)."""
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                with self.transaction() as session:
                    return work(session)
            except Deadlock:
                if attempt == DEADLOCK_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def ping(self, timeout_s: float) -> None:
        """Raise DatabaseUnavailable unless a trivial query answers within the timeout."""
        with self.session(min(timeout_s, self._query_timeout)) as session:
            session.scalar("SELECT 1")

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = list(self._idle), collections.deque()
        for conn, _since in idle:
            _close_quietly(conn)


def _close_quietly(conn: Any) -> None:
    with suppress(Exception):  # a connection that fails to close is gone already
        conn.close()


# --------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class _Migration:
    version: int
    name: str
    sqlite: tuple[str, ...]
    mysql: tuple[str, ...]


_MYSQL_TABLE = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"

_MIGRATIONS: tuple[_Migration, ...] = (
    _Migration(
        1,
        "members, books, search terms, loans, settings",
        sqlite=(
            """CREATE TABLE IF NOT EXISTS members (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                email TEXT NOT NULL UNIQUE COLLATE NOCASE,
                name TEXT NOT NULL,
                password_hash TEXT NOT NULL,
                role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin')),
                status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
                active_loans INTEGER NOT NULL DEFAULT 0 CHECK (active_loans >= 0),
                created_at TEXT NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS ix_members_status ON members (status)",
            """CREATE TABLE IF NOT EXISTS books (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                title TEXT NOT NULL,
                author TEXT NOT NULL COLLATE NOCASE,
                isbn TEXT NOT NULL UNIQUE,
                copies INTEGER NOT NULL CHECK (copies >= 0),
                available_copies INTEGER NOT NULL
                    CHECK (available_copies >= 0 AND available_copies <= copies),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS ix_books_author ON books (author)",
            "CREATE INDEX IF NOT EXISTS ix_books_available ON books (available_copies)",
            """CREATE TABLE IF NOT EXISTS book_terms (
                term TEXT NOT NULL,
                book_id INTEGER NOT NULL REFERENCES books (id) ON DELETE CASCADE,
                PRIMARY KEY (term, book_id))""",
            "CREATE INDEX IF NOT EXISTS ix_book_terms_book ON book_terms (book_id)",
            """CREATE TABLE IF NOT EXISTS loans (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                book_id INTEGER NOT NULL REFERENCES books (id) ON DELETE CASCADE,
                member_id INTEGER NOT NULL REFERENCES members (id),
                borrowed_at TEXT NOT NULL,
                due_at TEXT NOT NULL,
                returned_at TEXT,
                renewed INTEGER NOT NULL DEFAULT 0)""",
            "CREATE INDEX IF NOT EXISTS ix_loans_member ON loans (member_id, returned_at)",
            "CREATE INDEX IF NOT EXISTS ix_loans_open_due ON loans (returned_at, due_at)",
            "CREATE INDEX IF NOT EXISTS ix_loans_book ON loans (book_id, returned_at)",
            "CREATE INDEX IF NOT EXISTS ix_loans_borrowed ON loans (borrowed_at)",
            """CREATE TABLE IF NOT EXISTS settings (
                name TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        ),
        mysql=(
            """CREATE TABLE IF NOT EXISTS members (
                id BIGINT AUTO_INCREMENT PRIMARY KEY,
                email VARCHAR(254) NOT NULL,
                name VARCHAR(200) NOT NULL,
                password_hash VARCHAR(255) NOT NULL,
                role VARCHAR(16) NOT NULL DEFAULT 'member',
                status VARCHAR(16) NOT NULL DEFAULT 'active',
                active_loans INT NOT NULL DEFAULT 0,
                created_at DATETIME NOT NULL,
                UNIQUE KEY ux_members_email (email),
                KEY ix_members_status (status),
                CONSTRAINT ck_members_role CHECK (role IN ('member', 'admin')),
                CONSTRAINT ck_members_status CHECK (status IN ('active', 'suspended')),
                CONSTRAINT ck_members_loans CHECK (active_loans >= 0))"""
            + _MYSQL_TABLE,
            """CREATE TABLE IF NOT EXISTS books (
                id BIGINT AUTO_INCREMENT PRIMARY KEY,
                title VARCHAR(300) NOT NULL,
                author VARCHAR(200) NOT NULL,
                isbn VARCHAR(13) NOT NULL,
                copies INT NOT NULL,
                available_copies INT NOT NULL,
                created_at DATETIME NOT NULL,
                updated_at DATETIME NOT NULL,
                UNIQUE KEY ux_books_isbn (isbn),
                KEY ix_books_author (author),
                KEY ix_books_available (available_copies),
                CONSTRAINT ck_books_copies CHECK (copies >= 0),
                CONSTRAINT ck_books_available
                    CHECK (available_copies >= 0 AND available_copies <= copies))"""
            + _MYSQL_TABLE,
            """CREATE TABLE IF NOT EXISTS book_terms (
                term VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
                book_id BIGINT NOT NULL,
                PRIMARY KEY (term, book_id),
                KEY ix_book_terms_book (book_id),
                CONSTRAINT fk_book_terms_book FOREIGN KEY (book_id)
                    REFERENCES books (id) ON DELETE CASCADE)"""
            + _MYSQL_TABLE,
            """CREATE TABLE IF NOT EXISTS loans (
                id BIGINT AUTO_INCREMENT PRIMARY KEY,
                book_id BIGINT NOT NULL,
                member_id BIGINT NOT NULL,
                borrowed_at DATETIME NOT NULL,
                due_at DATETIME NOT NULL,
                returned_at DATETIME NULL,
                renewed TINYINT NOT NULL DEFAULT 0,
                KEY ix_loans_member (member_id, returned_at),
                KEY ix_loans_open_due (returned_at, due_at),
                KEY ix_loans_book (book_id, returned_at),
                KEY ix_loans_borrowed (borrowed_at),
                CONSTRAINT fk_loans_book FOREIGN KEY (book_id)
                    REFERENCES books (id) ON DELETE CASCADE,
                CONSTRAINT fk_loans_member FOREIGN KEY (member_id)
                    REFERENCES members (id))"""
            + _MYSQL_TABLE,
            """CREATE TABLE IF NOT EXISTS settings (
                name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)"""
            + _MYSQL_TABLE,
        ),
    ),
    _Migration(
        2,
        "covering index for copy counts (the exporter's copies-by-state query)",
        sqlite=(
            "CREATE INDEX IF NOT EXISTS ix_books_stock ON books (available_copies, copies)",
            "DROP INDEX IF EXISTS ix_books_available",
        ),
        # one ALTER: MySQL DDL is not transactional, a single statement is all or nothing
        mysql=(
            "ALTER TABLE books ADD INDEX ix_books_stock (available_copies, copies),"
            " DROP INDEX ix_books_available",
        ),
    ),
    _Migration(
        3,
        "backup runs (the backup job records each success; the exporter reports the last)",
        sqlite=(
            """CREATE TABLE IF NOT EXISTS backup_runs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                finished_at TEXT NOT NULL,
                bytes INTEGER NOT NULL CHECK (bytes >= 0),
                path TEXT NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS ix_backup_runs_finished ON backup_runs (finished_at)",
        ),
        mysql=(
            """CREATE TABLE IF NOT EXISTS backup_runs (
                id BIGINT AUTO_INCREMENT PRIMARY KEY,
                finished_at DATETIME NOT NULL,
                bytes BIGINT NOT NULL,
                path VARCHAR(500) NOT NULL,
                KEY ix_backup_runs_finished (finished_at),
                CONSTRAINT ck_backup_runs_bytes CHECK (bytes >= 0))"""
            + _MYSQL_TABLE,
        ),
    ),
)

LATEST_VERSION = _MIGRATIONS[-1].version


def schema_version(session: Session) -> int:
    """The highest applied migration, 0 on an empty database."""
    try:
        return int(session.scalar("SELECT MAX(version) FROM schema_migrations") or 0)
    except DatabaseUnavailable as exc:
        if "no such table" in str(exc) or "1146" in str(exc):
            return 0
        raise


def migrate(db: Database, now: datetime) -> list[int]:
    """Apply every migration not yet applied; return the versions applied now."""
    applied: list[int] = []
    with db.session() as s:
        text_type = "TEXT" if s.dialect == "sqlite" else "DATETIME"
        s.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            f"version INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_at {text_type})"
        )
        # Two processes starting at once must not both apply the same migration.
        if s.dialect == "mysql":
            s.scalar("SELECT GET_LOCK('elibrary_migrate', 30)")
        try:
            for migration in _MIGRATIONS:
                if migration.version <= schema_version(s):
                    continue
                statements = migration.sqlite if s.dialect == "sqlite" else migration.mysql
                if s.dialect == "sqlite":
                    with s.transaction():
                        for statement in statements:
                            s.execute(statement)
                        _record(s, migration, now)
                else:  # MySQL DDL commits implicitly; every statement is idempotent instead
                    for statement in statements:
                        s.execute(statement)
                    _record(s, migration, now)
                applied.append(migration.version)
        finally:
            if s.dialect == "mysql":
                s.scalar("SELECT RELEASE_LOCK('elibrary_migrate')")
    return applied


def _record(s: Session, migration: _Migration, now: datetime) -> None:
    s.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        (migration.version, migration.name, to_text(now)),
    )


# --------------------------------------------------------------------------- settings


def get_setting(s: Session, name: str) -> str | None:
    """A stored setting, or None."""
    value = s.scalar("SELECT value FROM settings WHERE name = ?", (name,))
    return None if value is None else str(value)


def put_setting_once(s: Session, name: str, value: str) -> str:
    """Store a setting unless one is there already; return the stored value."""
    verb = "INSERT OR IGNORE" if s.dialect == "sqlite" else "INSERT IGNORE"
    s.execute(f"{verb} INTO settings (name, value) VALUES (?, ?)", (name, value))
    stored = get_setting(s, name)
    assert stored is not None
    return stored


# --------------------------------------------------------------------------- members

_MEMBER_COLUMNS = "id, email, name, role, status, active_loans, created_at"


def create_member(
    s: Session, email: str, name: str, password_hash: str, role: str, now: datetime
) -> int:
    """Insert a member; IntegrityViolation when the email is taken."""
    return s.insert(
        "INSERT INTO members (email, name, password_hash, role, status, active_loans, created_at)"
        " VALUES (?, ?, ?, ?, 'active', 0, ?)",
        (email, name, password_hash, role, to_text(now)),
    )


def get_member(s: Session, member_id: int) -> Row | None:
    """One member without the password hash."""
    return s.one(f"SELECT {_MEMBER_COLUMNS} FROM members WHERE id = ?", (member_id,))


def get_credentials(s: Session, email: str) -> Row | None:
    """The id, role, status and password hash for an email."""
    return s.one("SELECT id, role, status, password_hash FROM members WHERE email = ?", (email,))


def list_members(s: Session, limit: int, offset: int) -> tuple[list[Row], int]:
    """A page of members by id, and how many there are."""
    rows = s.all(
        f"SELECT {_MEMBER_COLUMNS} FROM members ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
    )
    return rows, int(s.scalar("SELECT COUNT(*) FROM members"))


# --------------------------------------------------------------------------- books

_BOOK_COLUMNS = "id, title, author, isbn, copies, available_copies, created_at, updated_at"
_TERM_RE = re.compile(r"\w+", re.UNICODE)
_MAX_TERM = 64
# Past every character a term can hold, so [prefix, prefix + _TERM_END) is a prefix range.
_TERM_END = "\U0010ffff"


def book_terms(*texts: str) -> list[str]:
    """The lower-cased words of a title and author that prefix search looks up."""
    terms = {m.group(0).lower()[:_MAX_TERM] for text in texts for m in _TERM_RE.finditer(text)}
    return sorted(terms)


def _write_terms(s: Session, book_id: int, title: str, author: str) -> None:
    s.execute("DELETE FROM book_terms WHERE book_id = ?", (book_id,))
    s.executemany(
        "INSERT INTO book_terms (term, book_id) VALUES (?, ?)",
        [(term, book_id) for term in book_terms(title, author)],
    )


def create_book(s: Session, title: str, author: str, isbn: str, copies: int, now: datetime) -> int:
    """Insert a book and its search terms; IntegrityViolation on a known ISBN."""
    stamp = to_text(now)
    book_id = s.insert(
        "INSERT INTO books (title, author, isbn, copies, available_copies, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (title, author, isbn, copies, copies, stamp, stamp),
    )
    _write_terms(s, book_id, title, author)
    return book_id


def get_book(s: Session, book_id: int) -> Row | None:
    """One book."""
    return s.one(f"SELECT {_BOOK_COLUMNS} FROM books WHERE id = ?", (book_id,))


def list_books(
    s: Session,
    *,
    search_terms: Sequence[str],
    author: str | None,
    available_only: bool,
    limit: int,
    offset: int,
) -> tuple[list[Row], int]:
    """A page of books matching every filter, by id, and how many match."""
    where: list[str] = []
    params: list[Any] = []
    for term in search_terms:
        where.append("id IN (SELECT book_id FROM book_terms WHERE term >= ? AND term < ?)")
        params.extend((term, term + _TERM_END))
    if author is not None:
        where.append("author = ?")
        params.append(author)
    if available_only:
        where.append("available_copies > 0")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = s.all(
        f"SELECT {_BOOK_COLUMNS} FROM books{clause} ORDER BY id LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    total = int(s.scalar(f"SELECT COUNT(*) FROM books{clause}", params))
    return rows, total


def update_book(s: Session, book_id: int, changes: dict[str, Any], now: datetime) -> str:
    """Apply changes; 'missing', 'on_loan' (copies below those lent) or 'updated'."""
    book = s.one("SELECT id, title, author FROM books WHERE id = ?", (book_id,))
    if book is None:
        return "missing"
    sets = ["updated_at = ?"]
    params: list[Any] = [to_text(now)]
    guard = ""
    guard_params: list[Any] = []
    for column in ("title", "author", "isbn"):
        if column in changes:
            sets.append(f"{column} = ?")
            params.append(changes[column])
    if "copies" in changes:
        # Lent copies stay lent: available moves by the same amount as the total.
        sets.append("available_copies = available_copies + (? - copies)")
        sets.append("copies = ?")
        params.extend((changes["copies"], changes["copies"]))
        guard = " AND available_copies + (? - copies) >= 0"
        guard_params.append(changes["copies"])
    # MySQL evaluates SET left to right, so available_copies is computed before copies changes.
    if (
        s.execute(
            f"UPDATE books SET {', '.join(sets)} WHERE id = ?{guard}",
            (*params, book_id, *guard_params),
        )
        == 0
    ):
        return "on_loan"
    if "title" in changes or "author" in changes:
        title = str(changes.get("title", book["title"]))
        _write_terms(s, book_id, title, str(changes.get("author", book["author"])))
    return "updated"


def delete_book(s: Session, book_id: int) -> str:
    """Delete a book with no copy on loan; 'missing', 'on_loan' or 'deleted'."""
    if s.execute("DELETE FROM books WHERE id = ? AND available_copies = copies", (book_id,)):
        return "deleted"
    return "on_loan" if get_book(s, book_id) else "missing"


# --------------------------------------------------------------------------- loans

_LOAN_COLUMNS = "id, book_id, member_id, borrowed_at, due_at, returned_at, renewed"


@dataclass(frozen=True)
class LoanFilter:
    """Which loans a listing shows; None means any."""

    member_id: int | None = None
    status: str | None = None  # active, returned or overdue


def borrow(
    s: Session, member_id: int, book_id: int, loan_limit: int, now: datetime, due: datetime
) -> tuple[str, int | None]:
    """Lend one copy inside the caller's transaction.

    Returns ('created', loan_id) or a refusal: 'member_inactive', 'loan_limit',
    'missing_book', 'no_copy'. On a refusal the caller must roll back.
    """
    if not s.execute(
        "UPDATE members SET active_loans = active_loans + 1"
        " WHERE id = ? AND status = 'active' AND active_loans < ?",
        (member_id, loan_limit),
    ):
        status = s.scalar("SELECT status FROM members WHERE id = ?", (member_id,))
        return ("loan_limit" if status == "active" else "member_inactive"), None
    if s.dialect == "mysql":
        # Take the book's row lock through the primary key first. Left to itself, InnoDB may
        # run the UPDATE below through an index on available_copies and take gap locks there,
        # which deadlock concurrent borrowers of the same book (seen in the race test).
        s.scalar("SELECT id FROM books WHERE id = ? FOR UPDATE", (book_id,))
    if not s.execute(
        "UPDATE books SET available_copies = available_copies - 1"
        " WHERE id = ? AND available_copies > 0",
        (book_id,),
    ):
        exists = s.scalar("SELECT 1 FROM books WHERE id = ?", (book_id,))
        return ("no_copy" if exists else "missing_book"), None
    loan_id = s.insert(
        "INSERT INTO loans (book_id, member_id, borrowed_at, due_at, returned_at, renewed)"
        " VALUES (?, ?, ?, ?, NULL, 0)",
        (book_id, member_id, to_text(now), to_text(due)),
    )
    return "created", loan_id


def get_loan(s: Session, loan_id: int) -> Row | None:
    """One loan."""
    return s.one(f"SELECT {_LOAN_COLUMNS} FROM loans WHERE id = ?", (loan_id,))


def _lock_member_then_book(s: Session, member_id: int, book_id: int) -> None:
    """On MySQL, take the row locks in the order borrow takes them before touching a loan.

    Updating a loan row makes InnoDB take shared locks on its parent rows (foreign keys);
    upgrading those later while a borrower waits for the same book is a deadlock.
    """
    if s.dialect == "mysql":
        s.scalar("SELECT id FROM members WHERE id = ? FOR UPDATE", (member_id,))
        s.scalar("SELECT id FROM books WHERE id = ? FOR UPDATE", (book_id,))


def return_loan(s: Session, loan: Row, now: datetime) -> bool:
    """Close an open loan inside the caller's transaction; False if it was closed already."""
    _lock_member_then_book(s, loan["member_id"], loan["book_id"])
    if not s.execute(
        "UPDATE loans SET returned_at = ? WHERE id = ? AND returned_at IS NULL",
        (to_text(now), loan["id"]),
    ):
        return False
    s.execute(
        "UPDATE members SET active_loans = active_loans - 1 WHERE id = ?", (loan["member_id"],)
    )
    s.execute(
        "UPDATE books SET available_copies = available_copies + 1 WHERE id = ?",
        (loan["book_id"],),
    )
    return True


def renew_loan(s: Session, loan: Row, new_due: datetime, now: datetime) -> bool:
    """Extend an open, unrenewed, not overdue loan; False when it no longer qualifies."""
    _lock_member_then_book(s, loan["member_id"], loan["book_id"])
    return bool(
        s.execute(
            "UPDATE loans SET due_at = ?, renewed = 1 WHERE id = ? AND returned_at IS NULL"
            " AND renewed = 0 AND due_at >= ?",
            (to_text(new_due), loan["id"], to_text(now)),
        )
    )


def list_loans(
    s: Session, which: LoanFilter, now: datetime, limit: int, offset: int
) -> tuple[list[Row], int]:
    """A page of loans, newest first, and how many match."""
    where: list[str] = []
    params: list[Any] = []
    if which.member_id is not None:
        where.append("member_id = ?")
        params.append(which.member_id)
    if which.status == "active":
        where.append("returned_at IS NULL")
    elif which.status == "returned":
        where.append("returned_at IS NOT NULL")
    elif which.status == "overdue":
        where.append("returned_at IS NULL AND due_at < ?")
        params.append(to_text(now))
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = s.all(
        f"SELECT {_LOAN_COLUMNS} FROM loans{clause} ORDER BY id DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    return rows, int(s.scalar(f"SELECT COUNT(*) FROM loans{clause}", params))


def loan_due(row: Row) -> datetime:
    """A loan's due date as a datetime."""
    return _from_db(row["due_at"])


def stats(s: Session, now: datetime) -> dict[str, Any]:
    """The numbers the admin dashboard shows; each is one index-backed query."""
    stamp = to_text(now)
    books = (
        s.one(
            "SELECT COUNT(*) AS titles, COALESCE(SUM(copies), 0) AS copies,"
            " COALESCE(SUM(available_copies), 0) AS available FROM books"
        )
        or {}
    )
    members = {
        row["status"]: int(row["n"])
        for row in s.all("SELECT status, COUNT(*) AS n FROM members GROUP BY status")
    }
    active = int(s.scalar("SELECT COUNT(*) FROM loans WHERE returned_at IS NULL"))
    overdue = (
        s.one(
            "SELECT COUNT(*) AS n, MIN(due_at) AS oldest FROM loans"
            " WHERE returned_at IS NULL AND due_at < ?",
            (stamp,),
        )
        or {}
    )
    last_hour = int(
        s.scalar(
            "SELECT COUNT(*) FROM loans WHERE borrowed_at >= ?",
            (to_text(now - timedelta(hours=1)),),
        )
    )
    copies, available = int(books.get("copies", 0)), int(books.get("available", 0))
    oldest = overdue.get("oldest")
    return {
        "books": {
            "titles": int(books.get("titles", 0)),
            "copies": copies,
            "available_copies": available,
            "copies_on_loan": copies - available,
        },
        "members": {
            "total": sum(members.values()),
            "active": members.get("active", 0),
            "suspended": members.get("suspended", 0),
        },
        "loans": {
            "active": active,
            "overdue": int(overdue.get("n", 0)),
            "created_last_hour": last_hour,
            "oldest_overdue_seconds": (
                int((now - _from_db(oldest)).total_seconds()) if oldest is not None else 0
            ),
        },
    }


# --------------------------------------------------------------------------- bulk load


def bulk_insert(
    s: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], batch: int = 5000
) -> int:
    """Insert rows in batches (pymysql turns each batch into one multi-row INSERT)."""
    if table not in {"books", "members", "loans", "book_terms"}:
        raise ValueError(f"unknown table {table}")
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    count = 0
    chunk: list[Sequence[Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= batch:
            s.executemany(sql, chunk)
            count += len(chunk)
            chunk = []
    s.executemany(sql, chunk)
    return count + len(chunk)


@contextmanager
def bulk_load(s: Session) -> Iterator[None]:
    """Fast bulk writes: one transaction on SQLite; on MySQL, batches that skip the
    foreign-key and unique re-checks (the loader generates consistent rows)."""
    if s.dialect == "sqlite":
        with s.transaction():
            yield
        return
    s.execute("SET SESSION foreign_key_checks = 0, SESSION unique_checks = 0")
    try:
        yield
    finally:
        s.execute("SET SESSION foreign_key_checks = 1, SESSION unique_checks = 1")


def max_id(s: Session, table: str) -> int:
    """The highest id in a table, 0 when empty."""
    if table not in {"books", "members", "loans"}:
        raise ValueError(f"unknown table {table}")
    return int(s.scalar(f"SELECT COALESCE(MAX(id), 0) FROM {table}") or 0)
